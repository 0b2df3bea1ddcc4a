"""The base of simcluster's controllers: an owned task that reconciles when woken or when due."""

from __future__ import annotations

import abc
import asyncio
import logging
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any

from .resources import ResourceType
from .selectors import LabelSelector
from .store import Store, WatchEvent

__all__ = ["Controller", "Key", "KindController"]

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


Key = tuple[str, str]  # an object's namespace and name


class KindController(Controller):
    """A controller of one kind of object: each object is synced when it changes, when an object it
    controls changes, and again at the time its last sync asked for. Subclasses take notes in
    ``observe`` (``observe_kind``, ``mark_controller``, ``mark``) and do the work in ``sync``."""

    def __init__(self, store: Store, kind: ResourceType | None) -> None:
        super().__init__(store)
        self.kind = kind  # None when the cluster file leaves the kind out: nothing to do
        self._dirty: set[Key] = set()
        self._due: dict[Key, float] = {}  # loop times at which to sync an object again

    def mark(self, namespace: str, name: str) -> None:
        """Sync this object in the next pass."""
        self._dirty.add((namespace, name))

    def check_again(self, namespace: str, name: str, after: float) -> None:
        """Sync this object again ``after`` seconds from now (a deadline, a wait for logs)."""
        self._due[(namespace, name)] = asyncio.get_running_loop().time() + max(0.0, after)

    def observe_kind(self, event: WatchEvent) -> bool | None:
        """For an event of the controller's own kind, note it and say whether to reconcile (a
        deleted object is forgotten: what it owns goes by garbage collection); None for other kinds."""
        if self.kind is None or event.rt.key != self.kind.key:
            return None
        key = (event.namespace, event.obj["metadata"]["name"])
        if event.type == "DELETED":
            self._dirty.discard(key)
            self._due.pop(key, None)
            return False
        self._dirty.add(key)
        return True

    def mark_controller(self, event: WatchEvent, kind: str, api_version: str) -> bool:
        """Note the object of ``kind`` that controls the event's object, if one does."""
        for ref in event.obj["metadata"].get("ownerReferences") or []:
            if ref.get("controller") and ref.get("kind") == kind and ref.get("apiVersion") == api_version:
                self.mark(event.namespace, str(ref.get("name")))
                return True
        return False

    def controlled(
        self, rt: ResourceType, owner: Mapping[str, Any], labels: LabelSelector
    ) -> list[dict[str, Any]]:
        """The objects of ``rt`` in ``owner``'s namespace that match ``labels`` and that ``owner``
        controls: the labels narrow the list, the owner's uid decides (a name can be reused)."""
        meta = owner["metadata"]
        return [
            obj
            for obj in self.store.list(rt, meta["namespace"], labels=labels)
            if any(
                r.get("uid") == meta["uid"] and r.get("controller")
                for r in obj["metadata"].get("ownerReferences") or []
            )
        ]

    def reconcile(self) -> float | None:
        now = asyncio.get_running_loop().time()
        for key, due in list(self._due.items()):
            if due <= now:
                del self._due[key]
                self._dirty.add(key)
        while self._dirty and self.kind is not None:
            key = self._dirty.pop()
            obj = self.store.find(self.kind, *key)
            if obj is not None:
                self.sync(obj)
        return min(self._due.values()) if self._due else None

    @abc.abstractmethod
    def sync(self, obj: Mapping[str, Any]) -> None:
        """Bring the cluster closer to what ``obj`` asks for, and write its status."""
