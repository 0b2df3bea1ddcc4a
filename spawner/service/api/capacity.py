"""GET api/capacity: per cluster its health, and per GPU product and per node what is free."""

from __future__ import annotations

from typing import Any

from tornado import web

from spawner.service.runs.admission import product_waits

from .base import SCOPE_CAPACITY, ApiHandler

__all__ = ["CapacityHandler"]


class CapacityHandler(ApiHandler):
    """Per cluster its health and pools, per GPU product total / free / largest free and the lag (GPUs
    queued by runs waiting there, and the expected wait of a run of 1, 2, 4 and 8 GPUs), and per node."""

    required_scopes = (SCOPE_CAPACITY,)

    @web.authenticated
    def get(self) -> None:
        products = self.capacity()
        health = self.fleet.health()
        runs = self.settings.get("runs")
        queued = runs.queued_now() if runs is not None else {}
        # the lag: what a one-pod run of each size would wait there now, behind the queue, as the last
        # admission pass worked it out; worked out here only where no pass has (no runs served)
        lags = runs.product_lag if runs is not None else None
        held, now = self.book.active(), self.book.clock()
        clusters: list[dict[str, Any]] = []
        for inventory in self.fleet.inventories():
            h = health.get(inventory.cluster)
            ahead = queued.get(inventory.cluster, [])
            if lags is not None:
                waits = lags.get(inventory.cluster, {})
            else:
                waits = product_waits(inventory, held, now, ahead=ahead)
            clusters.append(
                {
                    "name": inventory.cluster,
                    "role": inventory.role.value,
                    "health": h.state.value if h else "unknown",
                    "reason": h.reason if h else "",
                    "synced": inventory.synced,
                    # per pool: the single-cluster topology has a health of its own per pool
                    "pools": [
                        {
                            "name": pool.name,
                            "role": (pool.role or inventory.role).value,
                            "elastic": pool.elastic,
                            "health": h.pool_states.get(pool.name, h.state).value if h else "unknown",
                        }
                        for pool in inventory.pools
                    ],
                    "products": [
                        {
                            "product": p.product,
                            "total": p.total,
                            "free": p.free,
                            "largest_free": p.largest_free,
                            "new_node_gpus": p.new_node_gpus,
                            "queued_gpus": sum(
                                pod.gpus for g in ahead for pod in g.pods if pod.product in (None, p.product)
                            ),
                            "expected_wait": [
                                {"gpus": size, "seconds": seconds}
                                for size, seconds in waits.get(p.product, ())
                            ],
                        }
                        for p in products.get(inventory.cluster, ())
                    ],
                    "nodes": [
                        {
                            "name": n.name,
                            "pool": n.pool,
                            "product": n.gpu_product,
                            "gpus": n.gpus_allocatable,
                            "allocated": n.gpus_requested,
                            "free": n.gpus_free,
                            "ready": n.ready,
                            "schedulable": n.schedulable,
                        }
                        for n in inventory.nodes
                    ],
                }
            )
        self.write_json({"clusters": clusters})
