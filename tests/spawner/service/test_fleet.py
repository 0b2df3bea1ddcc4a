"""The service's view of one cluster with on-prem hybrid nodes and a cloud pool (EKS Hybrid Nodes):
each pool has its own health, so hybrid nodes cut off from the control plane send new spawns to the
cloud pool while the cluster stays HEALTHY, and back when they return."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from kubernetes_asyncio.client.exceptions import ApiException

from simcluster.testing import SimProcess
from spawner.core.clusters import parse_clusters
from spawner.core.health import HealthPolicy
from spawner.core.labels import CLUSTER_LABEL, COMPONENT_LABEL, HUB_LABEL, NOTEBOOK_COMPONENT, USERNAME_KEY
from spawner.core.model import Candidate, Health, PlacementRequest
from spawner.placement.rank import place
from spawner.service.fleet import ClusterMember, Fleet

pytestmark = [pytest.mark.timeout(90), pytest.mark.asyncio(loop_scope="function")]

L40S = "NVIDIA-L40S"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}
TOPOLOGY = {
    "clusters": [
        {
            "name": "eks",
            "role": "cloud",
            "nodeCIDR": "172.31.0.0/16",
            "podCIDR": "10.250.0.0/16",
            "nodeGroups": [
                {
                    "name": "hybrid",
                    "count": 2,
                    "capacity": {"cpu": "64", "memory": "500Gi"},
                    "gpu": {"count": 4, "product": L40S, "memoryMiB": 46068},
                    "labels": {"eks.amazonaws.com/compute-type": "hybrid"},
                },
                {
                    "name": "gpu-l40s",
                    "elastic": True,
                    "min": 0,
                    "max": 2,
                    "instanceType": "g6e.12xlarge",
                    "capacity": {"cpu": "48", "memory": "370Gi"},
                    "gpu": {"count": 4, "product": L40S, "memoryMiB": 46068},
                    "labels": {"eks.amazonaws.com/nodegroup": "gpu-l40s"},
                    "taints": [GPU_TAINT],
                },
            ],
        }
    ]
}


@pytest.fixture(scope="module")
def one_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    work = tmp_path_factory.mktemp("sim-hybrid-nodes")
    (work / "clusters.yaml").write_text(json.dumps(TOPOLOGY))
    with SimProcess(work, config=work / "clusters.yaml") as proc:
        yield proc


@pytest_asyncio.fixture
async def member(one_cluster: SimProcess) -> AsyncIterator[ClusterMember]:
    (config,) = parse_clusters(
        [
            {
                "name": "eks",
                "role": "cloud",
                "kubeconfig": str(one_cluster.kubeconfig),
                "context": "eks",
                "namespace": "jupyterhub",
                "hub_connect_url": "http://hub:8081",
                "home_storage": {"kind": "none"},
                "pools": [
                    {
                        "name": "onprem",
                        "role": "onprem",
                        "node_selector": {"eks.amazonaws.com/compute-type": "hybrid"},
                    },
                    {
                        "name": "cloud",
                        "role": "cloud",
                        "node_selector": {"eks.amazonaws.com/nodegroup": "gpu-l40s"},
                        "elastic": True,
                        "max_nodes": 2,
                        "gpus_per_node": 4,
                        "gpu_product": L40S,
                        "tolerations": [
                            {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
                        ],
                    },
                ],
            }
        ]
    )
    # probes are taken by hand below: the loop's first probe runs at start, the next one much later
    m = ClusterMember(
        config,
        policy=HealthPolicy(),
        probe_interval=600,
        probe_retry_interval=600,
        probe_timeout=3,
        watch_timeout=5,
        watch_read_timeout=90,
    )
    await m.start()
    async with asyncio.timeout(15):
        await m.watcher.wait_synced()
    yield m
    await m.stop()


def first(member: ClusterMember) -> Candidate:
    request = PlacementRequest(user="ann", gpus=1, gpu_product=L40S)
    result = place(request, [member.inventory()], {"eks": member.health()})
    assert isinstance(result, list), result
    return result[0]


async def until_ready_nodes(member: ClusterMember, ready: int) -> None:
    for _ in range(300):  # the node watch brings the change within a moment
        if sum(n.ready for n in member.inventory().nodes if n.pool == "onprem") == ready:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"on-prem pool never had {ready} Ready nodes")


async def test_hybrid_nodes_cut_off_take_their_pool_down_not_the_cluster(
    member: ClusterMember, one_cluster: SimProcess
) -> None:
    await member.probe()
    assert member.health().state is Health.HEALTHY
    assert dict(member.health().pool_states) == {"onprem": Health.HEALTHY, "cloud": Health.HEALTHY}
    assert (first(member).pool, first(member).cluster) == ("onprem", "eks")

    admin = one_cluster.admin("eks")
    hybrid = sorted(n.name for n in member.inventory().nodes if n.pool == "onprem")
    assert len(hybrid) == 2
    for node in hybrid:
        admin.node_not_ready(node)
    try:
        await until_ready_nodes(member, 0)
        states = []
        for _ in range(3):
            await member.probe()
            states.append(member.health().pool_states["onprem"])
        assert states == [Health.DEGRADED, Health.DEGRADED, Health.DOWN]
        health = member.health()
        assert health.state is Health.HEALTHY and health.pool_states["cloud"] is Health.HEALTHY
        assert (
            member.pool_states["onprem"].reason
            == "nodes unreachable for 3 probes (none of its 2 nodes Ready)"
        )
        candidate = first(member)
        assert (candidate.cluster, candidate.pool) == ("eks", "cloud")
    finally:
        for node in hybrid:
            admin.node_ready(node)
    await until_ready_nodes(member, 2)
    for _ in range(2):  # recover_after answered probes
        await member.probe()
    assert member.health().pool_states["onprem"] is Health.HEALTHY
    assert first(member).pool == "onprem"


def notebook_pod(name: str, namespace: str, user: str, hub: str) -> dict[str, object]:
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {COMPONENT_LABEL: NOTEBOOK_COMPONENT, CLUSTER_LABEL: "eks", HUB_LABEL: hub},
            "annotations": {USERNAME_KEY: user},
        },
        "spec": {"containers": [{"name": "notebook", "image": "jupyter", "command": ["sleep", "600"]}]},
    }


async def test_the_sweep_sees_every_namespace_with_the_hub_labels_and_deletes_by_uid(
    member: ClusterMember,
) -> None:
    """What the leftover sweep reads and calls: notebook pods of every namespace, each with the hub
    label that tells whose it is, and a deletion that Kubernetes refuses (409) when the UID names an
    earlier pod of that name."""
    core = member.client.core()
    for namespace, hub in (("jupyterhub", "research-hub"), ("other-hub", "other-hub")):
        with contextlib.suppress(ApiException):  # 409: there from an earlier test
            await core.create_namespace({"metadata": {"name": namespace}})
        await core.create_namespaced_pod(namespace, notebook_pod("jupyter-zoe", namespace, "zoe", hub))
    fleet = Fleet([member])
    for _ in range(300):  # the pod watch brings both within a moment
        if len([s for s in member.watcher.all_servers() if s.user == "zoe"]) == 2:
            break
        await asyncio.sleep(0.05)
    else:
        raise AssertionError("the watcher never saw both of zoe's pods")
    seen = sorted(
        (c, s.namespace, s.pod, s.cluster_label, s.hub_label)
        for c, s in fleet.notebook_pods()
        if s.user == "zoe"
    )
    assert seen == [
        ("eks", "jupyterhub", "jupyter-zoe", "eks", "research-hub"),
        ("eks", "other-hub", "jupyter-zoe", "eks", "other-hub"),
    ]
    ((_, where),) = [
        (c, s) for c, s in fleet.notebook_pods() if s.user == "zoe" and s.namespace == "jupyterhub"
    ]
    with pytest.raises(ApiException) as refused:
        await fleet.delete_pod("eks", "jupyterhub", "jupyter-zoe", "not-its-uid", request_timeout=5)
    assert refused.value.status == 409
    await fleet.delete_pod("eks", "jupyterhub", "jupyter-zoe", where.uid, request_timeout=5)
    with pytest.raises(ApiException) as missing:
        await fleet.delete_pod("eks", "jupyterhub", "jupyter-zoe", where.uid, request_timeout=5)
    assert missing.value.status == 404
    await core.delete_namespaced_pod("jupyter-zoe", "other-hub")
