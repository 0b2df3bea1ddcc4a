"""The logs of a run's pods as one stream of (pod, line), followed until the run ends, as Argo Server does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Mapping
from typing import Any

from spawner.service.runs.manager import RunError, RunManager
from spawner.service.runs.manifests import RUN_POD_LABELS
from spawner.service.store.runs import RunRecord

__all__ = ["finished", "run_logs"]

log = logging.getLogger(__name__)

_DONE_PHASES = frozenset({"Succeeded", "Failed", "Error"})
_DONE_CONDITIONS = frozenset({"Succeeded", "Failed", "Complete"})


def finished(obj: Mapping[str, Any]) -> bool:
    """Whether a run has ended: an Argo phase, or a True condition of the kinds' final types."""
    status = obj.get("status") or {}
    if status.get("phase") in _DONE_PHASES:
        return True
    return any(
        c.get("type") in _DONE_CONDITIONS and c.get("status") == "True"
        for c in status.get("conditions") or ()
    )


def _created(pod: Mapping[str, Any]) -> str:
    return str((pod.get("metadata") or {}).get("creationTimestamp") or "")


def _started(pod: Mapping[str, Any]) -> bool:
    return (pod.get("status") or {}).get("phase") not in (None, "Pending")


async def run_logs(
    manager: RunManager,
    record: RunRecord,
    *,
    container: str,
    follow: bool,
    pod_name: str | None = None,
    poll: float = 1.0,
    selector: Callable[[RunRecord], str] | None = None,
) -> AsyncIterator[tuple[str, bytes]]:
    """Every line of the run's pods, as (pod, line). Without ``follow``, each pod's log in the order
    the pods were made. With ``follow``, each pod's log as the pod starts, new pods included, until
    the run has ended and every pod's stream is done."""
    label = selector(record) if selector else f"{RUN_POD_LABELS[record.kind]}={record.name}"

    where = {"cluster": record.cluster or ""}

    async def pods() -> list[dict[str, Any]]:
        # read again each time: a run that moves to another cluster before it starts is followed there
        try:
            current = await manager.record(record.user, record.kind, record.name)
        except RunError:
            current = record
        where["cluster"] = current.cluster or ""
        found = await manager.pods(record.user, current, label)
        if pod_name:
            found = [p for p in found if (p.get("metadata") or {}).get("name") == pod_name]
        return sorted(found, key=_created)

    if not follow:
        for pod in await pods():
            name = pod["metadata"]["name"]
            if not _started(pod):
                continue
            async for line in manager.pod_log(
                record.user, where["cluster"], record.namespace, name, container, follow=False
            ):
                yield name, line
        return

    lines: asyncio.Queue[tuple[str, bytes] | None] = asyncio.Queue(maxsize=1000)
    streams: dict[str, asyncio.Task[None]] = {}

    async def stream(name: str, cluster: str) -> None:
        try:
            async for line in manager.pod_log(
                record.user, cluster, record.namespace, name, container, follow=True
            ):
                await lines.put((name, line))
        except RunError as exc:
            log.info("log of pod %s of %s %s ended: %s", name, record.kind, record.name, exc)
        finally:
            await lines.put(None)

    try:
        ended = False
        while True:
            if not ended:
                # the run is read before its pods: when it has ended, every pod it made is listed
                ends = finished(await manager.get(record.user, record.kind, record.name))
                for pod in await pods():
                    name = pod["metadata"]["name"]
                    if name not in streams and _started(pod):
                        streams[name] = asyncio.get_running_loop().create_task(stream(name, where["cluster"]))
                ended = ends
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(poll):
                    while True:
                        item = await lines.get()
                        if item is not None:
                            yield item
            if ended and all(t.done() for t in streams.values()) and lines.empty():
                return
    finally:
        for task in streams.values():
            task.cancel()
        await asyncio.gather(*streams.values(), return_exceptions=True)
