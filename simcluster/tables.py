"""Render objects as meta.k8s.io Tables the way kube-apiserver's printers do for ``kubectl get``.

Mirrors ``pkg/printers/internalversion/printers.go`` (printPod, printNode, printNamespace,
printService, printSecret, printConfigMap, printPersistentVolumeClaim, printEvent,
printServiceAccount), the CRD table convertor's default ``NAME AGE`` columns for every other
kind, ``duration.HumanDuration`` and ``handlers.asTable`` (the ``includeObject`` handling).

As on the real server every row carries the wide cells; kubectl drops the ``priority: 1``
columns unless ``-o wide``.  Objects are the v1 JSON shape (dicts).  The real printers run on
defaulted, internal objects, so the few API defaults a printer can see (pod phase ``Pending``,
service type ``ClusterIP``, port protocol ``TCP``, secret type ``Opaque``, namespace phase
``Active``, PVC phase ``Pending`` and volume mode ``Filesystem``) are applied when missing, and
``status.podIP`` / ``spec.clusterIP`` win over their plural forms as in the v1 conversion.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "INCLUDE_OBJECT_VALUES",
    "age",
    "columns",
    "human_duration",
    "pod_status",
    "row_cells",
    "to_table",
]

Obj = Mapping[str, Any]

#: ``includeObject`` values accepted by :func:`to_table`: the wire values (``None``,
#: ``Object``, ``Metadata``, and ``""`` which the server treats as ``Metadata``) plus
#: ``PartialObjectMetadata`` as an alias of ``Metadata``.
INCLUDE_OBJECT_VALUES = frozenset({"None", "Object", "Metadata", "", "PartialObjectMetadata"})

_TABLE_GROUP_VERSIONS = frozenset({"meta.k8s.io/v1", "meta.k8s.io/v1beta1"})

_ZERO_TIME = datetime(1, 1, 1, tzinfo=UTC)

# --------------------------------------------------------------------------------------------
# durations and timestamps


def human_duration(seconds: float) -> str:
    """``duration.HumanDuration``: ~2-3 significant figures, e.g. ``59s``, ``2m5s``, ``3h``.

    Like the Go code, anything down to two seconds in the past reads ``0s`` (clock skew);
    further negative is ``<invalid>``.
    """
    if math.isnan(seconds) or math.isinf(seconds):
        raise ValueError(f"duration must be finite, got {seconds!r}")
    secs = int(seconds)  # Go int(d.Seconds()) truncates toward zero
    if secs < -1:
        return "<invalid>"
    if secs < 0:
        return "0s"
    if secs < 60 * 2:
        return f"{secs}s"
    minutes = secs // 60
    if minutes < 10:
        s = secs % 60
        return f"{minutes}m" if s == 0 else f"{minutes}m{s}s"
    if minutes < 60 * 3:
        return f"{minutes}m"
    hours = secs // 3600
    if hours < 8:
        m = minutes % 60
        return f"{hours}h" if m == 0 else f"{hours}h{m}m"
    if hours < 48:
        return f"{hours}h"
    if hours < 24 * 8:
        h = hours % 24
        return f"{hours // 24}d" if h == 0 else f"{hours // 24}d{h}h"
    if hours < 24 * 365 * 2:
        return f"{hours // 24}d"
    if hours < 24 * 365 * 8:
        dy = (hours // 24) % 365
        years = hours // 24 // 365
        return f"{years}y" if dy == 0 else f"{years}y{dy}d"
    return f"{hours // 24 // 365}y"


def _parse_time(value: Any) -> datetime | None:
    """An RFC 3339 timestamp (``metav1.Time`` / ``MicroTime``); ``None`` for missing or zero."""
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be an RFC 3339 string, got {value!r}")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError as exc:
        raise ValueError(f"invalid RFC 3339 timestamp {value!r}") from exc
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    if parsed == _ZERO_TIME:
        return None
    return parsed


def _check_now(now: datetime) -> None:
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")


def _since(when: datetime | None, now: datetime) -> str:
    if when is None:
        return "<unknown>"
    return human_duration((now - when).total_seconds())


def age(timestamp: str | None, now: datetime) -> str:
    """``translateTimestampSince``: the human duration from ``timestamp`` to ``now``."""
    _check_now(now)
    return _since(_parse_time(timestamp), now)


# --------------------------------------------------------------------------------------------
# column definitions

_NAME_DOC = (
    "Name must be unique within a namespace. Is required when creating resources, although some"
    " resources may allow a client to request the generation of an appropriate name"
    " automatically. Name is primarily intended for creation idempotence and configuration"
    " definition. Cannot be updated. More info:"
    " https://kubernetes.io/docs/concepts/overview/working-with-objects/names#names"
)
_AGE_DOC = (
    "CreationTimestamp is a timestamp representing the server time when this object was created."
    " It is not guaranteed to be set in happens-before order across separate operations. Clients"
    " may not set this value. It is represented in RFC3339 form and is in UTC.\n\nPopulated by the"
    " system. Read-only. Null for lists. More info:"
    " https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata"
)
_NODE_ADDRESSES_DOC = (
    "List of addresses reachable to the node. Queried from cloud provider, if available. More"
    " info: https://kubernetes.io/docs/concepts/nodes/node/#addresses"
)


def _col(name: str, type_: str, description: str, *, priority: int = 0, format_: str = "") -> dict[str, Any]:
    return {
        "name": name,
        "type": type_,
        "format": format_,
        "description": description,
        "priority": priority,
    }


_NAME_COL = _col("Name", "string", _NAME_DOC, format_="name")
_AGE_COL = _col("Age", "string", _AGE_DOC)

_COLUMNS: dict[str, tuple[dict[str, Any], ...]] = {
    "Pod": (
        _NAME_COL,
        _col("Ready", "string", "The aggregate readiness state of this pod for accepting traffic."),
        _col("Status", "string", "The aggregate status of the containers in this pod."),
        _col(
            "Restarts",
            "string",
            "The number of times the containers in this pod have been restarted and when the"
            " last container in this pod has restarted.",
        ),
        _AGE_COL,
        _col(
            "IP",
            "string",
            "podIP address allocated to the pod. Routable at least within the cluster. Empty if"
            " not yet allocated.",
            priority=1,
        ),
        _col(
            "Node",
            "string",
            "NodeName is a request to schedule this pod onto a specific node. If it is non-empty,"
            " the scheduler simply schedules this pod onto that node, assuming that it fits"
            " resource requirements.",
            priority=1,
        ),
        _col(
            "Nominated Node",
            "string",
            "nominatedNodeName is set only when this pod preempts other pods on the node, but it"
            " cannot be scheduled right away as preemption victims receive their graceful"
            " termination periods. This field does not guarantee that the pod will be scheduled"
            " on this node. Scheduler may decide to place the pod elsewhere if other nodes become"
            " available sooner. Scheduler may also decide to give the resources on this node to a"
            " higher priority pod that is created after preemption. As a result, this field may"
            " be different than PodSpec.nodeName when the pod is scheduled.",
            priority=1,
        ),
        _col(
            "Readiness Gates",
            "string",
            "If specified, all readiness gates will be evaluated for pod readiness. A pod is"
            " ready when all its containers are ready AND all conditions specified in the"
            ' readiness gates have status equal to "True" More info:'
            " https://git.k8s.io/enhancements/keps/sig-network/580-pod-readiness-gates",
            priority=1,
        ),
    ),
    "Node": (
        _NAME_COL,
        _col("Status", "string", "The status of the node"),
        _col("Roles", "string", "The roles of the node"),
        _AGE_COL,
        _col("Version", "string", "Kubelet Version reported by the node."),
        _col("Internal-IP", "string", _NODE_ADDRESSES_DOC, priority=1),
        _col("External-IP", "string", _NODE_ADDRESSES_DOC, priority=1),
        _col(
            "OS-Image",
            "string",
            "OS Image reported by the node from /etc/os-release (e.g. Debian GNU/Linux 7 (wheezy)).",
            priority=1,
        ),
        _col(
            "Kernel-Version",
            "string",
            "Kernel Version reported by the node from 'uname -r' (e.g. 3.16.0-0.bpo.4-amd64).",
            priority=1,
        ),
        _col(
            "Container-Runtime",
            "string",
            "ContainerRuntime Version reported by the node through runtime remote API (e.g."
            " containerd://1.4.2).",
            priority=1,
        ),
    ),
    "Namespace": (
        _NAME_COL,
        _col("Status", "string", "The status of the namespace"),
        _AGE_COL,
    ),
    "Service": (
        _NAME_COL,
        _col(
            "Type",
            "string",
            "type determines how the Service is exposed. Defaults to ClusterIP. Valid options"
            " are ExternalName, ClusterIP, NodePort, and LoadBalancer.",
        ),
        _col(
            "Cluster-IP",
            "string",
            "clusterIP is the IP address of the service and is usually assigned randomly.",
        ),
        _col(
            "External-IP",
            "string",
            "externalIPs is a list of IP addresses for which nodes in the cluster will also"
            " accept traffic for this service.",
        ),
        _col("Port(s)", "string", "The list of ports that are exposed by this service."),
        _AGE_COL,
        _col(
            "Selector",
            "string",
            "Route service traffic to pods with label keys and values matching this selector.",
            priority=1,
        ),
    ),
    "Secret": (
        _NAME_COL,
        _col(
            "Type",
            "string",
            "Used to facilitate programmatic handling of secret data. More info:"
            " https://kubernetes.io/docs/concepts/configuration/secret/#secret-types",
        ),
        _col(
            "Data",
            "string",
            "Data contains the secret data. Each key must consist of alphanumeric characters,"
            " '-', '_' or '.'. The serialized form of the secret data is a base64 encoded string,"
            " representing the arbitrary (possibly non-string) data value here. Described in"
            " https://tools.ietf.org/html/rfc4648#section-4",
        ),
        _AGE_COL,
    ),
    "ServiceAccount": (
        _NAME_COL,
        _col(
            "Secrets",
            "string",
            "Secrets is a list of the secrets in the same namespace that pods running using this"
            " ServiceAccount are allowed to use.",
        ),
        _AGE_COL,
    ),
    "ConfigMap": (
        _NAME_COL,
        _col(
            "Data",
            "string",
            "Data contains the configuration data. Each key must consist of alphanumeric"
            " characters, '-', '_' or '.'. Values with non-UTF-8 byte sequences must use the"
            " BinaryData field. The keys stored in Data must not overlap with the keys in the"
            " BinaryData field, this is enforced during validation process.",
        ),
        _AGE_COL,
    ),
    "PersistentVolumeClaim": (
        _NAME_COL,
        _col("Status", "string", "phase represents the current phase of PersistentVolumeClaim."),
        _col(
            "Volume",
            "string",
            "volumeName is the binding reference to the PersistentVolume backing this claim.",
        ),
        _col(
            "Capacity",
            "string",
            "capacity represents the actual resources of the underlying volume.",
        ),
        _col(
            "Access Modes",
            "string",
            "accessModes contains the actual access modes the volume backing the PVC has. More"
            " info: https://kubernetes.io/docs/concepts/storage/persistent-volumes#access-modes-1",
        ),
        _col("StorageClass", "string", "StorageClass of the pvc"),
        _col("VolumeAttributesClass", "string", "VolumeAttributesClass of the pvc"),
        _AGE_COL,
        _col(
            "VolumeMode",
            "string",
            "volumeMode defines what type of volume is required by the claim. Value of"
            " Filesystem is implied when not included in claim spec.",
            priority=1,
        ),
    ),
    "Event": (
        _col(
            "Last Seen",
            "string",
            "The time at which the most recent occurrence of this event was recorded.",
        ),
        _col(
            "Type",
            "string",
            "Type of this event (Normal, Warning), new types could be added in the future",
        ),
        _col(
            "Reason",
            "string",
            "This should be a short, machine understandable string that gives the reason for the"
            " transition into the object's current status.",
        ),
        _col("Object", "string", "The object that this event is about."),
        _col(
            "Subobject",
            "string",
            "If referring to a piece of an object instead of an entire object, this string"
            " should contain a valid JSON/Go field access statement, such as"
            " desiredState.manifest.containers[2].",
            priority=1,
        ),
        _col(
            "Source",
            "string",
            "The component reporting this event. Should be a short machine understandable string.",
            priority=1,
        ),
        _col("Message", "string", "A human-readable description of the status of this operation."),
        _col(
            "First Seen",
            "string",
            "The time at which the event was first recorded. (Time of server receipt is in TypeMeta.)",
            priority=1,
        ),
        _col("Count", "string", "The number of times this event has occurred.", priority=1),
        _col("Name", "string", _NAME_DOC, priority=1, format_="name"),
    ),
}

_COLUMNS["Job"] = (
    _NAME_COL,
    _col("Status", "string", "Status of the job."),
    _col(
        "Completions",
        "string",
        "The number of pods which reached phase Succeeded. The value increases monotonically for a given "
        "spec. However, it may decrease in reaction to scale down of elastic indexed jobs.",
    ),
    _col("Duration", "string", "Time required to complete the job."),
    _AGE_COL,
    _col("Containers", "string", "Names of each container in the template.", priority=1),
    _col("Images", "string", "Images referenced by each container in the template.", priority=1),
    _col(
        "Selector",
        "string",
        "A label query over pods that should match the pod count. Normally, the system sets this field "
        "for you. More info: https://kubernetes.io/docs/concepts/overview/working-with-objects/labels/#label-selectors",
        priority=1,
    ),
)

# Custom resources without additionalPrinterColumns: the CRD convertor's Name plus the
# logically defaulted "Age" column of type date (serveDefaultColumnsIfEmpty).
_GENERIC_COLUMNS: tuple[dict[str, Any], ...] = (_NAME_COL, _col("Age", "date", _AGE_DOC))


def columns(kind: str) -> list[dict[str, Any]]:
    """The Table ``columnDefinitions`` for ``kind`` (``priority`` 1 = shown only with -o wide)."""
    return [dict(c) for c in _COLUMNS.get(kind, _GENERIC_COLUMNS)]


# --------------------------------------------------------------------------------------------
# small accessors for v1 JSON dicts


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return list(value) if isinstance(value, list | tuple) else []


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def _int(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _meta(obj: Obj) -> Mapping[str, Any]:
    return _map(obj.get("metadata"))


def _name(obj: Obj) -> str:
    return _str(_meta(obj).get("name"))


def _created(obj: Obj, now: datetime) -> str:
    return _since(_parse_time(_meta(obj).get("creationTimestamp")), now)


def _format_labels(labels: Mapping[str, Any]) -> str:
    """``labels.FormatLabels``: sorted ``k=v`` pairs joined by ``,``; ``<none>`` when empty."""
    pairs = sorted(f"{k}={_str(v)}" for k, v in labels.items())
    return ",".join(pairs) or "<none>"


# --------------------------------------------------------------------------------------------
# Pod


def _is_restartable_init(container: Mapping[str, Any] | None) -> bool:
    return container is not None and container.get("restartPolicy") == "Always"


def _later(current: datetime | None, candidate: datetime | None) -> datetime | None:
    if candidate is None:
        return current
    if current is None or current < candidate:
        return candidate
    return current


def _condition_status(conditions: list[Any], type_: str) -> str | None:
    """The status of the first condition of ``type_`` (``None`` when absent)."""
    for cond in conditions:
        if _map(cond).get("type") == type_:
            return _str(_map(cond).get("status"))
    return None


def _pod_summary(pod: Obj) -> tuple[int, int, str, int, datetime | None]:
    """printPod's (ready, total, reason, restarts, last restart) for ``pod``."""
    spec = _map(pod.get("spec"))
    status = _map(pod.get("status"))
    conditions = _list(status.get("conditions"))
    phase = _str(status.get("phase")) or "Pending"
    reason = _str(status.get("reason")) or phase
    for cond in conditions:
        c = _map(cond)
        if c.get("type") == "PodScheduled" and c.get("reason") == "SchedulingGated":
            reason = "SchedulingGated"

    init_specs = [_map(c) for c in _list(spec.get("initContainers"))]
    init_by_name = {_str(c.get("name")): c for c in init_specs}
    total = len(_list(spec.get("containers"))) + sum(1 for c in init_specs if _is_restartable_init(c))
    ready = 0
    restarts = 0
    sidecar_restarts = 0
    last_restart: datetime | None = None
    last_sidecar_restart: datetime | None = None

    initializing = False
    for i, raw in enumerate(_list(status.get("initContainerStatuses"))):
        cs = _map(raw)
        state = _map(cs.get("state"))
        terminated = _map(state.get("terminated")) if state.get("terminated") is not None else None
        waiting = _map(state.get("waiting")) if state.get("waiting") is not None else None
        finished = _parse_time(_map(_map(cs.get("lastState")).get("terminated")).get("finishedAt"))
        restart_count = _int(cs.get("restartCount"))
        sidecar = _is_restartable_init(init_by_name.get(_str(cs.get("name"))))
        restarts += restart_count
        last_restart = _later(last_restart, finished)
        if sidecar:
            sidecar_restarts += restart_count
            last_sidecar_restart = _later(last_sidecar_restart, finished)
        if terminated is not None and _int(terminated.get("exitCode")) == 0:
            continue
        if sidecar and cs.get("started") is True:
            if cs.get("ready") is True:
                ready += 1
            continue
        if terminated is not None:
            if not _str(terminated.get("reason")):
                signal = _int(terminated.get("signal"))
                if signal != 0:
                    reason = f"Init:Signal:{signal}"
                else:
                    reason = f"Init:ExitCode:{_int(terminated.get('exitCode'))}"
            else:
                reason = "Init:" + _str(terminated.get("reason"))
        elif (
            waiting is not None and _str(waiting.get("reason")) and waiting.get("reason") != "PodInitializing"
        ):
            reason = "Init:" + _str(waiting.get("reason"))
        else:
            reason = f"Init:{i}/{len(init_specs)}"
        initializing = True
        break

    if not initializing or _condition_status(conditions, "Initialized") == "True":
        restarts = sidecar_restarts
        last_restart = last_sidecar_restart
        has_running = False
        for raw in reversed(_list(status.get("containerStatuses"))):
            cs = _map(raw)
            state = _map(cs.get("state"))
            restarts += _int(cs.get("restartCount"))
            last_restart = _later(
                last_restart,
                _parse_time(_map(_map(cs.get("lastState")).get("terminated")).get("finishedAt")),
            )
            waiting = state.get("waiting")
            terminated = state.get("terminated")
            if waiting is not None and _str(_map(waiting).get("reason")):
                reason = _str(_map(waiting).get("reason"))
            elif terminated is not None and _str(_map(terminated).get("reason")):
                reason = _str(_map(terminated).get("reason"))
            elif terminated is not None:
                signal = _int(_map(terminated).get("signal"))
                if signal != 0:
                    reason = f"Signal:{signal}"
                else:
                    reason = f"ExitCode:{_int(_map(terminated).get('exitCode'))}"
            elif cs.get("ready") is True and state.get("running") is not None:
                has_running = True
                ready += 1
        if reason == "Completed" and has_running:
            reason = "Running" if _condition_status_any_true(conditions, "Ready") else "NotReady"

    meta = _meta(pod)
    if meta.get("deletionTimestamp") is not None:
        if status.get("reason") == "NodeLost":
            reason = "Unknown"
        elif phase not in ("Succeeded", "Failed"):
            reason = "Terminating"
    return ready, total, reason, restarts, last_restart


def _condition_status_any_true(conditions: list[Any], type_: str) -> bool:
    """``hasPodReadyCondition``: any condition of ``type_`` with status True."""
    return any(_map(c).get("type") == type_ and _map(c).get("status") == "True" for c in conditions)


def pod_status(pod: Obj) -> str:
    """printPod's STATUS cell: ``Running``, ``Init:0/1``, ``CrashLoopBackOff``, ``Terminating``."""
    return _pod_summary(pod)[2]


def _pod_cells(pod: Obj, now: datetime) -> list[Any]:
    ready, total, reason, restarts, last_restart = _pod_summary(pod)
    restarts_cell = str(restarts)
    if restarts != 0 and last_restart is not None:
        restarts_cell = f"{restarts} ({_since(last_restart, now)} ago)"
    spec = _map(pod.get("spec"))
    status = _map(pod.get("status"))
    pod_ip = _str(status.get("podIP"))
    if not pod_ip:
        ips = _list(status.get("podIPs"))
        pod_ip = _str(_map(ips[0]).get("ip")) if ips else ""
    conditions = _list(status.get("conditions"))
    gates = _list(spec.get("readinessGates"))
    readiness = "<none>"
    if gates:
        passed = sum(
            1
            for gate in gates
            if _condition_status(conditions, _str(_map(gate).get("conditionType"))) == "True"
        )
        readiness = f"{passed}/{len(gates)}"
    return [
        _name(pod),
        f"{ready}/{total}",
        reason,
        restarts_cell,
        _created(pod, now),
        pod_ip or "<none>",
        _str(spec.get("nodeName")) or "<none>",
        _str(status.get("nominatedNodeName")) or "<none>",
        readiness,
    ]


def _pod_row_conditions(pod: Obj) -> list[dict[str, str]] | None:
    phase = _map(pod.get("status")).get("phase")
    if phase == "Succeeded":
        message = "The pod has completed successfully."
    elif phase == "Failed":
        message = "The pod failed."
    else:
        return None
    return [{"type": "Completed", "status": "True", "reason": phase, "message": message}]


# --------------------------------------------------------------------------------------------
# Node

_NODE_ROLE_PREFIX = "node-role.kubernetes.io/"
_NODE_ROLE_LABEL = "kubernetes.io/role"


def _node_status(node: Obj) -> str:
    ready: str | None = None
    for cond in _list(_map(node.get("status")).get("conditions")):
        if _map(cond).get("type") == "Ready":  # the last Ready condition wins, as in the map
            ready = "Ready" if _map(cond).get("status") == "True" else "NotReady"
    parts = [ready or "Unknown"]
    if _map(node.get("spec")).get("unschedulable") is True:
        parts.append("SchedulingDisabled")
    return ",".join(parts)


def _node_roles(node: Obj) -> str:
    roles: set[str] = set()
    for key, value in _map(_meta(node).get("labels")).items():
        if key.startswith(_NODE_ROLE_PREFIX):
            role = key[len(_NODE_ROLE_PREFIX) :]
            if role:
                roles.add(role)
        elif key == _NODE_ROLE_LABEL and _str(value):
            roles.add(_str(value))
    return ",".join(sorted(roles)) or "<none>"


def _node_address(node: Obj, type_: str) -> str:
    for addr in _list(_map(node.get("status")).get("addresses")):
        if _map(addr).get("type") == type_:
            return _str(_map(addr).get("address"))
    return "<none>"


def _node_cells(node: Obj, now: datetime) -> list[Any]:
    info = _map(_map(node.get("status")).get("nodeInfo"))
    return [
        _name(node),
        _node_status(node),
        _node_roles(node),
        _created(node, now),
        _str(info.get("kubeletVersion")),
        _node_address(node, "InternalIP"),
        _node_address(node, "ExternalIP"),
        _str(info.get("osImage")) or "<unknown>",
        _str(info.get("kernelVersion")) or "<unknown>",
        _str(info.get("containerRuntimeVersion")) or "<unknown>",
    ]


# --------------------------------------------------------------------------------------------
# Service


def _service_external_ip(svc: Obj) -> str:
    spec = _map(svc.get("spec"))
    svc_type = _str(spec.get("type")) or "ClusterIP"
    external_ips = [_str(ip) for ip in _list(spec.get("externalIPs"))]
    if svc_type in ("ClusterIP", "NodePort"):
        return ",".join(external_ips) or "<none>"
    if svc_type == "LoadBalancer":
        ingress: set[str] = set()
        lb = _map(_map(svc.get("status")).get("loadBalancer"))
        for entry in _list(lb.get("ingress")):
            address = _str(_map(entry).get("ip")) or _str(_map(entry).get("hostname"))
            if address:
                ingress.add(address)
        lb_ips = ",".join(sorted(ingress))  # the server prints wide: never clipped to 16 chars
        if external_ips:
            return ",".join([*(lb_ips.split(",") if lb_ips else []), *external_ips])
        return lb_ips or "<pending>"
    if svc_type == "ExternalName":
        return _str(spec.get("externalName"))
    return "<unknown>"


def _service_ports(svc: Obj) -> str:
    pieces = []
    for raw in _list(_map(svc.get("spec")).get("ports")):
        port = _map(raw)
        protocol = _str(port.get("protocol")) or "TCP"
        node_port = _int(port.get("nodePort"))
        if node_port > 0:
            pieces.append(f"{_int(port.get('port'))}:{node_port}/{protocol}")
        else:
            pieces.append(f"{_int(port.get('port'))}/{protocol}")
    return ",".join(pieces) or "<none>"


def _service_cells(svc: Obj, now: datetime) -> list[Any]:
    spec = _map(svc.get("spec"))
    cluster_ip = _str(spec.get("clusterIP"))
    if not cluster_ip:
        ips = _list(spec.get("clusterIPs"))
        cluster_ip = _str(ips[0]) if ips else ""
    return [
        _name(svc),
        _str(spec.get("type")) or "ClusterIP",
        cluster_ip or "<none>",
        _service_external_ip(svc),
        _service_ports(svc),
        _created(svc, now),
        _format_labels(_map(spec.get("selector"))),
    ]


# --------------------------------------------------------------------------------------------
# PersistentVolumeClaim

_ACCESS_MODES = (
    ("ReadWriteOnce", "RWO"),
    ("ReadOnlyMany", "ROX"),
    ("ReadWriteMany", "RWX"),
    ("ReadWriteOncePod", "RWOP"),
)


def _access_modes(modes: list[Any]) -> str:
    return ",".join(short for mode, short in _ACCESS_MODES if mode in modes)


def _pvc_cells(pvc: Obj, now: datetime) -> list[Any]:
    meta = _meta(pvc)
    spec = _map(pvc.get("spec"))
    status = _map(pvc.get("status"))
    phase = _str(status.get("phase")) or "Pending"
    if meta.get("deletionTimestamp") is not None:
        phase = "Terminating"
    volume_name = _str(spec.get("volumeName"))
    capacity = ""
    access_modes = ""
    if volume_name:
        access_modes = _access_modes(_list(status.get("accessModes")))
        capacity = _str(_map(status.get("capacity")).get("storage")) or "0"
    annotations = _map(meta.get("annotations"))
    if "volume.beta.kubernetes.io/storage-class" in annotations:
        storage_class = _str(annotations["volume.beta.kubernetes.io/storage-class"])
    else:
        storage_class = _str(spec.get("storageClassName"))
    vac = spec.get("volumeAttributesClassName")
    return [
        _name(pvc),
        phase,
        volume_name,
        capacity,
        access_modes,
        storage_class,
        _str(vac) if vac is not None else "<unset>",
        _created(pvc, now),
        _str(spec.get("volumeMode")) or "Filesystem",
    ]


# --------------------------------------------------------------------------------------------
# Event


def _event_cells(event: Obj, now: datetime) -> list[Any]:
    first_ts = _parse_time(event.get("firstTimestamp"))
    first_seen = _since(first_ts, now) if first_ts is not None else age(event.get("eventTime"), now)
    last_ts = _parse_time(event.get("lastTimestamp"))
    last_seen = _since(last_ts, now) if last_ts is not None else first_seen
    count = _int(event.get("count"))
    series = event.get("series")
    if series is not None:
        last_seen = age(_map(series).get("lastObservedTime"), now)
        count = _int(_map(series).get("count"))
    elif count == 0:
        count = 1  # singleton events have no count in the events.k8s.io API
    involved = _map(event.get("involvedObject"))
    kind = _str(involved.get("kind")).lower()
    target = f"{kind}/{_str(involved.get('name'))}" if _str(involved.get("name")) else kind
    source = _map(event.get("source"))
    component = _str(source.get("component")) or _str(event.get("reportingComponent"))
    instance = _str(source.get("host")) or _str(event.get("reportingInstance"))
    return [
        last_seen,
        _str(event.get("type")),
        _str(event.get("reason")),
        target,
        _str(involved.get("fieldPath")),
        f"{component}, {instance}" if instance else component,
        _str(event.get("message")).strip(),
        first_seen,
        count,
        _name(event),
    ]


# --------------------------------------------------------------------------------------------
# the rest


def _namespace_cells(ns: Obj, now: datetime) -> list[Any]:
    return [_name(ns), _str(_map(ns.get("status")).get("phase")) or "Active", _created(ns, now)]


def _secret_cells(secret: Obj, now: datetime) -> list[Any]:
    # stringData is merged into data on write; count the union in case it was stored as given
    keys = set(_map(secret.get("data"))) | set(_map(secret.get("stringData")))
    return [_name(secret), _str(secret.get("type")) or "Opaque", len(keys), _created(secret, now)]


def _configmap_cells(cm: Obj, now: datetime) -> list[Any]:
    count = len(_map(cm.get("data"))) + len(_map(cm.get("binaryData")))
    return [_name(cm), count, _created(cm, now)]


def _service_account_cells(sa: Obj, now: datetime) -> list[Any]:
    return [_name(sa), len(_list(sa.get("secrets"))), _created(sa, now)]


def _job_cells(job: Obj, now: datetime) -> list[Any]:
    """printJob: the first condition that holds names the status; completions as kubectl shows them."""
    spec, status = _map(job.get("spec")), _map(job.get("status"))
    held = {c.get("type") for c in _list(status.get("conditions")) if _map(c).get("status") == "True"}
    if "Complete" in held:
        state = "Complete"
    elif "Failed" in held:
        state = "Failed"
    elif _meta(job).get("deletionTimestamp"):
        state = "Terminating"
    else:
        later = ("Suspended", "FailureTarget", "SuccessCriteriaMet")
        state = next((t for t in later if t in held), "Running")
    succeeded = int(status.get("succeeded") or 0)
    parallelism = int(spec.get("parallelism") or 0)
    if spec.get("completions") is not None:
        completions = f"{succeeded}/{spec['completions']}"
    elif parallelism > 1:
        completions = f"{succeeded}/1 of {parallelism}"
    else:
        completions = f"{succeeded}/1"
    started, finished = _parse_time(status.get("startTime")), _parse_time(status.get("completionTime"))
    duration = "" if started is None else human_duration(((finished or now) - started).total_seconds())
    pod_spec = _map(_map(spec.get("template")).get("spec"))
    containers = [_map(c) for c in _list(pod_spec.get("containers"))]
    match = _map(_map(spec.get("selector")).get("matchLabels"))
    return [
        _name(job),
        state,
        completions,
        duration,
        _created(job, now),
        ",".join(_str(c.get("name")) for c in containers),
        ",".join(_str(c.get("image")) for c in containers),
        ",".join(f"{k}={v}" for k, v in sorted(match.items())) or "<none>",
    ]


def _generic_cells(obj: Obj, now: datetime) -> list[Any]:
    # The CRD convertor reads .metadata.creationTimestamp by JSONPath: absent -> null cell.
    created = _meta(obj).get("creationTimestamp")
    if created is None:
        return [_name(obj), None]
    try:
        when = _parse_time(created)
    except ValueError:
        return [_name(obj), "<invalid>"]
    return [_name(obj), _since(when, now)]


_ROWS: dict[str, Callable[[Obj, datetime], list[Any]]] = {
    "Pod": _pod_cells,
    "Node": _node_cells,
    "Namespace": _namespace_cells,
    "Service": _service_cells,
    "Secret": _secret_cells,
    "ConfigMap": _configmap_cells,
    "PersistentVolumeClaim": _pvc_cells,
    "Event": _event_cells,
    "ServiceAccount": _service_account_cells,
    "Job": _job_cells,
}


def row_cells(kind: str, obj: Obj, now: datetime) -> list[Any]:
    """The cells of ``obj``'s row, wide columns included, in :func:`columns` order."""
    _check_now(now)
    return _ROWS.get(kind, _generic_cells)(obj, now)


# --------------------------------------------------------------------------------------------
# the Table


def _row_object(
    kind: str,
    obj: Obj,
    include_object: str,
    group_version: str,
    api_version_of: Callable[[str], str] | None,
) -> Any:
    if include_object == "Object":
        if "kind" in obj and ("apiVersion" in obj or api_version_of is None):
            return obj
        full = dict(obj)
        full.setdefault("kind", kind)
        if api_version_of is not None:
            full.setdefault("apiVersion", api_version_of(kind))
        return full
    return {
        "kind": "PartialObjectMetadata",
        "apiVersion": group_version,
        "metadata": _meta(obj),
    }


def to_table(
    kind: str,
    objects: Sequence[Obj],
    now: datetime,
    *,
    include_object: str = "PartialObjectMetadata",
    include_columns: bool = True,
    resource_version: str = "",
    continue_token: str = "",
    remaining_item_count: int | None = None,
    api_version_of: Callable[[str], str] | None = None,
    group_version: str = "meta.k8s.io/v1",
) -> dict[str, Any]:
    """A ``meta.k8s.io`` Table of ``objects`` (all of ``kind``) as kube-apiserver returns it.

    ``include_object`` is the ``includeObject`` query value: ``Metadata`` (alias
    ``PartialObjectMetadata``, and ``""``) puts a PartialObjectMetadata in each row, ``Object``
    the object itself (``kind`` and, via ``api_version_of(kind)``, ``apiVersion`` filled in when
    missing), ``None`` no object.  ``include_columns=False`` is ``NoHeaders`` (watch events after
    the first): ``columnDefinitions`` is then empty.  ``group_version`` is the Table's
    ``apiVersion`` (``meta.k8s.io/v1`` or ``meta.k8s.io/v1beta1``, from the Accept header).
    """
    if include_object not in INCLUDE_OBJECT_VALUES:
        raise ValueError(f"unrecognized includeObject value: {include_object!r}")
    if group_version not in _TABLE_GROUP_VERSIONS:
        raise ValueError(f"no Table exists in group version {group_version!r}")
    _check_now(now)
    rows: list[dict[str, Any]] = []
    for obj in objects:
        row: dict[str, Any] = {"cells": row_cells(kind, obj, now)}
        if kind == "Pod":
            conditions = _pod_row_conditions(obj)
            if conditions is not None:
                row["conditions"] = conditions
        if include_object != "None":
            row["object"] = _row_object(kind, obj, include_object, group_version, api_version_of)
        rows.append(row)
    metadata: dict[str, Any] = {}
    if resource_version:
        metadata["resourceVersion"] = resource_version
    if continue_token:
        metadata["continue"] = continue_token
    if remaining_item_count is not None:
        metadata["remainingItemCount"] = remaining_item_count
    return {
        "kind": "Table",
        "apiVersion": group_version,
        "metadata": metadata,
        "columnDefinitions": columns(kind) if include_columns else [],
        "rows": rows,
    }
