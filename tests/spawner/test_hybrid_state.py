"""HybridSpawner's state across hub restarts: every older version loads, and what it saves loads back."""

from __future__ import annotations

from typing import Any

import pytest

from spawner.spawning.attempt import Candidate
from spawner.spawning.options import GpuOptions
from tests.spawner.in_process import make_spawner

# What KubeSpawner 7 itself saves, beside ours
KUBESPAWNER_STATE = {
    "pod_name": "jupyter-ann-old",
    "namespace": "notebooks",
    "dns_name": "jupyter-ann-old.notebooks.svc.cluster.local",
    "kubespawner_version": "7.0.0",
}
LB = "http://203.0.113.7:8888"


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("state", "cluster", "access_url"),
    [
        pytest.param({}, None, None, id="no state: a server never started"),
        pytest.param(KUBESPAWNER_STATE, None, None, id="before HybridSpawner: KubeSpawner's keys only"),
        pytest.param(
            {**KUBESPAWNER_STATE, "hybridhub": {"version": 1, "cluster": "eks"}}, "eks", None, id="version 1"
        ),
        pytest.param(
            {**KUBESPAWNER_STATE, "hybridhub": {"version": 2, "cluster": "eks-public", "access_url": LB}},
            "eks-public",
            LB,
            id="version 2 with the Service address",
        ),
        pytest.param(
            {**KUBESPAWNER_STATE, "hybridhub": {"version": 2, "cluster": "onprem"}},
            "onprem",
            None,
            id="version 2 without an address (pod-ip access)",
        ),
    ],
)
async def test_load_state(state: dict[str, Any], cluster: str | None, access_url: str | None) -> None:
    spawner = make_spawner()
    spawner.load_state(state)
    assert spawner.cluster_name == cluster
    assert spawner.access_url == access_url
    if "pod_name" in state:  # KubeSpawner's part is still KubeSpawner's
        assert (spawner.pod_name, spawner.namespace) == ("jupyter-ann-old", "notebooks")


@pytest.mark.asyncio
async def test_a_state_without_a_cluster_polls_as_stopped_without_asking_any_cluster() -> None:
    spawner = make_spawner()
    spawner.load_state(KUBESPAWNER_STATE)
    assert await spawner.poll() == 1  # never started by HybridSpawner: JupyterHub forgets it


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("candidate", "access_url", "saved"),
    [
        pytest.param(
            Candidate("onprem", "l40s", nodes=("l40s-0",)),
            None,
            {"version": 2, "cluster": "onprem"},
            id="pod-ip cluster",
        ),
        pytest.param(
            Candidate("eks-public", "cpu"),
            LB,
            {"version": 2, "cluster": "eks-public", "access_url": LB},
            id="per-user Service cluster",
        ),
    ],
)
async def test_get_state_loads_back(
    candidate: Candidate, access_url: str | None, saved: dict[str, Any]
) -> None:
    spawner = make_spawner()
    spawner.apply_attempt(candidate, GpuOptions(gpus=1))
    spawner.access_url = access_url
    state = spawner.get_state()
    assert state["hybridhub"] == saved
    assert state["namespace"] == spawner.cluster_config(candidate.cluster).namespace

    restarted = make_spawner()  # a new hub process: a fresh spawner, then the saved state
    restarted.load_state(state)
    assert (restarted.cluster_name, restarted.access_url) == (candidate.cluster, access_url)
    assert restarted.namespace == spawner.namespace and restarted.pod_name == spawner.pod_name
    assert restarted.get_state() == state


@pytest.mark.asyncio
async def test_a_spawner_that_never_ran_saves_nothing_of_ours() -> None:
    assert "hybridhub" not in make_spawner().get_state()


@pytest.mark.asyncio
async def test_clear_state_forgets_the_cluster_and_the_attempt() -> None:
    spawner = make_spawner(volumes=[{"name": "scratch", "emptyDir": {}}], extra_labels={"team": "ml"})
    spawner.apply_attempt(Candidate("eks-public", "cpu"), GpuOptions())
    spawner.access_url = LB
    assert spawner.services_enabled and spawner.extra_labels["hybridhub.io/cluster"] == "eks-public"
    spawner.clear_state()
    assert (spawner.cluster_name, spawner.access_url) == (None, None)
    assert "hybridhub" not in spawner.get_state()
    # the next spawn's hooks see the operator's values, not the last attempt's
    assert spawner.extra_labels == {"team": "ml"}
    assert spawner.volumes == [{"name": "scratch", "emptyDir": {}}]
    assert spawner.services_enabled is False and spawner.node_selector == {}
