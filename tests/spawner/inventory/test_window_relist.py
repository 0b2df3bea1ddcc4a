"""The inventory's watches (the hub's and the service's ClusterWatcher) after an outage longer than the
API server's watch-cache window: each resume gets 410 Gone, and each stream relists exactly once.

The cluster keeps two events per resource type (``watchCache``), so a few changes while the API is
down put the watchers' resourceVersions out of the window, as a long outage does on a real cluster.
LISTs are counted in simcluster's request log.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterator

import pytest
import pytest_asyncio
from kubernetes_asyncio import client, config

from simcluster.testing import AdminClient, SimProcess
from spawner.inventory.watcher import ClusterWatcher
from tests.spawner.inventory.test_watcher import (
    A100,
    WATCH_TIMEOUT,
    eventually,
    gpu_pod,
    lists_since,
    make_watcher,
    matches_truth,
)

pytestmark = pytest.mark.timeout(60)

CLUSTER_FILE = {
    "clusters": [
        {
            "name": "onprem",
            "watchCache": {"seconds": 0, "minEvents": 2, "maxEvents": 2},
            "timings": {"pod_start": 0.1, "bookmark": 1},
            "nodeGroups": [
                {
                    "name": "dgx",
                    "count": 2,
                    "capacity": {"cpu": "64", "memory": "500Gi"},
                    "gpu": {"count": 8, "product": A100},
                }
            ],
        }
    ]
}


@pytest.fixture(scope="module")
def wsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    workdir = tmp_path_factory.mktemp("sim-window-relist")
    (workdir / "clusters.yaml").write_text(json.dumps(CLUSTER_FILE))
    with SimProcess(workdir, config=workdir / "clusters.yaml") as proc:
        yield proc


@pytest_asyncio.fixture
async def v1(wsim: SimProcess) -> AsyncIterator[client.CoreV1Api]:
    api = await config.new_client_from_config(config_file=str(wsim.kubeconfig), context="onprem")
    async with api:
        yield client.CoreV1Api(api)


@pytest.mark.asyncio
async def test_an_outage_longer_than_the_window_costs_one_relist_per_stream(
    wsim: SimProcess, v1: client.CoreV1Api
) -> None:
    admin: AdminClient = wsim.admin("onprem")
    for i in range(3):
        await v1.create_namespaced_pod("default", gpu_pod(f"gpu-{i}", 1, A100))
    nodes = [n.metadata.name for n in (await v1.list_node()).items]
    watcher: ClusterWatcher = make_watcher(v1.api_client)
    watcher.start()
    try:
        async with asyncio.timeout(15):
            await watcher.wait_synced()
        await eventually(lambda: matches_truth(watcher, v1), 10, "the three pods in the inventory")
        lists, seq = watcher.lists, admin.last_request()
        admin.set_faults(down=True)
        try:
            # while the API is down: three pod events and four node events, beyond a two-event window
            assert admin.kill_pods() == 3
            for node in nodes:
                admin.node_not_ready(node)
                admin.node_ready(node)
        finally:
            admin.clear_faults()
        await eventually(lambda: watcher.lists == lists + 2, 15, "one relist of nodes and one of pods")
        # an interval, not a condition: a watch round ends and resumes from the new lists without a LIST
        await asyncio.sleep(WATCH_TIMEOUT + 1)
        assert sorted(lists_since(admin, seq)) == ["/api/v1/nodes", "/api/v1/pods"]
        assert watcher.lists == lists + 2 and watcher.synced and watcher.error is None
        await eventually(lambda: matches_truth(watcher, v1), 10, "snapshot == fresh LISTs")
        assert watcher.snapshot().nodes and all(
            n.gpus_requested == 0 and n.ready for n in watcher.snapshot().nodes
        )
    finally:
        await watcher.stop()
