"""The cluster model: good and bad cluster lists, errors that name the place, ClusterSet through config."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest
from traitlets import TraitError
from traitlets.config import Config

from spawner.core.clusters import ClusterConfig, ClusterSet, HomeStorage, parse_clusters
from spawner.core.model import Pool, Role

TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def onprem(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "onprem",
        "role": "onprem",
        "namespace": "jupyterhub",
        "hub_connect_url": "http://hub.jupyterhub.svc:8081",
        "home_storage": {"kind": "nfs", "nfs_server": "nas.lab", "nfs_path": "/export/home"},
        "pools": [
            {"name": "dgx", "node_selector": {"gpu": "a100"}, "tolerations": [TAINT]},
            {"name": "l40s", "node_selector": {"gpu": "l40s"}},
        ],
        **overrides,
    }


def eks(**overrides: Any) -> dict[str, Any]:
    return {
        "name": "eks",
        "role": "cloud",
        "kubeconfig": "/etc/hybridhub/eks.kubeconfig",
        "context": "eks",
        "namespace": "jupyterhub",
        "user_namespace_template": "jupyter-{username}",
        "hub_connect_url": "https://hub.example.org",
        "pod_access": "service",
        "service_type": "LoadBalancer",
        "home_storage": {"kind": "pvc", "storage_class": "gp3", "size": "50Gi"},
        "pools": [
            {
                "name": "a100",
                "elastic": True,
                "max_nodes": 2,
                "gpus_per_node": 8,
                "gpu_product": "NVIDIA-A100-SXM4-80GB",
                "provisioning_deadline": 900,
                "node_selector": {"eks.amazonaws.com/nodegroup": "gpu-a100"},
                "tolerations": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
            }
        ],
        **overrides,
    }


def hybrid_nodes() -> dict[str, Any]:
    """The single-cluster topology: EKS with Hybrid Nodes on-prem and an elastic cloud pool."""
    return eks(
        name="eks-hybrid",
        pod_access="pod-ip",
        service_type=None,
        pools=[
            {"name": "lab", "role": "onprem", "node_selector": {"eks.amazonaws.com/compute-type": "hybrid"}},
            {**eks()["pools"][0], "role": "cloud"},
        ],
    )


def with_pool(cluster: dict[str, Any], index: int, **overrides: Any) -> dict[str, Any]:
    result = copy.deepcopy(cluster)
    result["pools"][index].update(overrides)
    return result


def pool_without(cluster: dict[str, Any], index: int, key: str) -> dict[str, Any]:
    result = copy.deepcopy(cluster)
    del result["pools"][index][key]
    return result


def without(cluster: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in cluster.items() if k != key}


def test_two_clusters() -> None:
    site, cloud = parse_clusters([onprem(), eks()])
    assert site == ClusterConfig(
        name="onprem",
        role=Role.ONPREM,
        kubeconfig=None,
        context=None,
        namespace="jupyterhub",
        user_namespace_template=None,
        hub_connect_url="http://hub.jupyterhub.svc:8081",
        pod_access="pod-ip",
        service_type=None,
        home_storage=HomeStorage(kind="nfs", nfs_server="nas.lab", nfs_path="/export/home"),
        pools=(
            Pool(name="dgx", node_selector={"gpu": "a100"}, tolerations=(TAINT,)),
            Pool(name="l40s", node_selector={"gpu": "l40s"}),
        ),
    )
    assert site.in_cluster and not cloud.in_cluster
    assert (cloud.pod_access, cloud.service_type, cloud.context) == ("service", "LoadBalancer", "eks")
    assert cloud.home_storage == HomeStorage(kind="pvc", storage_class="gp3", size="50Gi")
    (a100,) = cloud.pools
    assert (a100.elastic, a100.max_nodes, a100.gpus_per_node, a100.provisioning_deadline) == (
        True,
        2,
        8,
        900.0,
    )
    assert a100.role is None and cloud.pool_role(a100) is Role.CLOUD
    assert cloud.roles == {Role.CLOUD} and cloud.pool("a100") is a100
    with pytest.raises(KeyError):
        cloud.pool("nope")


def test_an_elastic_pool_without_a_deadline_leaves_it_to_the_spawner() -> None:
    """None, so that HybridSpawner.elastic_deadline applies (a fixed 600 here made that setting dead)."""
    (cloud,) = parse_clusters([pool_without(eks(), 0, "provisioning_deadline")])
    assert cloud.pools[0].elastic and cloud.pools[0].provisioning_deadline is None


def test_single_cluster_topology() -> None:
    (cluster,) = parse_clusters([hybrid_nodes()])
    assert cluster.roles == {Role.ONPREM, Role.CLOUD}
    lab, a100 = cluster.pools
    assert (lab.role, cluster.pool_role(lab), lab.elastic) == (Role.ONPREM, Role.ONPREM, False)
    assert (a100.role, a100.elastic) == (Role.CLOUD, True)


GOOD = [
    pytest.param([onprem()], id="one-cluster"),
    pytest.param([onprem(pools=[{"name": "all"}])], id="one-pool-no-selector"),
    pytest.param([onprem(home_storage={"kind": "none"})], id="ephemeral-home"),
    pytest.param([onprem(home_storage={"kind": "pvc", "size": "10Gi"})], id="pvc-default-class"),
    pytest.param([onprem(pod_access="service", service_type="NodePort")], id="nodeport"),
    pytest.param([eks(context=None)], id="current-context"),
    pytest.param([eks(user_namespace_template="{hubnamespace}-{safe_user_server}")], id="kubespawner-fields"),
    pytest.param([with_pool(eks(), 0, elastic=True, max_nodes=1)], id="elastic-cpu-pool"),
    pytest.param([with_pool(onprem(), 0, tolerations=[{"key": "a", "value": "b"}])], id="toleration-equal"),
    pytest.param([onprem(), eks(), hybrid_nodes()], id="three"),
    pytest.param(
        [with_pool(onprem(), 0, node_selector={"node.kubernetes.io/instance-type": "p4d.24xlarge", "x": ""})],
        id="selector-prefixed-key-and-empty-value",
    ),
    pytest.param([with_pool(eks(), 0, gpu_product="Tesla-T4_16GB.v1")], id="product-label-syntax"),
    pytest.param([with_pool(onprem(), 0, tolerations=[{"operator": "Exists"}])], id="tolerate-everything"),
]


@pytest.mark.parametrize("raw", GOOD)
def test_good(raw: list[dict[str, Any]]) -> None:
    clusters = parse_clusters(raw)
    assert [c.name for c in clusters] == [r["name"] for r in raw]


BAD = [
    pytest.param({"clusters": []}, "clusters: expected a list", id="not-a-list"),
    pytest.param([], "clusters: at least one cluster", id="empty"),
    pytest.param(["onprem"], "clusters[0]: expected a mapping, got str", id="not-a-mapping"),
    pytest.param([onprem(nodes=3)], "clusters[0]: unknown keys ['nodes']", id="unknown-key"),
    pytest.param(
        [without(onprem(), "hub_connect_url")], "clusters[0].hub_connect_url: required", id="no-url"
    ),
    pytest.param([without(onprem(), "pools")], "clusters[0].pools: required", id="no-pools"),
    pytest.param([onprem(name="On Prem")], "clusters[0].name: 'On Prem' is not a DNS label", id="bad-name"),
    pytest.param([onprem(), eks(name="onprem")], "clusters[1].name: duplicate cluster name", id="dup-name"),
    pytest.param([onprem(role="edge")], "clusters[0].role: must be one of onprem, cloud", id="bad-role"),
    pytest.param([onprem(namespace="")], "clusters[0].namespace: expected a non-empty string", id="no-ns"),
    pytest.param([onprem(context="x")], "clusters[0].context: needs a kubeconfig", id="context-no-file"),
    pytest.param([eks(kubeconfig=3)], "clusters[0].kubeconfig: expected a non-empty string", id="kubeconfig"),
    pytest.param(
        [onprem(hub_connect_url="hub:8081")], "clusters[0].hub_connect_url: expected an http", id="url"
    ),
    pytest.param([onprem(pod_access="ssh")], "clusters[0].pod_access: must be one of pod-ip", id="access"),
    pytest.param([onprem(pod_access="service")], "clusters[0].service_type: must be one of", id="no-type"),
    pytest.param([onprem(service_type="NodePort")], "clusters[0].service_type: only with", id="type-no-svc"),
    pytest.param([eks(service_type="ClusterIP")], "clusters[0].service_type: must be one of", id="clusterip"),
    pytest.param(
        [eks(user_namespace_template="jupyter")],
        "user_namespace_template: must name the user",
        id="tmpl-user",
    ),
    pytest.param(
        [eks(user_namespace_template="j-{user}")],
        "user_namespace_template: unknown fields ['user']",
        id="tmpl",
    ),
    pytest.param([eks(user_namespace_template="j-{username")], "user_namespace_template: ", id="tmpl-syntax"),
    pytest.param([onprem(home_storage="nfs")], "clusters[0].home_storage: expected a mapping", id="home"),
    pytest.param([onprem(home_storage={"kind": "s3"})], "home_storage.kind: must be one of", id="home-kind"),
    pytest.param(
        [onprem(home_storage={"kind": "pvc", "size": "lots"})],
        "home_storage.size: expected a quantity",
        id="size",
    ),
    pytest.param(
        [onprem(home_storage={"kind": "pvc"})], "clusters[0].home_storage.size: required", id="no-size"
    ),
    pytest.param(
        [onprem(home_storage={"kind": "nfs", "nfs_server": "nas", "nfs_path": "home"})],
        "home_storage.nfs_path: expected an absolute path",
        id="nfs-path",
    ),
    pytest.param(
        [onprem(home_storage={"kind": "none", "size": "1Gi"})],
        "clusters[0].home_storage: unknown keys ['size']",
        id="none-size",
    ),
    pytest.param([onprem(pools=[])], "clusters[0].pools: expected a non-empty list", id="no-pool"),
    pytest.param([onprem(pools={"a": {}})], "clusters[0].pools: expected a non-empty list", id="pools-map"),
    pytest.param(
        [onprem(), with_pool(onprem(name="b"), 0, node_selector=["gpu=a100"])],
        "clusters[1].pools[0].node_selector: expected a mapping, got list",
        id="selector-list",
    ),
    pytest.param(
        [with_pool(onprem(), 1, node_selector={"gpu": 4})],
        "clusters[0].pools[1].node_selector.gpu: expected a string",
        id="selector-value",
    ),
    pytest.param(
        [with_pool(onprem(), 0, size=2)], "clusters[0].pools[0]: unknown keys ['size']", id="pool-key"
    ),
    pytest.param([with_pool(onprem(), 1, name="dgx")], "pools[1].name: duplicate pool name", id="pool-dup"),
    pytest.param(
        [with_pool(onprem(), 1, node_selector={})], "pools[1].node_selector: required", id="pool-sel"
    ),
    pytest.param(
        [with_pool(onprem(), 1, node_selector={"gpu": "a100"})],
        "pools[1].node_selector: same as",
        id="sel-dup",
    ),
    pytest.param([with_pool(onprem(), 0, role="gpu")], "pools[0].role: must be one of", id="pool-role"),
    pytest.param(
        [with_pool(onprem(), 0, elastic="yes")], "pools[0].elastic: expected true or false", id="el"
    ),
    pytest.param(
        [with_pool(onprem(), 0, max_nodes=3)], "pools[0].max_nodes: only for elastic", id="fixed-max"
    ),
    pytest.param(
        [with_pool(eks(), 0, max_nodes=0)], "pools[0].max_nodes: expected an integer >= 1", id="max0"
    ),
    pytest.param(
        [with_pool(eks(), 0, gpus_per_node=-1)], "pools[0].gpus_per_node: expected an integer", id="gpn"
    ),
    pytest.param(
        [with_pool(eks(), 0, provisioning_deadline=0)],
        "pools[0].provisioning_deadline: expected seconds",
        id="dl",
    ),
    pytest.param(
        [with_pool(eks(), 0, gpu_product="")], "pools[0].gpu_product: expected a non-empty", id="prod"
    ),
    pytest.param(
        [with_pool(onprem(), 0, tolerations=TAINT)], "pools[0].tolerations: expected a list", id="tol"
    ),
    pytest.param(
        [with_pool(onprem(), 0, tolerations=[{**TAINT, "seconds": "3"}])],
        "pools[0].tolerations[0]: unknown keys ['seconds']",
        id="tol-key",
    ),
    pytest.param(
        [with_pool(onprem(), 0, tolerations=[{**TAINT, "effect": "NoRun"}])],
        "pools[0].tolerations[0].effect: must be one of",
        id="tol-effect",
    ),
    pytest.param(
        [with_pool(onprem(), 0, tolerations=[{"value": "x"}])], "tolerations[0].key: required", id="tol-nokey"
    ),
    pytest.param(
        [with_pool(onprem(), 0, tolerations=[{**TAINT, "value": "x"}])],
        "tolerations[0].value: not allowed with operator Exists",
        id="tol-exists-value",
    ),
    # what would make every pod of a pool a 422, or match no node, or leave a pool unused forever
    pytest.param(
        [pool_without(eks(), 0, "max_nodes")],
        "clusters[0].pools[0].max_nodes: required for an elastic pool",
        id="elastic-no-max",
    ),
    pytest.param(
        [pool_without(eks(), 0, "gpus_per_node")],
        "clusters[0].pools[0].gpus_per_node: required (1 or more) with gpu_product",
        id="product-no-gpus",
    ),
    pytest.param(
        [with_pool(onprem(), 0, node_selector={"gpu type": "a100"})],
        "clusters[0].pools[0].node_selector: 'gpu type' is not a label key",
        id="selector-key",
    ),
    pytest.param(
        [with_pool(onprem(), 0, node_selector={"Nvidia.com/gpu": "a100"})],
        "node_selector: 'Nvidia.com/gpu' is not a label key",
        id="selector-prefix",
    ),
    pytest.param(
        [with_pool(onprem(), 0, node_selector={"gpu": "A100 80GB"})],
        "clusters[0].pools[0].node_selector.gpu: 'A100 80GB' is not a label value",
        id="selector-value-syntax",
    ),
    pytest.param(
        [with_pool(onprem(), 0, node_selector={"gpu": "a" * 64})],
        "node_selector.gpu: 'aaaa",
        id="selector-value-long",
    ),
    pytest.param(
        [with_pool(eks(), 0, gpu_product="NVIDIA A100")],
        "clusters[0].pools[0].gpu_product: 'NVIDIA A100' is not a label value",
        id="product-syntax",
    ),
    pytest.param(
        [with_pool(onprem(), 0, tolerations=[{"key": "nvidia.com/gpu!", "operator": "Exists"}])],
        "pools[0].tolerations[0].key: 'nvidia.com/gpu!' is not a label key",
        id="tol-key-syntax",
    ),
    pytest.param(
        [with_pool(onprem(), 0, tolerations=[{"key": "gpu", "value": "yes please"}])],
        "pools[0].tolerations[0].value: 'yes please' is not a label value",
        id="tol-value-syntax",
    ),
    pytest.param(
        [with_pool(eks(), 0, provisioning_deadline=float("inf"))],
        "pools[0].provisioning_deadline: expected seconds > 0",
        id="dl-inf",
    ),
    pytest.param(
        [eks(home_storage={"kind": "pvc", "size": "1Gi", "storage_class": "GP3"})],
        "clusters[0].home_storage.storage_class: 'GP3' is not a StorageClass name",
        id="storage-class",
    ),
]


@pytest.mark.parametrize(("raw", "message"), BAD)
def test_bad(raw: Any, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_clusters(raw)


def test_help_has_a_two_cluster_example() -> None:
    trait = ClusterSet.class_traits()["clusters"]
    assert trait.help.strip()
    for needle in ('"name": "onprem"', '"name": "eks"', "c.ClusterSet.clusters = ["):
        assert needle in trait.help
    example = trait.help[trait.help.index("c.ClusterSet.clusters = [") :]
    namespace: dict[str, Any] = {"c": Config()}
    exec(example.strip().replace("\n    ", "\n"), namespace)  # the example in the help runs and parses
    assert [c.name for c in parse_clusters(namespace["c"].ClusterSet.clusters)] == ["onprem", "eks"]


def test_cluster_set_from_config() -> None:
    config = Config()
    config.ClusterSet.clusters = [onprem(), eks()]
    clusters = ClusterSet(config=config)
    assert [c.name for c in clusters.configs] == ["onprem", "eks"]
    assert clusters.get("eks").role is Role.CLOUD
    with pytest.raises(KeyError):
        clusters.get("gcp")


def test_cluster_set_rejects_bad_config() -> None:
    config = Config()
    config.ClusterSet.clusters = [onprem(), with_pool(eks(), 0, node_selector="gpu")]
    with pytest.raises(TraitError, match=re.escape("clusters[1].pools[0].node_selector: expected a mapping")):
        ClusterSet(config=config)
    with pytest.raises(TraitError, match=re.escape("ClusterSet.clusters: clusters: at least one cluster")):
        ClusterSet(clusters=[])
    clusters = ClusterSet()
    with pytest.raises(TraitError, match=re.escape("clusters[0]: unknown keys ['kind']")):
        clusters.clusters = [onprem(kind="eks")]
    with pytest.raises(TraitError):
        clusters.clusters = ["onprem"]  # not a dict: the List(Dict()) trait says so first
    with pytest.raises(ValueError, match="at least one cluster"):
        _ = clusters.configs  # nothing configured
