"""The service's checks of one pod spec or container a submitted run would produce, and its GPUs."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from spawner.core.labels import GPU, PRODUCT_LABEL
from spawner.core.quantity import QuantityError, parse_quantity

__all__ = [
    "BASELINE_CAPABILITIES",
    "MAX_PODS",
    "PodGpus",
    "Refused",
    "check_container",
    "check_pod_spec",
    "check_pod_template",
    "check_service_account",
    "check_volumes",
    "container_gpus",
    "flag",
    "items",
    "mapping",
    "node_product",
    "optional_mapping",
    "text",
    "whole",
]

# What Pod Security "baseline" lets a container add. Anything else is a refusal, as a baseline
# namespace's admission would refuse it.
BASELINE_CAPABILITIES = frozenset(
    {
        "AUDIT_WRITE",
        "CHOWN",
        "DAC_OVERRIDE",
        "FOWNER",
        "FSETID",
        "KILL",
        "MKNOD",
        "NET_BIND_SERVICE",
        "SETFCAP",
        "SETGID",
        "SETPCAP",
        "SETUID",
        "SYS_CHROOT",
    }
)
_HOST_NAMESPACES = ("hostNetwork", "hostPID", "hostIPC")
_CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")


class Refused(Exception):
    """A check failed: ``field`` is where, ``reason`` is the sentence a user reads."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


# --------------------------------------------------------------------------- readers
# Submitted JSON can hold anything where an object is expected. These readers turn the wrong type into
# a refusal naming the field, so no check ever raises on garbage.


def _kind_of(value: object) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list | tuple):
        return "a list"
    return "an object" if isinstance(value, Mapping) else type(value).__name__


def mapping(value: object, field: str) -> Mapping[str, object]:
    """``value`` as an object with string keys, or a refusal naming ``field``."""
    if value is None:
        raise Refused(field, "is missing; it must be an object")
    if not isinstance(value, Mapping):
        raise Refused(field, f"must be an object, not {_kind_of(value)}")
    if not all(isinstance(k, str) for k in value):
        raise Refused(field, "must be an object with string keys")
    return value


def optional_mapping(value: object, field: str) -> Mapping[str, object]:
    """Like ``mapping``, with a missing or null value read as an empty object."""
    return {} if value is None else mapping(value, field)


def items(value: object, field: str) -> Sequence[object]:
    """``value`` as a list; missing or null is an empty list."""
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise Refused(field, f"must be a list, not {_kind_of(value)}")
    return value


def flag(value: object, field: str) -> bool:
    """``value`` as a boolean; missing or null is false."""
    if value is None:
        return False
    if not isinstance(value, bool):
        raise Refused(field, f"must be true or false, not {_kind_of(value)}")
    return value


def text(value: object, field: str) -> str | None:
    """``value`` as a string; missing or null is None."""
    if value is None:
        return None
    if not isinstance(value, str):
        raise Refused(field, f"must be a string, not {_kind_of(value)}")
    return value


# --------------------------------------------------------------------------- GPUs


def _gpu_count(value: object, field: str) -> int:
    # The SDKs write GPUs as quantity strings ("2"), ints, or JSON floats (TrainerClient's 4.0).
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise Refused(field, f"GPUs must be a whole number, not {_kind_of(value)}")
    try:
        amount = parse_quantity(value)
    except QuantityError:
        raise Refused(field, f"GPUs must be a whole number, not {value!r}") from None
    if amount < 0 or amount != amount.to_integral_value():
        raise Refused(field, f"GPUs must be a whole number, not {value!r}")
    return int(amount)


def container_gpus(resources: object, field: str) -> int:
    """The GPUs one container's ``resources`` ask for. Kubernetes wants an extended resource's request
    equal to its limit and takes the limit when the request is missing, so a mismatch is refused."""
    res = optional_mapping(resources, field)
    requests = optional_mapping(res.get("requests"), f"{field}.requests")
    limits = optional_mapping(res.get("limits"), f"{field}.limits")
    request = requests.get(GPU)
    limit = limits.get(GPU)
    wanted = None if request is None else _gpu_count(request, f"{field}.requests[{GPU!r}]")
    cap = None if limit is None else _gpu_count(limit, f"{field}.limits[{GPU!r}]")
    if wanted is not None and cap is not None and wanted != cap:
        raise Refused(
            f"{field}.requests[{GPU!r}]",
            f"GPU requests ({wanted}) must equal GPU limits ({cap}), as Kubernetes requires",
        )
    return cap if cap is not None else wanted or 0


# --------------------------------------------------------------------------- containers and pods


@dataclass(frozen=True)
class PodGpus:
    """What one pod asks of the GPU gang: its GPUs, and the product its node selector names."""

    gpus: int
    product: str | None = None


def check_container(container: object, field: str) -> int:
    """Refuse what Pod Security "baseline" refuses in one container, and host ports; return its GPUs."""
    c = mapping(container, field)
    sc_field = f"{field}.securityContext"
    sc = optional_mapping(c.get("securityContext"), sc_field)
    if flag(sc.get("privileged"), f"{sc_field}.privileged"):
        raise Refused(f"{sc_field}.privileged", "privileged containers are not allowed")
    if flag(sc.get("allowPrivilegeEscalation"), f"{sc_field}.allowPrivilegeEscalation"):
        raise Refused(f"{sc_field}.allowPrivilegeEscalation", "privilege escalation is not allowed")
    caps = optional_mapping(sc.get("capabilities"), f"{sc_field}.capabilities")
    for i, cap in enumerate(items(caps.get("add"), f"{sc_field}.capabilities.add")):
        where = f"{sc_field}.capabilities.add[{i}]"
        name = text(cap, where)
        if name not in BASELINE_CAPABILITIES:
            raise Refused(where, f"adding capability {name!r} is not allowed (Pod Security baseline)")
    for i, port in enumerate(items(c.get("ports"), f"{field}.ports")):
        where = f"{field}.ports[{i}]"
        host_port = mapping(port, where).get("hostPort")
        # Kubernetes reads 0 as "no host port", so only a real number is refused.
        if host_port not in (None, 0):
            raise Refused(f"{where}.hostPort", "host ports are not allowed")
    return container_gpus(c.get("resources"), f"{field}.resources")


def check_volumes(volumes: object, field: str) -> None:
    """Refuse hostPath volumes: a run's pod may not read or write its node's files."""
    for i, volume in enumerate(items(volumes, field)):
        where = f"{field}[{i}]"
        if mapping(volume, where).get("hostPath") is not None:
            raise Refused(f"{where}.hostPath", "hostPath volumes are not allowed")


def check_service_account(pod: Mapping[str, object], field: str, allowed: str | None) -> None:
    """Refuse a service account other than ``allowed``; None allows none, so the namespace's default
    account runs the pod. ``serviceAccount`` is the deprecated spelling Kubernetes still reads."""
    for key in ("serviceAccountName", "serviceAccount"):
        name = text(pod.get(key), f"{field}.{key}")
        if name and name != allowed:
            if allowed is None:
                reason = f"service account {name!r} is not allowed: run pods use the namespace's default"
            else:
                reason = f"service account {name!r} is not allowed: workflows run as {allowed!r}"
            raise Refused(f"{field}.{key}", reason)


def node_product(pod: Mapping[str, object], field: str) -> str | None:
    """The GPU product the pod's node selector names, if any."""
    selector = optional_mapping(pod.get("nodeSelector"), f"{field}.nodeSelector")
    return text(selector.get(PRODUCT_LABEL), f"{field}.nodeSelector[{PRODUCT_LABEL!r}]")


def check_pod_spec(spec: object, field: str, *, service_account: str | None) -> PodGpus:
    """Refuse host namespaces, hostPath volumes, foreign service accounts and what ``check_container``
    refuses; return the pod's GPUs as the scheduler counts them: the larger of the sum over the
    containers and the most any one init container asks."""
    pod = mapping(spec, field)
    for key in _HOST_NAMESPACES:
        if flag(pod.get(key), f"{field}.{key}"):
            raise Refused(f"{field}.{key}", "sharing the node's namespaces is not allowed")
    check_volumes(pod.get("volumes"), f"{field}.volumes")
    check_service_account(pod, field, service_account)
    counts: dict[str, list[int]] = {}
    for key in _CONTAINER_LISTS:
        where = f"{field}.{key}"
        counts[key] = [check_container(c, f"{where}[{i}]") for i, c in enumerate(items(pod.get(key), where))]
    gpus = max(sum(counts["containers"]), max(counts["initContainers"], default=0))
    return PodGpus(gpus, node_product(pod, field))


def check_pod_template(template: object, field: str, *, service_account: str | None) -> PodGpus:
    """``check_pod_spec`` of a pod template's ``spec``; a template without one is refused."""
    t = mapping(template, field)
    if t.get("spec") is None:
        raise Refused(f"{field}.spec", "a pod template needs a spec")
    return check_pod_spec(t.get("spec"), f"{field}.spec", service_account=service_account)


# The most pods one run may start at once. The gang lists each pod, so a count of a billion
# replicas must be a refusal before it becomes a list of a billion entries.
MAX_PODS = 10_000


def whole(value: object, field: str, *, default: int, least: int = 0) -> int:
    """A count such as replicas or numNodes: a whole number from ``least`` to ``MAX_PODS``; missing is
    ``default``. JSON floats such as 2.0 count, as the SDKs write some counts that way."""
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise Refused(field, f"must be a whole number, not {_kind_of(value)}")
    if not math.isfinite(value) or value != int(value) or value < least:
        raise Refused(field, f"must be a whole number of at least {least}, not {value!r}")
    if value > MAX_PODS:
        raise Refused(field, f"must be at most {MAX_PODS}, not {value!r}")
    return int(value)
