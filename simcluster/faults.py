"""Fault injection for one cluster: latency and error rates on its API, and broken nodes."""

from __future__ import annotations

import asyncio
import random
from dataclasses import asdict, dataclass
from typing import Any

from aiohttp import web

from .errors import ApiError

__all__ = ["FAULT_CODES", "ApiFaults"]

FAULT_CODES = (429, 500, 503)
_MESSAGES = {
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: injected by simcluster",
    503: "The server is currently unable to handle the request (injected by simcluster)",
}


@dataclass
class ApiFaults:
    """What the API does wrong right now. ``down`` (connections refused) is the cluster's to apply."""

    down: bool = False
    latency: float = 0.0  # seconds added before every request is handled
    error_rate: float = 0.0  # fraction of requests answered with error_code
    error_code: int = 503

    def update(self, changes: dict[str, Any]) -> None:
        """Apply admin API input (camelCase keys); raise ValueError on anything invalid."""
        known = {"down": "down", "latency": "latency", "errorRate": "error_rate", "errorCode": "error_code"}
        unknown = set(changes) - set(known)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {sorted(known)}")
        down = changes.get("down", self.down)
        latency = float(changes.get("latency", self.latency))
        rate = float(changes.get("errorRate", self.error_rate))
        code = int(changes.get("errorCode", self.error_code))
        if not isinstance(down, bool):
            raise ValueError("down must be true or false")
        if not 0 <= latency <= 60:
            raise ValueError("latency must be between 0 and 60 seconds")
        if not 0 <= rate <= 1:
            raise ValueError("errorRate must be between 0 and 1")
        if code not in FAULT_CODES:
            raise ValueError(f"errorCode must be one of {FAULT_CODES}")
        self.down, self.latency, self.error_rate, self.error_code = down, latency, rate, code

    def clear(self) -> None:
        self.down, self.latency, self.error_rate, self.error_code = False, 0.0, 0.0, 503

    def as_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {
            "down": d["down"],
            "latency": d["latency"],
            "errorRate": d["error_rate"],
            "errorCode": d["error_code"],
        }

    async def before_request(self, request: web.Request) -> None:
        """The API server's hook: delay, then maybe fail (health endpoints fail too)."""
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if self.error_rate > 0 and random.random() < self.error_rate:
            raise ApiError(self.error_code, _MESSAGES[self.error_code])
