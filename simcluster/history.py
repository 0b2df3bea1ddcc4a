"""How far back the API server can serve: the watch cache's window of events, and etcd's compaction.

kube-apiserver's watch cache keeps a ring of recent events per resource type. Its capacity adapts
between 100 and 102,400 events so that it holds at least the last 75 seconds (``eventFreshDuration``,
the bookmark interval plus 15 s), and it drops the oldest event only when the ring is full. A
watch that resumes from a resourceVersion the ring no longer reaches gets 410 Expired, worded
``too old resource version: X (Y)``. LISTs are served from the cache's current state, whatever
resourceVersion they name. Paging is served by etcd, at the revision of the first page, and etcd
compacts its history every 5 minutes: a ``continue`` token whose revision is compacted is 410 too.

This module is that policy without I/O: :class:`WatchWindow` is the per-cluster setting,
:class:`EventHistory` one resource type's ring, :class:`Revisions` what compaction has removed.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

__all__ = ["DEFAULT_WINDOW", "EventHistory", "Revisions", "WatchWindow"]

T = TypeVar("T")


@dataclass(frozen=True)
class WatchWindow:
    """What a cluster's API server keeps to resume from; the defaults are kube-apiserver's."""

    # Events younger than this many seconds are kept (the watch cache's eventFreshDuration).
    seconds: float = 75.0
    # The newest events of a resource type that are kept however old they are (its lower bound).
    min_events: int = 100
    # No resource type keeps more events than this, however young (the upper bound).
    max_events: int = 102_400
    # Seconds after which a resourceVersion that was superseded is compacted away: continue tokens
    # that carry it answer 410. etcd compacts every 5 minutes, so a real one lasts 5 to 10 minutes.
    compaction: float = 300.0

    def __post_init__(self) -> None:
        if self.seconds < 0 or self.compaction < 0:
            raise ValueError("the watch window's seconds and compaction must not be negative")
        if not 1 <= self.min_events <= self.max_events:
            raise ValueError("the watch window needs 1 <= minEvents <= maxEvents")


DEFAULT_WINDOW = WatchWindow()


class EventHistory(Generic[T]):
    """One resource type's recent events, oldest first, trimmed to a :class:`WatchWindow`.

    ``floor`` is the resourceVersion the history is complete from, as the cache's list version
    is: until an event is dropped, every resume from it or later is served.
    """

    def __init__(self, window: WatchWindow, floor: int = 0) -> None:
        self.window = window
        self.floor = floor
        self.trimmed = False  # whether events were dropped since ``floor`` was set
        self._events: deque[tuple[float, int, T]] = deque()

    def __len__(self) -> int:
        return len(self._events)

    def append(self, rv: int, event: T, now: float) -> None:
        """Record ``event`` at ``rv``; drop the oldest events the window no longer holds."""
        self._events.append((now, rv, event))
        window, events = self.window, self._events
        while len(events) > window.min_events and (
            len(events) > window.max_events or now - events[0][0] > window.seconds
        ):
            _, dropped, _ = events.popleft()
            self.floor, self.trimmed = max(self.floor, dropped), True

    def reset(self, rv: int) -> None:
        """Forget every event: the history is complete from ``rv`` on (a relist of the cache)."""
        self._events.clear()
        self.floor, self.trimmed = rv, False

    def too_old(self, since: int) -> int | None:
        """None when a resume from ``since`` can be served, else the version the 410 names.

        As the watch cache decides: once events were dropped, the oldest one kept must come right
        after ``since`` (it names that event's version less one); before, ``floor`` is the limit.
        """
        limit = self._events[0][1] - 1 if self.trimmed and self._events else self.floor
        return limit if since < limit else None

    def since(self, rv: int) -> Iterator[T]:
        """The events after ``rv``, oldest first."""
        for _, version, event in self._events:
            if version > rv:
                yield event


class Revisions:
    """Which resourceVersions are compacted: those superseded more than ``compaction`` seconds ago.

    Only one mark per second is kept, so a busy store holds a few hundred marks, not a write log.
    """

    def __init__(self, compaction: float) -> None:
        self.compaction = compaction
        self._marks: deque[tuple[float, int]] = deque()  # (time, the version current from then on)

    def note(self, rv: int, now: float) -> None:
        """``rv`` is the current version from ``now`` on."""
        if self._marks and int(self._marks[-1][0]) == int(now):
            self._marks[-1] = (now, rv)
        else:
            self._marks.append((now, rv))

    def compacted(self, now: float) -> int:
        """Every version below this one is compacted (0: none is)."""
        cutoff = now - self.compaction
        marks = self._marks
        while len(marks) > 1 and marks[1][0] <= cutoff:
            marks.popleft()
        return marks[0][1] if marks and marks[0][0] <= cutoff else 0
