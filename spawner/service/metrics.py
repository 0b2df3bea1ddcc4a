"""The service's Prometheus metrics: GPUs by cluster and product, health, placements and their latency."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from spawner.core.model import ClusterHealth, Health

from .capacity import CapacitySource

__all__ = ["Metrics"]


class _FleetCollector:
    """Gauges computed at scrape time from the current capacity and health (never stale)."""

    def __init__(
        self,
        capacity: CapacitySource,
        health: Callable[[], dict[str, ClusterHealth]],
        reservations: Callable[[], int],
    ) -> None:
        self.capacity, self.health, self.reservations = capacity, health, reservations

    def collect(self) -> Iterator[Any]:
        total = GaugeMetricFamily(
            "hybridhub_gpus_total",
            "GPUs on Ready, schedulable nodes of the clusters' pools",
            labels=["cluster", "product"],
        )
        free = GaugeMetricFamily(
            "hybridhub_gpus_free",
            "GPUs neither requested by a running pod nor reserved for a spawn in flight (as api/capacity)",
            labels=["cluster", "product"],
        )
        for cluster, products in sorted(self.capacity().items()):
            for p in products:
                total.add_metric([cluster, p.product], p.total)
                free.add_metric([cluster, p.product], p.free)
        yield total
        yield free
        health = GaugeMetricFamily(
            "hybridhub_cluster_health", "1 for the cluster's current state", labels=["cluster", "state"]
        )
        for name, h in sorted(self.health().items()):
            for state in Health:
                health.add_metric([name, state.value], 1.0 if h.state == state else 0.0)
        yield health
        held = GaugeMetricFamily("hybridhub_reservations", "GPU reservations of spawns in flight")
        held.add_metric([], self.reservations())
        yield held


class _RunsCollector:
    """The metric collector of backup pipelines, at scrape time: how long runs wait per cluster (its
    lag), and the cloud GPU-hours of the budget period by user and team."""

    def __init__(
        self,
        lag: Callable[[], Mapping[str, tuple[int, float]]],
        cloud_used: Callable[[], Mapping[str, float]],
        teams: Mapping[str, frozenset[str]],
    ) -> None:
        self.lag, self.cloud_used, self.teams = lag, cloud_used, teams

    def collect(self) -> Iterator[Any]:
        waiting = GaugeMetricFamily(
            "hybridhub_runs_waiting", "Runs not yet let go, by the cluster they wait on", labels=["cluster"]
        )
        oldest = GaugeMetricFamily(
            "hybridhub_run_longest_wait_seconds",
            "How long the run that has waited longest on the cluster has waited: its lag",
            labels=["cluster"],
        )
        for cluster, (count, longest) in sorted(self.lag().items()):
            waiting.add_metric([cluster], count)
            oldest.add_metric([cluster], longest)
        yield waiting
        yield oldest
        used = self.cloud_used()
        users = GaugeMetricFamily(
            "hybridhub_cloud_gpu_hours",
            "GPU-hours the user's pods held in the cloud clusters in the cloud budget's current period",
            labels=["user"],
        )
        for user, seconds in sorted(used.items()):
            users.add_metric([user], seconds / 3600)
        yield users
        teams = GaugeMetricFamily(
            "hybridhub_cloud_gpu_hours_team",
            "GPU-hours the team's members held in the cloud clusters in the current period",
            labels=["team"],
        )
        for team, members in sorted(self.teams.items()):
            teams.add_metric([team], sum(used.get(m, 0.0) for m in members) / 3600)
        yield teams


class Metrics:
    """A registry of our own (never the process-wide default one).

    ``capacity`` is the service's one capacity source (``spawner.service.capacity``), the same one
    ``GET api/capacity`` reads, so the GPU gauges and the API never disagree.
    """

    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self,
        capacity: CapacitySource,
        health: Callable[[], dict[str, ClusterHealth]],
        reservations: Callable[[], int],
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_FleetCollector(capacity, health, reservations))
        self.placements = Counter(
            "hybridhub_placements",
            "Placement answers by first cluster and outcome (placed, fallback, no-capacity)",
            ["cluster", "outcome"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "hybridhub_placement_seconds",
            "Time to compute a placement",
            buckets=(0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.05, 0.1),
            registry=self.registry,
        )

        self.leftovers = Counter(
            "hybridhub_leftover_pods_removed",
            "Notebook pods removed: the hub neither runs nor starts their server (a hub died mid-start)",
            ["cluster"],
            registry=self.registry,
        )

        self.moves = Counter(
            "hybridhub_run_moves",
            "Runs that never started, moved between clusters: out of on-prem (down or lagging) or back",
            ["source", "target", "direction"],
            registry=self.registry,
        )
        self.move_waits = Histogram(
            "hybridhub_run_move_wait_seconds",
            "How long a run had waited since it was submitted when it moved",
            buckets=(5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200),
            registry=self.registry,
        )

    def moved(self, source: str, target: str, back: bool, waited: float) -> None:
        self.moves.labels(source, target, "back" if back else "out").inc()
        self.move_waits.observe(waited)

    def watch_runs(
        self,
        lag: Callable[[], Mapping[str, tuple[int, float]]],
        cloud_used: Callable[[], Mapping[str, float]],
        teams: Mapping[str, frozenset[str]],
    ) -> None:
        """Collect the runs' lag and the cloud GPU-hours at each scrape (once, when runs are served)."""
        self.registry.register(_RunsCollector(lag, cloud_used, teams))

    def placed(self, cluster: str | None, outcome: str, seconds: float) -> None:
        self.placements.labels(cluster or "", outcome).inc()
        self.latency.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
