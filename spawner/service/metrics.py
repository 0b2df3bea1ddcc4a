"""The service's Prometheus metrics: GPUs by cluster and product, health, placements and their latency."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from spawner.core.model import ClusterHealth, ClusterInventory, Health

__all__ = ["Metrics"]


class _FleetCollector:
    """Gauges computed at scrape time from the current inventory and health (never stale)."""

    def __init__(
        self,
        inventories: Callable[[], list[ClusterInventory]],
        health: Callable[[], dict[str, ClusterHealth]],
        reservations: Callable[[], int],
    ) -> None:
        self.inventories, self.health, self.reservations = inventories, health, reservations

    def collect(self) -> Iterator[Any]:
        total = GaugeMetricFamily(
            "hybridhub_gpus_total", "GPUs on Ready, schedulable nodes", labels=["cluster", "product"]
        )
        free = GaugeMetricFamily(
            "hybridhub_gpus_free", "GPUs not requested by any running pod", labels=["cluster", "product"]
        )
        for inv in self.inventories():
            sums: dict[str, list[int]] = {}
            for node in inv.nodes:
                if node.gpus_allocatable and node.usable:
                    t = sums.setdefault(node.gpu_product or "unknown", [0, 0])
                    t[0] += node.gpus_allocatable
                    t[1] += node.gpus_free
            for product, (t_, f_) in sorted(sums.items()):
                total.add_metric([inv.cluster, product], t_)
                free.add_metric([inv.cluster, product], f_)
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


class Metrics:
    """A registry of our own (never the process-wide default one)."""

    content_type = CONTENT_TYPE_LATEST

    def __init__(
        self,
        inventories: Callable[[], list[ClusterInventory]],
        health: Callable[[], dict[str, ClusterHealth]],
        reservations: Callable[[], int],
    ) -> None:
        self.registry = CollectorRegistry()
        self.registry.register(_FleetCollector(inventories, health, reservations))
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

    def placed(self, cluster: str | None, outcome: str, seconds: float) -> None:
        self.placements.labels(cluster or "", outcome).inc()
        self.latency.observe(seconds)

    def render(self) -> bytes:
        return generate_latest(self.registry)
