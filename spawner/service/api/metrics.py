"""GET metrics: the service's Prometheus exposition."""

from __future__ import annotations

from .base import ApiHandler

__all__ = ["MetricsHandler"]


class MetricsHandler(ApiHandler):
    """Prometheus text; a token with the hub's ``read:metrics`` scope unless ``authenticate_metrics``
    is off."""

    required_scopes = ("read:metrics",)

    def needs_token(self) -> bool:
        return bool(self.settings["authenticate_metrics"])

    def get(self) -> None:
        self.set_header("Content-Type", self.metrics.content_type)
        self.finish(self.metrics.render())
