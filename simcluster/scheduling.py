"""Pure kube-scheduler decision logic: filter nodes, score them, pick one or explain why none fits.

Modelled on kube-scheduler's default profile (v1.28 to v1.33) for the plugins that matter to a GPU
notebook spawner, applied in the default-profile order and stopping at the first failing plugin of
a node, as the scheduling framework does:

========================  ==================================================================
NodeUnschedulable         ``node(s) were unschedulable``
NodeName                  ``node(s) didn't match the requested node name``
TaintToleration           ``node(s) had untolerated taint {key: value}``
NodeAffinity              ``node(s) didn't match Pod's node affinity/selector``
NodeResourcesFit          ``Too many pods``, ``Insufficient cpu``, ``Insufficient <resource>``
========================  ==================================================================

When no node fits, :func:`schedule` formats the FailedScheduling message exactly as
``FitError.Error()`` does, followed by DefaultPreemption's PostFilter message.  Preemption itself
is not modelled: a node rejected by NodeResourcesFit (the only ``Unschedulable`` status here; the
others are ``UnschedulableAndUnresolvable``) is reported as having no preemption victims, which is
what kube-scheduler says when no pod on it has a lower priority than the incoming pod.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from types import MappingProxyType
from typing import Any

from .quantity import parse_quantity as _parse_quantity

__all__ = [
    "MAX_NODE_SCORE",
    "NO_NODES_AVAILABLE",
    "PREEMPTION_NOT_HELPFUL",
    "PREEMPTION_NO_VICTIMS",
    "REASON_NODE_AFFINITY",
    "REASON_NODE_NAME",
    "REASON_TOO_MANY_PODS",
    "REASON_UNSCHEDULABLE",
    "TAINT_NODE_NOT_READY",
    "TAINT_NODE_UNREACHABLE",
    "TAINT_NODE_UNSCHEDULABLE",
    "Decision",
    "NodeInfo",
    "filter_node",
    "insufficient_reason",
    "node_affinity_matches",
    "pod_requests",
    "schedule",
    "score_node",
    "taint_reason",
    "tolerates",
]

# --- the exact strings kube-scheduler emits ------------------------------------------------------

#: plugins/nodeunschedulable: ErrReasonUnschedulable
REASON_UNSCHEDULABLE = "node(s) were unschedulable"
#: plugins/nodename: ErrReason
REASON_NODE_NAME = "node(s) didn't match the requested node name"
#: plugins/nodeaffinity: ErrReasonPod
REASON_NODE_AFFINITY = "node(s) didn't match Pod's node affinity/selector"
#: plugins/noderesources/fit.go
REASON_TOO_MANY_PODS = "Too many pods"
#: framework/preemption: a node where preemption cannot help (UnschedulableAndUnresolvable)
PREEMPTION_NOT_HELPFUL = "Preemption is not helpful for scheduling"
#: plugins/defaultpreemption SelectVictimsOnNode: no pod on the node has a lower priority
PREEMPTION_NO_VICTIMS = "No preemption victims found for incoming pod"
#: scheduler.ErrNoNodesAvailable
NO_NODES_AVAILABLE = "no nodes available to schedule pods"

TAINT_NODE_UNSCHEDULABLE = "node.kubernetes.io/unschedulable"
TAINT_NODE_NOT_READY = "node.kubernetes.io/not-ready"
TAINT_NODE_UNREACHABLE = "node.kubernetes.io/unreachable"

#: framework.MaxNodeScore: the range of one score plugin
MAX_NODE_SCORE = 100


def taint_reason(taint: Mapping[str, Any]) -> str:
    """TaintToleration's reason for an untolerated taint (a missing value prints as empty)."""
    return f"node(s) had untolerated taint {{{taint.get('key', '')}: {taint.get('value', '')}}}"


def insufficient_reason(resource: str) -> str:
    """NodeResourcesFit's reason for a resource the node has too little of."""
    return f"Insufficient {resource}"


# --- quantities ----------------------------------------------------------------------------------


def _resource_list(raw: object) -> dict[str, Decimal]:
    if not isinstance(raw, Mapping):
        return {}
    return {str(name): _parse_quantity(quantity) for name, quantity in raw.items()}


# --- small typed accessors over Kubernetes JSON --------------------------------------------------


def _map(obj: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = obj.get(key)
    return value if isinstance(value, Mapping) else {}


def _list(obj: Mapping[str, Any], key: str) -> list[Any]:
    value = obj.get(key)
    return list(value) if isinstance(value, list | tuple) else []


def _maps(obj: Mapping[str, Any], key: str) -> list[Mapping[str, Any]]:
    return [item for item in _list(obj, key) if isinstance(item, Mapping)]


def _str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    return value if isinstance(value, str) else ""


def _spec(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return _map(pod, "spec")


def _node_affinity(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return _map(_map(_spec(pod), "affinity"), "nodeAffinity")


# --- NodeInfo ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class NodeInfo:
    """What the scheduler knows of one node: its spec, readiness, and what is already on it."""

    name: str
    labels: Mapping[str, str]
    taints: tuple[Mapping[str, Any], ...]
    unschedulable: bool
    ready: bool
    #: status.allocatable: cpu, memory, pods, nvidia.com/gpu, ...
    allocatable: Mapping[str, Decimal]
    #: the summed requests of the non-terminated pods bound to the node, "pods" being their count
    requested: Mapping[str, Decimal] = field(default_factory=dict)

    @classmethod
    def from_node(cls, node: Mapping[str, Any], pods_on_node: Iterable[Mapping[str, Any]] = ()) -> NodeInfo:
        """Build from a Node's JSON and the pods bound to it (Succeeded or Failed pods don't count).

        ``ready`` is the Ready condition being "True".  A node with no status.allocatable uses
        status.capacity, as the API server defaults it.
        """
        metadata = _map(node, "metadata")
        spec = _map(node, "spec")
        status = _map(node, "status")
        labels = {str(k): str(v) for k, v in _map(metadata, "labels").items()}
        taints = tuple(MappingProxyType(dict(taint)) for taint in _maps(spec, "taints"))
        ready = any(
            _str(cond, "type") == "Ready" and _str(cond, "status") == "True"
            for cond in _maps(status, "conditions")
        )
        allocatable = status.get("allocatable")
        if allocatable is None:
            allocatable = status.get("capacity")
        requested: dict[str, Decimal] = {}
        for pod in pods_on_node:
            if _str(_map(pod, "status"), "phase") in ("Succeeded", "Failed"):
                continue
            for resource, quantity in pod_requests(pod).items():
                requested[resource] = requested.get(resource, Decimal(0)) + quantity
        return cls(
            name=_str(metadata, "name"),
            labels=MappingProxyType(labels),
            taints=taints,
            unschedulable=bool(spec.get("unschedulable", False)),
            ready=ready,
            allocatable=MappingProxyType(_resource_list(allocatable)),
            requested=MappingProxyType(requested),
        )


# --- resource requests ---------------------------------------------------------------------------


def _container_requests(container: Mapping[str, Any]) -> dict[str, Decimal]:
    """A container's requests after API defaulting: a resource with only a limit requests it."""
    resources = _map(container, "resources")
    requests = _resource_list(_map(resources, "limits"))
    requests.update(_resource_list(_map(resources, "requests")))
    return requests


def _add(total: dict[str, Decimal], more: Mapping[str, Decimal]) -> None:
    for resource, quantity in more.items():
        total[resource] = total.get(resource, Decimal(0)) + quantity


def _max(total: dict[str, Decimal], other: Mapping[str, Decimal]) -> None:
    for resource, quantity in other.items():
        total[resource] = max(total.get(resource, Decimal(0)), quantity)


def pod_requests(pod: Mapping[str, Any]) -> dict[str, Decimal]:
    """The pod's effective requests, as the scheduler counts them (resourcehelper.PodRequests).

    Per resource: max(sum over containers, largest init container) + spec.overhead.  Sidecars
    (init containers with restartPolicy Always) run beside the app containers, so they add to the
    sum and to every later init container.  A request left unset defaults to the limit.  Always
    includes "pods": 1.
    """
    spec = _spec(pod)
    total: dict[str, Decimal] = {}
    for container in _maps(spec, "containers"):
        _add(total, _container_requests(container))
    sidecars: dict[str, Decimal] = {}
    init_peak: dict[str, Decimal] = {}
    for container in _maps(spec, "initContainers"):
        requests = _container_requests(container)
        if _str(container, "restartPolicy") == "Always":
            _add(total, requests)
            _add(sidecars, requests)
            running = dict(sidecars)
        else:
            running = dict(requests)
            _add(running, sidecars)
        _max(init_peak, running)
    _max(total, init_peak)
    _add(total, _resource_list(spec.get("overhead")))
    total["pods"] = Decimal(1)
    return total


def _is_scalar_resource(resource: str) -> bool:
    """Whether NodeResourcesFit checks a resource other than cpu, memory, ephemeral-storage, pods.

    Extended resources (a domain outside kubernetes.io, like nvidia.com/gpu), hugepages-*,
    attachable-volumes-* and prefixed native resources; an unprefixed unknown name is ignored.
    """
    if resource.startswith(("hugepages-", "attachable-volumes-")):
        return True
    return "/" in resource and not resource.startswith("requests.")


# --- tolerations and node affinity ---------------------------------------------------------------


def _tolerates_one(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    effect = _str(toleration, "effect")
    if effect and effect != _str(taint, "effect"):
        return False
    key = _str(toleration, "key")
    if key and key != _str(taint, "key"):
        return False
    operator = _str(toleration, "operator")
    if operator in ("", "Equal"):
        return _str(toleration, "value") == _str(taint, "value")
    return operator == "Exists"


def tolerates(tolerations: Sequence[Mapping[str, Any]], taint: Mapping[str, Any]) -> bool:
    """Whether any toleration tolerates the taint (v1 Toleration.ToleratesTaint).

    An empty effect matches every effect; an empty key with operator Exists matches every taint;
    operator Equal (or none) compares values, a missing value being "".
    """
    return any(_tolerates_one(toleration, taint) for toleration in tolerations)


def _int64(text: str) -> int | None:
    if re.fullmatch(r"[+-]?\d+", text) is None:
        return None
    value = int(text)
    return value if -(2**63) <= value < 2**63 else None


def _requirement_matches(requirement: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    """One matchExpressions entry; a malformed one (e.g. In with no values) matches nothing."""
    key = _str(requirement, "key")
    operator = _str(requirement, "operator")
    values = [str(v) for v in _list(requirement, "values")]
    present = key in labels
    if operator in ("In", "NotIn"):
        if not values:
            return False
        inside = present and labels[key] in values
        return inside if operator == "In" else not inside
    if operator in ("Exists", "DoesNotExist"):
        if values:
            return False
        return present if operator == "Exists" else not present
    if operator in ("Gt", "Lt"):
        if len(values) != 1 or not present:
            return False
        bound = _int64(values[0])
        actual = _int64(labels[key])
        if bound is None or actual is None:
            return False
        return actual > bound if operator == "Gt" else actual < bound
    return False


def _field_matches(requirement: Mapping[str, Any], name: str) -> bool:
    """One matchFields entry: only metadata.name with In or NotIn is valid."""
    values = [str(v) for v in _list(requirement, "values")]
    if _str(requirement, "key") != "metadata.name" or not values:
        return False
    operator = _str(requirement, "operator")
    if operator == "In":
        return name in values
    if operator == "NotIn":
        return name not in values
    return False


def _term_matches(term: Mapping[str, Any], labels: Mapping[str, str], name: str) -> bool:
    """A NodeSelectorTerm: AND of its requirements; a term with none matches no node."""
    expressions = _maps(term, "matchExpressions")
    fields = _maps(term, "matchFields")
    if not expressions and not fields:
        return False
    return all(_requirement_matches(r, labels) for r in expressions) and all(
        _field_matches(r, name) for r in fields
    )


def node_affinity_matches(pod: Mapping[str, Any], labels: Mapping[str, str], name: str) -> bool:
    """Whether a node passes the pod's spec.nodeSelector and required node affinity.

    nodeSelector: every key=value must be a label.  requiredDuringSchedulingIgnoredDuringExecution:
    OR of nodeSelectorTerms (none at all matches no node), each the AND of its matchExpressions and
    matchFields.
    """
    selector = _map(_spec(pod), "nodeSelector")
    if any(labels.get(str(k)) != str(v) for k, v in selector.items()):
        return False
    required = _node_affinity(pod).get("requiredDuringSchedulingIgnoredDuringExecution")
    if not isinstance(required, Mapping):
        return True
    return any(_term_matches(t, labels, name) for t in _maps(required, "nodeSelectorTerms"))


# --- filtering -----------------------------------------------------------------------------------


def _effective_taints(node: NodeInfo) -> list[Mapping[str, Any]]:
    """The node's taints plus the not-ready taint the node lifecycle controller would add."""
    taints = list(node.taints)
    if not node.ready and not any(
        _str(t, "key") in (TAINT_NODE_NOT_READY, TAINT_NODE_UNREACHABLE) and _str(t, "effect") == "NoSchedule"
        for t in taints
    ):
        taints.append({"key": TAINT_NODE_NOT_READY, "effect": "NoSchedule"})
    return taints


def _fit_reasons(pod: Mapping[str, Any], node: NodeInfo) -> list[str]:
    requests = pod_requests(pod)
    zero = Decimal(0)

    def free(resource: str) -> Decimal:
        return node.allocatable.get(resource, zero) - node.requested.get(resource, zero)

    reasons = []
    if node.requested.get("pods", zero) + 1 > node.allocatable.get("pods", zero):
        reasons.append(REASON_TOO_MANY_PODS)
    checked = ["cpu", "memory", "ephemeral-storage"]
    checked += sorted(r for r in requests if _is_scalar_resource(r))
    for resource in checked:
        wanted = requests.get(resource, zero)
        if wanted > 0 and wanted > free(resource):
            reasons.append(insufficient_reason(resource))
    return reasons


def _filter(pod: Mapping[str, Any], node: NodeInfo) -> tuple[str, list[str]]:
    """The first failing plugin's name and reasons, or ("", []) if the node fits."""
    tolerations = _maps(_spec(pod), "tolerations")
    if node.unschedulable and not tolerates(
        tolerations, {"key": TAINT_NODE_UNSCHEDULABLE, "effect": "NoSchedule"}
    ):
        return "NodeUnschedulable", [REASON_UNSCHEDULABLE]
    node_name = _str(_spec(pod), "nodeName")
    if node_name and node_name != node.name:
        return "NodeName", [REASON_NODE_NAME]
    for taint in _effective_taints(node):
        if _str(taint, "effect") in ("NoSchedule", "NoExecute") and not tolerates(tolerations, taint):
            return "TaintToleration", [taint_reason(taint)]
    if not node_affinity_matches(pod, node.labels, node.name):
        return "NodeAffinity", [REASON_NODE_AFFINITY]
    reasons = _fit_reasons(pod, node)
    if reasons:
        return "NodeResourcesFit", reasons
    return "", []


def filter_node(pod: Mapping[str, Any], node: NodeInfo) -> list[str]:
    """[] if the pod fits the node, else the reasons of the first failing plugin in profile order.

    NodeResourcesFit reports every insufficient resource: "Too many pods" first, then cpu, memory,
    ephemeral-storage, then extended resources by name (kube-scheduler's order there is map order).
    """
    return _filter(pod, node)[1]


# --- scoring -------------------------------------------------------------------------------------


def _preferred_affinity_weight(pod: Mapping[str, Any], node: NodeInfo) -> int:
    total = 0
    for term in _maps(_node_affinity(pod), "preferredDuringSchedulingIgnoredDuringExecution"):
        weight = term.get("weight", 0)
        if not isinstance(weight, int) or isinstance(weight, bool) or weight == 0:
            continue
        if _term_matches(_map(term, "preference"), node.labels, node.name):
            total += weight
    return total


def _least_allocated(pod: Mapping[str, Any], node: NodeInfo) -> int:
    """LeastAllocated over cpu and memory, weight 1 each, in kube-scheduler's integer arithmetic."""
    requests = pod_requests(pod)
    zero = Decimal(0)
    total = weights = 0
    for resource, scale in (("cpu", 1000), ("memory", 1)):
        capacity = math.ceil(node.allocatable.get(resource, zero) * scale)
        if capacity <= 0:
            continue
        used = math.ceil((node.requested.get(resource, zero) + requests.get(resource, zero)) * scale)
        total += 0 if used > capacity else (capacity - used) * MAX_NODE_SCORE // capacity
        weights += 1
    return total // weights if weights else 0


def score_node(pod: Mapping[str, Any], node: NodeInfo) -> int:
    """A feasible node's score: 100 x the weights of matching preferred affinity terms + 0..100.

    The second part is NodeResourcesFit's LeastAllocated score: the mean over cpu and memory of the
    percentage left free once the pod is placed.
    """
    return _preferred_affinity_weight(pod, node) * MAX_NODE_SCORE + _least_allocated(pod, node)


# --- scheduling ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Decision:
    """The outcome of one scheduling attempt.

    ``node`` is the chosen node or None; ``message`` is the Scheduled event's message on success,
    otherwise the FailedScheduling event's (and the PodScheduled condition's) message;
    ``unschedulable_reasons`` counts filter reasons over all nodes; ``scores`` holds the feasible
    nodes' scores.
    """

    node: str | None
    message: str
    unschedulable_reasons: Mapping[str, int] = field(default_factory=dict)
    scores: Mapping[str, int] = field(default_factory=dict)


def _histogram(counts: Mapping[str, int]) -> str:
    return ", ".join(sorted(f"{count} {reason}" for reason, count in counts.items()))


def schedule(pod: Mapping[str, Any], nodes: Sequence[NodeInfo]) -> Decision:
    """Pick the feasible node with the highest score (ties: the first by name), or explain failure.

    Failure messages are kube-scheduler's (v1.28+):
    ``0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 2 node(s) didn't match Pod's node
    affinity/selector. preemption: 0/3 nodes are available: 1 No preemption victims found for
    incoming pod, 2 Preemption is not helpful for scheduling.``
    """
    if not nodes:
        return Decision(node=None, message=NO_NODES_AVAILABLE)
    reasons: Counter[str] = Counter()
    preemption: Counter[str] = Counter()
    scores: dict[str, int] = {}
    for node in nodes:
        plugin, failed = _filter(pod, node)
        if not failed:
            scores[node.name] = score_node(pod, node)
            continue
        reasons.update(failed)
        # NodeResourcesFit's status is Unschedulable, so preemption dry-runs the node; the other
        # plugins' statuses are UnschedulableAndUnresolvable.
        preemption[PREEMPTION_NO_VICTIMS if plugin == "NodeResourcesFit" else PREEMPTION_NOT_HELPFUL] += 1
    if scores:
        best = min(scores, key=lambda name: (-scores[name], name))
        metadata = _map(pod, "metadata")
        namespace = _str(metadata, "namespace") or "default"
        return Decision(
            node=best,
            message=f"Successfully assigned {namespace}/{_str(metadata, 'name')} to {best}",
            scores=MappingProxyType(scores),
        )
    total = len(nodes)
    message = f"0/{total} nodes are available: {_histogram(reasons)}."
    if _str(_spec(pod), "preemptionPolicy") == "Never":
        message += " preemption: not eligible due to preemptionPolicy=Never."
    else:
        message += f" preemption: 0/{total} nodes are available: {_histogram(preemption)}."
    return Decision(node=None, message=message, unschedulable_reasons=MappingProxyType(dict(reasons)))
