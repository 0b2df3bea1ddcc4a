"""The objects of one user's run namespace in one cluster, built from the operator's settings."""

from __future__ import annotations

import hashlib
import ipaddress
import re
import string
from dataclasses import dataclass
from typing import Any

from spawner.core.labels import (
    GPU,
    HUB_LABEL,
    KATIB_INJECTION_LABEL,
    NAMESPACE_NAME_LABEL,
    POD_SECURITY_AUDIT,
    POD_SECURITY_ENFORCE,
    POD_SECURITY_WARN,
    RUNS_USER_ANNOTATION,
    RUNS_USER_LABEL,
    label_value_problem,
)
from spawner.core.quantity import QuantityError, parse_quantity

__all__ = [
    "LIMIT_RANGE_NAME",
    "NETWORK_POLICY_NAME",
    "QUOTA_NAME",
    "RUNNER_ROLE_NAME",
    "USER_BINDING_NAME",
    "Manifest",
    "RunNamespace",
    "RunNamespaceSettings",
    "build",
    "impersonated_user",
    "namespace_name",
    "settings_problems",
    "user_slug",
]

Manifest = dict[str, Any]

# The names of the objects inside the namespace. They are fixed, so the service finds them again.
QUOTA_NAME = "hybridhub-runs"
LIMIT_RANGE_NAME = "hybridhub-runs"
NETWORK_POLICY_NAME = "hybridhub-runs"
USER_BINDING_NAME = "hybridhub-user"
RUNNER_ROLE_NAME = "hybridhub-runner"

_USER_FIELD = "{user}"
_USERNAME_FIELD = "{username}"
_DNS_LABEL_MAX = 63
# kubespawner's slug hash: 8 hex digits after "---", with at least one character of name before it
_HASH_LENGTH = 8
_SLUG_MIN = _HASH_LENGTH + 4
_NON_ALNUM = re.compile(r"[^a-z0-9]+")
_OBJECT_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_NAME_PART = re.compile(r"^[-a-z0-9]*$")
_EVERYWHERE = ("0.0.0.0/0", "::/0")


@dataclass(frozen=True)
class RunNamespaceSettings:
    """What an operator chooses for every user's run namespace in one cluster."""

    # The hub instance that owns the namespace, as HybridSpawner.hub_instance names it. Two hubs that
    # share a cluster then never take or remove each other's namespaces.
    hub_instance: str = "hybridhub"
    # The namespace's name; "{user}" becomes the hub user name made a DNS label as KubeSpawner does.
    name_template: str = "hybridhub-runs-{user}"
    # The name the cluster knows the hub user by when the service impersonates it. The default has a
    # prefix of its own, so a hub user named like a cluster identity ("system:kube-scheduler", or an
    # SSO user that other RoleBindings already name) never gets that identity's rights. Sites whose
    # cluster users are the hub users may set plain "{username}".
    impersonate_template: str = "hybridhub:user:{username}"
    # How many GPUs the user's run pods may request at once in this cluster.
    gpu_quota: int = 8
    # How many pods the user's runs may have at once that have not finished; None means no limit.
    pod_quota: int | None = 200
    # What a container that names no request gets, so quotas and the scheduler see real numbers.
    default_cpu_request: str = "500m"
    default_memory_request: str = "1Gi"
    # The ClusterRole bound to the user in the namespace: Kubernetes' built-in "edit" covers what the
    # SDKs do (runs, their pods and logs) and leaves quotas, limits and RBAC to the service.
    user_cluster_role: str = "edit"
    # The ServiceAccount Argo's executor runs as in the namespace's workflow pods.
    runner_service_account: str = "hybridhub-runner"
    # The ClusterRole the runner account is bound to in each run namespace: what Argo's executor needs
    # (the manifests ship it). A Role per namespace would need the service to hold those rules itself.
    runner_cluster_role: str = "hybridhub-runner"
    # Address ranges run pods may not reach, typically the clusters' pod ranges where notebooks run.
    # Empty means run pods may send anywhere; ingress is limited to the namespace either way.
    blocked_egress_cidrs: tuple[str, ...] = ()
    # Namespaces run pods may still reach when egress is limited: Katib's metrics collector reports to
    # its DB manager in "kubeflow", whose pod address is inside the blocked pod range.
    egress_namespaces: tuple[str, ...] = ("kubeflow",)


@dataclass(frozen=True)
class RunNamespace:
    """One user's run namespace: its name, who the service acts as there, and its objects."""

    name: str
    user: str
    impersonate: str
    # In the order they are created: the namespace first, then what lives in it.
    objects: tuple[Manifest, ...]


def settings_problems(settings: RunNamespaceSettings) -> list[str]:
    """What is wrong with ``settings``, each naming the field; empty when they are usable."""
    problems: list[str] = []
    template = settings.name_template
    if template.count(_USER_FIELD) != 1:
        problems.append(f"name_template: must contain {_USER_FIELD} exactly once, not {template!r}")
    else:
        fixed = template.replace(_USER_FIELD, "")
        if not _NAME_PART.match(fixed):
            problems.append(
                f"name_template: outside {_USER_FIELD} only lowercase letters, digits and '-' are allowed, "
                f"not {template!r}"
            )
        elif _DNS_LABEL_MAX - len(fixed) < _SLUG_MIN:
            problems.append(
                f"name_template: leaves {_DNS_LABEL_MAX - len(fixed)} characters of 63 for the user, "
                f"fewer than {_SLUG_MIN}"
            )
        elif not template.startswith(_USER_FIELD) and not template[0].isalpha():
            problems.append(f"name_template: must begin with a letter or {_USER_FIELD}, not {template!r}")
    if _USERNAME_FIELD not in settings.impersonate_template:
        problems.append(
            f"impersonate_template: must contain {_USERNAME_FIELD}, not {settings.impersonate_template!r}"
        )
    elif settings.impersonate_template.startswith("system:"):
        problems.append("impersonate_template: must not begin with 'system:', which Kubernetes reserves")
    problem = label_value_problem(settings.hub_instance)
    if problem or not settings.hub_instance:
        problems.append(f"hub_instance: {problem or 'must not be empty'}")
    if settings.gpu_quota < 0:
        problems.append(f"gpu_quota: must be 0 or more, not {settings.gpu_quota}")
    if settings.pod_quota is not None and settings.pod_quota < 1:
        problems.append(f"pod_quota: must be 1 or more, or None, not {settings.pod_quota}")
    for field in ("default_cpu_request", "default_memory_request"):
        value = getattr(settings, field)
        try:
            amount = parse_quantity(value)
        except QuantityError:
            problems.append(f"{field}: not a Kubernetes quantity: {value!r}")
            continue
        if amount <= 0:
            problems.append(f"{field}: must be more than 0, not {value!r}")
    for field in ("user_cluster_role", "runner_service_account", "runner_cluster_role"):
        value = getattr(settings, field)
        if not _OBJECT_NAME.match(value) or len(value) > _DNS_LABEL_MAX:
            problems.append(f"{field}: must be a DNS label, not {value!r}")
    for i, namespace in enumerate(settings.egress_namespaces):
        if not _OBJECT_NAME.match(namespace) or len(namespace) > _DNS_LABEL_MAX:
            problems.append(f"egress_namespaces[{i}]: must be a namespace name, not {namespace!r}")
    for i, cidr in enumerate(settings.blocked_egress_cidrs):
        try:
            ipaddress.ip_network(cidr)
        except ValueError:
            problems.append(f"blocked_egress_cidrs[{i}]: not an address range: {cidr!r}")
    return problems


def user_slug(name: str, max_length: int = _DNS_LABEL_MAX) -> str:
    """``name`` as a DNS label by KubeSpawner's ``safe_slug`` rule, so it matches the hub's names.

    A name that already is a valid label is kept; any other gets a readable part and a hash, so two
    names never share a slug.
    """
    if max_length < _SLUG_MIN:
        raise ValueError(f"max_length: must be at least {_SLUG_MIN}, not {max_length}")
    if "--" not in name and _OBJECT_NAME.match(name) and len(name) <= max_length:
        return name
    digest = hashlib.sha256(name.encode("utf8")).hexdigest()[:_HASH_LENGTH]
    room = max_length - (_HASH_LENGTH + 3)
    safe = _NON_ALNUM.sub("-", name.lower()).lstrip("-")[:room].rstrip("-")
    if safe and safe[0] not in string.ascii_lowercase:
        safe = "x-" + safe[: room - 2]
    return f"{safe or 'x'}---{digest}"


def namespace_name(settings: RunNamespaceSettings, user: str) -> str:
    """The name of ``user``'s run namespace, 63 characters at most."""
    room = _DNS_LABEL_MAX - len(settings.name_template.replace(_USER_FIELD, ""))
    return settings.name_template.replace(_USER_FIELD, user_slug(user, room))


def impersonated_user(settings: RunNamespaceSettings, user: str) -> str:
    """The user name the service sends in ``Impersonate-User`` for ``user``."""
    return settings.impersonate_template.replace(_USERNAME_FIELD, user)


def build(settings: RunNamespaceSettings, user: str) -> RunNamespace:
    """Every object of ``user``'s run namespace; raises ValueError naming the field when it cannot."""
    problems = settings_problems(settings)
    if not user:
        problems.append("user: must not be empty")
    if problems:
        raise ValueError("; ".join(problems))
    name = namespace_name(settings, user)
    impersonate = impersonated_user(settings, user)
    labels = {
        HUB_LABEL: settings.hub_instance,
        RUNS_USER_LABEL: user_slug(user),
    }
    objects = (
        _namespace(name, user, labels),
        _quota(name, labels, settings),
        _limit_range(name, labels, settings),
        _user_binding(name, labels, settings, impersonate),
        _runner_account(name, labels, settings),
        _runner_binding(name, labels, settings),
        _network_policy(name, labels, settings),
    )
    return RunNamespace(name=name, user=user, impersonate=impersonate, objects=objects)


def _meta(name: str, namespace: str, labels: dict[str, str]) -> dict[str, Any]:
    return {"name": name, "namespace": namespace, "labels": dict(labels)}


def _namespace(name: str, user: str, labels: dict[str, str]) -> Manifest:
    # baseline is enforced because it refuses what breaks out of a pod (privileged, host namespaces,
    # hostPath) while ordinary training images, which run as root, still start. restricted is only
    # warned and audited, so users see what would make their pods safer.
    return {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {
            "name": name,
            "labels": {
                **labels,
                POD_SECURITY_ENFORCE: "baseline",
                POD_SECURITY_WARN: "restricted",
                POD_SECURITY_AUDIT: "restricted",
                KATIB_INJECTION_LABEL: "enabled",
            },
            "annotations": {RUNS_USER_ANNOTATION: user},
        },
    }


def _quota(name: str, labels: dict[str, str], settings: RunNamespaceSettings) -> Manifest:
    hard: dict[str, str] = {f"requests.{GPU}": str(settings.gpu_quota)}
    if settings.pod_quota is not None:
        hard["pods"] = str(settings.pod_quota)
    return {
        "apiVersion": "v1",
        "kind": "ResourceQuota",
        "metadata": _meta(QUOTA_NAME, name, labels),
        "spec": {"hard": hard},
    }


def _limit_range(name: str, labels: dict[str, str], settings: RunNamespaceSettings) -> Manifest:
    # Only default requests, no default limits: a default memory limit would kill jobs that the user
    # sized by hand for a node, and the quota counts requests.
    return {
        "apiVersion": "v1",
        "kind": "LimitRange",
        "metadata": _meta(LIMIT_RANGE_NAME, name, labels),
        "spec": {
            "limits": [
                {
                    "type": "Container",
                    "defaultRequest": {
                        "cpu": settings.default_cpu_request,
                        "memory": settings.default_memory_request,
                    },
                }
            ]
        },
    }


def _user_binding(
    name: str, labels: dict[str, str], settings: RunNamespaceSettings, impersonate: str
) -> Manifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(USER_BINDING_NAME, name, labels),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": settings.user_cluster_role,
        },
        "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": impersonate}],
    }


def _runner_account(name: str, labels: dict[str, str], settings: RunNamespaceSettings) -> Manifest:
    return {
        "apiVersion": "v1",
        "kind": "ServiceAccount",
        "metadata": _meta(settings.runner_service_account, name, labels),
    }


def _runner_binding(name: str, labels: dict[str, str], settings: RunNamespaceSettings) -> Manifest:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": _meta(RUNNER_ROLE_NAME, name, labels),
        "roleRef": {
            "apiGroup": "rbac.authorization.k8s.io",
            "kind": "ClusterRole",
            "name": settings.runner_cluster_role,
        },
        "subjects": [{"kind": "ServiceAccount", "name": settings.runner_service_account, "namespace": name}],
    }


def _network_policy(name: str, labels: dict[str, str], settings: RunNamespaceSettings) -> Manifest:
    # Ingress only from the namespace itself: the pods of one run talk to each other (torchrun's
    # master port, Katib's trials), and nothing outside, another user's notebook included, reaches
    # them. Egress is limited only when the operator names ranges to keep run pods out of; then the
    # namespace's own pods and DNS anywhere stay reachable.
    same_namespace: dict[str, Any] = {"podSelector": {}}
    spec: dict[str, Any] = {
        "podSelector": {},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [same_namespace]}],
    }
    if settings.blocked_egress_cidrs:
        dns_ports = [{"protocol": protocol, "port": 53} for protocol in ("UDP", "TCP")]
        spec["policyTypes"] = ["Ingress", "Egress"]
        spec["egress"] = [
            {"to": [same_namespace]},
            {"to": [{"namespaceSelector": {}}], "ports": dns_ports},
            {"to": [_all_but(everything, settings.blocked_egress_cidrs) for everything in _EVERYWHERE]},
        ]
        if settings.egress_namespaces:
            allowed = list(settings.egress_namespaces)
            names = {"key": NAMESPACE_NAME_LABEL, "operator": "In", "values": allowed}
            spec["egress"].append({"to": [{"namespaceSelector": {"matchExpressions": [names]}}]})
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _meta(NETWORK_POLICY_NAME, name, labels),
        "spec": spec,
    }


def _all_but(everything: str, blocked: tuple[str, ...]) -> dict[str, Any]:
    # An ipBlock's exceptions must lie inside its range, so IPv4 and IPv6 ranges go to their own block.
    version = ipaddress.ip_network(everything).version
    inside = [cidr for cidr in blocked if ipaddress.ip_network(cidr, strict=False).version == version]
    block: dict[str, Any] = {"cidr": everything}
    if inside:
        block["except"] = inside
    return {"ipBlock": block}
