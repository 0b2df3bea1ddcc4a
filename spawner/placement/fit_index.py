"""Usable nodes per pool, presorted in placement's orders of preference, kept up to date node by node.

Placement ranks the nodes that fit a request by one float (``gpu_preference``, ``cpu_preference``),
then by name. Those preferences depend on a node's free resources and the policy, not on the request,
so the inventory keeps each pool's usable nodes sorted in all four orders (a request with GPUs or a
CPU-only one, best-fit or spread) as watch events change them, and counts each pool's GPUs per
product. A placement then filters presorted tuples, re-ranking the few nodes that live reservations
hold, instead of scoring and sorting every node of the cluster. Node names are unique in a cluster.
"""

from __future__ import annotations

from bisect import bisect_left, insort
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cached_property
from types import MappingProxyType

from spawner.core.model import NodeCapacity

__all__ = [
    "Fit",
    "FitIndex",
    "FitIndexBuilder",
    "GpuTally",
    "PoolFits",
    "build_fit_index",
    "cpu_preference",
    "gpu_preference",
]

# A usable node as placement ranks it: (preference, name, free GPUs, free CPUs, free memory, GPU product,
# node). The smallest preference fits best; the name breaks ties. Fits compare as tuples: names are
# unique in a list of fits, so a comparison never reaches the free resources or the node.
Fit = tuple[float, str, int, float, int, "str | None", "NodeCapacity"]

# preference = has GPUs (0-GPU requests only) * _RANK + free GPUs * _GPU + free CPUs * _CPU: one float,
# so that sorting compares floats (CPython's fast path) rather than tuples field by field
_RANK, _GPU, _CPU = 1e13, 1e9, 1e3  # in order while a node has < 1e6 CPUs and < 1e4 GPUs (to 0.001 CPU)


def gpu_preference(free_gpus: int, free_cpu: float, sign: float) -> float:
    """A node's rank for a request with GPUs: the fewest free GPUs, then the least free CPU first
    (``sign`` 1.0, best fit); ``sign`` -1.0 (spread) reverses it."""
    return sign * (free_gpus * _GPU + free_cpu * _CPU)


def cpu_preference(free_gpus: int, free_cpu: float, has_gpus: bool, sign: float) -> float:
    """A node's rank for a CPU-only request: nodes without GPUs first, by free CPU (least first; most
    first with ``sign`` -1.0); then nodes with GPUs, the fewest free GPUs first."""
    pref = sign * free_cpu * _CPU
    return pref + _RANK + free_gpus * _GPU if has_gpus else pref


def _fits(node: NodeCapacity) -> tuple[Fit, ...]:
    """A usable node's entries in the four orders: CPU-only best-fit and spread, then (nodes with
    GPUs only) best-fit and spread for requests with GPUs."""
    fg = node.gpus_allocatable - node.gpus_requested
    fc = node.cpu_allocatable - node.cpu_requested
    fm = node.memory_allocatable - node.memory_requested
    name, product = node.name, node.gpu_product
    has = node.gpus_allocatable > 0
    cpu = (
        (cpu_preference(fg, fc, has, 1.0), name, fg, fc, fm, product, node),
        (cpu_preference(fg, fc, has, -1.0), name, fg, fc, fm, product, node),
    )
    if not has:
        return cpu
    return (
        *cpu,
        (gpu_preference(fg, fc, 1.0), name, fg, fc, fm, product, node),
        (gpu_preference(fg, fc, -1.0), name, fg, fc, fm, product, node),
    )


@dataclass(frozen=True)
class GpuTally:
    """The GPUs of one product in one pool."""

    total: int = 0  # on usable nodes
    free: int = 0  # free on usable nodes (a node with more requested than allocatable counts 0)
    free_per_node: tuple[tuple[int, int], ...] = ()  # (free GPUs, usable nodes with that many), most first
    biggest: int = 0  # the most GPUs of one node, Ready or not


@dataclass(frozen=True)
class PoolFits:
    """One pool of a snapshot: how many nodes, its GPUs, its usable nodes in each order of preference."""

    size: int  # nodes, Ready or not
    gpus: Mapping[str | None, GpuTally]  # per GPU product, of the nodes with GPUs
    cpu: tuple[Fit, ...]  # usable nodes, for CPU-only requests, best fit first
    cpu_spread: tuple[Fit, ...]  # the same, most free first
    gpu: tuple[Fit, ...]  # usable nodes with GPUs, for requests with GPUs, best fit first
    gpu_spread: tuple[Fit, ...]

    def order(self, gpus: bool, spread: bool) -> tuple[Fit, ...]:
        if gpus:
            return self.gpu_spread if spread else self.gpu
        return self.cpu_spread if spread else self.cpu


_NO_POOL = PoolFits(0, MappingProxyType({}), (), (), (), ())


@dataclass(frozen=True)
class FitIndex:
    """A snapshot's nodes per pool (the pool a node carries; "" for none), for placement.

    ``nodes`` is the tuple it describes: placement uses the index of a ``ClusterInventory`` only when
    it is that inventory's ``nodes``, so ``dataclasses.replace(inventory, nodes=...)`` cannot pair
    other nodes with a stale index."""

    nodes: tuple[NodeCapacity, ...]
    pools: Mapping[str, PoolFits]

    def pool(self, name: str) -> PoolFits:
        return self.pools.get(name, _NO_POOL)

    @cached_property
    def by_name(self) -> Mapping[str, NodeCapacity]:
        """The nodes by name, made on first use (placement needs it only with live reservations)."""
        return MappingProxyType({n.name: n for n in self.nodes})


class _Tally:
    """The mutable GpuTally of a builder."""

    def __init__(self) -> None:
        self.total = self.free = 0
        self.free_per_node: Counter[int] = Counter()
        self.sizes: Counter[int] = Counter()

    def add(self, node: NodeCapacity, sign: int) -> None:
        gpus = node.gpus_allocatable
        self.sizes[gpus] += sign
        if node.ready and node.schedulable:
            free = max(gpus - node.gpus_requested, 0)
            self.total += sign * gpus
            self.free += sign * free
            self.free_per_node[free] += sign

    def freeze(self) -> GpuTally:
        per_node = tuple(sorted(((f, k) for f, k in self.free_per_node.items() if k), reverse=True))
        return GpuTally(self.total, self.free, per_node, max(g for g, k in self.sizes.items() if k))


class _Pool:
    """The mutable state of one pool in a builder."""

    def __init__(self) -> None:
        self.members: dict[str, NodeCapacity] = {}
        self.tallies: dict[str | None, _Tally] = {}
        self.orders: tuple[list[Fit], ...] = ([], [], [], [])
        self.frozen: PoolFits | None = None

    def add(self, node: NodeCapacity, sign: int) -> None:
        """Count a node in (``sign`` 1) or out (-1), except in the orders."""
        if sign > 0:
            self.members[node.name] = node
        else:
            del self.members[node.name]
        if node.gpus_allocatable > 0:
            tally = self.tallies.get(node.gpu_product)
            if tally is None:
                tally = self.tallies[node.gpu_product] = _Tally()
            tally.add(node, sign)
            if not tally.sizes.total():
                del self.tallies[node.gpu_product]
        self.frozen = None

    def freeze(self) -> PoolFits:
        if self.frozen is None:
            cpu, cpu_spread, gpu, gpu_spread = (tuple(order) for order in self.orders)
            gpus = {product: tally.freeze() for product, tally in self.tallies.items()}
            size = len(self.members)
            self.frozen = PoolFits(size, MappingProxyType(gpus), cpu, cpu_spread, gpu, gpu_spread)
        return self.frozen


class FitIndexBuilder:
    """Keeps a ``FitIndex`` up to date node by node: ``put`` a new or changed node, ``remove`` a gone
    one (O(log n) comparisons and a list move each); ``index`` freezes only the pools that changed."""

    def __init__(self, nodes: Iterable[NodeCapacity] = ()) -> None:
        self._nodes: dict[str, NodeCapacity] = {}
        self._pools: dict[str, _Pool] = {}
        self._index: FitIndex | None = None
        self.replace(nodes)

    def __len__(self) -> int:
        return len(self._nodes)

    def replace(self, nodes: Iterable[NodeCapacity]) -> None:
        """Start over from these nodes (one sort per order rather than one insertion per node). Of
        nodes with the same name the last one counts."""
        self._nodes = {node.name: node for node in nodes}
        self._pools = {}
        self._index = None
        for node in self._nodes.values():
            pool = self._pool(node.pool)
            pool.add(node, 1)
            if node.ready and node.schedulable:
                for order, fit in zip(pool.orders, _fits(node), strict=False):
                    order.append(fit)
        for pool in self._pools.values():
            for order in pool.orders:
                order.sort()

    def put(self, node: NodeCapacity) -> None:
        """Add a node, or replace the node of that name."""
        old = self._nodes.get(node.name)
        if old is node:
            return
        if old is not None:
            self._drop(old)
        self._nodes[node.name] = node
        pool = self._pool(node.pool)
        pool.add(node, 1)
        if node.ready and node.schedulable:
            for order, fit in zip(pool.orders, _fits(node), strict=False):
                insort(order, fit)
        self._index = None

    def remove(self, name: str) -> None:
        """Forget a node (nothing happens if there is none of that name)."""
        old = self._nodes.pop(name, None)
        if old is not None:
            self._drop(old)
            self._index = None

    def _drop(self, node: NodeCapacity) -> None:
        pool = self._pools[node.pool]
        pool.add(node, -1)
        if node.ready and node.schedulable:
            for order, fit in zip(pool.orders, _fits(node), strict=False):
                del order[bisect_left(order, fit[:2])]
        if not pool.members:
            del self._pools[node.pool]

    def _pool(self, name: str) -> _Pool:
        pool = self._pools.get(name)
        if pool is None:
            pool = self._pools[name] = _Pool()
        return pool

    def index(self, nodes: tuple[NodeCapacity, ...]) -> FitIndex:
        """The index, frozen, as the index of ``nodes``: the caller's tuple of the same nodes (this
        does not compare them)."""
        if self._index is None or self._index.nodes is not nodes:
            pools = MappingProxyType({name: pool.freeze() for name, pool in self._pools.items()})
            self._index = FitIndex(nodes, pools)
        return self._index


def build_fit_index(nodes: tuple[NodeCapacity, ...]) -> FitIndex:
    """The index of these nodes, built at once (what ``FitIndexBuilder`` keeps up to date)."""
    return FitIndexBuilder(nodes).index(nodes)
