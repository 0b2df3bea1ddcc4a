"""What the apiserver does to an object before storing it: validation, defaults, immutable fields."""

from __future__ import annotations

import base64
import binascii
import re
import secrets
from collections.abc import Callable, Mapping
from typing import Any

from .batch.defaults import default_job
from .errors import ApiError, bad_request, invalid
from .quantity import QuantityError, format_bytes, format_cpu, parse_quantity
from .resources import ResourceType

__all__ = [
    "canonical_quantity",
    "generate_name",
    "prepare_create",
    "prepare_update",
    "qos_class",
    "validate_name",
]

_DNS1123_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"  # apimachinery's utilrand alphabet
_LABEL_NAMES = {"Namespace", "Service"}  # kinds whose names must be DNS-1123 labels
# Fields of a pod's spec that an update may change (everything else is immutable).
_POD_MUTABLE_SPEC = ("activeDeadlineSeconds", "tolerations", "terminationGracePeriodSeconds")


def generate_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(_NAME_ALPHABET) for _ in range(5))


def validate_name(rt: ResourceType, name: str) -> None:
    """Raise 422 Invalid when ``name`` is not a valid object name for ``rt``."""
    if not name:
        raise invalid(rt.kind, "", [("metadata.name", "Required value: name or generateName is required")])
    if rt.kind == "Event":  # event names carry a dot and a hex suffix; anything path-safe goes
        if "/" in name or name in {".", ".."}:
            raise invalid(rt.kind, name, [("metadata.name", "Invalid value: may not contain '/'")])
        return
    if rt.group == "rbac.authorization.k8s.io":  # RBAC names are path segments: "system:masters" too
        if "/" in name or "%" in name or name in {".", ".."}:
            raise invalid(rt.kind, name, [("metadata.name", "Invalid value: may not contain '/'")])
        return
    if rt.kind in _LABEL_NAMES:
        ok = len(name) <= 63 and bool(_DNS1123_LABEL.match(name))
        rule = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-'"
    else:
        ok = len(name) <= 253 and bool(_DNS1123_SUBDOMAIN.match(name))
        rule = (
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
            "'-' or '.', and must start and end with an alphanumeric character"
        )
    if not ok:
        raise invalid(rt.kind, name, [("metadata.name", f'Invalid value: "{name}": {rule}')])


def _check_type(rt: ResourceType, obj: Mapping[str, Any]) -> None:
    api_version, kind = obj.get("apiVersion"), obj.get("kind")
    if api_version and api_version != rt.api_version:
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected API "
            f"version ({rt.api_version})"
        )
    if kind and kind != rt.kind:
        raise bad_request(f"the kind in the data ({kind}) does not match the expected kind ({rt.kind})")


def prepare_create(
    rt: ResourceType,
    obj: dict[str, Any],
    namespace: str | None,
    *,
    uid: str,
    now: str,
    allocate: Callable[[str], str] | None = None,
) -> dict[str, Any]:
    """Fill server-set metadata and the kind's defaults into a new object (mutates and returns it).

    ``allocate(kind)`` hands out cluster IPs ("clusterIP") and node ports ("nodePort").
    """
    if not isinstance(obj, dict) or not isinstance(obj.get("metadata", {}), dict):
        raise bad_request("the body of the request was in an unknown format")
    _check_type(rt, obj)
    obj["apiVersion"], obj["kind"] = rt.api_version, rt.kind
    meta = obj.setdefault("metadata", {})
    if rt.namespaced:
        if meta.get("namespace") and meta["namespace"] != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )
        meta["namespace"] = namespace
    else:
        meta.pop("namespace", None)
    if not meta.get("name") and meta.get("generateName"):
        meta["name"] = generate_name(str(meta["generateName"]))
    validate_name(rt, str(meta.get("name") or ""))
    for key in ("labels", "annotations"):
        if meta.get(key) is None:
            meta.pop(key, None)
        elif not isinstance(meta[key], dict) or not all(isinstance(v, str) for v in meta[key].values()):
            raise invalid(rt.kind, meta["name"], [(f"metadata.{key}", "Invalid value: not a map of strings")])
    meta["uid"] = uid
    meta["creationTimestamp"] = now
    for key in ("deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"):
        meta.pop(key, None)
    if not rt.builtin:
        meta["generation"] = 1
    if rt.status_subresource and rt.kind not in {"Node"}:
        obj.pop("status", None)
    defaulter = _CREATE_DEFAULTS.get(rt.kind) if rt.builtin else None
    if defaulter is not None:
        defaulter(obj, now, allocate)
    if rt.group == "batch" and rt.kind == "Job":
        default_job(obj)
    return obj


def prepare_update(
    rt: ResourceType,
    old: Mapping[str, Any],
    new: dict[str, Any],
    subresource: str | None,
) -> dict[str, Any]:
    """Carry server-owned fields from ``old`` into ``new`` and enforce immutability (mutates ``new``)."""
    if not isinstance(new, dict) or not isinstance(new.get("metadata", {}), dict):
        raise bad_request("the body of the request was in an unknown format")
    _check_type(rt, new)
    new["apiVersion"], new["kind"] = rt.api_version, rt.kind
    meta, old_meta = new.setdefault("metadata", {}), old["metadata"]
    name = old_meta["name"]
    if meta.get("name", name) != name:
        raise bad_request(
            f"the name of the object ({meta.get('name')}) does not match the name on the URL ({name})"
        )
    if rt.namespaced and meta.get("namespace", old_meta["namespace"]) != old_meta["namespace"]:
        raise bad_request(
            "the namespace of the provided object does not match the namespace sent on the request"
        )
    if meta.get("uid") and meta["uid"] != old_meta["uid"]:
        raise ApiError(
            409,
            f"Precondition failed: UID in precondition: {meta['uid']}, UID in object meta: {old_meta['uid']}",
            reason="Conflict",
        )
    for key in (
        "name",
        "namespace",
        "uid",
        "creationTimestamp",
        "deletionTimestamp",
        "deletionGracePeriodSeconds",
        "generation",
    ):
        if key in old_meta:
            meta[key] = old_meta[key]
        else:
            meta.pop(key, None)
    if subresource == "status":
        kept = {k: v for k, v in old.items() if k != "status"}
        kept["metadata"] = dict(old_meta)
        kept["status"] = new.get("status", {})
        return kept
    if rt.status_subresource:
        if "status" in old:
            new["status"] = old["status"]
        else:
            new.pop("status", None)
    if rt.kind == "Pod" and rt.builtin:
        _check_pod_update(old, new)
    if not rt.builtin and _spec_of(old) != _spec_of(new):
        meta["generation"] = int(old_meta.get("generation", 1)) + 1
    if rt.kind == "Secret" and rt.builtin:
        _merge_string_data(new, name)
    return new


def _spec_of(obj: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in obj.items() if k not in {"metadata", "status"}}


def _check_pod_update(old: Mapping[str, Any], new: Mapping[str, Any]) -> None:
    def neutral(spec: Mapping[str, Any]) -> dict[str, Any]:
        out = {k: v for k, v in spec.items() if k not in _POD_MUTABLE_SPEC}
        for key in ("containers", "initContainers"):
            out[key] = [{**c, "image": None} for c in spec.get(key) or []]
        return out

    old_spec, new_spec = old.get("spec") or {}, new.get("spec") or {}
    if neutral(old_spec) != neutral(new_spec):
        raise invalid(
            "Pod",
            old["metadata"]["name"],
            [
                (
                    "spec",
                    "Forbidden: pod updates may not change fields other than "
                    "`spec.containers[*].image`,`spec.initContainers[*].image`,"
                    "`spec.activeDeadlineSeconds`,`spec.tolerations` (only additions to existing "
                    "tolerations),`spec.terminationGracePeriodSeconds` (allow it to be set to 1 "
                    "if it was previously negative)",
                )
            ],
        )


# ---------------------------------------------------------------------------- per-kind defaults


def _pod_defaults(pod: dict[str, Any], now: str, allocate: Any) -> None:
    spec = pod.get("spec")
    name = pod["metadata"]["name"]
    if not isinstance(spec, dict) or not spec.get("containers"):
        raise invalid("Pod", name, [("spec.containers", "Required value")])
    _check_node_fields(name, spec)
    spec.setdefault("restartPolicy", "Always")
    spec.setdefault("terminationGracePeriodSeconds", 30)
    spec.setdefault("dnsPolicy", "ClusterFirst")
    spec.setdefault("schedulerName", "default-scheduler")
    spec.setdefault("serviceAccountName", spec.get("serviceAccount") or "default")
    spec.setdefault("serviceAccount", spec["serviceAccountName"])
    spec.setdefault("securityContext", {})
    spec.setdefault("enableServiceLinks", True)
    spec.setdefault("priority", 0)
    spec.setdefault("preemptionPolicy", "PreemptLowerPriority")
    tolerations = spec.setdefault("tolerations", [])
    for key in ("node.kubernetes.io/not-ready", "node.kubernetes.io/unreachable"):
        if not any(t.get("key") == key for t in tolerations):
            tolerations.append(
                {"key": key, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
            )
    seen: set[str] = set()
    for field in ("initContainers", "containers"):
        for index, c in enumerate(spec.get(field) or []):
            if not isinstance(c, dict) or not c.get("name"):
                raise invalid("Pod", name, [(f"spec.{field}[].name", "Required value")])
            if c["name"] in seen:
                raise invalid("Pod", name, [(f"spec.{field}[].name", f'Duplicate value: "{c["name"]}"')])
            seen.add(c["name"])
            if not c.get("image"):
                raise invalid("Pod", name, [(f"spec.{field}[].image", "Required value")])
            c.setdefault(
                "imagePullPolicy",
                "Always"
                if str(c["image"]).endswith(":latest") or ":" not in str(c["image"])
                else "IfNotPresent",
            )
            c.setdefault("terminationMessagePath", "/dev/termination-log")
            c.setdefault("terminationMessagePolicy", "File")
            res = c.setdefault("resources", {})
            _check_resources(name, f"spec.{field}[{index}].resources", res)
            for values in (res.get("limits") or {}, res.get("requests") or {}):
                values.update({r: _canonical(q) for r, q in values.items()})  # 2 -> "2", "1024Mi" -> "1Gi"
            limits = res.get("limits") or {}
            requests = res.setdefault("requests", {}) if limits else res.get("requests", {})
            for rname, qty in limits.items():  # requests default to limits, as the apiserver does
                requests.setdefault(rname, qty)
            if res.get("requests") == {}:
                res.pop("requests")
            for p in c.get("ports") or []:
                p.setdefault("protocol", "TCP")
    pod["status"] = {"phase": "Pending", "qosClass": _qos_class(spec)}


_NATIVE = ("cpu", "memory", "ephemeral-storage", "storage")
_NODE_AFFINITY = "spec.affinity.nodeAffinity"
_ONE_NAME = "must be only one value when `operator` is 'In' or 'NotIn' for node field selector"


def _check_node_fields(pod: str, spec: Mapping[str, Any]) -> None:
    """The apiserver's check of node affinity's matchFields: the key is metadata.name, the operator In
    or NotIn, and there is exactly one value (a list of names takes one term, or one requirement, each)."""
    node = (spec.get("affinity") or {}).get("nodeAffinity") or {}
    if not isinstance(node, Mapping):
        return
    places: list[tuple[str, Any]] = []
    required = node.get("requiredDuringSchedulingIgnoredDuringExecution") or {}
    if isinstance(required, Mapping):
        where = f"{_NODE_AFFINITY}.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms"
        places += [(f"{where}[{i}]", t) for i, t in enumerate(required.get("nodeSelectorTerms") or [])]
    preferred = node.get("preferredDuringSchedulingIgnoredDuringExecution") or []
    where = f"{_NODE_AFFINITY}.preferredDuringSchedulingIgnoredDuringExecution"
    places += [
        (f"{where}[{i}].preference", t.get("preference"))
        for i, t in enumerate(preferred)
        if isinstance(t, Mapping)
    ]
    for at, term in places:
        if not isinstance(term, Mapping):
            continue
        for j, req in enumerate(term.get("matchFields") or []):
            if not isinstance(req, Mapping):
                continue
            fld = f"{at}.matchFields[{j}]"
            key, operator = req.get("key"), req.get("operator")
            if key != "metadata.name":
                problem = (f"{fld}.key", f'Invalid value: "{key}": not a valid field selector key')
            elif operator not in ("In", "NotIn"):
                problem = (f"{fld}.operator", f'Invalid value: "{operator}": not a valid selector operator')
            elif len(req.get("values") or []) != 1:
                problem = (f"{fld}.values", f"Required value: {_ONE_NAME}")
            else:
                continue
            raise invalid("Pod", pod, [problem])


def _check_resources(pod: str, where: str, res: Any) -> None:
    """The apiserver's resource validation: quantities, extended resources whole and not overcommitted."""
    if not isinstance(res, dict):
        raise invalid("Pod", pod, [(where, "Invalid value: must be an object")])
    parsed: dict[str, dict[str, Any]] = {}
    for kind in ("limits", "requests"):
        values = res.get(kind) or {}
        if not isinstance(values, dict):
            raise invalid("Pod", pod, [(f"{where}.{kind}", "Invalid value: must be a map")])
        for rname, qty in values.items():
            fld = f"{where}.{kind}[{rname}]"
            try:
                value = parse_quantity(qty)
            except QuantityError as exc:
                raise invalid("Pod", pod, [(fld, f'Invalid value: "{qty}": {exc}')]) from exc
            if value < 0:
                raise invalid(
                    "Pod", pod, [(fld, f'Invalid value: "{qty}": must be greater than or equal to 0')]
                )
            extended = rname not in _NATIVE and not rname.startswith("hugepages-")
            if extended and value != value.to_integral_value():
                raise invalid("Pod", pod, [(fld, f'Invalid value: "{qty}": must be an integer')])
            parsed.setdefault(kind, {})[rname] = value
    limits, requests = parsed.get("limits", {}), parsed.get("requests", {})
    for rname, want in requests.items():
        shown = f'Invalid value: "{res["requests"][rname]}"'
        limit = res.get("limits", {}).get(rname)
        extended = rname not in _NATIVE and not rname.startswith("hugepages-")
        problem = None
        if rname in limits and extended and want != limits[rname]:
            problem = f"{shown}: must be equal to {rname} limit of {limit}"
        elif rname in limits and want > limits[rname]:
            problem = f"{shown}: must be less than or equal to {rname} limit of {limit}"
        elif extended and rname not in limits:
            problem = "Required value: Limit must be set for non overcommitable resources"
        if problem:
            raise invalid("Pod", pod, [(f"{where}.requests[{rname}]", problem)])


def _canonical(qty: Any) -> str:
    """A quantity as the apiserver writes it back: a string in the canonical form of its format."""
    text = str(qty).strip()
    if re.search(r"[eE][-+]?[0-9]+$", text):
        return text  # DecimalExponent: rare in pod specs, kept as given
    value = parse_quantity(qty)
    return format_bytes(value) if text.endswith("i") else format_cpu(value)


def canonical_quantity(qty: Any) -> str:
    """A quantity as the apiserver writes it back (admission plugins that set quantities use it)."""
    return _canonical(qty)


def qos_class(spec: Mapping[str, Any]) -> str:
    """The pod's QoS class, for admission plugins that change its resources (LimitRanger)."""
    return _qos_class(spec)


def _qos_class(spec: Mapping[str, Any]) -> str:
    """ComputePodQOS: only cpu and memory count (a pod asking for GPUs alone is BestEffort)."""
    containers = list(spec.get("containers") or []) + list(spec.get("initContainers") or [])
    totals: dict[str, dict[str, Any]] = {"requests": {}, "limits": {}}
    guaranteed = True
    for c in containers:
        for kind, total in totals.items():
            found = set()
            for rname, qty in ((c.get("resources") or {}).get(kind) or {}).items():
                if rname in ("cpu", "memory") and parse_quantity(qty) > 0:
                    found.add(rname)
                    total[rname] = total.get(rname, 0) + parse_quantity(qty)
            if kind == "limits" and found != {"cpu", "memory"}:
                guaranteed = False
    if not totals["requests"] and not totals["limits"]:
        return "BestEffort"
    return "Guaranteed" if guaranteed and totals["requests"] == totals["limits"] else "Burstable"


def _namespace_defaults(ns: dict[str, Any], now: str, allocate: Any) -> None:
    labels = ns["metadata"].setdefault("labels", {})
    labels["kubernetes.io/metadata.name"] = ns["metadata"]["name"]
    ns["spec"] = {"finalizers": ["kubernetes"]}
    ns["status"] = {"phase": "Active"}


def _service_defaults(svc: dict[str, Any], now: str, allocate: Any) -> None:
    spec = svc.setdefault("spec", {})
    name = svc["metadata"]["name"]
    spec.setdefault("type", "ClusterIP")
    spec.setdefault("sessionAffinity", "None")
    if spec["type"] not in {"ClusterIP", "NodePort", "LoadBalancer", "ExternalName"}:
        raise invalid("Service", name, [("spec.type", f'Unsupported value: "{spec["type"]}"')])
    if spec["type"] != "ExternalName":
        if spec.get("clusterIP") not in ("None",) and allocate is not None:
            spec["clusterIP"] = allocate("clusterIP")
        spec["clusterIPs"] = [spec["clusterIP"]] if spec.get("clusterIP") else []
        spec.setdefault("ipFamilies", ["IPv4"])
        spec.setdefault("ipFamilyPolicy", "SingleStack")
        spec.setdefault("internalTrafficPolicy", "Cluster")
    for p in spec.get("ports") or []:
        if "port" not in p:
            raise invalid("Service", name, [("spec.ports[].port", "Required value")])
        p.setdefault("protocol", "TCP")
        p.setdefault("targetPort", p["port"])
        if spec["type"] in {"NodePort", "LoadBalancer"} and not p.get("nodePort") and allocate:
            p["nodePort"] = int(allocate("nodePort"))
    if spec["type"] in {"NodePort", "LoadBalancer"}:
        spec.setdefault("externalTrafficPolicy", "Cluster")
    svc["status"] = {"loadBalancer": {}}


def _merge_string_data(secret: dict[str, Any], name: str) -> None:
    string_data = secret.pop("stringData", None) or {}
    data = secret.get("data") or {}
    for key, value in data.items():
        try:
            base64.b64decode(str(value), validate=True)
        except (binascii.Error, ValueError) as exc:
            raise invalid("Secret", name, [(f"data[{key}]", "Invalid value: illegal base64 data")]) from exc
    for key, value in string_data.items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    if data:
        secret["data"] = data


def _secret_defaults(secret: dict[str, Any], now: str, allocate: Any) -> None:
    secret.setdefault("type", "Opaque")
    _merge_string_data(secret, secret["metadata"]["name"])


def _pvc_defaults(pvc: dict[str, Any], now: str, allocate: Any) -> None:
    spec = pvc.get("spec")
    name = pvc["metadata"]["name"]
    if not isinstance(spec, dict) or not spec.get("accessModes"):
        raise invalid("PersistentVolumeClaim", name, [("spec.accessModes", "Required value")])
    storage = ((spec.get("resources") or {}).get("requests") or {}).get("storage")
    if not storage:
        raise invalid("PersistentVolumeClaim", name, [("spec.resources[storage]", "Required value")])
    spec.setdefault("volumeMode", "Filesystem")
    pvc["status"] = {"phase": "Pending"}


def _event_defaults(event: dict[str, Any], now: str, allocate: Any) -> None:
    event.setdefault("type", "Normal")
    event.setdefault("count", 1)
    event.setdefault("firstTimestamp", event.get("lastTimestamp") or now)
    event.setdefault("lastTimestamp", event["firstTimestamp"])
    event.setdefault("source", {})
    event.setdefault("reportingComponent", event["source"].get("component", ""))
    event.setdefault("reportingInstance", "")
    if not event.get("involvedObject"):
        raise invalid("Event", event["metadata"]["name"], [("involvedObject", "Required value")])


_CREATE_DEFAULTS: dict[str, Callable[[dict[str, Any], str, Any], None]] = {
    "Pod": _pod_defaults,
    "Namespace": _namespace_defaults,
    "Service": _service_defaults,
    "Secret": _secret_defaults,
    "PersistentVolumeClaim": _pvc_defaults,
    "Event": _event_defaults,
}
