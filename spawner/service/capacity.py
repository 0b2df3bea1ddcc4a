"""GPU capacity as the service reports it: the one source of ``api/capacity`` and the GPU gauges."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

from spawner.core.model import ProductAvailability
from spawner.placement.rank import availability
from spawner.placement.reservations import ReservationBook

from .fleet import FleetView

__all__ = ["CapacitySource", "fleet_capacity"]

# per cluster, per GPU product: total, free after live reservations, largest free, new-node GPUs
CapacitySource = Callable[[], Mapping[str, Sequence[ProductAvailability]]]


def fleet_capacity(fleet: FleetView, book: ReservationBook) -> CapacitySource:
    """What ``GET api/capacity`` shows and ``hybridhub_gpus_total``/``hybridhub_gpus_free`` export.

    Free GPUs have the live reservations of spawns in flight deducted, so a scrape and an API call at
    the same moment give the same numbers.
    """

    def capacity() -> dict[str, tuple[ProductAvailability, ...]]:
        return availability(fleet.inventories(), book.active())

    return capacity
