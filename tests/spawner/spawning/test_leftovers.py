"""LeftoverPods against simcluster: a cluster whose API hangs holds up no one, and its leftover pod is
deleted once it answers; the spawner's pod in the cluster it uses is left alone."""

from __future__ import annotations

import asyncio
import time

import pytest

from simcluster.testing import SimProcess
from spawner.hybrid import HybridSpawner
from spawner.spawning.leftovers import LeftoverPods
from tests.spawner.spawning.test_multicluster import notebook_pod, onprem, until

__all__ = ["onprem"]  # the fixture, used by name


def pod_exists(sim: SimProcess, namespace: str, name: str) -> bool:
    return sim.kubectl("get", "pod", "-n", namespace, name, check=False).returncode == 0


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_a_hung_cluster_holds_up_no_spawn_and_its_leftover_goes_once_it_answers(
    onprem: HybridSpawner, sim: SimProcess, namespace: str
) -> None:
    pod = notebook_pod(namespace, "jupyter-rob")
    await asyncio.to_thread(sim.kubectl, "apply", "--validate=false", "-f", "-", input=pod)
    admin = sim.admin("onprem")
    await asyncio.to_thread(admin.set_faults, hung=True, hungParts=["api"])
    leftovers = LeftoverPods(
        onprem.cluster_client, lambda name: False, onprem.log, request_timeout=0.5, linger=1.0
    )
    try:
        asked = time.monotonic()
        await leftovers.begin([("onprem", namespace)], "jupyter-rob")
        leftovers.watch("onprem", namespace, "jupyter-rob")  # as after an attempt given up there
        assert time.monotonic() - asked < 0.5  # nothing waited for the hung cluster
        await until(
            "a check to go unanswered", lambda: not leftovers.removed and time.monotonic() - asked > 1.5
        )
        assert leftovers.clusters() == ["onprem"]  # still checking
        await asyncio.to_thread(admin.clear_faults)
        await until("the leftover deleted", lambda: leftovers.removed == [("onprem", "jupyter-rob")], 30)
        assert not await asyncio.to_thread(pod_exists, sim, namespace, "jupyter-rob")
        await until("the check to end after lingering", lambda: not leftovers.clusters(), 30)
    finally:
        await leftovers.stop()


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_the_pod_of_the_cluster_in_use_is_left_alone(
    onprem: HybridSpawner, sim: SimProcess, namespace: str
) -> None:
    pod = notebook_pod(namespace, "jupyter-rob")
    await asyncio.to_thread(sim.kubectl, "apply", "--validate=false", "-f", "-", input=pod)
    leftovers = LeftoverPods(onprem.cluster_client, lambda name: name == "onprem", onprem.log)
    await leftovers.begin([("onprem", namespace)], "jupyter-rob")
    await until("the check to end", lambda: not leftovers.clusters(), 20)
    assert leftovers.removed == []
    assert await asyncio.to_thread(pod_exists, sim, namespace, "jupyter-rob")
