"""What runs a pod's containers: the interface the kubelet drives, and the ``simulated`` runtime.

The simulated runtime runs nothing. Two pod annotations script a container's life, for
controllers whose pods must finish (Argo steps, Katib trials): ``simcluster.hybridhub.io/stdout``
is written to each container's log when it starts, and ``simcluster.hybridhub.io/exit-after``
(seconds) with ``simcluster.hybridhub.io/exit-code`` ends the containers.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Any, Protocol

from .logs import PodLogs

__all__ = [
    "ANNOTATION_EXIT_AFTER",
    "ANNOTATION_EXIT_CODE",
    "ANNOTATION_STDOUT",
    "ContainerError",
    "ExitCallback",
    "Runtime",
    "SimulatedRuntime",
    "pod_key",
]

ANNOTATION_STDOUT = "simcluster.hybridhub.io/stdout"
ANNOTATION_EXIT_AFTER = "simcluster.hybridhub.io/exit-after"
ANNOTATION_EXIT_CODE = "simcluster.hybridhub.io/exit-code"

PodKey = tuple[str, str]
# called with (container name, exit code) when a container's main process ends
ExitCallback = Callable[[str, int], None]


class ContainerError(Exception):
    """A container could not be started; ``reason`` is what the kubelet reports (RunContainerError)."""

    def __init__(self, container: str, message: str, reason: str = "RunContainerError") -> None:
        super().__init__(message)
        self.container = container
        self.message = message
        self.reason = reason


def pod_key(pod: Mapping[str, Any]) -> PodKey:
    return (pod["metadata"]["namespace"], pod["metadata"]["name"])


class Runtime(Protocol):
    """Starts and stops the containers of pods. All methods run on the event loop."""

    name: str

    async def start_pod(
        self, pod: Mapping[str, Any], allocate_ip: Callable[[], str], on_exit: ExitCallback
    ) -> str:
        """Create the sandbox, start every container; returns the pod IP (from ``allocate_ip``)."""
        ...

    async def restart_container(self, pod: Mapping[str, Any], container: str, on_exit: ExitCallback) -> None:
        """Start ``container`` of a running pod again (restartPolicy)."""
        ...

    async def stop_pod(self, pod: Mapping[str, Any], grace: float) -> None:
        """SIGTERM the containers, SIGKILL what is left after ``grace`` seconds, tear the sandbox down."""
        ...

    async def close(self) -> None:
        """Stop everything at once (simcluster is shutting down)."""
        ...

    def refresh_hosts(self) -> None:
        """Services or pod addresses changed: rewrite the pods' /etc/hosts."""
        ...

    def forget_volume(self, pvc_uid: str) -> None:
        """A claim was deleted: drop its data."""
        ...


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
