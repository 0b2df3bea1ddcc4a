"""The service's REST API under /services/hybridhub/: capacity, placements, server locations, metrics."""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

from jupyterhub.services.auth import HubAuthenticated
from tornado import web

from spawner.core.model import NoCapacity, PlacementRequest
from spawner.placement.rank import availability, place, reserve, validate_request

from .fleet import Fleet
from .metrics import Metrics

__all__ = ["SCOPE_CAPACITY", "SCOPE_PLACE", "SCOPE_SERVERS", "handlers"]

SCOPE_CAPACITY = "custom:hybridhub:capacity"  # see cluster GPU availability (users)
SCOPE_PLACE = "custom:hybridhub:place"  # ask for and release placements (the hub only)
SCOPE_SERVERS = "custom:hybridhub:servers"  # look up where anyone's server runs (gateway, admins)
MAX_GPUS = 64  # a request for more than this is refused before placement looks


class ApiHandler(HubAuthenticated, web.RequestHandler):  # type: ignore[misc]
    """JSON in and out; errors as {"message": ...}; callers authenticated by the hub."""

    def initialize(self) -> None:
        self.hub_auth = self.settings["hub_auth"]  # ours, not HubAuth.instance() (the environment's)

    @property
    def fleet(self) -> Fleet:
        return self.settings["fleet"]  # type: ignore[no-any-return]

    @property
    def metrics(self) -> Metrics:
        return self.settings["metrics"]  # type: ignore[no-any-return]

    def check_xsrf_cookie(self) -> None:
        return None  # token-authenticated API: no cookies involved

    def scopes(self) -> set[str]:
        user = self.current_user or {}
        return set(user.get("scopes") or ())

    def require(self, scope: str) -> None:
        if scope not in self.scopes():
            raise web.HTTPError(403, f"this needs the scope {scope}")

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = self._reason
        exc_info = kwargs.get("exc_info")
        if exc_info and isinstance(exc_info[1], web.HTTPError) and exc_info[1].log_message:
            message = (
                exc_info[1].log_message % exc_info[1].args if exc_info[1].args else exc_info[1].log_message
            )
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": message}))

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except json.JSONDecodeError as exc:
            raise web.HTTPError(400, f"the body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise web.HTTPError(400, "the body must be a JSON object")
        return data


class CapacityHandler(ApiHandler):
    """GET api/capacity: per cluster its health, and per GPU product and per node total / allocated / free."""

    @web.authenticated
    def get(self) -> None:
        self.require(SCOPE_CAPACITY)
        book = self.settings["reservations"]
        held = book.active()
        products = availability(self.fleet.inventories(), held)
        health = self.fleet.health()
        clusters = []
        for inventory in self.fleet.inventories():
            h = health.get(inventory.cluster)
            clusters.append(
                {
                    "name": inventory.cluster,
                    "role": inventory.role.value,
                    "health": h.state.value if h else "unknown",
                    "reason": h.reason if h else "",
                    "synced": inventory.synced,
                    # per pool (the single-cluster topology has its own health per pool)
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


def _request_from(body: dict[str, Any]) -> PlacementRequest:
    def typed(key: str, kinds: tuple[type, ...], default: Any) -> Any:
        value = body.get(key, default)
        if value is not None and (
            not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds)
        ):
            raise web.HTTPError(400, f"{key} must be {' or '.join(k.__name__ for k in kinds)}")
        return value

    user = typed("user", (str,), None)
    if not user:
        raise web.HTTPError(400, "user is required")
    gpus = typed("gpus", (int,), 0)
    if not 0 <= gpus <= MAX_GPUS:
        raise web.HTTPError(400, f"gpus must be between 0 and {MAX_GPUS}")
    allowed = typed("allowed_clusters", (list,), None)
    if allowed is not None and not all(isinstance(c, str) for c in allowed):
        raise web.HTTPError(400, "allowed_clusters must be a list of cluster names")
    return PlacementRequest(
        user=user,
        gpus=gpus,
        gpu_product=typed("gpu_product", (str,), None),
        cpu=float(typed("cpu", (int, float), 0.0)),
        memory=int(typed("memory", (int,), 0)),
        cluster=typed("cluster", (str,), "auto"),
        allowed_clusters=tuple(allowed) if allowed is not None else None,
        gpu_quota=typed("gpu_quota", (int,), None),
        gpus_in_use=int(typed("gpus_in_use", (int,), 0)),
    )


class PlacementsHandler(ApiHandler):
    """POST api/placements (the hub only): ordered candidates, the first one reserved; or 409 and why not."""

    @web.authenticated
    def post(self) -> None:
        self.require(SCOPE_PLACE)
        request = _request_from(self.body())
        started = time.perf_counter()
        # no await from here to the reservation: one event-loop step, so concurrent requests see
        # each other's reservations
        problem = validate_request(request, [inv.cluster for inv in self.fleet.inventories()])
        if problem:
            raise web.HTTPError(400, problem)
        book = self.settings["reservations"]
        now = book.clock()
        result = place(
            request,
            self.fleet.inventories(),
            self.fleet.health(),
            book.active(),
            policy=self.settings["policy"],
            now=now,
        )
        if isinstance(result, NoCapacity):
            self.metrics.placed(None, "no-capacity", time.perf_counter() - started)
            self.write_json(
                {
                    "message": result.message,
                    "available": {
                        c: [{"product": p.product, "total": p.total, "free": p.free} for p in ps]
                        for c, ps in result.available.items()
                    },
                },
                status=409,
            )
            return
        first = result[0]
        held = (
            book.add(reserve(first, request, now, book.ttl, reservation_id=f"r-{uuid.uuid4().hex[:12]}"))
            if request.gpus
            else None
        )
        self.metrics.placed(
            first.cluster,
            "fallback" if _is_fallback(result, self.fleet) else "placed",
            time.perf_counter() - started,
        )
        candidates = []
        for i, c in enumerate(result):
            candidates.append(
                {
                    "cluster": c.cluster,
                    "pool": c.pool,
                    "elastic": c.elastic,
                    "nodes": list(c.nodes),
                    "preferred_node": c.preferred_node,
                    "reason": c.reason,
                    "reservation": held.id if held is not None and i == 0 else None,
                }
            )
        self.write_json({"candidates": candidates})


def _is_fallback(candidates: list[Any], fleet: Fleet) -> bool:
    roles = {name: m.config.role.value for name, m in fleet.members.items()}
    return bool(candidates) and roles.get(candidates[0].cluster) == "cloud" and "onprem" in roles.values()


class ReservationHandler(ApiHandler):
    """DELETE api/placements/{id}: the pod landed (or the attempt ended): release its GPUs."""

    @web.authenticated
    def delete(self, rid: str) -> None:
        self.require(SCOPE_PLACE)
        if not self.settings["reservations"].release(rid):
            raise web.HTTPError(404, f"no reservation {rid}")
        self.set_status(204)
        self.finish()


class ExtendHandler(ApiHandler):
    """POST api/placements/{id}/extend: keep a reservation while an elastic pool brings a node."""

    @web.authenticated
    def post(self, rid: str) -> None:
        self.require(SCOPE_PLACE)
        renewed = self.settings["reservations"].extend(rid)
        if renewed is None:
            raise web.HTTPError(404, f"no reservation {rid} (expired or released)")
        self.write_json(
            {
                "id": renewed.id,
                "expires_in": round(renewed.expires - self.settings["reservations"].clock(), 1),
            }
        )


class ServerHandler(ApiHandler):
    """GET api/servers/{user}[/{name}]: where a server runs (cluster, pod, IP), from the pod inventory."""

    @web.authenticated
    def get(self, user: str, name: str = "") -> None:
        me = (self.current_user or {}).get("name")
        scopes = self.scopes()
        allowed = (
            me == user
            or SCOPE_SERVERS in scopes
            or "access:servers" in scopes
            or f"access:servers!user={user}" in scopes
            or f"access:servers!server={user}/{name}" in scopes
        )
        if not allowed:
            raise web.HTTPError(403, f"you may not look up {user}'s servers")
        found = [(c, s) for c, s in self.fleet.servers(user) if s.server == name]
        if not found:
            raise web.HTTPError(
                404, f"{user} has no server {name!r} running" if name else f"{user} has no server running"
            )
        running = [f for f in found if f[1].phase == "Running"] or found
        cluster, loc = running[0]
        self.write_json(
            {
                "user": loc.user,
                "server": loc.server,
                "cluster": cluster,
                "namespace": loc.namespace,
                "pod": loc.pod,
                "ip": loc.ip,
                "phase": loc.phase,
                "node": loc.node,
            }
        )


class MetricsHandler(ApiHandler):
    """GET metrics: Prometheus text (the hub's read:metrics scope, unless authentication is off)."""

    def get(self) -> None:
        if self.settings["authenticate_metrics"]:
            if self.current_user is None:
                raise web.HTTPError(403, "metrics need a token with the read:metrics scope")
            self.require("read:metrics")
        self.set_header("Content-Type", self.metrics.content_type)
        self.finish(self.metrics.render())


def handlers(prefix: str) -> list[tuple[str, type[web.RequestHandler]]]:
    p = prefix.rstrip("/")
    return [
        (rf"{p}/api/capacity", CapacityHandler),
        (rf"{p}/api/placements", PlacementsHandler),
        (rf"{p}/api/placements/([^/]+)", ReservationHandler),
        (rf"{p}/api/placements/([^/]+)/extend", ExtendHandler),
        (rf"{p}/api/servers/([^/]+)", ServerHandler),
        (rf"{p}/api/servers/([^/]+)/([^/]*)", ServerHandler),
        (rf"{p}/metrics", MetricsHandler),
    ]
