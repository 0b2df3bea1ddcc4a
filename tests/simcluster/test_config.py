"""The cluster file: the default topology, and clear errors that name the place of a mistake."""

from __future__ import annotations

from typing import Any

import pytest

from simcluster.config import ConfigError, load_cluster_file, parse_cluster_file

CPU = {"cpu": "4", "memory": "16Gi"}


def test_default_topology() -> None:
    onprem, eks = load_cluster_file()
    assert (onprem.name, onprem.role, eks.name, eks.role) == ("onprem", "onprem", "eks", "cloud")
    assert [(g.name, g.count, g.capacity["nvidia.com/gpu"]) for g in onprem.node_groups] == [
        ("dgx-a100", 2, "8"),
        ("l40s", 2, "4"),
    ]
    elastic = [g for g in eks.node_groups if g.elastic]
    assert elastic and all(g.min == 0 for g in elastic)
    labels = onprem.node_groups[0].node_labels("dgx-a100-1")
    assert labels["nvidia.com/gpu.product"] == "NVIDIA-A100-SXM4-80GB"
    assert (labels["nvidia.com/gpu.memory"], labels["nvidia.com/gpu.count"]) == ("81920", "8")


def cluster(**overrides: Any) -> dict[str, Any]:
    return {
        "clusters": [{"name": "c", "nodeGroups": [{"name": "g", "count": 1, "capacity": CPU}], **overrides}]
    }


@pytest.mark.parametrize(
    ("data", "where"),
    [
        ({}, "'clusters' must be a non-empty list"),
        (cluster(colour="red"), "clusters[0]: unknown keys ['colour']"),
        (cluster(role="edge"), "clusters[0].role: must be onprem or cloud"),
        (cluster(runtime="docker"), "clusters[0].runtime: must be one of simulated, process"),
        (cluster(nodeGroups=[{"name": "g", "count": -1, "capacity": CPU}]), "nodeGroups[0].count"),
        (cluster(nodeGroups=[{"name": "g", "capacity": {"cpu": "1"}}]), "nodeGroups[0].capacity.memory"),
        (cluster(nodeGroups=[{"name": "g", "elastic": True, "capacity": CPU}]), "elastic pool needs max"),
        (cluster(nodeGroups=[{"name": "g", "count": 1, "capacity": CPU}] * 2), "duplicate names"),
        (
            cluster(podCIDR="10.0.0.0/24", nodeGroups=[{"name": "g", "count": 2, "capacity": CPU}]),
            "has room for 1 nodes",
        ),
        (cluster(podCIDR="not-a-net"), "clusters[0].podCIDR"),
        (cluster(timings={"warp": 1}), "clusters[0].timings"),
    ],
)
def test_mistakes_are_named(data: dict[str, Any], where: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_cluster_file(data)
    assert where in str(err.value)
