"""The unmodified Kubeflow TrainerClient against simcluster's Trainer: TrainJobs whose nodes really run."""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

import pytest
from kubeflow.trainer import CustomTrainer, KubernetesBackendConfig, TrainerClient
from kubernetes import client, config, watch
from kubernetes.client.rest import ApiException

from simcluster.testing import SimProcess
from tests.environment import needs
from tests.harness.waits import wait_for

# the process runtime needs root; without it pods fall back to process-loopback (test_loopback_runtime.py)
pytestmark = [
    needs(os.geteuid() == 0, "runs the training nodes as processes in their own namespaces: needs root"),
    pytest.mark.timeout(120),
]

GROUP, VERSION = "trainer.kubeflow.org", "v1alpha1"
NS = "team-a"

CLUSTER_FILE = """
clusters:
  - name: onprem
    runtime: process
    podCIDR: 10.229.0.0/16  # its own: the hub tests' session-wide simclusters use 10.240/16
    timings: {pod_start: 0.05, pod_stop: 0.05}
    namespaces: [team-a]
    nodeGroups:
      - name: cpu
        count: 1
        capacity: {cpu: "16", memory: 64Gi}
      - name: gpu
        count: 1
        capacity: {cpu: "16", memory: 64Gi}
        gpu: {count: 4, product: NVIDIA-L40S}
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    tmp = tmp_path_factory.mktemp("trainer")
    (tmp / "clusters.yaml").write_text(CLUSTER_FILE)
    proc = SimProcess(tmp / "sim", config=tmp / "clusters.yaml").start()
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def cfg(sim: SimProcess) -> client.Configuration:
    configuration = client.Configuration()
    config.load_kube_config(
        config_file=str(sim.kubeconfig), context="onprem", client_configuration=configuration
    )
    return configuration


@pytest.fixture(scope="module")
def trainer(cfg: client.Configuration) -> TrainerClient:
    return TrainerClient(KubernetesBackendConfig(namespace=NS, client_configuration=cfg))


@pytest.fixture(scope="module")
def api(cfg: client.Configuration) -> Iterator[client.ApiClient]:
    api_client = client.ApiClient(cfg)
    yield api_client
    api_client.close()


def pods_of(api: client.ApiClient, name: str) -> list[dict[str, Any]]:
    selector = f"jobset.sigs.k8s.io/jobset-name={name}"
    found = client.CoreV1Api(api).list_namespaced_pod(NS, label_selector=selector)
    return [api.sanitize_for_serialization(p) for p in found.items]


def trainjob(api: client.ApiClient, name: str) -> dict[str, Any]:
    return dict(
        client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, NS, "trainjobs", name)
    )


def conditions(obj: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {
        c["type"]: (c["status"], c.get("reason", ""), c.get("message", ""))
        for c in (obj.get("status") or {}).get("conditions") or []
    }


# ---------------------------------------------------------------------- the functions the nodes run


def exchange_ranks() -> None:
    """Rank 0 listens beside torchrun's port; the other rank connects; each prints what it got."""
    import os
    import socket
    import time  # the SDK runs this function's source alone: the module's imports are not there

    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
    try:
        socket.create_server(("0.0.0.0", port)).close()
        held = False
    except OSError:
        held = True
    if rank == 0:
        with socket.create_server(("0.0.0.0", port + 1)) as server:
            server.settimeout(45)  # a peer that never comes fails the node, rather than hanging it
            conn, _ = server.accept()
            with conn:
                conn.sendall(b"0\n")
                peer = conn.makefile().readline().strip()
    else:
        for _ in range(300):
            try:
                conn = socket.create_connection((addr, port + 1), timeout=5)
                break
            except OSError:
                time.sleep(0.1)
        with conn:
            conn.sendall(f"{rank}\n".encode())
            peer = conn.makefile().readline().strip()
    local, group = os.environ["LOCAL_RANK"], os.environ["GROUP_RANK"]
    print(f"rank={rank} world={world} local={local} group={group} peer={peer} port-held={held}", flush=True)


# ---------------------------------------------------------------------- tests


def test_a_two_node_custom_trainer_rendezvouses_over_tcp_and_its_logs_come_back(
    trainer: TrainerClient, api: client.ApiClient
) -> None:
    name = trainer.train(
        trainer=CustomTrainer(func=exchange_ranks, num_nodes=2, resources_per_node={"cpu": 1}),
    )
    job = trainer.wait_for_job_status(name, timeout=60, polling_interval=1)
    assert job.status == "Complete" and job.num_nodes == 2
    assert sorted(s.name for s in job.steps) == ["node-0", "node-1"]
    logs = list(trainer.get_job_logs(name))
    assert logs == ["rank=0 world=2 local=0 group=0 peer=1 port-held=True"]
    node1 = list(trainer.get_job_logs(name, step="node-1"))
    assert node1 == ["rank=1 world=2 local=0 group=1 peer=0 port-held=False"]
    done = trainjob(api, name)
    assert conditions(done)["Complete"] == ("True", "AllJobsCompleted", "jobset completed successfully")
    pods = pods_of(api, name)
    assert len(pods) == 2
    for pod in pods:
        meta = pod["metadata"]
        index = meta["labels"]["batch.kubernetes.io/job-completion-index"]
        assert meta["name"].startswith(f"{name}-node-0-{index}-")
        assert meta["annotations"]["batch.kubernetes.io/job-completion-index"] == index
        assert meta["labels"]["jobset.sigs.k8s.io/replicatedjob-name"] == "node"
        assert meta["labels"]["jobset.sigs.k8s.io/job-index"] == "0"
        assert pod["spec"]["hostname"] == f"{name}-node-0-{index}" and pod["spec"]["subdomain"] == name
        (container,) = pod["spec"]["containers"]
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["PET_NNODES"] == "2" and env["PET_NPROC_PER_NODE"] == "1"
        assert env["PET_MASTER_ADDR"] == f"{name}-node-0-0.{name}" and env["PET_MASTER_PORT"] == "29500"
    assert [s.name for s in trainer.list_jobs()].count(name) == 1
    # torch-distributed sets no backoffLimit: a failing node restarts in place up to the API's 6 times
    job = client.BatchV1Api(api).read_namespaced_job(f"{name}-node-0", NS)
    assert (job.spec.backoff_limit, job.spec.template.spec.restart_policy) == (6, "OnFailure")
    assert (job.spec.completion_mode, job.spec.completions, job.spec.parallelism) == ("Indexed", 2, 2)
    # JobSet's headless Service names node 0 for the others
    core = client.CoreV1Api(api)
    service = core.read_namespaced_service(name, NS)
    assert service.spec.cluster_ip == "None" and service.spec.publish_not_ready_addresses is True
    assert service.spec.selector == {"jobset.sigs.k8s.io/jobset-name": name}
    # deleting the TrainJob takes its Jobs, their pods and the Service with it
    trainer.delete_job(name)
    wait_for("the TrainJob's pods to go", lambda: pods_of(api, name) == [], 30)
    with pytest.raises(ApiException):
        core.read_namespaced_service(name, NS)
    assert (
        client.BatchV1Api(api)
        .list_namespaced_job(NS, label_selector=f"jobset.sigs.k8s.io/jobset-name={name}")
        .items
        == []
    )


def raise_after_rendezvous() -> None:
    """Every rank fails, so each node's torchrun exits 1 and the kubelet restarts it in place."""
    import os

    raise ValueError(f"rank {os.environ['RANK']} gives up")


def print_rank() -> None:
    import os

    print(f"rank={os.environ['RANK']} of {os.environ['WORLD_SIZE']}", flush=True)


QUICK_FAIL_RUNTIME = {
    "apiVersion": f"{GROUP}/{VERSION}",
    "kind": "TrainingRuntime",
    "metadata": {"name": "torch-quick-fail", "labels": {"trainer.kubeflow.org/framework": "torch"}},
    "spec": {
        "mlPolicy": {"numNodes": 1, "torch": {}},
        "template": {
            "spec": {
                "replicatedJobs": [
                    {
                        "name": "node",
                        "template": {
                            "metadata": {
                                "labels": {"trainer.kubeflow.org/trainjob-ancestor-step": "trainer"}
                            },
                            # two failures are allowed: the third fails the Job, and so the TrainJob
                            "spec": {
                                "backoffLimit": 2,
                                "template": {"spec": {"containers": [{"name": "node", "image": "torch"}]}},
                            },
                        },
                    }
                ]
            }
        },
    },
}


def test_a_failing_function_restarts_in_place_until_the_backoff_limit_then_the_trainjob_fails(
    trainer: TrainerClient, api: client.ApiClient
) -> None:
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, "trainingruntimes", QUICK_FAIL_RUNTIME)
    assert "torch-quick-fail" in [r.name for r in trainer.list_runtimes()]
    name = trainer.train(
        runtime="torch-quick-fail",
        trainer=CustomTrainer(func=raise_after_rendezvous, num_nodes=2, resources_per_node={"cpu": 1}),
    )
    # the pods go once the Job fails: a watch sees every restart they had
    restarts: dict[str, int] = {}
    stream = watch.Watch()
    selector = f"jobset.sigs.k8s.io/jobset-name={name}"
    for event in stream.stream(
        client.CoreV1Api(api).list_namespaced_pod, NS, label_selector=selector, timeout_seconds=60
    ):
        pod = event["object"]
        for cs in pod.status.container_statuses or []:
            restarts[pod.metadata.name] = max(restarts.get(pod.metadata.name, 0), cs.restart_count)
        if event["type"] == "DELETED" and not pods_of(api, name):
            stream.stop()
    with pytest.raises(RuntimeError, match=f"TrainJob {name} is Failed"):
        trainer.wait_for_job_status(name, timeout=10, polling_interval=1)
    failed = trainjob(api, name)
    assert conditions(failed)["Failed"] == (
        "True",
        "FailedJobs",
        f"jobset failed due to one or more job failures (first failed job: {name}-node-0)",
    )
    assert failed["status"]["jobsStatus"] == [
        {"name": "node", "ready": 0, "succeeded": 0, "failed": 1, "active": 0, "suspended": 0}
    ]
    # both nodes restarted in place; the third failure in all (backoffLimit 2) ended the Job
    assert len(restarts) == 2 and all(n >= 1 for n in restarts.values()), restarts
    assert 3 <= sum(restarts.values()) <= 4, restarts
    job = client.BatchV1Api(api).read_namespaced_job(f"{name}-node-0", NS)
    assert job.spec.template.spec.restart_policy == "OnFailure" and job.spec.backoff_limit == 2
    assert [(c.type, c.reason) for c in job.status.conditions if c.type == "Failed"] == [
        ("Failed", "BackoffLimitExceeded")
    ]
    trainer.delete_job(name)
    custom.delete_namespaced_custom_object(GROUP, VERSION, NS, "trainingruntimes", "torch-quick-fail")


def test_gpu_counts_arrive_as_floats_and_torchrun_picks_its_process_count(
    trainer: TrainerClient, api: client.ApiClient
) -> None:
    name = trainer.train(
        trainer=CustomTrainer(func=print_rank, num_nodes=1, resources_per_node={"gpu": 2, "cpu": 1}),
    )
    body = trainjob(api, name)
    # the SDK sends JSON numbers, not quantity strings
    assert body["spec"]["trainer"]["resourcesPerNode"]["limits"] == {"nvidia.com/gpu": 2.0, "cpu": 1.0}
    trainer.wait_for_job_status(name, timeout=60, polling_interval=1)
    (pod,) = pods_of(api, name)
    (container,) = pod["spec"]["containers"]
    assert container["resources"]["limits"] == {"cpu": "1", "nvidia.com/gpu": "2"}
    env = {e["name"]: e.get("value") for e in container["env"]}
    assert env["PET_NPROC_PER_NODE"] == "auto"  # GPUs asked for: torchrun counts them
    lines = list(trainer.get_job_logs(name, follow=True))
    workers = os.cpu_count() or 1  # no CUDA device is visible, so "auto" means the CPU count
    assert sorted(lines) == sorted(f"rank={r} of {workers}" for r in range(workers))
    trainer.delete_job(name)


def a_trainjob(name: str, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "TrainJob",
        "metadata": {"name": name},
        "spec": {
            "runtimeRef": {"name": "torch-distributed"},
            "trainer": {"command": ["bash", "-c", "sleep 3; echo done"], "numNodes": 2},
            **spec,
        },
    }


def test_a_suspended_trainjob_runs_no_pods_until_resumed(
    trainer: TrainerClient, api: client.ApiClient
) -> None:
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, "trainjobs", a_trainjob("held", suspend=True))
    wait_for("held suspended", lambda: "Suspended" in conditions(trainjob(api, "held")), 30)
    assert conditions(trainjob(api, "held"))["Suspended"] == ("True", "Suspended", "TrainJob is suspended")
    job = client.BatchV1Api(api).read_namespaced_job("held-node-0", NS)
    assert job.spec.suspend is True and pods_of(api, "held") == []

    def patch(suspend: bool) -> None:
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, NS, "trainjobs", "held", {"spec": {"suspend": suspend}}
        )

    patch(False)
    running = wait_for(
        "held's pods running",
        lambda: [p for p in pods_of(api, "held") if p["status"].get("phase") == "Running"] or None,
        30,
    )
    assert {p["metadata"]["labels"]["batch.kubernetes.io/job-completion-index"] for p in running} <= {
        "0",
        "1",
    }
    assert conditions(trainjob(api, "held"))["Suspended"] == ("False", "Resumed", "TrainJob is resumed")
    # suspending a running TrainJob takes its pods away
    patch(True)
    wait_for("held's pods to go on suspend", lambda: pods_of(api, "held") == [], 30)
    assert conditions(trainjob(api, "held"))["Suspended"][:2] == ("True", "Suspended")
    patch(False)
    wait_for(
        "held's pods running again",
        lambda: [p for p in pods_of(api, "held") if p["status"].get("phase") == "Running"] or None,
        30,
    )
    # the SDK follows node 0's log while it runs, to its end
    assert list(trainer.get_job_logs("held", follow=True)) == ["done"]
    wait_for("held complete", lambda: "Complete" in conditions(trainjob(api, "held")), timeout=30)
    custom.delete_namespaced_custom_object(GROUP, VERSION, NS, "trainjobs", "held")


def test_a_trainjob_managed_by_another_controller_is_left_alone(api: client.ApiClient) -> None:
    custom = client.CustomObjectsApi(api)
    body = a_trainjob("elsewhere", managedBy="kueue.x-k8s.io/multikueue")
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, "trainjobs", body)
    # a TrainJob the controller does take, made after it, shows the controller has had its turn
    custom.create_namespaced_custom_object(GROUP, VERSION, NS, "trainjobs", a_trainjob("here", suspend=True))
    wait_for("here suspended", lambda: "Suspended" in conditions(trainjob(api, "here")), 30)
    left = trainjob(api, "elsewhere")
    assert left["spec"]["managedBy"] == "kueue.x-k8s.io/multikueue" and "status" not in left
    assert pods_of(api, "elsewhere") == []
    with pytest.raises(ApiException) as refused:
        client.BatchV1Api(api).read_namespaced_job("elsewhere-node-0", NS)
    assert refused.value.status == 404
    # the CRD allows only the two managers
    bad = a_trainjob("someone", managedBy="example.com/mine")
    with pytest.raises(ApiException) as invalid:
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, "trainjobs", bad)
    assert invalid.value.status == 422
    assert json.loads(invalid.value.body)["message"] == (
        'TrainJob.trainer.kubeflow.org "someone" is invalid: spec.managedBy: Invalid value: "string": '
        "ManagedBy must be trainer.kubeflow.org/trainjob-controller or kueue.x-k8s.io/multikueue if set"
    )
    for name in ("elsewhere", "here"):
        custom.delete_namespaced_custom_object(GROUP, VERSION, NS, "trainjobs", name)


@pytest.mark.parametrize(
    ("ref", "message"),
    [
        (
            {"name": "nope"},
            'spec.RuntimeRef: Invalid value: v1alpha1.RuntimeRef{Name:"nope", '
            "APIGroup:(*string)(0xc000a1e010), Kind:(*string)(0xc000a1e020)}: "
            'clustertrainingruntimes.trainer.kubeflow.org "nope" not found: '
            "specified clusterTrainingRuntime must be created before the TrainJob is created",
        ),
        (
            {"name": "torch-distributed", "kind": "TrainingRuntime"},
            'spec.RuntimeRef: Invalid value: v1alpha1.RuntimeRef{Name:"torch-distributed", '
            "APIGroup:(*string)(0xc000a1e010), Kind:(*string)(0xc000a1e020)}: "
            'trainingruntimes.trainer.kubeflow.org "torch-distributed" not found: '
            "specified trainingRuntime must be created before the TrainJob is created",
        ),
        (
            {"name": "x", "kind": "JobSet", "apiGroup": "jobset.x-k8s.io"},
            "unsupported runtime: JobSet.jobset.x-k8s.io",
        ),
    ],
)
def test_a_trainjob_naming_a_missing_runtime_is_refused_by_the_webhook(
    api: client.ApiClient, ref: dict[str, str], message: str
) -> None:
    custom = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as refused:
        custom.create_namespaced_custom_object(
            GROUP, VERSION, NS, "trainjobs", a_trainjob("orphan", runtimeRef=ref)
        )
    assert refused.value.status == 403
    status = json.loads(refused.value.body)
    assert status["reason"] == "Forbidden"
    assert status["message"] == (
        f'admission webhook "validator.trainjob.trainer.kubeflow.org" denied the request: {message}'
    )
    # nothing is left behind
    names = [
        t["metadata"]["name"]
        for t in custom.list_namespaced_custom_object(GROUP, VERSION, NS, "trainjobs")["items"]
    ]
    assert "orphan" not in names
