"""GET api/health: each cluster's health and no more, for the hub to ask every second while spawns run."""

from __future__ import annotations

from tornado import web

from .base import SCOPE_CAPACITY, ApiHandler

__all__ = ["HealthHandler"]


class HealthHandler(ApiHandler):
    """Per cluster its health and why; ``api/capacity`` without the per-product and per-node figures,
    so that asking often costs the service and the hub almost nothing."""

    required_scopes = (SCOPE_CAPACITY,)

    @web.authenticated
    def get(self) -> None:
        health = self.fleet.health()
        clusters = []
        for name in sorted(health):
            h = health[name]
            clusters.append({"name": name, "health": h.state.value, "reason": h.reason})
        self.write_json({"clusters": clusters})
