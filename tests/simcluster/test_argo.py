"""Unmodified Hera against simcluster's Argo Server: workflows whose steps really run as pods."""

# no "from __future__ import annotations": Hera reads the script functions' annotations as classes
import asyncio
import json
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from hera.workflows import (
    DAG,
    AsyncWorkflowsService,
    Container,
    Resources,
    RetryStrategy,
    Steps,
    Workflow,
    WorkflowsService,
    script,
)
from hera.workflows.models import (
    EnvVar,
    EnvVarSource,
    ObjectFieldSelector,
    WorkflowResumeRequest,
    WorkflowTerminateRequest,
)

from simcluster.testing import SimProcess
from tests.environment import needs

# the process runtime needs root; without it pods fall back to process-loopback (test_loopback_runtime.py)
pytestmark = needs(os.geteuid() == 0, "runs workflow steps as processes in their own namespaces: needs root")

POLL = 0.2  # seconds between Hera's polls (its default is 5)

CLUSTER_FILE = """
clusters:
  - name: onprem
    runtime: process
    podCIDR: 10.236.0.0/16
    timings: {pod_start: 0.05}
    users: [admin, {name: outsider, groups: [guests], token: outsider-token-0123456789}]
    nodeGroups:
      - name: cpu
        count: 1
        capacity: {cpu: "8", memory: 32Gi}
      - name: gpu
        count: 1
        capacity: {cpu: "16", memory: 64Gi}
        gpu: {count: 2, product: NVIDIA-L40S}
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    tmp = tmp_path_factory.mktemp("argo")
    (tmp / "clusters.yaml").write_text(CLUSTER_FILE)
    proc = SimProcess(tmp / "sim", config=tmp / "clusters.yaml").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def host(sim: SimProcess) -> str:
    url = sim.argo_url("onprem")
    assert url.startswith("https://") and url.endswith("/")
    return url


@pytest.fixture(scope="module")
def service(sim: SimProcess, host: str) -> Iterator[WorkflowsService]:
    svc = WorkflowsService(host=host, token=sim.token("onprem"), verify_ssl=sim.ca_file, namespace="default")
    yield svc
    svc.close()


@script(image="python:3.12")
def hello(name: str) -> None:
    print(f"hello {name}")


def raw(service: WorkflowsService, path: str, **kw: Any) -> requests.Response:
    """A request as Hera's own session sends it (its token, its TLS settings)."""
    headers = {"Authorization": str(service.token), **kw.pop("headers", {})}
    return service.session.get(
        service.host + path, headers=headers, verify=service.verify_ssl, timeout=20, **kw
    )


def pods_of(sim: SimProcess, workflow: str) -> list[dict[str, Any]]:
    out = sim.kubectl("get", "pods", "-l", f"workflows.argoproj.io/workflow={workflow}", "-o", "json").stdout
    return list(json.loads(out)["items"])


def test_a_dag_with_a_script_and_a_gpu_step_succeeds_and_its_output_comes_back(
    sim: SimProcess, service: WorkflowsService
) -> None:
    with Workflow(
        generate_name="dag-",
        entrypoint="main",
        namespace="default",
        arguments={"who": "world"},
        workflows_service=service,
    ) as w:
        gpu = Container(
            name="gpu",
            image="cuda:12",
            command=["sh", "-c", 'echo "gpu step on $NODE"'],
            env=[
                EnvVar(
                    name="NODE",
                    value_from=EnvVarSource(field_ref=ObjectFieldSelector(field_path="spec.nodeName")),
                )
            ],
            resources=Resources(gpus=1),
        )
        with DAG(name="main"):
            greet = hello(arguments={"name": "{{workflow.parameters.who}}"})
            greet >> gpu()
    created = w.create()
    assert created.metadata.name and created.metadata.name.startswith("dag-")
    assert created.spec is not None
    done = w.wait(poll_interval=POLL)  # type: ignore[arg-type]
    assert done.status is not None and done.status.phase == "Succeeded", done.status
    assert done.status.started_at is not None and done.status.finished_at is not None
    name = created.metadata.name
    nodes = {n.display_name: n for n in (done.status.nodes or {}).values()}
    assert nodes[name].type == "DAG" and nodes[name].phase == "Succeeded"
    assert nodes["hello"].type == "Pod" and nodes["hello"].outputs is not None
    assert nodes["hello"].outputs.result == "hello world"
    assert nodes["hello"].inputs is not None and nodes["hello"].inputs.parameters[0].value == "world"
    assert nodes["gpu"].phase == "Succeeded" and nodes["gpu"].host_node_name

    # the pods: named and labelled as Argo does, container main, the GPU step on the GPU node
    pods = {p["metadata"]["annotations"]["workflows.argoproj.io/node-id"]: p for p in pods_of(sim, name)}
    gpu_pod = pods[nodes["gpu"].id]
    assert gpu_pod["metadata"]["name"].startswith(f"{name}-gpu-")
    assert [c["name"] for c in gpu_pod["spec"]["containers"]] == ["main"]
    assert gpu_pod["spec"]["containers"][0]["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert gpu_pod["metadata"]["labels"]["workflows.argoproj.io/completed"] == "true"
    gpu_node = gpu_pod["spec"]["nodeName"]
    node = json.loads(sim.kubectl("get", "node", gpu_node, "-o", "json").stdout)
    assert node["metadata"]["labels"]["simcluster.hybridhub.io/node-group"] == "gpu"
    assert gpu_pod["metadata"]["ownerReferences"][0]["kind"] == "Workflow"

    # the Argo log endpoint: newline-delimited {"result": ...} objects, in time order
    resp = raw(service, f"api/v1/workflows/default/{name}/log", params={"logOptions.container": "main"})
    assert resp.status_code == 200
    entries = [json.loads(line)["result"] for line in resp.text.splitlines()]
    assert {(e["podName"], e["content"]) for e in entries} == {
        (pods[nodes["hello"].id]["metadata"]["name"], "hello world"),
        (gpu_pod["metadata"]["name"], f"gpu step on {gpu_node}"),
    }
    # one pod's log, as Hera asks for it; Hera 7.1 reads the one-line answer without the "result"
    # wrapper the real Argo Server sends, so its LogEntry comes back empty (argo-workflows#8525)
    entry = service.workflow_logs(name, pod_name=gpu_pod["metadata"]["name"], container="main")
    assert entry.content is None
    # and as server-sent events when the client asks for them
    sse = raw(
        service,
        f"api/v1/workflows/default/{name}/log",
        params={"podName": gpu_pod["metadata"]["name"], "logOptions.container": "main"},
        headers={"Accept": "text/event-stream"},
    )
    assert sse.headers["Content-Type"].startswith("text/event-stream")
    assert (
        sse.text
        == "data: "
        + json.dumps(
            {"result": {"content": f"gpu step on {gpu_node}", "podName": gpu_pod["metadata"]["name"]}},
            separators=(",", ":"),
        )
        + "\n\n"
    )

    # list by label, then delete: the pods go with the workflow
    listed = service.list_workflows(label_selector="workflows.argoproj.io/completed=true")
    assert name in [i.metadata.name for i in listed.items or []]
    service.delete_workflow(name)
    sim.kubectl(
        "wait", "--for=delete", "pod", "-l", f"workflows.argoproj.io/workflow={name}", "--timeout=30s"
    )


def test_a_failing_step_fails_the_workflow_and_marks_its_node(sim: SimProcess, host: str) -> None:
    async def run() -> Any:
        svc = AsyncWorkflowsService(
            host=host, token=sim.token("onprem"), verify_ssl=sim.ca_file, namespace="default"
        )
        with Workflow(
            generate_name="fail-", entrypoint="main", namespace="default", workflows_service=svc
        ) as w:
            boom = Container(name="boom", image="busybox", command=["sh", "-c", "echo going down; exit 1"])
            flaky = Container(
                name="flaky",
                image="busybox",
                command=["sh", "-c", "exit 3"],
                retry_strategy=RetryStrategy(limit=1),
            )
            after = Container(name="after", image="busybox", command=["true"])
            with DAG(name="main"):
                boom() >> after()
                flaky()
        return await w.async_create(wait=True, poll_interval=POLL)  # type: ignore[arg-type]

    done = asyncio.run(run())
    assert done.status.phase == "Failed"
    name = done.metadata.name
    nodes = {n.display_name: n for n in done.status.nodes.values()}
    assert nodes["boom"].phase == "Failed" and nodes["boom"].message == "Error (exit code 1)"
    assert nodes["boom"].outputs.exit_code == "1"
    assert nodes["after"].phase == "Omitted"
    assert done.status.message == f"child '{nodes['boom'].id}' failed"
    # retryStrategy.limit 1: two attempts, then the retry node fails
    assert nodes["flaky"].type == "Retry" and nodes["flaky"].phase == "Failed"
    assert nodes["flaky"].message == "No more retries left"
    assert [nodes[f"flaky({i})"].phase for i in (0, 1)] == ["Failed", "Failed"]
    assert len(pods_of(sim, name)) == 3  # boom and two flaky attempts; after never ran


def test_a_suspended_workflow_runs_nothing_until_resumed(sim: SimProcess, service: WorkflowsService) -> None:
    with (
        Workflow(
            generate_name="held-",
            entrypoint="main",
            namespace="default",
            suspend=True,
            workflows_service=service,
        ) as w,
        Steps(name="main"),
    ):
        hello(arguments={"name": "{{item}}"}, with_items=["later", "again"])
        hello(name="unlucky", arguments={"name": "x"}, when="heads == tails")
    name = w.create().metadata.name
    assert name is not None
    # the pass that sets the phase is the one that would have created the pods
    for _ in range(100):
        wf = service.get_workflow(name)
        if wf.status is not None and wf.status.phase:
            break
        time.sleep(0.05)
    assert wf.status is not None and wf.status.phase == "Running"
    assert pods_of(sim, name) == []
    assert not [n for n in (wf.status.nodes or {}).values() if n.type == "Pod"]
    resumed = service.resume_workflow(name, WorkflowResumeRequest())
    assert resumed.spec.suspend is None
    done = w.wait(poll_interval=POLL)  # type: ignore[arg-type]
    assert done.status is not None and done.status.phase == "Succeeded"
    nodes = {n.display_name: n for n in done.status.nodes.values()}
    assert nodes["hello(0:later)"].outputs.result == "hello later"
    assert nodes["hello(1:again)"].outputs.result == "hello again"
    assert (
        nodes["unlucky"].phase == "Skipped"
        and nodes["unlucky"].message == "when 'heads == tails' evaluated false"
    )
    assert len(pods_of(sim, name)) == 2


def test_argo_server_errors_and_watch_are_worded_as_argo_does(
    sim: SimProcess, service: WorkflowsService
) -> None:
    missing = raw(service, "api/v1/workflows/default/nope")
    assert missing.status_code == 404
    assert missing.json() == {"code": 5, "message": 'workflows.argoproj.io "nope" not found'}
    anonymous = requests.get(service.host + "api/v1/workflows/default", verify=service.verify_ssl, timeout=20)
    assert anonymous.status_code == 401 and anonymous.json()["code"] == 16
    # RBAC decides, as for Argo's client auth mode: a user bound to no role may not list workflows
    outsider = requests.get(
        service.host + "api/v1/workflows/default",
        headers={"Authorization": "Bearer outsider-token-0123456789"},
        verify=service.verify_ssl,
        timeout=20,
    )
    assert outsider.status_code == 403
    assert outsider.json() == {
        "code": 7,
        "message": 'workflows.argoproj.io is forbidden: User "outsider" cannot list resource "workflows" '
        'in API group "argoproj.io" in the namespace "default"',
    }
    bad = service.session.post(
        service.host + "api/v1/workflows/default",
        headers={"Authorization": str(service.token)},
        json={
            "workflow": {"metadata": {"generateName": "x-"}, "spec": {"entrypoint": "gone", "templates": []}}
        },
        verify=service.verify_ssl,
        timeout=20,
    )
    assert bad.status_code == 400 and bad.json()["code"] == 3
    # the watch: server-sent events of the workflows of a namespace
    with Workflow(
        generate_name="seen-", entrypoint="main", namespace="default", workflows_service=service
    ) as w:
        Container(name="main", image="busybox", command=["true"])
    name = w.create().metadata.name
    with raw(
        service,
        "api/v1/workflow-events/default",
        params={"listOptions.fieldSelector": f"metadata.name={name}"},
        headers={"Accept": "text/event-stream"},
        stream=True,
    ) as events:
        first = next(line for line in events.iter_lines() if line)
    event = json.loads(first.decode().removeprefix("data: "))["result"]
    assert event["type"] == "ADDED" and event["object"]["metadata"]["name"] == name
    assert w.wait(poll_interval=POLL).status.phase == "Succeeded"  # type: ignore[arg-type, union-attr]


def test_terminating_a_running_workflow_deletes_its_pods(sim: SimProcess, service: WorkflowsService) -> None:
    with Workflow(
        generate_name="long-", entrypoint="main", namespace="default", workflows_service=service
    ) as w:
        Container(name="main", image="busybox", command=["sleep", "300"])
    name = w.create().metadata.name
    assert name is not None
    sim.kubectl("wait", "--for=jsonpath={.status.phase}=Running", "pod", name, "--timeout=30s")
    service.terminate_workflow(name, WorkflowTerminateRequest())
    done = w.wait(poll_interval=POLL)  # type: ignore[arg-type]
    assert done.status is not None and done.status.phase == "Failed"
    assert done.status.message == "Stopped with strategy 'Terminate'"
    (node,) = (done.status.nodes or {}).values()
    assert (node.phase, node.message) == ("Failed", "workflow shutdown with strategy: Terminate")
    sim.kubectl("wait", "--for=delete", "pod", name, "--timeout=30s")
    again = service.session.put(
        service.host + f"api/v1/workflows/default/{name}/terminate",
        headers={"Authorization": str(service.token)},
        json={},
        verify=service.verify_ssl,
        timeout=20,
    )
    assert again.status_code == 400 and again.json()["message"] == "cannot shutdown a completed workflow"


def test_the_cluster_file_turns_argo_off(tmp_path: Path) -> None:
    from simcluster.config import ConfigError, parse_cluster_file

    (spec,) = parse_cluster_file({"clusters": [{"name": "a", "argo": False}]})
    assert spec.argo is False and spec.jobs is True
    (default,) = parse_cluster_file({"clusters": [{"name": "a"}]})
    assert default.argo is True and default.jobs is True
    with pytest.raises(ConfigError, match=r"clusters\[0\]\.jobs: expected true or false"):
        parse_cluster_file({"clusters": [{"name": "a", "jobs": "no"}]})
