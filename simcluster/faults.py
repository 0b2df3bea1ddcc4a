"""What is wrong with one cluster now: its API refused, hung, slow or failing, its addresses hung."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import web

from .errors import ApiError

__all__ = ["FAULT_CODES", "HUNG_PARTS", "ApiFaults", "FaultUnsupported"]

FAULT_CODES = (429, 500, 503)
# what a hung site link cuts off: the API server, the Services' LoadBalancer and NodePort addresses,
# the pods' own addresses
HUNG_PARTS = ("api", "pods", "services")
_KEYS = {"down", "hung", "hungParts", "latency", "errorRate", "errorCode"}
_MESSAGES = {
    429: "Too many requests, please try again later.",
    500: "Internal error occurred: injected by simcluster",
    503: "The server is currently unable to handle the request (injected by simcluster)",
}


class FaultUnsupported(Exception):
    """This cluster cannot have the fault asked for (its runtime, or what the machine lacks)."""


@dataclass
class ApiFaults:
    """What the API does wrong right now. The cluster applies ``down`` and ``hung``; this only says them."""

    down: bool = False  # connections refused
    hung: frozenset[str] = frozenset()  # parts of HUNG_PARTS whose traffic is dropped
    latency: float = 0.0  # seconds added before every request is handled
    error_rate: float = 0.0  # fraction of requests answered with error_code
    error_code: int = 503

    def changed(self, changes: dict[str, Any]) -> ApiFaults:
        """These faults with admin API input applied (camelCase keys); ValueError on anything invalid."""
        unknown = set(changes) - _KEYS
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {sorted(_KEYS)}")
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
        hung = _hung(changes, self.hung)
        if down and hung:
            raise ValueError(
                "down and hung exclude each other (a refused connection is not a hung one); "
                "send down: false with hung: true"
            )
        return replace(self, down=down, hung=hung, latency=latency, error_rate=rate, error_code=code)

    def set(self, other: ApiFaults) -> None:
        self.down, self.hung = other.down, other.hung
        self.latency, self.error_rate, self.error_code = other.latency, other.error_rate, other.error_code

    def clear(self) -> None:
        self.set(ApiFaults())

    def as_dict(self) -> dict[str, Any]:
        return {
            "down": self.down,
            "hung": bool(self.hung),
            "hungParts": sorted(self.hung),
            "latency": self.latency,
            "errorRate": self.error_rate,
            "errorCode": self.error_code,
        }

    async def before_request(self, request: web.Request) -> None:
        """The API server's hook: delay, then maybe fail (health endpoints fail too)."""
        if self.latency > 0:
            await asyncio.sleep(self.latency)
        if self.error_rate > 0 and random.random() < self.error_rate:
            raise ApiError(self.error_code, _MESSAGES[self.error_code])


def _hung(changes: dict[str, Any], current: frozenset[str]) -> frozenset[str]:
    """The parts to hang: ``hung: true`` alone means all of them, ``hungParts`` names some."""
    hung = changes.get("hung")
    if hung is not None and not isinstance(hung, bool):
        raise ValueError("hung must be true or false")
    parts = changes.get("hungParts")
    if parts is not None:
        if not isinstance(parts, list) or not all(isinstance(p, str) for p in parts):
            raise ValueError(f"hungParts must be a list of parts, some of {list(HUNG_PARTS)}")
        wrong = sorted(set(parts) - set(HUNG_PARTS))
        if wrong:
            raise ValueError(f"hungParts: no part {wrong}; the parts are {list(HUNG_PARTS)}")
        if hung is False and parts:
            raise ValueError("hungParts names parts to hang, but hung is false")
        if hung is True and not parts:
            raise ValueError("hungParts is empty, but hung is true")
        return frozenset(parts)
    if hung is None:
        return current
    return frozenset(HUNG_PARTS) if hung else frozenset()
