"""Placement: which clusters, pools and nodes can take a spawn request, best first, and why."""

from __future__ import annotations

from bisect import bisect_left, insort
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from itertools import islice
from operator import itemgetter

from spawner.core.model import (
    Candidate,
    ClusterHealth,
    ClusterInventory,
    Health,
    NoCapacity,
    NodeCapacity,
    PlacementRequest,
    Pool,
    ProductAvailability,
    Reservation,
    Role,
)
from spawner.placement.fit_index import Fit, FitIndex, build_fit_index, cpu_preference, gpu_preference

__all__ = [
    "MAX_NAMED_NODES",
    "NEW_NODE_NOTE",
    "POLICIES",
    "TIMES",
    "UNKNOWN_PRODUCT",
    "availability",
    "held_for_others",
    "place",
    "reservable",
    "reserve",
    "validate_request",
]

POLICIES = ("best-fit", "spread")
UNKNOWN_PRODUCT = "unknown"  # the product of GPUs on a node without a nvidia.com/gpu.product label
NEW_NODE_NOTE = "a new node is added, which takes a few minutes"
TIMES = "\u00d7"  # the multiplication sign, as in "2 TIMES NVIDIA-A100-SXM4-80GB"
# The most node names a candidate carries, in either list: a pod's required affinity names each one,
# and etcd keeps every pod whole. 16 names are under 1 KB; naming every feasible node of a pool of
# 5,000 was over 100 KB per pod. Sixteen still leave the scheduler fifteen other nodes when the
# preferred one was taken by a pod placement did not know of.
MAX_NAMED_NODES = 16
_EPS = 1e-9  # CPU requests are floats: 0.3 - 0.2 must still fit 0.1


# --------------------------------------------------------------------------- validation


def validate_request(request: PlacementRequest, clusters: Collection[str]) -> str | None:
    """What is wrong with a request, as a sentence for the user, or None. ``clusters``: all names."""
    for value, what in (
        (request.gpus, "number of GPUs"),
        (request.cpu, "CPU request"),
        (request.memory, "memory request"),
        (request.gpus_in_use, "number of GPUs in use"),
        (request.gpu_quota, "GPU limit"),
    ):
        if value is not None and value < 0:
            return f"The {what} must be 0 or more, not {value:g}"
    allowed = request.allowed_clusters
    usable = [c for c in clusters if allowed is None or c in allowed]
    if request.cluster != "auto":
        if request.cluster not in clusters:
            known = ", ".join(clusters) or "none"
            return f"There is no cluster named {request.cluster!r} (clusters: {known})"
        if request.cluster not in usable:
            yours = ", ".join(usable)
            return f"You may not use cluster {request.cluster!r}" + (f"; yours: {yours}" if yours else "")
    if not usable:
        return "You may not use any cluster" if clusters else "There is no cluster to start servers on"
    return None


# --------------------------------------------------------------------------- reservations


@dataclass
class _Held:
    """Live reservations of one cluster: per node (GPUs, CPUs, memory), and per elastic pool the GPUs
    of each reservation waiting for a new node."""

    nodes: dict[str, tuple[int, float, int]] = field(default_factory=dict)
    future: dict[str, list[int]] = field(default_factory=dict)


_NOTHING_HELD = _Held()


def _held(reservations: Sequence[Reservation], now: float | None) -> dict[str, _Held]:
    out: dict[str, _Held] = {}
    for r in reservations:
        if now is not None and r.expires <= now:
            continue
        held = out.get(r.cluster)
        if held is None:
            held = out[r.cluster] = _Held()
        if r.node is None:
            held.future.setdefault(r.pool, []).append(r.gpus)
        else:
            g, c, m = held.nodes.get(r.node, (0, 0.0, 0))
            held.nodes[r.node] = (g + r.gpus, c + r.cpu, m + r.memory)
    return out


def _starting(pool: Pool, hold: _Held) -> list[int]:
    """The free GPUs of each new node the pool's waiting reservations start: packed first-fit, largest
    first, as cluster-autoscaler and Karpenter put pending pods on a node already on its way. Without
    GPUs per node (a CPU pool) each reservation counts as a node of its own."""
    rooms: list[int] = []
    for gpus in sorted(hold.future.get(pool.name, ()), reverse=True):
        if pool.gpus_per_node > 0:
            for i, room in enumerate(rooms):
                if room >= gpus:
                    rooms[i] = room - gpus
                    break
            else:
                rooms.append(max(pool.gpus_per_node - gpus, 0))
        else:
            rooms.append(0)
    return rooms


def _free(node: NodeCapacity, held: _Held) -> tuple[int, float, int]:
    g, c, m = held.nodes.get(node.name, (0, 0.0, 0))
    return (
        node.gpus_allocatable - node.gpus_requested - g,
        node.cpu_allocatable - node.cpu_requested - c,
        node.memory_allocatable - node.memory_requested - m,
    )


def reserve(
    candidate: Candidate,
    request: PlacementRequest,
    now: float,
    ttl: float,
    *,
    reservation_id: str | None = None,
) -> Reservation:
    """Hold the request's GPUs, CPUs and memory on the candidate's preferred node (or on a future node
    of its elastic pool) until ``now + ttl``, so concurrent placements do not count them as free."""
    if ttl <= 0:
        raise ValueError(f"a reservation needs a positive ttl, not {ttl}")
    node = candidate.preferred_node
    if node is None and not candidate.elastic:
        raise ValueError(f"candidate {candidate.cluster}/{candidate.pool} names no node to reserve")
    where = node if node is not None else f"{candidate.pool}+new"
    return Reservation(
        id=reservation_id or f"{request.user}/{candidate.cluster}/{where}/{now!r}",
        cluster=candidate.cluster,
        node=node,
        pool=candidate.pool,
        gpus=request.gpus,
        cpu=request.cpu,
        memory=request.memory,
        expires=now + ttl,
    )


def reservable(candidate: Candidate, request: PlacementRequest) -> bool:
    """Whether starting ``request`` on ``candidate`` holds something that concurrent placements must
    see: GPUs always; CPUs and memory only on a named node. A new node's size is known in GPUs only,
    so a CPU-only reservation of one would count as a whole node (see ``_starting``)."""
    if request.gpus > 0:
        return True
    return candidate.preferred_node is not None and (request.cpu > 0 or request.memory > 0)


def held_for_others(
    candidate: Candidate,
    request: PlacementRequest,
    inventories: Sequence[ClusterInventory],
    reservations: Sequence[Reservation],
    *,
    now: float | None = None,
) -> tuple[str, ...]:
    """The nodes a pod meant for a new node of ``candidate``'s elastic pool must keep off: nodes of
    that pool where the request fits in what the scheduler sees free, but only by taking what live
    reservations hold for other spawns. The scheduler knows nothing of reservations, so without this
    it binds the pod there and the spawn that reserved the node finds it full.

    Empty for a candidate that is not a new node. At most ``MAX_NAMED_NODES``, the emptiest first:
    those are where the scheduler's default scoring (least allocated) would put the pod. Leave out
    the reservation of the spawn being placed, as ``place`` does."""
    if not candidate.elastic:
        return ()
    hold = _held(reservations, now).get(candidate.cluster)
    inv = next((i for i in inventories if i.cluster == candidate.cluster), None)
    if hold is None or inv is None:
        return ()
    gpus, product, memory = request.gpus, request.gpu_product, request.memory
    cpu = request.cpu - _EPS
    found = []
    for n, (g, c, m) in _held_in(_fit_index(inv), hold).get(candidate.pool, ()):
        if gpus > 0 and product not in (None, n.gpu_product):
            continue
        fg = n.gpus_allocatable - n.gpus_requested
        fc = n.cpu_allocatable - n.cpu_requested
        fm = n.memory_allocatable - n.memory_requested
        scheduler_fits = fg >= gpus and fc >= cpu and fm >= memory
        if scheduler_fits and not (fg - g >= gpus and fc - c >= cpu and fm - m >= memory):
            found.append((-fg, -fc, n.name))
    return tuple(name for *_, name in sorted(found)[:MAX_NAMED_NODES])


# --------------------------------------------------------------------------- availability


def availability(
    inventories: Sequence[ClusterInventory],
    reservations: Sequence[Reservation] = (),
    *,
    now: float | None = None,
) -> dict[str, tuple[ProductAvailability, ...]]:
    """Per cluster, per GPU product (sorted): GPUs on usable nodes of its pools, how many are free
    (reservations deducted), the most free on one node, and the GPUs of a node an elastic pool can
    still add. Health is not applied: the caller says which clusters are down."""
    return _available(inventories, _held(reservations, now))


def _products(survey: dict[str, list[int]]) -> tuple[ProductAvailability, ...]:
    return tuple(
        ProductAvailability(product, a[0], a[1], largest_free=a[2], new_node_gpus=a[3])
        for product, a in sorted(survey.items())
    )


def _survey(inv: ClusterInventory, hold: _Held) -> dict[str, list[int]]:
    """Per GPU product of a cluster's pools: [GPUs on usable nodes, free, most free on one node,
    GPUs of a new node an elastic pool can still add, most GPUs of any node Ready or not]."""
    fits = _fit_index(inv)
    held = _held_in(fits, hold)
    acc: dict[str, list[int]] = {}
    for pool in dict.fromkeys(p.name for p in inv.pools):
        mine = held.get(pool, ())
        for product, tally in fits.pool(pool).gpus.items():
            a = acc.get(product or UNKNOWN_PRODUCT)
            if a is None:
                a = acc[product or UNKNOWN_PRODUCT] = [0, 0, 0, 0, 0]
            a[4] = max(a[4], tally.biggest)
            a[0] += tally.total
            free, largest = tally.free, 0
            taken: dict[int, int] = {}  # free GPUs before the reservations -> reserved nodes
            for n, r in mine:
                if n.gpu_product != product or n.gpus_allocatable <= 0:
                    continue
                before = max(n.gpus_allocatable - n.gpus_requested, 0)
                after = max(n.gpus_allocatable - n.gpus_requested - r[0], 0)
                free += after - before
                taken[before] = taken.get(before, 0) + 1
                largest = max(largest, after)
            for f, count in tally.free_per_node:  # the most free on a node no reservation holds
                if count > taken.get(f, 0):
                    largest = max(largest, f)
                    break
            a[1] += free
            a[2] = max(a[2], largest)
    for p in inv.pools:
        if p.elastic and p.gpus_per_node > 0:
            a = acc.setdefault(p.gpu_product or UNKNOWN_PRODUCT, [0, 0, 0, 0, 0])
            a[4] = max(a[4], p.gpus_per_node)
            if fits.pool(p.name).size + len(_starting(p, hold)) < p.max_nodes:
                a[3] = max(a[3], p.gpus_per_node)
    return acc


def _held_in(fits: FitIndex, hold: _Held) -> dict[str, list[tuple[NodeCapacity, tuple[int, float, int]]]]:
    """Per pool, the usable nodes that live reservations hold, with what they hold."""
    out: dict[str, list[tuple[NodeCapacity, tuple[int, float, int]]]] = {}
    by_name = fits.by_name
    for name, r in hold.nodes.items():
        n = by_name.get(name)
        if n is not None and n.ready and n.schedulable:
            mine = out.get(n.pool)
            if mine is None:
                mine = out[n.pool] = []
            mine.append((n, r))
    return out


# --------------------------------------------------------------------------- placement


@dataclass
class _Choice:
    """A candidate before its reason is written."""

    # (pool degraded, node has GPUs [0-GPU requests], pool elastic, new node, best preference, pool index);
    # a new node's preference is its GPUs: the smallest that fits first
    order: tuple[int, int, int, int, float, int]
    pool: Pool
    nodes: tuple[str, ...]
    best: NodeCapacity | None  # None: a new node of an elastic pool


@dataclass
class _View:
    """One considered cluster: its health, its pools' health, its candidates."""

    inv: ClusterInventory
    index: int
    state: Health | None  # None: the inventory has not synced yet
    reason: str
    pool_states: dict[str, Health]
    hold: _Held
    choices: list[_Choice] = field(default_factory=list)
    shortage: str | None = None  # why it has no candidate (computed when needed)
    full: set[str] = field(default_factory=set)  # pools with nodes of the product, all too full
    fits: FitIndex | None = None  # the cluster's nodes per pool (None while unavailable)

    @property
    def unavailable(self) -> bool:
        return self.state is None or self.state is Health.DOWN


def place(
    request: PlacementRequest,
    inventories: Sequence[ClusterInventory],
    health: Mapping[str, ClusterHealth],
    reservations: Sequence[Reservation] = (),
    *,
    policy: str = "best-fit",
    now: float | None = None,
) -> list[Candidate] | NoCapacity:
    """Where a request can start, best first, each with a reason the user reads; or why nowhere.

    Clusters: the allowed ones (only the pinned one unless ``request.cluster == "auto"``), without
    DOWN or unsynced ones (a missing health entry counts as HEALTHY). Order: HEALTHY before DEGRADED,
    and on-prem before cloud within each; inside a cluster, healthy pools first, fixed pools (by how
    well their best node fits) before elastic ones, existing nodes before new ones. Reservations
    that expired by ``now`` are ignored (all count when ``now`` is None); a reservation without a
    node holds one future node of its pool. A caller placing a spawn again leaves that spawn's own
    reservation out. ``gpu_product`` is ignored for 0-GPU requests, which never start a GPU node.

    ``Candidate.elastic`` is True only for a new node of an elastic pool (``nodes == ()``: wait for
    the scale-up); existing nodes of an elastic pool are offered like a fixed pool's (fail fast), and
    a pool that can still grow is offered as a new node too, after them. ``nodes`` names the best
    ``MAX_NAMED_NODES`` that fit at most, best first.

    The nodes are read from ``inv.fits`` when it is the index of ``inv.nodes`` (the service's
    snapshots carry the one their NodeIndex keeps); otherwise an index is built for the call. Node
    names are unique within a cluster.
    """
    if policy not in POLICIES:
        raise ValueError(f"unknown placement policy {policy!r} (known: {', '.join(POLICIES)})")
    allowed = request.allowed_clusters
    usable = [inv for inv in inventories if allowed is None or inv.cluster in allowed]
    problem = validate_request(request, [inv.cluster for inv in inventories])
    quota = request.gpu_quota
    if (
        problem is None
        and quota is not None
        and request.gpus > 0
        and request.gpus_in_use + request.gpus > quota
    ):
        room = max(0, quota - request.gpus_in_use)
        problem = f"Cannot start {_what(request)}: your GPU limit is {quota}; you hold {request.gpus_in_use}"
        problem += f", so you can ask for at most {room} more" if room else ""
    held = _held(reservations, now)
    if problem is not None:
        return NoCapacity(problem, _available(usable, held))

    pinned = request.cluster != "auto"
    considered = [inv for inv in usable if not pinned or inv.cluster == request.cluster]
    spread = policy == "spread"
    views = [
        _view(i, inv, health.get(inv.cluster), held.get(inv.cluster, _NOTHING_HELD), request, spread)
        for i, inv in enumerate(considered)
    ]
    natural = sorted(views, key=lambda v: (v.inv.role is not Role.ONPREM, v.index))
    ordered = sorted(
        (v for v in views if v.choices),
        key=lambda v: (v.state is Health.DEGRADED, v.inv.role is not Role.ONPREM, v.index),
    )
    if not ordered:
        surveys = {inv.cluster: _survey(inv, held.get(inv.cluster, _NOTHING_HELD)) for inv in usable}
        message = _no_capacity(request, natural, [surveys[v.inv.cluster] for v in natural])
        return NoCapacity(message, {cluster: _products(survey) for cluster, survey in surveys.items()})

    rank = {v.index: r for r, v in enumerate(ordered)}
    label = "most free" if spread else "best fit"
    out: list[Candidate] = []
    for v in ordered:
        notes = []
        for w in natural:
            if w is v:
                break
            if w.unavailable or not w.choices:
                notes.append(_shortage(w, request))
            elif rank[w.index] > rank[v.index]:
                notes.append(_state_note(w.inv.cluster, "degraded", w.reason))
        if v.state is Health.DEGRADED:
            notes.append(_state_note(v.inv.cluster, "degraded", v.reason))
        for c in v.choices:
            pool_notes = _pool_notes(v, c, request)
            if c.order[0]:
                pool_notes.append(f"pool {c.pool.name} of {v.inv.cluster} is degraded")
            prefix = "; ".join(notes + pool_notes)
            body = _body(v, c, request, label)
            out.append(
                Candidate(
                    cluster=v.inv.cluster,
                    pool=c.pool.name,
                    elastic=c.best is None,
                    nodes=c.nodes,
                    preferred_node=c.best.name if c.best is not None else None,
                    reason=f"{prefix}: {body}" if prefix else body,
                )
            )
    return out


def _pool_notes(v: _View, c: _Choice, request: PlacementRequest) -> list[str]:
    """Why pools of the same cluster that would naturally come first (fixed before elastic) do not."""
    cluster = v.inv.cluster
    pools = v.inv.pools
    at = c.order[-1]
    ranked: dict[int, tuple[int, int, int, int, float, int]] = {}
    for x in v.choices:  # sorted: a pool's first choice is its best (existing nodes before a new one)
        ranked.setdefault(x.order[-1], x.order)
    notes = []
    for i, p in enumerate(pools):
        if (p.elastic, i) >= (c.pool.elastic, at):
            continue
        if v.pool_states[p.name] is Health.DOWN:
            notes.append(f"pool {p.name} of {cluster} is down")
        elif i in ranked:
            # only when its health is what put it after this one: in a degraded cluster every pool
            # is degraded, and the cluster's own note says so already
            if ranked[i][0] > c.order[0]:
                notes.append(f"pool {p.name} of {cluster} is degraded")
        elif p.elastic:
            note = _elastic_note(cluster, p, v.hold, request)
            if note is not None:
                notes.append(note)
        elif p.name in v.full:
            st = _stats(v.inv, (p.name,), request, v.hold)
            notes.append(_capacity(f"pool {p.name} of {cluster}", st, request, False))
    return notes


def _available(
    inventories: Sequence[ClusterInventory], held: dict[str, _Held]
) -> dict[str, tuple[ProductAvailability, ...]]:
    return {inv.cluster: _products(_survey(inv, held.get(inv.cluster, _NOTHING_HELD))) for inv in inventories}


def _view(
    index: int,
    inv: ClusterInventory,
    ch: ClusterHealth | None,
    hold: _Held,
    request: PlacementRequest,
    spread: bool,
) -> _View:
    state: Health | None = (ch.state if ch is not None else Health.HEALTHY) if inv.synced else None
    pool_health = ch.pool_states if ch is not None else {}
    # a pool's own health: the cluster's state applies to all of them through ``state``
    pool_states = {p.name: pool_health.get(p.name, Health.HEALTHY) for p in inv.pools}
    v = _View(inv, index, state, ch.reason if ch is not None else "", pool_states, hold)
    if v.unavailable:
        return v
    ok = {name for name, s in pool_states.items() if s is not Health.DOWN}
    fits = _fit_index(inv)
    v.fits = fits
    feasible, v.full = _scan(fits, ok, request, hold, spread)
    for i, pool in enumerate(inv.pools):
        if pool.name not in ok:
            continue
        degraded = int(pool_states[pool.name] is Health.DEGRADED and state is Health.HEALTHY)
        found = feasible.get(pool.name)
        if found:
            best = found[0]
            rank = int(request.gpus == 0 and best[6].gpus_allocatable > 0)
            order = (degraded, rank, int(pool.elastic), 0, best[0], i)
            names = tuple(map(_NAME, found[:MAX_NAMED_NODES]))
            v.choices.append(_Choice(order, pool, names, best[6]))
        # A warm elastic pool is offered as a new node too, after its existing nodes: a spawn whose
        # existing node is taken before its pod is bound then has a place to go while the pool grows.
        if pool.elastic and _can_grow(pool, v, request):
            v.choices.append(_Choice((degraded, 0, 1, 1, float(pool.gpus_per_node), i), pool, (), None))
    v.choices.sort(key=lambda c: c.order)
    return v


_NAME = itemgetter(1)


def _fit_index(inv: ClusterInventory) -> FitIndex:
    """The inventory's index if it is the one of its nodes (a NodeIndex snapshot's); else built now."""
    fits = inv.fits
    if isinstance(fits, FitIndex) and fits.nodes is inv.nodes:
        return fits
    return build_fit_index(inv.nodes)


def _scan(
    fits: FitIndex,
    pools: Collection[str],
    request: PlacementRequest,
    hold: _Held,
    spread: bool,
) -> tuple[dict[str, list[Fit]], set[str]]:
    """The best feasible nodes per pool, best first (the index's order, with the nodes that
    reservations hold re-ranked), at least the first ``MAX_NAMED_NODES`` of them; and the pools that
    have nodes with the GPUs asked for (Ready or not) but none that fits. The hot loops: keep them
    lean."""
    gpus, product, memory = request.gpus, request.gpu_product, request.memory
    cpu = request.cpu - _EPS
    held = _held_in(fits, hold) if hold.nodes else {}
    out: dict[str, list[Fit]] = {}
    full: set[str] = set()
    for name in pools:
        pf = fits.pool(name)
        if gpus > 0 and product is not None and product not in pf.gpus:
            out[name] = []  # no node of the product
            continue
        order = pf.order(gpus > 0, spread)
        mine = held.get(name)
        # Only the best MAX_NAMED_NODES are named. Re-ranking takes each held node out of the index's
        # order, so as many more as there are held nodes keep the first MAX_NAMED_NODES exact.
        limit = MAX_NAMED_NODES + len(mine) if mine else MAX_NAMED_NODES
        if gpus == 0:
            fit = (f for f in order if f[3] >= cpu and f[4] >= memory and f[2] >= 0)
        elif product is None:
            fit = (f for f in order if f[2] >= gpus and f[3] >= cpu and f[4] >= memory)
        else:
            fit = (f for f in order if f[2] >= gpus and f[5] == product and f[3] >= cpu and f[4] >= memory)
        found = list(islice(fit, limit))
        if mine:
            found = _rerank(found, mine, request, -1.0 if spread else 1.0)
        out[name] = found
        if not found and gpus > 0 and (product in pf.gpus if product is not None else pf.gpus):
            full.add(name)
    return out, full


def _rerank(
    found: list[Fit],
    held: list[tuple[NodeCapacity, tuple[int, float, int]]],
    request: PlacementRequest,
    sign: float,
) -> list[Fit]:
    """``found`` (a pool's feasible nodes, best first, counted as if nothing were held) with each node
    that live reservations hold taken out and put back where what they leave free on it ranks it, if
    the request still fits there. Changes ``found``."""
    gpus, product, memory = request.gpus, request.gpu_product, request.memory
    cpu = request.cpu - _EPS
    out = found
    for n, r in held:
        has = n.gpus_allocatable > 0
        if gpus > 0 and (not has or (product is not None and n.gpu_product != product)):
            continue
        fg = n.gpus_allocatable - n.gpus_requested
        fc = n.cpu_allocatable - n.cpu_requested
        fm = n.memory_allocatable - n.memory_requested
        if gpus and fg < gpus:  # the GPUs asked for are not free, whatever the reservation
            continue
        stale = (gpu_preference(fg, fc, sign) if gpus else cpu_preference(fg, fc, has, sign), n.name)
        i = bisect_left(out, stale)  # where the index ranks it (fits compare by preference, then name)
        if i < len(out) and out[i][1] == n.name:
            del out[i]
        fg -= r[0]
        fc -= r[1]
        fm -= r[2]
        if fc >= cpu and fm >= memory and fg >= gpus:
            pref = gpu_preference(fg, fc, sign) if gpus else cpu_preference(fg, fc, has, sign)
            insort(out, (pref, n.name, fg, fc, fm, n.gpu_product, n))
    return out


def _pool_matches(pool: Pool, request: PlacementRequest) -> bool:
    """Whether new nodes of this elastic pool are of the kind asked for (not whether they are big enough)."""
    if request.gpus == 0:
        return pool.gpus_per_node == 0  # never start a GPU node for a CPU-only server
    return pool.gpus_per_node > 0 and request.gpu_product in (None, pool.gpu_product)


def _can_grow(pool: Pool, v: _View, request: PlacementRequest) -> bool:
    if not _pool_matches(pool, request) or pool.gpus_per_node < request.gpus:
        return False
    rooms = _starting(pool, v.hold)
    if request.gpus > 0 and any(room >= request.gpus for room in rooms):
        return True  # it shares a node already on its way
    size = v.fits.pool(pool.name).size if v.fits is not None else 0
    return size + len(rooms) < pool.max_nodes


# --------------------------------------------------------------------------- words


def _plural(n: float, word: str) -> str:
    return f"{n:g} {word}" + ("" if n == 1 else "s")


def _mem(nbytes: float) -> str:
    for unit, size in (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20)):
        if nbytes >= size:
            return f"{nbytes / size:.1f}".removesuffix(".0") + f" {unit}"
    return f"{max(0, int(nbytes))} bytes"


def _resources(request: PlacementRequest) -> str:
    parts = []
    if request.cpu > 0:
        parts.append(_plural(request.cpu, "CPU"))
    if request.memory > 0:
        parts.append(f"{_mem(request.memory)} memory")
    return " and ".join(parts)


def _gpu_name(product: str | None, n: int) -> str:
    return product if product is not None else ("GPU" if n == 1 else "GPUs")


def _what(request: PlacementRequest) -> str:
    if request.gpus > 0:
        g = request.gpus
        what = f"{g} {TIMES} {request.gpu_product}" if request.gpu_product else _plural(g, "GPU")
    else:
        what = "a CPU-only server"
    res = _resources(request)
    return f"{what} with {res}" if res else what


def _state_note(cluster: str, state: str, reason: str) -> str:
    return f"{cluster} is {state}" + (f" ({reason})" if reason else "")


def _body(v: _View, c: _Choice, request: PlacementRequest, label: str) -> str:
    cluster = v.inv.cluster
    if c.best is None:
        return f"starting on {cluster}, pool {c.pool.name} ({NEW_NODE_NOTE})"
    fg, fc, fm = _free(c.best, v.hold)
    fc = round(fc, 3)
    if request.gpus > 0:
        return f"{c.best.name} on {cluster} has {fg} free {_gpu_name(c.best.gpu_product, fg)} ({label})"
    why = "no GPUs requested" + (", but no node without GPUs has room" if c.best.gpus_allocatable > 0 else "")
    return f"{c.best.name} on {cluster} has {_plural(fc, 'CPU')} and {_mem(fm)} memory free ({why})"


@dataclass
class _Stats:
    """What usable nodes of some pools of a cluster offer for a request (reservations deducted)."""

    total: int = 0  # GPUs of the product on usable nodes
    free: int = 0
    largest: int = 0  # the most free on one node
    unusable: int = 0  # GPUs of the product on nodes not Ready or cordoned
    gpu_fit: bool = False  # a node has the GPUs free (so CPU or memory is what lacks)
    ready: int = 0  # usable nodes
    cpu_max: float = 0.0
    mem_max: int = 0


def _stats(inv: ClusterInventory, pools: Collection[str], request: PlacementRequest, hold: _Held) -> _Stats:
    st = _Stats()
    product = request.gpu_product
    for n in inv.nodes:
        if n.pool not in pools:
            continue
        matches = n.gpus_allocatable > 0 and product in (None, n.gpu_product)
        if not n.usable:
            st.unusable += n.gpus_allocatable if matches else 0
            continue
        fg, fc, fm = _free(n, hold)
        st.ready += 1
        st.cpu_max = max(st.cpu_max, fc)
        st.mem_max = max(st.mem_max, fm)
        if matches:
            fg = max(0, fg)
            st.total += n.gpus_allocatable
            st.free += fg
            st.largest = max(st.largest, fg)
            st.gpu_fit = st.gpu_fit or fg >= request.gpus
    return st


def _shortage(v: _View, request: PlacementRequest, *, headline: bool = False) -> str:
    """Why a cluster has no candidate. ``headline``: the product is named in the sentence already."""
    if headline or v.shortage is None:
        text = "; ".join(_shortage_parts(v, request, headline))
        if headline:
            return text
        v.shortage = text
    return v.shortage


def _shortage_parts(v: _View, request: PlacementRequest, headline: bool) -> list[str]:
    cluster = v.inv.cluster
    if v.state is None:
        return [f"{cluster} is not synced yet"]
    if v.state is Health.DOWN:
        return [_state_note(cluster, "down", v.reason)]
    pools = v.inv.pools
    down = [f"pool {p.name} of {cluster} is down" for p in pools if v.pool_states[p.name] is Health.DOWN]
    up = [p for p in pools if v.pool_states[p.name] is not Health.DOWN]
    ok_fixed = {p.name for p in up if not p.elastic}
    elastic = [p for p in up if p.elastic and _pool_matches(p, request)]
    parts = [note for p in elastic if (note := _elastic_note(cluster, p, v.hold, request)) is not None]
    st = _stats(v.inv, ok_fixed, request, v.hold)
    empty = st.ready == 0 if request.gpus == 0 else st.total == 0 and st.unusable == 0
    if not (empty and (parts or down)):  # "onprem has none" only when nothing else explains it
        parts.insert(0, _capacity(cluster, st, request, headline))
    return parts + down


def _elastic_note(cluster: str, pool: Pool, hold: _Held, request: PlacementRequest) -> str | None:
    """Why an elastic pool of the kind asked for adds no node (None: it is not of that kind)."""
    if not _pool_matches(pool, request):
        return None
    if pool.gpus_per_node < request.gpus:
        return f"{cluster} pool {pool.name} has {_plural(pool.gpus_per_node, 'GPU')} per node"
    starting = len(_starting(pool, hold))
    return f"{cluster} pool {pool.name} is at its maximum of {_plural(pool.max_nodes, 'node')}" + (
        f" ({starting} starting)" if starting else ""
    )


def _capacity(cluster: str, st: _Stats, request: PlacementRequest, headline: bool) -> str:
    g = request.gpus
    res = _resources(request)
    if g == 0:
        if st.ready == 0:
            return f"{cluster} has no Ready node"
        most = f"at most {_plural(st.cpu_max, 'CPU')} and {_mem(st.mem_max)} memory free on one node"
        return f"{cluster} has no node with {res} free ({most})"
    product = request.gpu_product
    if headline:
        if st.total == 0:
            return f"{cluster} has none" + (
                f" Ready ({st.unusable} on nodes not Ready)" if st.unusable else ""
            )
        free = "none free" if st.free == 0 else f"{st.free} free"
        if g > 1 and st.free:
            free += f", at most {st.largest} on one node"
        text = f"{cluster} has {st.total}{'' if product else ' GPUs'} ({free})"
        return text + (f", but no node with the GPUs free has {res} free" if st.gpu_fit else "")
    if st.total == 0:
        if st.unusable:
            return f"{cluster} has no Ready node with {_gpu_name(product, 2)}"
        return f"{cluster} has no {_gpu_name(product, 2)}"
    counts = f"{st.total} in total, {st.free} free"
    if st.gpu_fit:
        return f"{cluster} has no node with {g} free {_gpu_name(product, g)} and {res} free ({counts})"
    if g == 1:
        return f"{cluster} has no free {_gpu_name(product, 1)} ({counts})"
    if st.free:
        counts += f", at most {st.largest} on one node"
    return f"{cluster} has no node with {g} free {_gpu_name(product, g)} ({counts})"


def _no_capacity(request: PlacementRequest, natural: list[_View], surveys: list[dict[str, list[int]]]) -> str:
    """The NoCapacity message: the request, then per cluster (on-prem first) what it lacks."""
    pinned = request.cluster != "auto"
    cannot = f"{request.cluster} cannot" if pinned else "No cluster can"
    what = _what(request)
    if request.gpus > 0:
        product = request.gpu_product
        biggest = max(
            (a[4] for survey in surveys for p, a in survey.items() if product in (None, p)), default=0
        )
        if biggest == 0:
            name = product or "GPUs"
            products = sorted({p for survey in surveys for p in survey})
            has = f"{request.cluster} has no {name}" if pinned else f"No cluster has {name}"
            return has + (f" (GPUs there: {', '.join(products)})" if products else "")
        if request.gpus > biggest:
            unit = product or "GPUs"
            return (
                f"{cannot} start {what}: no node has more than {biggest} {unit} (a server's GPUs are on"
                f" one node); ask for {biggest} or fewer"
            )
    parts = [_shortage(v, request, headline=True) for v in natural]
    return f"{cannot} start {what} now: " + "; ".join(parts)
