"""Pure fleet inventory: Kubernetes node and pod JSON -> NodeCapacity, kept up to date event by event.

Nothing here does I/O; ``spawner.inventory.watcher`` feeds these indexes from list and watch streams.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

from spawner.core.labels import (
    CLUSTER_LABEL,
    COMPONENT_LABEL,
    GPU,
    HUB_LABEL,
    MEMORY_LABEL,
    NOTEBOOK_COMPONENT,
    PRODUCT_LABEL,
    SERVERNAME_KEY,
    USERNAME_KEY,
)
from spawner.core.model import ClusterInventory, NodeCapacity, Pool, Role
from spawner.core.quantity import milli_value, value
from spawner.placement.fit_index import FitIndexBuilder

__all__ = [
    "TERMINAL_PHASES",
    "NodeIndex",
    "NodeInfo",
    "Resources",
    "ServerIndex",
    "ServerLocation",
    "build_nodes",
    "node_capacity",
    "node_info",
    "node_ready",
    "node_schedulable",
    "pod_placement",
    "pod_requests",
    "pool_for",
    "server_location",
    "tolerates",
]

Json = Mapping[str, Any]

TERMINAL_PHASES = frozenset({"Succeeded", "Failed"})
# taints the node lifecycle controller sets on a node that stopped reporting: never usable
_LOST_NODE_TAINTS = frozenset({"node.kubernetes.io/unreachable", "node.kubernetes.io/not-ready"})
_BLOCKING_EFFECTS = frozenset({"NoSchedule", "NoExecute"})

ADDED, MODIFIED, DELETED = "ADDED", "MODIFIED", "DELETED"
_EVENT_TYPES = frozenset({ADDED, MODIFIED, DELETED})


# ---------------------------------------------------------------------------- resources


@dataclass(frozen=True)
class Resources:
    """The three resources placement counts, in exact integer units."""

    cpu_milli: int = 0
    memory: int = 0  # bytes
    gpus: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu_milli + other.cpu_milli, self.memory + other.memory, self.gpus + other.gpus)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu_milli - other.cpu_milli, self.memory - other.memory, self.gpus - other.gpus)

    def max(self, other: Resources) -> Resources:
        return Resources(
            max(self.cpu_milli, other.cpu_milli), max(self.memory, other.memory), max(self.gpus, other.gpus)
        )

    @staticmethod
    def from_list(resources: Json | None) -> Resources:
        """A ResourceList ({"cpu": "500m", "memory": "1Gi", "nvidia.com/gpu": "1"})."""
        if not resources:
            return _ZERO
        cpu, memory, gpus = resources.get("cpu"), resources.get("memory"), resources.get(GPU)
        return Resources(
            milli_value(cpu) if cpu is not None else 0,
            value(memory) if memory is not None else 0,
            value(gpus) if gpus is not None else 0,
        )


_ZERO = Resources()


def _container_requests(container: Json) -> Resources:
    """A container's requests; a limit without a request is the request too (the apiserver's default)."""
    resources = container.get("resources") or {}
    requests = resources.get("requests") or {}
    limits = resources.get("limits") or {}
    return Resources.from_list({**limits, **requests})


def pod_requests(pod: Json) -> Resources:
    """What the scheduler reserves for a pod: containers, init containers (sidecars too) and overhead.

    max(sum of containers + sidecars, the largest init step), where an init step is a regular init
    container plus the sidecars started before it (kube-scheduler's computePodResourceRequest).
    """
    spec = pod.get("spec") or {}
    total = _ZERO
    for container in spec.get("containers") or ():
        total += _container_requests(container)
    sidecars = _ZERO
    init_peak = _ZERO
    for container in spec.get("initContainers") or ():
        requests = _container_requests(container)
        if container.get("restartPolicy") == "Always":  # a sidecar runs beside the containers
            total += requests
            sidecars += requests
            step = sidecars
        else:
            step = sidecars + requests
        init_peak = init_peak.max(step)
    return total.max(init_peak) + Resources.from_list(spec.get("overhead"))


def pod_placement(pod: Json) -> tuple[str, Resources] | None:
    """(node, requests) of a pod that holds resources on a node; None if unbound or terminated."""
    node = (pod.get("spec") or {}).get("nodeName")
    if not node or (pod.get("status") or {}).get("phase") in TERMINAL_PHASES:
        return None
    return node, pod_requests(pod)


# ---------------------------------------------------------------------------- nodes


def tolerates(toleration: Mapping[str, Any], taint: Mapping[str, Any]) -> bool:
    """Whether one toleration tolerates one taint (Kubernetes' ToleratesTaint)."""
    effect = toleration.get("effect") or ""
    if effect and effect != taint.get("effect"):
        return False
    key = toleration.get("key") or ""
    operator = toleration.get("operator") or "Equal"
    if key and key != taint.get("key"):
        return False
    if operator == "Exists":
        return True
    value_: str = toleration.get("value") or ""
    return bool(key) and operator == "Equal" and value_ == (taint.get("value") or "")


def node_ready(node: Json) -> bool:
    """The node's Ready condition is True."""
    for condition in (node.get("status") or {}).get("conditions") or ():
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def node_schedulable(node: Json, tolerations: Sequence[Mapping[str, Any]] = ()) -> bool:
    """Not cordoned, not lost, and every NoSchedule/NoExecute taint tolerated by ``tolerations``."""
    spec = node.get("spec") or {}
    if spec.get("unschedulable"):
        return False
    for taint in spec.get("taints") or ():
        if taint.get("effect") not in _BLOCKING_EFFECTS:
            continue
        if taint.get("key") in _LOST_NODE_TAINTS:
            return False
        if not any(tolerates(t, taint) for t in tolerations):
            return False
    return True


def pool_for(labels: Mapping[str, str], pools: Sequence[Pool]) -> Pool | None:
    """The first pool whose node selector the labels satisfy (an empty selector takes every node)."""
    for pool in pools:
        if all(labels.get(k) == v for k, v in pool.node_selector.items()):
            return pool
    return None


def _int_label(labels: Mapping[str, str], key: str) -> int | None:
    try:
        return int(labels[key])
    except (KeyError, ValueError):
        return None


@dataclass(frozen=True)
class NodeInfo:
    """What a node object says about itself, before the pods bound to it are subtracted."""

    name: str
    pool: str
    ready: bool
    schedulable: bool
    gpu_product: str | None
    gpu_memory_mib: int | None
    allocatable: Resources
    labels: Mapping[str, str]


def node_info(node: Json, pools: Sequence[Pool] = ()) -> NodeInfo:
    """Parse a node: allocatable (capacity if absent), readiness, taints against its pool, GFD labels."""
    meta = node.get("metadata") or {}
    status = node.get("status") or {}
    labels: Mapping[str, str] = MappingProxyType(dict(meta.get("labels") or {}))
    pool = pool_for(labels, pools)
    allocatable = status.get("allocatable")
    if allocatable is None:
        allocatable = status.get("capacity")
    return NodeInfo(
        name=meta["name"],
        pool=pool.name if pool is not None else "",
        ready=node_ready(node),
        schedulable=node_schedulable(node, pool.tolerations if pool is not None else ()),
        gpu_product=labels.get(PRODUCT_LABEL) or None,
        gpu_memory_mib=_int_label(labels, MEMORY_LABEL),
        allocatable=Resources.from_list(allocatable),
        labels=labels,
    )


def node_capacity(info: NodeInfo, requested: Resources = _ZERO) -> NodeCapacity:
    return NodeCapacity(
        name=info.name,
        pool=info.pool,
        ready=info.ready,
        schedulable=info.schedulable,
        gpu_product=info.gpu_product,
        gpu_memory_mib=info.gpu_memory_mib,
        gpus_allocatable=info.allocatable.gpus,
        gpus_requested=requested.gpus,
        cpu_allocatable=info.allocatable.cpu_milli / 1000,
        cpu_requested=requested.cpu_milli / 1000,
        memory_allocatable=info.allocatable.memory,
        memory_requested=requested.memory,
        labels=info.labels,
    )


def build_nodes(
    nodes: Iterable[Json], pods: Iterable[Json], pools: Sequence[Pool] = ()
) -> tuple[NodeCapacity, ...]:
    """All nodes at once, sorted by name (what NodeIndex keeps up to date incrementally)."""
    requested: dict[str, Resources] = {}
    for pod in pods:
        placed = pod_placement(pod)
        if placed is not None:
            requested[placed[0]] = requested.get(placed[0], _ZERO) + placed[1]
    infos = sorted((node_info(n, pools) for n in nodes), key=lambda i: i.name)
    return tuple(node_capacity(i, requested.get(i.name, _ZERO)) for i in infos)


def _pod_key(pod: Json) -> tuple[str, str]:
    meta = pod.get("metadata") or {}
    return meta.get("namespace") or "", meta["name"]


def _check_event(event_type: str) -> None:
    if event_type not in _EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")


class NodeIndex:
    """One cluster's nodes and the pod requests bound to them, updated per watch event in O(1).

    ``snapshot()`` rebuilds only the nodes an event touched and reuses the last tuple when nothing
    changed. A pod bound to a node the index has not seen yet is counted once that node appears.
    Beside the nodes it keeps placement's ``FitIndex`` (usable nodes per pool, presorted): an event
    that changes a node moves that node there at once (O(log n) comparisons), so that a snapshot only
    freezes the pools that changed; a relist rebuilds it at the next snapshot.
    """

    def __init__(self, cluster: str, role: Role, pools: Sequence[Pool] = ()) -> None:
        self.cluster = cluster
        self.role = role
        self.pools = tuple(pools)
        self._nodes: dict[str, NodeInfo] = {}
        self._pods: dict[tuple[str, str], tuple[str, Resources]] = {}
        self._requested: dict[str, Resources] = {}
        self._capacity: dict[str, NodeCapacity] = {}  # cache; a node's entry goes when it changes
        self._sorted: tuple[NodeCapacity, ...] | None = None
        self._order: list[str] | None = None  # node names, sorted; None after a node came or went
        self._fits = FitIndexBuilder()
        self._refit = False  # after a relist: rebuild the FitIndex from all nodes at the next snapshot

    def __len__(self) -> int:
        return len(self._nodes)

    @property
    def pod_count(self) -> int:
        """Pods that hold resources on a node."""
        return len(self._pods)

    def counts_pod(self, namespace: str, name: str) -> bool:
        """Whether the pod's requests are counted on its node yet."""
        return (namespace, name) in self._pods

    def gpu_pods(self) -> tuple[tuple[str, str, int], ...]:
        """The pods bound to a node that hold GPUs, as (namespace, name, GPUs)."""
        return tuple((ns, name, res.gpus) for (ns, name), (_, res) in self._pods.items() if res.gpus > 0)

    def _touch(self, node: str) -> None:
        self._capacity.pop(node, None)
        self._sorted = None
        if not self._refit:  # placement's index follows now, not while a placement waits for a snapshot
            info = self._nodes.get(node)
            if info is None:
                self._fits.remove(node)
            else:
                capacity = self._capacity[node] = node_capacity(info, self._requested.get(node, _ZERO))
                self._fits.put(capacity)

    def apply_node(self, event_type: str, node: Json) -> None:
        _check_event(event_type)
        name = (node.get("metadata") or {})["name"]
        if event_type == DELETED:
            if self._nodes.pop(name, None) is not None:
                self._touch(name)
                self._order = None
            return
        info = node_info(node, self.pools)
        old = self._nodes.get(name)
        if old != info:
            self._nodes[name] = info
            self._touch(name)
            if old is None:
                self._order = None

    def apply_pod(self, event_type: str, pod: Json) -> None:
        _check_event(event_type)
        key = _pod_key(pod)
        new = None if event_type == DELETED else pod_placement(pod)
        old = self._pods.get(key)
        if old == new:
            return
        if old is not None:
            del self._pods[key]
            self._add_requests(old[0], _ZERO - old[1])
        if new is not None:
            self._pods[key] = new
            self._add_requests(new[0], new[1])

    def _add_requests(self, node: str, delta: Resources) -> None:
        total = self._requested.get(node, _ZERO) + delta
        if total == _ZERO:
            self._requested.pop(node, None)
        else:
            self._requested[node] = total
        if node in self._nodes:
            self._touch(node)

    def replace_nodes(self, nodes: Iterable[Json]) -> None:
        """Start over from a LIST of nodes (what is not in it is gone)."""
        self._refit = True
        self._nodes = {}
        for node in nodes:
            self.apply_node(ADDED, node)
        self._capacity.clear()
        self._sorted = None
        self._order = None

    def replace_pods(self, pods: Iterable[Json]) -> None:
        """Start over from a LIST of pods (what is not in it is gone)."""
        self._refit = True
        self._pods = {}
        self._requested = {}
        for pod in pods:
            self.apply_pod(ADDED, pod)
        self._capacity.clear()
        self._sorted = None

    def nodes(self) -> tuple[NodeCapacity, ...]:
        if self._sorted is None:
            if self._order is None:
                self._order = sorted(self._nodes)
            capacity = self._capacity
            for name in self._order:
                if name not in capacity:
                    capacity[name] = node_capacity(self._nodes[name], self._requested.get(name, _ZERO))
            self._sorted = tuple(capacity[name] for name in self._order)
            if self._refit:
                self._fits.replace(self._sorted)
                self._refit = False
        return self._sorted

    def requested(self, node: str) -> Resources:
        """What the pods bound to ``node`` request (known even before the node is)."""
        return self._requested.get(node, _ZERO)

    def snapshot(self, *, synced: bool, age: float = 0.0) -> ClusterInventory:
        nodes = self.nodes()
        return ClusterInventory(
            self.cluster, self.role, self.pools, nodes, synced=synced, age=age, fits=self._fits.index(nodes)
        )


# ---------------------------------------------------------------------------- notebook servers


@dataclass(frozen=True)
class ServerLocation:
    """Where a user's notebook server runs, from its pod."""

    user: str
    server: str  # "" for the default server
    namespace: str
    pod: str
    ip: str | None
    phase: str
    node: str | None
    uid: str = ""
    cluster_label: str = ""  # HybridSpawner's hybridhub.io/cluster label: "" on pods it did not make
    hub_label: str = ""  # the hybridhub.io/hub label: the hub that made it ("" on pods from before it)
    terminating: bool = False  # deleted already, waiting out its grace period


def server_location(pod: Json) -> ServerLocation | None:
    """A KubeSpawner notebook pod's location; None for any other pod.

    The user and server names come from KubeSpawner's annotations (spelled as the hub spells them)
    and fall back to its labels (escaped to label syntax).
    """
    meta = pod.get("metadata") or {}
    labels = meta.get("labels") or {}
    if labels.get(COMPONENT_LABEL) != NOTEBOOK_COMPONENT:
        return None
    annotations = meta.get("annotations") or {}
    user = annotations.get(USERNAME_KEY) or labels.get(USERNAME_KEY)
    if not user:
        return None
    status = pod.get("status") or {}
    return ServerLocation(
        user=user,
        server=annotations.get(SERVERNAME_KEY) or labels.get(SERVERNAME_KEY) or "",
        namespace=meta.get("namespace") or "",
        pod=meta["name"],
        ip=status.get("podIP") or None,
        phase=status.get("phase") or "Pending",
        node=(pod.get("spec") or {}).get("nodeName") or None,
        uid=meta.get("uid") or "",
        cluster_label=labels.get(CLUSTER_LABEL) or "",
        hub_label=labels.get(HUB_LABEL) or "",
        terminating=bool(meta.get("deletionTimestamp")),
    )


class ServerIndex:
    """Notebook pods by user, updated per pod watch event in O(1)."""

    def __init__(self) -> None:
        self._by_pod: dict[tuple[str, str], ServerLocation] = {}
        self._by_user: dict[str, dict[tuple[str, str], ServerLocation]] = {}

    def __len__(self) -> int:
        return len(self._by_pod)

    def apply_pod(self, event_type: str, pod: Json) -> None:
        _check_event(event_type)
        key = _pod_key(pod)
        new = None if event_type == DELETED else server_location(pod)
        old = self._by_pod.pop(key, None)
        if old is not None:
            mine = self._by_user[old.user]
            del mine[key]
            if not mine:
                del self._by_user[old.user]
        if new is not None:
            self._by_pod[key] = new
            self._by_user.setdefault(new.user, {})[key] = new

    def replace_pods(self, pods: Iterable[Json]) -> None:
        self._by_pod = {}
        self._by_user = {}
        for pod in pods:
            self.apply_pod(ADDED, pod)

    def servers(self, user: str) -> tuple[ServerLocation, ...]:
        """The user's notebook pods, by server name then namespace and pod name."""
        found = self._by_user.get(user, {}).values()
        return tuple(sorted(found, key=lambda s: (s.server, s.namespace, s.pod)))

    def all(self) -> tuple[ServerLocation, ...]:
        """Every notebook pod."""
        return tuple(self._by_pod.values())

    def server(self, user: str, server: str = "") -> ServerLocation | None:
        """One named server (the default server is ""); a running pod wins over a pending one."""
        found = [s for s in self.servers(user) if s.server == server]
        found.sort(key=lambda s: s.phase != "Running")
        return found[0] if found else None
