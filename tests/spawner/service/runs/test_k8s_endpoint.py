"""The unmodified Katib, Kubeflow Trainer and Training Operator SDKs against the service's Kubernetes
endpoint, with only a user's hub token: runs are checked, held back, admitted, and read back."""

import asyncio
import json
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from kubernetes import client

from simcluster.testing import SimProcess
from tests.environment import needs

from .runs_harness import PREFIX, RunsService, running_runs_service, tokens_for

pytestmark = [
    needs(os.geteuid() == 0, "runs pods as processes in their own namespaces: needs root"),
    pytest.mark.timeout(180),
    pytest.mark.asyncio(loop_scope="module"),
]

CLUSTER_FILE = """
clusters:
  - name: onprem
    role: onprem
    runtime: process
    podCIDR: 10.235.0.0/16
    timings: {pod_start: 0.05}
    nodeGroups:
      - name: cpu
        count: 1
        capacity: {cpu: "16", memory: 64Gi}
      - name: a100
        count: 1
        capacity: {cpu: "32", memory: 128Gi}
        gpu: {count: 4, product: NVIDIA-A100-SXM4-80GB}
  - name: eks
    role: cloud
    runtime: process
    podCIDR: 10.234.0.0/16
    timings: {pod_start: 0.05}
    nodeGroups:
      - name: system
        count: 1
        capacity: {cpu: "8", memory: 16Gi}
"""
NS = "default"  # the SDKs' own default namespace, an alias of the user's run namespace
REAL_NS = "hybridhub-runs-alice"


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    tmp = tmp_path_factory.mktemp("runs-k8s")
    (tmp / "clusters.yaml").write_text(CLUSTER_FILE)
    with SimProcess(tmp / "sim", config=tmp / "clusters.yaml") as proc:
        yield proc


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def svc(sim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunsService]:
    async with running_runs_service(sim, tmp_path_factory.mktemp("svc"), tokens_for("alice", "bob")) as s:
        yield s


def configuration(svc: RunsService, token: str = "alice-token") -> client.Configuration:
    """What the notebook's kubeconfig gives the SDKs: the service's k8s endpoint and the hub token."""
    cfg = client.Configuration()
    cfg.host = f"http://127.0.0.1:{svc.port}{PREFIX}k8s"
    cfg.api_key = {"authorization": token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    return cfg


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def exchange_ranks() -> None:
    import os as _os

    print(f"rank={_os.environ.get('RANK')} world={_os.environ.get('WORLD_SIZE')}")


async def test_trainer_client_trains_on_two_nodes_and_its_logs_come_back(svc: RunsService) -> None:
    from kubeflow.trainer import CustomTrainer, KubernetesBackendConfig, TrainerClient

    # the client reads the Trainer's public ConfigMap as it starts: from a thread, as every SDK call here
    backend = KubernetesBackendConfig(namespace=NS, client_configuration=configuration(svc))
    trainer = await asyncio.to_thread(TrainerClient, backend)
    name = await asyncio.to_thread(
        trainer.train, trainer=CustomTrainer(func=exchange_ranks, num_nodes=2, resources_per_node={"cpu": 1})
    )
    job = await asyncio.to_thread(trainer.wait_for_job_status, name, timeout=60, polling_interval=1)
    assert job.status == "Complete" and job.num_nodes == 2
    assert sorted(s.name for s in job.steps) == ["node-0", "node-1"]
    logs = await asyncio.to_thread(lambda: list(trainer.get_job_logs(name)))
    assert logs == ["rank=0 world=2"]
    assert name in [j.name for j in await asyncio.to_thread(trainer.list_jobs)]
    record = await svc.manager.registry.get("alice", "TrainJob", name)
    assert record is not None and record.cluster == "onprem" and record.state == "admitted"
    await asyncio.to_thread(trainer.delete_job, name)
    assert await svc.manager.registry.get("alice", "TrainJob", name) is None


async def test_katib_tune_returns_the_trial_that_really_scored_best(svc: RunsService) -> None:
    import kubeflow.katib as katib_sdk
    from kubeflow.katib import KatibClient

    def objective(parameters: dict[str, str]) -> None:
        x = float(parameters["x"])
        print(f"loss={(x - 0.33) ** 2:.6f}")

    katib = await asyncio.to_thread(KatibClient, client_configuration=configuration(svc), namespace=NS)
    name = unique("tune")
    await asyncio.to_thread(
        katib.tune,
        name=name,
        objective=objective,
        parameters={"x": katib_sdk.search.double(min=0.1, max=0.5, step=0.1)},
        algorithm_name="grid",
        objective_metric_name="loss",
        objective_type="minimize",
        max_trial_count=5,
        parallel_trial_count=3,
        resources_per_trial={"cpu": "1"},
        retain_trials=True,
    )
    await asyncio.to_thread(katib.wait_for_experiment_condition, name, timeout=120, polling_interval=1)
    optimal = await asyncio.to_thread(katib.get_optimal_hyperparameters, name)
    assert [round(float(p.value), 6) for p in optimal.parameter_assignments] == [0.3]
    trials = await asyncio.to_thread(katib.list_trials, name)
    assert len(trials) == 5
    best = optimal.best_trial_name
    out = "\n".join(await asyncio.to_thread(lambda: list(katib.get_job_logs(name, best))))
    assert "loss=0.000900" in out
    # what %runs shows of a sweep: each trial with its parameters and metrics
    status, body = await svc.call("GET", f"api/runs/Experiment/{name}", "alice-token")
    assert status == 200 and len(body["trials"]) == 5, body
    assert all(t["spec"]["parameterAssignments"] for t in body["trials"])
    assert any(t["status"].get("observation", {}).get("metrics") for t in body["trials"])
    await asyncio.to_thread(katib.delete_experiment, name)


async def test_a_pytorchjob_succeeds_and_each_pods_log_comes_back(svc: RunsService) -> None:
    from kubeflow.training import TrainingClient
    from kubeflow.training.utils import utils as sdk_utils

    training = await asyncio.to_thread(TrainingClient, client_configuration=configuration(svc), namespace=NS)
    name = unique("ptj")
    container = sdk_utils.get_container_spec(name="pytorch", base_image="python:3.11-slim")
    container.command = [
        "python",
        "-c",
        "import os; print('rank', os.environ['RANK'], 'of', os.environ['WORLD_SIZE'])",
    ]
    template = sdk_utils.get_pod_template_spec(containers=[container])
    job = sdk_utils.get_pytorchjob_template(
        name=name, namespace=NS, num_workers=2, worker_pod_template_spec=template
    )
    await asyncio.to_thread(training.create_job, job=job)
    await asyncio.to_thread(
        training.wait_for_job_conditions,
        name,
        expected_conditions={"Succeeded"},
        wait_timeout=60,
        polling_interval=1,
    )
    logs, _ = await asyncio.to_thread(training.get_job_logs, name, is_master=False)
    assert logs == {f"{name}-master-0": "rank 0 of 2\n", f"{name}-worker-0": "rank 1 of 2\n"}
    await asyncio.to_thread(training.delete_job, name)


def gpu_job(name: str) -> dict[str, Any]:
    """A TrainJob of two nodes with two GPUs each: the whole of on-prem's one GPU node."""
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": name, "labels": {"hybridhub.io/cluster": "onprem"}},
        "spec": {
            "runtimeRef": {"kind": "ClusterTrainingRuntime", "name": "torch-distributed"},
            "trainer": {
                "numNodes": 2,
                "command": ["python", "-c", "import time; time.sleep(1.5); print('done')"],
                "resourcesPerNode": {"limits": {"nvidia.com/gpu": 2.0}, "requests": {"nvidia.com/gpu": 2.0}},
            },
        },
    }


async def test_two_jobs_that_each_need_the_whole_gpu_node_never_deadlock(svc: RunsService) -> None:
    base = f"apis/trainer.kubeflow.org/v1alpha1/namespaces/{NS}/trainjobs"
    first, second = unique("gang-a"), unique("gang-b")
    for name in (first, second):
        status, answer = await svc.call("POST", f"k8s/{base}", "alice-token", gpu_job(name))
        assert status == 201, answer
    # one runs; the other waits, held back whole: none of its pods exists
    await asyncio.sleep(1.0)
    status, listing = await svc.call("GET", "api/runs", "alice-token")
    rows = {r["name"]: r for r in listing["runs"]}
    assert rows[first]["state"] == "admitted", rows[first]
    assert rows[second]["phase"] == "Queued" and rows[second]["queue"]["position"] == 1, rows[second]
    pods = json.loads(
        svc.sim.kubectl(
            "get",
            "pods",
            "-n",
            REAL_NS,
            "-l",
            f"jobset.sigs.k8s.io/jobset-name={second}",
            "-o",
            "json",
            context="onprem",
        ).stdout
    )["items"]
    assert pods == []
    # then the second runs too
    async with asyncio.timeout(60):
        while True:
            status, job = await svc.call("GET", f"k8s/{base}/{second}", "alice-token")
            if any(
                c["type"] == "Complete" and c["status"] == "True"
                for c in (job.get("status") or {}).get("conditions") or []
            ):
                break
            await asyncio.sleep(0.2)
    for name in (first, second):
        status, _ = await svc.call("DELETE", f"k8s/{base}/{name}", "alice-token")
        assert status == 200


@pytest.mark.parametrize(
    ("method", "path", "status", "words"),
    [
        ("GET", f"api/v1/namespaces/{NS}/secrets", 403, "secrets"),
        ("GET", "api/v1/pods", 403, "pods"),
        ("GET", f"apis/kubeflow.org/v1beta1/namespaces/{NS}/experiments?watch=true", 403, "watch"),
        ("GET", "apis/kubeflow.org/v1beta1/namespaces/kube-system/experiments", 403, "kube-system"),
        ("POST", "apis/trainer.kubeflow.org/v1alpha1/clustertrainingruntimes", 403, "runtime"),
        ("GET", "apis/example.com/v1/things", 404, ""),
        ("GET", f"apis/kubeflow.org/v1beta1/namespaces/{NS}/experiments/nope", 404, "nope"),
    ],
)
async def test_what_is_not_served_is_a_status_naming_it(
    svc: RunsService, method: str, path: str, status: int, words: str
) -> None:
    body = {} if method == "POST" else None
    got, answer = await svc.call(method, f"k8s/{path}", "alice-token", body)
    assert got == status, answer
    assert answer["kind"] == "Status" and answer["code"] == status and words in answer["message"], answer


async def test_another_users_runs_are_out_of_reach(svc: RunsService) -> None:
    base = f"apis/trainer.kubeflow.org/v1alpha1/namespaces/{NS}/trainjobs"
    name = unique("mine")
    job = gpu_job(name)
    job["spec"]["trainer"]["resourcesPerNode"] = {"requests": {"cpu": 1}}
    status, _ = await svc.call("POST", f"k8s/{base}", "alice-token", job)
    assert status == 201
    status, _ = await svc.call("GET", f"k8s/{base}/{name}", "bob-token")
    assert status == 404
    status, answer = await svc.call("GET", f"k8s/{base}", "bob-token")
    assert status == 200 and answer["items"] == []
    status, _ = await svc.call("GET", f"k8s/api/v1/namespaces/{NS}/pods", "bob-token")
    assert status == 200
    status, answer = await svc.call("GET", f"k8s/{base}", "alice-noscope")
    assert status == 403 and "custom:hybridhub:runs" in answer["message"]
    status, _ = await svc.call("DELETE", f"k8s/{base}/{name}", "alice-token")
    assert status == 200
