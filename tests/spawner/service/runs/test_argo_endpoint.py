"""Unmodified Hera against the service's Argo endpoint: the run is checked, registered, created held
back in the user's namespace as the user, let go when its GPU gang fits, and read back with its logs."""

# no "from __future__ import annotations": Hera reads the script functions' annotations as classes
import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from hera.workflows import DAG, Container, Resources, Workflow, WorkflowsService, script
from hera.workflows.models import Toleration

from simcluster.testing import SimProcess
from tests.environment import needs

from .runs_harness import RunsService, running_runs_service, tokens_for

pytestmark = [
    needs(os.geteuid() == 0, "runs workflow steps as processes in their own namespaces: needs root"),
    pytest.mark.timeout(120),
    pytest.mark.asyncio(loop_scope="module"),
]

CLUSTER_FILE = """
clusters:
  - name: onprem
    role: onprem
    runtime: process
    podCIDR: 10.237.0.0/16
    timings: {pod_start: 0.05}
    nodeGroups:
      - name: cpu
        count: 1
        capacity: {cpu: "8", memory: 32Gi}
      - name: a100
        count: 1
        capacity: {cpu: "32", memory: 128Gi}
        gpu: {count: 4, product: NVIDIA-A100-SXM4-80GB}
  - name: eks
    role: cloud
    runtime: process
    podCIDR: 10.238.0.0/16
    timings: {pod_start: 0.05}
    nodeGroups:
      - name: system
        count: 1
        capacity: {cpu: "4", memory: 16Gi}
"""
USERS = ("alice", "bob")
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    tmp = tmp_path_factory.mktemp("runs-argo")
    (tmp / "clusters.yaml").write_text(CLUSTER_FILE)
    with SimProcess(tmp / "sim", config=tmp / "clusters.yaml") as proc:
        yield proc


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def svc(sim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunsService]:
    async with running_runs_service(sim, tmp_path_factory.mktemp("svc"), tokens_for(*USERS)) as s:
        yield s


def hera(svc: RunsService, who: str = "alice") -> WorkflowsService:
    return WorkflowsService(host=svc.argo_host, token=f"{who}-token", namespace="default")


@script(image="python:3.12", resources=Resources(gpus=2))
def train(epochs: int) -> None:
    import os as _os

    for i in range(epochs):
        print(f"epoch {i} loss={1.0 / (i + 1):.3f}")
    print("visible", _os.environ.get("NVIDIA_VISIBLE_DEVICES", "none"))


@script(image="python:3.12")
def prep() -> None:
    print("prepared")


def dag(name: str, svc: RunsService, who: str = "alice", **kw: Any) -> Workflow:
    with (
        Workflow(
            name=name, entrypoint="main", namespace="default", workflows_service=hera(svc, who), **kw
        ) as w,
        DAG(name="main"),
    ):
        prep() >> train(arguments={"epochs": 3})
    return w


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


async def ndjson(svc: RunsService, path: str, token: str, sse: bool = False) -> list[dict[str, Any]]:
    headers = {"Accept": "text/event-stream"} if sse else {}
    status, body = await svc.call("GET", path, token, headers=headers)
    assert status == 200, body
    text = body if isinstance(body, str) else json.dumps(body)
    lines = [line for line in text.splitlines() if line.strip()]
    if sse:
        assert all(line.startswith("data: ") for line in lines), lines
        lines = [line[len("data: ") :] for line in lines]
    return [json.loads(line)["result"] for line in lines]


async def test_a_hera_dag_with_a_gpu_step_runs_in_the_users_namespace_and_its_logs_come_back(
    svc: RunsService,
) -> None:
    name = unique("dag")
    w = dag(name, svc)
    created = await asyncio.to_thread(w.create)
    assert created.metadata.namespace == "hybridhub-runs-alice"
    await asyncio.to_thread(w.wait, 0.2)
    got = await asyncio.to_thread(hera(svc).get_workflow, name)
    assert got.status.phase == "Succeeded", got.status
    # as the cluster sees it: in alice's namespace, made by the impersonated user, let go by the service
    wf = json.loads(
        svc.sim.kubectl(
            "get", "workflow", name, "-n", "hybridhub-runs-alice", "-o", "json", context="onprem"
        ).stdout
    )
    assert wf["spec"]["suspend"] is False
    assert wf["spec"]["serviceAccountName"] == "hybridhub-runner"
    entries = await ndjson(
        svc, f"argo/api/v1/workflows/default/{name}/log?logOptions.container=main", "alice-token"
    )
    lines = [e["content"] for e in entries]
    assert "prepared" in lines and "epoch 2 loss=0.333" in lines, lines
    assert len({e["podName"] for e in entries}) == 2  # the prep and the train step
    sse = await ndjson(
        svc, f"argo/api/v1/workflows/default/{name}/log?logOptions.container=main", "alice-token", True
    )
    assert [e["content"] for e in sse] == lines
    status, listing = await svc.call("GET", "api/runs", "alice-token")
    assert status == 200
    (row,) = [r for r in listing["runs"] if r["name"] == name]
    assert row["cluster"] == "onprem" and row["phase"] == "Succeeded" and row["gpus"] == 2, row
    # the service's own run API, which the notebook side uses: the row, the logs, cancel
    status, one = await svc.call("GET", f"api/runs/Workflow/{name}", "alice-token")
    assert status == 200 and one["object"]["metadata"]["name"] == name
    assert {k: v for k, v in one["run"].items() if k != "age"} == {k: v for k, v in row.items() if k != "age"}
    status, text = await svc.call("GET", f"api/runs/Workflow/{name}/logs", "alice-token")
    assert status == 200
    logged = [json.loads(x) for x in (text if isinstance(text, str) else json.dumps(text)).splitlines()]
    assert [x["line"] for x in logged] == lines
    status, _ = await svc.call("GET", f"api/runs/Workflow/{name}", "bob-token")
    assert status == 404
    status, answer = await svc.call("GET", f"api/runs/Pod/{name}", "alice-token")
    assert status == 404 and "not a kind of run" in answer["message"]
    status, _ = await svc.call("DELETE", f"api/runs/Workflow/{name}", "alice-token")
    assert status == 200
    status, _ = await svc.call("GET", f"argo/api/v1/workflows/default/{name}", "alice-token")
    assert status == 404


async def test_a_followed_log_streams_while_the_run_runs_and_ends_with_it(svc: RunsService) -> None:
    name = unique("follow")
    with Workflow(name=name, entrypoint="tick", namespace="default", workflows_service=hera(svc)) as w:
        Container(
            name="tick",
            image="busybox",
            command=["sh", "-c", "for i in 1 2 3; do echo tick $i; sleep 0.3; done"],
        )
    await asyncio.to_thread(w.create)
    path = f"argo/api/v1/workflows/default/{name}/log?logOptions.container=main&logOptions.follow=true"
    entries = await ndjson(svc, path, "alice-token")
    assert [e["content"] for e in entries] == ["tick 1", "tick 2", "tick 3"]
    await asyncio.to_thread(hera(svc).delete_workflow, name)


async def test_the_same_name_twice_is_409_and_another_users_run_is_invisible(svc: RunsService) -> None:
    name = unique("twice")
    body = {"workflow": dag(name, svc).to_dict()}
    status, _ = await svc.call("POST", "argo/api/v1/workflows/default", "alice-token", body)
    assert status == 200
    status, answer = await svc.call("POST", "argo/api/v1/workflows/default", "alice-token", body)
    assert status == 409 and answer["code"] == 6 and name in answer["message"], answer
    # bob sees nothing of alice's, and may use the same name for his own run
    status, _ = await svc.call("GET", f"argo/api/v1/workflows/default/{name}", "bob-token")
    assert status == 404
    status, answer = await svc.call("GET", "argo/api/v1/workflows/default", "bob-token")
    assert status == 200 and name not in json.dumps(answer)
    status, _ = await svc.call("DELETE", f"argo/api/v1/workflows/default/{name}", "bob-token")
    assert status == 404
    for who in ("alice", "bob"):
        if who == "bob":
            status, _ = await svc.call("POST", "argo/api/v1/workflows/default", "bob-token", body)
            assert status == 200
        status, _ = await svc.call("DELETE", f"argo/api/v1/workflows/default/{name}", f"{who}-token")
        assert status == 200


@pytest.mark.parametrize(
    ("patch", "status", "field"),
    [
        ({"metadata": {"namespace": "kube-system"}}, 403, "metadata.namespace"),
        ({"spec": {"hostNetwork": True}}, 422, "spec.hostNetwork"),
        ({"spec": {"podSpecPatch": "{}"}}, 422, "spec.podSpecPatch"),
        ({"spec": {"serviceAccountName": "default"}}, 422, "spec.serviceAccountName"),
    ],
)
async def test_policy_refusals_name_the_field_and_write_nothing(
    svc: RunsService, patch: dict[str, Any], status: int, field: str
) -> None:
    name = unique("bad")
    wf = dag(name, svc).to_dict()
    for key, value in patch.items():
        wf.setdefault(key, {}).update(value)
    seq = svc.sim.admin("onprem").last_request()
    got, answer = await svc.call("POST", "argo/api/v1/workflows/default", "alice-token", {"workflow": wf})
    assert got == status and answer["message"].startswith(field), answer
    writes = [r for r in svc.sim.admin("onprem").requests(seq) if r["method"] in WRITES]
    assert writes == []
    got, _ = await svc.call("GET", f"argo/api/v1/workflows/default/{name}", "alice-token")
    assert got == 404


@pytest.mark.parametrize(
    ("body", "status", "words"),
    [
        (b"{not json", 400, "not JSON"),
        (b"[]", 400, "JSON object"),
        (json.dumps({"workflow": {"kind": "Pod", "metadata": {"name": "x"}}}).encode(), 400, "Workflows"),
        (json.dumps({"nothing": 1}).encode(), 400, '{"workflow"'),
        (
            b'{"workflow": {"metadata": {"name": "big"}, "pad": "' + b"x" * (10 * 1024 * 1024) + b'"}}',
            413,
            "bytes",
        ),
    ],
)
async def test_bad_bodies_are_clear_4xx(svc: RunsService, body: bytes, status: int, words: str) -> None:
    got, answer = await svc.call("POST", "argo/api/v1/workflows/default", "alice-token", body)
    assert got == status and words in answer["message"], answer


async def test_tokens_without_the_runs_scope_or_of_no_one_are_refused(svc: RunsService) -> None:
    status, answer = await svc.call("GET", "argo/api/v1/workflows/default", "alice-noscope")
    assert status == 403 and "custom:hybridhub:runs" in answer["message"], answer
    status, _ = await svc.call("GET", "argo/api/v1/workflows/default", "nobody")
    assert status == 401
    status, _ = await svc.call("GET", "argo/api/v1/workflows/default", None)
    assert status == 401


def gpu_hog(name: str, svc: RunsService, seconds: float) -> Workflow:
    with Workflow(
        name=name,
        entrypoint="hog",
        namespace="default",
        workflows_service=hera(svc),
        labels={"hybridhub.io/cluster": "onprem"},
    ) as w:
        Container(
            name="hog",
            image="busybox",
            command=["sh", "-c", f"sleep {seconds}; echo done"],
            resources=Resources(gpus=4),
            tolerations=[Toleration(key="nvidia.com/gpu", operator="Exists")],
        )
    return w


async def test_two_runs_that_each_need_the_whole_gpu_node_run_one_after_the_other(svc: RunsService) -> None:
    first, second = unique("hog-a"), unique("hog-b")
    await asyncio.to_thread(gpu_hog(first, svc, 1.5).create)
    await until_state(svc, first, "admitted")
    await asyncio.to_thread(gpu_hog(second, svc, 0.1).create)
    await asyncio.sleep(1.0)  # admission passes run every 0.2 s: the second must still wait
    status, listing = await svc.call("GET", "api/runs", "alice-token")
    assert status == 200
    (row,) = [r for r in listing["runs"] if r["name"] == second]
    assert row["phase"] == "Queued" and row["queue"]["position"] == 1, row
    wf = await asyncio.to_thread(hera(svc).get_workflow, second)
    assert wf.spec.suspend is True
    await asyncio.to_thread(gpu_hog(second, svc, 0.1).wait, 0.2)
    _, done = await svc.call("GET", f"argo/api/v1/workflows/default/{second}", "alice-token")
    assert done["status"]["phase"] == "Succeeded"
    _, first_done = await svc.call("GET", f"argo/api/v1/workflows/default/{first}", "alice-token")
    # the second's GPU pod started only after the first's ended (a workflow's own startedAt is set
    # when the controller first sees it, suspended or not)
    (first_pod,) = [n for n in first_done["status"]["nodes"].values() if n["type"] == "Pod"]
    (second_pod,) = [n for n in done["status"]["nodes"].values() if n["type"] == "Pod"]
    assert first_pod["finishedAt"] <= second_pod["startedAt"], (first_pod, second_pod)
    for name in (first, second):
        await asyncio.to_thread(hera(svc).delete_workflow, name)


async def until_state(svc: RunsService, name: str, state: str, within: float = 10.0) -> None:
    async with asyncio.timeout(within):
        while True:
            record = await svc.manager.registry.get("alice", "Workflow", name)
            if record is not None and record.state == state:
                return
            await asyncio.sleep(0.05)
