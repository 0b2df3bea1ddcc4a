"""Tests for spawner.service.runs.admission: gang fits, wait estimates, the cluster of a run, admission."""

from __future__ import annotations

import pytest

from spawner.core.model import (
    ClusterHealth,
    ClusterInventory,
    Health,
    NodeCapacity,
    Pool,
    Reservation,
    Role,
)
from spawner.service.runs.admission import (
    Choice,
    Decision,
    Estimate,
    GangFit,
    Holds,
    PodPlace,
    QueuedRun,
    RunningGpus,
    Start,
    Wait,
    admit,
    choose_cluster,
    estimate_wait,
    expected_wait,
    gang_fit,
    gang_reservations,
    live_holds,
    pack_new_nodes,
)
from spawner.service.runs.podspec import PodGpus
from spawner.service.runs.policy import Gang

NOW = 10_000.0
A100 = "A100"
H100 = "H100"
NEW = "a new node is added, which takes a few minutes"

# --------------------------------------------------------------------------- factories


def node(
    name: str,
    gpus: int = 8,
    used: int = 0,
    *,
    product: str | None = A100,
    pool: str = "gpu",
    ready: bool = True,
    schedulable: bool = True,
) -> NodeCapacity:
    return NodeCapacity(name, pool, ready, schedulable, product, None, gpus, used, 64.0, 0.0, 2**40, 0)


def elastic(name: str = "p4d", max_nodes: int = 2, gpus: int = 8, product: str | None = A100) -> Pool:
    return Pool(name, elastic=True, gpus_per_node=gpus, gpu_product=product, max_nodes=max_nodes)


def onprem(*nodes: NodeCapacity, name: str = "onprem", synced: bool = True) -> ClusterInventory:
    return ClusterInventory(name, Role.ONPREM, (Pool("gpu"),), nodes, synced)


def cloud(
    *nodes: NodeCapacity, pools: tuple[Pool, ...] = (elastic(),), name: str = "eks"
) -> ClusterInventory:
    return ClusterInventory(name, Role.CLOUD, pools, nodes, True)


def gang(*sizes: int, product: str | None = None) -> Gang:
    return Gang(tuple(PodGpus(g, product) for g in sizes))


def held(
    node_name: str | None, gpus: int, *, cluster: str = "onprem", pool: str = "gpu", expires: float = NOW + 60
) -> Reservation:
    return Reservation(f"r-{node_name}-{gpus}", cluster, node_name, pool, gpus, 0.0, 0, expires)


def run(
    key: str,
    g: Gang,
    cluster: str = "auto",
    *,
    max_wait: float = 1800.0,
    submitted: float = NOW,
) -> QueuedRun:
    return QueuedRun(key, "alice", g, cluster, max_wait, submitted)


def on(*nodes: str, pool: str = "gpu", gpus: int = 4) -> tuple[PodPlace, ...]:
    return tuple(PodPlace(pool, n, gpus) for n in nodes)


def down(cluster: str, reason: str = "") -> dict[str, ClusterHealth]:
    return {cluster: ClusterHealth(cluster, Health.DOWN, reason)}


def degraded(cluster: str) -> dict[str, ClusterHealth]:
    return {cluster: ClusterHealth(cluster, Health.DEGRADED)}


# --------------------------------------------------------------------------- reservations


@pytest.mark.parametrize(
    ("reservations", "expected"),
    [
        pytest.param([], Holds({}, {}), id="none"),
        pytest.param(
            [held("a", 2), held("a", 3), held(None, 4, pool="p4d")],
            Holds({"a": 5}, {"p4d": (4,)}),
            id="per-node-summed-and-future",
        ),
        pytest.param([held("a", 2, expires=NOW)], Holds({}, {}), id="expired-at-now"),
        pytest.param([held("a", 2, cluster="eks")], Holds({}, {}), id="other-cluster"),
    ],
)
def test_live_holds(reservations: list[Reservation], expected: Holds) -> None:
    assert live_holds(reservations, "onprem", NOW) == expected


@pytest.mark.parametrize(
    ("per_node", "gpus", "rooms"),
    [
        (8, [], ()),
        (8, [4, 4], (0,)),
        (8, [2, 6, 4], (0, 4)),  # 6 then 2 share a node; 4 starts another
        (8, [8, 1], (0, 7)),
        (8, [12], (0,)),  # bigger than a node: still one node, never a negative room
        (0, [1, 1], (0, 0)),  # no GPUs per node: one node each
    ],
)
def test_pack_new_nodes(per_node: int, gpus: list[int], rooms: tuple[int, ...]) -> None:
    assert pack_new_nodes(per_node, gpus) == rooms


def test_gang_reservations_one_per_pod_in_gang_order() -> None:
    fit = GangFit("eks", (PodPlace("gpu", "a", 4), PodPlace("p4d", None, 8)), 1)
    assert gang_reservations(fit, "alice/train", 99.0) == (
        Reservation("alice/train/0", "eks", "a", "gpu", 4, 0.0, 0, 99.0),
        Reservation("alice/train/1", "eks", None, "p4d", 8, 0.0, 0, 99.0),
    )


# --------------------------------------------------------------------------- gang_fit

FIT_CASES = [
    # (id, gang, inventory, reservations, pods or None, new nodes)
    ("best-fit-fewest-free", gang(4), onprem(node("a"), node("b", used=4)), [], on("b"), 0),
    ("two-pods-one-node", gang(4, 4), onprem(node("a"), node("b", used=6)), [], on("a", "a"), 0),
    ("two-pods-best-fit-each", gang(4, 4), onprem(node("a"), node("b", used=2)), [], on("b", "a"), 0),
    ("gang-does-not-fit", gang(4, 4), onprem(node("a", used=4), node("b", used=6)), [], None, 0),
    # Smallest first, best fit would put a 2 on b and have no room left for the 3.
    (
        "largest-first",
        gang(2, 2, 3),
        onprem(node("a", 4, 0), node("b", 3, 0)),
        [],
        (PodPlace("gpu", "a", 2), PodPlace("gpu", "a", 2), PodPlace("gpu", "b", 3)),
        0,
    ),
    ("zero-gpu-pods-not-placed", gang(0, 4, 0), onprem(node("a")), [], on("a"), 0),
    ("cpu-only-gang", gang(0, 0), onprem(node("a", used=8)), [], (), 0),
    ("not-ready", gang(4), onprem(node("a", ready=False)), [], None, 0),
    ("cordoned", gang(4), onprem(node("a", schedulable=False), node("b", used=4)), [], on("b"), 0),
    ("product-mismatch", gang(4, product=H100), onprem(node("a")), [], None, 0),
    ("product-none-takes-any", gang(4), onprem(node("a", product=H100)), [], on("a"), 0),
    (
        "product-picks-its-node",
        gang(2, product=H100),
        onprem(node("a", 2), node("h", product=H100)),
        [],
        (PodPlace("gpu", "h", 2),),
        0,
    ),
    # A pod that names no product takes the best fit over all products.
    (
        "best-fit-across-products",
        gang(2),
        onprem(node("a"), node("h", used=6, product=H100), node("v", used=4, product="V100")),
        [],
        (PodPlace("gpu", "h", 2),),
        0,
    ),
    ("node-without-product-label", gang(4, product=A100), onprem(node("a", product=None)), [], None, 0),
    ("reservation-counted", gang(4), onprem(node("a")), [held("a", 6)], None, 0),
    ("reservation-moves-best-fit", gang(4), onprem(node("a", used=2), node("b")), [held("a", 4)], on("b"), 0),
    ("reservation-expired", gang(4), onprem(node("a")), [held("a", 6, expires=NOW)], on("a"), 0),
    ("reservation-other-cluster", gang(4), onprem(node("a")), [held("a", 6, cluster="eks")], on("a"), 0),
    ("unsynced", gang(4), onprem(node("a"), synced=False), [], None, 0),
    # Elastic pools: existing nodes first, then new nodes within max_nodes.
    ("elastic-existing-node-first", gang(4), cloud(node("e1", pool="p4d")), [], on("e1", pool="p4d"), 0),
    ("elastic-new-node", gang(8), cloud(), [], (PodPlace("p4d", None, 8),), 1),
    ("elastic-pods-share-a-new-node", gang(4, 4), cloud(), [], (PodPlace("p4d", None, 4),) * 2, 1),
    ("elastic-two-new-nodes", gang(8, 8), cloud(), [], (PodPlace("p4d", None, 8),) * 2, 2),
    ("elastic-at-max", gang(8, 8), cloud(node("e1", used=8, pool="p4d")), [], None, 0),
    ("elastic-pod-bigger-than-a-node", gang(16), cloud(), [], None, 0),
    ("elastic-product-mismatch", gang(8, product=H100), cloud(), [], None, 0),
    (
        "elastic-future-reservation-takes-a-node",
        gang(8, 8),
        cloud(),
        [held(None, 8, cluster="eks", pool="p4d")],
        None,
        0,
    ),
    (
        "elastic-shares-a-node-on-its-way",
        gang(4),
        cloud(pools=(elastic(max_nodes=1),)),
        [held(None, 4, cluster="eks", pool="p4d")],
        (PodPlace("p4d", None, 4),),
        0,
    ),
    (
        "elastic-smallest-node-that-fits",
        gang(4),
        cloud(pools=(elastic("big", gpus=8), elastic("small", gpus=4))),
        [],
        (PodPlace("small", None, 4),),
        1,
    ),
    (
        "existing-node-and-new-node",
        gang(8, 4),
        cloud(node("e1", used=4, pool="p4d")),
        [],
        (PodPlace("p4d", None, 8), PodPlace("p4d", "e1", 4)),
        1,
    ),
]


@pytest.mark.parametrize(
    ("g", "inv", "reservations", "pods", "new_nodes"),
    [pytest.param(*row[1:], id=row[0]) for row in FIT_CASES],
)
def test_gang_fit(
    g: Gang,
    inv: ClusterInventory,
    reservations: list[Reservation],
    pods: tuple[PodPlace, ...] | None,
    new_nodes: int,
) -> None:
    fit = gang_fit(g, inv, reservations, NOW)
    if pods is None:
        assert fit is None
    else:
        assert fit == GangFit(inv.cluster, pods, new_nodes)


# --------------------------------------------------------------------------- the expected wait

FULL = onprem(node("a", used=8))  # 8 A100, all in use
# Two pods of 4 GPUs on node a: one frees in 10 min, the other in 20 (of a typical 30 min run).
AGES = (RunningGpus("a", 4, 1200.0), RunningGpus("a", 4, 600.0))


@pytest.mark.parametrize(
    ("g", "inv", "reservations", "ahead", "running", "typical", "seconds"),
    [
        pytest.param(gang(4), onprem(node("a")), [], [], (), 1800.0, 0.0, id="fits-now"),
        # No ages known: every busy GPU frees one typical run from now.
        pytest.param(gang(4), FULL, [], [], (), 1800.0, 1800.0, id="full-no-ages"),
        pytest.param(gang(4), FULL, [], [], (), 600.0, 600.0, id="typical-run-seconds"),
        pytest.param(gang(4), FULL, [], [], AGES, 1800.0, 600.0, id="oldest-pods-free-first"),
        pytest.param(gang(8), FULL, [], [], AGES, 1800.0, 1200.0, id="whole-node-waits-for-both"),
        pytest.param(gang(4), FULL, [], [gang(4)], AGES, 1800.0, 1200.0, id="queued-ahead-first"),
        # 12 GPUs ahead: the 8 GPUs free once (at 10 and 20 min), then the first 4 again 30 min later.
        pytest.param(gang(4), FULL, [], [gang(8), gang(4)], AGES, 1800.0, 3000.0, id="ahead-takes-a-round"),
        pytest.param(
            gang(4, product=A100),
            FULL,
            [],
            [gang(8, product=H100)],
            (),
            1800.0,
            1800.0,
            id="ahead-other-product",
        ),
        pytest.param(gang(4, product=A100), FULL, [], [gang(8)], (), 1800.0, 3600.0, id="ahead-any-product"),
        pytest.param(
            gang(8),
            onprem(node("a", used=4)),
            [],
            [],
            (RunningGpus("a", 4, 300.0),),
            1800.0,
            1500.0,
            id="free-now",
        ),
        # 4 GPUs are free, but on two nodes: it waits until one more frees.
        pytest.param(
            gang(4), onprem(node("a", used=6), node("b", used=6)), [], [], (), 1800.0, 1800.0, id="fragmented"
        ),
        pytest.param(
            gang(4), onprem(node("a")), [held("a", 8)], [], (), 1800.0, 1800.0, id="reserved-is-busy"
        ),
        pytest.param(
            gang(4, product=A100),
            onprem(node("a", used=8), node("h", used=8, product=H100)),
            [],
            [],
            (RunningGpus("h", 8, 1700.0),),
            1800.0,
            1800.0,
            id="other-products-pods-ignored",
        ),
        pytest.param(
            gang(8), cloud(node("e1", used=8, pool="p4d")), [], [], (), 1800.0, 0.0, id="elastic-grows"
        ),
        pytest.param(
            gang(8),
            cloud(node("e1", used=8, pool="p4d"), pools=(elastic(max_nodes=1),)),
            [],
            [],
            (),
            1800.0,
            1800.0,
            id="elastic-at-max",
        ),
        pytest.param(gang(16), FULL, [], [], (), 1800.0, None, id="never-more-than-in-all"),
        pytest.param(gang(4, product=H100), FULL, [], [], (), 1800.0, None, id="never-no-such-product"),
        pytest.param(
            gang(4), onprem(node("a", used=8), synced=False), [], [], (), 1800.0, None, id="unsynced"
        ),
    ],
)
def test_expected_wait(
    g: Gang,
    inv: ClusterInventory,
    reservations: list[Reservation],
    ahead: list[Gang],
    running: tuple[RunningGpus, ...],
    typical: float,
    seconds: float | None,
) -> None:
    found = expected_wait(
        g, inv, reservations, NOW, ahead=ahead, running=running, typical_run_seconds=typical
    )
    assert found == seconds


@pytest.mark.parametrize(
    ("g", "inv", "ahead", "expected"),
    [
        pytest.param(
            gang(4, product=A100),
            onprem(node("a", used=6)),
            [gang(6)],
            Estimate("onprem", 1800.0, A100, 4, 6, 2, 8),
            id="counts",
        ),
        pytest.param(
            gang(8),
            cloud(node("e1", used=4, pool="p4d")),
            [],
            Estimate("eks", 0.0, None, 8, 0, 12, 16),
            id="elastic",
        ),
        pytest.param(
            gang(16),
            FULL,
            [],
            Estimate(
                "onprem", None, None, 16, 0, 0, 8, "onprem has 8 GPUs in all and your run needs 16 at once"
            ),
            id="never-total",
        ),
        pytest.param(
            gang(16),
            onprem(node("a"), node("b")),
            [],
            Estimate(
                "onprem",
                None,
                None,
                16,
                0,
                16,
                16,
                "no node of onprem has more than 8 GPUs and your run has a pod of 16 (a pod's"
                " GPUs are on one node)",
            ),
            id="never-pod-bigger-than-a-node",
        ),
        pytest.param(
            gang(4, product=H100),
            FULL,
            [],
            Estimate("onprem", None, H100, 4, 0, 0, 0, "onprem has no H100"),
            id="never-no-product",
        ),
        pytest.param(
            gang(4, 4, 4),
            onprem(node("a"), node("b", 2), node("c", 2)),
            [],
            Estimate(
                "onprem",
                None,
                None,
                12,
                0,
                12,
                12,
                "the pods of your run do not fit on the nodes of onprem even when all are free",
            ),
            id="never-shape",
        ),
        # A node not Ready counts in all, not as free: it may come back.
        pytest.param(
            gang(8),
            onprem(node("a", ready=False)),
            [],
            Estimate("onprem", 1800.0, None, 8, 0, 0, 8),
            id="not-ready",
        ),
    ],
)
def test_estimate_counts_and_reasons(
    g: Gang, inv: ClusterInventory, ahead: list[Gang], expected: Estimate
) -> None:
    assert estimate_wait(g, inv, [], NOW, ahead=ahead) == expected


@pytest.mark.parametrize(
    ("estimate", "summary"),
    [
        (Estimate("onprem", 60.0, A100, 4, 0, 2, 8), "onprem has 2 of 8 A100 free; your run needs 4"),
        (
            Estimate("onprem", 60.0, None, 4, 6, 2, 8),
            "onprem has 2 of 8 GPUs free; your run needs 4, with 6 more queued ahead of it",
        ),
        (Estimate("onprem", None, H100, 4, 0, 0, 0, "onprem has no H100"), "onprem has no H100"),
    ],
)
def test_estimate_summary(estimate: Estimate, summary: str) -> None:
    assert estimate.summary == summary


# --------------------------------------------------------------------------- choose_cluster

G8 = gang(4, 4, product=A100)
FREE = onprem(node("a"))
EKS = cloud()
EKS_FULL = cloud(node("e1", used=8, pool="p4d"), pools=(elastic(max_nodes=1),))
NO_GROWTH = cloud(pools=(elastic(max_nodes=0),))
ON_EKS = f"starting on eks (2 pods on 1 new node of pool p4d; {NEW})"
BUSY = "onprem has 0 of 8 A100 free; your run needs 8"

CHOICES = [
    # (id, run, inventories, health, queued ahead, running, choice)
    (
        "onprem-fits",
        run("r", G8),
        [FREE, EKS],
        {},
        {},
        {},
        Choice(
            "onprem",
            True,
            0.0,
            "onprem has 8 of 8 A100 free; your run needs 8: starting on onprem (pods on a)",
        ),
    ),
    (
        "onprem-wait-under-max-wait",
        run("r", G8, max_wait=3600),
        [FULL, EKS],
        {},
        {},
        {},
        Choice("onprem", False, 1800.0, f"{BUSY}: waiting about 30 min (under your max_wait of 1 h)"),
    ),
    (
        # the estimate is past max_wait, but the run waits as long as the user said it may
        "estimate-over-max-wait-still-waits",
        run("r", G8, max_wait=1800),
        [FULL, EKS],
        {},
        {},
        {},
        Choice(
            "onprem",
            False,
            1800.0,
            f"{BUSY}: waiting there would take about 30 min; your run waits for it up to your max_wait"
            " of 30 min (another 30 min), then goes where it can start",
        ),
    ),
    (
        "onprem-wait-over-max-wait",
        run("r", G8, max_wait=1800, submitted=NOW - 1800),
        [FULL, EKS],
        {},
        {},
        {},
        Choice(
            "eks",
            True,
            0.0,
            f"{BUSY}; waiting there would take about 30 min (with the 30 min you have waited, over your"
            f" max_wait of 30 min): {ON_EKS}",
        ),
    ),
    (
        "time-waited-counts-under",
        run("r", G8, max_wait=3600, submitted=NOW - 1200),
        [FULL, EKS],
        {},
        {},
        {},
        Choice(
            "onprem",
            False,
            1800.0,
            f"{BUSY}: waiting about 30 min (with the 20 min you have waited, under your max_wait of 1 h)",
        ),
    ),
    (
        "time-waited-short-of-max-wait",
        run("r", G8, max_wait=3600, submitted=NOW - 2400),
        [FULL, EKS],
        {},
        {},
        {},
        Choice(
            "onprem",
            False,
            1800.0,
            f"{BUSY}: waiting there would take about 30 min; your run waits for it up to your max_wait"
            " of 1 h (another 20 min), then goes where it can start",
        ),
    ),
    (
        "time-waited-counts-over",
        run("r", G8, max_wait=3600, submitted=NOW - 3600),
        [FULL, EKS],
        {},
        {},
        {},
        Choice(
            "eks",
            True,
            0.0,
            f"{BUSY}; waiting there would take about 30 min (with the 1 h you have waited, over"
            " your max_wait"
            f" of 1 h): {ON_EKS}",
        ),
    ),
    (
        "queued-ahead-lengthens-the-wait",
        run("r", G8, max_wait=3600, submitted=NOW - 3600),
        [FULL, EKS],
        {},
        {"onprem": [gang(8)]},
        {},
        Choice(
            "eks",
            True,
            0.0,
            f"{BUSY}, with 8 more queued ahead of it; waiting there would take about 1 h (with the 1 h you"
            f" have waited, over your max_wait of 1 h): {ON_EKS}",
        ),
    ),
    (
        "onprem-down",
        run("r", G8),
        [FREE, EKS],
        down("onprem", "api unreachable"),
        {},
        {},
        Choice("eks", True, 0.0, f"onprem is down (api unreachable): {ON_EKS}"),
    ),
    (
        "onprem-unsynced",
        run("r", G8),
        [onprem(node("a"), synced=False), EKS],
        {},
        {},
        {},
        Choice("eks", True, 0.0, f"onprem is not synced yet: {ON_EKS}"),
    ),
    (
        "onprem-degraded-prefers-cloud",
        run("r", G8),
        [FREE, EKS],
        degraded("onprem"),
        {},
        {},
        Choice("eks", True, 0.0, f"onprem is degraded: {ON_EKS}"),
    ),
    (
        "degraded-onprem-when-cloud-cannot",
        run("r", G8),
        [FREE, NO_GROWTH],
        degraded("onprem"),
        {},
        {},
        Choice("onprem", True, 0.0, "onprem is degraded; eks has no A100: starting on onprem (pods on a)"),
    ),
    (
        "no-onprem-cluster",
        run("r", G8),
        [EKS],
        {},
        {},
        {},
        Choice("eks", True, 0.0, f"there is no on-prem cluster: {ON_EKS}"),
    ),
    (
        "waits-where-shortest",
        run("r", G8, max_wait=60, submitted=NOW - 60),
        [FULL, EKS_FULL],
        {},
        {},
        {"eks": [RunningGpus("e1", 8, 1500.0)]},
        Choice(
            "eks",
            False,
            300.0,
            f"{BUSY}; waiting there would take about 30 min (with the 1 min you have waited, over your"
            " max_wait of 1 min); eks has"
            " 0 of 8 A100"
            " free; your run needs 8: waiting on eks, about 5 min",
        ),
    ),
    (
        "cloud-down-waits-onprem",
        run("r", G8, max_wait=60, submitted=NOW - 60),
        [FULL, EKS],
        down("eks"),
        {},
        {},
        Choice(
            "onprem",
            False,
            1800.0,
            f"{BUSY}; waiting there would take about 30 min (with the 1 min you have waited, over your"
            " max_wait of 1 min): waiting on onprem,"
            " about 30 min",
        ),
    ),
    (
        "never-anywhere",
        run("r", gang(16, product=A100)),
        [FULL, EKS],
        {},
        {},
        {},
        Choice(
            None,
            False,
            None,
            "no cluster can take your run: onprem has 8 A100 in all and your run needs 16 at"
            " once; no node of eks"
            " has more than 8 A100 and your run has a pod of 16 (a pod's GPUs are on one node)",
        ),
    ),
    (
        "all-down",
        run("r", G8),
        [FREE, EKS],
        {**down("onprem"), **down("eks")},
        {},
        {},
        Choice(None, False, None, "no cluster can take your run: onprem is down; eks is down"),
    ),
    # Pinned runs: their cluster only, whatever its state or the run's max_wait.
    (
        "pinned-cloud-while-onprem-free",
        run("r", G8, "eks"),
        [FREE, EKS],
        {},
        {},
        {},
        Choice("eks", True, 0.0, f"eks has 16 of 16 A100 free; your run needs 8: {ON_EKS}"),
    ),
    (
        "pinned-full-ignores-max-wait",
        run("r", G8, "onprem", max_wait=60),
        [FULL, EKS],
        {},
        {},
        {},
        Choice("onprem", False, 1800.0, f"{BUSY}: waiting about 30 min"),
    ),
    (
        "pinned-down",
        run("r", G8, "onprem"),
        [FREE, EKS],
        down("onprem"),
        {},
        {},
        Choice("onprem", False, None, "onprem is down: your run waits there, on the cluster you chose"),
    ),
    (
        "pinned-degraded-still-starts",
        run("r", G8, "onprem"),
        [FREE, EKS],
        degraded("onprem"),
        {},
        {},
        Choice(
            "onprem",
            True,
            0.0,
            "onprem has 8 of 8 A100 free; your run needs 8: starting on onprem (pods on a)",
        ),
    ),
    (
        "pinned-never",
        run("r", gang(16, product=A100), "onprem"),
        [FULL, EKS],
        {},
        {},
        {},
        Choice(
            "onprem",
            False,
            None,
            "your run can never start on onprem: onprem has 8 A100 in all and your run needs 16 at once",
        ),
    ),
    (
        "pinned-unknown",
        run("r", G8, "gke"),
        [FREE, EKS],
        {},
        {},
        {},
        Choice("gke", False, None, "there is no cluster named 'gke'"),
    ),
]


@pytest.mark.parametrize(
    ("r", "inventories", "health", "ahead", "running", "choice"),
    [pytest.param(*row[1:], id=row[0]) for row in CHOICES],
)
def test_choose_cluster(
    r: QueuedRun,
    inventories: list[ClusterInventory],
    health: dict[str, ClusterHealth],
    ahead: dict[str, list[Gang]],
    running: dict[str, list[RunningGpus]],
    choice: Choice,
) -> None:
    found = choose_cluster(r, inventories, health, [], NOW, queued_ahead=ahead, running=running)
    assert found == choice


SPENT = "you have used 40.0 of your 40 cloud GPU-hours this month, until 2027-01-01 00:00 UTC"
CLOSED = [
    # (id, run, inventories, health, choice) with the user's cloud budget spent
    (
        # past max_wait, where it goes to eks without the budget ("onprem-wait-over-max-wait" above), it
        # waits for on-prem and says why
        "past-max-wait-waits-for-onprem",
        run("r", G8, max_wait=1800, submitted=NOW - 3600),
        [FULL, EKS],
        {},
        Choice("onprem", False, 1800.0, f"{BUSY}: waiting about 30 min for on-prem, not the cloud: {SPENT}"),
    ),
    (
        "onprem-fits-starts-there",
        run("r", G8),
        [FREE, EKS],
        {},
        Choice(
            "onprem",
            True,
            0.0,
            "onprem has 8 of 8 A100 free; your run needs 8: starting on onprem (pods on a)",
        ),
    ),
    (
        "onprem-down-no-cluster",
        run("r", G8),
        [FREE, EKS],
        down("onprem", "api unreachable"),
        Choice(
            None,
            False,
            None,
            f"no cluster can take your run: onprem is down (api unreachable); not the cloud: {SPENT}",
        ),
    ),
    (
        "pinned-to-the-cloud-waits-there",
        run("r", G8, "eks"),
        [FREE, EKS],
        {},
        Choice("eks", False, None, f"{SPENT}: your run waits on eks"),
    ),
    (
        "pinned-to-onprem-as-ever",
        run("r", G8, "onprem"),
        [FREE, EKS],
        {},
        Choice(
            "onprem",
            True,
            0.0,
            "onprem has 8 of 8 A100 free; your run needs 8: starting on onprem (pods on a)",
        ),
    ),
]


@pytest.mark.parametrize(
    ("r", "inventories", "health", "choice"), [pytest.param(*row[1:], id=row[0]) for row in CLOSED]
)
def test_choose_cluster_with_the_cloud_budget_spent(
    r: QueuedRun, inventories: list[ClusterInventory], health: dict[str, ClusterHealth], choice: Choice
) -> None:
    assert choose_cluster(r, inventories, health, [], NOW, cloud_closed=SPENT) == choice


def test_choose_cluster_counts_reservations() -> None:
    # The on-prem node is held for another run, so this one goes to the cloud.
    found = choose_cluster(run("r", G8, max_wait=0), [FREE, EKS], {}, [held("a", 8)], NOW)
    assert (found.cluster, found.start_now) == ("eks", True)


# --------------------------------------------------------------------------- admit


def brief(decisions: tuple[Decision, ...]) -> list[tuple[object, ...]]:
    """Each decision without its reason (and without the fit of a start: the gang_fit table covers it)."""
    return [
        ("start", d.key, d.cluster)
        if isinstance(d, Start)
        else ("wait", d.key, d.cluster, d.position, d.expected_wait)
        for d in decisions
    ]


def test_two_gangs_with_room_for_one() -> None:
    """The caller's loop: admit, make the reservations, the pods land, the first run ends."""
    first, second = run("r1", G8, "onprem", submitted=NOW - 20), run("r2", G8, "onprem", submitted=NOW - 10)
    decisions = admit([first, second], [FREE], {}, [], NOW, head_hold=600)
    assert decisions == (
        Start("r1", "onprem", GangFit("onprem", on("a", "a")), "starting on onprem (pods on a)"),
        Wait("r2", "onprem", 1, 1800.0, f"{BUSY}: waiting about 30 min"),
    )
    start = decisions[0]
    assert isinstance(start, Start)
    # r1's reservations are live and its pods not bound yet: r2 still waits.
    reservations = gang_reservations(start.fit, "r1", NOW + 180)
    assert brief(admit([second], [FREE], {}, reservations, NOW + 1, head_hold=600)) == [
        ("wait", "r2", "onprem", 1, 1800.0)
    ]
    # r1's pods count as requested and it left the queue: r2 waits, counted once, not twice.
    assert brief(admit([second], [FULL], {}, [], NOW + 60, head_hold=600)) == [
        ("wait", "r2", "onprem", 1, 1800.0)
    ]
    # r1 ended: r2 starts.
    assert brief(admit([second], [FREE], {}, [], NOW + 2000, head_hold=600)) == [("start", "r2", "onprem")]


def test_two_gangs_started_in_one_call_use_two_nodes() -> None:
    # The first start's reservations are counted for the second in the same call.
    decisions = admit(
        [run("r1", G8, "onprem", submitted=1.0), run("r2", G8, "onprem", submitted=2.0)],
        [onprem(node("a"), node("b"))],
        {},
        [],
        NOW,
        head_hold=600,
    )
    assert [d.fit.pods for d in decisions if isinstance(d, Start)] == [on("a", "a"), on("b", "b")]


TWO_NODES = onprem(node("a"), node("b", used=4))  # 12 free: 8 on a, 4 on b
BIG = gang(8, 8, product=A100)

ADMITS = [
    # (id, queue, inventories, health, reservations, head_hold, decisions in brief)
    (
        "best-effort-fifo",
        [run("big", BIG, "onprem", submitted=NOW - 100), run("small", gang(4), "onprem")],
        [TWO_NODES],
        {},
        [],
        600.0,
        [("wait", "big", "onprem", 1, 1800.0), ("start", "small", "onprem")],
    ),
    (
        "head-hold-guards-the-head",
        [run("big", BIG, "onprem", submitted=NOW - 700), run("small", gang(4), "onprem")],
        [TWO_NODES],
        {},
        [],
        600.0,
        [("wait", "big", "onprem", 1, 1800.0), ("wait", "small", "onprem", 2, 1800.0)],
    ),
    (
        "head-that-never-fits-holds-nothing",
        [run("huge", gang(16), "onprem", submitted=NOW - 7000), run("small", gang(4), "onprem")],
        [TWO_NODES],
        {},
        [],
        600.0,
        [("wait", "huge", "onprem", 1, None), ("start", "small", "onprem")],
    ),
    (
        "submitted-then-key",
        [run("b", G8, "onprem"), run("a", G8, "onprem"), run("z", G8, "onprem", submitted=NOW - 1)],
        [FREE],
        {},
        [],
        600.0,
        [("wait", "b", "onprem", 2, 3600.0), ("wait", "a", "onprem", 1, 1800.0), ("start", "z", "onprem")],
    ),
    (
        "reservations-counted",
        [run("r", gang(4), "onprem")],
        [FREE],
        {},
        [held("a", 6)],
        600.0,
        [("wait", "r", "onprem", 1, 1800.0)],
    ),
    (
        "expired-reservation-not-counted",
        [run("r", gang(4), "onprem")],
        [FREE],
        {},
        [held("a", 6, expires=NOW)],
        600.0,
        [("start", "r", "onprem")],
    ),
    (
        "elastic-growth-one-node-left",
        [run("r1", gang(8), "eks", submitted=1.0), run("r2", gang(8), "eks", submitted=2.0)],
        [cloud(node("e1", used=8, pool="p4d"))],
        {},
        [],
        600.0,
        [("start", "r1", "eks"), ("wait", "r2", "eks", 1, 1800.0)],
    ),
    (
        "down-starts-nothing",
        [run("r1", gang(4), "onprem"), run("r2", gang(4), "onprem", submitted=NOW - 1)],
        [FREE],
        down("onprem"),
        [],
        600.0,
        [("wait", "r1", "onprem", 2, None), ("wait", "r2", "onprem", 1, None)],
    ),
    (
        "degraded-still-starts",
        [run("r", gang(4), "onprem")],
        [FREE],
        degraded("onprem"),
        [],
        600.0,
        [("start", "r", "onprem")],
    ),
    (
        "unsynced-starts-nothing",
        [run("r", gang(4), "onprem")],
        [onprem(node("a"), synced=False)],
        {},
        [],
        600.0,
        [("wait", "r", "onprem", 1, None)],
    ),
    (
        "clusters-apart-answers-in-queue-order",
        [run("e", gang(8), "eks"), run("o", G8, "onprem"), run("o2", G8, "onprem")],
        [FREE, EKS],
        down("gke"),
        [],
        600.0,
        [("start", "e", "eks"), ("start", "o", "onprem"), ("wait", "o2", "onprem", 1, 1800.0)],
    ),
    (
        "unknown-cluster",
        [run("r", gang(4), "gke")],
        [FREE],
        {},
        [],
        600.0,
        [("wait", "r", "gke", 1, None)],
    ),
]


@pytest.mark.parametrize(
    ("queue", "inventories", "health", "reservations", "head_hold", "expected"),
    [pytest.param(*row[1:], id=row[0]) for row in ADMITS],
)
def test_admit(
    queue: list[QueuedRun],
    inventories: list[ClusterInventory],
    health: dict[str, ClusterHealth],
    reservations: list[Reservation],
    head_hold: float,
    expected: list[tuple[object, ...]],
) -> None:
    assert brief(admit(queue, inventories, health, reservations, NOW, head_hold=head_hold)) == expected


@pytest.mark.parametrize(
    ("queue", "inventories", "health", "reasons"),
    [
        pytest.param(
            [run("big", BIG, "onprem", submitted=NOW - 700), run("small", gang(4), "onprem")],
            [TWO_NODES],
            {},
            [
                "onprem has 12 of 16 A100 free; your run needs 16: waiting about 30 min; it has"
                " waited over 10 min,"
                " so no run behind it starts before it",
                "an older run has waited in onprem's queue over 10 min and starts first; yours"
                " fits now and starts"
                " after it",
            ],
            id="head-hold",
        ),
        pytest.param(
            [run("huge", gang(16), "onprem")],
            [TWO_NODES],
            {},
            [
                "your run can never start on onprem: no node of onprem has more than 8 GPUs and"
                " your run has a pod"
                " of 16 (a pod's GPUs are on one node)"
            ],
            id="never",
        ),
        pytest.param(
            [run("r", gang(4), "onprem")],
            [FREE],
            down("onprem", "api unreachable"),
            ["onprem is down (api unreachable): nothing starts there now"],
            id="down",
        ),
        pytest.param(
            [run("r", gang(8), "eks")],
            [EKS],
            {},
            [f"starting on eks (1 pod on 1 new node of pool p4d; {NEW})"],
            id="new-node",
        ),
    ],
)
def test_admit_reasons(
    queue: list[QueuedRun],
    inventories: list[ClusterInventory],
    health: dict[str, ClusterHealth],
    reasons: list[str],
) -> None:
    assert [d.reason for d in admit(queue, inventories, health, [], NOW, head_hold=600.0)] == reasons


@pytest.mark.parametrize(
    ("queue", "message"),
    [
        pytest.param([run("r", G8)], "admit needs the cluster of each run chosen", id="auto"),
        pytest.param(
            [run("r", G8, "onprem"), run("r", G8, "eks")], "each run of the queue once", id="same-key"
        ),
    ],
)
def test_admit_refuses(queue: list[QueuedRun], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        admit(queue, [FREE, EKS], {}, [], NOW, head_hold=600.0)
