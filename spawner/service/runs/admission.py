"""Admission of runs: whether a run's whole GPU gang fits a cluster, where it should wait, which start."""

from __future__ import annotations

import math
from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import TypeAlias

from spawner.core.model import ClusterHealth, ClusterInventory, Health, Pool, Reservation, Role
from spawner.placement.rank import NEW_NODE_NOTE
from spawner.service.runs.podspec import PodGpus
from spawner.service.runs.policy import Gang

__all__ = [
    "AUTO",
    "TYPICAL_RUN_SECONDS",
    "Choice",
    "Decision",
    "Estimate",
    "GangFit",
    "Holds",
    "PodPlace",
    "QueuedRun",
    "RunningGpus",
    "Start",
    "Wait",
    "admit",
    "choose_cluster",
    "estimate_wait",
    "expected_wait",
    "gang_fit",
    "gang_reservations",
    "live_holds",
    "pack_new_nodes",
    "product_waits",
]

AUTO = "auto"  # a run's cluster when the service chooses it
# How long a run holds its GPUs when nothing better is known: the estimates' unit of time.
TYPICAL_RUN_SECONDS = 1800.0


# --------------------------------------------------------------------------- the data


@dataclass(frozen=True)
class PodPlace:
    """Where one GPU pod of a gang goes."""

    pool: str
    # The node's name; None for a new node of the elastic pool ``pool``.
    node: str | None
    gpus: int


@dataclass(frozen=True)
class GangFit:
    """Where every GPU pod of a gang fits in one cluster at once."""

    cluster: str
    # One place per pod with GPUs, in the gang's order; pods without GPUs are not placed.
    pods: tuple[PodPlace, ...]
    # The nodes elastic pools must add for this gang, beyond those already on their way.
    new_nodes: int = 0


@dataclass(frozen=True)
class Holds:
    """The GPUs live reservations of one cluster hold: per node, and per elastic pool for new nodes."""

    nodes: Mapping[str, int]
    future: Mapping[str, tuple[int, ...]]


@dataclass(frozen=True)
class RunningGpus:
    """GPUs a running pod holds, and for how long it has run, so an estimate knows when they free."""

    node: str
    gpus: int
    age: float  # seconds


@dataclass(frozen=True)
class Estimate:
    """How long a gang waits in a cluster, and the numbers that explain it to the user."""

    cluster: str
    # None: the gang can never fit there, or the cluster has not synced; ``reason`` says which.
    seconds: float | None
    product: str | None  # the GPU product the numbers count; None: any product
    needs: int  # GPUs of that product the gang asks for
    ahead: int  # GPUs of that product the runs queued ahead ask for
    free: int  # free now, new nodes that elastic pools can still add included
    total: int  # in all, elastic pools at their maximum included
    reason: str = ""  # why it can never fit; empty otherwise

    @property
    def summary(self) -> str:
        """The cluster's state as the user reads it: "onprem has 2 of 8 A100 free; your run needs 4"."""
        if self.reason:
            return self.reason
        text = f"{self.cluster} has {self.free} of {self.total} {_gpu_name(self.product)} free"
        text += f"; your run needs {self.needs}"
        return text + (f", with {self.ahead} more queued ahead of it" if self.ahead else "")


@dataclass(frozen=True)
class QueuedRun:
    """A run waiting to be let go, as admission sees it."""

    key: str  # unique in the queue
    user: str
    gang: Gang
    cluster: str  # AUTO or the name of the cluster it is pinned to or was placed on
    max_wait: float  # seconds the user accepts to wait for on-prem before the cloud
    submitted: float  # seconds, on the clock ``now`` is read from


@dataclass(frozen=True)
class Choice:
    """Where a run should go and why, in a sentence for the user."""

    # None: no cluster can take the run now or ever; the reason says why.
    cluster: str | None
    start_now: bool
    # Seconds; 0 when it starts now; None when there is no estimate (down, unsynced, never fits).
    expected_wait: float | None
    reason: str


@dataclass(frozen=True)
class Start:
    """Let the run go now: make one reservation per pod of ``fit``, then un-suspend it."""

    key: str
    cluster: str
    fit: GangFit
    reason: str


@dataclass(frozen=True)
class Wait:
    """The run stays suspended."""

    key: str
    cluster: str
    position: int  # 1-based among the runs waiting in that cluster, those that can never fit included
    expected_wait: float | None  # seconds; None as in Choice
    reason: str


Decision: TypeAlias = Start | Wait


# --------------------------------------------------------------------------- reservations


def live_holds(reservations: Sequence[Reservation], cluster: str, now: float) -> Holds:
    """What the reservations of ``cluster`` that have not expired by ``now`` hold. This is what
    ``spawner.placement.rank`` counts; its helper is private, so this is a public one for runs."""
    nodes: dict[str, int] = {}
    future: dict[str, list[int]] = {}
    for r in reservations:
        if r.cluster != cluster or r.expires <= now:
            continue
        if r.node is None:
            future.setdefault(r.pool, []).append(r.gpus)
        else:
            nodes[r.node] = nodes.get(r.node, 0) + r.gpus
    return Holds(nodes, {pool: tuple(g) for pool, g in future.items()})


def pack_new_nodes(gpus_per_node: int, gpus: Sequence[int]) -> tuple[int, ...]:
    """The free GPUs of each new node that pods of ``gpus`` start in an elastic pool: packed first-fit,
    largest first, as cluster-autoscaler and Karpenter put pending pods on a node already on its way.
    Placement counts a pool's future reservations the same way. Without GPUs per node each pod counts
    as a node of its own."""
    rooms: list[int] = []
    for g in sorted(gpus, reverse=True):
        if gpus_per_node <= 0:
            rooms.append(0)
            continue
        for i, room in enumerate(rooms):
            if room >= g:
                rooms[i] = room - g
                break
        else:
            rooms.append(max(gpus_per_node - g, 0))
    return tuple(rooms)


def gang_reservations(fit: GangFit, key: str, expires: float) -> tuple[Reservation, ...]:
    """One reservation per pod of ``fit``, with ids ``key/0``, ``key/1``, ... in the gang's order.
    CPU and memory are not modelled by admission, so they hold none."""
    return tuple(
        Reservation(f"{key}/{i}", fit.cluster, p.node, p.pool, p.gpus, 0.0, 0, expires)
        for i, p in enumerate(fit.pods)
    )


# --------------------------------------------------------------------------- the gang fit


def _matches(wanted: str | None, product: str | None) -> bool:
    return wanted is None or wanted == product


def _gpu_pods(gang: Gang) -> list[PodGpus]:
    return [p for p in gang.pods if p.gpus > 0]


def gang_fit(
    gang: Gang, inventory: ClusterInventory, reservations: Sequence[Reservation], now: float
) -> GangFit | None:
    """Where all GPU pods of ``gang`` fit in this cluster at once, or None.

    Each pod goes on one Ready, schedulable node with the GPUs free: allocatable minus requested minus
    what live reservations hold there, of the pod's product when it names one. The largest pods go
    first, each on the node with the fewest free GPUs that fits it (best fit), so whole nodes stay
    free for later gangs. A pod no existing node takes may go on a new node of an elastic pool of its
    product: a node already on its way first, else the pool with the smallest nodes that fit it,
    while the pool stays within ``max_nodes`` counting its nodes and the new nodes that its future
    reservations already start. The packing is greedy, as Kueue's is: a gang it misses may fit in
    another arrangement. An inventory that has not synced never fits."""
    if not inventory.synced:
        return None
    holds = live_holds(reservations, inventory.cluster, now)
    pods = _gpu_pods(gang)
    # Per node product, the usable nodes with free GPUs as (free, name), sorted for best fit.
    bins: dict[str | None, list[tuple[int, str]]] = {}
    pool_of: dict[str, str] = {}
    for n in inventory.nodes:
        free = n.gpus_allocatable - n.gpus_requested - holds.nodes.get(n.name, 0) if n.usable else 0
        if free > 0:
            bins.setdefault(n.gpu_product, []).append((free, n.name))
            pool_of[n.name] = n.pool
    for found in bins.values():
        found.sort()
    sizes = Counter(n.pool for n in inventory.nodes)
    elastic = [p for p in inventory.pools if p.elastic and p.gpus_per_node > 0]
    pending = {p.name: list(holds.future.get(p.name, ())) for p in elastic}
    starting = {p.name: len(pack_new_nodes(p.gpus_per_node, pending[p.name])) for p in elastic}
    places: dict[int, PodPlace] = {}
    for i in sorted(range(len(pods)), key=lambda k: -pods[k].gpus):
        pod = pods[i]
        place = _on_a_node(pod, bins, pool_of) or _on_a_new_node(pod, elastic, pending, sizes)
        if place is None:
            return None
        places[i] = place
    added = sum(len(pack_new_nodes(p.gpus_per_node, pending[p.name])) - starting[p.name] for p in elastic)
    return GangFit(inventory.cluster, tuple(places[i] for i in range(len(pods))), added)


def _on_a_node(
    pod: PodGpus, bins: dict[str | None, list[tuple[int, str]]], pool_of: Mapping[str, str]
) -> PodPlace | None:
    best: tuple[int, str, str | None] | None = None
    for product, found in bins.items():
        if not _matches(pod.product, product):
            continue
        i = bisect_left(found, (pod.gpus, ""))
        if i < len(found) and (best is None or found[i] < best[:2]):
            best = (*found[i], product)
    if best is None:
        return None
    free, name, product = best
    found = bins[product]
    del found[bisect_left(found, (free, name))]
    if free > pod.gpus:
        insort(found, (free - pod.gpus, name))
    return PodPlace(pool_of[name], name, pod.gpus)


def _on_a_new_node(
    pod: PodGpus, elastic: Sequence[Pool], pending: dict[str, list[int]], sizes: Mapping[str, int]
) -> PodPlace | None:
    options: list[tuple[bool, int, int]] = []
    for k, p in enumerate(elastic):
        if p.gpus_per_node < pod.gpus or not _matches(pod.product, p.gpu_product):
            continue
        before = len(pack_new_nodes(p.gpus_per_node, pending[p.name]))
        after = len(pack_new_nodes(p.gpus_per_node, [*pending[p.name], pod.gpus]))
        # Sharing a node already on its way is fine even where the pool is at its maximum.
        if after == before or sizes.get(p.name, 0) + after <= p.max_nodes:
            options.append((after > before, p.gpus_per_node, k))
    if not options:
        return None
    pool = elastic[min(options)[2]]
    pending[pool.name].append(pod.gpus)
    return PodPlace(pool.name, None, pod.gpus)


# --------------------------------------------------------------------------- the expected wait


def expected_wait(
    gang: Gang,
    inventory: ClusterInventory,
    reservations: Sequence[Reservation],
    now: float,
    *,
    ahead: Sequence[Gang] = (),
    running: Sequence[RunningGpus] = (),
    typical_run_seconds: float = TYPICAL_RUN_SECONDS,
) -> float | None:
    """Seconds until ``gang`` fits in this cluster, or None when it never can: see ``estimate_wait``."""
    found = estimate_wait(
        gang,
        inventory,
        reservations,
        now,
        ahead=ahead,
        running=running,
        typical_run_seconds=typical_run_seconds,
    )
    return found.seconds


def product_waits(
    inventory: ClusterInventory,
    reservations: Sequence[Reservation],
    now: float,
    *,
    ahead: Sequence[Gang] = (),
    sizes: Sequence[int] = (1, 2, 4, 8),
    typical_run_seconds: float = TYPICAL_RUN_SECONDS,
) -> dict[str, list[tuple[int, float | None]]]:
    """The cluster's lag: per GPU product it has (on its nodes or its elastic pools' new nodes), the
    expected wait of a one-pod run of each size in ``sizes`` behind the runs queued there (``ahead``),
    as ``estimate_wait`` works it out; None for a size that can never fit there. What a run placed
    now would wait, so "onprem: about 20 min for 4 x A100; eks: now" can be said before it is sent."""
    products = {n.gpu_product for n in inventory.nodes if n.gpus_allocatable > 0 and n.gpu_product}
    products |= {
        p.gpu_product for p in inventory.pools if p.elastic and p.gpus_per_node > 0 and p.gpu_product
    }
    empty = _emptied(inventory)  # once for every size and product, not once each
    return {
        product: [
            (
                size,
                estimate_wait(
                    Gang((PodGpus(size, product),)),
                    inventory,
                    reservations,
                    now,
                    ahead=ahead,
                    typical_run_seconds=typical_run_seconds,
                    _empty=empty,
                ).seconds,
            )
            for size in sizes
        ]
        for product in sorted(products)
    }


def estimate_wait(
    gang: Gang,
    inventory: ClusterInventory,
    reservations: Sequence[Reservation],
    now: float,
    *,
    ahead: Sequence[Gang] = (),
    running: Sequence[RunningGpus] = (),
    typical_run_seconds: float = TYPICAL_RUN_SECONDS,
    _empty: ClusterInventory | None = None,
) -> Estimate:
    """How long until ``gang`` fits in this cluster, in seconds, with the counts that explain it.

    The model, as the user reads it: GPUs free as running pods reach ``typical_run_seconds``, and the
    runs queued ahead take them before this one. In detail, a free GPU is free now, and so are the
    GPUs of new nodes an elastic pool can still add. A GPU of a pod in ``running`` frees when that
    pod has run for a typical run. Every other GPU frees one typical run from now: busy ones whose
    age is unknown, reserved ones, those on nodes not Ready and on new nodes on their way. A GPU
    that is taken frees again one typical run later. The wait is the time by which as many GPUs have
    freed as the runs ahead and this gang ask for. Only GPUs of the gang's product count, and where
    they free is ignored; a gang with pods of several products waits for the slowest. A gang that
    fits now waits 0; one that does not waits at least until the next GPU frees.

    ``seconds`` is None when the gang can never fit, not even in the empty cluster with every
    elastic pool at its maximum, or when the inventory has not synced; ``reason`` says which."""
    cluster = inventory.cluster
    if not inventory.synced:
        return Estimate(cluster, None, None, gang.gpus, 0, 0, 0, f"{cluster} is not synced yet")
    groups = [_count(gang, product, inventory, reservations, now, ahead) for product in _products(gang)]
    never = _never(gang, inventory, now, groups, _empty)
    if never is not None:
        return never
    fits = gang_fit(gang, inventory, reservations, now) is not None
    worst: Estimate | None = None
    for g in groups:
        seconds = 0.0 if fits else _release_time(g, inventory, running, typical_run_seconds)
        if worst is None or worst.seconds is None or seconds > worst.seconds:
            worst = replace(g, seconds=seconds)
    return worst if worst is not None else Estimate(cluster, 0.0, None, 0, 0, 0, 0)


def _products(gang: Gang) -> list[str | None]:
    """The products the gang's GPU pods name, None for pods that take any; each once, in order."""
    return list(dict.fromkeys(p.product for p in _gpu_pods(gang)))


def _count(
    gang: Gang,
    product: str | None,
    inv: ClusterInventory,
    reservations: Sequence[Reservation],
    now: float,
    ahead: Sequence[Gang],
) -> Estimate:
    """The GPU counts of one product group of a gang, before a wait is worked out."""
    holds = live_holds(reservations, inv.cluster, now)
    total = free = 0
    for n in inv.nodes:
        if n.gpus_allocatable > 0 and _matches(product, n.gpu_product):
            total += n.gpus_allocatable
            if n.usable:
                free += max(0, n.gpus_allocatable - n.gpus_requested - holds.nodes.get(n.name, 0))
    sizes = Counter(n.pool for n in inv.nodes)
    for p in inv.pools:
        if p.elastic and p.gpus_per_node > 0 and _matches(product, p.gpu_product):
            rooms = pack_new_nodes(p.gpus_per_node, holds.future.get(p.name, ()))
            total += max(0, p.max_nodes - sizes[p.name]) * p.gpus_per_node
            free += sum(rooms) + max(0, p.max_nodes - sizes[p.name] - len(rooms)) * p.gpus_per_node
    needs = sum(p.gpus for p in _gpu_pods(gang) if p.product == product)
    # A pod queued ahead that names no product may take these GPUs, so it counts too.
    queued = sum(
        p.gpus for g in ahead for p in _gpu_pods(g) if product is None or p.product in (None, product)
    )
    return Estimate(inv.cluster, None, product, needs, queued, min(free, total), total)


def _release_time(
    g: Estimate, inv: ClusterInventory, running: Sequence[RunningGpus], typical: float
) -> float:
    nodes = {n.name for n in inv.nodes if n.gpus_allocatable > 0 and _matches(g.product, n.gpu_product)}
    releases = [0.0] * g.free
    for r in running:
        if r.node in nodes:
            releases += [max(typical - r.age, 0.0)] * max(r.gpus, 0)
    releases += [typical] * max(0, g.total - len(releases))
    releases.sort()
    if not releases:  # no GPU of the product at all: _never said so before this is asked
        return typical
    # The GPUs are taken in the order they free, and each frees again a typical run later.
    k = g.ahead + g.needs - 1
    seconds = releases[k % len(releases)] + (k // len(releases)) * typical
    # It does not fit now, so at least one more GPU must free.
    soonest = next((t for t in releases if t > 0), typical)
    return max(seconds, soonest)


def _emptied(inv: ClusterInventory) -> ClusterInventory:
    """The cluster with every node empty, Ready and schedulable: where a gang that does not fit never will."""
    empty = tuple(replace(n, gpus_requested=0, ready=True, schedulable=True) for n in inv.nodes)
    return replace(inv, nodes=empty, fits=None)


def _never(
    gang: Gang,
    inv: ClusterInventory,
    now: float,
    groups: Sequence[Estimate],
    empty: ClusterInventory | None = None,
) -> Estimate | None:
    """An estimate saying why the gang can never fit in this cluster, or None when it can. ``empty``:
    ``_emptied(inv)``, when the caller has it already."""
    if gang_fit(gang, empty if empty is not None else _emptied(inv), (), now) is not None:
        return None
    cluster = inv.cluster
    for g in groups:
        biggest = max((p.gpus for p in _gpu_pods(gang) if p.product == g.product), default=0)
        largest = max(
            (n.gpus_allocatable for n in inv.nodes if _matches(g.product, n.gpu_product)), default=0
        )
        for p in inv.pools:
            if p.elastic and _matches(g.product, p.gpu_product) and p.max_nodes > 0:
                largest = max(largest, p.gpus_per_node)
        name = _gpu_name(g.product)
        if g.total == 0:
            why = f"{cluster} has no {name}"
        elif g.needs > g.total:
            why = f"{cluster} has {g.total} {name} in all and your run needs {g.needs} at once"
        elif biggest > largest:
            why = (
                f"no node of {cluster} has more than {largest} {name} and your run has a pod of {biggest}"
                " (a pod's GPUs are on one node)"
            )
        else:
            continue
        return replace(g, reason=why)
    reason = f"the pods of your run do not fit on the nodes of {cluster} even when all are free"
    first = groups[0] if groups else Estimate(cluster, None, None, 0, 0, 0, 0)
    return replace(first, reason=reason)


# --------------------------------------------------------------------------- the cluster of a run


def _state(inv: ClusterInventory | None, health: Mapping[str, ClusterHealth]) -> Health | None:
    """The cluster's health; None when it cannot be judged (unknown or not synced)."""
    if inv is None or not inv.synced:
        return None
    h = health.get(inv.cluster)
    return h.state if h is not None else Health.HEALTHY


def _unavailable(cluster: str, inv: ClusterInventory | None, health: Mapping[str, ClusterHealth]) -> str:
    """Why a cluster takes nothing now: unknown, not synced or down; empty when it is available."""
    if inv is None:
        return f"there is no cluster named {cluster!r}"
    if not inv.synced:
        return f"{cluster} is not synced yet"
    h = health.get(cluster)
    if h is not None and h.state is Health.DOWN:
        return f"{cluster} is down" + (f" ({h.reason})" if h.reason else "")
    return ""


@dataclass(frozen=True)
class _Look:
    """One cluster as a run sees it."""

    inv: ClusterInventory
    state: Health | None
    fit: GangFit | None
    estimate: Estimate
    tier: int  # the order of preference: healthy on-prem, healthy cloud, degraded on-prem, degraded cloud


def choose_cluster(
    run: QueuedRun,
    inventories: Sequence[ClusterInventory],
    health: Mapping[str, ClusterHealth],
    reservations: Sequence[Reservation],
    now: float,
    *,
    queued_ahead: Mapping[str, Sequence[Gang]] | None = None,
    running: Mapping[str, Sequence[RunningGpus]] | None = None,
    typical_run_seconds: float = TYPICAL_RUN_SECONDS,
    cloud_closed: str = "",
) -> Choice:
    """Where a run should go, by the rules of DESIGN's "Admission of runs".

    A pinned run goes to its cluster only: it waits there when the cluster is down or full, and the
    reason says when it can never fit there. An ``auto`` run starts on a healthy on-prem cluster where
    it fits now; else it waits for the healthy on-prem cluster with the shortest expected wait (one
    where it can ever fit) while it has waited less than its ``max_wait``, whatever the estimate says;
    else it starts where it fits now,
    healthy cloud first, then degraded on-prem, then degraded cloud (a degraded on-prem cluster means
    "prefer the cloud"); else it waits where the expected wait is the smallest. Down and unsynced
    clusters are never chosen for ``auto``. ``queued_ahead`` and ``running`` are per cluster: the
    gangs queued ahead of this run there and the GPU pods running there (see ``estimate_wait``).

    ``cloud_closed`` says why the run's user may not use the cloud now (their cloud budget is spent):
    an ``auto`` run then waits for on-prem however long, and a run pinned to a cloud cluster waits
    there, and the reason says so."""
    ahead = queued_ahead or {}
    pods = running or {}
    by_name = {inv.cluster: inv for inv in inventories}

    def look(inv: ClusterInventory) -> _Look:
        state = _state(inv, health)
        fit = gang_fit(run.gang, inv, reservations, now) if state not in (None, Health.DOWN) else None
        est = estimate_wait(
            run.gang,
            inv,
            reservations,
            now,
            ahead=ahead.get(inv.cluster, ()),
            running=pods.get(inv.cluster, ()),
            typical_run_seconds=typical_run_seconds,
        )
        tier = int(inv.role is not Role.ONPREM) + 2 * int(state is not Health.HEALTHY)
        return _Look(inv, state, fit, est, tier)

    if run.cluster != AUTO:
        pinned = by_name.get(run.cluster)
        if cloud_closed and pinned is not None and pinned.role is not Role.ONPREM:
            return Choice(run.cluster, False, None, f"{cloud_closed}: your run waits on {run.cluster}")
        return _pinned(run, pinned, health, look)
    if cloud_closed:
        inventories = [inv for inv in inventories if inv.role is Role.ONPREM]
    looks = sorted((look(inv) for inv in inventories), key=lambda lk: lk.tier)
    usable = [lk for lk in looks if lk.state not in (None, Health.DOWN)]
    onprem = [lk for lk in usable if lk.tier == 0]
    for lk in onprem:
        if lk.fit is not None:
            return Choice(lk.inv.cluster, True, 0.0, f"{lk.estimate.summary}: {_starting(lk.fit)}")
    waited = max(0.0, now - run.submitted)
    waits = [lk for lk in onprem if lk.estimate.seconds is not None]
    best = min(waits, key=lambda lk: lk.estimate.seconds or 0.0, default=None)
    if best is not None and best.estimate.seconds is not None and cloud_closed:
        seconds = best.estimate.seconds
        wait = f"waiting about {_duration(seconds)} for on-prem"
        reason = f"{best.estimate.summary}: {wait}, not the cloud: {cloud_closed}"
        return Choice(best.inv.cluster, False, seconds, reason)
    if best is not None and best.estimate.seconds is not None and waited < run.max_wait:
        seconds = best.estimate.seconds
        limit = f"your max_wait of {_duration(run.max_wait)}"
        if waited + seconds < run.max_wait:
            if waited >= 60:
                limit = f"with the {_duration(waited)} you have waited, under {limit}"
            else:
                limit = f"under {limit}"
            reason = f"{best.estimate.summary}: waiting about {_duration(seconds)} ({limit})"
        else:
            # The estimate is a model (a typical run's length where nothing better is known); the
            # user's max_wait is what they said they accept, so the run waits that long and no less.
            reason = (
                f"{best.estimate.summary}: waiting there would take about {_duration(seconds)}; your run"
                f" waits for it up to {limit} (another {_duration(run.max_wait - waited)}), then goes"
                " where it can start"
            )
        return Choice(best.inv.cluster, False, seconds, reason)
    why = "; ".join(_why_not_onprem(lk, run, waited, health) for lk in looks if lk.inv.role is Role.ONPREM)
    why = why or "there is no on-prem cluster"
    full: list[str] = []  # the clusters after on-prem that are full now, in the order they were tried
    for lk in usable:
        if lk.tier == 0:
            continue
        if lk.fit is not None:
            return Choice(lk.inv.cluster, True, 0.0, "; ".join([why, *full]) + f": {_starting(lk.fit)}")
        full.append(lk.estimate.summary)
    waits = [lk for lk in usable if lk.estimate.seconds is not None]
    best = min(waits, key=lambda lk: (lk.estimate.seconds or 0.0, lk.tier), default=None)
    if best is not None and best.estimate.seconds is not None:
        seconds = best.estimate.seconds
        where = best.inv.cluster
        if best.tier > 0:
            why += f"; {best.estimate.summary}"
        return Choice(where, False, seconds, f"{why}: waiting on {where}, about {_duration(seconds)}")
    others = "; ".join(
        _unavailable(lk.inv.cluster, lk.inv, health) or lk.estimate.summary
        for lk in looks
        if lk.inv.role is not Role.ONPREM
    )
    reason = f"{why}; {others}" if others else why
    if cloud_closed:
        reason += f"; not the cloud: {cloud_closed}"
    return Choice(None, False, None, f"no cluster can take your run: {reason}")


def _pinned(
    run: QueuedRun,
    inv: ClusterInventory | None,
    health: Mapping[str, ClusterHealth],
    look: Callable[[ClusterInventory], _Look],
) -> Choice:
    cluster = run.cluster
    down = _unavailable(cluster, inv, health)
    if inv is None:
        return Choice(cluster, False, None, down)
    if down:
        return Choice(cluster, False, None, f"{down}: your run waits there, on the cluster you chose")
    lk = look(inv)
    if lk.fit is not None:
        return Choice(cluster, True, 0.0, f"{lk.estimate.summary}: {_starting(lk.fit)}")
    seconds = lk.estimate.seconds
    if seconds is None:
        return Choice(cluster, False, None, f"your run can never start on {cluster}: {lk.estimate.reason}")
    return Choice(cluster, False, seconds, f"{lk.estimate.summary}: waiting about {_duration(seconds)}")


def _why_not_onprem(lk: _Look, run: QueuedRun, waited: float, health: Mapping[str, ClusterHealth]) -> str:
    cluster = lk.inv.cluster
    down = _unavailable(cluster, lk.inv, health)
    if down:
        return down
    if lk.state is Health.DEGRADED:
        h = health.get(cluster)
        return f"{cluster} is degraded" + (f" ({h.reason})" if h is not None and h.reason else "")
    est = lk.estimate
    if est.seconds is None:
        return est.summary
    over = f"over your max_wait of {_duration(run.max_wait)}"
    if waited >= 60:
        over = f"with the {_duration(waited)} you have waited, {over}"
    return f"{est.summary}; waiting there would take about {_duration(est.seconds)} ({over})"


# --------------------------------------------------------------------------- admission


def admit(
    queue: Sequence[QueuedRun],
    inventories: Sequence[ClusterInventory],
    health: Mapping[str, ClusterHealth],
    reservations: Sequence[Reservation],
    now: float,
    *,
    head_hold: float,
    running: Mapping[str, Sequence[RunningGpus]] | None = None,
    typical_run_seconds: float = TYPICAL_RUN_SECONDS,
) -> tuple[Decision, ...]:
    """Which queued runs start now, one decision per run in the order of ``queue``.

    Each run's cluster must be chosen already (``choose_cluster``). Per cluster, runs are taken by
    submitted time, then key. A run starts when its gang fits after the gangs of the runs started
    before it in this call, which count as reservations. This is Kueue's BestEffortFIFO: a later,
    smaller run may start while an earlier, bigger one does not fit. To keep a big run from starving
    behind a stream of small ones, once the oldest waiting run of a cluster has waited more than
    ``head_hold`` seconds, nothing behind it starts in that cluster until it does. A run that can
    never fit there holds nothing back. Down, unsynced and unknown clusters start nothing."""
    keys = [r.key for r in queue]
    if len(set(keys)) != len(keys):
        raise ValueError("admit needs each run of the queue once, by key")
    if any(r.cluster == AUTO for r in queue):
        raise ValueError("admit needs the cluster of each run chosen; choose_cluster chooses one")
    by_name = {inv.cluster: inv for inv in inventories}
    pods = running or {}
    decided: dict[str, Decision] = {}
    for cluster in dict.fromkeys(r.cluster for r in queue):
        runs = sorted((r for r in queue if r.cluster == cluster), key=lambda r: (r.submitted, r.key))
        inv = by_name.get(cluster)
        down = _unavailable(cluster, inv, health)
        if inv is None or down:
            for i, r in enumerate(runs, 1):
                decided[r.key] = Wait(r.key, cluster, i, None, f"{down}: nothing starts there now")
            continue
        found = _admit_in(
            runs, inv, list(reservations), now, head_hold, pods.get(cluster, ()), typical_run_seconds
        )
        decided.update((d.key, d) for d in found)
    return tuple(decided[k] for k in keys)


def _admit_in(
    runs: Sequence[QueuedRun],
    inv: ClusterInventory,
    held: list[Reservation],
    now: float,
    head_hold: float,
    running: Sequence[RunningGpus],
    typical: float,
) -> list[Decision]:
    cluster = inv.cluster
    out: list[Decision] = []
    ahead: list[Gang] = []  # the gangs of the runs waiting ahead that can ever fit
    waiting = 0
    oldest = True  # no run that can fit has waited yet in this call
    head_wait: float | None = None  # set once the oldest waiting run has waited past head_hold
    for r in runs:
        fit = gang_fit(r.gang, inv, held, now)
        if fit is not None and head_wait is None:
            # The started gang's GPUs count against the runs after it; the reservations are only
            # for this call, so they never expire in it.
            held += gang_reservations(fit, r.key, math.inf)
            out.append(Start(r.key, cluster, fit, _starting(fit)))
            continue
        waiting += 1
        est = estimate_wait(r.gang, inv, held, now, ahead=ahead, running=running, typical_run_seconds=typical)
        seconds = est.seconds
        if seconds is None:
            out.append(
                Wait(r.key, cluster, waiting, None, f"your run can never start on {cluster}: {est.reason}")
            )
            continue
        if head_wait is not None:
            # It cannot start before the head does.
            seconds = max(seconds, head_wait)
            reason = (
                f"an older run has waited in {cluster}'s queue over {_duration(head_hold)} and starts first"
            )
            reason += "; yours fits now and starts after it" if fit is not None else f"; {est.summary}"
        else:
            reason = f"{est.summary}: waiting about {_duration(seconds)}"
        if oldest and now - r.submitted > head_hold:
            head_wait = seconds
            reason += f"; it has waited over {_duration(head_hold)}, so no run behind it starts before it"
        oldest = False
        out.append(Wait(r.key, cluster, waiting, seconds, reason))
        ahead.append(r.gang)
    return out


# --------------------------------------------------------------------------- words


def _gpu_name(product: str | None) -> str:
    return product if product is not None else "GPUs"


def _duration(seconds: float) -> str:
    if seconds < 60:
        return "less than a minute" if seconds > 0 else "no time"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h" + (f" {minutes} min" if minutes else "")


def _starting(fit: GangFit) -> str:
    """Where the gang's pods go, as a sentence: "starting on onprem (pods on a1, a2)"."""
    nodes = list(dict.fromkeys(p.node for p in fit.pods if p.node is not None))
    parts = []
    if nodes:
        shown = ", ".join(nodes[:4]) + (f" and {len(nodes) - 4} more" if len(nodes) > 4 else "")
        parts.append(f"pods on {shown}")
    new = [p for p in fit.pods if p.node is None]
    if new:
        pools = ", ".join(dict.fromkeys(p.pool for p in new))
        count = f"{fit.new_nodes} new node{'s' if fit.new_nodes != 1 else ''}" if fit.new_nodes else "nodes"
        parts.append(
            f"{len(new)} pod{'s' if len(new) != 1 else ''} on {count} of pool {pools}; {NEW_NODE_NOTE}"
        )
    return f"starting on {fit.cluster}" + (f" ({'; '.join(parts)})" if parts else "")
