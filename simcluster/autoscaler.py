"""The emulated cluster-autoscaler: grows elastic pools for unschedulable pods, shrinks idle ones."""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from .config import ClusterSpec, NodeGroup
from .controller import Controller
from .errors import ApiError
from .events import EventRecorder
from .nodes import AddressPool, make_node
from .scheduler import NodeUsage, set_condition
from .scheduling import NodeInfo, filter_node, pod_requests
from .store import Store, WatchEvent, clone

__all__ = ["GROUP_LABEL", "Autoscaler", "create_node"]

GROUP_LABEL = "simcluster.hybridhub.io/node-group"
PodKey = tuple[str, str]


@dataclass
class _Upcoming:
    """A node the autoscaler asked for and the pods it expects to land there."""

    pool: NodeGroup
    due: float  # when the node registers; then when it turns Ready; then when we stop waiting
    node: str | None = None  # set once the node exists
    ready: bool = False
    requested: dict[str, Decimal] = field(default_factory=dict)
    pods: set[PodKey] = field(default_factory=set)


def create_node(
    store: Store, spec: ClusterSpec, addresses: AddressPool, group: NodeGroup, *, ready: bool
) -> dict[str, Any]:
    """Register a node of ``group`` (named as its cloud names nodes)."""
    ip = addresses.node_ip()
    if spec.role == "cloud":
        name = f"ip-{ip.replace('.', '-')}.ec2.internal"
        provider = "aws:///us-east-1a"
    else:
        taken = {n["metadata"]["name"] for n in store.list(store.registry.core("nodes"))}
        index = 1
        while f"{group.name}-{index}" in taken:
            index += 1
        name, provider = f"{group.name}-{index}", ""
    node = make_node(group, name, ip, addresses.pod_cidr(), store.now(), ready=ready, provider=provider)
    return store.create(store.registry.core("nodes"), None, node, keep_status=True)


class Autoscaler(Controller):
    """cluster-autoscaler for the elastic pools of one cluster."""

    name = "autoscaler"

    def __init__(self, store: Store, spec: ClusterSpec, addresses: AddressPool, usage: NodeUsage) -> None:
        super().__init__(store)
        self.spec = spec
        self.addresses = addresses
        self.usage = usage
        self.pools = [g for g in spec.node_groups if g.elastic]
        self.events = EventRecorder(store, "cluster-autoscaler")
        self._pods = store.registry.core("pods")
        self._nodes = store.registry.core("nodes")
        self._unschedulable: dict[PodKey, None] = {}
        self._upcoming: list[_Upcoming] = []  # asked for, registering, or just Ready
        self._idle_since: dict[str, float] = {}
        self._said: dict[PodKey, str] = {}  # last NotTriggerScaleUp message per pod

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def observe(self, event: WatchEvent) -> bool:
        if not self.pools or not event.rt.builtin:
            return False
        if event.rt.kind == "Node":
            return True
        if event.rt.kind != "Pod":
            return False
        pod, meta = event.obj, event.obj["metadata"]
        key = (meta["namespace"], meta["name"])
        if event.type == "DELETED" or (pod.get("spec") or {}).get("nodeName"):
            self._unschedulable.pop(key, None)
            self._said.pop(key, None)
            for up in self._upcoming:
                up.pods.discard(key)
            return True  # a node may have become idle or busy
        unschedulable = any(
            c.get("type") == "PodScheduled" and c.get("reason") == "Unschedulable"
            for c in (pod.get("status") or {}).get("conditions") or []
        )
        if unschedulable and key not in self._unschedulable:
            self._unschedulable[key] = None
            return True
        return False

    def pool_size(self, pool: NodeGroup) -> int:
        nodes = self.store.list(self._nodes)
        existing = sum(1 for n in nodes if (n["metadata"].get("labels") or {}).get(GROUP_LABEL) == pool.name)
        return existing + sum(1 for up in self._upcoming if up.pool is pool and up.node is None)

    def reconcile(self) -> float | None:
        if not self.pools:
            return None
        now = self._now()
        self._provision(now)
        self._scale_up(now)
        due = self._scale_down(now)
        times = [up.due for up in self._upcoming]
        if due is not None:
            times.append(due)
        return min(times) if times else None

    # ------------------------------------------------------------------ scale up

    def _template(self, pool: NodeGroup, requested: Mapping[str, Decimal] | None = None) -> NodeInfo:
        node = make_node(pool, f"template-{pool.name}", "0.0.0.0", "0.0.0.0/24", self.store.now())
        return NodeInfo(
            name=node["metadata"]["name"],
            labels=node["metadata"]["labels"],
            taints=tuple(node["spec"].get("taints") or ()),
            unschedulable=False,
            ready=True,
            allocatable=NodeInfo.from_node(node).allocatable,
            requested=dict(requested or {}),
        )

    def _scale_up(self, now: float) -> None:
        waiting = {k for up in self._upcoming for k in up.pods}
        for key in list(self._unschedulable):
            if key in waiting:
                continue
            pod = self.store.find(self._pods, *key)
            if pod is None or (pod.get("spec") or {}).get("nodeName"):
                self._unschedulable.pop(key, None)
                continue
            conditions = (pod.get("status") or {}).get("conditions") or []
            if any("PersistentVolumeClaim" in str(c.get("message", "")) for c in conditions):
                continue  # not a capacity problem: a new node would not help
            requests = pod_requests(pod)
            # a node already on its way may have room
            for up in self._upcoming:
                if not filter_node(pod, self._template(up.pool, up.requested)):
                    self._reserve(up, key, requests)
                    break
            else:
                self._trigger(pod, key, requests, now)

    def _reserve(self, up: _Upcoming, key: PodKey, requests: Mapping[str, Decimal]) -> None:
        up.pods.add(key)
        for res, qty in requests.items():
            up.requested[res] = up.requested.get(res, Decimal(0)) + qty

    def _trigger(
        self, pod: Mapping[str, Any], key: PodKey, requests: Mapping[str, Decimal], now: float
    ) -> None:
        reasons: Counter[str] = Counter()
        for pool in self.pools:
            size = self.pool_size(pool)
            failed = filter_node(pod, self._template(pool))
            if failed:
                reasons.update(failed)
            elif size >= pool.max:
                reasons["max node group size reached"] += 1
            else:
                up = _Upcoming(pool, now + self.spec.timings.scale_up)
                self._upcoming.append(up)
                self._reserve(up, key, requests)
                self._said.pop(key, None)
                self.events.record(
                    pod,
                    "Normal",
                    "TriggeredScaleUp",
                    f"pod triggered scale-up: [{{{pool.name} {size}->{size + 1} (max: {pool.max})}}]",
                )
                return
        message = "pod didn't trigger scale-up: " + ", ".join(
            sorted(f"{count} {reason}" for reason, count in reasons.items())
        )
        if self._said.get(key) != message:
            self._said[key] = message
            self.events.record(pod, "Normal", "NotTriggerScaleUp", message)

    def _provision(self, now: float) -> None:
        """Register due nodes, make registered ones Ready, and drop them once their pods landed."""
        timings = self.spec.timings
        for up in list(self._upcoming):
            up.pods = {k for k in up.pods if k in self._unschedulable}
            if up.due > now:
                if up.ready and not up.pods:
                    self._upcoming.remove(up)  # everything it was for is placed
                continue
            if up.node is None:
                try:
                    node = create_node(self.store, self.spec, self.addresses, up.pool, ready=False)
                except ApiError:
                    self._upcoming.remove(up)
                    continue
                up.node, up.due = node["metadata"]["name"], now + timings.node_ready
            elif not up.ready:
                self._mark_ready(up.node)
                up.ready, up.due = True, now + max(10.0, timings.scale_up)
            else:
                self._upcoming.remove(up)  # its pods did not land there: consider them afresh

    def _mark_ready(self, name: str) -> None:
        node = self.store.find(self._nodes, None, name)
        if node is None:
            return
        new = clone(node)
        set_condition(
            new["status"],
            "Ready",
            "True",
            "KubeletReady",
            "kubelet is posting ready status",
            self.store.now(),
        )
        for cond in new["status"]["conditions"]:
            if cond["type"] == "Ready":
                cond["lastHeartbeatTime"] = cond["lastTransitionTime"]
                cond.pop("lastProbeTime", None)
        self.store.system_update(self._nodes, new)

    # ------------------------------------------------------------------ scale down

    def _scale_down(self, now: float) -> float | None:
        due: list[float] = []
        pools = {p.name: p for p in self.pools}
        for node in self.store.list(self._nodes):
            name = node["metadata"]["name"]
            pool = pools.get((node["metadata"].get("labels") or {}).get(GROUP_LABEL, ""))
            if pool is None or any(up.node == name for up in self._upcoming):
                continue
            if self.usage.pods_on(name):
                self._idle_since.pop(name, None)
                continue
            since = self._idle_since.setdefault(name, now)
            if now - since < self.spec.timings.scale_down_idle:
                due.append(since + self.spec.timings.scale_down_idle)
                continue
            if self.pool_size(pool) <= pool.min:
                continue
            self._idle_since.pop(name, None)
            self.events.record(node, "Normal", "ScaleDown", "node removed by cluster autoscaler")
            try:
                self.store.delete(self._nodes, None, name)
            except ApiError:
                continue
            self.addresses.release(node)
        return min(due) if due else None
