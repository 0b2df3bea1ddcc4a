"""Runs when things go wrong: a cluster whose link hangs on create, a service that died between its
registry and the cluster, a run deleted while its create was still on its way, and the clusters' own
RBAC, Pod Security and quota refusing what the service's checks (turned off) would have refused."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio

from simcluster.testing import SimProcess
from spawner.service.runs.manifests import prepare
from spawner.service.runs.policy import Run, RunLimits, check_run
from spawner.service.store.runs import ADMITTED, QUEUED, NewRun

from .runs_harness import RunsService, running_runs_service, tokens_for

pytestmark = [pytest.mark.timeout(120), pytest.mark.asyncio(loop_scope="module")]

CLUSTER_FILE = """
clusters:
  - name: onprem
    role: onprem
    runtime: simulated
    timings: {pod_start: 0.05, pod_stop: 0.05}
    nodeGroups:
      - name: a100
        count: 1
        capacity: {cpu: "32", memory: 128Gi}
        gpu: {count: 4, product: NVIDIA-A100-SXM4-80GB}
  - name: eks
    role: cloud
    runtime: simulated
    timings: {pod_start: 0.05, pod_stop: 0.05}
    nodeGroups:
      - name: system
        count: 1
        capacity: {cpu: "8", memory: 16Gi}
"""
ARGO = "argo/api/v1/workflows/default"
JOBS = "k8s/apis/batch/v1/namespaces/default/jobs"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    tmp = tmp_path_factory.mktemp("runs-faults")
    (tmp / "clusters.yaml").write_text(CLUSTER_FILE)
    with SimProcess(tmp / "sim", config=tmp / "clusters.yaml") as proc:
        yield proc


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def svc(sim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunsService]:
    tokens = tokens_for("carol", "erin")
    async with running_runs_service(sim, tmp_path_factory.mktemp("svc"), tokens, orphan_grace=1.0) as s:
        yield s


@pytest_asyncio.fixture(loop_scope="module")
async def unchecked(sim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunsService]:
    """A second service whose own checks are off (the test-only switch)."""
    work = tmp_path_factory.mktemp("unchecked")
    async with running_runs_service(sim, work, tokens_for("dave"), enforce_policy=False) as s:
        yield s


def workflow(name: str, *, cluster: str = "onprem", gpus: int = 0, **spec: Any) -> dict[str, Any]:
    resources = {"limits": {"nvidia.com/gpu": str(gpus)}} if gpus else {}
    return {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": name, "labels": {"hybridhub.io/cluster": cluster}},
        "spec": {
            "entrypoint": "main",
            "templates": [
                {
                    "name": "main",
                    "container": {"image": "busybox", "command": ["true"], "resources": resources},
                }
            ],
            **spec,
        },
    }


def job(name: str, *, privileged: bool = False, gpus: int = 0) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "main", "image": "busybox", "command": ["true"]}
    if privileged:
        container["securityContext"] = {"privileged": True}
    if gpus:
        container["resources"] = {"limits": {"nvidia.com/gpu": str(gpus)}}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name, "labels": {"hybridhub.io/cluster": "onprem"}},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
    }


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def in_cluster(sim: SimProcess, kind: str, namespace: str, name: str | None = None) -> list[dict[str, Any]]:
    out = sim.kubectl("get", kind, "-n", namespace, "-o", "json", context="onprem").stdout
    items = json.loads(out)["items"]
    return [i for i in items if name is None or i["metadata"]["name"] == name]


async def until(check: Any, within: float = 30.0) -> Any:
    async with asyncio.timeout(within):
        while True:
            found = await check()
            if found:
                return found
            await asyncio.sleep(0.1)


async def state_of(svc: RunsService, user: str, kind: str, name: str) -> str | None:
    record = await svc.manager.registry.get(user, kind, name)
    return record.state if record else None


async def test_a_hung_cluster_on_create_leaves_one_run_the_user_can_see_and_delete(
    svc: RunsService, sim: SimProcess
) -> None:
    # the namespace exists first, so the create itself is what hangs
    warm = unique("warm")
    assert (await svc.call("POST", ARGO, "carol-token", {"workflow": workflow(warm)}))[0] == 200
    name = unique("hung")
    admin = sim.admin("onprem")
    admin.set_faults(hung=True, hungParts=["api"])
    try:
        status, answer = await svc.call("POST", ARGO, "carol-token", {"workflow": workflow(name)})
        assert status == 504 and "onprem did not answer" in answer["message"], answer
        # the SDK's retry: the name is taken, never a second run
        status, answer = await svc.call("POST", ARGO, "carol-token", {"workflow": workflow(name)})
        assert status == 409, answer
        # the user sees it, waiting
        status, seen = await svc.call("GET", f"{ARGO}/{name}", "carol-token")
        assert status == 200 and seen["metadata"]["annotations"]["hybridhub.io/queued"] == "true", seen
    finally:
        admin.clear_faults()
    # once the link is back the run exists once, whether the first create arrived late or was made again
    await until(lambda: _state_in(svc, "carol", name, (QUEUED, ADMITTED)), 60)
    assert len(in_cluster(sim, "workflows", "hybridhub-runs-carol", name)) == 1
    for run in (name, warm):
        assert (await svc.call("DELETE", f"{ARGO}/{run}", "carol-token"))[0] == 200
    assert in_cluster(sim, "workflows", "hybridhub-runs-carol", name) == []


async def _state_in(svc: RunsService, user: str, name: str, states: tuple[str, ...]) -> bool:
    return await state_of(svc, user, "Workflow", name) in states


def accepted(svc: RunsService, user: str, manifest: dict[str, Any]) -> tuple[Run, dict[str, Any]]:
    namespace = svc.manager.namespace(user)
    run = check_run(
        manifest, user_namespace=namespace, runner_service_account="hybridhub-runner", limits=RunLimits(8)
    )
    assert isinstance(run, Run)
    body = prepare(
        manifest,
        run,
        manifest["metadata"]["name"],
        hub_instance="test-hub",
        runner_service_account="hybridhub-runner",
    )
    return run, body


async def register(svc: RunsService, user: str, manifest: dict[str, Any]) -> NewRun:
    run, body = accepted(svc, user, manifest)
    new = NewRun(
        user=user,
        kind=run.kind,
        name=body["metadata"]["name"],
        namespace=run.namespace,
        wanted="onprem",
        max_wait=60.0,
        cluster="onprem",
        gang=tuple((p.gpus, p.product) for p in run.gang.pods),
        manifest=body,
        reason="as the service wrote it before it died",
    )
    await svc.manager.registry.add(new)
    return new


async def test_a_service_killed_between_its_registry_and_the_cluster_makes_each_run_once(
    svc: RunsService, sim: SimProcess
) -> None:
    # the row was written, the create never sent: the next pass creates it
    lost = await register(svc, "erin", workflow(unique("lost")))
    # the create was made, the row not updated: the next pass finds it and creates nothing
    made = await register(svc, "erin", workflow(unique("made")))
    await svc.manager._ensure_namespace("onprem", "erin")
    sim.kubectl("create", "--validate=false", "-f", "-", input=json.dumps(made.manifest))
    uid = in_cluster(sim, "workflows", made.namespace, made.name)[0]["metadata"]["uid"]
    svc.manager.wake()
    for new in (lost, made):
        await until(lambda n=new: _state_in(svc, "erin", n.name, (QUEUED, ADMITTED)))
        assert len(in_cluster(sim, "workflows", new.namespace, new.name)) == 1
    record = await svc.manager.registry.get("erin", "Workflow", made.name)
    assert record is not None and record.uid == uid
    for new in (lost, made):
        assert (await svc.call("DELETE", f"{ARGO}/{new.name}", "erin-token"))[0] == 200


async def test_a_run_the_registry_does_not_know_is_swept(svc: RunsService, sim: SimProcess) -> None:
    """What a create delivered late by a hung link leaves after the user deleted the run."""
    await svc.manager._ensure_namespace("onprem", "erin")
    _, body = accepted(svc, "erin", workflow(unique("orphan")))
    sim.kubectl("create", "--validate=false", "-f", "-", input=json.dumps(body))
    namespace, name = body["metadata"]["namespace"], body["metadata"]["name"]
    # a controller's child of a known run, with the run's labels copied (as Katib's trial jobs carry
    # their experiment's): never taken for an orphan
    known = unique("known")
    assert (await svc.call("POST", ARGO, "erin-token", {"workflow": workflow(known)}))[0] == 200
    owner = in_cluster(sim, "workflows", namespace, known)[0]["metadata"]
    child = job(unique("child"))
    child["metadata"] = {
        "name": child["metadata"]["name"],
        "namespace": namespace,
        "labels": {"hybridhub.io/hub": "test-hub"},
        "ownerReferences": [
            {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "name": known, "uid": owner["uid"]}
        ],
    }
    child["spec"]["suspend"] = True
    sim.kubectl("create", "--validate=false", "-f", "-", input=json.dumps(child))
    await asyncio.sleep(2.1)  # older than the module's orphan_grace of 1 s, at one-second grain
    removed = await svc.manager.sweep_orphans()
    assert [r for r in removed if r[0] == "onprem" and r[1] == namespace] == [
        ("onprem", namespace, "Workflow", name)
    ]
    assert in_cluster(sim, "workflows", namespace, name) == []
    assert len(in_cluster(sim, "jobs", namespace, child["metadata"]["name"])) == 1
    assert (await svc.call("DELETE", f"{ARGO}/{known}", "erin-token"))[0] == 200


async def test_with_the_services_checks_off_the_cluster_still_refuses(
    unchecked: RunsService, sim: SimProcess
) -> None:
    # RBAC: the impersonated user may not write outside their namespace
    elsewhere = workflow(unique("elsewhere"))
    elsewhere["metadata"]["namespace"] = "kube-system"
    status, answer = await unchecked.call("POST", ARGO, "dave-token", {"workflow": elsewhere})
    assert status == 403 and "cluster onprem refused it" in answer["message"], answer
    assert "forbidden" in answer["message"], answer
    # Pod Security: the privileged Job is made and let go; its pods are refused
    privileged = unique("priv")
    status, answer = await unchecked.call("POST", JOBS, "dave-token", job(privileged, privileged=True))
    assert status == 201, answer
    # quota: 16 GPUs in a namespace allowed 8
    greedy = unique("greedy")
    status, answer = await unchecked.call("POST", JOBS, "dave-token", job(greedy, gpus=16))
    assert status == 201, answer
    namespace = unchecked.manager.namespace("dave")

    async def refusals() -> dict[str, str]:
        events = in_cluster(sim, "events", namespace)
        found = {e["involvedObject"]["name"]: e["message"] for e in events if e["reason"] == "FailedCreate"}
        return found if {privileged, greedy} <= set(found) else {}

    found = await until(refusals)
    assert "violates PodSecurity" in found[privileged], found
    assert "exceeded quota" in found[greedy], found
    assert [
        p
        for p in in_cluster(sim, "pods", namespace)
        if p["metadata"]["name"].startswith((privileged, greedy))
    ] == []
    for name in (privileged, greedy):
        assert (await unchecked.call("DELETE", f"{JOBS}/{name}", "dave-token"))[0] == 200


async def test_a_run_pinned_to_a_cluster_that_is_down_waits_and_everything_keeps_serving(
    svc: RunsService, sim: SimProcess
) -> None:
    admin = sim.admin("onprem")
    name, elsewhere = unique("pinned"), unique("cloud")
    admin.set_faults(down=True)
    try:
        await until(lambda: _health_is(svc, "onprem", "down"))
        status, answer = await svc.call("POST", ARGO, "carol-token", {"workflow": workflow(name)})
        assert status == 200 and "down" in answer["status"]["message"], answer
        # the cloud and the service's other answers are unaffected
        status, answer = await svc.call(
            "POST", ARGO, "carol-token", {"workflow": workflow(elsewhere, cluster="eks")}
        )
        assert status == 200, answer
        status, listing = await svc.call("GET", "api/runs", "carol-token")
        assert status == 200
        rows = {r["name"]: r for r in listing["runs"]}
        assert rows[name]["phase"] == "Queued" and rows[name]["cluster"] == "onprem", rows[name]
        status, answer = await svc.call("GET", f"{ARGO}/{elsewhere}", "carol-token")
        assert status == 200 and answer["metadata"]["namespace"] == "hybridhub-runs-carol"
    finally:
        admin.clear_faults()
    # back up: the run is made there, once
    await until(lambda: _state_in(svc, "carol", name, (QUEUED, ADMITTED)), 60)
    assert len(in_cluster(sim, "workflows", "hybridhub-runs-carol", name)) == 1
    for run in (name, elsewhere):
        assert (await svc.call("DELETE", f"{ARGO}/{run}", "carol-token"))[0] == 200


async def _health_is(svc: RunsService, cluster: str, state: str) -> bool:
    health = svc.fleet.health()[cluster]
    return bool(health.state.value == state)


async def test_the_run_namespace_of_a_user_the_hub_no_longer_has_goes_with_their_runs(
    svc: RunsService, sim: SimProcess
) -> None:
    gone, kept = unique("gone"), unique("kept")
    for user in (gone, kept):
        await svc.manager._ensure_namespace("onprem", user)
        await register(svc, user, workflow(unique("w")))
    svc.manager.wake()

    async def answers(value: frozenset[str] | None) -> frozenset[str] | None:
        return value

    # a hub that does not answer, or answers with no users at all, removes nothing
    for value in (None, frozenset()):
        svc.manager.hub_users = lambda v=value: answers(v)
        assert await svc.manager.sweep_users() == []
    svc.manager.hub_users = lambda: answers(frozenset({kept, "carol", "dave", "erin"}))
    assert await svc.manager.sweep_users() == [("onprem", gone)]
    namespaces = {n["metadata"]["name"]: n for n in in_cluster(sim, "namespaces", "default")}
    assert (
        svc.manager.namespace(gone) not in namespaces
        or namespaces[svc.manager.namespace(gone)]["status"]["phase"] == "Terminating"
    )
    assert namespaces[svc.manager.namespace(kept)]["status"]["phase"] == "Active"
    assert await svc.manager.registry.runs(user=gone) == []
    assert len(await svc.manager.registry.runs(user=kept)) == 1
    svc.manager.hub_users = None


async def test_in_a_cluster_that_runs_kueue_admission_is_handed_to_it(
    sim: SimProcess, tmp_path_factory: pytest.TempPathFactory
) -> None:
    work = tmp_path_factory.mktemp("kueue")
    async with running_runs_service(sim, work, tokens_for("kim"), kueue_queues={"onprem": "user-queue"}) as s:
        name = unique("kueued")
        status, answer = await s.call("POST", ARGO, "kim-token", {"workflow": workflow(name)})
        assert status == 200, answer
        await until(lambda: _state_in(s, "kim", name, (ADMITTED,)))
        (wf,) = in_cluster(sim, "workflows", s.manager.namespace("kim"), name)
        # Kueue's queue label, and still held back: Kueue, not the service, lets it go
        assert wf["metadata"]["labels"]["kueue.x-k8s.io/queue-name"] == "user-queue"
        assert wf["spec"]["suspend"] is True
        assert (await s.call("DELETE", f"{ARGO}/{name}", "kim-token"))[0] == 200


async def test_a_sweep_that_waits_on_a_hung_cluster_holds_up_no_admission_pass(
    svc: RunsService, sim: SimProcess
) -> None:
    """The sweeps list every cluster; one whose link hangs makes them wait out their timeouts, which
    they do beside the passes, not in them."""
    admin = sim.admin("onprem")
    svc.manager._swept_at = None  # a sweep is due
    admin.set_faults(hung=True, hungParts=["api"])
    try:
        await svc.manager.pass_once()  # starts the sweep, or finds the loop's under way
        sweeping = svc.manager._sweeping
        assert sweeping is not None
        # a pass ends while the sweep still waits on onprem (its request timeout is 3 s)
        await svc.manager.pass_once()
        assert not sweeping.done()
        # and a run on eks is let go meanwhile
        name = unique("eks-meanwhile")
        body = {"workflow": workflow(name, cluster="eks")}
        assert (await svc.call("POST", ARGO, "carol-token", body))[0] == 200
        await until(lambda: _is(svc, "carol", "Workflow", name, ADMITTED), 10)
    finally:
        admin.clear_faults()
    await until(lambda: _done(sweeping), 30)
    assert sweeping.exception() is None
    await until(lambda: _healthy(svc, "onprem"), 30)  # for the tests after this one
    assert (await svc.call("DELETE", f"{ARGO}/{name}", "carol-token"))[0] == 200


async def _is(svc: RunsService, user: str, kind: str, name: str, state: str) -> bool:
    return await state_of(svc, user, kind, name) == state


async def _done(task: asyncio.Task[None]) -> bool:
    return task.done()


async def _healthy(svc: RunsService, cluster: str) -> bool:
    return svc.fleet.health()[cluster].state.value == "healthy"
