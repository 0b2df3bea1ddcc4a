"""Tests for spawner.placement.rank: node choice, cluster order, elastic pools, reasons, NoCapacity."""

# the expected messages use the multiplication sign ("2 TIMES NVIDIA-A100", TIMES being U+00D7)
# ruff: noqa: RUF001

from __future__ import annotations

import itertools
import random
import subprocess
import sys
from collections.abc import Mapping, Sequence
from dataclasses import replace
from pathlib import Path

import pytest

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
from spawner.placement.fit_index import (
    FitIndex,
    FitIndexBuilder,
    build_fit_index,
    cpu_preference,
    gpu_preference,
)
from spawner.placement.rank import (
    MAX_NAMED_NODES,
    availability,
    held_for_others,
    place,
    reservable,
    reserve,
    validate_request,
)

A100 = "NVIDIA-A100-SXM4-80GB"
H100 = "NVIDIA-H100-80GB-HBM3"
L40S = "NVIDIA-L40S"
GiB = 2**30
H, G, D = Health.HEALTHY, Health.DEGRADED, Health.DOWN
NEW = "(a new node is added, which takes a few minutes)"


def node(
    name: str,
    pool: str = "gpu",
    *,
    product: str | None = A100,
    gpus: int = 8,
    used: int = 0,
    cpu: float = 64.0,
    cpu_used: float = 0.0,
    mem: int = 512 * GiB,
    mem_used: int = 0,
    ready: bool = True,
    schedulable: bool = True,
) -> NodeCapacity:
    return NodeCapacity(
        name=name,
        pool=pool,
        ready=ready,
        schedulable=schedulable,
        gpu_product=product if gpus else None,
        gpu_memory_mib=81920 if gpus else None,
        gpus_allocatable=gpus,
        gpus_requested=used,
        cpu_allocatable=cpu,
        cpu_requested=cpu_used,
        memory_allocatable=mem,
        memory_requested=mem_used,
    )


def cpu_node(name: str, pool: str = "cpu", **kw: object) -> NodeCapacity:
    return node(name, pool, gpus=0, cpu=16.0, mem=64 * GiB, **kw)  # type: ignore[arg-type]


FIXED = (Pool("gpu"), Pool("cpu"))


def onprem(*nodes: NodeCapacity, pools: tuple[Pool, ...] = FIXED, synced: bool = True) -> ClusterInventory:
    return ClusterInventory("onprem", Role.ONPREM, pools, nodes, synced)


def elastic(name: str, product: str | None = L40S, gpus: int = 8, max_nodes: int = 2) -> Pool:
    return Pool(name, elastic=True, gpus_per_node=gpus, gpu_product=product, max_nodes=max_nodes)


EKS_POOLS = (elastic("gpu-l40s"), elastic("gpu-a100", A100, 8, 2), elastic("cpu", None, 0, 10))


def eks(*nodes: NodeCapacity, pools: tuple[Pool, ...] = EKS_POOLS, synced: bool = True) -> ClusterInventory:
    return ClusterInventory("eks", Role.CLOUD, pools, nodes, synced)


def req(gpus: int = 1, product: str | None = A100, **kw: object) -> PlacementRequest:
    return PlacementRequest("alice", gpus, product, **kw)  # type: ignore[arg-type]


def health(**states: Health | ClusterHealth) -> dict[str, ClusterHealth]:
    return {k: v if isinstance(v, ClusterHealth) else ClusterHealth(k, v) for k, v in states.items()}


def candidates(
    request: PlacementRequest,
    inventories: Sequence[ClusterInventory],
    states: Mapping[str, ClusterHealth] | None = None,
    reservations: Sequence[Reservation] = (),
    **kw: object,
) -> list[Candidate]:
    result = place(request, inventories, states or {}, reservations, **kw)  # type: ignore[arg-type]
    assert isinstance(result, list), result
    return result


def no_capacity(
    request: PlacementRequest,
    inventories: Sequence[ClusterInventory],
    states: Mapping[str, ClusterHealth] | None = None,
    reservations: Sequence[Reservation] = (),
    **kw: object,
) -> NoCapacity:
    result = place(request, inventories, states or {}, reservations, **kw)  # type: ignore[arg-type]
    assert isinstance(result, NoCapacity), result
    return result


# --------------------------------------------------------------------------- nodes in a fixed pool

MIXED = (node("n8"), node("n2", used=6), node("n5", used=3), node("n0", used=8))


@pytest.mark.parametrize(
    ("nodes", "request_", "policy", "expected"),
    [
        # best fit: the node left with the fewest free GPUs first (keeps whole nodes free)
        (MIXED, req(1), "best-fit", ["n2", "n5", "n8"]),
        (MIXED, req(2), "best-fit", ["n2", "n5", "n8"]),
        (MIXED, req(3), "best-fit", ["n5", "n8"]),
        (MIXED, req(8), "best-fit", ["n8"]),
        # spread: the most free first
        (MIXED, req(1), "spread", ["n8", "n5", "n2"]),
        (MIXED, req(3), "spread", ["n8", "n5"]),
        # ties: the least free CPU, then the name (spread: the most free CPU)
        (
            (node("b", cpu_used=10), node("a", cpu_used=50), node("c", cpu_used=50)),
            req(1),
            "best-fit",
            ["a", "c", "b"],
        ),
        (
            (node("b", cpu_used=10), node("a", cpu_used=50), node("c", cpu_used=50)),
            req(1),
            "spread",
            ["b", "a", "c"],
        ),
        # what is not feasible
        ((node("nr", ready=False), node("ok")), req(1), "best-fit", ["ok"]),
        ((node("cordoned", schedulable=False), node("ok")), req(1), "best-fit", ["ok"]),
        ((node("h", product=H100), node("a")), req(1), "best-fit", ["a"]),
        ((node("h", product=H100), node("a", used=4)), req(1, None), "best-fit", ["a", "h"]),
        ((node("nolabel", product=None), node("a")), req(1, None), "best-fit", ["a", "nolabel"]),
        ((node("nolabel", product=None),), req(1, A100), "best-fit", []),
        ((node("busy", cpu_used=60), node("ok")), req(1, cpu=8), "best-fit", ["ok"]),
        ((node("full", mem_used=500 * GiB), node("ok")), req(1, memory=16 * GiB), "best-fit", ["ok"]),
        (
            (node("exact", cpu_used=56, mem_used=496 * GiB),),
            req(1, cpu=8, memory=16 * GiB),
            "best-fit",
            ["exact"],
        ),
        ((node("exact"),), req(1, None, memory=512 * GiB), "best-fit", ["exact"]),  # any product
        ((node("float", cpu=0.3, cpu_used=0.2),), req(1, cpu=0.1), "best-fit", ["float"]),
        ((node("over", used=9),), req(1), "best-fit", []),  # more requested than allocatable
        ((node("over", cpu_used=65),), req(1), "best-fit", []),
    ],
)
def test_fixed_pool_node_order(
    nodes: tuple[NodeCapacity, ...], request_: PlacementRequest, policy: str, expected: list[str]
) -> None:
    result = place(request_, [onprem(*nodes)], {}, policy=policy)
    if not expected:
        assert isinstance(result, NoCapacity)
        return
    assert isinstance(result, list)
    assert len(result) == 1
    (c,) = result
    assert (c.cluster, c.pool, c.elastic) == ("onprem", "gpu", False)
    assert list(c.nodes) == expected
    assert c.preferred_node == expected[0]


@pytest.mark.parametrize(
    ("nodes", "policy", "expected"),
    [
        # a CPU-only server goes to nodes without GPUs first
        ((node("g"), cpu_node("c1", "gpu")), "best-fit", ["c1", "g"]),
        # among GPU nodes, the one with the fewest free GPUs, whatever the policy
        ((node("g8"), node("g1", used=7), node("g0", used=8)), "best-fit", ["g0", "g1", "g8"]),
        ((node("g8"), node("g1", used=7), node("g0", used=8)), "spread", ["g0", "g1", "g8"]),
        # among CPU nodes: best fit by CPU, or spread
        ((cpu_node("c1", "gpu", cpu_used=2), cpu_node("c2", "gpu", cpu_used=12)), "best-fit", ["c2", "c1"]),
        ((cpu_node("c1", "gpu", cpu_used=2), cpu_node("c2", "gpu", cpu_used=12)), "spread", ["c1", "c2"]),
        # a cordoned node takes nothing, a full one neither
        ((cpu_node("c1", "gpu", schedulable=False), cpu_node("c2", "gpu", cpu_used=16)), "best-fit", []),
        # a node with more GPUs requested than it has (it shrank) takes no server at all
        ((node("over", used=9), node("ok")), "best-fit", ["ok"]),
        # the memory asked for, exactly
        (
            (cpu_node("c1", "gpu", mem_used=56 * GiB), cpu_node("c2", "gpu", mem_used=57 * GiB)),
            "best-fit",
            ["c1"],
        ),
    ],
)
def test_cpu_only_requests_spare_gpu_nodes(
    nodes: tuple[NodeCapacity, ...], policy: str, expected: list[str]
) -> None:
    result = place(req(0, None, cpu=1, memory=8 * GiB), [onprem(*nodes)], {}, policy=policy)
    if not expected:
        assert isinstance(result, NoCapacity)
        return
    assert isinstance(result, list)
    assert list(result[0].nodes) == expected


def test_cpu_only_request_prefers_the_cpu_pool_and_ignores_the_product() -> None:
    inv = onprem(node("g1", used=7), cpu_node("c1"), cpu_node("c2", cpu_used=4))
    result = candidates(req(0, A100, cpu=2), [inv])
    assert [(c.pool, c.nodes) for c in result] == [("cpu", ("c2", "c1")), ("gpu", ("g1",))]
    assert result[0].reason == "c2 on onprem has 12 CPUs and 64 GiB memory free (no GPUs requested)"
    assert result[1].reason == (
        "g1 on onprem has 64 CPUs and 512 GiB memory free "
        "(no GPUs requested, but no node without GPUs has room)"
    )


def test_quota_does_not_limit_cpu_only_servers() -> None:
    assert candidates(req(0, None, gpu_quota=2, gpus_in_use=4), [onprem(cpu_node("c1"))])


def test_pools_inside_a_cluster_best_fitting_first() -> None:
    pools = (Pool("big"), Pool("small"), Pool("cpu"))
    inv = onprem(node("b1", "big"), node("s1", "small", used=6), pools=pools)
    assert [c.pool for c in candidates(req(2), [inv])] == ["small", "big"]
    assert [c.pool for c in candidates(req(2), [inv], policy="spread")] == ["big", "small"]


def test_nodes_of_undeclared_pools_are_ignored() -> None:
    result = no_capacity(req(1), [onprem(node("stray", "system"))])
    assert result.message == "No cluster has NVIDIA-A100-SXM4-80GB"


# --------------------------------------------------------------------------- clusters, health, order

BOTH = [eks(node("e1", "gpu-a100")), onprem(node("o1"))]  # eks listed first: on-prem still leads
# eks's pool is warm (e1) and can grow: offered as its node, then as a new node (EKS2)
EKS2 = ["eks", "eks"]


@pytest.mark.parametrize(
    ("states", "cluster", "allowed", "expected"),
    [
        ({}, "auto", None, ["onprem", *EKS2]),  # no health yet counts as HEALTHY
        ({"onprem": H, "eks": H}, "auto", None, ["onprem", *EKS2]),
        # a DEGRADED on-prem goes after the cloud when the request is auto ...
        ({"onprem": G, "eks": H}, "auto", None, [*EKS2, "onprem"]),
        # ... but stays where a pinned request wants it
        ({"onprem": G, "eks": H}, "onprem", None, ["onprem"]),
        ({"onprem": H, "eks": G}, "auto", None, ["onprem", *EKS2]),
        ({"onprem": G, "eks": G}, "auto", None, ["onprem", *EKS2]),
        # DOWN clusters take no new servers
        ({"onprem": D, "eks": H}, "auto", None, EKS2),
        ({"onprem": H, "eks": D}, "auto", None, ["onprem"]),
        ({"onprem": G, "eks": D}, "auto", None, ["onprem"]),
        # pinned and allowed clusters
        ({}, "eks", None, EKS2),
        ({}, "auto", ("eks",), EKS2),
        ({}, "auto", ("eks", "gcp"), EKS2),
        ({}, "onprem", ("onprem", "eks"), ["onprem"]),
    ],
)
def test_cluster_order(
    states: dict[str, Health], cluster: str, allowed: tuple[str, ...] | None, expected: list[str]
) -> None:
    request = req(1, cluster=cluster, allowed_clusters=allowed)
    assert [c.cluster for c in candidates(request, BOTH, health(**states))] == expected


def test_unsynced_inventory_is_treated_as_down() -> None:
    inventories = [onprem(node("o1"), synced=False), eks(node("e1", "gpu-a100"))]
    result = candidates(req(1), inventories)
    assert [(c.cluster, c.elastic) for c in result] == [("eks", False), ("eks", True)]
    assert result[0].reason == (
        "onprem is not synced yet: e1 on eks has 8 free NVIDIA-A100-SXM4-80GB (best fit)"
    )


def test_several_clusters_of_each_role_keep_their_listed_order() -> None:
    inventories = [
        replace(eks(node("x1", "gpu-a100")), cluster="eks-b"),
        replace(onprem(node("y1")), cluster="onprem-b"),
        eks(node("e1", "gpu-a100")),
        onprem(node("o1")),
    ]
    assert [(c.cluster, c.elastic) for c in candidates(req(1), inventories)] == [
        ("onprem-b", False),
        ("onprem", False),
        ("eks-b", False),
        ("eks-b", True),
        ("eks", False),
        ("eks", True),
    ]


# --------------------------------------------------------------------------- elastic pools


_WAITING = itertools.count()


def waiting(gpus: int, pool: str = "gpu-l40s") -> Reservation:
    """A live reservation of an elastic pool's next node on eks."""
    return Reservation(f"w{next(_WAITING)}", "eks", None, pool, gpus, 0.0, 0, 100.0)


@pytest.mark.parametrize(
    ("nodes", "request_", "reservations", "expected"),
    [
        # an empty elastic pool can still start a node
        ((), req(1, L40S), (), [("gpu-l40s", True, ())]),
        ((), req(4, L40S), (), [("gpu-l40s", True, ())]),
        ((), req(5, L40S), (), []),  # a node of the pool has 4
        # existing nodes with room come first, as in a fixed pool; then a new node, while the pool can
        # grow: a spawn whose node is taken meanwhile still has somewhere to go
        (
            (node("l1", "gpu-l40s", product=L40S, used=4),),
            req(2, L40S),
            (),
            [("gpu-l40s", False, ("l1",)), ("gpu-l40s", True, ())],
        ),
        # ... not once the pool is at its maximum
        (
            (node("l1", "gpu-l40s", product=L40S, used=4), node("l2", "gpu-l40s", product=L40S, used=4)),
            req(2, L40S),
            (),
            [("gpu-l40s", False, ("l1", "l2"))],
        ),
        # ... nor when the nodes on their way fill it
        (
            (node("l1", "gpu-l40s", product=L40S, used=4),),
            req(2, L40S),
            (waiting(4),),
            [("gpu-l40s", False, ("l1",))],
        ),
        # a full node: a new one, while the pool is under its maximum
        ((node("l1", "gpu-l40s", product=L40S, used=8),), req(2, L40S), (), [("gpu-l40s", True, ())]),
        (
            (node("l1", "gpu-l40s", product=L40S, used=8), node("l2", "gpu-l40s", product=L40S, ready=False)),
            req(2, L40S),
            (),
            [],
        ),
        # reservations waiting for a new node fill it (here the pool's last) ...
        (
            (node("l1", "gpu-l40s", product=L40S, used=8),),
            req(2, L40S),
            (Reservation("r", "eks", None, "gpu-l40s", 3, 0.0, 0, 100.0),),
            [],
        ),
        # ... until they expire
        (
            (node("l1", "gpu-l40s", product=L40S, used=8),),
            req(2, L40S),
            (Reservation("r", "eks", None, "gpu-l40s", 3, 0.0, 0, 5.0),),
            [("gpu-l40s", True, ())],
        ),
        # a request that fits beside them shares the node on its way, as the autoscaler packs pods
        (
            (node("l1", "gpu-l40s", product=L40S, used=8),),
            req(2, L40S),
            (
                Reservation("r1", "eks", None, "gpu-l40s", 1, 0.0, 0, 100.0),
                Reservation("r2", "eks", None, "gpu-l40s", 1, 0.0, 0, 100.0),
            ),
            [("gpu-l40s", True, ())],
        ),
        # ... a 1-GPU request too
        (
            (node("l1", "gpu-l40s", product=L40S, used=8),),
            req(1, L40S),
            (Reservation("r", "eks", None, "gpu-l40s", 3, 0.0, 0, 100.0),),
            [("gpu-l40s", True, ())],
        ),
        # ... up to the last GPU of a new node (2 + 2 fill one 4-GPU node: one starting, one more allowed)
        ((), req(4, L40S), (waiting(2), waiting(2)), [("gpu-l40s", True, ())]),
        # ... packed largest first (3, 2, 1 on 4-GPU nodes: 3 + 1 and 2, so 2 GPUs left on the second)
        ((), req(2, L40S), (waiting(1), waiting(2), waiting(3)), [("gpu-l40s", True, ())]),
        # ... and what a node on its way has left is what its reservations leave (2 + 1 of 4: 1 left)
        ((node("l1", "gpu-l40s", product=L40S, used=8),), req(2, L40S), (waiting(2), waiting(1)), []),
        # any product: every GPU pool that matches, smallest new node first
        ((), req(1, None), (), [("gpu-l40s", True, ()), ("gpu-a100", True, ())]),
        # a CPU-only server never starts a GPU node
        ((), req(0, None), (), [("cpu", True, ())]),
        (
            (node("l1", "gpu-l40s", product=L40S),),
            req(0, None),
            (),
            [("cpu", True, ()), ("gpu-l40s", False, ("l1",))],
        ),
        ((), req(1, H100), (), []),
    ],
)
def test_elastic_pools(
    nodes: tuple[NodeCapacity, ...],
    request_: PlacementRequest,
    reservations: tuple[Reservation, ...],
    expected: list[tuple[str, bool, tuple[str, ...]]],
) -> None:
    pools = (elastic("gpu-a100", A100, 8, 2), elastic("gpu-l40s", L40S, 4, 2), elastic("cpu", None, 0, 10))
    result = place(request_, [eks(*nodes, pools=pools)], {}, reservations, now=10.0)
    got = [] if isinstance(result, NoCapacity) else [(c.pool, c.elastic, c.nodes) for c in result]
    assert got == expected
    for c in [] if isinstance(result, NoCapacity) else result:
        assert c.preferred_node == (c.nodes[0] if c.nodes else None)


@pytest.mark.parametrize(
    ("reservations", "message"),
    [
        (0, None),
        (1, None),
        (
            2,
            "No cluster can start a CPU-only server now: "
            "eks pool cpu is at its maximum of 2 nodes (2 starting)",
        ),
    ],
)
def test_each_waiting_reservation_of_a_cpu_pool_starts_a_node(reservations: int, message: str | None) -> None:
    """Without GPUs per node nothing says how many servers share a node: each counts as one."""
    inv = eks(pools=(elastic("cpu", None, 0, 2),))
    result = place(req(0, None), [inv], {}, [waiting(0, "cpu") for _ in range(reservations)], now=10.0)
    if message is None:
        assert isinstance(result, list)
        assert [(c.pool, c.elastic) for c in result] == [("cpu", True)]
    else:
        assert isinstance(result, NoCapacity)
        assert result.message == message


def test_elastic_smallest_node_first_for_best_fit() -> None:
    pools = (elastic("p8", L40S, 8, 5), elastic("p1", L40S, 1, 5), elastic("p4", L40S, 4, 5))
    assert [c.pool for c in candidates(req(1, L40S), [eks(pools=pools)])] == ["p1", "p4", "p8"]
    assert [c.pool for c in candidates(req(2, L40S), [eks(pools=pools)])] == ["p4", "p8"]


def test_fixed_pools_before_elastic_ones_in_one_cluster() -> None:
    pools = (elastic("burst", A100, 8, 4), Pool("gpu"), Pool("cpu"))
    inv = onprem(node("o1", used=4), pools=pools)
    result = candidates(req(2), [inv])
    assert [(c.pool, c.elastic) for c in result] == [("gpu", False), ("burst", True)]


# --------------------------------------------------------------------------- one cluster, two kinds of pool

HYBRID = ClusterInventory(
    "hybrid",
    Role.ONPREM,
    (Pool("onprem-gpu"), elastic("eks-gpu", A100, 8, 3)),
    (node("dgx-1", "onprem-gpu", used=6), node("ip-1", "eks-gpu", used=8)),
    True,
)


@pytest.mark.parametrize(
    ("pool_states", "cluster", "expected", "first_reason"),
    [
        (
            {},
            "auto",
            ["onprem-gpu", "eks-gpu"],
            "dgx-1 on hybrid has 2 free NVIDIA-A100-SXM4-80GB (best fit)",
        ),
        (
            {"onprem-gpu": G},
            "auto",
            ["eks-gpu", "onprem-gpu"],
            f"pool onprem-gpu of hybrid is degraded: starting on hybrid, pool eks-gpu {NEW}",
        ),
        (
            {"onprem-gpu": D},
            "auto",
            ["eks-gpu"],
            f"pool onprem-gpu of hybrid is down: starting on hybrid, pool eks-gpu {NEW}",
        ),
        (
            {"eks-gpu": D},
            "auto",
            ["onprem-gpu"],
            "dgx-1 on hybrid has 2 free NVIDIA-A100-SXM4-80GB (best fit)",
        ),
        (
            {"onprem-gpu": G},
            "hybrid",
            ["eks-gpu", "onprem-gpu"],
            f"pool onprem-gpu of hybrid is degraded: starting on hybrid, pool eks-gpu {NEW}",
        ),
    ],
)
def test_pool_health_in_one_cluster(
    pool_states: dict[str, Health], cluster: str, expected: list[str], first_reason: str
) -> None:
    states = {"hybrid": ClusterHealth("hybrid", H, pool_states=pool_states)}
    result = candidates(req(2, cluster=cluster), [HYBRID], states)
    assert [c.pool for c in result] == expected
    assert result[0].reason == first_reason


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (
            req(1),
            f"pool onprem-gpu of hybrid has no free NVIDIA-A100-SXM4-80GB (8 in total, 0 free): "
            f"starting on hybrid, pool eks-gpu {NEW}",
        ),
        (
            req(2, None),
            "pool onprem-gpu of hybrid has no node with 2 free GPUs "
            "(8 in total, 1 free, at most 1 on one node): "
            f"starting on hybrid, pool eks-gpu {NEW}",
        ),
    ],
)
def test_full_fixed_pool_before_an_elastic_one_in_one_cluster(
    request_: PlacementRequest, reason: str
) -> None:
    used = 8 if request_.gpus == 1 else 7
    inv = replace(HYBRID, nodes=(node("dgx-1", "onprem-gpu", used=used), node("ip-1", "eks-gpu", used=8)))
    (first,) = candidates(request_, [inv])
    assert (first.pool, first.elastic, first.reason) == ("eks-gpu", True, reason)


def test_pools_without_the_product_are_not_mentioned() -> None:
    pools = (Pool("a100"), Pool("h100"))
    inv = onprem(node("a1", "a100", used=8), node("h1", "h100", product=H100), pools=pools)
    (first,) = candidates(req(1, H100), [inv])
    assert first.reason == "h1 on onprem has 8 free NVIDIA-H100-80GB-HBM3 (best fit)"
    (first,) = candidates(req(1, None), [inv])
    assert first.reason == (
        "pool a100 of onprem has no free GPU (8 in total, 0 free): "
        "h1 on onprem has 8 free NVIDIA-H100-80GB-HBM3 (best fit)"
    )


def test_all_pools_down_in_one_cluster() -> None:
    states = {"hybrid": ClusterHealth("hybrid", H, pool_states={"onprem-gpu": D, "eks-gpu": D})}
    result = no_capacity(req(2), [HYBRID], states)
    assert result.message == (
        "No cluster can start 2 × NVIDIA-A100-SXM4-80GB now: "
        "pool onprem-gpu of hybrid is down; pool eks-gpu of hybrid is down"
    )


SLOW = ClusterHealth("onprem", G, "slow")


@pytest.mark.parametrize(
    ("inventory", "request_", "state", "expected"),
    [
        # A degraded cluster: its pools are not each "degraded" in the reasons. The GPU pool comes
        # after the CPU pool because it has GPUs, and the cluster's own note says it is degraded.
        (
            onprem(node("g1"), cpu_node("c1")),
            req(0, None, cpu=1),
            SLOW,
            [
                (
                    "cpu",
                    "onprem is degraded (slow): c1 on onprem has 16 CPUs and 64 GiB memory free "
                    "(no GPUs requested)",
                ),
                (
                    "gpu",
                    "onprem is degraded (slow): g1 on onprem has 64 CPUs and 512 GiB memory free "
                    "(no GPUs requested, but no node without GPUs has room)",
                ),
            ],
        ),
        # ... nor when a pool of it is degraded too: in a degraded cluster the fit decides
        (
            onprem(node("g1", used=4), node("g2", "gpu2", used=6), pools=(Pool("gpu"), Pool("gpu2"))),
            req(1),
            replace(SLOW, pool_states={"gpu": G}),
            [
                (
                    "gpu2",
                    "onprem is degraded (slow): g2 on onprem has 2 free NVIDIA-A100-SXM4-80GB (best fit)",
                ),
                (
                    "gpu",
                    "onprem is degraded (slow): g1 on onprem has 4 free NVIDIA-A100-SXM4-80GB (best fit)",
                ),
            ],
        ),
        # a pool that is down is still named
        (
            onprem(node("g1"), cpu_node("c1")),
            req(0, None, cpu=1),
            replace(SLOW, pool_states={"gpu": D}),
            [
                (
                    "cpu",
                    "onprem is degraded (slow); pool gpu of onprem is down: c1 on onprem has 16 CPUs "
                    "and 64 GiB memory free (no GPUs requested)",
                ),
            ],
        ),
        # A healthy cluster with a degraded pool: that pool comes last, and the pools it would have
        # come before say why (its own candidate too)
        (
            onprem(node("g1", used=6), node("g2", "gpu2", used=4), pools=(Pool("gpu"), Pool("gpu2"))),
            req(1),
            ClusterHealth("onprem", H, pool_states={"gpu": G}),
            [
                (
                    "gpu2",
                    "pool gpu of onprem is degraded: g2 on onprem has 4 free NVIDIA-A100-SXM4-80GB "
                    "(best fit)",
                ),
                (
                    "gpu",
                    "pool gpu of onprem is degraded: g1 on onprem has 2 free NVIDIA-A100-SXM4-80GB "
                    "(best fit)",
                ),
            ],
        ),
        # ... also in front of a pool of GPU nodes that comes first only because the CPU pool is degraded
        (
            onprem(node("g1"), cpu_node("c1"), pools=(Pool("cpu"), Pool("gpu"))),
            req(0, None, cpu=1),
            ClusterHealth("onprem", H, pool_states={"cpu": G}),
            [
                (
                    "gpu",
                    "pool cpu of onprem is degraded: g1 on onprem has 64 CPUs and 512 GiB memory free "
                    "(no GPUs requested, but no node without GPUs has room)",
                ),
                (
                    "cpu",
                    "pool cpu of onprem is degraded: c1 on onprem has 16 CPUs and 64 GiB memory free "
                    "(no GPUs requested)",
                ),
            ],
        ),
        # ... and a CPU-only request names it in front of the pool it would have come before
        (
            onprem(node("g1"), cpu_node("c1")),
            req(0, None, cpu=1),
            ClusterHealth("onprem", H, pool_states={"gpu": G}),
            [
                (
                    "cpu",
                    "pool gpu of onprem is degraded: c1 on onprem has 16 CPUs and 64 GiB memory free "
                    "(no GPUs requested)",
                ),
                (
                    "gpu",
                    "pool gpu of onprem is degraded: g1 on onprem has 64 CPUs and 512 GiB memory free "
                    "(no GPUs requested, but no node without GPUs has room)",
                ),
            ],
        ),
    ],
)
def test_pool_notes_name_degradation_only_where_it_moved_the_pool(
    inventory: ClusterInventory,
    request_: PlacementRequest,
    state: ClusterHealth,
    expected: list[tuple[str, str]],
) -> None:
    """docs/mutation-testing.md, "Findings": a degraded cluster made each of its pools read as degraded."""
    result = candidates(request_, [inventory], {"onprem": state})
    assert [(c.pool, c.reason) for c in result] == expected


@pytest.mark.parametrize(
    ("inventory", "request_", "expected"),
    [
        # a full pool listed after the one that fits needs no mention
        (
            onprem(node("o1"), node("m1", "more", used=8), pools=(Pool("gpu"), Pool("more"))),
            req(1),
            [("gpu", False, "o1 on onprem has 8 free NVIDIA-A100-SXM4-80GB (best fit)")],
        ),
        # a full fixed pool listed after an elastic one still comes first naturally: say why not
        (
            onprem(node("o1", used=8), pools=(elastic("burst", A100, 8, 4), Pool("gpu"))),
            req(1),
            [
                (
                    "burst",
                    True,
                    "pool gpu of onprem has no free NVIDIA-A100-SXM4-80GB (8 in total, 0 free): "
                    f"starting on onprem, pool burst {NEW}",
                )
            ],
        ),
        # an elastic pool listed first, at its maximum
        (
            eks(
                node("l1", "a", product=L40S, used=8),
                pools=(elastic("a", L40S, 8, 1), elastic("b", L40S, 8, 2)),
            ),
            req(1, L40S),
            [("b", True, f"eks pool a is at its maximum of 1 node: starting on eks, pool b {NEW}")],
        ),
        # a fixed pool's figures whatever the order of the nodes
        (
            replace(HYBRID, nodes=(node("ip-1", "eks-gpu", used=8), node("dgx-1", "onprem-gpu", used=8))),
            req(1),
            [
                (
                    "eks-gpu",
                    True,
                    "pool onprem-gpu of hybrid has no free NVIDIA-A100-SXM4-80GB (8 in total, 0 free): "
                    f"starting on hybrid, pool eks-gpu {NEW}",
                )
            ],
        ),
        # existing nodes of an elastic pool before a new node of another
        (
            eks(
                node("l1", "b", product=L40S, used=4),
                pools=(elastic("a", L40S, 8, 2), elastic("b", L40S, 8, 2)),
            ),
            req(1, L40S),
            [
                ("b", False, "l1 on eks has 4 free NVIDIA-L40S (best fit)"),
                ("a", True, f"starting on eks, pool a {NEW}"),
                ("b", True, f"starting on eks, pool b {NEW}"),
            ],
        ),
        # CPU-only: a GPU pool without CPU room is no excuse to give
        (
            onprem(node("g", cpu_used=64), cpu_node("c1")),
            req(0, None, cpu=1),
            [("cpu", False, "c1 on onprem has 16 CPUs and 64 GiB memory free (no GPUs requested)")],
        ),
        # CPU-only: an existing CPU node before a new one
        (
            onprem(cpu_node("c1"), pools=(Pool("cpu"), elastic("burst", None, 0, 5))),
            req(0, None, cpu=1),
            [
                ("cpu", False, "c1 on onprem has 16 CPUs and 64 GiB memory free (no GPUs requested)"),
                ("burst", True, f"starting on onprem, pool burst {NEW}"),
            ],
        ),
        # CPU-only: a new CPU node before a node with a single GPU
        (
            onprem(node("g1", gpus=1), pools=(Pool("gpu"), elastic("cpu", None, 0, 5))),
            req(0, None, cpu=1),
            [
                ("cpu", True, f"starting on onprem, pool cpu {NEW}"),
                (
                    "gpu",
                    False,
                    "g1 on onprem has 64 CPUs and 512 GiB memory free "
                    "(no GPUs requested, but no node without GPUs has room)",
                ),
            ],
        ),
    ],
)
def test_pool_order_and_notes_in_one_cluster(
    inventory: ClusterInventory, request_: PlacementRequest, expected: list[tuple[str, bool, str]]
) -> None:
    assert [(c.pool, c.elastic, c.reason) for c in candidates(request_, [inventory])] == expected


# --------------------------------------------------------------------------- reasons

ONPREM_A100 = onprem(
    node("dgx-a100-1", used=4), node("dgx-a100-2", used=6), node("l40s-1", product=L40S, used=8)
)
L40S_FULL = onprem(node("l40s-1", product=L40S, used=8))


@pytest.mark.parametrize(
    ("request_", "inventories", "states", "policy", "reasons"),
    [
        (
            req(2),
            [ONPREM_A100],
            {},
            "best-fit",
            ["dgx-a100-2 on onprem has 2 free NVIDIA-A100-SXM4-80GB (best fit)"],
        ),
        (
            req(2),
            [ONPREM_A100],
            {},
            "spread",
            ["dgx-a100-1 on onprem has 4 free NVIDIA-A100-SXM4-80GB (most free)"],
        ),
        (
            req(1, None),
            [onprem(node("x", product=None, used=7))],
            {},
            "best-fit",
            ["x on onprem has 1 free GPU (best fit)"],
        ),
        (
            req(2, None),
            [onprem(node("x", product=None, used=2))],
            {},
            "best-fit",
            ["x on onprem has 6 free GPUs (best fit)"],
        ),
        # a candidate after one that fits needs no excuse
        (
            req(1, L40S),
            [onprem(node("l40s-1", product=L40S, used=7)), eks()],
            {},
            "best-fit",
            ["l40s-1 on onprem has 1 free NVIDIA-L40S (best fit)", f"starting on eks, pool gpu-l40s {NEW}"],
        ),
        # the cloud after on-prem failed says why
        (
            req(1, L40S),
            [L40S_FULL, eks()],
            {},
            "best-fit",
            [f"onprem has no free NVIDIA-L40S (8 in total, 0 free): starting on eks, pool gpu-l40s {NEW}"],
        ),
        (
            req(1, L40S),
            [L40S_FULL, eks(node("ip-10-0-1-5", "gpu-l40s", product=L40S, used=4))],
            {},
            "best-fit",
            [
                "onprem has no free NVIDIA-L40S (8 in total, 0 free): "
                "ip-10-0-1-5 on eks has 4 free NVIDIA-L40S (best fit)",
                f"onprem has no free NVIDIA-L40S (8 in total, 0 free): starting on eks, pool gpu-l40s {NEW}",
            ],
        ),
        (
            req(4),
            [ONPREM_A100, eks()],
            {},
            "best-fit",
            [
                "dgx-a100-1 on onprem has 4 free NVIDIA-A100-SXM4-80GB (best fit)",
                f"starting on eks, pool gpu-a100 {NEW}",
            ],
        ),
        (
            req(5),
            [ONPREM_A100, eks()],
            {},
            "best-fit",
            [
                "onprem has no node with 5 free NVIDIA-A100-SXM4-80GB "
                "(16 in total, 6 free, at most 4 on one node): "
                f"starting on eks, pool gpu-a100 {NEW}"
            ],
        ),
        (
            req(1, cpu=80),
            [ONPREM_A100, eks()],
            {},
            "best-fit",
            [
                "onprem has no node with 1 free NVIDIA-A100-SXM4-80GB and 80 CPUs free "
                "(16 in total, 6 free): "
                f"starting on eks, pool gpu-a100 {NEW}"
            ],
        ),
        (
            req(1, None, cpu=80),
            [onprem(node("a", used=7)), eks(pools=(elastic("gpu-l40s"),))],
            {},
            "best-fit",
            [
                "onprem has no node with 1 free GPU and 80 CPUs free (8 in total, 1 free): "
                f"starting on eks, pool gpu-l40s {NEW}"
            ],
        ),
        (
            req(1, H100),
            [ONPREM_A100, eks(pools=(elastic("h100", H100, 8, 1),))],
            {},
            "best-fit",
            [f"onprem has no NVIDIA-H100-80GB-HBM3: starting on eks, pool h100 {NEW}"],
        ),
        (
            req(1, L40S),
            [onprem(node("l40s-1", product=L40S, ready=False)), eks()],
            {},
            "best-fit",
            [f"onprem has no Ready node with NVIDIA-L40S: starting on eks, pool gpu-l40s {NEW}"],
        ),
        # every excuse, in order
        (
            req(1, L40S),
            [L40S_FULL, eks()],
            {"eks": ClusterHealth("eks", G, "slow")},
            "best-fit",
            [
                "onprem has no free NVIDIA-L40S (8 in total, 0 free); eks is degraded (slow): "
                f"starting on eks, pool gpu-l40s {NEW}"
            ],
        ),
        # on-prem down or degraded: say so
        (
            req(2),
            [ONPREM_A100, eks()],
            {"onprem": ClusterHealth("onprem", D, "API unreachable for 3 probes")},
            "best-fit",
            [f"onprem is down (API unreachable for 3 probes): starting on eks, pool gpu-a100 {NEW}"],
        ),
        (
            req(2),
            [ONPREM_A100, eks()],
            {"onprem": ClusterHealth("onprem", D)},
            "best-fit",
            [f"onprem is down: starting on eks, pool gpu-a100 {NEW}"],
        ),
        (
            req(2),
            [ONPREM_A100, eks()],
            {"onprem": ClusterHealth("onprem", G, "API answers in 1.4 s (> 1.0 s)")},
            "best-fit",
            [
                f"onprem is degraded (API answers in 1.4 s (> 1.0 s)): starting on eks, pool gpu-a100 {NEW}",
                "onprem is degraded (API answers in 1.4 s (> 1.0 s)): "
                "dgx-a100-2 on onprem has 2 free NVIDIA-A100-SXM4-80GB (best fit)",
            ],
        ),
        (
            req(2),
            [ONPREM_A100, eks()],
            {"onprem": ClusterHealth("onprem", D), "eks": ClusterHealth("eks", D, "watch silent for 130 s")},
            "best-fit",
            [],
        ),
        # on-prem pools down in a healthy cluster
        (
            req(2),
            [ONPREM_A100, eks()],
            {"onprem": ClusterHealth("onprem", H, pool_states={"gpu": D})},
            "best-fit",
            [f"pool gpu of onprem is down: starting on eks, pool gpu-a100 {NEW}"],
        ),
        # CPU-only
        (
            req(0, None, cpu=32),
            [onprem(cpu_node("c1")), eks()],
            {},
            "best-fit",
            [
                "onprem has no node with 32 CPUs free (at most 16 CPUs and 64 GiB memory free on one node): "
                f"starting on eks, pool cpu {NEW}"
            ],
        ),
    ],
)
def test_reasons(
    request_: PlacementRequest,
    inventories: list[ClusterInventory],
    states: dict[str, ClusterHealth],
    policy: str,
    reasons: list[str],
) -> None:
    result = place(request_, inventories, states, policy=policy)
    got = [] if isinstance(result, NoCapacity) else [c.reason for c in result]
    assert got == reasons


@pytest.mark.parametrize(
    ("request_", "inv", "held", "reason"),
    [
        # what the node has free, less what live reservations on it hold
        (
            req(1),
            onprem(node("a", used=2, cpu_used=8, mem_used=GiB)),
            Reservation("r", "onprem", "a", "gpu", 2, 4.0, GiB, 100.0),
            "a on onprem has 4 free NVIDIA-A100-SXM4-80GB (best fit)",
        ),
        (
            req(0, None, cpu=1),
            onprem(cpu_node("c", cpu_used=2.5, mem_used=8 * GiB)),
            Reservation("r", "onprem", "c", "cpu", 0, 4.0, 16 * GiB, 100.0),
            "c on onprem has 9.5 CPUs and 40 GiB memory free (no GPUs requested)",
        ),
        # the memory asked for is exactly what a reservation leaves
        (
            req(1, memory=12 * GiB),
            onprem(node("a")),
            Reservation("r", "onprem", "a", "gpu", 0, 0.0, 500 * GiB, 100.0),
            "a on onprem has 8 free NVIDIA-A100-SXM4-80GB (best fit)",
        ),
        (
            req(0, None, memory=12 * GiB),
            onprem(cpu_node("c", mem_used=GiB)),
            Reservation("r", "onprem", "c", "cpu", 0, 0.0, 51 * GiB, 100.0),
            "c on onprem has 16 CPUs and 12 GiB memory free (no GPUs requested)",
        ),
    ],
)
def test_reasons_count_reservations(
    request_: PlacementRequest, inv: ClusterInventory, held: Reservation, reason: str
) -> None:
    assert [c.reason for c in candidates(request_, [inv], None, [held])] == [reason]


MiB = 2**20


@pytest.mark.parametrize(
    ("cpu", "cpu_used", "mem", "words"),
    [
        (16.0, 0.0, 1536 * MiB, "16 CPUs and 1.5 GiB memory"),
        (16.0, 0.0, GiB, "16 CPUs and 1 GiB memory"),
        (16.0, 0.0, GiB - MiB, "16 CPUs and 1023 MiB memory"),
        (16.0, 0.0, 512 * MiB, "16 CPUs and 512 MiB memory"),
        (16.0, 0.0, MiB, "16 CPUs and 1 MiB memory"),
        (16.0, 0.0, MiB - 1, "16 CPUs and 1048575 bytes memory"),
        (16.0, 0.0, 0, "16 CPUs and 0 bytes memory"),
        (1.0, 0.0, 3 * 2**40, "1 CPU and 3 TiB memory"),
        (1.5, 0.0, GiB, "1.5 CPUs and 1 GiB memory"),
        (0.25, 0.0, GiB, "0.25 CPUs and 1 GiB memory"),
        # float arithmetic: 0.3 - 0.2 is 0.09999999999999998; the reason says what was meant
        (0.3, 0.2, GiB, "0.1 CPUs and 1 GiB memory"),
    ],
)
def test_free_resources_in_words(cpu: float, cpu_used: float, mem: int, words: str) -> None:
    inv = onprem(node("c", "cpu", gpus=0, cpu=cpu, cpu_used=cpu_used, mem=mem))
    (c,) = candidates(req(0, None), [inv])
    assert c.reason == f"c on onprem has {words} free (no GPUs requested)"


# --------------------------------------------------------------------------- no capacity

CPU_AND_BURST = (Pool("cpu"), elastic("burst", None, 0, 1))
GPU_AND_BURST = (Pool("gpu"), Pool("cpu"), elastic("burst", A100, 8, 1))
EKS_A100_FULL = eks(
    node("ip-1", "gpu-a100", used=8),
    node("ip-2", "gpu-a100", used=8),
    pools=(elastic("gpu-a100", A100, 8, 2),),
)
ONPREM_16 = onprem(node("dgx-1", used=6), node("dgx-2", used=7))  # 16 A100, 3 free, at most 2 on one node


@pytest.mark.parametrize(
    ("request_", "inventories", "states", "message"),
    [
        (
            req(4),
            [ONPREM_16, EKS_A100_FULL],
            {},
            "No cluster can start 4 × NVIDIA-A100-SXM4-80GB now: "
            "onprem has 16 (3 free, at most 2 on one node); "
            "eks pool gpu-a100 is at its maximum of 2 nodes",
        ),
        (
            req(1),
            [onprem(node("dgx-1", used=8)), EKS_A100_FULL],
            {},
            "No cluster can start 1 × NVIDIA-A100-SXM4-80GB now: onprem has 8 (none free); "
            "eks pool gpu-a100 is at its maximum of 2 nodes",
        ),
        # more than any node can ever hold
        (
            req(16),
            [ONPREM_16, EKS_A100_FULL],
            {},
            "No cluster can start 16 × NVIDIA-A100-SXM4-80GB: no node has more than 8 NVIDIA-A100-SXM4-80GB "
            "(a server's GPUs are on one node); ask for 8 or fewer",
        ),
        (
            req(9, None),
            [ONPREM_16, EKS_A100_FULL],
            {"onprem": D},
            "No cluster can start 9 GPUs: no node has more than 8 GPUs (a server's GPUs are on one node); "
            "ask for 8 or fewer",
        ),
        (
            req(16, cluster="onprem"),
            [ONPREM_16, EKS_A100_FULL],
            {},
            "onprem cannot start 16 × NVIDIA-A100-SXM4-80GB: no node has more than 8 NVIDIA-A100-SXM4-80GB "
            "(a server's GPUs are on one node); ask for 8 or fewer",
        ),
        # a product nobody has
        (
            req(1, H100),
            [ONPREM_A100, EKS_A100_FULL],
            {},
            "No cluster has NVIDIA-H100-80GB-HBM3 (GPUs there: NVIDIA-A100-SXM4-80GB, NVIDIA-L40S)",
        ),
        (
            req(1, H100, cluster="eks"),
            [ONPREM_A100, EKS_A100_FULL],
            {},
            "eks has no NVIDIA-H100-80GB-HBM3 (GPUs there: NVIDIA-A100-SXM4-80GB)",
        ),
        (req(1, None), [onprem(cpu_node("c1"))], {}, "No cluster has GPUs"),
        # health
        (
            req(1),
            [ONPREM_16, eks(pools=())],
            {"onprem": ClusterHealth("onprem", D, "API unreachable for 3 probes")},
            "No cluster can start 1 × NVIDIA-A100-SXM4-80GB now: "
            "onprem is down (API unreachable for 3 probes); "
            "eks has none",
        ),
        (
            req(1, cluster="onprem"),
            [ONPREM_16, EKS_A100_FULL],
            {"onprem": D},
            "onprem cannot start 1 × NVIDIA-A100-SXM4-80GB now: onprem is down",
        ),
        (
            req(1),
            [replace(ONPREM_16, synced=False)],
            {},
            "No cluster can start 1 × NVIDIA-A100-SXM4-80GB now: onprem is not synced yet",
        ),
        # CPU or memory is what lacks
        (
            req(2, cpu=100, memory=64 * GiB),
            [ONPREM_16],
            {},
            "No cluster can start 2 × NVIDIA-A100-SXM4-80GB with 100 CPUs and 64 GiB memory now: "
            "onprem has 16 (3 free, at most 2 on one node), but no node with the GPUs free has "
            "100 CPUs and 64 GiB memory free",
        ),
        (
            req(0, None, memory=int(1.5 * 2**40)),
            [ONPREM_16],
            {},
            "No cluster can start a CPU-only server with 1.5 TiB memory now: onprem has no node with 1.5 TiB "
            "memory free (at most 64 CPUs and 512 GiB memory free on one node)",
        ),
        (
            req(0, None, cpu=1),
            [onprem(cpu_node("c1", ready=False))],
            {},
            "No cluster can start a CPU-only server with 1 CPU now: onprem has no Ready node",
        ),
        (
            req(2, None),
            [onprem(node("x", ready=False), node("y", used=7))],
            {},
            "No cluster can start 2 GPUs now: onprem has 8 GPUs (1 free, at most 1 on one node)",
        ),
        (
            req(1),
            [onprem(node("x", ready=False))],
            {},
            "No cluster can start 1 × NVIDIA-A100-SXM4-80GB now: "
            "onprem has none Ready (8 on nodes not Ready)",
        ),
        (
            req(4, L40S),
            [
                L40S_FULL,
                eks(node("l1", "gpu-l40s", product=L40S, gpus=2), pools=(elastic("gpu-l40s", L40S, 2, 5),)),
            ],
            {},
            "No cluster can start 4 × NVIDIA-L40S now: "
            "onprem has 8 (none free); eks pool gpu-l40s has 2 GPUs per node",
        ),
        # as many GPUs as a node has: the nodes are busy, not too small
        (
            req(8),
            [
                onprem(node("a", used=8)),
                eks(node("ip-1", "gpu-a100", used=8), pools=(elastic("gpu-a100", A100, 8, 1),)),
            ],
            {},
            "No cluster can start 8 × NVIDIA-A100-SXM4-80GB now: "
            "onprem has 8 (none free); eks pool gpu-a100 is at its maximum of 1 node",
        ),
        # nodes with a single GPU
        (
            req(1),
            [onprem(node("a", gpus=1, used=1), node("b", gpus=1, used=1))],
            {},
            "No cluster can start 1 × NVIDIA-A100-SXM4-80GB now: onprem has 2 (none free)",
        ),
        # the GPUs of every node not Ready, of the product asked for only
        (
            req(1),
            [onprem(node("x", ready=False), node("y", ready=False))],
            {},
            "No cluster can start 1 × NVIDIA-A100-SXM4-80GB now: "
            "onprem has none Ready (16 on nodes not Ready)",
        ),
        (
            req(1),
            [
                onprem(
                    node("x", ready=False), node("h", product=H100, ready=False), cpu_node("c", ready=False)
                )
            ],
            {},
            "No cluster can start 1 × NVIDIA-A100-SXM4-80GB now: "
            "onprem has none Ready (8 on nodes not Ready)",
        ),
        # a free GPU, but not with the CPUs asked for
        (
            req(1, cpu=80),
            [onprem(node("a", used=7))],
            {},
            "No cluster can start 1 × NVIDIA-A100-SXM4-80GB with 80 CPUs now: "
            "onprem has 8 (1 free), but no node with the GPUs free has 80 CPUs free",
        ),
        # no memory free anywhere
        (
            req(0, None, cpu=32),
            [onprem(cpu_node("c1", mem_used=64 * GiB))],
            {},
            "No cluster can start a CPU-only server with 32 CPUs now: "
            "onprem has no node with 32 CPUs free (at most 16 CPUs and 0 bytes memory free on one node)",
        ),
        # a cluster whose elastic pool is at its maximum: its fixed pools are named when they have
        # something of the kind asked for (a Ready node; GPUs of the product), first
        (
            req(0, None, cpu=32),
            [onprem(cpu_node("c1"), cpu_node("b1", "burst", cpu_used=16), pools=CPU_AND_BURST)],
            {},
            "No cluster can start a CPU-only server with 32 CPUs now: "
            "onprem has no node with 32 CPUs free (at most 16 CPUs and 64 GiB memory free on one node); "
            "onprem pool burst is at its maximum of 1 node",
        ),
        (
            req(0, None, cpu=1),
            [onprem(cpu_node("c1", ready=False), cpu_node("b1", "burst", cpu_used=16), pools=CPU_AND_BURST)],
            {},
            "No cluster can start a CPU-only server with 1 CPU now: "
            "onprem pool burst is at its maximum of 1 node",
        ),
        (
            req(1),
            [onprem(node("g1", used=8), node("b1", "burst", used=8), pools=GPU_AND_BURST)],
            {},
            "No cluster can start 1 × NVIDIA-A100-SXM4-80GB now: "
            "onprem has 8 (none free); onprem pool burst is at its maximum of 1 node",
        ),
        (
            req(1),
            [onprem(cpu_node("c1"), node("b1", "burst", used=8), pools=GPU_AND_BURST)],
            {},
            "No cluster can start 1 × NVIDIA-A100-SXM4-80GB now: "
            "onprem pool burst is at its maximum of 1 node",
        ),
        # a CPU pool is no place for a request with GPUs, of any product
        (
            req(1, None),
            [
                eks(
                    node("l1", "gpu-l40s", product=L40S, used=8),
                    pools=(elastic("gpu-l40s", L40S, 8, 1), elastic("cpu", None, 0, 10)),
                )
            ],
            {},
            "No cluster can start 1 GPU now: eks pool gpu-l40s is at its maximum of 1 node",
        ),
    ],
)
def test_no_capacity_messages(
    request_: PlacementRequest,
    inventories: list[ClusterInventory],
    states: dict[str, Health | ClusterHealth],
    message: str,
) -> None:
    assert no_capacity(request_, inventories, health(**states)).message == message


def test_no_capacity_names_future_nodes_and_counts_reservations() -> None:
    inv = eks(node("ip-1", "gpu-a100", used=8), pools=(elastic("gpu-a100", A100, 8, 2),))
    held = [Reservation("r1", "eks", None, "gpu-a100", 8, 0.0, 0, 100.0)]
    assert no_capacity(req(1), [inv], None, held).message == (
        "No cluster can start 1 × NVIDIA-A100-SXM4-80GB now: eks pool gpu-a100 is at its maximum of 2 nodes "
        "(1 starting)"
    )


def test_no_capacity_lists_what_is_available() -> None:
    result = no_capacity(req(4), [ONPREM_16, EKS_A100_FULL])
    assert result.available == {
        "onprem": (ProductAvailability(A100, 16, 3, largest_free=2),),
        "eks": (ProductAvailability(A100, 16, 0),),
    }
    # reservations deducted
    held = [Reservation("r", "onprem", "dgx-2", "gpu", 1, 0.0, 0, 100.0)]
    assert no_capacity(req(4), [ONPREM_16], None, held).available == {
        "onprem": (ProductAvailability(A100, 16, 2, largest_free=2),)
    }


@pytest.mark.parametrize(
    ("request_", "listed"),
    [
        (req(2, gpu_quota=1), ["onprem", "eks"]),
        (req(1, cpu=-1), ["onprem", "eks"]),
        (req(1, cluster="gcp"), ["onprem", "eks"]),
        # only the clusters the user may use
        (req(1, cluster="eks", allowed_clusters=("onprem",)), ["onprem"]),
    ],
)
def test_a_refused_request_still_lists_what_is_available(
    request_: PlacementRequest, listed: list[str]
) -> None:
    """The user reads what there is even when the request itself is refused (reservations deducted)."""
    held = [Reservation("r", "onprem", "dgx-2", "gpu", 1, 0.0, 0, 100.0)]
    available = {
        "onprem": (ProductAvailability(A100, 16, 2, largest_free=2),),
        "eks": (ProductAvailability(A100, 16, 0),),
    }
    result = no_capacity(request_, [ONPREM_16, EKS_A100_FULL], None, held)
    assert result.available == {cluster: available[cluster] for cluster in listed}


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (req(-1), "The number of GPUs must be 0 or more, not -1"),
        (req(1, cpu=-0.5), "The CPU request must be 0 or more, not -0.5"),
        (req(1, memory=-1), "The memory request must be 0 or more, not -1"),
        (req(1, gpu_quota=-1), "The GPU limit must be 0 or more, not -1"),
        (req(1, gpus_in_use=-2), "The number of GPUs in use must be 0 or more, not -2"),
        (req(1, cluster="gcp"), "There is no cluster named 'gcp' (clusters: onprem, eks)"),
        (req(1, cluster="eks", allowed_clusters=("onprem",)), "You may not use cluster 'eks'; yours: onprem"),
        (req(1, cluster="eks", allowed_clusters=()), "You may not use cluster 'eks'"),
        (req(1, allowed_clusters=()), "You may not use any cluster"),
        (req(1, allowed_clusters=("gcp",)), "You may not use any cluster"),
        # the quota: running servers included
        (
            req(2, gpu_quota=4, gpus_in_use=3),
            "Cannot start 2 × NVIDIA-A100-SXM4-80GB: "
            "your GPU limit is 4; you hold 3, so you can ask for at most 1 more",
        ),
        (req(1, None, gpu_quota=4, gpus_in_use=4), "Cannot start 1 GPU: your GPU limit is 4; you hold 4"),
        (req(1, gpu_quota=0), "Cannot start 1 × NVIDIA-A100-SXM4-80GB: your GPU limit is 0; you hold 0"),
    ],
)
def test_invalid_or_over_quota(request_: PlacementRequest, message: str) -> None:
    assert no_capacity(request_, [ONPREM_16, EKS_A100_FULL]).message == message


@pytest.mark.parametrize(
    ("request_", "fits"),
    [
        (req(2, gpu_quota=4, gpus_in_use=2), True),
        (req(2, gpu_quota=None, gpus_in_use=200), True),
        (req(3, gpu_quota=4, gpus_in_use=2), False),
    ],
)
def test_quota_boundary(request_: PlacementRequest, fits: bool) -> None:
    assert isinstance(place(request_, [ONPREM_16], {}), list) is fits


@pytest.mark.parametrize(
    ("request_", "clusters", "message"),
    [
        (req(1, cluster="gcp"), [], "There is no cluster named 'gcp' (clusters: none)"),
        (
            req(1, cluster="gcp", allowed_clusters=("onprem", "eks")),
            ["onprem", "eks", "gcp"],
            "You may not use cluster 'gcp'; yours: onprem, eks",
        ),
        (req(1, cluster="eks", allowed_clusters=("onprem", "eks")), ["onprem", "eks", "gcp"], None),
    ],
)
def test_validate_request_names_the_clusters(
    request_: PlacementRequest, clusters: list[str], message: str | None
) -> None:
    assert validate_request(request_, clusters) == message


def test_validate_request_without_clusters() -> None:
    assert validate_request(req(1), []) == "There is no cluster to start servers on"
    assert validate_request(req(1), ["onprem"]) is None
    assert no_capacity(req(1), []).message == "There is no cluster to start servers on"


def test_unknown_policy_is_a_programming_error() -> None:
    with pytest.raises(ValueError, match=r"unknown placement policy 'worst-fit' \(known: best-fit, spread\)"):
        place(req(1), [ONPREM_16], {}, policy="worst-fit")


# --------------------------------------------------------------------------- reservations


def test_reservations_reduce_free_resources() -> None:
    inv = onprem(node("a", used=6), node("b", used=4))
    held = [Reservation("r1", "onprem", "a", "gpu", 2, 0.0, 0, 100.0)]
    assert candidates(req(2), [inv], None, held)[0].nodes == ("b",)
    # expired at ``now``: ignored; without ``now`` every reservation given counts
    assert candidates(req(2), [inv], None, held, now=100.0)[0].nodes == ("a", "b")
    assert candidates(req(2), [inv], None, held, now=99.0)[0].nodes == ("b",)
    # an expired reservation listed first does not hide the live ones after it
    expired = Reservation("r0", "onprem", "b", "gpu", 4, 0.0, 0, 5.0)
    assert candidates(req(2), [inv], None, [expired, *held], now=10.0)[0].nodes == ("b",)
    # another cluster's reservation on a node of the same name does not count
    other = [replace(held[0], cluster="eks")]
    assert candidates(req(2), [inv], None, other)[0].nodes == ("a", "b")
    # CPU and memory are held too
    cpu_held = [Reservation("r2", "onprem", "b", "gpu", 0, 60.0, 0, 100.0)]
    assert candidates(req(2, cpu=8), [inv], None, cpu_held)[0].nodes == ("a",)
    mem_held = [Reservation("r3", "onprem", "b", "gpu", 0, 0.0, 500 * GiB, 100.0)]
    assert candidates(req(2, memory=64 * GiB), [inv], None, mem_held)[0].nodes == ("a",)


def test_twenty_concurrent_spawns_take_exactly_the_free_gpus() -> None:
    inventories = [
        onprem(node("a", used=5), node("b", used=6)),
        eks(pools=(elastic("gpu-a100", A100, 8, 50),)),
    ]
    held: list[Reservation] = []
    landed = []
    for i in range(20):
        request = PlacementRequest(f"user{i}", 1, A100)
        first = candidates(request, inventories, None, held, now=0.0)[0]
        held.append(reserve(first, request, now=0.0, ttl=120.0))
        landed.append(first.cluster)
    assert landed == ["onprem"] * 5 + ["eks"] * 15
    assert [r.node for r in held[:5]] == ["b", "b", "a", "a", "a"]  # best fit fills b first


@pytest.mark.parametrize(
    ("candidate", "node", "expected_id"),
    [
        (Candidate("onprem", "gpu", False, ("a", "b"), "a", "..."), "a", "alice/onprem/a/10.0"),
        (Candidate("eks", "gpu-l40s", True, (), None, "..."), None, "alice/eks/gpu-l40s+new/10.0"),
    ],
)
def test_reserve(candidate: Candidate, node: str | None, expected_id: str) -> None:
    request = req(2, cpu=4, memory=32 * GiB)
    assert reserve(candidate, request, now=10.0, ttl=120.0) == Reservation(
        expected_id, candidate.cluster, node, candidate.pool, 2, 4.0, 32 * GiB, 130.0
    )
    assert reserve(candidate, request, now=10.0, ttl=1.0, reservation_id="x").id == "x"


@pytest.mark.parametrize(
    ("candidate", "ttl", "message"),
    [
        (
            Candidate("onprem", "gpu", False, ("a",), "a", ""),
            0.0,
            "a reservation needs a positive ttl, not 0.0",
        ),
        (
            Candidate("onprem", "gpu", False, (), None, ""),
            10.0,
            "candidate onprem/gpu names no node to reserve",
        ),
    ],
)
def test_reserve_rejects(candidate: Candidate, ttl: float, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        reserve(candidate, req(1), now=0.0, ttl=ttl)
    assert str(caught.value) == message


# --------------------------------------------------------------------------- warm elastic pools


def test_twenty_spawns_meet_a_warm_elastic_pool() -> None:
    """The issue's case: 5 free on-prem GPUs and two idle 4-GPU nodes left in an elastic pool that may
    have four. Twenty 1-GPU placements, each reserved before the next: 5 on-prem, 8 on the warm nodes,
    7 on two new nodes. Each one for a new node keeps off the warm nodes while their GPUs are held, and
    each one for a warm node has a new node as its next candidate."""
    warm = (node("ip-1", "gpu-l40s", product=L40S, gpus=4), node("ip-2", "gpu-l40s", product=L40S, gpus=4))
    inventories = [
        onprem(node("l40s-1", product=L40S, gpus=4, used=1), node("l40s-2", product=L40S, gpus=4, used=2)),
        eks(*warm, pools=(elastic("gpu-l40s", L40S, 4, 4),)),
    ]
    held: list[Reservation] = []
    firsts, avoided, seconds = [], [], []
    for i in range(20):
        request = PlacementRequest(f"user{i}", 1, L40S)
        found = candidates(request, inventories, None, held, now=0.0)
        first = found[0]
        firsts.append((first.cluster, first.preferred_node))
        avoided.append(held_for_others(first, request, inventories, held, now=0.0))
        seconds.append([(c.cluster, c.elastic) for c in found[1:2]])
        held.append(reserve(first, request, now=0.0, ttl=120.0, reservation_id=f"r{i}"))
    assert firsts == [
        *[("onprem", "l40s-2")] * 2,
        *[("onprem", "l40s-1")] * 3,
        *[("eks", "ip-1")] * 4,
        *[("eks", "ip-2")] * 4,
        *[("eks", None)] * 7,
    ]
    # only reservations fill the warm nodes: the scheduler sees them free, so a new-node pod names them
    assert avoided == [()] * 13 + [("ip-1", "ip-2")] * 7
    assert seconds[5:13] == [[("eks", True)]] * 8
    # two warm nodes and two on their way (4 + 3 GPUs): one more fits on the second, then none
    late = PlacementRequest("late", 1, L40S)
    (last,) = candidates(late, inventories, None, held, now=0.0)
    held.append(reserve(last, late, now=0.0, ttl=120.0))
    assert isinstance(place(late, inventories, {}, held, now=0.0), NoCapacity)


def _held_node(name: str, gpus: int, cpu: float = 0.0) -> Reservation:
    return Reservation(f"h-{name}-{gpus}-{cpu}", "eks", name, "gpu-l40s", gpus, cpu, 0, 100.0)


NEW_L40S = Candidate("eks", "gpu-l40s", True, (), None, "")


@pytest.mark.parametrize(
    ("nodes", "held", "request_", "candidate", "expected"),
    [
        # nothing held: nothing to keep off
        ((node("a", "gpu-l40s", product=L40S),), (), req(1, L40S), NEW_L40S, ()),
        # a node whose free GPUs are all held
        (
            (node("a", "gpu-l40s", product=L40S, used=6),),
            (_held_node("a", 2),),
            req(1, L40S),
            NEW_L40S,
            ("a",),
        ),
        # ... part held: what is left still takes the request, so the pod may go there
        ((node("a", "gpu-l40s", product=L40S, used=6),), (_held_node("a", 1),), req(1, L40S), NEW_L40S, ()),
        # ... but not a 2-GPU one
        (
            (node("a", "gpu-l40s", product=L40S, used=6),),
            (_held_node("a", 1),),
            req(2, L40S),
            NEW_L40S,
            ("a",),
        ),
        # a node the scheduler sees full needs no naming: the pod cannot go there anyway
        ((node("a", "gpu-l40s", product=L40S, used=8),), (_held_node("a", 1),), req(1, L40S), NEW_L40S, ()),
        # CPUs held are held too
        (
            (node("a", "gpu-l40s", product=L40S, cpu=16.0),),
            (_held_node("a", 0, 12.0),),
            req(1, L40S, cpu=8),
            NEW_L40S,
            ("a",),
        ),
        # ... up to an exact fit, which leaves the node to the pod
        (
            (node("a", "gpu-l40s", product=L40S, cpu=16.0),),
            (_held_node("a", 0, 8.0),),
            req(1, L40S, cpu=8),
            NEW_L40S,
            (),
        ),
        # memory held too, and memory the scheduler sees taken (an exact fit of what it sees free counts)
        (
            (node("a", "gpu-l40s", product=L40S, mem=64 * GiB),),
            (replace(_held_node("a", 0), memory=60 * GiB),),
            req(1, L40S, memory=8 * GiB),
            NEW_L40S,
            ("a",),
        ),
        (
            (node("a", "gpu-l40s", product=L40S, mem=64 * GiB, mem_used=48 * GiB),),
            (replace(_held_node("a", 0), memory=8 * GiB),),
            req(1, L40S, memory=8 * GiB),
            NEW_L40S,
            (),
        ),
        (
            (node("a", "gpu-l40s", product=L40S, used=6, mem=64 * GiB, mem_used=56 * GiB),),
            (_held_node("a", 2),),
            req(1, L40S, memory=8 * GiB),
            NEW_L40S,
            ("a",),
        ),
        (
            (node("a", "gpu-l40s", product=L40S, used=6, mem=64 * GiB, mem_used=60 * GiB),),
            (_held_node("a", 2),),
            req(1, L40S, memory=8 * GiB),
            NEW_L40S,
            (),
        ),
        # a CPU-only server's new node: nodes without GPUs are what it keeps off
        (
            (node("a", "gpu-l40s", gpus=0, cpu=16.0),),
            (_held_node("a", 0, 12.0),),
            req(0, None, cpu=8),
            NEW_L40S,
            ("a",),
        ),
        # ... the product a CPU-only request names is ignored, as place() ignores it
        (
            (node("a", "gpu-l40s", gpus=0, cpu=16.0),),
            (_held_node("a", 0, 12.0),),
            req(0, A100, cpu=8),
            NEW_L40S,
            ("a",),
        ),
        # a node of another product does not stop the look at the next one
        (
            (node("a", "gpu-l40s", used=6), node("b", "gpu-l40s", product=L40S, used=6)),
            (_held_node("a", 2), _held_node("b", 2)),
            req(1, L40S),
            NEW_L40S,
            ("b",),
        ),
        # nodes of another product, pool or cluster, or that are not Ready, are not this pod's concern
        ((node("a", "gpu-l40s", used=6),), (_held_node("a", 2),), req(1, L40S), NEW_L40S, ()),
        ((node("a", "other", product=L40S, used=6),), (_held_node("a", 2),), req(1, L40S), NEW_L40S, ()),
        (
            (node("a", "gpu-l40s", product=L40S, used=6, ready=False),),
            (_held_node("a", 2),),
            req(1, L40S),
            NEW_L40S,
            (),
        ),
        (
            (node("a", "gpu-l40s", product=L40S, used=6),),
            (replace(_held_node("a", 2), cluster="onprem"),),
            req(1, L40S),
            NEW_L40S,
            (),
        ),
        # any product: every GPU node of the pool
        (
            (node("a", "gpu-l40s", product=L40S, used=6),),
            (_held_node("a", 2),),
            req(1, None),
            NEW_L40S,
            ("a",),
        ),
        # an expired reservation holds nothing
        (
            (node("a", "gpu-l40s", product=L40S, used=6),),
            (replace(_held_node("a", 2), expires=5.0),),
            req(1, L40S),
            NEW_L40S,
            (),
        ),
        # a candidate of existing nodes names its own nodes instead
        (
            (node("a", "gpu-l40s", product=L40S, used=6),),
            (_held_node("a", 2),),
            req(1, L40S),
            Candidate("eks", "gpu-l40s", False, ("b",), "b", ""),
            (),
        ),
        # the emptiest first (where the scheduler would put the pod), then by name
        (
            (
                node("c", "gpu-l40s", product=L40S, used=6),
                node("b", "gpu-l40s", product=L40S, used=4),
                node("a", "gpu-l40s", product=L40S, used=6, cpu_used=8.0),
            ),
            (_held_node("a", 2), _held_node("b", 4), _held_node("c", 2)),
            req(1, L40S),
            NEW_L40S,
            ("b", "c", "a"),
        ),
    ],
)
def test_held_for_others(
    nodes: tuple[NodeCapacity, ...],
    held: tuple[Reservation, ...],
    request_: PlacementRequest,
    candidate: Candidate,
    expected: tuple[str, ...],
) -> None:
    inv = eks(*nodes, pools=(elastic("gpu-l40s", L40S, 8, 10),))
    assert held_for_others(candidate, request_, [onprem(), inv], held, now=10.0) == expected


def test_held_for_others_names_a_bounded_number() -> None:
    nodes = [node(f"n{i:02d}", "gpu-l40s", product=L40S, used=7 - i % 2) for i in range(40)]
    held = [_held_node(n.name, 8 - n.gpus_requested) for n in nodes]
    inv = eks(*nodes, pools=(elastic("gpu-l40s", L40S, 8, 100),))
    named = held_for_others(NEW_L40S, req(1, L40S), [inv], held)
    # the emptiest first: the 20 nodes with 2 free, by name
    assert named == tuple(f"n{i:02d}" for i in range(1, 40, 2))[:MAX_NAMED_NODES]
    assert held_for_others(NEW_L40S, req(1, L40S), [onprem()], held) == ()  # no inventory of eks


@pytest.mark.parametrize(
    ("candidate", "request_", "expected"),
    [
        (Candidate("onprem", "gpu", False, ("a",), "a", ""), req(1), True),
        (Candidate("eks", "gpu-l40s", True, (), None, ""), req(1, L40S), True),
        # CPU-only: on a named node when it asks for CPUs or memory
        (Candidate("onprem", "cpu", False, ("c",), "c", ""), req(0, None, cpu=0.5), True),
        (Candidate("onprem", "cpu", False, ("c",), "c", ""), req(0, None, memory=GiB), True),
        (Candidate("onprem", "cpu", False, ("c",), "c", ""), req(0, None, memory=1), True),
        (Candidate("onprem", "cpu", False, ("c",), "c", ""), req(0, None), False),
        # ... never on a new node, whose size is known in GPUs only
        (Candidate("eks", "cpu", True, (), None, ""), req(0, None, cpu=2, memory=GiB), False),
    ],
)
def test_reservable(candidate: Candidate, request_: PlacementRequest, expected: bool) -> None:
    assert reservable(candidate, request_) is expected


# --------------------------------------------------------------------------- how many nodes a pod names


@pytest.mark.parametrize("policy", ["best-fit", "spread"])
@pytest.mark.parametrize("gpus", [0, 1])
def test_a_candidate_names_a_bounded_number_of_nodes(policy: str, gpus: int) -> None:
    """Of 5,000 nodes that all fit, a candidate names the best MAX_NAMED_NODES, as a node-by-node
    check ranks them, reservations included."""
    rng = random.Random(f"{policy} {gpus}")
    nodes = [
        node(f"n{i:04d}", "p0", product=L40S, used=rng.randint(0, 6), cpu_used=rng.choice([0.0, 8.0, 30.0]))
        for i in range(5000)
    ]
    inv = ClusterInventory("onprem", Role.ONPREM, (Pool("p0"),), tuple(nodes), True)
    best = _feasible(inv, "p0", req(gpus, L40S, cpu=1), [], policy == "spread")
    # reservations on the best nodes move them down or out
    held = [
        Reservation(f"r{i}", "onprem", name, "p0", gpus * 2, 30.0, 0, 10.0)
        for i, name in enumerate(best[:10])
    ]
    for reservations in ([], held):
        result = candidates(req(gpus, L40S, cpu=1), [inv], None, reservations, policy=policy)
        expected = _feasible(inv, "p0", req(gpus, L40S, cpu=1), reservations, policy == "spread")
        assert len(expected) > 1000
        assert result[0].nodes == tuple(expected[:MAX_NAMED_NODES])
        assert result[0].preferred_node == expected[0]


def test_concurrent_cpu_only_spawns_spread_over_the_nodes() -> None:
    """Thirty CPU-only servers of 6 CPUs, placed one after the other with their reservations, onto 40
    nodes with room for two each: each server is named a node its reservation then holds, no node is
    asked for more than it has, and every name a server gets still had room for it."""
    inv = onprem(*(cpu_node(f"c{i:02d}", cpu_used=4.0) for i in range(40)))  # 12 CPUs free each
    held: list[Reservation] = []
    for i in range(30):
        request = PlacementRequest(f"user{i}", 0, None, cpu=6.0)
        first = candidates(request, [inv], None, held, now=0.0)[0]
        taken = {r.node: 0.0 for r in held}
        for r in held:
            taken[r.node] += r.cpu
        assert len(first.nodes) == MAX_NAMED_NODES
        assert all(12.0 - taken.get(name, 0.0) >= 6.0 for name in first.nodes), (i, first.nodes)
        assert reservable(first, request)
        held.append(reserve(first, request, now=0.0, ttl=60.0, reservation_id=f"r{i}"))
    per_node = {r.node: 0 for r in held}
    for r in held:
        per_node[r.node] += 1
    assert max(per_node.values()) == 2 and len(per_node) == 15  # best fit: full nodes, two by two


# --------------------------------------------------------------------------- the inventory's FitIndex


def test_an_index_of_other_nodes_is_not_used() -> None:
    inv = onprem(node("a", used=6), node("b", used=4))
    indexed = replace(inv, fits=build_fit_index(inv.nodes))
    assert candidates(req(2), [indexed]) == candidates(req(2), [inv])
    stale = replace(indexed, nodes=(node("c"),))  # replace() keeps the index of the old nodes
    assert stale.fits is indexed.fits
    assert candidates(req(2), [stale])[0].nodes == ("c",)
    assert availability([stale])["onprem"] == (ProductAvailability(A100, 8, 8, largest_free=8),)


def test_the_inventorys_own_index_is_read_not_rebuilt() -> None:
    """An index whose ``nodes`` are the inventory's is trusted as is (the service keeps it up to date,
    and rebuilding it per placement is what it saves). Here it still counts node a as it was."""
    inv = onprem(node("a", used=6))
    earlier = build_fit_index((node("a", used=2),))
    handed = replace(inv, fits=FitIndex(inv.nodes, earlier.pools))
    assert [c.reason for c in candidates(req(1), [handed])] == [
        "a on onprem has 6 free NVIDIA-A100-SXM4-80GB (best fit)"
    ]
    assert [c.reason for c in candidates(req(1), [inv])] == [
        "a on onprem has 2 free NVIDIA-A100-SXM4-80GB (best fit)"
    ]


def _feasible(
    inv: ClusterInventory, pool: str, request: PlacementRequest, held: Sequence[Reservation], spread: bool
) -> list[str]:
    """What placement must list for a pool, worked out node by node: every usable node that fits once
    its reservations are deducted, by preference then name."""
    taken: dict[str, tuple[int, float, int]] = {}
    for r in held:
        if r.cluster == inv.cluster and r.node is not None:
            g, c, m = taken.get(r.node, (0, 0.0, 0))
            taken[r.node] = (g + r.gpus, c + r.cpu, m + r.memory)
    sign = -1.0 if spread else 1.0
    ranked = []
    for n in inv.nodes:
        if n.pool != pool or not n.usable:
            continue
        if request.gpus and (n.gpus_allocatable == 0 or request.gpu_product not in (None, n.gpu_product)):
            continue
        g, c, m = taken.get(n.name, (0, 0.0, 0))
        fg = n.gpus_allocatable - n.gpus_requested - g
        fc = n.cpu_allocatable - n.cpu_requested - c
        fm = n.memory_allocatable - n.memory_requested - m
        if fg >= request.gpus and fc >= request.cpu - 1e-9 and fm >= request.memory:
            has = n.gpus_allocatable > 0
            pref = gpu_preference(fg, fc, sign) if request.gpus else cpu_preference(fg, fc, has, sign)
            ranked.append((pref, n.name))
    return [name for _, name in sorted(ranked)]


def _random_cluster(rng: random.Random, cluster: str, role: Role, incremental: bool) -> ClusterInventory:
    nodes = []
    for i in range(rng.randint(0, 60)):  # some pools with more than MAX_NAMED_NODES that fit
        gpus = rng.choice([0, 0, 1, 4, 8])
        nodes.append(
            node(
                f"{cluster}-{i}",
                rng.choice(["p0", "p1", "stray"]),
                product=rng.choice([A100, L40S]),
                gpus=gpus,
                used=rng.randint(0, gpus),
                cpu=rng.choice([8.0, 64.0]),
                cpu_used=rng.choice([0.0, 2.0, 7.5, 8.0, 30.0]),
                mem=rng.choice([64, 512]) * GiB,
                mem_used=rng.choice([0, 32, 60]) * GiB,
                ready=rng.random() > 0.1,
                schedulable=rng.random() > 0.1,
            )
        )
    inv = ClusterInventory(cluster, role, (Pool("p0"), Pool("p1")), tuple(nodes), True)
    if not incremental:
        return inv
    builder = FitIndexBuilder(replace(n, gpus_requested=0) for n in nodes)  # then every node changes
    for n in rng.sample(nodes, len(nodes)):
        builder.put(n)
    return replace(inv, fits=builder.index(inv.nodes))


@pytest.mark.parametrize("policy", ["best-fit", "spread"])
@pytest.mark.parametrize("incremental", [False, True])
def test_listed_nodes_match_a_node_by_node_check(policy: str, incremental: bool) -> None:
    """Random clusters and reservations: each pool with a node that fits is a candidate listing
    exactly the nodes that fit, best first, whether placement builds the index or is handed one."""
    rng = random.Random(f"{policy} {incremental}")
    for _ in range(150):
        inventories = [
            _random_cluster(rng, "onprem", Role.ONPREM, incremental),
            _random_cluster(rng, "eks", Role.CLOUD, incremental),
        ]
        everything = [(inv.cluster, n) for inv in inventories for n in inv.nodes]
        held = [
            Reservation(f"r{i}", c, n.name, n.pool, rng.choice([0, 1, 4]), rng.choice([0.0, 4.0]), 0, 10.0)
            for i, (c, n) in enumerate(rng.sample(everything, min(len(everything), rng.randint(0, 8))))
        ]
        gpus = rng.choice([0, 0, 1, 2, 8])
        request = req(gpus, rng.choice([A100, L40S, None]), cpu=rng.choice([0.0, 1.0, 8.0]), memory=8 * GiB)
        result = place(request, inventories, {}, held, policy=policy)
        got = {(c.cluster, c.pool): c for c in result} if isinstance(result, list) else {}
        for inv in inventories:
            for pool in ("p0", "p1"):
                expected = _feasible(inv, pool, request, held, policy == "spread")
                found = got.get((inv.cluster, pool))
                named = tuple(expected[:MAX_NAMED_NODES])
                assert (found.nodes if found else ()) == named, (inv.cluster, pool, request)
                if found:
                    assert found.preferred_node == expected[0]


# --------------------------------------------------------------------------- availability


@pytest.mark.parametrize(
    ("inventories", "reservations", "expected"),
    [
        ([], (), {}),
        ([onprem(cpu_node("c1"))], (), {"onprem": ()}),
        (
            [ONPREM_A100],
            (),
            {
                "onprem": (
                    ProductAvailability(A100, 16, 6, largest_free=4),
                    ProductAvailability(L40S, 8, 0, largest_free=0),
                )
            },
        ),
        # reservations deducted; not Ready, cordoned and undeclared-pool nodes left out
        (
            [
                onprem(
                    node("a", used=2),
                    node("nr", ready=False),
                    node("cord", schedulable=False),
                    node("stray", "system"),
                    node("x", product=None, gpus=4),
                )
            ],
            (Reservation("r", "onprem", "a", "gpu", 4, 0.0, 0, 1.0),),
            {
                "onprem": (
                    ProductAvailability(A100, 8, 2, largest_free=2),
                    ProductAvailability("unknown", 4, 4, largest_free=4),
                )
            },
        ),
        # a product only on nodes that are not Ready: listed, none usable
        ([onprem(node("nr", ready=False))], (), {"onprem": (ProductAvailability(A100, 0, 0),)}),
        # elastic pools: the new node they can still add; none at the maximum
        (
            [eks(node("ip-1", "gpu-a100", used=8), node("ip-2", "gpu-a100", used=8))],
            (),
            {"eks": (ProductAvailability(A100, 16, 0), ProductAvailability(L40S, 0, 0, new_node_gpus=8))},
        ),
        (
            [eks(node("ip-1", "gpu-a100", used=8))],
            (Reservation("r", "eks", None, "gpu-l40s", 1, 0.0, 0, 1.0),),
            {
                "eks": (
                    ProductAvailability(A100, 8, 0, new_node_gpus=8),
                    ProductAvailability(L40S, 0, 0, new_node_gpus=8),
                )
            },
        ),
        (
            [eks(pools=(elastic("gpu-l40s", L40S, 8, 1),))],
            (Reservation("r", "eks", None, "gpu-l40s", 1, 0.0, 0, 1.0),),
            {"eks": (ProductAvailability(L40S, 0, 0),)},
        ),
        (
            [eks(pools=(elastic("one", L40S, 1, 3),))],
            (),
            {"eks": (ProductAvailability(L40S, 0, 0, new_node_gpus=1),)},
        ),
        # a new node's GPUs are the elastic pool's, not those of the biggest node of the product
        (
            [onprem(node("a"), pools=(Pool("gpu"), elastic("burst", A100, 4, 3)))],
            (),
            {"onprem": (ProductAvailability(A100, 8, 8, largest_free=8, new_node_gpus=4),)},
        ),
        # pools of one product add up; the most free on one node is the most of any pool
        (
            [onprem(node("a"), node("b", "more", used=6), pools=(Pool("gpu"), Pool("more")))],
            (),
            {"onprem": (ProductAvailability(A100, 16, 10, largest_free=8),)},
        ),
        # reservations: on a node with one GPU ...
        (
            [onprem(node("a", gpus=1), node("b", gpus=1))],
            (Reservation("r", "onprem", "a", "gpu", 1, 0.0, 0, 1.0),),
            {"onprem": (ProductAvailability(A100, 2, 1, largest_free=1),)},
        ),
        # ... on nodes of two products, in any order
        (
            [onprem(node("l", product=L40S, used=4), node("a", used=4))],
            (
                Reservation("r1", "onprem", "l", "gpu", 1, 0.0, 0, 1.0),
                Reservation("r2", "onprem", "a", "gpu", 2, 0.0, 0, 1.0),
            ),
            {
                "onprem": (
                    ProductAvailability(A100, 8, 2, largest_free=2),
                    ProductAvailability(L40S, 8, 3, largest_free=3),
                )
            },
        ),
        # ... on a node with nothing free (the pod landed): nothing more to deduct
        (
            [onprem(node("a", used=8), node("b", used=4))],
            (Reservation("r", "onprem", "a", "gpu", 1, 0.0, 0, 1.0),),
            {"onprem": (ProductAvailability(A100, 16, 4, largest_free=4),)},
        ),
        # ... on one of two nodes with as much free: the other one is the most free
        (
            [onprem(node("a", used=4), node("b", used=4))],
            (Reservation("r1", "onprem", "a", "gpu", 4, 0.0, 0, 1.0),),
            {"onprem": (ProductAvailability(A100, 16, 4, largest_free=4),)},
        ),
        # ... on both: none is
        (
            [onprem(node("a", used=4), node("b", used=4))],
            (
                Reservation("r1", "onprem", "a", "gpu", 4, 0.0, 0, 1.0),
                Reservation("r2", "onprem", "b", "gpu", 4, 0.0, 0, 1.0),
            ),
            {"onprem": (ProductAvailability(A100, 16, 0, largest_free=0),)},
        ),
    ],
)
def test_availability(
    inventories: list[ClusterInventory],
    reservations: tuple[Reservation, ...],
    expected: dict[str, tuple[ProductAvailability, ...]],
) -> None:
    assert availability(inventories, reservations) == expected


def test_availability_ignores_expired_reservations() -> None:
    held = (Reservation("r", "onprem", "a", "gpu", 8, 0.0, 0, 5.0),)
    inv = onprem(node("a"))
    assert availability([inv], held, now=4.0)["onprem"][0].free == 0
    assert availability([inv], held, now=5.0)["onprem"][0].free == 8


# --------------------------------------------------------------------------- the benchmark script


def test_benchmark_script_runs() -> None:
    script = Path(__file__).resolve().parents[3] / "bench" / "placement.py"
    result = subprocess.run(
        [sys.executable, str(script), "--nodes", "60", "--calls", "200"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=script.parent.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "place() p50" in result.stdout, result.stdout
