"""What runs a pod's containers: the interface the kubelet drives, and what every runtime shares.

Three runtimes implement it: ``simulated`` (no processes), ``process`` (each pod in namespaces of its
own, root) and ``process-loopback`` (plain child processes, the fallback without root).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, Protocol

__all__ = [
    "ANNOTATION_EXIT_AFTER",
    "ANNOTATION_EXIT_CODE",
    "ANNOTATION_STDOUT",
    "ContainerError",
    "ExitCallback",
    "Runtime",
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
