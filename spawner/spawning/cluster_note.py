"""What the hub's home page says about a server whose cluster the hub cannot reach now (an outage)."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from html import escape
from typing import Any, Generic, TypeVar

__all__ = ["RecentAnswer", "cluster_note", "home_announcement", "note_for"]

T = TypeVar("T")


def cluster_note(cluster: str, health: str, reason: str) -> str | None:
    """The sentence for a server on ``cluster``, given the service's ``health`` of it and why; None
    unless the service calls it down. A degraded cluster still runs and reaches its servers."""
    if health != "down":
        return None
    why = f" ({reason})" if reason else ""
    return (
        f"{cluster}, the cluster your server runs on, is unreachable from the hub now{why}. Your server "
        f"is kept: if it does not open, it will once {cluster} is back."
    )


def home_announcement(user: Any) -> str | None:
    """For ``JupyterHub.template_vars["announcement_home"]``, which JupyterHub calls with the user whose
    page it renders (None when logged out): the notes of their servers that have one, as HTML, or
    None (then the home page shows no announcement of ours). HybridSpawner's poll, which the home page
    runs first, sets each server's ``cluster_note``."""
    notes = []
    for name, spawner in sorted((getattr(user, "spawners", None) or {}).items()):
        note = getattr(spawner, "cluster_note", None)
        if isinstance(note, str) and note:
            notes.append(f"Server {name}: {note}" if name else note)
    return "<br>".join(escape(note) for note in notes) or None


class RecentAnswer(Generic[T]):
    """One ``fetch``'s answer, reused for ``max_age`` seconds and shared by every caller that asks
    meanwhile: the hub polls each server every poll_interval, and a thousand servers need not ask the
    service a thousand times. None when the fetch failed or took more than ``timeout`` seconds."""

    def __init__(
        self,
        fetch: Callable[[], Awaitable[T]],
        *,
        max_age: float,
        timeout: float,
        log: logging.Logger | logging.LoggerAdapter[Any],
    ) -> None:
        self.fetch = fetch
        self.max_age = max_age
        self.timeout = timeout
        self.log = log
        self.fetches = 0  # answers asked for so far (for tests)
        self._asked_at = 0.0
        self._answer: asyncio.Future[T | None] | None = None

    async def get(self) -> T | None:
        now = time.monotonic()
        answer = self._answer
        # an answer of another event loop (an earlier test's, say) cannot be awaited in this one
        stale = answer is None or answer.get_loop() is not asyncio.get_running_loop()
        if answer is None or stale or now - self._asked_at > self.max_age:
            self._asked_at = now
            answer = self._answer = asyncio.ensure_future(self._fetch())
        # shielded: a caller that is cancelled does not cancel the answer the others wait for (it ends
        # by itself within ``timeout``)
        return await asyncio.shield(answer)

    async def _fetch(self) -> T | None:
        self.fetches += 1
        try:
            return await asyncio.wait_for(self.fetch(), self.timeout)
        except Exception as exc:  # no answer says nothing about a cluster
            self.log.debug("no answer for the servers' notes now: %s", exc or type(exc).__name__)
            return None


def note_for(cluster: str, health: Mapping[str, tuple[str, str]] | None) -> str | None:
    """:func:`cluster_note` from a ``ServiceClient.cluster_health`` answer (None: no answer)."""
    entry = (health or {}).get(cluster)
    return None if entry is None else cluster_note(cluster, *entry)
