"""What the per-user Kubernetes-compatible endpoint serves: one request line to a Route, or a refusal."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "DISCOVERY_PATHS",
    "MAX_PATH_LENGTH",
    "MAX_SELECTOR_LENGTH",
    "SERVED",
    "TRAINER_PUBLIC_CONFIGMAP",
    "NotServed",
    "Route",
    "Verb",
    "label_selector_problem",
    "route",
]

Verb = Literal["create", "get", "list", "delete", "patch", "log"]

# A longer path cannot be a request for a served object: the longest one, a trainingruntime's status
# with a 63-character namespace and a 253-character name, is about 400 characters.
MAX_PATH_LENGTH = 1024
# The SDKs' longest selector is about 150 characters. A selector far longer than any sensible one is
# refused before it is parsed.
MAX_SELECTOR_LENGTH = 4096

# The one ConfigMap TrainerClient reads when it starts: the Trainer's version, published to every user.
TRAINER_PUBLIC_CONFIGMAP = ("kubeflow-system", "kubeflow-trainer-public")

# The discovery documents, answered by the service itself. Their Route has an empty group and version.
DISCOVERY_PATHS = frozenset({"api", "apis", "version"})

SERVED = (
    "This endpoint serves only what the job SDKs call for your own runs: workflows (get, list; create "
    "them through the Argo-compatible endpoint), experiments, trainjobs, pytorchjobs and batch jobs "
    "(create, get, list, delete), trials, trainingruntimes and clustertrainingruntimes (get, list), pods "
    "in your namespace (get, list) and their logs, events (list), the ConfigMap "
    "kubeflow-system/kubeflow-trainer-public (get), and /api, /apis, /version."
)


@dataclass(frozen=True)
class Route:
    """A request this endpoint serves, as the handler that forwards it needs it."""

    # What the request does; "log" reads pods/log, "get" also reads a status subresource.
    verb: Verb
    # The API group; "" for the core group and for discovery documents.
    group: str
    # The API version; "" for discovery documents.
    version: str
    # The resource's plural name, or "api", "apis" or "version" for discovery documents.
    resource: str
    # The run kind for the run resources, so the handler finds its admission policy; None otherwise.
    kind: str | None = None
    # The namespace as the path names it; the handler maps "default" and the kubeconfig's one to the
    # user's run namespace. None for cluster-scoped resources and discovery.
    namespace: str | None = None
    # The object's name; None for a collection.
    name: str | None = None
    # "status", "log" or None.
    subresource: str | None = None
    # Whether a pods/log read follows the log until the container ends.
    follow: bool = False
    # The labelSelector of a list, checked for syntax and passed on as the client wrote it.
    label_selector: str | None = None
    # The container of a pods/log read; None lets the cluster choose.
    container: str | None = None
    # How many lines from the end a pods/log read starts at; None means the whole log.
    tail_lines: int | None = None
    # Whether the resource takes no writes through this endpoint at all.
    read_only: bool = False


@dataclass(frozen=True)
class NotServed:
    """A refusal: the HTTP status and a sentence naming what is not served and what is."""

    status: int
    message: str


@dataclass(frozen=True)
class _Resource:
    """One served resource: its scope and the verbs this endpoint lets through."""

    kind: str | None
    namespaced: bool
    verbs: frozenset[str]
    subresources: frozenset[str] = frozenset()

    @property
    def read_only(self) -> bool:
        return not self.verbs & {"create", "delete", "patch"}


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


_RUN_VERBS = frozenset({"create", "get", "list", "delete"})
_READ_VERBS = frozenset({"get", "list"})

# Patch is served on nothing. Runs are created suspended and the service un-suspends them, so a patch
# could un-suspend a run past admission or move it; Kubeflow's TrainingClient.update_job and
# KatibClient.edit_experiment_budget, the only SDK calls that patch, are refused with a message.
_SERVED: dict[tuple[str, str, str], _Resource] = {
    ("", "v1", "pods"): _Resource(None, True, _READ_VERBS, frozenset({"log"})),
    ("", "v1", "events"): _Resource(None, True, frozenset({"list"})),
    ("", "v1", "configmaps"): _Resource(None, True, frozenset({"get"})),
    ("batch", "v1", "jobs"): _Resource("Job", True, _RUN_VERBS, frozenset({"status"})),
    # Hera creates and deletes workflows through the Argo-Server-compatible endpoint; here they are
    # only read, by Katib's Argo trials and by kubectl-minded users.
    ("argoproj.io", "v1alpha1", "workflows"): _Resource("Workflow", True, _READ_VERBS, frozenset({"status"})),
    ("kubeflow.org", "v1beta1", "experiments"): _Resource(
        "Experiment", True, _RUN_VERBS, frozenset({"status"})
    ),
    ("kubeflow.org", "v1beta1", "trials"): _Resource(None, True, _READ_VERBS, frozenset({"status"})),
    ("kubeflow.org", "v1", "pytorchjobs"): _Resource("PyTorchJob", True, _RUN_VERBS, frozenset({"status"})),
    ("trainer.kubeflow.org", "v1alpha1", "trainjobs"): _Resource(
        "TrainJob", True, _RUN_VERBS, frozenset({"status"})
    ),
    ("trainer.kubeflow.org", "v1alpha1", "trainingruntimes"): _Resource(None, True, _READ_VERBS),
    ("trainer.kubeflow.org", "v1alpha1", "clustertrainingruntimes"): _Resource(None, False, _READ_VERBS),
}
_SERVED_VERSIONS: dict[str, frozenset[str]] = {
    group: frozenset(v for g, v, _ in _SERVED if g == group) for group, _, _ in _SERVED
}

# Resources a cluster has in the served group versions but this endpoint does not serve: a 403 names
# them, where a resource nobody has heard of is a 404.
_KNOWN: dict[tuple[str, str], frozenset[str]] = {
    ("", "v1"): _words(
        "bindings componentstatuses configmaps endpoints limitranges namespaces nodes persistentvolumeclaims "
        "persistentvolumes podtemplates replicationcontrollers resourcequotas secrets serviceaccounts "
        "services"
    ),
    ("batch", "v1"): frozenset({"cronjobs"}),
    ("argoproj.io", "v1alpha1"): _words(
        "clusterworkflowtemplates cronworkflows eventbus eventsources sensors workfloweventbindings "
        "workflowartifactgctasks workflowtaskresults workflowtasksets workflowtemplates"
    ),
    ("kubeflow.org", "v1beta1"): frozenset({"suggestions"}),
    ("kubeflow.org", "v1"): _words("jaxjobs mpijobs paddlejobs tfjobs xgboostjobs"),
    ("trainer.kubeflow.org", "v1alpha1"): frozenset({"optimizationjobs"}),
}

# Groups of a cluster that this endpoint serves nothing of: a 403, where an unheard-of group is a 404.
_KNOWN_GROUPS = _words(
    "admissionregistration.k8s.io apiextensions.k8s.io apiregistration.k8s.io apps authentication.k8s.io "
    "authorization.k8s.io autoscaling certificates.k8s.io coordination.k8s.io discovery.k8s.io "
    "events.k8s.io flowcontrol.apiserver.k8s.io jobset.x-k8s.io kueue.x-k8s.io metrics.k8s.io "
    "networking.k8s.io node.k8s.io policy rbac.authorization.k8s.io resource.k8s.io scheduling.k8s.io "
    "storage.k8s.io"
)

# Subresources a cluster has; asking for one that is not served is a 403, an unheard-of one a 404.
_KNOWN_SUBRESOURCES = _words(
    "attach binding ephemeralcontainers eviction exec finalize log portforward proxy resize scale status "
    "token"
)

_VERBS: dict[str, Verb] = {"create": "create", "get": "get", "list": "list", "delete": "delete", "log": "log"}
_METHOD_VERBS_COLLECTION = {"GET": "list", "POST": "create", "DELETE": "deletecollection"}
_METHOD_VERBS_ITEM = {"GET": "get", "DELETE": "delete", "PATCH": "patch", "PUT": "update"}
_HTTP_METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE"})

# Query parameters that change what a request means. Forwarding the request without them would
# answer something else than was asked, so they are refused rather than dropped. Parameters not
# named anywhere here (pretty, limit, timeoutSeconds, propagationPolicy...) are not carried.
_REFUSED_PARAMS = {
    "fieldSelector": "field selectors are not served; use a labelSelector",
    "dryRun": "dry runs are not served",
}
_REFUSED_LOG_PARAMS = ("sinceSeconds", "sinceTime", "limitBytes")

# A path segment: what a group, version, resource, namespace or object name can be made of. A
# percent sign is not among them, so encoded slashes and dots never reach the parser.
_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")
_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?")
_DNS_SUBDOMAIN = re.compile(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*")
_LABEL_NAME = re.compile(r"[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?")
_INTEGER = re.compile(r"[+-]?[0-9]+")
_TRUE = frozenset({"1", "t", "T", "TRUE", "true", "True"})
_FALSE = frozenset({"0", "f", "F", "FALSE", "false", "False"})


def route(method: str, path: str, query: Mapping[str, Sequence[str]]) -> Route | NotServed:
    """Decide what one request to the endpoint is, from its method, path and parsed query.

    `path` is the raw path after the endpoint's prefix, still percent-encoded as the client sent it,
    e.g. "/apis/kubeflow.org/v1beta1/namespaces/default/experiments/x". `query` maps each parameter
    to its values, as urllib.parse.parse_qs gives them; the first value counts, as in the apiserver.
    """
    method = method.upper()
    if method not in _HTTP_METHODS:
        return NotServed(405, f"{method[:20]} is not a Kubernetes API method. {SERVED}")
    if len(path) > MAX_PATH_LENGTH:
        return NotServed(414, f"a path of {len(path)} characters is longer than any served one. {SERVED}")
    if not path.startswith("/"):
        return NotServed(400, "the path must start with '/'.")
    if path == "/":
        return NotServed(404, f"/ is not served. {SERVED}")
    segments = path[1:].split("/")
    problem = _segments_problem(segments)
    if problem is not None:
        return NotServed(400, f"malformed path: {problem}.")
    if len(segments) == 1 and segments[0] in DISCOVERY_PATHS:
        if method != "GET":
            return NotServed(403, f"/{segments[0]} is read-only here. {SERVED}")
        return Route(verb="get", group="", version="", resource=segments[0], read_only=True)
    split = _group_version(segments)
    if isinstance(split, NotServed):
        return split
    group, version, rest = split
    return _resource_route(method, group, version, rest, query)


def _segments_problem(segments: Sequence[str]) -> str | None:
    for segment in segments:
        if segment == "":
            return "an empty segment"
        if segment in (".", ".."):
            return f"a '{segment}' segment"
        if not _SEGMENT.fullmatch(segment):
            return "a segment with a character no served path has"
    return None


def _group_version(segments: Sequence[str]) -> tuple[str, str, list[str]] | NotServed:
    """Split "/api/v1/..." and "/apis/<group>/<version>/..." into group, version and the rest."""
    head = segments[0]
    if head == "api" and segments[1] == "v1":
        group, version, rest = "", "v1", list(segments[2:])
    elif head == "apis" and len(segments) >= 3:
        group, version, rest = segments[1], segments[2], list(segments[3:])
    elif head == "apis" and segments[1] in _KNOWN_GROUPS:
        return NotServed(403, f"discovery of the group {segments[1]} is not served. {SERVED}")
    else:
        return NotServed(404, f"{'/' + '/'.join(segments)} is not a path this endpoint knows. {SERVED}")
    label = f"{group}/{version}" if group else version
    if version not in _SERVED_VERSIONS.get(group, frozenset()):
        if group in _SERVED_VERSIONS:
            served = ", ".join(sorted(_SERVED_VERSIONS[group]))
            return NotServed(404, f"{label} is not a served version of {group} (served: {served}). {SERVED}")
        if group in _KNOWN_GROUPS:
            return NotServed(403, f"the API group {group} is not served. {SERVED}")
        return NotServed(404, f"the API group version {label} is not known here. {SERVED}")
    if not rest:
        return NotServed(403, f"discovery of {label} is not served. {SERVED}")
    return group, version, rest


def _resource_route(
    method: str, group: str, version: str, rest: Sequence[str], query: Mapping[str, Sequence[str]]
) -> Route | NotServed:
    namespace: str | None = None
    if rest[0] == "namespaces" and len(rest) >= 3:
        namespace, resource, tail = rest[1], rest[2], list(rest[3:])
    else:
        resource, tail = rest[0], list(rest[1:])
    if len(tail) > 2:
        return NotServed(404, f"{'/'.join(rest)} is not a path this endpoint knows. {SERVED}")
    name = tail[0] if tail else None
    sub = tail[1] if len(tail) == 2 else None
    label = f"{resource}.{group}" if group else resource
    served = _SERVED.get((group, version, resource))
    if served is None:
        if resource in _KNOWN.get((group, version), frozenset()):
            return NotServed(403, f"{label} are not served. {SERVED}")
        return NotServed(404, f"{label} is not a resource of {group or 'core'}/{version}. {SERVED}")
    if served.namespaced and namespace is None:
        return NotServed(
            403,
            f"{label} across all namespaces are not served; ask in your namespace "
            f"(.../namespaces/<namespace>/{resource}). {SERVED}",
        )
    if not served.namespaced and namespace is not None:
        return NotServed(404, f"{label} are cluster-scoped: they have no namespace in the path. {SERVED}")
    problem = _names_problem(namespace, name)
    if problem is not None:
        return NotServed(400, problem)
    if sub is not None and sub not in served.subresources:
        status = 403 if sub in _KNOWN_SUBRESOURCES else 404
        return NotServed(status, f"{label}/{sub} is not served. {SERVED}")
    verb = _verb(method, name, sub)
    if isinstance(verb, NotServed):
        return verb
    allowed = served.verbs | ({"log"} if "log" in served.subresources else set())
    if verb not in allowed:
        return NotServed(403, _verb_refusal(verb, label, served, sub))
    if resource == "configmaps" and (namespace, name) != TRAINER_PUBLIC_CONFIGMAP:
        ns, cm = TRAINER_PUBLIC_CONFIGMAP
        return NotServed(403, f"configmaps are not served, except {ns}/{cm}. {SERVED}")
    params = _params(verb, query)
    if isinstance(params, NotServed):
        return params
    selector, follow, container, tail_lines = params
    return Route(
        verb=_VERBS[verb],
        group=group,
        version=version,
        resource=resource,
        kind=served.kind,
        namespace=namespace,
        name=name,
        subresource=sub,
        follow=follow,
        label_selector=selector,
        container=container,
        tail_lines=tail_lines,
        read_only=served.read_only,
    )


def _names_problem(namespace: str | None, name: str | None) -> str | None:
    if namespace is not None and not (len(namespace) <= 63 and _DNS_LABEL.fullmatch(namespace)):
        return f"{namespace!r} is not a valid namespace name (a DNS label of up to 63 characters)."
    if name is not None and not (len(name) <= 253 and _DNS_SUBDOMAIN.fullmatch(name)):
        return f"{name!r} is not a valid object name (a DNS subdomain of up to 253 characters)."
    return None


def _verb(method: str, name: str | None, sub: str | None) -> str | NotServed:
    """The Kubernetes verb of a method on a collection, an object or a subresource."""
    if sub == "log":
        return "log" if method == "GET" else "write"
    if sub is not None:
        return "get" if method == "GET" else "write"
    table = _METHOD_VERBS_COLLECTION if name is None else _METHOD_VERBS_ITEM
    verb = table.get(method)
    if verb is None:
        where = "a collection" if name is None else "a named object"
        return NotServed(405, f"{method} on {where} is not a Kubernetes API call.")
    return verb


def _verb_refusal(verb: str, label: str, served: _Resource, sub: str | None) -> str:
    target = f"{label}/{sub}" if sub else label
    allowed = ", ".join(sorted(served.verbs))
    reason = ""
    if sub is not None and verb == "write":
        return f"writes to {target} are not served; it is read-only here. {SERVED}"
    if verb == "patch":
        reason = (
            " Runs are admitted by the service, so their specs are not changed in place; delete and create."
        )
    elif verb == "create" and label == "workflows.argoproj.io":
        reason = " Submit workflows with Hera through the Argo-compatible endpoint."
    elif served.read_only:
        reason = f" {label} are read-only here."
    return f"{verb} on {target} is not served (served: {allowed}).{reason} {SERVED}"


def _params(
    verb: str, query: Mapping[str, Sequence[str]]
) -> tuple[str | None, bool, str | None, int | None] | NotServed:
    """The query parameters a Route carries, checked; refusals for those that would change the answer."""
    first = {key: values[0] for key, values in query.items() if values}
    for key, why in _REFUSED_PARAMS.items():
        if key in first:
            return NotServed(403, f"{key}: {why}. {SERVED}")
    watch = _bool(first.get("watch"))
    if watch is None:
        return NotServed(400, f"watch: {first['watch']!r} is not a boolean.")
    # No job SDK watches: waits poll with GET and logs follow with ?follow. A watch would be a
    # long-lived stream of other objects' changes through the service, so it is refused.
    if watch:
        return NotServed(403, f"watch is not served; poll with get or list. {SERVED}")
    selector = first.get("labelSelector") if verb == "list" else None
    if selector is not None:
        problem = label_selector_problem(selector)
        if problem is not None:
            return NotServed(400, f"labelSelector {selector[:200]!r}: {problem}.")
    if verb != "log":
        return selector, False, None, None
    for key in _REFUSED_LOG_PARAMS:
        if key in first:
            return NotServed(403, f"{key} is not served on pods/log; follow, container and tailLines are.")
    for key in ("previous", "timestamps"):
        flag = _bool(first.get(key))
        if flag is None:
            return NotServed(400, f"{key}: {first[key]!r} is not a boolean.")
        if flag:
            return NotServed(403, f"{key} is not served on pods/log; follow, container and tailLines are.")
    follow = _bool(first.get("follow"))
    if follow is None:
        return NotServed(400, f"follow: {first['follow']!r} is not a boolean.")
    container = first.get("container") or None
    if container is not None and not (len(container) <= 63 and _DNS_LABEL.fullmatch(container)):
        return NotServed(400, f"container: {container[:100]!r} is not a container name.")
    tail_lines: int | None = None
    if "tailLines" in first:
        text = first["tailLines"]
        if not _INTEGER.fullmatch(text) or len(text) > 19 or int(text) < 0:
            return NotServed(400, f"tailLines: {text[:40]!r} is not a whole number of lines.")
        tail_lines = int(text)
    return None, follow, container, tail_lines


def _bool(text: str | None) -> bool | None:
    """Go's strconv.ParseBool, as the apiserver reads booleans; absent or empty is False.

    The kubernetes Python client sends Python's spelling, "True", for follow=True.
    """
    if text is None or text == "" or text in _FALSE:
        return False
    if text in _TRUE:
        return True
    return None


# ---------------------------------------------------------------------------------------------
# Label selectors, checked for syntax as the apiserver parses them (apimachinery labels/selector.go)
# ---------------------------------------------------------------------------------------------

_SPECIAL = "=!(),<>"
_OPERATORS = ("==", "!=", "=", "!", "(", ")", ",", "<", ">")
_SET_OPERATORS = ("in", "notin")


class _SelectorError(ValueError):
    """A selector the apiserver would refuse."""


def label_selector_problem(selector: str) -> str | None:
    """Why a labelSelector would be refused, or None when it parses.

    Equality ("a=b", "a==b", "a!=b"), set-based ("a in (b,c)", "a notin (b)"), existence ("a", "!a")
    and the apiserver's "a>1" and "a<1" are accepted; requirements are joined by commas.
    """
    if len(selector) > MAX_SELECTOR_LENGTH:
        return f"longer than {MAX_SELECTOR_LENGTH} characters"
    try:
        _parse_selector(_lex(selector))
    except _SelectorError as exc:
        return str(exc)
    return None


def _lex(text: str) -> list[str]:
    """Tokens: operators, and identifiers (runs of anything but whitespace and operator characters)."""
    tokens: list[str] = []
    pos = 0
    while pos < len(text):
        char = text[pos]
        if char.isspace():
            pos += 1
        elif char in _SPECIAL:
            operator = next(op for op in _OPERATORS if text.startswith(op, pos))
            tokens.append(operator)
            pos += len(operator)
        else:
            start = pos
            while pos < len(text) and not text[pos].isspace() and text[pos] not in _SPECIAL:
                pos += 1
            tokens.append(text[start:pos])
    return tokens


def _is_identifier(token: str | None) -> bool:
    return token is not None and token not in _OPERATORS


def _parse_selector(tokens: Sequence[str]) -> None:
    pos = 0
    if not tokens:
        return
    while True:
        pos = _requirement(tokens, pos)
        if pos == len(tokens):
            return
        if tokens[pos] != ",":
            raise _SelectorError(f"found '{tokens[pos]}', expected ',' or the end")
        pos += 1
        if pos == len(tokens):
            raise _SelectorError("a requirement must follow ','")


def _requirement(tokens: Sequence[str], pos: int) -> int:
    """Check one requirement starting at pos; give the position after it."""
    negated = tokens[pos] == "!"
    if negated:
        pos += 1
    key = tokens[pos] if pos < len(tokens) else None
    if key is None or not _is_identifier(key):
        raise _SelectorError(f"found '{key or 'the end'}', expected a label key")
    _check_key(key)
    pos += 1
    following = tokens[pos] if pos < len(tokens) else None
    if negated or following in (None, ","):
        if negated and following not in (None, ","):
            raise _SelectorError(f"'!{key}' must stand alone, found '{following}'")
        return pos
    operator = following
    pos += 1
    if operator in _SET_OPERATORS:
        return _set_values(tokens, pos)
    if operator not in ("=", "==", "!=", "<", ">"):
        raise _SelectorError(f"found '{operator}', expected one of in, notin, =, ==, !=, <, >")
    value = tokens[pos] if pos < len(tokens) else None
    if value is None or not _is_identifier(value):
        # "a=" selects an empty value, as in the apiserver.
        if operator in ("<", ">"):
            raise _SelectorError(f"'{key} {operator}' needs an integer")
        return pos
    if operator in ("<", ">") and not _INTEGER.fullmatch(value):
        raise _SelectorError(f"'{key} {operator} {value}': the value must be an integer")
    if operator not in ("<", ">"):
        _check_value(value)
    return pos + 1


def _set_values(tokens: Sequence[str], pos: int) -> int:
    if pos >= len(tokens) or tokens[pos] != "(":
        raise _SelectorError("'in' and 'notin' need a list of values in parentheses")
    pos += 1
    expect_value = True
    while pos < len(tokens):
        token = tokens[pos]
        if token == ")":
            return pos + 1
        if token == ",":
            expect_value = True
        elif _is_identifier(token) and expect_value:
            _check_value(token)
            expect_value = False
        else:
            raise _SelectorError(f"found '{token}' in a list of values")
        pos += 1
    raise _SelectorError("a list of values is missing its ')'")


def _check_key(key: str) -> None:
    """A qualified name: an optional DNS subdomain prefix and '/', then a name of up to 63 characters."""
    prefix, slash, name = key.rpartition("/")
    if slash and not (0 < len(prefix) <= 253 and _DNS_SUBDOMAIN.fullmatch(prefix)):
        raise _SelectorError(f"'{key[:100]}' has an invalid prefix")
    if not (0 < len(name) <= 63 and _LABEL_NAME.fullmatch(name)):
        raise _SelectorError(f"'{key[:100]}' is not a valid label key")


def _check_value(value: str) -> None:
    if not (len(value) <= 63 and _LABEL_NAME.fullmatch(value)):
        raise _SelectorError(f"'{value[:100]}' is not a valid label value")
