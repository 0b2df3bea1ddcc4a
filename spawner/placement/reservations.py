"""GPUs held for spawns in flight, so concurrent placements never count the same free GPU twice."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from spawner.core.model import Reservation

__all__ = ["ReservationBook"]


class ReservationBook:
    """Reservations by id; expired ones vanish, so a spawner that died leaks nothing for long.

    Placement and booking happen in one event-loop step (no await between them), which is what
    makes twenty simultaneous requests for N free GPUs land exactly N on-prem without a lock.
    """

    def __init__(self, ttl: float = 180.0, clock: Callable[[], float] = time.monotonic) -> None:
        if not ttl > 0:
            raise ValueError(f"reservations need a ttl of more than 0 seconds, not {ttl}")
        self.ttl = ttl
        self.clock = clock
        self._by_id: dict[str, Reservation] = {}

    def active(self) -> tuple[Reservation, ...]:
        now = self.clock()
        for rid in [rid for rid, r in self._by_id.items() if r.expires <= now]:
            del self._by_id[rid]
        return tuple(self._by_id.values())

    def add(self, reservation: Reservation) -> Reservation:
        """Hold a reservation. A live one of the same id is an error: replacing it would free its GPUs."""
        if self.get(reservation.id) is not None:
            raise ValueError(f"reservation {reservation.id} is already held")
        self._by_id[reservation.id] = reservation
        return reservation

    def get(self, rid: str) -> Reservation | None:
        found = self._by_id.get(rid)
        if found is not None and found.expires <= self.clock():
            del self._by_id[rid]
            return None
        return found

    def extend(self, rid: str, seconds: float | None = None) -> Reservation | None:
        """Hold a live reservation ``seconds`` (default: the ttl) from now; None if it expired or is gone."""
        seconds = self.ttl if seconds is None else seconds
        if not seconds > 0:
            raise ValueError(f"a reservation is extended by more than 0 seconds, not {seconds}")
        found = self.get(rid)
        if found is None:
            return None
        renewed = replace(found, expires=self.clock() + seconds)
        self._by_id[rid] = renewed
        return renewed

    def release(self, rid: str) -> bool:
        """The pod landed (the inventory now counts it) or the attempt was abandoned."""
        return self._by_id.pop(rid, None) is not None

    def __len__(self) -> int:
        return len(self.active())
