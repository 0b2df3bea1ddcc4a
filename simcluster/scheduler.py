"""The emulated kube-scheduler: binds pending pods to nodes or records why they cannot be placed."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from decimal import Decimal
from typing import Any

from .controller import Controller
from .errors import ApiError
from .events import EventRecorder
from .scheduling import NodeInfo, pod_requests, schedule
from .store import Store, WatchEvent, clone

__all__ = ["NodeUsage", "Scheduler", "is_terminal", "set_condition"]

PodKey = tuple[str, str]


def is_terminal(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") in {"Succeeded", "Failed"}


class NodeUsage:
    """What the pods bound to each node request, kept up to date from store events."""

    def __init__(self) -> None:
        self.bound: dict[PodKey, tuple[str, dict[str, Decimal]]] = {}
        self.requested: dict[str, dict[str, Decimal]] = {}

    def observe_pod(self, event: WatchEvent) -> bool:
        """Update from a pod event; True when resources were released (a retry may now fit)."""
        pod = event.obj
        meta = pod["metadata"]
        key = (meta["namespace"], meta["name"])
        node = (pod.get("spec") or {}).get("nodeName")
        if event.type == "DELETED" or is_terminal(pod) or not node:
            return self._release(key)
        if key not in self.bound:
            requests = pod_requests(pod)
            self.bound[key] = (node, requests)
            totals = self.requested.setdefault(node, {})
            for res, qty in requests.items():
                totals[res] = totals.get(res, Decimal(0)) + qty
        return False

    def _release(self, key: PodKey) -> bool:
        found = self.bound.pop(key, None)
        if found is None:
            return False
        node, requests = found
        totals = self.requested.get(node, {})
        for res, qty in requests.items():
            totals[res] = totals.get(res, Decimal(0)) - qty
        return True

    def pods_on(self, node: str) -> list[PodKey]:
        return [key for key, (n, _) in self.bound.items() if n == node]


class Scheduler(Controller):
    """Schedules pods whose ``schedulerName`` is ``default-scheduler``, oldest first."""

    name = "scheduler"

    def __init__(self, store: Store, usage: NodeUsage) -> None:
        super().__init__(store)
        self.usage = usage
        self.events = EventRecorder(store, "default-scheduler")
        self._pods = store.registry.core("pods")
        self._nodes = store.registry.core("nodes")
        self._pvcs = store.registry.core("persistentvolumeclaims")
        self._pending: dict[PodKey, None] = {}  # an ordered set
        self._unschedulable: dict[PodKey, None] = {}

    def observe(self, event: WatchEvent) -> bool:
        kind = event.rt.kind
        if kind == "Pod" and event.rt.builtin:
            released = self.usage.observe_pod(event)
            pod = event.obj
            meta, spec = pod["metadata"], pod.get("spec") or {}
            key = (meta["namespace"], meta["name"])
            waiting = (
                event.type != "DELETED"
                and not spec.get("nodeName")
                and spec.get("schedulerName", "default-scheduler") == "default-scheduler"
                and not meta.get("deletionTimestamp")
                and not is_terminal(pod)
            )
            if not waiting:
                self._pending.pop(key, None)
                self._unschedulable.pop(key, None)
            elif key not in self._unschedulable:
                self._pending[key] = None
            if released:
                self._retry_unschedulable()
            return bool(self._pending)
        if kind in {"Node", "PersistentVolumeClaim"} and event.rt.builtin:
            self._retry_unschedulable()
            return bool(self._pending)
        return False

    def _retry_unschedulable(self) -> None:
        self._pending.update(self._unschedulable)
        self._unschedulable.clear()

    def node_infos(self) -> list[NodeInfo]:
        infos = []
        for node in self.store.list(self._nodes):
            info = NodeInfo.from_node(node)
            requested = self.usage.requested.get(node["metadata"]["name"], {})
            infos.append(dataclasses.replace(info, requested=dict(requested)))
        return infos

    def reconcile(self) -> float | None:
        if not self._pending:
            return None
        nodes = self.node_infos()
        by_name = {n.name: i for i, n in enumerate(nodes)}
        while self._pending:
            key = next(iter(self._pending))
            del self._pending[key]
            pod = self.store.find(self._pods, *key)
            if pod is None or (pod.get("spec") or {}).get("nodeName"):
                continue
            message = self._volume_problem(pod, len(nodes))
            decision = None if message else schedule(pod, nodes)
            if decision is not None and decision.node is not None:
                self._bind(pod, decision.node, decision.message)
                i = by_name[decision.node]
                requested = dict(nodes[i].requested)
                for res, qty in pod_requests(pod).items():
                    requested[res] = requested.get(res, Decimal(0)) + qty
                nodes[i] = dataclasses.replace(nodes[i], requested=requested)
            else:
                self._unschedulable[key] = None
                self._mark_unschedulable(pod, message or (decision.message if decision else ""))
        return None

    def _volume_problem(self, pod: Mapping[str, Any], n_nodes: int) -> str | None:
        """kube-scheduler's message for a pod whose PVCs are missing or unbound, else None."""
        namespace = pod["metadata"]["namespace"]
        for volume in (pod.get("spec") or {}).get("volumes") or []:
            claim = (volume.get("persistentVolumeClaim") or {}).get("claimName")
            if not claim:
                continue
            pvc = self.store.find(self._pvcs, namespace, claim)
            if pvc is None:
                problem = f'persistentvolumeclaim "{claim}" not found'
            elif (pvc.get("status") or {}).get("phase") != "Bound":
                problem = "pod has unbound immediate PersistentVolumeClaims"
            else:
                continue
            return (
                f"0/{n_nodes} nodes are available: {problem}. preemption: 0/{n_nodes} nodes are "
                f"available: {n_nodes} Preemption is not helpful for scheduling."
            )
        return None

    def _bind(self, pod: Mapping[str, Any], node: str, message: str) -> None:
        new = clone(pod)
        new["spec"]["nodeName"] = node
        status = new.setdefault("status", {})
        set_condition(status, "PodScheduled", "True", None, None, self.store.now())
        try:
            stored = self.store.system_update(self._pods, new)
        except ApiError:
            return
        self.events.record(stored, "Normal", "Scheduled", message)

    def _mark_unschedulable(self, pod: Mapping[str, Any], message: str) -> None:
        new = clone(pod)
        status = new.setdefault("status", {})
        set_condition(status, "PodScheduled", "False", "Unschedulable", message, self.store.now())
        try:
            stored = self.store.system_update(self._pods, new)
        except ApiError:
            return
        self.events.record(stored, "Warning", "FailedScheduling", message)


def set_condition(
    status: dict[str, Any],
    type_: str,
    value: str,
    reason: str | None,
    message: str | None,
    now: str,
) -> None:
    conditions = status.setdefault("conditions", [])
    for cond in conditions:
        if cond.get("type") == type_:
            if cond.get("status") != value:
                cond["lastTransitionTime"] = now
            cond.update(status=value, lastProbeTime=None)
            _set_or_drop(cond, "reason", reason)
            _set_or_drop(cond, "message", message)
            return
    cond = {"type": type_, "status": value, "lastProbeTime": None, "lastTransitionTime": now}
    _set_or_drop(cond, "reason", reason)
    _set_or_drop(cond, "message", message)
    conditions.append(cond)


def _set_or_drop(d: dict[str, Any], key: str, value: str | None) -> None:
    if value is None:
        d.pop(key, None)
    else:
        d[key] = value
