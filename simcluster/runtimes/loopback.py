"""The ``process-loopback`` runtime: the fallback without root, plain child processes at 127.x.y.z."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..logs import PodLogs
from ..store import Store
from .base import ContainerError, ExitCallback, pod_key
from .local import LocalRuntime, PodProcesses, container_dir, existing_dir

__all__ = ["LoopbackRuntime"]


class LoopbackRuntime(LocalRuntime):
    """The fallback without root: plain child processes, each pod at its own 127.x.y.z address.

    No namespaces: commands must bind the address in ``$POD_IP`` (also ``status.podIP`` through
    the downward API) instead of 0.0.0.0, volumes are not mounted, and /etc/hosts is the host's.
    A container starts in its ``workingDir`` where that exists, or else in a directory of its own
    that goes with the pod.
    """

    name = "process-loopback"

    def __init__(self, logs: PodLogs, store: Store, state_dir: Path, octet: int = 100) -> None:
        super().__init__(logs, store, state_dir)
        self._octet = octet
        self._next = 0
        self._free: list[str] = []

    def _address(self) -> str:
        if self._free:
            return self._free.pop()
        self._next += 1
        n = self._next
        return f"127.{self._octet}.{n // 250}.{n % 250 + 2}"

    async def start_pod(
        self, pod: Mapping[str, Any], allocate_ip: Callable[[], str], on_exit: ExitCallback
    ) -> str:
        key = pod_key(pod)
        state = PodProcesses(
            key, pod["metadata"]["uid"], self._address(), self.state_dir / "pods" / pod["metadata"]["uid"]
        )
        self.pods[key] = state
        try:
            for container in pod["spec"]["containers"]:
                await self._start_container(state, pod, container, on_exit)
        except ContainerError:
            await self.stop_pod_key(key, 0.0)
            raise
        return state.ip

    async def _start_container(
        self, state: PodProcesses, pod: Mapping[str, Any], container: Mapping[str, Any], on_exit: ExitCallback
    ) -> None:
        env = self.environment(pod, container, state.ip)
        env["POD_IP"] = state.ip
        cwd = existing_dir(container.get("workingDir"))
        if cwd is None:
            own = container_dir(state, container["name"])
            own.mkdir(parents=True, exist_ok=True)
            cwd = str(own)
        await self._launch(state, container["name"], self.argv(container, env), on_exit, env=env, cwd=cwd)

    async def stop_pod_key(self, key: tuple[str, str], grace: float) -> None:
        state = self.pods.get(key)
        if state is None:
            return
        await self._reap(state, grace)
        for c in state.containers.values():  # the whole session: children of the command too
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(c.proc.pid, signal.SIGKILL)
        await self._finish(state)
        shutil.rmtree(state.dir, ignore_errors=True)
        self._free.append(state.ip)
        self.pods.pop(key, None)

    def refresh_hosts(self) -> None:
        return None

    def forget_volume(self, pvc_uid: str) -> None:
        return None
