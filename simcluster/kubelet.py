"""The emulated kubelets of one cluster: start bound pods in a runtime, report status, stop them."""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import secrets
from collections.abc import Coroutine, Mapping
from typing import Any

from .config import Timings
from .controller import Controller
from .errors import ApiError
from .events import EventRecorder
from .logs import PodLogs
from .runtimes.base import ContainerError, Runtime, pod_key
from .scheduler import is_terminal, set_condition
from .store import Store, WatchEvent, clone

__all__ = ["Kubelet"]

log = logging.getLogger(__name__)

PodKey = tuple[str, str]
MAX_BACKOFF = 10.0  # seconds between restarts of a crashing container (the kubelet's is 5 minutes)


class Kubelet(Controller):
    """All nodes' kubelets, as one controller driving one runtime."""

    name = "kubelet"

    def __init__(self, store: Store, logs: PodLogs, timings: Timings, runtime: Runtime) -> None:
        super().__init__(store)
        self.logs = logs
        self.timings = timings
        self.runtime = runtime
        self.events = EventRecorder(store, "kubelet")
        self._pods = store.registry.core("pods")
        self._nodes = store.registry.core("nodes")
        self._starting: dict[PodKey, float] = {}  # pod -> when its images are "pulled"
        self._started: set[PodKey] = set()  # the runtime holds these pods
        self._stopping: set[PodKey] = set()
        self._orphans: set[str] = set()  # removed nodes whose pods must go
        self._ips: dict[str, set[str]] = {}  # node -> pod IPs in use
        self._tasks: set[asyncio.Task[Any]] = set()
        self._hosts_stale = False  # services or pod IPs changed since /etc/hosts files were written

    def _now(self) -> float:
        return asyncio.get_running_loop().time()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("kubelet task failed", exc_info=task.exception())

    async def stop(self) -> None:
        await super().stop()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.runtime.close()

    def node_ready(self, name: str) -> bool:
        node = self.store.find(self._nodes, None, name)
        return node is not None and any(
            c.get("type") == "Ready" and c.get("status") == "True"
            for c in (node.get("status") or {}).get("conditions") or []
        )

    # ------------------------------------------------------------------ watching

    def observe(self, event: WatchEvent) -> bool:
        return self._observe(event) or self._hosts_stale

    def _observe(self, event: WatchEvent) -> bool:
        if not event.rt.builtin:
            return False
        if event.rt.kind == "Service":
            self._hosts_stale = True
            return True
        if event.rt.kind == "PersistentVolumeClaim" and event.type == "DELETED":
            self.runtime.forget_volume(event.obj["metadata"]["uid"])
            return False
        if event.rt.kind == "Pod" and (
            event.prev is None
            or (event.prev.obj.get("status") or {}).get("podIP")
            != (event.obj.get("status") or {}).get("podIP")
            or event.type == "DELETED"
        ):
            self._hosts_stale = True
        if event.rt.kind == "Node":
            if event.type == "DELETED":
                self._orphans.add(event.obj["metadata"]["name"])
            return True  # a node became ready: pods bound to it may start
        if event.rt.kind != "Pod":
            return False
        pod = event.obj
        meta, spec = pod["metadata"], pod.get("spec") or {}
        key = pod_key(pod)
        if event.type == "DELETED":
            self._starting.pop(key, None)
            if key in self._started and key not in self._stopping:
                self._stopping.add(key)  # force-deleted: the processes must still go
                self._spawn(self._stop(key, pod, 0.0, finish=False))
            self._release_ip(pod)
            self.logs.forget(*key)
            return False
        if not spec.get("nodeName"):
            return False
        if meta.get("deletionTimestamp"):
            if key not in self._stopping:
                self._stopping.add(key)
                self._starting.pop(key, None)
                grace = float(meta.get("deletionGracePeriodSeconds") or 0)
                self._spawn(self._stop(key, pod, grace, finish=True))
            return False
        status = pod.get("status") or {}
        if (
            status.get("phase") == "Pending"
            and key not in self._starting
            and key not in self._started
            and not status.get("containerStatuses")
        ):
            self._starting[key] = self._now() + self.timings.pod_start
            return True
        return False

    def reconcile(self) -> float | None:
        if self._hosts_stale:
            self._hosts_stale = False
            self.runtime.refresh_hosts()
        for node in list(self._orphans):
            self._orphans.discard(node)
            self._delete_pods_on(node)
        now = self._now()
        waiting = []
        for key, due in list(self._starting.items()):
            pod = self.store.find(self._pods, *key)
            if pod is None:
                del self._starting[key]
            elif not self.node_ready(pod["spec"]["nodeName"]):
                continue  # starts once its node is Ready (a node event wakes us)
            elif due <= now:
                del self._starting[key]
                self._started.add(key)
                self._spawn(self._start(key))
            else:
                waiting.append(due)
        return min(waiting) if waiting else None

    # ------------------------------------------------------------------ addresses

    def _pod_ip(self, node_name: str) -> str:
        node = self.store.find(self._nodes, None, node_name) or {}
        cidr = (node.get("spec") or {}).get("podCIDR") or "10.244.0.0/24"
        used = self._ips.setdefault(node_name, set())
        # lazily: building all 254 addresses of a /24 per pod start was a quarter of the server's CPU
        hosts = iter(ipaddress.ip_network(cidr).hosts())
        next(hosts, None)  # the first address is the node's bridge
        for host in hosts:
            ip = str(host)
            if ip not in used:
                used.add(ip)
                return ip
        raise ContainerError("", f"node {node_name} is out of pod IPs")

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

    # ------------------------------------------------------------------ lifecycle

    def _write(self, key: PodKey, mutate: Any) -> dict[str, Any] | None:
        """Apply ``mutate(pod)`` to the stored pod's status; None when the pod is gone."""
        pod = self.store.find(self._pods, *key)
        if pod is None:
            return None
        new = clone(pod)
        mutate(new)
        try:
            return self.store.system_update(self._pods, new)
        except ApiError:
            return None

    async def _start(self, key: PodKey) -> None:
        pod = self.store.find(self._pods, *key)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            self._started.discard(key)
            return
        node = pod["spec"]["nodeName"]
        for c in pod["spec"]["containers"]:
            fp = f"spec.containers{{{c['name']}}}"
            self.events.record(
                pod, "Normal", "Pulling", f'Pulling image "{c["image"]}"', host=node, field_path=fp
            )
            self.events.record(
                pod,
                "Normal",
                "Pulled",
                f'Successfully pulled image "{c["image"]}" in 412ms (412ms including waiting). '
                "Image size: 1 bytes.",
                host=node,
                field_path=fp,
            )
        try:
            ip = await self.runtime.start_pod(pod, lambda: self._pod_ip(node), self._exit_callback(key))
        except ContainerError as err:
            self._started.discard(key)
            self._failed_to_start(key, node, err)
            return
        self._ips.setdefault(node, set()).add(ip)
        pod = self.store.find(self._pods, *key)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return  # deleted while starting: the stop task tears it down
        for c in pod["spec"]["containers"]:
            fp = f"spec.containers{{{c['name']}}}"
            self.events.record(
                pod, "Normal", "Created", f"Created container: {c['name']}", host=node, field_path=fp
            )
            self.events.record(
                pod, "Normal", "Started", f"Started container {c['name']}", host=node, field_path=fp
            )
        now, host_ip = self.store.now(), self._host_ip(node)

        def running(p: dict[str, Any]) -> None:
            status = p.setdefault("status", {})
            status.update(
                phase="Running",
                podIP=ip,
                podIPs=[{"ip": ip}],
                hostIP=host_ip,
                hostIPs=[{"ip": host_ip}] if host_ip else [],
                startTime=now,
            )
            done = {cs["name"]: cs for cs in status.get("containerStatuses") or []}
            status["containerStatuses"] = [
                done.get(c["name"]) or _running(c, now) for c in p["spec"]["containers"]
            ]
            for cond in ("PodReadyToStartContainers", "Initialized", "ContainersReady", "Ready"):
                set_condition(status, cond, "True", None, None, now)
            _settle(p, now)

        self._write(key, running)

    def _failed_to_start(self, key: PodKey, node: str, err: ContainerError) -> None:
        pod = self.store.find(self._pods, *key)
        if pod is None:
            return
        self.events.record(pod, "Warning", "Failed", f"Error: {err.message}", host=node)
        never = pod["spec"].get("restartPolicy", "Always") == "Never"

        def failed(p: dict[str, Any]) -> None:
            status = p.setdefault("status", {})
            status["containerStatuses"] = [
                {
                    "name": c["name"],
                    "image": c["image"],
                    "imageID": "",
                    "ready": False,
                    "started": False,
                    "restartCount": 0,
                    "state": {"waiting": {"reason": err.reason, "message": err.message}},
                }
                for c in p["spec"]["containers"]
            ]
            if never:
                status["phase"] = "Failed"

        self._write(key, failed)

    def _exit_callback(self, key: PodKey) -> Any:
        def on_exit(container: str, code: int) -> None:
            self._exited(key, container, code)

        return on_exit

    def _exited(self, key: PodKey, container: str, code: int) -> None:
        pod = self.store.find(self._pods, *key)
        if pod is None or pod["metadata"].get("deletionTimestamp") or is_terminal(pod):
            return
        policy = pod["spec"].get("restartPolicy", "Always")
        restart = policy == "Always" or (policy == "OnFailure" and code != 0)
        now = self.store.now()
        restarts = 0

        def record(p: dict[str, Any]) -> None:
            nonlocal restarts
            status = p["status"]
            if not status.get("containerStatuses"):
                # a container that ends while the pod's later containers still start (a Katib trial's
                # wrapped command beside its collector sidecar) ends before the start is recorded
                status["containerStatuses"] = [_running(c, now) for c in p["spec"]["containers"]]
            for cs in status.get("containerStatuses") or []:
                if cs["name"] != container:
                    continue
                ended = _terminated(code, now, cs)
                cs.update(ready=False, started=False)
                if restart:
                    cs["lastState"] = ended
                    cs["restartCount"] = restarts = int(cs.get("restartCount", 0)) + 1
                    backoff = f"back-off restarting failed container {container}"
                    cs["state"] = {"waiting": {"reason": "CrashLoopBackOff", "message": backoff}}
                else:
                    cs["state"] = ended
            _settle(p, now)

        stored = self._write(key, record)
        if stored is None:
            return
        if restart:
            self._spawn(self._restart(key, container, min(MAX_BACKOFF, 0.5 * 2 ** (restarts - 1))))
        else:
            self.logs.close(key[0], key[1], container)
            if is_terminal(stored):  # every container ended: the sandbox goes, the logs stay
                self._release_ip(stored)
                self._spawn(self._teardown(key, stored))

    async def _teardown(self, key: PodKey, pod: Mapping[str, Any]) -> None:
        if key in self._started and key not in self._stopping:
            self._stopping.add(key)
            try:
                await self.runtime.stop_pod(pod, 0.0)
            finally:
                self._started.discard(key)
                self._stopping.discard(key)

    async def _restart(self, key: PodKey, container: str, delay: float) -> None:
        await asyncio.sleep(delay)
        pod = self.store.find(self._pods, *key)
        if pod is None or pod["metadata"].get("deletionTimestamp"):
            return
        try:
            await self.runtime.restart_container(pod, container, self._exit_callback(key))
        except ContainerError as err:
            self.events.record(
                pod, "Warning", "Failed", f"Error: {err.message}", host=pod["spec"]["nodeName"]
            )
            return
        now = self.store.now()

        def running(p: dict[str, Any]) -> None:
            for cs in p["status"].get("containerStatuses") or []:
                if cs["name"] == container:
                    cs.update(state={"running": {"startedAt": now}}, ready=True, started=True)
            _settle(p, now)

        self._write(key, running)

    async def _stop(self, key: PodKey, pod: Mapping[str, Any], grace: float, *, finish: bool) -> None:
        try:
            if key in self._started:
                node = pod["spec"].get("nodeName", "")
                if (pod.get("status") or {}).get("phase") == "Running":
                    for c in pod["spec"]["containers"]:
                        fp = f"spec.containers{{{c['name']}}}"
                        text = f"Stopping container {c['name']}"
                        self.events.record(pod, "Normal", "Killing", text, host=node, field_path=fp)
                await self.runtime.stop_pod(pod, grace)
        finally:
            self._started.discard(key)
            self._stopping.discard(key)
        if finish:
            self._finish_deletion(key)

    def _finish_deletion(self, key: PodKey) -> None:
        now = self.store.now()

        def gone(p: dict[str, Any]) -> None:
            for cs in (p.get("status") or {}).get("containerStatuses") or []:
                if "running" in cs.get("state", {}):
                    cs.update(state=_terminated(0, now, cs), ready=False, started=False)
            p["metadata"]["deletionGracePeriodSeconds"] = 0

        self._write(key, gone)

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


def _settle(pod: dict[str, Any], now: str) -> None:
    """Phase and readiness from the container statuses (restartPolicy already applied)."""
    status = pod["status"]
    statuses = status.get("containerStatuses") or []
    ended = [cs["state"]["terminated"] for cs in statuses if "terminated" in cs.get("state", {})]
    if statuses and len(ended) == len(statuses):
        status["phase"] = "Succeeded" if all(t["exitCode"] == 0 for t in ended) else "Failed"
    ready = bool(statuses) and all(cs.get("ready") for cs in statuses)
    reason = None if ready else ("PodCompleted" if len(ended) == len(statuses) else "ContainersNotReady")
    for cond in ("ContainersReady", "Ready"):
        set_condition(status, cond, "True" if ready else "False", reason, None, now)


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
        "terminated": {
            "exitCode": code,
            "reason": "Completed" if code == 0 else "Error",
            "startedAt": started,
            "finishedAt": now,
            "containerID": cs.get("containerID", ""),
        }
    }
