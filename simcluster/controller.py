"""The base of simcluster's controllers: an owned task that reconciles when woken or when due."""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Callable
from contextlib import suppress

from .store import Store, WatchEvent

__all__ = ["Controller"]

log = logging.getLogger(__name__)


class Controller(abc.ABC):
    """Subclasses implement ``observe`` (sync, per store event) and ``reconcile`` (sync).

    ``reconcile`` returns the loop time at which it wants to run again, or None to wait for an event.
    Both run on the event loop; a store write inside ``reconcile`` calls ``observe`` re-entrantly,
    which must therefore only take notes.
    """

    name = "controller"

    def __init__(self, store: Store) -> None:
        self.store = store
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._unsubscribe: Callable[[], None] | None = None

    def start(self) -> None:
        if self._task is not None:
            return
        self._unsubscribe = self.store.subscribe(self._on_event)
        self._task = asyncio.get_running_loop().create_task(self._run(), name=self.name)
        self.wake()

    async def stop(self) -> None:
        if self._unsubscribe is not None:
            self._unsubscribe()
            self._unsubscribe = None
        if self._task is not None:
            self._task.cancel()
            with suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    def wake(self) -> None:
        self._wake.set()

    def _on_event(self, event: WatchEvent) -> None:
        if self.observe(event):
            self._wake.set()

    def observe(self, event: WatchEvent) -> bool:
        """Take note of a write; return True to run ``reconcile`` soon."""
        return False

    @abc.abstractmethod
    def reconcile(self) -> float | None:
        """Bring the cluster closer to what its objects ask for; the loop time to run again, or None."""

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        due: float | None = None
        while True:
            timeout = None if due is None else max(0.0, due - loop.time())
            with suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)
            self._wake.clear()
            try:
                due = self.reconcile()
            except Exception:
                log.exception("%s: reconcile failed; retrying in 1s", self.name)
                due = loop.time() + 1.0
