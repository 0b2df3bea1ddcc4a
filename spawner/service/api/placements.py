"""POST api/placements and api/placements/{id}: where a spawn goes, and the GPUs held for it meanwhile."""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from typing import Any

from tornado import web

from spawner.core.model import Candidate, ClusterInventory, Health, NoCapacity, PlacementRequest, Role
from spawner.placement.rank import availability, held_for_others, place, reservable, reserve, validate_request

from ..fleet import FleetView
from .base import SCOPE_PLACE, ApiHandler

__all__ = [
    "MAX_GPUS",
    "MAX_TRIED",
    "ExtendHandler",
    "PlacementsHandler",
    "ReservationHandler",
    "request_from",
    "tried_from",
]

MAX_GPUS = 64  # a request for more than this is refused before placement looks
MAX_TRIED = 32  # a spawn tries a few candidates (HybridSpawner.max_attempts); more is a broken client

# A candidate as a spawn that tried it names it: cluster, pool, and whether it was a new node.
Place = tuple[str, str, bool]


def request_from(body: dict[str, Any]) -> PlacementRequest:
    """The placement request in a JSON body (null means the default); ``HTTPError(400)`` naming the first
    field that is wrong."""

    def typed(key: str, kinds: tuple[type, ...], default: Any) -> Any:
        value = body.get(key)
        if value is None:  # absent or null: the default
            return default
        if not isinstance(value, kinds) or (isinstance(value, bool) and bool not in kinds):
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


def tried_from(body: dict[str, Any]) -> set[Place]:
    """The candidates a spawn already tried (``tried``: a list of ``{"cluster", "pool", "elastic"}``),
    which placement leaves out; ``HTTPError(400)`` when the list is malformed."""
    raw = body.get("tried")
    if raw is None:
        return set()
    problem = "tried must be a list of {cluster, pool, elastic} objects"
    if not isinstance(raw, list) or len(raw) > MAX_TRIED:
        raise web.HTTPError(400, f"{problem}, at most {MAX_TRIED}")
    out = set()
    for item in raw:
        if not isinstance(item, dict):
            raise web.HTTPError(400, problem)
        cluster, pool, elastic = item.get("cluster"), item.get("pool"), item.get("elastic", False)
        if not (isinstance(cluster, str) and isinstance(pool, str) and isinstance(elastic, bool)):
            raise web.HTTPError(400, problem)
        out.add((cluster, pool, elastic))
    return out


def pod_from(body: dict[str, Any]) -> tuple[str, dict[str, str]] | None:
    """The spawn's pod name and its namespace per cluster (``pod``, ``namespaces``), whose copies the
    service looks for; None when the request names no pod; ``HTTPError(400)`` when malformed."""
    pod, namespaces = body.get("pod"), body.get("namespaces")
    if pod is None and namespaces is None:
        return None
    if not isinstance(pod, str) or not pod or len(pod) > 253:
        raise web.HTTPError(400, "pod must be the server's pod name")
    if not isinstance(namespaces, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in namespaces.items()
    ):
        raise web.HTTPError(400, "namespaces must map cluster names to namespaces")
    return pod, namespaces


def pods_seen(fleet: FleetView, user: str, pod: str, namespaces: dict[str, str]) -> dict[str, Any]:
    """Where the service's watches show a pod of this name: ``checked``, the clusters whose view is
    current (healthy, watches in sync), and ``found``, the pods of that name there, not yet being
    deleted. A spawn then asks the clusters itself only when a pod was found or a cluster's view is
    not current: a hub that died during a start leaves such pods, and nobody else would remove them
    before the sweep."""
    health = fleet.health()
    synced = {inv.cluster for inv in fleet.inventories() if inv.synced}
    current = {name for name, h in health.items() if h.state is Health.HEALTHY} & synced
    checked = sorted(current & set(namespaces))
    found = [
        {"cluster": cluster, "namespace": loc.namespace, "uid": loc.uid}
        for cluster, loc in fleet.servers(user)
        if cluster in checked
        and (loc.namespace, loc.pod) == (namespaces[cluster], pod)
        and not loc.terminating
    ]
    return {"checked": checked, "found": found}


def _where(place_: Place) -> str:
    cluster, pool, elastic = place_
    return f"{cluster} pool {pool}" + (" (a new node)" if elastic else "")


def is_fallback(first: Candidate, inventories: Sequence[ClusterInventory]) -> bool:
    """Whether the first choice is a cloud pool while the fleet has on-prem pools to prefer."""
    roles = {(inv.cluster, pool.name): pool.role or inv.role for inv in inventories for pool in inv.pools}
    return roles.get((first.cluster, first.pool)) is Role.CLOUD and Role.ONPREM in roles.values()


class PlacementsHandler(ApiHandler):
    """POST api/placements (the hub only): ordered candidates, the first one reserved; or 409 and why not.

    A spawn asks once per attempt. Its first request names nothing tried; when an attempt fails, the
    spawn releases that attempt's reservation and asks again with the candidates it tried in
    ``tried``. Placement then runs afresh on what is free now, leaves those out, and reserves the
    first of the rest: each attempt, fallbacks included, holds what it is about to use, and no
    spawn holds anything for a candidate it may never try (which would keep others off it).
    """

    required_scopes = (SCOPE_PLACE,)

    @web.authenticated
    def post(self) -> None:
        body = self.body()
        request = request_from(body)
        tried = tried_from(body)
        pod = pod_from(body)
        started = time.perf_counter()
        # no await from here to the reservation: one event-loop step, so concurrent requests see
        # each other's reservations
        inventories = self.fleet.inventories()
        problem = validate_request(request, [inv.cluster for inv in inventories])
        if problem:
            raise web.HTTPError(400, problem)
        now = self.book.clock()
        active = self.book.active()
        result = place(
            request, inventories, self.fleet.health(), active, policy=self.settings["policy"], now=now
        )
        if not isinstance(result, NoCapacity) and tried:
            left = [c for c in result if (c.cluster, c.pool, c.elastic) not in tried]
            if not left:
                names = ", ".join(sorted(_where(t) for t in tried))
                result = NoCapacity(
                    f"Every place with room for this server now was tried already: {names}",
                    availability(inventories, active, now=now),
                )
            else:
                result = left
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
        held = None
        if reservable(first, request):
            rid = f"r-{uuid.uuid4().hex[:12]}"
            held = self.book.add(reserve(first, request, now, self.book.ttl, reservation_id=rid))
        outcome = "fallback" if is_fallback(first, inventories) else "placed"
        self.metrics.placed(first.cluster, outcome, time.perf_counter() - started)
        self.write_json(
            {
                **({"pods": pods_seen(self.fleet, request.user, *pod)} if pod is not None else {}),
                "candidates": [
                    {
                        "cluster": c.cluster,
                        "pool": c.pool,
                        "elastic": c.elastic,
                        "nodes": list(c.nodes),
                        "preferred_node": c.preferred_node,
                        # what a pod for a new node must keep off; computed before this placement's
                        # own reservation, which holds no existing node
                        "avoid_nodes": list(held_for_others(c, request, inventories, active, now=now)),
                        "reason": c.reason,
                        "reservation": held.id if held is not None and i == 0 else None,
                        "expires_in": self.book.ttl if held is not None and i == 0 else None,
                    }
                    for i, c in enumerate(result)
                ],
            }
        )


class ReservationHandler(ApiHandler):
    """DELETE api/placements/{id} (the hub only): the pod landed or the attempt ended; free its GPUs."""

    required_scopes = (SCOPE_PLACE,)

    @web.authenticated
    def delete(self, rid: str) -> None:
        if not self.book.release(rid):
            raise web.HTTPError(404, f"no reservation {rid}")
        self.set_status(204)
        self.finish()


class ExtendHandler(ApiHandler):
    """POST api/placements/{id}/extend (the hub only): hold the GPUs for another ``reservation_ttl``."""

    required_scopes = (SCOPE_PLACE,)

    @web.authenticated
    def post(self, rid: str) -> None:
        renewed = self.book.extend(rid)
        if renewed is None:
            raise web.HTTPError(404, f"no reservation {rid} (expired or released)")
        self.write_json({"id": renewed.id, "expires_in": round(renewed.expires - self.book.clock(), 1)})
