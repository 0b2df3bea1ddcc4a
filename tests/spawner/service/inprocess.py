"""The service's tornado app in this process: a fleet of plain snapshots, a token table, a real server.

No hub, no cluster, no root: ``TokenTable`` answers the token check that ``HubAuth`` would ask the hub's
``GET /hub/api/user`` for, and everything else (token parsing, JupyterHub's scope checks, routing,
handlers, error JSON) is the production code.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable
from dataclasses import dataclass, field
from typing import Any

from jupyterhub.services.auth import HubAuth
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from spawner.core.model import ClusterHealth, ClusterInventory
from spawner.inventory.index import ServerLocation
from spawner.placement.reservations import ReservationBook
from spawner.service.app import HybridHubService
from spawner.service.capacity import fleet_capacity
from spawner.service.metrics import Metrics

PREFIX = "/services/hybridhub/"


class Clock:
    """Monotonic seconds that move only when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class TokenTable(HubAuth):
    """HubAuth whose token lookup reads a table instead of asking the hub.

    ``user_for_token`` is the method HubAuth calls with the token it parsed from the request; the
    models are what the hub's ``GET /hub/api/user`` returns (kind, name, the token's expanded scopes).
    """

    def __init__(self, models: dict[str, dict[str, Any]]) -> None:
        super().__init__(api_url="http://127.0.0.1:1/hub/api", api_token="unused", cache_max_age=0)
        self.models = models
        self.asked: list[str] = []

    def user_for_token(
        self, token: str, use_cache: bool = True, session_id: str = "", *, sync: bool = True
    ) -> dict[str, Any] | Awaitable[dict[str, Any] | None] | None:
        self.asked.append(token)
        model = self.models.get(token)

        async def answer() -> dict[str, Any] | None:
            return model

        return model if sync else answer()


@dataclass
class StaticFleet:
    """The fleet as the handlers read it, from snapshots a test sets."""

    inventory: list[ClusterInventory] = field(default_factory=list)
    states: dict[str, ClusterHealth] = field(default_factory=dict)
    pods: list[tuple[str, ServerLocation]] = field(default_factory=list)

    def inventories(self) -> list[ClusterInventory]:
        return list(self.inventory)

    def health(self) -> dict[str, ClusterHealth]:
        return dict(self.states)

    def servers(self, user: str) -> list[tuple[str, ServerLocation]]:
        return [(c, loc) for c, loc in self.pods if loc.user == user]


def user(name: str, *scopes: str) -> dict[str, Any]:
    return {"kind": "user", "name": name, "admin": False, "groups": [], "scopes": list(scopes)}


def service(name: str, *scopes: str) -> dict[str, Any]:
    return {"kind": "service", "name": name, "scopes": list(scopes)}


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    text: str

    @property
    def json(self) -> Any:
        assert "json" in self.headers.get("Content-Type", ""), self.headers
        return json.loads(self.text)


@dataclass
class Service:
    """A running app and what it was built from; ``call`` sends one request."""

    fleet: StaticFleet
    book: ReservationBook
    clock: Clock
    auth: TokenTable
    metrics: Metrics
    port: int

    async def call(self, method: str, path: str, token: str | None = None, body: Any = None) -> Answer:
        headers = {"Authorization": f"token {token}"} if token else {}
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        if method == "POST" and data is None:
            data = b""
        resp = await AsyncHTTPClient().fetch(
            f"http://127.0.0.1:{self.port}{PREFIX}{path}",
            method=method,
            headers=headers,
            body=data,
            raise_error=False,
            request_timeout=10,
            connect_timeout=10,
        )
        return Answer(resp.code, dict(resp.headers), resp.body.decode())


async def running_service(
    fleet: StaticFleet,
    tokens: dict[str, dict[str, Any]],
    *,
    ttl: float = 180.0,
    authenticate_metrics: bool = True,
) -> AsyncIterator[Service]:
    """Serve the app on a free loopback port for the life of the iterator."""
    app = HybridHubService(service_prefix=PREFIX, authenticate_metrics=authenticate_metrics)
    clock = Clock()
    book = ReservationBook(ttl=ttl, clock=clock)
    capacity = fleet_capacity(fleet, book)
    metrics = Metrics(capacity, fleet.health, lambda: len(book))
    auth = TokenTable(tokens)
    sock, port = bind_unused_port()
    server = HTTPServer(app.make_app(fleet, book, metrics, capacity, hub_auth=auth))
    server.add_sockets([sock])
    try:
        yield Service(fleet, book, clock, auth, metrics, port)
    finally:
        server.stop()
        await server.close_all_connections()
