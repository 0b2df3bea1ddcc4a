"""The admin API beside the clusters: request logs, watch expiry and faults, for tests and operators."""

from __future__ import annotations

import hmac
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, Protocol

import orjson
from aiohttp import web

from .api import ApiServer
from .config import ClusterSpec
from .errors import ApiError
from .faults import ApiFaults, FaultUnsupported
from .store import Store

__all__ = ["Administered", "make_admin_app"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Administered(Protocol):
    """What the admin API reads and drives in a cluster (``simcluster.cluster.Administered`` is one)."""

    spec: ClusterSpec
    url: str
    api: ApiServer
    store: Store
    faults: ApiFaults

    async def set_down(self, down: bool) -> None: ...

    def check_hung(self, parts: frozenset[str]) -> None: ...

    async def set_hung(self, parts: frozenset[str]) -> None: ...

    def set_node_ready(self, name: str, ready: bool) -> dict[str, Any]: ...

    def remove_node(self, name: str) -> None: ...

    def kill_pods(self) -> int: ...

    def held(self) -> dict[str, int]: ...


def _json(body: Any, status: int = 200) -> web.Response:
    return web.Response(body=orjson.dumps(body), status=status, content_type="application/json")


def make_admin_app(clusters: Mapping[str, Administered], token: str) -> web.Application:
    """Routes under ``/clusters/{name}/``; every request needs ``Authorization: Bearer <token>``."""

    @web.middleware
    async def authenticate(request: web.Request, handler: Handler) -> web.StreamResponse:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
            return _json({"message": "missing or wrong admin token"}, 401)
        return await handler(request)

    def cluster(request: web.Request) -> Administered:
        name = request.match_info["cluster"]
        if name not in clusters:
            raise web.HTTPNotFound(
                text=orjson.dumps({"message": f"no cluster {name!r}"}).decode(),
                content_type="application/json",
            )
        return clusters[name]

    async def get_requests(request: web.Request) -> web.Response:
        """The request log; ``?since=SEQ`` returns only newer requests."""
        c = cluster(request)
        try:
            since = int(request.query.get("since", "0"))
        except ValueError:
            return _json({"message": "since must be an integer"}, 400)
        records = [r.as_dict() for r in c.api.requests if r.seq > since]
        return _json({"requests": records, "last": c.api.last_seq})

    async def clear_requests(request: web.Request) -> web.Response:
        c = cluster(request)
        c.api.requests.clear()
        return _json({"last": c.api.last_seq})

    async def expire_watches(request: web.Request) -> web.Response:
        """Every open watch ends with 410 Gone; resuming from an older version gets 410 too."""
        closed = cluster(request).store.expire_watches()
        return _json({"closed": closed})

    def faults_of(c: Administered) -> web.Response:
        """The faults, and per part of the site link the connections whose data it still holds."""
        return _json(c.faults.as_dict() | {"held": c.held()})

    async def get_faults(request: web.Request) -> web.Response:
        return faults_of(cluster(request))

    async def set_faults(request: web.Request) -> web.Response:
        """Body: any of {"down": bool, "hung": bool, "hungParts": [part, ...], "latency": seconds,
        "errorRate": 0..1, "errorCode": 429|500|503}; what it leaves out stays as it is."""
        c = cluster(request)
        try:
            changes = orjson.loads(await request.read() or b"{}")
            if not isinstance(changes, dict):
                raise ValueError("the body must be a JSON object")
            wanted = c.faults.changed(changes)
            c.check_hung(wanted.hung)
        except ValueError as exc:
            return _json({"message": str(exc)}, 400)
        except FaultUnsupported as exc:
            return _json({"message": str(exc)}, 409)
        try:
            await c.set_hung(wanted.hung)
        except RuntimeError as exc:  # a tool (nft) failed
            return _json({"message": f"the hung fault could not be applied: {exc}"}, 500)
        await c.set_down(wanted.down)
        c.faults.set(wanted)
        return faults_of(c)

    async def clear_faults(request: web.Request) -> web.Response:
        c = cluster(request)
        try:
            await c.set_hung(frozenset())
        except RuntimeError as exc:
            return _json({"message": f"the hung fault could not be cleared: {exc}"}, 500)
        await c.set_down(False)
        c.faults.clear()
        return faults_of(c)

    def node_action(action: Callable[[Administered, str], Any]) -> Handler:
        async def handler(request: web.Request) -> web.Response:
            c = cluster(request)
            try:
                action(c, request.match_info["node"])
            except ApiError as err:
                return _json(err.status(), err.code)
            return _json({"node": request.match_info["node"]})

        return handler

    async def kill_pods(request: web.Request) -> web.Response:
        """Every pod on the cluster's nodes stops at once, as when the site loses power."""
        return _json({"killed": cluster(request).kill_pods()})

    async def state(request: web.Request) -> web.Response:
        c = cluster(request)
        return _json(
            {
                "name": c.spec.name,
                "role": c.spec.role,
                "url": c.url,
                "resourceVersion": c.store.rv,
                "objects": c.store.counts(),
            }
        )

    app = web.Application(middlewares=[authenticate])
    app.router.add_get("/clusters/{cluster}", state)
    app.router.add_get("/clusters/{cluster}/requests", get_requests)
    app.router.add_delete("/clusters/{cluster}/requests", clear_requests)
    app.router.add_post("/clusters/{cluster}/watches/expire", expire_watches)
    app.router.add_get("/clusters/{cluster}/faults", get_faults)
    app.router.add_post("/clusters/{cluster}/faults", set_faults)
    app.router.add_delete("/clusters/{cluster}/faults", clear_faults)
    # a node stops reporting (NotReady), reports again, or disappears with its pods
    app.router.add_post(
        "/clusters/{cluster}/nodes/{node}/notready", node_action(lambda c, n: c.set_node_ready(n, False))
    )
    app.router.add_post(
        "/clusters/{cluster}/nodes/{node}/ready", node_action(lambda c, n: c.set_node_ready(n, True))
    )
    app.router.add_delete("/clusters/{cluster}/nodes/{node}", node_action(lambda c, n: c.remove_node(n)))
    app.router.add_post("/clusters/{cluster}/pods/kill", kill_pods)
    return app
