"""Container logs of one cluster and the ``pods/{name}/log`` endpoint that reads and follows them."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from .errors import ApiError, bad_request
from .store import Store, rfc3339

__all__ = ["PodLogs"]

LogKey = tuple[str, str, str]  # namespace, pod, container
MAX_LINES = 10_000  # per container, oldest dropped first


@dataclass
class _Log:
    lines: list[tuple[str, str]] = field(default_factory=list)  # (timestamp, line without newline)
    closed: bool = False
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)


class PodLogs:
    """Lines written by containers, kept per (namespace, pod, container)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._logs: dict[LogKey, _Log] = {}

    def _log(self, key: LogKey) -> _Log:
        return self._logs.setdefault(key, _Log())

    def write(self, namespace: str, pod: str, container: str, text: str) -> None:
        log = self._log((namespace, pod, container))
        stamp = rfc3339(self.store.clock()).replace("Z", ".000000000Z")
        for line in text.splitlines():
            log.lines.append((stamp, line))
        del log.lines[:-MAX_LINES]
        asyncio.get_running_loop().create_task(self._notify(log))

    def lines(self, namespace: str, pod: str, container: str) -> list[tuple[str, str]]:
        """What the container wrote so far: (timestamp, line) pairs, oldest first."""
        found = self._logs.get((namespace, pod, container))
        return list(found.lines) if found is not None else []

    def closed(self, namespace: str, pod: str, container: str) -> bool:
        """Whether the container ended (or its pod is gone): no more lines will come."""
        found = self._logs.get((namespace, pod, container))
        return found is None or found.closed

    def close(self, namespace: str, pod: str, container: str) -> None:
        """The container ended: followers stop after the last line."""
        log = self._log((namespace, pod, container))
        log.closed = True
        asyncio.get_running_loop().create_task(self._notify(log))

    def forget(self, namespace: str, pod: str) -> None:
        for key in [k for k in self._logs if k[:2] == (namespace, pod)]:
            log = self._logs.pop(key)
            log.closed = True
            asyncio.get_running_loop().create_task(self._notify(log))

    @staticmethod
    async def _notify(log: _Log) -> None:
        async with log.changed:
            log.changed.notify_all()

    async def serve(
        self, request: web.Request, namespace: str | None, name: str | None
    ) -> web.StreamResponse:
        """GET .../pods/{name}/log with container, follow, tailLines, timestamps, sinceSeconds."""
        pod = self.store.get(self.store.registry.core("pods"), namespace, name or "")
        container = request.query.get("container") or _default_container(pod)
        q = request.query
        follow = q.get("follow", "").lower() in {"true", "1"}
        stamps = q.get("timestamps", "").lower() in {"true", "1"}
        try:
            tail = int(q["tailLines"]) if "tailLines" in q else None
            since = int(q["sinceSeconds"]) if "sinceSeconds" in q else None
            limit = int(q["limitBytes"]) if "limitBytes" in q else None
        except ValueError as exc:
            raise bad_request(f"invalid log options: {exc}") from exc
        log = self._logs.get((pod["metadata"]["namespace"], pod["metadata"]["name"], container))
        if log is None:
            if not (pod.get("status") or {}).get("containerStatuses"):
                raise ApiError(
                    400,
                    f'container "{container}" in pod "{name}" is waiting to start: ContainerCreating',
                )
            log = self._log((pod["metadata"]["namespace"], pod["metadata"]["name"], container))
        lines = list(log.lines)
        if since is not None:
            cutoff = rfc3339(datetime.fromtimestamp(self.store.clock().timestamp() - since))
            lines = [ln for ln in lines if ln[0] >= cutoff]
        if tail is not None:
            lines = lines[-tail:] if tail > 0 else []
        response = web.StreamResponse(headers={"Content-Type": "text/plain"})
        response.enable_chunked_encoding()
        await response.prepare(request)
        sent = 0

        def fmt(entries: list[tuple[str, str]]) -> bytes:
            return "".join(f"{ts} {ln}\n" if stamps else f"{ln}\n" for ts, ln in entries).encode()

        async def send(data: bytes) -> bool:
            nonlocal sent
            if limit is not None:
                data = data[: max(0, limit - sent)]
            if data:
                await response.write(data)
                sent += len(data)
            return limit is None or sent < limit

        position = len(log.lines)
        if not await send(fmt(lines)) or not follow:
            await response.write_eof()
            return response
        while not log.closed and request.transport is not None and not request.transport.is_closing():
            async with log.changed:
                try:
                    await asyncio.wait_for(log.changed.wait(), timeout=2.0)
                except TimeoutError:
                    continue
            fresh = log.lines[position:]
            position = len(log.lines)
            if fresh and not await send(fmt(fresh)):
                break
        fresh = log.lines[position:]
        if fresh:
            await send(fmt(fresh))
        await response.write_eof()
        return response


def _default_container(pod: Mapping[str, Any]) -> str:
    containers = (pod.get("spec") or {}).get("containers") or []
    annotated = (pod["metadata"].get("annotations") or {}).get("kubectl.kubernetes.io/default-container")
    if annotated:
        return str(annotated)
    if len(containers) != 1:
        names = " ".join(c["name"] for c in containers)
        raise bad_request(
            f"a container name must be specified for pod {pod['metadata']['name']}, choose one of: [{names}]"
        )
    return str(containers[0]["name"])
