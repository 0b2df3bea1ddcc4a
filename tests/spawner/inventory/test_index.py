"""The pure inventory: quantities, pod requests, node state, pools, and the incremental indexes."""

from __future__ import annotations

import random
from decimal import Decimal
from typing import Any

import pytest

from spawner.core.model import Pool, Role
from spawner.core.quantity import QuantityError, milli_value, parse_quantity, value
from spawner.inventory.index import (
    NodeIndex,
    Resources,
    ServerIndex,
    ServerLocation,
    build_nodes,
    node_info,
    node_ready,
    node_schedulable,
    pod_placement,
    pod_requests,
    pool_for,
    server_location,
    tolerates,
)
from spawner.placement.fit_index import build_fit_index

Json = dict[str, Any]

A100 = "NVIDIA-A100-SXM4-80GB"
L40S = "NVIDIA-L40S"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
POOLS = (
    Pool("a100", {"nvidia.com/gpu.product": A100}),
    Pool("l40s", {"nvidia.com/gpu.product": L40S}, tolerations=(GPU_TOLERATION,)),
)


def node(
    name: str,
    product: str | None = A100,
    gpus: int | str = 8,
    cpu: str = "128",
    memory: str = "1000Gi",
    ready: str | None = "True",
    taints: list[Json] | None = None,
    unschedulable: bool = False,
    **labels: str,
) -> Json:
    all_labels = {"kubernetes.io/hostname": name, **labels}
    if product:
        all_labels |= {"nvidia.com/gpu.product": product, "nvidia.com/gpu.memory": "81920"}
    spec: Json = {"taints": taints or []}
    if unschedulable:
        spec["unschedulable"] = True
    conditions = (
        []
        if ready is None
        else [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": ready}]
    )
    return {
        "metadata": {"name": name, "labels": all_labels},
        "spec": spec,
        "status": {
            "allocatable": {"cpu": cpu, "memory": memory, "nvidia.com/gpu": str(gpus), "pods": "110"},
            "conditions": conditions,
        },
    }


def ctr(requests: Json | None = None, limits: Json | None = None, **extra: Any) -> Json:
    resources: Json = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": "c", "image": "x", "resources": resources, **extra}


def pod(
    name: str,
    node_name: str | None = None,
    gpus: int = 0,
    cpu: str = "1",
    memory: str = "1Gi",
    phase: str = "Running",
    namespace: str = "default",
    labels: Json | None = None,
    annotations: Json | None = None,
    ip: str | None = None,
) -> Json:
    requests: Json = {"cpu": cpu, "memory": memory}
    if gpus:
        requests["nvidia.com/gpu"] = str(gpus)
    spec: Json = {"containers": [ctr(requests)]}
    if node_name:
        spec["nodeName"] = node_name
    status: Json = {"phase": phase}
    if ip:
        status["podIP"] = ip
    meta: Json = {"name": name, "namespace": namespace, "labels": labels or {}}
    if annotations:
        meta["annotations"] = annotations
    return {"metadata": meta, "spec": spec, "status": status}


# ---------------------------------------------------------------------------- quantities


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("1", Decimal(1)),
        ("100m", Decimal("0.1")),
        ("1.5", Decimal("1.5")),
        ("250u", Decimal("0.00025")),
        ("5n", Decimal("5e-9")),
        ("1k", Decimal(1000)),
        ("2M", Decimal(2_000_000)),
        ("1G", Decimal(10**9)),
        ("1E", Decimal(10**18)),
        ("1Ki", Decimal(1024)),
        ("1.5Gi", Decimal(1_610_612_736)),
        ("1000Gi", Decimal(1000 * 2**30)),
        ("2Ti", Decimal(2 * 2**40)),
        ("129e6", Decimal(129_000_000)),
        ("1E3", Decimal(1000)),
        ("12e-3", Decimal("0.012")),
        (".5", Decimal("0.5")),
        ("  2  ", Decimal(2)),
        (8, Decimal(8)),
        (0.25, Decimal("0.25")),
    ],
)
def test_parse_quantity(text: str | int | float, expected: Decimal) -> None:
    assert parse_quantity(text) == expected


@pytest.mark.parametrize(
    "bad", ["", "abc", "1Gb", "1 Gi", "--1", "1.2.3", "Mi", "1e", True, None, float("inf")]
)
def test_parse_quantity_refuses(bad: Any) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(bad)


@pytest.mark.parametrize(
    ("text", "milli", "whole"),
    [
        ("100m", 100, 1),
        ("1", 1000, 1),
        ("1.0001", 1001, 2),
        ("1u", 1, 1),
        ("0", 0, 0),
        ("2Gi", 2**31 * 1000, 2**31),
    ],
)
def test_rounding_up(text: str, milli: int, whole: int) -> None:
    assert (milli_value(text), value(text)) == (milli, whole)


# ---------------------------------------------------------------------------- pod requests

G = "nvidia.com/gpu"


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        ({"containers": [ctr({"cpu": "500m", "memory": "1Gi"})]}, Resources(500, 2**30, 0)),
        ({"containers": [ctr({"cpu": "1"}), ctr({"cpu": "250m", G: "2"})]}, Resources(1250, 0, 2)),
        # limits are the requests when requests are absent (per resource)
        ({"containers": [ctr(None, {G: "4", "cpu": "2"})]}, Resources(2000, 0, 4)),
        ({"containers": [ctr({"cpu": "1"}, {"cpu": "2", G: "1"})]}, Resources(1000, 0, 1)),
        ({"containers": [ctr()]}, Resources()),
        ({"containers": [{"name": "c"}]}, Resources()),
        ({}, Resources()),
        # init containers: max(sum of containers, largest init container), per resource
        (
            {"containers": [ctr({"cpu": "1", G: "1"})], "initContainers": [ctr({"cpu": "3"}), ctr({G: "2"})]},
            Resources(3000, 0, 2),
        ),
        (
            {"containers": [ctr({"cpu": "4"}), ctr({"cpu": "4"})], "initContainers": [ctr({"cpu": "6"})]},
            Resources(8000, 0, 0),
        ),
        # a sidecar (restartPolicy Always) adds to the containers and to every later init step
        (
            {
                "containers": [ctr({"cpu": "1"})],
                "initContainers": [ctr({"cpu": "500m"}, restartPolicy="Always"), ctr({"cpu": "2"})],
            },
            Resources(2500, 0, 0),
        ),
        (
            {
                "containers": [ctr({"cpu": "3"})],
                "initContainers": [ctr({"cpu": "500m"}, restartPolicy="Always"), ctr({"cpu": "2"})],
            },
            Resources(3500, 0, 0),
        ),
        # pod overhead (RuntimeClass) on top
        (
            {"containers": [ctr({"cpu": "1"})], "overhead": {"cpu": "250m", "memory": "120Mi"}},
            Resources(1250, 120 * 2**20, 0),
        ),
    ],
)
def test_pod_requests(spec: Json, expected: Resources) -> None:
    assert pod_requests({"metadata": {"name": "p"}, "spec": spec}) == expected


@pytest.mark.parametrize(
    ("phase", "node_name", "expected"),
    [
        ("Running", "n1", ("n1", Resources(1000, 2**30, 2))),
        ("Pending", "n1", ("n1", Resources(1000, 2**30, 2))),  # bound, not started: holds its GPUs
        ("Unknown", "n1", ("n1", Resources(1000, 2**30, 2))),
        ("Pending", None, None),  # not scheduled yet
        ("Succeeded", "n1", None),
        ("Failed", "n1", None),
    ],
)
def test_pod_placement(phase: str, node_name: str | None, expected: tuple[str, Resources] | None) -> None:
    assert pod_placement(pod("p", node_name, gpus=2, phase=phase)) == expected


# ---------------------------------------------------------------------------- nodes


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        (GPU_TOLERATION, GPU_TAINT, True),
        ({"key": "nvidia.com/gpu", "operator": "Equal", "value": "true"}, GPU_TAINT, True),
        ({"key": "nvidia.com/gpu", "value": "true"}, GPU_TAINT, True),  # Equal is the default
        ({"key": "nvidia.com/gpu", "value": "false"}, GPU_TAINT, False),
        ({"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}, GPU_TAINT, False),
        ({"key": "other", "operator": "Exists"}, GPU_TAINT, False),
        ({"operator": "Exists"}, GPU_TAINT, True),  # tolerates everything
        ({"operator": "Exists", "effect": "NoSchedule"}, GPU_TAINT, True),
        ({"operator": "Equal", "value": "true"}, GPU_TAINT, False),  # an empty key needs Exists
    ],
)
def test_tolerates(toleration: Json, taint: Json, expected: bool) -> None:
    assert tolerates(toleration, taint) is expected


UNREACHABLE = {"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}
NOT_READY = {"key": "node.kubernetes.io/not-ready", "effect": "NoExecute"}


@pytest.mark.parametrize(
    ("kwargs", "tolerations", "expected"),
    [
        ({}, (), True),
        ({"unschedulable": True}, (), False),  # cordoned
        ({"taints": [GPU_TAINT]}, (), False),
        ({"taints": [GPU_TAINT]}, (GPU_TOLERATION,), True),
        ({"taints": [{**GPU_TAINT, "effect": "PreferNoSchedule"}]}, (), True),
        ({"taints": [{**GPU_TAINT, "effect": "NoExecute"}]}, (GPU_TOLERATION,), False),
        ({"taints": [UNREACHABLE]}, ({"operator": "Exists"},), False),  # lost nodes are never usable
        ({"taints": [NOT_READY]}, ({"operator": "Exists"},), False),
        ({"taints": [GPU_TAINT], "unschedulable": True}, (GPU_TOLERATION,), False),
    ],
)
def test_node_schedulable(kwargs: Json, tolerations: tuple[Json, ...], expected: bool) -> None:
    assert node_schedulable(node("n", **kwargs), tolerations) is expected


@pytest.mark.parametrize(
    ("ready", "expected"), [("True", True), ("False", False), ("Unknown", False), (None, False)]
)
def test_node_ready(ready: str | None, expected: bool) -> None:
    assert node_ready(node("n", ready=ready)) is expected


@pytest.mark.parametrize(
    ("labels", "pools", "expected"),
    [
        ({"nvidia.com/gpu.product": A100}, POOLS, "a100"),
        ({"nvidia.com/gpu.product": L40S}, POOLS, "l40s"),
        ({"nvidia.com/gpu.product": "H100"}, POOLS, None),
        ({}, POOLS, None),
        ({"nvidia.com/gpu.product": A100}, (Pool("all"), *POOLS), "all"),  # first match wins
        ({"a": "1", "b": "2"}, (Pool("ab", {"a": "1", "b": "3"}), Pool("a", {"a": "1"})), "a"),
        ({"a": "1"}, (), None),
    ],
)
def test_pool_for(labels: dict[str, str], pools: tuple[Pool, ...], expected: str | None) -> None:
    found = pool_for(labels, pools)
    assert (found.name if found else None) == expected


def test_node_info_reads_allocatable_and_gfd_labels() -> None:
    info = node_info(node("dgx-1", gpus=8, cpu="127500m", memory="1000Gi"), POOLS)
    assert (info.name, info.pool, info.ready, info.schedulable) == ("dgx-1", "a100", True, True)
    assert (info.gpu_product, info.gpu_memory_mib) == (A100, 81920)
    assert info.allocatable == Resources(127_500, 1000 * 2**30, 8)
    assert info.labels["kubernetes.io/hostname"] == "dgx-1"


def test_node_info_edge_cases() -> None:
    cpu_only = node("cpu-1", product=None, gpus=0)
    cpu_only["status"] = {"capacity": {"cpu": "4", "memory": "16Gi"}}  # no allocatable: use capacity
    info = node_info(cpu_only, POOLS)
    assert (info.pool, info.gpu_product, info.gpu_memory_mib, info.ready) == ("", None, None, False)
    assert info.allocatable == Resources(4000, 16 * 2**30, 0)
    bad_label = node("x", **{"nvidia.com/gpu.memory": "lots"})
    bad_label["metadata"]["labels"]["nvidia.com/gpu.memory"] = "lots"
    assert node_info(bad_label).gpu_memory_mib is None
    # the L40S pool tolerates the GPU taint; an unmatched node does not
    assert node_info(node("l", product=L40S, taints=[GPU_TAINT]), POOLS).schedulable is True
    assert node_info(node("h", product="H100", taints=[GPU_TAINT]), POOLS).schedulable is False


@pytest.mark.parametrize(
    ("kwargs", "requested", "free"),
    [
        ({}, 3, 5),
        ({"ready": "Unknown"}, 3, 0),
        ({"unschedulable": True}, 3, 0),
        ({"taints": [UNREACHABLE]}, 0, 0),
        ({}, 8, 0),
    ],
)
def test_gpus_free(kwargs: Json, requested: int, free: int) -> None:
    (capacity,) = build_nodes([node("n", **kwargs)], [pod("p", "n", gpus=requested)], POOLS)
    assert (capacity.gpus_requested, capacity.gpus_free, capacity.usable) == (
        requested,
        free,
        "ready" not in kwargs and not kwargs.get("unschedulable") and not kwargs.get("taints"),
    )


def test_build_nodes_subtracts_bound_non_terminated_pods() -> None:
    nodes = [node("a", gpus=8), node("b", product=L40S, gpus=4)]
    pods = [
        pod("nb", "a", gpus=2, cpu="4", memory="32Gi"),
        pod("argo-step", "a", gpus=1, cpu="500m", memory="2Gi", phase="Pending"),
        pod("done", "a", gpus=4, phase="Succeeded"),
        pod("failed", "b", gpus=4, phase="Failed"),
        pod("unbound", None, gpus=4, phase="Pending"),
        pod("elsewhere", "gone-node", gpus=4),
        pod("katib-trial", "b", gpus=4, namespace="kubeflow"),
    ]
    a, b = build_nodes(nodes, pods, POOLS)
    assert (a.name, a.gpus_requested, a.cpu_requested, a.memory_requested) == ("a", 3, 4.5, 34 * 2**30)
    assert (a.gpus_free, a.cpu_allocatable, a.memory_allocatable) == (5, 128.0, 1000 * 2**30)
    assert (b.name, b.pool, b.gpus_requested, b.gpus_free) == ("b", "l40s", 4, 0)


# ---------------------------------------------------------------------------- NodeIndex


def test_node_index_follows_events() -> None:
    index = NodeIndex("onprem", Role.ONPREM, POOLS)
    index.replace_nodes([node("a"), node("b", product=L40S, gpus=4)])
    index.replace_pods([pod("p1", "a", gpus=2)])
    snap = index.snapshot(synced=True, age=1.5)
    assert (snap.cluster, snap.role, snap.pools, snap.synced, snap.age) == (
        "onprem",
        Role.ONPREM,
        POOLS,
        True,
        1.5,
    )
    assert [(n.name, n.gpus_requested) for n in snap.nodes] == [("a", 2), ("b", 0)]

    index.apply_pod("ADDED", pod("p2", None, gpus=4, phase="Pending"))  # unbound: nothing yet
    assert index.nodes() is snap.nodes  # unchanged: the same tuple
    index.apply_pod("MODIFIED", pod("p2", "b", gpus=4, phase="Pending"))  # bound
    before_a = index.nodes()[0]
    assert [n.gpus_requested for n in index.nodes()] == [2, 4]
    assert index.nodes()[0] is before_a  # only the touched node was rebuilt
    index.apply_pod("DELETED", pod("p2", "b", gpus=4))
    index.apply_pod("MODIFIED", pod("p1", "a", gpus=2, phase="Succeeded"))
    assert [n.gpus_requested for n in index.nodes()] == [0, 0]
    index.apply_pod("DELETED", pod("never-seen", "a", gpus=1))  # no-op

    index.apply_node("MODIFIED", node("a", ready="Unknown", taints=[UNREACHABLE]))
    assert [(n.name, n.usable) for n in index.nodes()] == [("a", False), ("b", True)]
    index.apply_node("DELETED", node("a"))
    assert [n.name for n in index.nodes()] == ["b"]
    # a pod bound to a node not seen yet counts once the node appears
    index.apply_pod("ADDED", pod("early", "c", gpus=1))
    assert index.requested("c") == Resources(1000, 2**30, 1)
    index.apply_node("ADDED", node("c"))
    assert [(n.name, n.gpus_requested) for n in index.nodes()] == [("b", 0), ("c", 1)]
    with pytest.raises(ValueError, match="BOOKMARK"):
        index.apply_pod("BOOKMARK", pod("x"))


def test_relist_replaces_everything() -> None:
    index = NodeIndex("c", Role.CLOUD)
    index.replace_nodes([node("a"), node("b")])
    index.replace_pods([pod("p1", "a", gpus=2), pod("p2", "b", gpus=2)])
    index.replace_nodes([node("b")])
    index.replace_pods([pod("p3", "b", gpus=1)])
    assert [(n.name, n.gpus_requested) for n in index.nodes()] == [("b", 1)]
    assert (len(index), index.pod_count, index.requested("a")) == (1, 1, Resources())


def test_node_index_matches_batch_computation_under_random_events() -> None:
    """Any sequence of events leaves the index equal to build_nodes() over the final objects."""
    rng = random.Random(20240601)
    names = [f"n{i}" for i in range(5)]
    for _ in range(30):
        index = NodeIndex("c", Role.ONPREM, POOLS)
        nodes: dict[str, Json] = {}
        pods: dict[str, Json] = {}
        for step in range(200):
            if rng.random() < 0.2:
                name = rng.choice(names)
                if name in nodes and rng.random() < 0.3:
                    index.apply_node("DELETED", nodes.pop(name))
                else:
                    product = rng.choice([A100, L40S, None])
                    taints = rng.choice([[], [GPU_TAINT]])
                    new = node(
                        name,
                        product,
                        rng.choice([0, 4, 8]),
                        ready=rng.choice(["True", "False"]),
                        taints=taints,
                    )
                    index.apply_node("MODIFIED" if name in nodes else "ADDED", new)
                    nodes[name] = new
            else:
                name = f"p{rng.randrange(15)}"
                if name in pods and rng.random() < 0.3:
                    index.apply_pod("DELETED", pods.pop(name))
                else:
                    phase = rng.choice(["Pending", "Running", "Running", "Succeeded", "Failed"])
                    cpu, memory = rng.choice(["100m", "1", "2500m"]), rng.choice(["1Gi", "512Mi"])
                    new = pod(name, rng.choice([None, *names, "ghost"]), rng.randrange(3), cpu, memory, phase)
                    index.apply_pod("MODIFIED" if name in pods else "ADDED", new)
                    pods[name] = new
            if step % 7 == 0:
                index.nodes()  # interleave snapshots with the cache
        assert index.nodes() == build_nodes(nodes.values(), pods.values(), POOLS)


def _gpu_order(index: NodeIndex, pool: str) -> list[str]:
    fits = index.snapshot(synced=True).fits
    assert fits is not None
    return [f[1] for f in fits.pool(pool).gpu]


def test_node_index_keeps_placements_fit_index() -> None:
    index = NodeIndex("c", Role.ONPREM, POOLS)
    index.replace_nodes([node("a"), node("b"), node("l", L40S, 4, taints=[GPU_TAINT])])
    index.replace_pods([pod("p1", "a", gpus=2)])
    snap = index.snapshot(synced=True)
    assert snap.fits is not None and snap.fits.nodes is snap.nodes
    assert snap.fits == build_fit_index(snap.nodes)
    assert _gpu_order(index, "a100") == ["a", "b"]  # best fit: a has 6 GPUs free, b 8
    assert index.snapshot(synced=True).fits is snap.fits  # nothing changed: the same index

    index.apply_pod("ADDED", pod("p2", "b", gpus=4))
    after = index.snapshot(synced=True).fits
    assert after is not None and [f[1] for f in after.pool("a100").gpu] == ["b", "a"]
    assert after.pool("l40s") is snap.fits.pool("l40s")  # a pool no event touched is reused
    index.apply_node("MODIFIED", node("b", unschedulable=True))  # cordoned
    assert _gpu_order(index, "a100") == ["a"]
    index.apply_node("DELETED", node("a"))
    assert _gpu_order(index, "a100") == []
    index.apply_node("ADDED", node("c"))
    index.apply_pod("ADDED", pod("early", "d", gpus=3))  # bound to a node not seen yet
    index.apply_node("ADDED", node("d"))
    assert _gpu_order(index, "a100") == ["d", "c"]

    index.replace_nodes([node("l", L40S, 4, taints=[GPU_TAINT])])  # a relist rebuilds it
    fits = index.snapshot(synced=True).fits
    assert fits is not None and set(fits.pools) == {"l40s"}
    assert [f[1] for f in fits.pool("l40s").gpu] == ["l"]


def test_node_index_fit_index_matches_a_fresh_build_under_random_events() -> None:
    """Whatever the events, a snapshot's FitIndex is the one built at once from its nodes."""
    rng = random.Random(20261123)
    names = [f"n{i}" for i in range(6)]
    for _ in range(20):
        index = NodeIndex("c", Role.ONPREM, POOLS)
        pods: dict[str, Json] = {}
        for step in range(150):
            if rng.random() < 0.25:
                name = rng.choice(names)
                if rng.random() < 0.25:
                    index.apply_node("DELETED", node(name))
                else:
                    product = rng.choice([A100, L40S])
                    new = node(
                        name,
                        product,
                        rng.choice([0, 4, 8]),
                        ready=rng.choice(["True", "False"]),
                        taints=rng.choice([[], [GPU_TAINT]]),
                    )
                    index.apply_node("MODIFIED", new)
            elif rng.random() < 0.02:
                index.replace_pods(pods.values())  # a relist in the middle
            else:
                name = f"p{rng.randrange(20)}"
                if name in pods and rng.random() < 0.3:
                    index.apply_pod("DELETED", pods.pop(name))
                else:
                    new = pod(name, rng.choice([None, *names]), rng.randrange(4), rng.choice(["1", "30"]))
                    index.apply_pod("MODIFIED" if name in pods else "ADDED", new)
                    pods[name] = new
            if step % 5 == 0:
                snap = index.snapshot(synced=True)
                assert snap.fits == build_fit_index(snap.nodes)
        snap = index.snapshot(synced=True)
        assert snap.fits == build_fit_index(snap.nodes)


# ---------------------------------------------------------------------------- notebook servers

NB = {"component": "singleuser-server", "app": "jupyterhub"}
U, S = "hub.jupyter.org/username", "hub.jupyter.org/servername"


@pytest.mark.parametrize(
    ("labels", "annotations", "expected"),
    [
        ({**NB, U: "alice", S: ""}, None, ("alice", "")),
        ({**NB, U: "alice", S: "gpu"}, None, ("alice", "gpu")),
        # annotations carry the names as the hub spells them; labels are escaped
        (
            {**NB, U: "alice-40example-2ecom---4f2c", S: ""},
            {U: "alice@example.com"},
            ("alice@example.com", ""),
        ),
        ({**NB, U: "bob", S: "my-2dserver---1a2b"}, {U: "bob", S: "My Server"}, ("bob", "My Server")),
        ({U: "alice"}, None, None),  # not a notebook (no component label)
        ({"component": "singleuser-server"}, None, None),  # no user
        ({"workflows.argoproj.io/workflow": "wf"}, None, None),
    ],
)
def test_server_location(labels: Json, annotations: Json | None, expected: tuple[str, str] | None) -> None:
    found = server_location(
        pod("jupyter-x", "a", gpus=1, labels=labels, annotations=annotations, ip="10.0.0.5")
    )
    if expected is None:
        assert found is None
    else:
        assert found == ServerLocation(
            expected[0], expected[1], "default", "jupyter-x", "10.0.0.5", "Running", "a"
        )


@pytest.mark.parametrize(
    ("labels", "cluster_label", "hub_label"),
    [
        ({"hybridhub.io/cluster": "onprem", "hybridhub.io/hub": "research-hub"}, "onprem", "research-hub"),
        ({"hybridhub.io/cluster": "onprem"}, "onprem", ""),  # made before the hub label
        ({}, "", ""),  # not HybridSpawner's
    ],
)
def test_a_notebook_pods_hybridhub_labels(labels: Json, cluster_label: str, hub_label: str) -> None:
    found = server_location(pod("jupyter-x", "a", labels={**NB, U: "alice", **labels}))
    assert found is not None and (found.cluster_label, found.hub_label) == (cluster_label, hub_label)


def test_a_pod_with_a_deletion_timestamp_is_terminating() -> None:
    body = pod("jupyter-x", "a", labels={**NB, U: "alice"})
    assert server_location(body).terminating is False  # type: ignore[union-attr]
    body["metadata"]["deletionTimestamp"] = "2026-12-03T15:00:00Z"
    assert server_location(body).terminating is True  # type: ignore[union-attr]


def test_server_index() -> None:
    index = ServerIndex()
    alice = {**NB, "hub.jupyter.org/username": "alice"}
    index.replace_pods(
        [
            pod("jupyter-alice", "a", labels=alice, ip="10.0.0.2", namespace="u-alice"),
            pod(
                "jupyter-alice--gpu",
                None,
                phase="Pending",
                namespace="u-alice",
                labels={**alice, "hub.jupyter.org/servername": "gpu"},
            ),
            pod("argo-step", "a", labels={"workflows.argoproj.io/workflow": "wf"}),
        ]
    )
    assert len(index) == 2
    assert [(s.server, s.pod, s.ip, s.node, s.phase) for s in index.servers("alice")] == [
        ("", "jupyter-alice", "10.0.0.2", "a", "Running"),
        ("gpu", "jupyter-alice--gpu", None, None, "Pending"),
    ]
    assert index.servers("bob") == ()
    found = index.server("alice", "gpu")
    assert found is not None and found.namespace == "u-alice"
    index.apply_pod(
        "MODIFIED",
        pod(
            "jupyter-alice--gpu",
            "b",
            ip="10.0.1.9",
            namespace="u-alice",
            labels={**alice, "hub.jupyter.org/servername": "gpu"},
        ),
    )
    found = index.server("alice", "gpu")
    assert found is not None and (found.node, found.ip, found.phase) == ("b", "10.0.1.9", "Running")
    index.apply_pod("DELETED", pod("jupyter-alice", "a", namespace="u-alice"))
    assert index.server("alice") is None
    # a pod whose labels stop naming it a notebook leaves the index
    index.apply_pod("MODIFIED", pod("jupyter-alice--gpu", "b", namespace="u-alice"))
    assert index.servers("alice") == () and len(index) == 0
