"""The metric collector of cloud GPU use: what each user's pods hold in the cloud clusters, metered
into the store's ledger on every admission pass, and the cloud budget it is read against."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from datetime import UTC, datetime
from typing import Protocol

from spawner.core.model import Role
from spawner.inventory.index import ServerLocation
from spawner.service.runs.budget import CloudBudget, charges, over_budget, period_bounds
from spawner.service.store.runs import UsageLedger

__all__ = ["CloudMeter", "MeteredFleet"]

# seconds one metering may charge at most: a pass held up longer than this (a clock that jumped, a
# suspended machine) is charged this much, not the whole gap
MAX_STEP = 300.0


class MeteredFleet(Protocol):
    def gpu_pods(self, cluster: str) -> tuple[tuple[str, str, int], ...]: ...

    def notebook_pods(self) -> list[tuple[str, ServerLocation]]: ...


class CloudMeter:
    """GPU-seconds per user in the current budget period, kept in memory and added to the ledger."""

    def __init__(self, ledger: UsageLedger, budget: CloudBudget) -> None:
        self.ledger = ledger
        self.budget = budget
        self._period: tuple[datetime, datetime] | None = None
        self._used: dict[str, float] = {}
        self._metered_at: float | None = None

    async def _current(self, now: float) -> tuple[datetime, datetime]:
        bounds = period_bounds(datetime.fromtimestamp(now, UTC), self.budget.period)
        if bounds != self._period:  # the first call, or a new period: read what the ledger has
            self._used = await self.ledger.used(bounds[0])
            self._period = bounds
        return bounds

    async def meter(
        self,
        now: float,
        fleet: MeteredFleet,
        roles: Mapping[str, Role],
        run_namespaces: Callable[[], Awaitable[Mapping[str, str]]],
    ) -> dict[str, float]:
        """Charge what the cloud clusters' GPU pods held since the last call; the charges, by user."""
        start, _ = await self._current(now)
        last, self._metered_at = self._metered_at, now
        if last is None:
            return {}
        seconds = min(max(0.0, now - last), MAX_STEP)
        clouds = [c for c, role in roles.items() if role is not Role.ONPREM]
        pods: Sequence[tuple[str, str, int]] = [p for c in clouds for p in fleet.gpu_pods(c)]
        if not pods:
            return {}
        notebooks = {
            (loc.namespace, loc.pod): loc.user for c, loc in fleet.notebook_pods() if c in clouds and loc.user
        }
        namespaces: Mapping[str, str] = {}
        if any((ns, pod) not in notebooks for ns, pod, _ in pods):
            namespaces = await run_namespaces()
        found = charges(pods, notebooks, namespaces, seconds)
        await self.ledger.add(start, found)
        for user, amount in found.items():
            self._used[user] = self._used.get(user, 0.0) + amount
        return found

    async def closed(self, user: str, now: float) -> str:
        """Why ``user`` may not use the cloud now ("" when they may)."""
        if not self.budget.active:
            return ""
        _, end = await self._current(now)
        return over_budget(user, self._used, self.budget, end)

    def used(self) -> dict[str, float]:
        """GPU-seconds per user in the current period, as last metered."""
        return dict(self._used)
