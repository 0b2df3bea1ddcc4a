"""The emulated kubelets of one cluster: start bound pods, report their status, stop deleted ones.

This is the ``simulated`` runtime: no process runs. Two pod annotations script a container's life,
for controllers whose pods must finish (Argo steps, Katib trials):
``simcluster.hybridhub.io/stdout`` is written to each container's log when it starts, and
``simcluster.hybridhub.io/exit-after`` (seconds) with ``simcluster.hybridhub.io/exit-code``
ends the containers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import secrets
from collections.abc import Mapping
from typing import Any

from .config import Timings
from .controller import Controller
from .errors import ApiError
from .events import EventRecorder
from .logs import PodLogs
from .scheduler import is_terminal, set_condition
from .store import Store, WatchEvent, clone

__all__ = ["ANNOTATION_EXIT_AFTER", "ANNOTATION_EXIT_CODE", "ANNOTATION_STDOUT", "Kubelet"]

ANNOTATION_STDOUT = "simcluster.hybridhub.io/stdout"
ANNOTATION_EXIT_AFTER = "simcluster.hybridhub.io/exit-after"
ANNOTATION_EXIT_CODE = "simcluster.hybridhub.io/exit-code"

PodKey = tuple[str, str]


class Kubelet(Controller):
    """All nodes' kubelets, as one controller (the simulated runtime)."""

    name = "kubelet"

    def __init__(self, store: Store, logs: PodLogs, timings: Timings) -> None:
        super().__init__(store)
        self.logs = logs
        self.timings = timings
        self.events = EventRecorder(store, "kubelet")
        self._pods = store.registry.core("pods")
        self._nodes = store.registry.core("nodes")
        self._starting: dict[PodKey, float] = {}  # pod -> when it runs
        self._exiting: dict[PodKey, float] = {}  # pod -> when its containers end
        self._stopping: dict[PodKey, float] = {}  # pod -> when it is gone
        self._orphans: set[str] = set()  # removed nodes whose pods must go
        self._ips: dict[str, set[str]] = {}  # node -> pod IPs in use

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def node_ready(self, name: str) -> bool:
        node = self.store.find(self._nodes, None, name)
        if node is None:
            return False
        return any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (node.get("status") or {}).get("conditions") or []
        )

    def observe(self, event: WatchEvent) -> bool:
        if not event.rt.builtin:
            return False
        if event.rt.kind == "Node":
            if event.type == "DELETED":
                self._orphans.add(event.obj["metadata"]["name"])
            return True  # a node became ready: pods bound to it may start
        if event.rt.kind != "Pod":
            return False
        pod = event.obj
        meta, spec = pod["metadata"], pod.get("spec") or {}
        key = (meta["namespace"], meta["name"])
        if event.type == "DELETED":
            for table in (self._starting, self._exiting, self._stopping):
                table.pop(key, None)
            self._release_ip(pod)
            self.logs.forget(*key)
            return False
        node = spec.get("nodeName")
        if not node:
            return False
        if meta.get("deletionTimestamp"):
            if key not in self._stopping:
                grace = float(meta.get("deletionGracePeriodSeconds") or 0)
                self._starting.pop(key, None)
                self._exiting.pop(key, None)
                self._stopping[key] = self._now() + min(grace, self.timings.pod_stop)
                return True
            return False
        status = pod.get("status") or {}
        if status.get("phase") == "Pending" and not status.get("podIP") and key not in self._starting:
            self._starting[key] = self._now() + self.timings.pod_start
            return True
        return False

    def reconcile(self) -> float | None:
        now = self._now()
        for node in list(self._orphans):
            self._orphans.discard(node)
            self._delete_pods_on(node)
        for key, due in list(self._stopping.items()):
            if due <= now:
                del self._stopping[key]
                self._finish_deletion(key)
        for key, due in list(self._exiting.items()):
            if due <= now:
                del self._exiting[key]
                self._exit(key)
        for key, due in list(self._starting.items()):
            if due <= now:
                pod = self.store.find(self._pods, *key)
                if pod is None:
                    del self._starting[key]
                elif self.node_ready(pod["spec"]["nodeName"]):
                    del self._starting[key]
                    self._start(pod)
        pending = [*self._stopping.values(), *self._exiting.values()]
        pending += [d for k, d in self._starting.items() if self._startable(k)]
        return min(pending) if pending else None

    def _startable(self, key: PodKey) -> bool:
        pod = self.store.find(self._pods, *key)
        return pod is not None and self.node_ready(pod["spec"]["nodeName"])

    # ------------------------------------------------------------------ lifecycle

    def _pod_ip(self, node_name: str) -> str:
        node = self.store.find(self._nodes, None, node_name) or {}
        cidr = (node.get("spec") or {}).get("podCIDR") or "10.244.0.0/24"
        used = self._ips.setdefault(node_name, set())
        for host in list(ipaddress.ip_network(cidr).hosts())[1:]:
            ip = str(host)
            if ip not in used:
                used.add(ip)
                return ip
        raise RuntimeError(f"node {node_name} is out of pod IPs")

    def _release_ip(self, pod: Mapping[str, Any]) -> None:
        node = (pod.get("spec") or {}).get("nodeName")
        ip = (pod.get("status") or {}).get("podIP")
        if node and ip:
            self._ips.get(node, set()).discard(ip)

    def _host_ip(self, node_name: str) -> str:
        node = self.store.find(self._nodes, None, node_name) or {}
        for addr in (node.get("status") or {}).get("addresses") or []:
            if addr.get("type") == "InternalIP":
                return str(addr["address"])
        return ""

    def _start(self, pod: Mapping[str, Any]) -> None:
        new = clone(pod)
        meta, spec = new["metadata"], new["spec"]
        node = spec["nodeName"]
        now = self.store.now()
        ip = self._pod_ip(node)
        host_ip = self._host_ip(node)
        for c in spec["containers"]:
            image = c["image"]
            field = f"spec.containers{{{c['name']}}}"
            self.events.record(
                pod, "Normal", "Pulling", f'Pulling image "{image}"', host=node, field_path=field
            )
            self.events.record(
                pod, "Normal", "Pulled",
                f'Successfully pulled image "{image}" in 412ms (412ms including waiting). '
                "Image size: 1 bytes.", host=node, field_path=field,
            )  # fmt: skip
            self.events.record(
                pod,
                "Normal",
                "Created",
                f"Created container: {c['name']}",
                host=node,
                field_path=field,
            )
            self.events.record(
                pod,
                "Normal",
                "Started",
                f"Started container {c['name']}",
                host=node,
                field_path=field,
            )
        annotations = meta.get("annotations") or {}
        stdout = annotations.get(ANNOTATION_STDOUT)
        if stdout:
            for c in spec["containers"]:
                self.logs.write(meta["namespace"], meta["name"], c["name"], stdout)
        status = new.setdefault("status", {})
        status.update(
            phase="Running",
            podIP=ip,
            podIPs=[{"ip": ip}],
            hostIP=host_ip,
            hostIPs=[{"ip": host_ip}] if host_ip else [],
            startTime=now,
        )
        status["containerStatuses"] = [_running(c, now) for c in spec["containers"]]
        for cond in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready"):
            set_condition(status, cond, "True", None, None, now)
        try:
            self.store.system_update(self._pods, new)
        except ApiError:
            self._ips.get(node, set()).discard(ip)
            return
        exit_after = annotations.get(ANNOTATION_EXIT_AFTER)
        if exit_after is not None:
            try:
                delay = float(exit_after)
            except ValueError:
                delay = 0.0
            self._exiting[(meta["namespace"], meta["name"])] = self._now() + max(0.0, delay)

    def _exit(self, key: PodKey) -> None:
        pod = self.store.find(self._pods, *key)
        if pod is None or is_terminal(pod) or pod["metadata"].get("deletionTimestamp"):
            return
        try:
            code = int((pod["metadata"].get("annotations") or {}).get(ANNOTATION_EXIT_CODE, "0"))
        except ValueError:
            code = 1
        new = clone(pod)
        now = self.store.now()
        status = new["status"]
        policy = new["spec"].get("restartPolicy", "Always")
        if policy == "Always" or (policy == "OnFailure" and code != 0):
            for cs in status.get("containerStatuses") or []:
                cs["lastState"] = {"terminated": _terminated(code, now, cs)["terminated"]}
                cs["restartCount"] = int(cs.get("restartCount", 0)) + 1
                cs["state"] = {"running": {"startedAt": now}}
            self._exiting[key] = self._now() + float(
                (pod["metadata"].get("annotations") or {}).get(ANNOTATION_EXIT_AFTER, "0") or 0
            )
        else:
            status["phase"] = "Succeeded" if code == 0 else "Failed"
            for cs in status.get("containerStatuses") or []:
                cs.update(_terminated(code, now, cs), ready=False, started=False)
                self.logs.close(key[0], key[1], cs["name"])
            for cond in ("ContainersReady", "Ready"):
                set_condition(status, cond, "False", "PodCompleted", None, now)
        try:
            self.store.system_update(self._pods, new)
        except ApiError:
            return
        if status.get("phase") in {"Succeeded", "Failed"}:
            self._release_ip(new)

    def _finish_deletion(self, key: PodKey) -> None:
        pod = self.store.find(self._pods, *key)
        if pod is None:
            return
        new = clone(pod)
        now = self.store.now()
        node = new["spec"].get("nodeName", "")
        for c in new["spec"]["containers"]:
            if (new.get("status") or {}).get("phase") == "Running":
                self.events.record(
                    pod, "Normal", "Killing", f"Stopping container {c['name']}", host=node,
                    field_path=f"spec.containers{{{c['name']}}}",
                )  # fmt: skip
        for cs in (new.get("status") or {}).get("containerStatuses") or []:
            if "running" in cs.get("state", {}):
                cs.update(_terminated(0, now, cs), ready=False, started=False)
        new["metadata"]["deletionGracePeriodSeconds"] = 0
        try:
            self.store.system_update(self._pods, new)
        except ApiError:
            return

    def _delete_pods_on(self, node: str) -> None:
        """Pod garbage collection: pods bound to a node that no longer exists are force-deleted."""
        for pod in self.store.list(self._pods):
            if (pod.get("spec") or {}).get("nodeName") == node:
                meta = pod["metadata"]
                try:
                    self.store.delete(self._pods, meta["namespace"], meta["name"], grace_period=0)
                except ApiError:
                    continue
        self._ips.pop(node, None)


def _running(container: Mapping[str, Any], now: str) -> dict[str, Any]:
    return {
        "name": container["name"],
        "image": container["image"],
        "imageID": f"{container['image']}@sha256:{secrets.token_hex(32)}",
        "containerID": f"containerd://{secrets.token_hex(32)}",
        "ready": True,
        "started": True,
        "restartCount": 0,
        "state": {"running": {"startedAt": now}},
        "lastState": {},
    }


def _terminated(code: int, now: str, cs: Mapping[str, Any]) -> dict[str, Any]:
    started = (cs.get("state") or {}).get("running", {}).get("startedAt", now)
    return {
        "state": {
            "terminated": {
                "exitCode": code,
                "reason": "Completed" if code == 0 else "Error",
                "startedAt": started,
                "finishedAt": now,
                "containerID": cs.get("containerID", ""),
            }
        }
    }
