"""Users' runs through a real hub: the unmodified SDKs reach the service at the hub's public URL with
nothing but the user's hub token, and their runs run in the user's namespace of a simcluster."""

# no "from __future__ import annotations": Hera reads the script functions' annotations as classes
import importlib.util
import json
import re
import shutil
import tempfile
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import pytest
from hera.workflows import DAG, Resources, Task, Workflow, WorkflowsService, script
from kubernetes import client

from simcluster.testing import SimProcess
from spawner.core.labels import GPU, PRODUCT_LABEL
from tests.harness.cleanup import CLUSTERS
from tests.harness.hub import HubProcess
from tests.harness.service_api import call, user_token
from tests.harness.waits import wait_for

pytestmark = pytest.mark.timeout(180)

NS = "default"  # what the SDKs name: the service takes it for the user's own run namespace


def run_namespace(user: str) -> str:
    return f"hybridhub-runs-{user}"


@pytest.fixture(scope="module")
def runs_hub(service_hub: HubProcess, hsim: SimProcess) -> Iterator[HubProcess]:
    """The module's hub with the service; afterwards the users' run namespaces are deleted, so the
    session's simclusters hold nothing of this module's."""
    yield service_hub
    for cluster in CLUSTERS:
        for user in ("alice", "bob"):
            hsim.kubectl(
                "delete", "namespace", run_namespace(user), "--wait=false", context=cluster, check=False
            )


@pytest.fixture(scope="module")
def alice(runs_hub: HubProcess) -> str:
    return user_token(runs_hub, "alice")


@pytest.fixture(scope="module")
def bob(runs_hub: HubProcess) -> str:
    return user_token(runs_hub, "bob")


def service_url(hub: HubProcess) -> str:
    return f"{hub.public_url}/services/hybridhub/"


def hera(hub: HubProcess, token: str) -> WorkflowsService:
    # the trailing slash matters: Hera joins its paths to the host with urljoin
    return WorkflowsService(host=f"{service_url(hub)}argo/", token=token, namespace=NS)


def configuration(hub: HubProcess, token: str) -> client.Configuration:
    """What a notebook's kubeconfig gives the Kubeflow SDKs: the service's k8s endpoint, the hub token."""
    cfg = client.Configuration()
    cfg.host = f"{service_url(hub)}k8s"
    cfg.api_key = {"authorization": token}
    cfg.api_key_prefix = {"authorization": "Bearer"}
    return cfg


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def read_text(hub: HubProcess, path: str, token: str) -> tuple[int, str]:
    """A GET through the proxy whose body is not one JSON document (an NDJSON log)."""
    req = urllib.request.Request(service_url(hub) + path, headers={"Authorization": f"Bearer {token}"})
    try:
        with urllib.request.urlopen(req, timeout=60) as resp:
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")


def no_run_pods_left(hsim: SimProcess, user: str = "alice") -> None:
    """Until the user's run namespace has no pods in any cluster: what a deleted run leaves goes
    before the module's check of the session's pods."""

    def pods() -> list[str]:
        return [
            f"{cluster}/{name}"
            for cluster in CLUSTERS
            for name in hsim.kubectl(
                "get", "pods", "-n", run_namespace(user), "-o", "name", context=cluster, check=False
            ).stdout.split()
        ]

    wait_for(f"{user}'s run pods to go", pods, 60, until=lambda left: left == [], every=0.5)


def gpu_products_of_pods(hsim: SimProcess, cluster: str, namespace: str) -> dict[str, int]:
    """The GPUs the pods of ``namespace`` hold, by the product of the node each runs on."""
    pods = json.loads(hsim.kubectl("get", "pods", "-n", namespace, "-o", "json", context=cluster).stdout)
    nodes = json.loads(hsim.kubectl("get", "nodes", "-o", "json", context=cluster).stdout)
    product = {n["metadata"]["name"]: n["metadata"]["labels"].get(PRODUCT_LABEL) for n in nodes["items"]}
    held: dict[str, int] = {}
    for pod in pods["items"]:
        gpus = sum(
            int((c.get("resources") or {}).get("limits", {}).get(GPU, 0)) for c in pod["spec"]["containers"]
        )
        if gpus:
            where = str(product[pod["spec"]["nodeName"]])
            held[where] = held.get(where, 0) + gpus
    return held


@script(image="python:3.12", resources=Resources(gpus=2))
def train(epochs: int) -> None:
    for i in range(epochs):
        print(f"epoch {i} loss={1.0 / (i + 1):.3f}")


@script(image="python:3.12")
def prep() -> None:
    print("prepared")


def test_a_hera_dag_with_a_gpu_step_succeeds_and_its_logs_come_back(
    runs_hub: HubProcess, hsim: SimProcess, alice: str, bob: str
) -> None:
    name = unique("dag")
    with (
        Workflow(name=name, entrypoint="main", namespace=NS, workflows_service=hera(runs_hub, alice)) as w,
        DAG(name="main"),
    ):
        # a script called in a DAG makes a Task (Hera's types say Step or Task)
        cast(Task, prep()) >> cast(Task, train(arguments={"epochs": 3}))
    created = w.create()
    assert created.metadata is not None and created.metadata.namespace == run_namespace("alice")
    try:
        w.wait(1)  # Hera's own polling: a run held back for admission reads as Running meanwhile
        done = hera(runs_hub, alice).get_workflow(name)
        assert done.status is not None and done.status.phase == "Succeeded", done.status
        # Hera's own workflow_logs() fails on any log of more than one line (argo-workflows#8525), so
        # the NDJSON is read here as Argo Server sends it: one {"result": {...}} per line
        status, text = read_text(
            runs_hub, f"argo/api/v1/workflows/{NS}/{name}/log?logOptions.container=main", alice
        )
        assert status == 200, text
        entries = [json.loads(line)["result"] for line in text.splitlines() if line.strip()]
        lines = [e["content"] for e in entries]
        assert "prepared" in lines and "epoch 2 loss=0.333" in lines, lines
        assert len({e["podName"] for e in entries}) == 2  # the prep and the train step
        assert gpu_products_of_pods(hsim, "onprem", run_namespace("alice")) == {"NVIDIA-A100-SXM4-80GB": 2}
        status, answer = call(runs_hub, "GET", f"argo/api/v1/workflows/{NS}/{name}", bob)
        assert status == 404, answer  # another user's workflow
        status, listing = call(runs_hub, "GET", "api/runs", alice)
        assert status == 200, listing
        (row,) = [r for r in listing["runs"] if r["name"] == name]
        assert (row["kind"], row["cluster"], row["phase"], row["gpus"]) == (
            "Workflow",
            "onprem",
            "Succeeded",
            2,
        )
    finally:
        hera(runs_hub, alice).delete_workflow(name)
    no_run_pods_left(hsim)


def test_katib_tune_returns_the_trial_that_really_scored_best(
    runs_hub: HubProcess, hsim: SimProcess, alice: str
) -> None:
    import kubeflow.katib as katib_sdk
    from kubeflow.katib import KatibClient  # type: ignore[attr-defined]  # the SDK's documented import

    def objective(parameters: dict[str, str]) -> None:
        x = float(parameters["x"])
        print(f"loss={(x - 0.33) ** 2:.6f}")

    katib = KatibClient(client_configuration=configuration(runs_hub, alice), namespace=NS)
    name = unique("tune")
    katib.tune(
        name=name,
        objective=objective,
        parameters={"x": katib_sdk.search.double(min=0.1, max=0.5, step=0.1)},  # type: ignore[attr-defined]
        algorithm_name="grid",
        objective_metric_name="loss",
        objective_type="minimize",
        max_trial_count=5,
        parallel_trial_count=3,
        resources_per_trial={"cpu": "1"},
        retain_trials=True,
    )
    try:
        katib.wait_for_experiment_condition(name, timeout=120, polling_interval=1)
        optimal = katib.get_optimal_hyperparameters(name)
        assert optimal is not None and optimal.parameter_assignments is not None
        # the grid's 0.3 is the point nearest 0.33
        assert [round(float(p.value), 6) for p in optimal.parameter_assignments] == [0.3]
        # and the trial Katib names best is the one whose own log shows the least loss
        losses = {}
        for trial in katib.list_trials(name):
            log = "\n".join(katib.get_job_logs(name, trial.metadata.name))
            losses[trial.metadata.name] = float(log.rpartition("loss=")[2].split()[0])
        assert len(losses) == 5
        assert min(losses, key=lambda t: losses[t]) == optimal.best_trial_name, losses
        assert losses[optimal.best_trial_name] == 0.0009, losses
    finally:
        katib.delete_experiment(name)
    no_run_pods_left(hsim)


def exchange_ranks() -> None:
    import os

    print(f"rank={os.environ.get('RANK')} world={os.environ.get('WORLD_SIZE')}")


def test_trainer_client_trains_on_two_nodes_and_its_logs_come_back(
    runs_hub: HubProcess, hsim: SimProcess, alice: str
) -> None:
    from kubeflow.trainer import CustomTrainer, KubernetesBackendConfig, TrainerClient

    trainer = TrainerClient(
        KubernetesBackendConfig(namespace=NS, client_configuration=configuration(runs_hub, alice))
    )
    name = trainer.train(
        trainer=CustomTrainer(func=exchange_ranks, num_nodes=2, resources_per_node={"cpu": 1})
    )
    try:
        job = trainer.wait_for_job_status(name, timeout=60, polling_interval=1)
        assert job.status == "Complete" and job.num_nodes == 2
        assert sorted(s.name for s in job.steps) == ["node-0", "node-1"]
        assert list(trainer.get_job_logs(name)) == ["rank=0 world=2"]  # node 0's log, as the SDK reads it
    finally:
        trainer.delete_job(name)
    no_run_pods_left(hsim)


def test_a_pytorchjob_from_the_training_client_succeeds(
    runs_hub: HubProcess, hsim: SimProcess, alice: str
) -> None:
    from kubeflow.training import TrainingClient  # type: ignore[attr-defined]  # the documented import
    from kubeflow.training.utils import utils as sdk_utils

    training = TrainingClient(client_configuration=configuration(runs_hub, alice), namespace=NS)
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
    training.create_job(job=job)
    try:
        training.wait_for_job_conditions(
            name, expected_conditions={"Succeeded"}, wait_timeout=60, polling_interval=1
        )
        logs, _ = training.get_job_logs(name, is_master=False)
        assert logs == {f"{name}-master-0": "rank 0 of 2\n", f"{name}-worker-0": "rank 1 of 2\n"}
    finally:
        training.delete_job(name)
    no_run_pods_left(hsim)


def gang_job(name: str, seconds: float, *, gpus: int = 4, product: str = "NVIDIA-L40S") -> dict[str, object]:
    """A PyTorchJob of a master and a worker with 4 L40S GPUs each: on-prem has two 4-GPU L40S nodes,
    room for one such gang at a time."""
    pod = {
        "spec": {
            "nodeSelector": {PRODUCT_LABEL: product},
            "containers": [
                {
                    "name": "pytorch",
                    "image": "python:3.12",
                    "command": ["python", "-c", f"import time; time.sleep({seconds}); print('done')"],
                    "resources": {"limits": {GPU: str(gpus)}},
                }
            ],
        }
    }
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        # pinned: with auto, a gang that waits long for on-prem may go to EKS's L40S pool instead
        "metadata": {"name": name, "labels": {"hybridhub.io/cluster": "onprem"}},
        "spec": {
            "pytorchReplicaSpecs": {
                "Master": {"replicas": 1, "restartPolicy": "Never", "template": pod},
                "Worker": {"replicas": 1, "restartPolicy": "Never", "template": pod},
            }
        },
    }


def test_two_gpu_gangs_on_room_for_one_never_deadlock(
    runs_hub: HubProcess, hsim: SimProcess, alice: str
) -> None:
    """Each job wants 8 GPUs at once; the second waits, held back whole, then runs after the first."""
    jobs = f"k8s/apis/kubeflow.org/v1/namespaces/{NS}/pytorchjobs"
    first, second = unique("gang-a"), unique("gang-b")
    try:
        _two_gangs(runs_hub, hsim, alice, jobs, first, second)
    finally:  # a failure here leaves no run holding GPUs for the tests after it
        deleted = [call(runs_hub, "DELETE", f"{jobs}/{name}", alice)[0] for name in (first, second)]
    assert deleted == [200, 200]
    no_run_pods_left(hsim)


def _two_gangs(
    runs_hub: HubProcess, hsim: SimProcess, alice: str, jobs: str, first: str, second: str
) -> None:
    for name, seconds in ((first, 6), (second, 0.5)):
        status, body = call(runs_hub, "POST", jobs, alice, gang_job(name, seconds))
        assert status == 201, body

    def row(name: str) -> dict[str, Any]:
        status, body = call(runs_hub, "GET", "api/runs", alice)
        assert status == 200, body
        return next(r for r in body["runs"] if r["name"] == name)

    wait_for("the first gang to be let go", lambda: row(first)["state"] == "admitted", 30)
    # the second waits in the queue (the pass that let the first go may have run while the second's
    # create was still on its way; the next one places it in the queue)
    waiting = wait_for("the second gang in the queue", lambda: row(second), 10, until=lambda r: "queue" in r)
    assert row(first)["state"] == "admitted"
    assert waiting["state"] == "queued" and waiting["phase"] == "Queued", waiting
    assert waiting["queue"]["position"] == 1, waiting
    # held back whole: none of its pods exists while the first holds the GPUs
    pods = hsim.kubectl(
        "get",
        "pods",
        "-n",
        run_namespace("alice"),
        "-l",
        f"training.kubeflow.org/job-name={second}",
        "-o",
        "name",
    ).stdout.split()
    assert pods == []

    def succeeded(name: str) -> bool:
        status, job = call(runs_hub, "GET", f"{jobs}/{name}", alice)
        assert status == 200, job
        conditions = (job.get("status") or {}).get("conditions") or []
        return any(c["type"] == "Succeeded" and c["status"] == "True" for c in conditions)

    wait_for("both gangs to succeed", lambda: succeeded(first) and succeeded(second), 90, every=0.5)


def test_a_token_without_the_runs_scope_is_refused_and_another_users_run_is_not_found(
    runs_hub: HubProcess, hsim: SimProcess, alice: str, bob: str
) -> None:
    # a token alice made for the service alone: it may reach the service, but not submit or read runs
    only_access = {"scopes": ["access:services!service=hybridhub"]}
    narrow = runs_hub.api("POST", "/users/alice/tokens", only_access)["token"]
    status, answer = call(runs_hub, "GET", f"argo/api/v1/workflows/{NS}", narrow)
    assert status == 403 and "custom:hybridhub:runs" in answer["message"], answer
    trainjobs = f"k8s/apis/trainer.kubeflow.org/v1alpha1/namespaces/{NS}/trainjobs"
    status, answer = call(runs_hub, "GET", trainjobs, narrow)
    assert status == 403 and "custom:hybridhub:runs" in answer["message"], answer
    status, answer = call(runs_hub, "GET", "api/runs", narrow)
    assert status == 403, answer
    # bob's token holds the scope, but runs are each user's own: alice's is not found, not refused,
    # just as a name of his own that he never used
    name = unique("mine")
    job = {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": name},
        "spec": {
            "runtimeRef": {"kind": "ClusterTrainingRuntime", "name": "torch-distributed"},
            "trainer": {"numNodes": 1, "command": ["python", "-c", "print('hi')"]},
        },
    }
    status, answer = call(runs_hub, "POST", trainjobs, alice, job)
    assert status == 201, answer
    try:
        status, answer = call(runs_hub, "GET", f"{trainjobs}/{name}", bob)
        assert status == 404, answer
        status, answer = call(runs_hub, "GET", trainjobs, bob)
        assert status == 200 and answer["items"] == [], answer
        status, answer = call(runs_hub, "DELETE", f"{trainjobs}/{name}", bob)
        assert status == 404, answer
        status, answer = call(runs_hub, "GET", "api/runs", bob)
        assert status == 200 and name not in json.dumps(answer), answer
    finally:
        status, answer = call(runs_hub, "DELETE", f"{trainjobs}/{name}", alice)
        assert status == 200, answer
    no_run_pods_left(hsim)


@pytest.mark.parametrize(
    "path",
    [f"argo/api/v1/workflows/{NS}", f"k8s/apis/kubeflow.org/v1beta1/namespaces/{NS}/experiments", "api/runs"],
)
def test_a_token_the_hub_does_not_know_is_401(runs_hub: HubProcess, path: str) -> None:
    status, answer = call(runs_hub, "GET", path, "not-a-hub-token")
    assert status == 401, answer


# ------------------------------------------------------------------------------ backup pipelines


@script(image="python:3.12", resources=Resources(gpus=1))
def record_step(path: str, step: str) -> None:
    with open(path, "a") as out:
        out.write(step + "\n")


def record_node(path: str, run: str) -> None:
    import os

    with open(path, "a") as out:
        out.write(f"{run}:{os.environ.get('RANK', '0')}\n")  # one line per training process


KATIB_OBJECTIVE = """
def objective(parameters):
    x = float(parameters["x"])
    with open({path!r}, "a") as out:
        out.write("{name}:" + parameters["x"] + "\\n")
    print(f"loss={{(x - 0.33) ** 2:.6f}}")
"""


@pytest.fixture
def steps_log(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A file every step of the test's runs appends a line to, which the run pods (processes of
    another user) can write: each line once means each step ran once."""
    folder = Path(tempfile.mkdtemp(prefix="hybridhub-steps-", dir="/tmp"))
    folder.chmod(0o777)
    log = folder / "steps.log"
    log.touch()
    log.chmod(0o666)
    yield log
    shutil.rmtree(folder, ignore_errors=True)


def katib_objective(folder: Path, path: Path, name: str) -> Any:
    """The Katib objective as a function of its own module: the SDK sends the function's source, so
    the log's path is written into it."""
    module = folder / f"objective_{name.replace('-', '_')}.py"
    module.write_text(KATIB_OBJECTIVE.format(path=str(path), name=name))
    spec = importlib.util.spec_from_file_location(module.stem, module)
    assert spec is not None and spec.loader is not None
    loaded = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(loaded)
    return loaded.objective


def fill_onprem(hsim: SimProcess) -> list[str]:
    """Other work that holds every on-prem GPU (two 8-GPU A100 nodes, two 4-GPU L40S nodes) for an
    hour: pods of the cluster's own, outside the hub."""
    names = []
    for i, (gpus, product) in enumerate(
        [(8, "NVIDIA-A100-SXM4-80GB"), (8, "NVIDIA-A100-SXM4-80GB"), (4, "NVIDIA-L40S"), (4, "NVIDIA-L40S")]
    ):
        name = unique(f"busy-{i}")
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "restartPolicy": "Never",
                "nodeSelector": {PRODUCT_LABEL: product},
                "containers": [
                    {
                        "name": "main",
                        "image": "python:3.12",
                        "command": ["sleep", "3600"],
                        "resources": {"limits": {GPU: str(gpus)}},
                    }
                ],
            },
        }
        hsim.kubectl("create", "--validate=false", "-f", "-", input=json.dumps(pod))
        names.append(name)
    for name in names:
        hsim.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "-n", "default", "--timeout=30s")
    return names


def eks_state(hsim: SimProcess) -> str:
    """What EKS holds of alice's runs, for a failure's message."""
    out = []
    for what in ("workflows", "pods", "trainjobs", "experiments", "nodes"):
        args = ["get", what, "-o", "wide"] + ([] if what == "nodes" else ["-n", run_namespace("alice")])
        out.append(hsim.kubectl(*args, context="eks", check=False).stdout)
    described = hsim.kubectl("describe", "pods", "-n", run_namespace("alice"), context="eks", check=False)
    return "\n".join(out) + described.stdout[-6000:]


def onprem_free_gpus(hub: HubProcess) -> int:
    """The GPUs the service counts free on on-prem, 0 while it does not call on-prem healthy."""
    status, body = call(hub, "GET", "api/capacity", hub.wiring.hub_token)
    if status != 200:
        return 0
    onprem = next(c for c in body["clusters"] if c["name"] == "onprem")
    if onprem["health"] != "healthy":
        return 0
    return sum(int(p["free"]) for p in onprem.get("products") or ())


def run_row(hub: HubProcess, token: str, name: str) -> dict[str, Any]:
    status, body = call(hub, "GET", "api/runs", token)
    assert status == 200, body
    return next(r for r in body["runs"] if r["name"] == name)


def in_cluster(hsim: SimProcess, cluster: str, resource: str, name: str) -> bool:
    found = hsim.kubectl(
        "get", resource, "-n", run_namespace("alice"), "-o", "name", context=cluster, check=False
    ).stdout.split()
    return any(line.rpartition("/")[2] == name for line in found)


@pytest.mark.timeout(420)
@pytest.mark.parametrize("outage", ["refused", "hung"])
def test_runs_waiting_for_a_full_onprem_move_to_eks_when_it_goes_down_and_run_once(
    runs_hub: HubProcess, hsim: SimProcess, alice: str, steps_log: Path, outage: str
) -> None:
    """A Hera workflow, a TrainJob and a Katib sweep wait for a full on-prem; on-prem goes down; each
    moves to EKS and succeeds there, and the unchanged SDK calls read the EKS results; on-prem comes
    back and the copies it held are deleted; every step ran once; a new run goes on-prem."""
    import kubeflow.katib as katib_sdk
    from kubeflow.katib import KatibClient  # type: ignore[attr-defined]  # the SDK's documented import
    from kubeflow.trainer import CustomTrainer, KubernetesBackendConfig, TrainerClient

    holders = fill_onprem(hsim)
    path = str(steps_log)
    flow = unique("wf")
    with (
        Workflow(name=flow, entrypoint="main", namespace=NS, workflows_service=hera(runs_hub, alice)) as w,
        DAG(name="main"),
    ):
        first = cast(Task, record_step(name="a", arguments={"path": path, "step": f"{flow}:a"}))
        second = cast(Task, record_step(name="b", arguments={"path": path, "step": f"{flow}:b"}))
        first >> second
    w.create()
    trainer = TrainerClient(
        KubernetesBackendConfig(namespace=NS, client_configuration=configuration(runs_hub, alice))
    )
    train_label = unique("tj")
    train_job = trainer.train(
        trainer=CustomTrainer(
            func=record_node,
            func_args={"path": path, "run": train_label},
            num_nodes=1,
            resources_per_node={"cpu": 1, "gpu": 1},
        )
    )
    katib = KatibClient(client_configuration=configuration(runs_hub, alice), namespace=NS)
    sweep = unique("tune")
    katib.tune(
        name=sweep,
        objective=katib_objective(steps_log.parent, steps_log, sweep),
        parameters={"x": katib_sdk.search.double(min=0.1, max=0.5, step=0.1)},  # type: ignore[attr-defined]
        algorithm_name="grid",
        objective_metric_name="loss",
        objective_type="minimize",
        max_trial_count=5,
        parallel_trial_count=3,
        resources_per_trial={"cpu": "1", "gpu": "1"},
        retain_trials=True,
    )
    runs = {"Workflow": flow, "TrainJob": train_job, "Experiment": sweep}
    admin = hsim.admin("onprem")
    try:
        for kind, name in runs.items():
            # in the queue once an admission pass has seen it (the sweep was submitted a moment ago)
            row = wait_for(
                f"the {kind} in on-prem's queue",
                lambda name=name: run_row(runs_hub, alice, name),
                10,
                until=lambda r: "queue" in r,
            )
            assert (row["cluster"], row["state"]) == ("onprem", "queued"), (kind, row)
            assert "onprem has 0 of 24 GPUs free" in row["queue"]["reason"], row
        if outage == "refused":
            admin.set_faults(down=True)
        else:
            admin.set_faults(hung=True, hungParts=["api"])
        # the unchanged SDK calls wait through the outage and read what ran on EKS
        wait_for(
            "the moved runs to end",
            lambda: all(
                run_row(runs_hub, alice, n)["phase"] in ("Succeeded", "Failed", "Complete") for n in (flow,)
            ),
            150,
            every=1,
            explain=lambda: eks_state(hsim),
        )
        w.wait(1)
        done = hera(runs_hub, alice).get_workflow(flow)
        assert done.status is not None and done.status.phase == "Succeeded", done.status
        job = trainer.wait_for_job_status(train_job, timeout=120, polling_interval=1)
        assert job.status == "Complete", job
        katib.wait_for_experiment_condition(sweep, timeout=180, polling_interval=1)
        optimal = katib.get_optimal_hyperparameters(sweep)
        assert optimal is not None and optimal.parameter_assignments is not None
        assert [round(float(p.value), 6) for p in optimal.parameter_assignments] == [0.3]
        for kind, name in runs.items():
            row = run_row(runs_hub, alice, name)
            assert row["cluster"] == "eks", (kind, row)
            assert [(m["from"], m["to"]) for m in row["moves"]] == [("onprem", "eks")], (kind, row)
            # a run with nothing in a cluster (the sweep, which waits in the service's queue) may
            # already move while on-prem is degraded, the probes before it is down
            assert re.search("onprem is (down|degraded)", row["moves"][0]["reason"]), (kind, row)
        # EKS's own pods did the work: its L40S nodes, which on-prem's queue never saw
        assert gpu_products_of_pods(hsim, "eks", run_namespace("alice")).get("NVIDIA-L40S", 0) >= 1
    finally:
        admin.clear_faults()
    # on-prem answers again: the held-back copies it kept are deleted; the runs on EKS stay
    wait_for(
        "on-prem's copies of the moved runs to go",
        lambda: (
            not in_cluster(hsim, "onprem", "workflows", flow)
            and not in_cluster(hsim, "onprem", "trainjobs", train_job)
        ),
        90,
        every=0.5,
    )
    assert in_cluster(hsim, "eks", "workflows", flow) and in_cluster(hsim, "eks", "trainjobs", train_job)
    # every step ran once: two workflow steps, one training node, five trials
    lines = steps_log.read_text().split()
    assert len(lines) == len(set(lines)), lines  # nothing ran twice
    trials = sorted(round(float(line.rpartition(":")[2]), 6) for line in lines if line.startswith(sweep))
    assert trials == [0.1, 0.2, 0.3, 0.4, 0.5], lines
    assert sorted(line for line in lines if line.startswith(flow)) == [f"{flow}:a", f"{flow}:b"], lines
    # the training node's processes (torchrun starts one per GPU or CPU the node asks for), each once
    assert f"{train_label}:0" in lines, lines
    # on-prem has room again: a new run goes there
    hsim.kubectl("delete", "pod", "-n", "default", "--wait=false", *holders)
    # as a user would wait for the news: the service calls on-prem healthy again, with GPUs free
    # (after a hung link its probes and watches take a few seconds more than after a refused one)
    wait_for(
        "the service to call on-prem healthy with GPUs free",
        lambda: onprem_free_gpus(runs_hub),
        60,
        until=lambda free: free > 0,
        every=0.5,
    )
    fresh = unique("fresh")
    status, body = call(
        runs_hub,
        "POST",
        f"argo/api/v1/workflows/{NS}",
        alice,
        {
            "workflow": {
                "metadata": {"name": fresh},
                "spec": {
                    "entrypoint": "main",
                    "templates": [
                        {
                            "name": "main",
                            "container": {
                                "image": "python:3.12",
                                "command": ["python", "-c", "print('fresh')"],
                                "resources": {"limits": {GPU: "1"}},
                            },
                        }
                    ],
                },
            }
        },
    )
    assert status == 200, body
    wait_for("the new run to be let go", lambda: run_row(runs_hub, alice, fresh)["state"] == "admitted", 60)
    row = run_row(runs_hub, alice, fresh)
    assert row["cluster"] == "onprem", row
    hera(runs_hub, alice).delete_workflow(flow)
    hera(runs_hub, alice).delete_workflow(fresh)
    trainer.delete_job(train_job)
    katib.delete_experiment(sweep)
    no_run_pods_left(hsim)
