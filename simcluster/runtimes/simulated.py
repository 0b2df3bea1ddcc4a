"""The ``simulated`` runtime: it runs nothing; pods report Running, and annotations script the rest.

Two pod annotations script a container's life, for controllers whose pods must finish (Argo steps,
Katib trials): ``simcluster.hybridhub.io/stdout`` is written to each container's log when it
starts, and ``simcluster.hybridhub.io/exit-after`` (seconds) with ``simcluster.hybridhub.io/exit-code``
ends the containers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any

from ..logs import PodLogs
from .base import (
    ANNOTATION_EXIT_AFTER,
    ANNOTATION_EXIT_CODE,
    ANNOTATION_STDOUT,
    ExitCallback,
    pod_key,
)

__all__ = ["SimulatedRuntime"]


class SimulatedRuntime:
    """No processes: containers 'run' until deleted or until their scripted exit."""

    name = "simulated"

    def __init__(self, logs: PodLogs, stop_delay: float = 0.2) -> None:
        self.logs = logs
        self.stop_delay = stop_delay  # how long containers take to stop (bounded by the grace period)
        self._timers: dict[tuple[str, str, str], asyncio.Task[None]] = {}

    def _script(self, pod: Mapping[str, Any], container: str, on_exit: ExitCallback) -> None:
        annotations = pod["metadata"].get("annotations") or {}
        ns, name = pod_key(pod)
        stdout = annotations.get(ANNOTATION_STDOUT)
        if stdout:
            self.logs.write(ns, name, container, stdout)
        after = annotations.get(ANNOTATION_EXIT_AFTER)
        if after is None:
            return
        try:
            delay, code = float(after), int(annotations.get(ANNOTATION_EXIT_CODE, "0"))
        except ValueError:
            delay, code = 0.0, 1

        async def exit_later() -> None:
            await asyncio.sleep(max(0.0, delay))
            self._timers.pop((ns, name, container), None)
            on_exit(container, code)

        key = (ns, name, container)
        self._timers[key] = asyncio.get_running_loop().create_task(exit_later())

    async def start_pod(
        self, pod: Mapping[str, Any], allocate_ip: Callable[[], str], on_exit: ExitCallback
    ) -> str:
        for c in pod["spec"]["containers"]:
            self._script(pod, c["name"], on_exit)
        return allocate_ip()

    def refresh_hosts(self) -> None:
        return None

    def forget_volume(self, pvc_uid: str) -> None:
        return None

    async def restart_container(self, pod: Mapping[str, Any], container: str, on_exit: ExitCallback) -> None:
        self._script(pod, container, on_exit)

    async def stop_pod(self, pod: Mapping[str, Any], grace: float) -> None:
        await asyncio.sleep(min(grace, self.stop_delay))
        ns, name = pod_key(pod)
        for key in [k for k in self._timers if k[:2] == (ns, name)]:
            task = self._timers.pop(key)
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def close(self) -> None:
        for task in list(self._timers.values()):
            task.cancel()
        for task in list(self._timers.values()):
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._timers.clear()
