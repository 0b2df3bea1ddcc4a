"""The unmodified Kubeflow TrainingClient against simcluster's Training Operator: PyTorchJobs that run."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Iterator
from typing import Any

import pytest
from kubeflow.training import TrainingClient, models
from kubeflow.training.utils import utils as sdk_utils
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from simcluster.testing import SimProcess
from tests.environment import needs
from tests.harness.waits import wait_for

# the process runtime needs root; without it pods fall back to process-loopback (test_loopback_runtime.py)
pytestmark = [
    needs(os.geteuid() == 0, "runs the replicas as processes in their own namespaces: needs root"),
    pytest.mark.timeout(120),
]

GROUP, VERSION, PLURAL = "kubeflow.org", "v1", "pytorchjobs"
NS = "team-a"
JOB_LABEL = "training.kubeflow.org/job-name"

CLUSTER_FILE = """
clusters:
  - name: onprem
    runtime: process
    podCIDR: 10.244.0.0/16
    timings: {pod_start: 0.05, pod_stop: 0.05}
    namespaces: [team-a]
    nodeGroups:
      - name: cpu
        count: 1
        capacity: {cpu: "16", memory: 64Gi}
"""

# A plain-socket rendezvous: rank 0 listens on MASTER_PORT for the peers the code expects (its first
# argument), each peer sends its RANK and WORLD_SIZE, and rank 0 answers whether the world adds up.
RENDEZVOUS = """
import os, socket, sys, time
rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
addr, port = os.environ["MASTER_ADDR"], int(os.environ["MASTER_PORT"])
expected = int(sys.argv[1])
if rank == 0:
    server = socket.create_server(("0.0.0.0", port))
    server.settimeout(20)
    peers = {}
    try:
        while len(peers) < expected - 1:
            conn, _ = server.accept()
            peer_rank, peer_world = conn.makefile().readline().split()
            peers[int(peer_rank)] = (int(peer_world), conn)
    except TimeoutError:
        pass
    ok = sorted(peers) == list(range(1, world)) and all(w == world for w, _ in peers.values())
    for _, conn in peers.values():
        conn.sendall(f"{'ok' if ok else 'mismatch'} {world}\\n".encode())
        conn.close()
    print(f"rank 0 of {world}: peers {sorted(peers)}")
    if not ok:
        print(f"world size mismatch: WORLD_SIZE={world} but {len(peers) + 1} joined")
        sys.exit(1)
else:
    deadline = time.monotonic() + 20
    while True:
        try:
            conn = socket.create_connection((addr, port), timeout=2)
            break
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)
    conn.sendall(f"{rank} {world}\\n".encode())
    conn.settimeout(20)
    reply = conn.makefile().readline().split()
    print(f"rank {rank} of {world}: master says {' '.join(reply) or 'nothing'}")
    print(f"{addr} is {conn.getpeername()[0]}")
    sys.exit(0 if reply[:1] == ["ok"] else 1)
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    tmp = tmp_path_factory.mktemp("pytorchjob")
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
def training(cfg: client.Configuration) -> TrainingClient:
    return TrainingClient(client_configuration=cfg, namespace=NS)


@pytest.fixture(scope="module")
def api(cfg: client.Configuration) -> Iterator[client.ApiClient]:
    api_client = client.ApiClient(cfg)
    yield api_client
    api_client.close()


def pytorchjob(
    name: str,
    command: list[str],
    *,
    workers: int = 1,
    master: bool = True,
    restart_policy: str | None = None,
    run_policy: dict[str, Any] | None = None,
) -> models.KubeflowOrgV1PyTorchJob:
    """A job built with the SDK's own helpers, as a notebook would build it."""
    container = sdk_utils.get_container_spec(name="pytorch", base_image="python:3.11-slim")
    container.command = command
    template = sdk_utils.get_pod_template_spec(containers=[container])
    job = sdk_utils.get_pytorchjob_template(
        name=name, namespace=NS, num_workers=workers + 1, worker_pod_template_spec=template
    )
    specs = job.spec.pytorch_replica_specs
    if not master:
        del specs["Master"]
        specs["Worker"].replicas = workers
    for spec in specs.values():
        spec.restart_policy = restart_policy
    if run_policy:
        job.spec.run_policy = models.KubeflowOrgV1RunPolicy(**run_policy)
    return job


def rendezvous(expected: int) -> list[str]:
    return ["python", "-c", RENDEZVOUS, str(expected)]


def raw(api: client.ApiClient, name: str) -> dict[str, Any]:
    return dict(client.CustomObjectsApi(api).get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name))


def pods_of(api: client.ApiClient, name: str) -> list[dict[str, Any]]:
    found = client.CoreV1Api(api).list_namespaced_pod(NS, label_selector=f"{JOB_LABEL}={name}")
    return [api.sanitize_for_serialization(p) for p in found.items]


def services_of(api: client.ApiClient, name: str) -> list[dict[str, Any]]:
    found = client.CoreV1Api(api).list_namespaced_service(NS, label_selector=f"{JOB_LABEL}={name}")
    return [api.sanitize_for_serialization(s) for s in found.items]


def conditions(obj: dict[str, Any]) -> dict[str, tuple[str, str, str]]:
    return {
        c["type"]: (c["status"], c.get("reason", ""), c.get("message", ""))
        for c in (obj.get("status") or {}).get("conditions") or []
    }


def patch_run_policy(api: client.ApiClient, name: str, **fields: Any) -> None:
    body = {"spec": {"runPolicy": fields}}
    client.CustomObjectsApi(api).patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, name, body)


def env_of(pod: dict[str, Any]) -> dict[str, str]:
    container = next(c for c in pod["spec"]["containers"] if c["name"] == "pytorch")
    return {e["name"]: e.get("value", "") for e in container.get("env") or []}


# ---------------------------------------------------------------------- the tests


def test_master_and_worker_rendezvous(training: TrainingClient, api: client.ApiClient) -> None:
    training.create_job(job=pytorchjob("ranks", rendezvous(2)))
    job = training.wait_for_job_conditions(
        "ranks", expected_conditions={"Succeeded"}, wait_timeout=60, polling_interval=1
    )
    assert training.is_job_succeeded("ranks")
    assert job.status.replica_statuses["Master"].succeeded == 1

    logs, _ = training.get_job_logs("ranks", is_master=False)
    assert logs["ranks-master-0"] == "rank 0 of 2: peers [1]\n"
    master_ip = client.CoreV1Api(api).read_namespaced_pod("ranks-master-0", NS).status.pod_ip
    # the worker reached the master by the name of its headless Service
    assert logs["ranks-worker-0"] == f"rank 1 of 2: master says ok 2\nranks-master-0 is {master_ip}\n"
    # following streams each pod's log through a watch, which drops the line ends
    followed, _ = training.get_job_logs("ranks", is_master=False, follow=True)
    assert followed == {pod: text.replace("\n", "") for pod, text in logs.items()}

    obj = raw(api, "ranks")
    conds = conditions(obj)
    assert conds["Created"] == ("True", "PyTorchJobCreated", "PyTorchJob ranks is created.")
    assert conds["Succeeded"] == (
        "True",
        "PyTorchJobSucceeded",
        "PyTorchJob ranks is successfully completed.",
    )
    assert conds["Running"][:2] == ("False", "PyTorchJobRunning")
    status = obj["status"]
    assert status["startTime"] <= status["completionTime"]
    assert status["replicaStatuses"]["Master"] == {
        "succeeded": 1,
        "selector": "training.kubeflow.org/job-name=ranks,training.kubeflow.org/operator-name="
        "pytorchjob-controller,training.kubeflow.org/replica-type=master",
    }
    # what the operator stamps on the replicas, and the headless Services that name them
    pods = {p["metadata"]["name"]: p for p in pods_of(api, "ranks")}
    master, worker = pods["ranks-master-0"], pods["ranks-worker-0"]
    assert master["metadata"]["labels"]["training.kubeflow.org/job-role"] == "master"
    assert "training.kubeflow.org/job-role" not in worker["metadata"]["labels"]
    assert env_of(worker)["MASTER_ADDR"] == "ranks-master-0"
    assert (env_of(master)["RANK"], env_of(worker)["RANK"], env_of(worker)["WORLD_SIZE"]) == ("0", "1", "2")
    assert [c["name"] for c in worker["spec"].get("initContainers") or []] == ["init-pytorch"]
    assert "initContainers" not in master["spec"]
    services = {s["metadata"]["name"]: s["spec"] for s in services_of(api, "ranks")}
    assert sorted(services) == ["ranks-master-0", "ranks-worker-0"]
    assert services["ranks-master-0"]["clusterIP"] == "None"
    assert services["ranks-master-0"]["ports"] == [
        {"name": "pytorchjob-port", "port": 23456, "protocol": "TCP", "targetPort": 23456}
    ]
    # cleanPodPolicy defaults to None: the finished pods stay
    assert {p["status"]["phase"] for p in pods.values()} == {"Succeeded"}


def test_wrong_world_size_fails_the_job(training: TrainingClient, api: client.ApiClient) -> None:
    """Three replicas for code written for two: rank 0 sees the world does not add up and fails."""
    job = pytorchjob("world", rendezvous(2), workers=2, restart_policy="Never")
    training.create_job(job=job)
    training.wait_for_job_conditions(
        "world", expected_conditions={"Failed"}, wait_timeout=60, polling_interval=1
    )
    assert training.is_job_failed("world")
    status, why, message = conditions(raw(api, "world"))["Failed"]
    assert (status, why) == ("True", "PyTorchJobFailed")
    assert re.fullmatch(
        r"PyTorchJob world is failed because \d (Master|Worker) replica\(s\) failed\.", message
    )
    logs, _ = training.get_job_logs("world")  # the master's log only, as the SDK does by default
    assert "world size mismatch: WORLD_SIZE=3 but 2 joined" in logs["world-master-0"]


def test_backoff_limit_and_clean_pod_policy(training: TrainingClient, api: client.ApiClient) -> None:
    """A worker-only job whose container keeps failing restarts in place until backoffLimit runs
    out; cleanPodPolicy All then deletes its pods and Services."""
    failing = ["python", "-c", "import sys; print('boom'); sys.exit(3)"]
    policy = {"backoff_limit": 1, "clean_pod_policy": "All"}
    training.create_job(job=pytorchjob("crash", failing, master=False, run_policy=policy))
    training.wait_for_job_conditions(
        "crash", expected_conditions={"Failed"}, wait_timeout=60, polling_interval=1
    )
    conds = conditions(raw(api, "crash"))
    assert conds["Failed"] == (
        "True",
        "PyTorchJobFailed",
        "Job crash has failed because it has reached the specified backoff limit",
    )
    wait_for(
        "crash's pods and Services to go",
        lambda: not pods_of(api, "crash") and not services_of(api, "crash"),
        30,
    )


def test_suspend_resume_and_delete(training: TrainingClient, api: client.ApiClient) -> None:
    sleeper = ["python", "-c", "import time; print('up', flush=True); time.sleep(60)"]
    training.create_job(job=pytorchjob("nap", sleeper, run_policy={"suspend": True}))
    conds = wait_for("nap suspended", lambda: conditions(raw(api, "nap")).get("Suspended"), 30)
    assert conds == ("True", "PyTorchJobSuspended", "PyTorchJob nap is suspended.")
    assert pods_of(api, "nap") == []

    patch_run_policy(api, "nap", suspend=False)
    training.wait_for_job_conditions(
        "nap", expected_conditions={"Running"}, wait_timeout=30, polling_interval=1
    )
    obj = raw(api, "nap")
    assert conditions(obj)["Suspended"] == ("False", "PyTorchJobResumed", "PyTorchJob nap is resumed.")
    assert obj["status"]["replicaStatuses"]["Master"]["active"] == 1
    assert len(pods_of(api, "nap")) == 2

    patch_run_policy(api, "nap", suspend=True)
    wait_for(
        "nap's pods and Services to go on suspend",
        lambda: not pods_of(api, "nap") and not services_of(api, "nap"),
        30,
    )
    conds = conditions(raw(api, "nap"))
    assert conds["Running"] == ("False", "PyTorchJobSuspended", "PyTorchJob nap is suspended.")
    assert conds["Suspended"][:2] == ("True", "PyTorchJobSuspended")

    patch_run_policy(api, "nap", suspend=False)
    wait_for(
        "nap's two pods running",
        lambda: len([p for p in pods_of(api, "nap") if p["status"].get("phase") == "Running"]) == 2,
        30,
    )
    training.delete_job("nap")
    wait_for(
        "nap's pods and Services to go on delete",
        lambda: not pods_of(api, "nap") and not services_of(api, "nap"),
        30,
    )


def test_a_job_kueue_manages_is_left_alone(training: TrainingClient, api: client.ApiClient) -> None:
    policy = {"managed_by": "kueue.x-k8s.io/multikueue"}
    training.create_job(job=pytorchjob("queued", ["true"], run_policy=policy))
    # a job the operator does take, made after it, shows the operator has had its turn
    training.create_job(job=pytorchjob("taken", ["true"], run_policy={"suspend": True}))
    wait_for("taken suspended", lambda: conditions(raw(api, "taken")).get("Suspended"), 30)
    assert raw(api, "queued").get("status") is None
    assert pods_of(api, "queued") == [] and services_of(api, "queued") == []
    training.delete_job("queued")
    training.delete_job("taken")


WEBHOOK = 'admission webhook "validator.pytorchjob.training-operator.kubeflow.org" denied the request: '


def bad_job(name: str, specs: dict[str, Any], **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name},
        "spec": {"pytorchReplicaSpecs": specs, **spec},
    }


def replica(replicas: int | None = 1, container: str = "pytorch", image: str = "python") -> dict[str, Any]:
    out: dict[str, Any] = {"template": {"spec": {"containers": [{"name": container, "image": image}]}}}
    if replicas is not None:
        out["replicas"] = replicas
    return out


@pytest.mark.parametrize(
    ("job", "message"),
    [
        (
            bad_job("two-masters", {"Master": replica(2)}),
            "spec.pytorchReplicaSpecs[Master].replicas: Forbidden: must be 1",
        ),
        (
            bad_job("no-pytorch", {"Worker": replica(container="main")}),
            "spec.pytorchReplicaSpecs[Worker].template.spec.containers: Required value: must have at "
            "least one container with name pytorch",
        ),
        (
            bad_job("chief", {"Chief": replica()}),
            'spec.pytorchReplicaSpecs[Chief]: Unsupported value: "Chief": supported values: '
            '"Master", "Worker"',
        ),
        (
            bad_job("1job", {"Worker": replica(image="")}),
            '[metadata.name: Invalid value: "1job": should match: a DNS-1035 label must consist of lower '
            "case alphanumeric characters or '-', start with an alphabetic character, and end with an "
            "alphanumeric character (e.g. 'my-name' or 'abc-123', regex used for validation is "
            "'[a-z]([-a-z0-9]*[a-z0-9])?'), spec.pytorchReplicaSpecs[Worker].template.spec.containers[0]."
            "image: Required value: must be required]",
        ),
        (
            bad_job("managed", {"Worker": replica()}, runPolicy={"managedBy": "me"}),
            'spec.runPolicy.managedBy: Unsupported value: "me": supported values: '
            '"kueue.x-k8s.io/multikueue", "kubeflow.org/training-operator"',
        ),
    ],
    ids=["master-replicas", "no-pytorch-container", "replica-type", "name-and-image", "managed-by"],
)
def test_webhook_refuses(api: client.ApiClient, job: dict[str, Any], message: str) -> None:
    custom = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as err:
        custom.create_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, job)
    assert err.value.status == 403
    status = json.loads(err.value.body or "{}")
    assert (status["reason"], status["message"]) == ("Forbidden", WEBHOOK + message)
    with pytest.raises(ApiException) as missing:
        custom.get_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, job["metadata"]["name"])
    assert missing.value.status == 404


def test_webhook_refuses_an_update_and_the_sdk_reports_it(
    training: TrainingClient, api: client.ApiClient
) -> None:
    custom = client.CustomObjectsApi(api)
    custom.create_namespaced_custom_object(
        GROUP, VERSION, NS, PLURAL, bad_job("held", {"Worker": replica()}, runPolicy={"suspend": True})
    )
    body = {"spec": {"pytorchReplicaSpecs": {"Master": replica(3)}}}
    with pytest.raises(ApiException) as err:
        custom.patch_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "held", body)
    assert err.value.status == 403
    assert "spec.pytorchReplicaSpecs[Master].replicas: Forbidden: must be 1" in str(err.value.body)
    assert "Master" not in raw(api, "held")["spec"]["pytorchReplicaSpecs"]
    custom.delete_namespaced_custom_object(GROUP, VERSION, NS, PLURAL, "held")

    # the SDK wraps the refusal in its own RuntimeError, the API's answer as the cause
    job = pytorchjob("sdk-refused", ["true"])
    job.spec.pytorch_replica_specs["Master"].replicas = 2
    with pytest.raises(RuntimeError, match="Failed to create PyTorchJob: team-a/sdk-refused") as failed:
        training.create_job(job=job)
    cause = failed.value.__context__
    assert isinstance(cause, ApiException) and cause.status == 403
