"""Twenty concurrent spawns meet a warm elastic pool (nodes left from earlier spawns): none fails."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest

from simcluster.testing import SimProcess
from tests.harness.hub import HubProcess
from tests.harness.service_api import call, user_token
from tests.harness.waits import wait_for
from tests.hub.test_hybrid_load import (
    L40S,
    ONE_L40S,
    cluster_of,
    create_pods,
    delta,
    echosu_hub,
    elastic_nodes,
    fallbacks,
    placements,
    pods,
    spawn_all,
    stop_all,
    tenant_pod,
    wait_no_pods,
)

WARM_NODES = 2  # the case: two idle EKS nodes left from earlier spawns
ONPREM_FREE = 5  # and 5 free on-prem GPUs: a tenant holds 3 of the 8
POOL_MAX = 4  # tests/harness/clusters.yaml: the gpu-l40s pool may have four 4-GPU nodes


@pytest.fixture(scope="module")
def warm_hub(hsim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """The hybridhub service and HybridSpawner, pods running echosu; the EKS nodes its tests add are
    removed afterwards."""
    yield from echosu_hub(hsim, tmp_path_factory.mktemp("warmpool"))


def l40s(hub: HubProcess, token: str) -> dict[str, dict[str, Any]]:
    """Per cluster, the service's L40S figures (reservations deducted)."""
    status, body = call(hub, "GET", "api/capacity", token)
    assert status == 200, body
    return {
        c["name"]: {**next((p for p in c["products"] if p["product"] == L40S), {}), "health": c["health"]}
        for c in body["clusters"]
    }


def required_terms(pod: dict[str, Any]) -> list[dict[str, Any]]:
    affinity = pod["spec"].get("affinity") or {}
    required = (affinity.get("nodeAffinity") or {}).get(
        "requiredDuringSchedulingIgnoredDuringExecution"
    ) or {}
    return list(required.get("nodeSelectorTerms") or [])


def test_twenty_concurrent_spawns_onto_a_warm_elastic_pool_all_start(
    warm_hub: HubProcess, hsim: SimProcess
) -> None:
    """Two idle EKS nodes (8 free L40S, left by earlier spawns), 5 free on-prem L40S, and a pool that
    may grow by two more nodes: twenty 1-GPU spawns at once put 5 on-prem, 8 on the warm nodes and 7
    on two new nodes. None fails and none falls back: the pods meant for new nodes keep off the warm
    nodes, whose GPUs the scheduler sees free but reservations hold for the other eight."""
    observer = user_token(warm_hub, "observer")
    wait_no_pods(hsim)
    warmers = [f"warm{i}" for i in range(4 * WARM_NODES)]
    users = [f"crowd{i:02d}" for i in range(20)]
    tenant = tenant_pod("tenant-l40s", "l40s-1", 8 - ONPREM_FREE)
    try:
        # Warm the pool as earlier spawns leave it: they asked for eks, the autoscaler added two
        # nodes, the servers stopped, and the idle nodes stay (for 10 minutes, as cluster-autoscaler's).
        # (An idle node an earlier module left counts among the two.)
        spawn_all(warm_hub, warmers, {**ONE_L40S, "cluster": "eks"})
        warm = elastic_nodes(hsim)
        assert len(warm) == WARM_NODES, warm
        stop_all(warm_hub, hsim, warmers)
        assert create_pods(hsim, "onprem", [tenant]) == [201]
        wait_for(
            f"the service to see {ONPREM_FREE} free on-prem L40S and 8 idle on eks",
            lambda: (
                (c := l40s(warm_hub, observer))
                and c["onprem"].get("free") == ONPREM_FREE
                and c["eks"].get("free") == 4 * WARM_NODES
                and c["onprem"]["health"] == c["eks"]["health"] == "healthy"
                and c
            ),
            30,
        )
        before, fell_back = placements(warm_hub), fallbacks(warm_hub)

        wall = spawn_all(warm_hub, users, ONE_L40S)
        print(f"\n20 concurrent 1-GPU spawns onto a warm pool: all ready in {wall:.2f}s")

        mine = set(users)
        where = {
            c: [p for p in pods(hsim, c) if p["metadata"]["name"].removeprefix("jupyter-") in mine]
            for c in ("onprem", "eks")
        }
        assert (len(where["onprem"]), len(where["eks"])) == (ONPREM_FREE, 20 - ONPREM_FREE)
        assert all(
            cluster_of(warm_hub, p["metadata"]["name"].removeprefix("jupyter-")) == "eks"
            for p in where["eks"]
        )
        on_eks = Counter(p["spec"]["nodeName"] for p in where["eks"])
        assert {n: on_eks[n] for n in warm} == dict.fromkeys(warm, 4), on_eks
        new = sorted(set(on_eks) - set(warm))
        assert sorted(on_eks[n] for n in new) == [3, 4], on_eks
        assert len(elastic_nodes(hsim)) == POOL_MAX
        # the pods that waited for new nodes said so: off the warm nodes, whose GPUs were held
        for p in where["eks"]:
            terms = required_terms(p)
            if p["spec"]["nodeName"] in new:
                kept_off = {
                    v
                    for t in terms
                    for r in t.get("matchFields", [])
                    if r["operator"] == "NotIn"
                    for v in r["values"]
                }
                assert kept_off == set(warm), json.dumps(p["spec"].get("affinity"))
            else:
                named = [r["values"] for t in terms for r in t.get("matchFields", [])]
                assert named and all(len(v) == 1 and v[0] in warm for v in named), named
        assert delta(placements(warm_hub), before) == {
            ("onprem", "on-prem"): ONPREM_FREE,
            ("eks", "burst"): 20 - ONPREM_FREE,
        }
        assert fallbacks(warm_hub) == fell_back, "a spawn lost its node and fell back"
    finally:
        hsim.kubectl(
            "delete",
            "pod",
            "tenant-l40s",
            "-n",
            "default",
            "--grace-period=0",
            "--force",
            "--ignore-not-found",
            "--wait=false",
        )
        stop_all(warm_hub, hsim, [*warmers, *users])
