"""Backup pipelines in the service against two simclusters: runs that never started move to EKS when
on-prem goes down (refused or hung) or lags past their max_wait, come back when on-prem has room, and
the copies they left on-prem are deleted when it answers again."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from simcluster.testing import SimProcess
from spawner.service.store.runs import ADMITTED, QUEUED

from .runs_harness import RunsService, running_runs_service, tokens_for

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]

A100 = "NVIDIA-A100-SXM4-80GB"
CLUSTER_FILE = f"""
clusters:
  - name: onprem
    role: onprem
    runtime: simulated
    timings: {{pod_start: 0.05, pod_stop: 0.05}}
    nodeGroups:
      - name: a100
        count: 1
        capacity: {{cpu: "32", memory: 128Gi}}
        gpu: {{count: 4, product: {A100}}}
  - name: eks
    role: cloud
    runtime: simulated
    timings: {{pod_start: 0.05, pod_stop: 0.05, scale_up: 0.3, node_ready: 0.1, scale_down_idle: 600}}
    nodeGroups:
      - name: system
        count: 1
        capacity: {{cpu: "8", memory: 16Gi}}
      - name: gpu-a100
        elastic: true
        min: 0
        max: 1
        capacity: {{cpu: "96", memory: 1100Gi}}
        gpu: {{count: 4, product: {A100}}}
        labels: {{eks.amazonaws.com/nodegroup: gpu-a100}}
"""
POOLS = {
    "eks": [
        {"name": "system", "node_selector": {"eks.amazonaws.com/nodegroup": "system"}},
        {
            "name": "gpu-a100",
            "node_selector": {"eks.amazonaws.com/nodegroup": "gpu-a100"},
            "elastic": True,
            "gpus_per_node": 4,
            "gpu_product": A100,
            "max_nodes": 1,
        },
    ]
}
ARGO = "argo/api/v1/workflows/default"
NS = "hybridhub-runs-carol"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    tmp = tmp_path_factory.mktemp("runs-moves")
    (tmp / "clusters.yaml").write_text(CLUSTER_FILE)
    with SimProcess(tmp / "sim", config=tmp / "clusters.yaml") as proc:
        yield proc


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def svc(sim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunsService]:
    async with running_runs_service(
        sim, tmp_path_factory.mktemp("svc"), tokens_for("carol"), pools=POOLS, move_settle=1.0
    ) as s:
        yield s


def workflow(
    name: str, *, cluster: str = "auto", gpus: int = 4, max_wait: str = "1h", exit_after: float | None = 0.3
) -> dict[str, Any]:
    """A one-step workflow with ``gpus`` A100s; its pod ends ``exit_after`` seconds after it starts
    (the simulated runtime's script), or runs for an hour: until deleted."""
    annotations = {
        "simcluster.hybridhub.io/stdout": f"step of {name} ran\n",
        "simcluster.hybridhub.io/exit-after": str(3600 if exit_after is None else exit_after),
    }
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {
            "name": name,
            "labels": {"hybridhub.io/cluster": cluster, "hybridhub.io/max-wait": max_wait},
        },
        "spec": {
            "entrypoint": "main",
            "templates": [
                {
                    "name": "main",
                    "metadata": {"annotations": annotations},
                    "container": {
                        "image": "busybox",
                        "command": ["true"],
                        "resources": {"limits": {"nvidia.com/gpu": str(gpus)}},
                    },
                }
            ],
        },
    }


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def workflows_in(sim: SimProcess, cluster: str, name: str) -> list[dict[str, Any]]:
    out = sim.kubectl("get", "workflows", "-n", NS, "-o", "json", context=cluster).stdout
    return [w for w in json.loads(out)["items"] if w["metadata"]["name"] == name]


async def until(check: Any, within: float = 60.0) -> Any:
    async with asyncio.timeout(within):
        while True:
            found = await check()
            if found:
                return found
            await asyncio.sleep(0.1)


async def phase(svc: RunsService, name: str) -> str:
    status, answer = await svc.call("GET", f"{ARGO}/{name}", "carol-token")
    assert status == 200, answer
    return str((answer.get("status") or {}).get("phase") or "")


async def row(svc: RunsService, name: str) -> dict[str, Any]:
    status, listing = await svc.call("GET", "api/runs", "carol-token")
    assert status == 200, listing
    return next(r for r in listing["runs"] if r["name"] == name)


async def health_is(svc: RunsService, cluster: str, state: str) -> bool:
    return bool(svc.fleet.health()[cluster].state.value == state)


async def fill_onprem(svc: RunsService) -> str:
    """A pinned run that holds all of on-prem's GPUs until it is deleted."""
    name = unique("blocker")
    body = {"workflow": workflow(name, cluster="onprem", exit_after=None)}
    assert (await svc.call("POST", ARGO, "carol-token", body))[0] == 200
    await until(lambda: _admitted(svc, name))
    return name


async def _admitted(svc: RunsService, name: str) -> bool:
    record = await svc.manager.registry.get("carol", "Workflow", name)
    return record is not None and record.state == ADMITTED


async def delete(svc: RunsService, *names: str) -> None:
    for name in names:
        assert (await svc.call("DELETE", f"{ARGO}/{name}", "carol-token"))[0] == 200


async def waits_on_onprem(svc: RunsService, name: str) -> None:
    body = {"workflow": workflow(name)}
    status, answer = await svc.call("POST", ARGO, "carol-token", body)
    assert status == 200 and answer["metadata"]["namespace"] == NS, answer
    record = await svc.manager.registry.get("carol", "Workflow", name)
    assert record is not None and record.cluster == "onprem"
    await until(lambda: _state(svc, name, QUEUED))


async def _state(svc: RunsService, name: str, state: str) -> bool:
    record = await svc.manager.registry.get("carol", "Workflow", name)
    return record is not None and record.state == state


@pytest.mark.parametrize("outage", ["refused", "hung"])
async def test_a_waiting_run_moves_to_eks_when_onprem_goes_down_and_its_copy_goes_on_recovery(
    svc: RunsService, sim: SimProcess, outage: str
) -> None:
    blocker = await fill_onprem(svc)
    name = unique(f"moves-{outage}")
    await waits_on_onprem(svc, name)
    assert len(workflows_in(sim, "onprem", name)) == 1  # made there, held back
    admin = sim.admin("onprem")
    if outage == "refused":
        admin.set_faults(down=True)
    else:
        admin.set_faults(hung=True, hungParts=["api"])
    try:
        await until(lambda: health_is(svc, "onprem", "down"))
        # it moves, is let go on eks's elastic pool, and its one step runs there; the name still works
        await until(lambda: _phase_is(svc, name, "Succeeded"), 90)
        found = await row(svc, name)
        assert found["cluster"] == "eks", found
        assert [(m["from"], m["to"]) for m in found["moves"]] == [("onprem", "eks")], found
        assert "onprem is down" in found["moves"][0]["reason"], found
        assert len(workflows_in(sim, "eks", name)) == 1
        # the service's logs of the run come from eks
        status, text = await svc.call("GET", f"api/runs/Workflow/{name}/logs", "carol-token")
        assert status == 200 and f"step of {name} ran" in str(text), text
        first = json.loads(str(text).splitlines()[0])
        assert first["pod"] == "hybridhub" and "moved from onprem to eks" in first["line"], first
    finally:
        admin.clear_faults()
    # on-prem answers again: the held-back copy there is deleted, never having started
    await until(lambda: health_is(svc, "onprem", "healthy"))
    copies = await until(lambda: _no_copies_left(svc), 30)
    assert copies
    assert workflows_in(sim, "onprem", name) == []
    # the metric collector counted the move out
    scrape = svc.metrics.render().decode()
    assert 'hybridhub_run_moves_total{direction="out",source="onprem",target="eks"}' in scrape, scrape
    await delete(svc, name, blocker)


async def _phase_is(svc: RunsService, name: str, want: str) -> bool:
    return await phase(svc, name) == want


async def _no_copies_left(svc: RunsService) -> bool:
    return not await svc.manager.registry.moves(copies_left=True)


# The lag rule as it states it: a 60 s max_wait, against the harness's 1 s probes.
MAX_WAIT = 60.0
PROBE_INTERVAL = 1.0


async def test_a_run_past_its_max_wait_on_a_busy_onprem_starts_on_eks(
    svc: RunsService, sim: SimProcess
) -> None:
    """On-prem's GPUs held by a long run: a run with a max_wait is seen waiting on-prem until at least
    max_wait less one probe interval, then starts on EKS within one more interval."""
    blocker = await fill_onprem(svc)
    name = unique("lagging")
    body = {"workflow": workflow(name, max_wait=f"{MAX_WAIT:g}s")}
    submitted = time.monotonic()
    status, answer = await svc.call("POST", ARGO, "carol-token", body)
    assert status == 200, answer
    record = await svc.manager.registry.get("carol", "Workflow", name)
    assert record is not None and record.cluster == "onprem"
    assert "up to your max_wait of 1 min" in record.reason, record.reason
    waiting_until = started_at = None
    async with asyncio.timeout(MAX_WAIT + 30):
        while started_at is None:
            found = await row(svc, name)
            now = time.monotonic() - submitted
            if found["cluster"] == "onprem" and found.get("queue"):
                waiting_until = now  # seen waiting: queued on on-prem, with its place and expected wait
                assert found["queue"]["position"] >= 1, found
            elif found["cluster"] == "eks" and found["phase"] in ("Running", "Succeeded"):
                started_at = now
            await asyncio.sleep(0.1)
    assert waiting_until is not None and waiting_until >= MAX_WAIT - PROBE_INTERVAL, (
        waiting_until,
        started_at,
    )
    assert started_at <= MAX_WAIT + PROBE_INTERVAL, (waiting_until, started_at)
    moved = await _moved(svc, name)
    assert moved is not None and moved["from"] == "onprem" and moved["to"] == "eks", moved
    assert "max_wait" in moved["reason"], moved
    await until(lambda: _phase_is(svc, name, "Succeeded"), 60)
    # the on-prem copy went first: on-prem answered, so nothing was left behind
    assert workflows_in(sim, "onprem", name) == []
    assert not await svc.manager.registry.moves(copies_left=True)
    await delete(svc, name, blocker)


async def test_a_run_whose_wait_is_under_its_max_wait_starts_on_prem(
    svc: RunsService, sim: SimProcess
) -> None:
    """On-prem busy for a few seconds more, a run that may wait an hour waits there and starts there."""
    short = unique("short")
    body = {"workflow": workflow(short, cluster="onprem", exit_after=3.0)}
    assert (await svc.call("POST", ARGO, "carol-token", body))[0] == 200
    await until(lambda: _admitted(svc, short))
    name = unique("patient")
    await waits_on_onprem(svc, name)
    await until(lambda: _phase_is(svc, name, "Succeeded"), 60)
    found = await row(svc, name)
    assert found["cluster"] == "onprem" and found["moves"] == [], found
    assert workflows_in(sim, "eks", name) == []
    await delete(svc, name, short)


async def _moved(svc: RunsService, name: str) -> dict[str, Any] | None:
    found = await row(svc, name)
    return found["moves"][0] if found["moves"] else None


async def test_a_run_waiting_on_eks_comes_back_when_onprem_has_room(
    svc: RunsService, sim: SimProcess
) -> None:
    # eks's one GPU node is taken by a pinned run, and on-prem by another
    eks_blocker = unique("eks-blocker")
    body = {"workflow": workflow(eks_blocker, cluster="eks", exit_after=None)}
    assert (await svc.call("POST", ARGO, "carol-token", body))[0] == 200
    await until(lambda: _admitted(svc, eks_blocker))
    blocker = await fill_onprem(svc)
    admin = sim.admin("onprem")
    name = unique("back")
    admin.set_faults(down=True)
    try:
        await until(lambda: health_is(svc, "onprem", "down"))
        status, answer = await svc.call("POST", ARGO, "carol-token", {"workflow": workflow(name)})
        assert status == 200, answer
        record = await svc.manager.registry.get("carol", "Workflow", name)
        assert record is not None and record.cluster == "eks", record
    finally:
        admin.clear_faults()
    await until(lambda: health_is(svc, "onprem", "healthy"))
    # on-prem is back but full: the run keeps waiting on eks (it is within its max_wait, and on-prem
    # is where it would wait: it goes back to wait there)
    await delete(svc, blocker)
    await until(lambda: _phase_is(svc, name, "Succeeded"), 60)
    found = await row(svc, name)
    assert found["cluster"] == "onprem", found
    assert found["moves"][-1]["from"] == "eks" and found["moves"][-1]["to"] == "onprem", found
    assert workflows_in(sim, "eks", name) == []
    scrape = svc.metrics.render().decode()
    assert 'hybridhub_run_moves_total{direction="back",source="eks",target="onprem"} 1.0' in scrape, scrape
    # a new run goes on-prem
    fresh = unique("fresh")
    assert (await svc.call("POST", ARGO, "carol-token", {"workflow": workflow(fresh)}))[0] == 200
    record = await svc.manager.registry.get("carol", "Workflow", fresh)
    assert record is not None and record.cluster == "onprem"
    await until(lambda: _phase_is(svc, fresh, "Succeeded"), 60)
    await delete(svc, name, fresh, eks_blocker)


async def test_a_run_on_onprem_storage_stays_and_says_why(svc: RunsService, sim: SimProcess) -> None:
    blocker = await fill_onprem(svc)
    name = unique("nfs")
    manifest = workflow(name)
    manifest["spec"]["templates"][0]["volumes"] = [
        {"name": "data", "nfs": {"server": "nas1.lab", "path": "/datasets"}}
    ]
    status, answer = await svc.call("POST", ARGO, "carol-token", {"workflow": manifest})
    assert status == 200, answer
    admin = sim.admin("onprem")
    admin.set_faults(down=True)
    try:
        await until(lambda: health_is(svc, "onprem", "down"))
        found = await until(lambda: _says(svc, name, "it mounts the NFS share of nas1.lab"), 30)
        assert found["cluster"] == "onprem" and found["moves"] == [], found
    finally:
        admin.clear_faults()
    await until(lambda: health_is(svc, "onprem", "healthy"))
    await delete(svc, name, blocker)


async def _says(svc: RunsService, name: str, words: str) -> dict[str, Any] | None:
    found = await row(svc, name)
    queue = found.get("queue") or {}
    return found if words in str(queue.get("reason")) else None


async def test_a_started_run_restarts_on_eks_when_its_user_chose_it_and_onprem_goes_down(
    svc: RunsService, sim: SimProcess
) -> None:
    # two runs start on on-prem, 2 GPUs each, for an hour; one with restart-on-failover
    keep, again = unique("keeps"), unique("restarts")
    restartable = workflow(again, gpus=2, exit_after=None)
    restartable["metadata"]["labels"]["hybridhub.io/on-failover"] = "restart"
    for body in (workflow(keep, gpus=2, exit_after=None), restartable):
        assert (await svc.call("POST", ARGO, "carol-token", {"workflow": body}))[0] == 200
    for name in (keep, again):
        await until(lambda name=name: _phase_is(svc, name, "Running"), 30)
    record = await svc.manager.registry.get("carol", "Workflow", again)
    assert record is not None and record.cluster == "onprem"
    await until(lambda: _seen(svc, record.id), 10)  # the service has seen it running
    admin = sim.admin("onprem")
    admin.set_faults(down=True)
    try:
        await until(lambda: health_is(svc, "onprem", "down"))
        # made again on eks, from the start, and running there under the same name
        await until(lambda: _on(svc, again, "eks"), 30)
        await until(lambda: _phase_is(svc, again, "Running"), 30)
        found = await row(svc, again)
        assert [(m["from"], m["to"]) for m in found["moves"]] == [("onprem", "eks")], found
        assert (
            "restarted on eks (restart-on-failover; it was Running on onprem" in found["moves"][0]["reason"]
        )
        # the other stays where it started
        assert (await row(svc, keep))["cluster"] == "onprem"
    finally:
        admin.clear_faults()
    # on-prem answers: the copy that ran on there is deleted; the one that stayed runs on
    await until(lambda: health_is(svc, "onprem", "healthy"))
    await until(lambda: _no_copies_left(svc), 30)
    assert workflows_in(sim, "onprem", again) == []
    assert len(workflows_in(sim, "onprem", keep)) == 1 and len(workflows_in(sim, "eks", again)) == 1
    assert await phase(svc, keep) == "Running"
    await delete(svc, keep, again)


async def _seen(svc: RunsService, run_id: int) -> bool:
    return svc.manager._phases.get(run_id) == "Running"


async def _on(svc: RunsService, name: str, cluster: str) -> bool:
    return (await row(svc, name))["cluster"] == cluster
