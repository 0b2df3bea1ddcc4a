"""The data the hub side reasons about: clusters, node capacity, requests, placements (frozen)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

__all__ = [
    "Candidate",
    "ClusterHealth",
    "ClusterInventory",
    "Health",
    "NoCapacity",
    "NodeCapacity",
    "PlacementRequest",
    "Pool",
    "Presorted",
    "ProductAvailability",
    "Reservation",
    "Role",
]


class Role(StrEnum):
    ONPREM = "onprem"
    CLOUD = "cloud"


class Health(StrEnum):
    """HEALTHY: place freely. DEGRADED: prefer elsewhere unless pinned. DOWN: no new placements."""

    HEALTHY = "healthy"
    DEGRADED = "degraded"
    DOWN = "down"


@dataclass(frozen=True)
class Pool:
    """A node pool of a cluster: which nodes belong to it, and whether it grows on demand."""

    name: str
    node_selector: Mapping[str, str] = field(default_factory=dict)  # labels that pick its nodes
    elastic: bool = False
    # for elastic pools: what a new node offers, so an empty pool can still be a candidate
    gpus_per_node: int = 0
    gpu_product: str | None = None
    max_nodes: int = 0
    tolerations: tuple[Mapping[str, str], ...] = ()
    # seconds an elastic pool may take to bring a node; None: HybridSpawner.elastic_deadline decides
    provisioning_deadline: float | None = None
    # onprem or cloud nodes; None: the cluster's role. Set per pool in the single-cluster topology
    # (on-prem and cloud node pools in one cluster, as with EKS Hybrid Nodes).
    role: Role | None = None


@dataclass(frozen=True)
class NodeCapacity:
    """One node as placement sees it: what it has and what the pods bound to it already request."""

    name: str
    pool: str
    ready: bool
    schedulable: bool
    gpu_product: str | None
    gpu_memory_mib: int | None
    gpus_allocatable: int
    gpus_requested: int
    cpu_allocatable: float  # cores
    cpu_requested: float
    memory_allocatable: int  # bytes
    memory_requested: int
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def usable(self) -> bool:
        return self.ready and self.schedulable

    @property
    def gpus_free(self) -> int:
        return max(0, self.gpus_allocatable - self.gpus_requested) if self.usable else 0


class Presorted(Protocol):
    """Derived data an inventory may carry for placement: the nodes it was built from, in some order
    that placement knows (``spawner.placement.fit_index.FitIndex``). The model names only this, so it
    depends on no policy."""

    @property
    def nodes(self) -> tuple[NodeCapacity, ...]: ...


@dataclass(frozen=True)
class ClusterInventory:
    """A snapshot of one cluster's nodes (from the service's watchers)."""

    cluster: str
    role: Role
    pools: tuple[Pool, ...]
    nodes: tuple[NodeCapacity, ...]
    synced: bool  # the watchers have listed at least once
    age: float = 0.0  # seconds since the last watch event or relist
    # the nodes presorted for placement, kept by the inventory's NodeIndex; placement uses it only
    # when ``fits.nodes is nodes`` and builds one otherwise (derived data: not compared, not shown)
    fits: Presorted | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class ClusterHealth:
    cluster: str
    state: Health
    reason: str = ""
    pool_states: Mapping[str, Health] = field(default_factory=dict)  # single-cluster topology


@dataclass(frozen=True)
class PlacementRequest:
    """What a spawn asks for, after the user's options were validated."""

    user: str
    gpus: int
    gpu_product: str | None = None  # None: any product
    cpu: float = 0.0
    memory: int = 0
    cluster: str = "auto"  # "auto" or a cluster name (pinned)
    allowed_clusters: tuple[str, ...] | None = None  # None: all
    gpu_quota: int | None = None  # GPUs the user may hold in total, running servers included
    gpus_in_use: int = 0


@dataclass(frozen=True)
class Reservation:
    """GPUs held on a node for a spawn in flight, until it lands or the reservation expires."""

    id: str
    cluster: str
    node: str | None  # None for an elastic pool's future node
    pool: str
    gpus: int
    cpu: float
    memory: int
    expires: float  # monotonic seconds


@dataclass(frozen=True)
class Candidate:
    """Where to try: a cluster and pool, the nodes that fit, the one that fits best, and why."""

    cluster: str
    pool: str
    elastic: bool
    nodes: tuple[str, ...]  # required node affinity: any of these (empty for an elastic pool)
    preferred_node: str | None
    reason: str
    reservation: str | None = None


@dataclass(frozen=True)
class ProductAvailability:
    product: str
    total: int
    free: int
    # the most free GPUs of this product on one existing node: the largest request that fits now
    largest_free: int = 0
    # GPUs of a new node an elastic pool of this product can still add (0: none can grow)
    new_node_gpus: int = 0


@dataclass(frozen=True)
class NoCapacity:
    """Nothing can take the request now; says what exists and what is free, per cluster."""

    message: str
    available: Mapping[str, tuple[ProductAvailability, ...]] = field(default_factory=dict)
