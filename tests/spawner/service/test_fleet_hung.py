"""The service's view of a cluster behind a hung site link: DOWN within the stated bound, and HEALTHY
again soon after the link returns, with an inventory that has every change made meanwhile.

The link hangs just after a healthy probe (the worst case for the time to DOWN), on the API only
(``hungParts: ["api"]``: no root needed). The probes here run on a short schedule: every 2 s while
HEALTHY, every 0.5 s otherwise, 1 s each at most, so the bound of ``ClusterMember``'s docstring is
2 + (3 - 1) * 0.5 + 1 = 4 s. The watches keep the service's defaults (300 s, a 90 s read timeout):
what brings them back after the hang is the probes, not the read timeout. Once the link returns,
the cluster is HEALTHY within recover_after * 0.5 + 1 = 2 s.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio import client, config

from simcluster.testing import AdminClient, SimProcess
from spawner.core.clusters import ClusterConfig, parse_clusters
from spawner.core.health import HealthPolicy
from spawner.core.labels import COMPONENT_LABEL, NOTEBOOK_COMPONENT, USERNAME_KEY
from spawner.core.model import Health, NodeCapacity
from spawner.inventory.index import build_nodes
from spawner.inventory.watcher import POD_FIELD_SELECTOR
from spawner.service.fleet import ClusterMember
from tests.spawner.inventory.hang import hang_with_changes

pytestmark = [pytest.mark.timeout(90), pytest.mark.asyncio(loop_scope="function")]

A100 = "NVIDIA-A100-SXM4-80GB"
L40S = "NVIDIA-L40S"
INTERVAL, RETRY, TIMEOUT = 2.0, 0.5, 1.0
POLICY = HealthPolicy(down_after_failures=3, recover_after=2)
HUNG_BOUND = INTERVAL + (POLICY.down_after_failures - 1) * RETRY + TIMEOUT  # 4 s
REFUSED_BOUND = INTERVAL + (POLICY.down_after_failures - 1) * RETRY  # 3 s
RETURN_BOUND = POLICY.recover_after * RETRY + TIMEOUT  # 2 s: HEALTHY again after the link returns
SLACK = 1.0  # the event loop's own delays on a loaded machine (two shared cores)
# Held data reaches the service at the sender's next retransmission (0.2, 0.6, 1.4, 3.0, 6.2, 12.6 s
# after it was first sent): a hang of 7 s after the changes ends between two, so a watch that carried
# on across the hang would bring them 5.6 s after the link returns, too late for the check below.
HANG = 7.0


@pytest.fixture(scope="module")
def hsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    """The default topology in a simcluster of its own: its faults must not disturb other tests."""
    with SimProcess(tmp_path_factory.mktemp("sim-fleet-hung")) as proc:
        yield proc


@pytest.fixture
def admin(hsim: SimProcess) -> Iterator[AdminClient]:
    admin = hsim.admin("onprem")
    yield admin
    admin.clear_faults()


def onprem(sim: SimProcess) -> ClusterConfig:
    (cfg,) = parse_clusters(
        [
            {
                "name": "onprem",
                "role": "onprem",
                "kubeconfig": str(sim.kubeconfig),
                "context": "onprem",
                "namespace": "jupyterhub",
                "hub_connect_url": "http://hub:8081",
                "home_storage": {"kind": "none"},
                "pools": [
                    {"name": "a100", "node_selector": {"nvidia.com/gpu.product": A100}},
                    {"name": "l40s", "node_selector": {"nvidia.com/gpu.product": L40S}},
                ],
            }
        ]
    )
    return cfg


@pytest_asyncio.fixture
async def member(hsim: SimProcess) -> AsyncIterator[ClusterMember]:
    m = ClusterMember(
        onprem(hsim),
        policy=POLICY,
        probe_interval=INTERVAL,
        probe_retry_interval=RETRY,
        probe_timeout=TIMEOUT,
        watch_timeout=300,
        watch_read_timeout=90,
    )
    await m.start()
    try:
        await until(lambda: m.watcher.synced and m.health().state is Health.HEALTHY, 15, "HEALTHY")
        yield m
    finally:
        await m.stop()


@pytest_asyncio.fixture
async def v1(hsim: SimProcess) -> AsyncIterator[client.CoreV1Api]:
    api = await config.new_client_from_config(config_file=str(hsim.kubeconfig), context="onprem")
    async with api:
        core = client.CoreV1Api(api)
        try:
            await core.create_namespace({"metadata": {"name": "jupyterhub"}})
        except client.ApiException as err:
            if err.status != 409:  # there from an earlier test
                raise
        yield core


async def until(check: Any, within: float, what: str, every: float = 0.02) -> float:
    """Seconds until ``check()`` held; fail after ``within``."""
    started = time.monotonic()
    while not check():
        if time.monotonic() - started > within:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(every)
    return time.monotonic() - started


async def after_a_healthy_probe(member: ClusterMember) -> None:
    """Return just after the member classified a probe as HEALTHY: a hang now is the worst case."""
    seen = member.last_probe
    await until(lambda: member.last_probe > seen, INTERVAL + 2, "a probe")
    assert member.health().state is Health.HEALTHY


def notebook(name: str, user: str, gpus: int) -> dict[str, Any]:
    return {
        "metadata": {
            "name": name,
            "labels": {COMPONENT_LABEL: NOTEBOOK_COMPONENT},
            "annotations": {USERNAME_KEY: user},
        },
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": A100},
            "containers": [
                {
                    "name": "notebook",
                    "image": "jupyter",
                    "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                }
            ],
        },
    }


async def truth(v1: client.CoreV1Api, cfg: ClusterConfig) -> tuple[NodeCapacity, ...]:
    """The inventory from fresh LISTs."""

    async def items(method: Any, **kwargs: Any) -> list[dict[str, Any]]:
        resp = await method(_preload_content=False, _request_timeout=10, **kwargs)
        async with resp:
            return list(json.loads(await resp.read())["items"])

    nodes = await items(v1.list_node)
    pods = await items(v1.list_pod_for_all_namespaces, field_selector=POD_FIELD_SELECTOR)
    return build_nodes(nodes, pods, cfg.pools)


async def test_a_hung_link_is_down_in_bound_and_healthy_with_a_current_inventory_after(
    member: ClusterMember, admin: AdminClient, v1: client.CoreV1Api
) -> None:
    await v1.create_namespaced_pod("jupyterhub", notebook("jupyter-dora", "dora", 1))
    await until(lambda: member.watcher.server("dora") is not None, 10, "dora's server in the inventory")
    await after_a_healthy_probe(member)
    changes = await hang_with_changes(
        admin, v1, "jupyterhub", notebook("jupyter-bob", "bob", 2), "jupyter-dora"
    )

    await until(lambda: member.health().state is Health.DOWN, HUNG_BOUND + 5, "DOWN")
    down = time.monotonic() - changes.hung_at
    print(f"hung -> DOWN in {down:.2f} s (bound {HUNG_BOUND:g} s)")
    assert down <= HUNG_BOUND + SLACK
    assert "timed out" in member.health().reason
    # DOWN with a stale inventory: neither change has reached the service
    assert member.watcher.server("dora") is not None and member.watcher.server("bob") is None

    # an interval, not a condition: the length of the hang is the scenario (see HANG)
    await asyncio.sleep(max(0.0, changes.hung_at + HANG - time.monotonic()))
    assert member.health().state is Health.DOWN
    admin.clear_faults()
    healthy = await until(
        lambda: member.health().state is Health.HEALTHY, 10, "HEALTHY after the link returned"
    )
    # what placement reads at the moment the cluster is called HEALTHY
    seen, dora, bob = member.inventory(), member.watcher.server("dora"), member.watcher.server("bob")
    print(f"return -> HEALTHY in {healthy:.2f} s (bound {RETURN_BOUND:g} s)")
    assert dora is None and bob is not None and bob.pod == "jupyter-bob"
    assert seen.nodes == await truth(v1, member.config)
    assert healthy <= RETURN_BOUND + SLACK
    await changes.answered()
    await v1.delete_namespaced_pod("jupyter-bob", "jupyterhub", grace_period_seconds=0)


async def test_a_refused_api_is_down_sooner_and_back_as_soon(
    member: ClusterMember, admin: AdminClient
) -> None:
    """For comparison: connections refused (the ``down`` fault) cost no timeout."""
    await after_a_healthy_probe(member)
    admin.set_faults(down=True)
    refused_at = time.monotonic()
    await until(lambda: member.health().state is Health.DOWN, REFUSED_BOUND + 5, "DOWN")
    down = time.monotonic() - refused_at
    print(f"refused -> DOWN in {down:.2f} s (bound {REFUSED_BOUND:g} s)")
    assert down <= REFUSED_BOUND + SLACK
    assert "connection refused" in member.health().reason
    admin.clear_faults()
    healthy = await until(lambda: member.health().state is Health.HEALTHY, 10, "HEALTHY again")
    print(f"return -> HEALTHY in {healthy:.2f} s (bound {RETURN_BOUND:g} s)")
    assert healthy <= RETURN_BOUND + SLACK
