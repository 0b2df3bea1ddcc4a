"""The Training Operator's pure parts: defaults, replica pods and Services, the webhook, one pass's plan."""

from __future__ import annotations

import copy
from datetime import UTC, datetime
from typing import Any

import pytest

from simcluster.config import ConfigError, parse_cluster_file
from simcluster.errors import ApiError
from simcluster.hosts import hosts_file
from simcluster.training.defaults import with_defaults
from simcluster.training.policy import plan, selector
from simcluster.training.replicas import replica_pod, replica_service
from simcluster.training.webhook import field_errors, validate

NOW = datetime(2026, 12, 4, 12, 0, 0, tzinfo=UTC)
STAMP = "2026-12-04T12:00:00Z"


def container(name: str = "pytorch", **extra: Any) -> dict[str, Any]:
    return {"name": name, "image": "python", **extra}


def replica(replicas: int | None = 1, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"template": {"spec": {"containers": [container()]}}, **extra}
    if replicas is not None:
        out["replicas"] = replicas
    return out


def job(specs: dict[str, Any], name: str = "j", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": name, "namespace": "ns", "uid": "u-1"},
        "spec": {"pytorchReplicaSpecs": specs, **spec},
    }


# ---------------------------------------------------------------------- defaults


@pytest.mark.parametrize(
    ("spec", "path", "expected"),
    [
        ({}, ("runPolicy", "cleanPodPolicy"), "None"),
        ({"runPolicy": {"cleanPodPolicy": "All"}}, ("runPolicy", "cleanPodPolicy"), "All"),
        ({}, ("pytorchReplicaSpecs", "Worker", "replicas"), 1),
        ({}, ("pytorchReplicaSpecs", "Worker", "restartPolicy"), "OnFailure"),
        ({}, ("nprocPerNode",), "auto"),
        ({"nprocPerNode": "4"}, ("nprocPerNode",), "4"),
        ({"elasticPolicy": {"maxReplicas": 3}}, ("elasticPolicy", "minReplicas"), 3),
        ({"elasticPolicy": {"minReplicas": 2}}, ("elasticPolicy", "maxReplicas"), 2),
        ({"elasticPolicy": {}}, ("elasticPolicy", "maxReplicas"), 1),
        ({"elasticPolicy": {"nProcPerNode": 2}}, ("nprocPerNode",), None),
    ],
)
def test_defaults(spec: dict[str, Any], path: tuple[str, ...], expected: object) -> None:
    original = job({"Worker": replica(None)}, **spec)
    kept = copy.deepcopy(original)
    found: Any = with_defaults(original)["spec"]
    for key in path:
        found = found.get(key) if isinstance(found, dict) else None
    assert found == expected
    assert original == kept  # the stored object keeps what the user sent


@pytest.mark.parametrize(
    ("ports", "expected"),
    [
        (None, [{"name": "pytorchjob-port", "containerPort": 23456}]),
        (
            [{"name": "pytorchjob-port", "containerPort": 29500}],
            [{"name": "pytorchjob-port", "containerPort": 29500}],
        ),
        (
            [{"name": "metrics", "containerPort": 8080}],
            [{"name": "metrics", "containerPort": 8080}, {"name": "pytorchjob-port", "containerPort": 23456}],
        ),
    ],
)
def test_default_port(ports: list[dict[str, Any]] | None, expected: list[dict[str, Any]]) -> None:
    spec = replica()
    if ports is not None:
        spec["template"]["spec"]["containers"][0]["ports"] = ports
    out = with_defaults(job({"Master": spec}))
    assert (
        out["spec"]["pytorchReplicaSpecs"]["Master"]["template"]["spec"]["containers"][0]["ports"] == expected
    )


# ---------------------------------------------------------------------- replica pods and Services


def env(pod: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e["value"] for e in pod["spec"]["containers"][0]["env"]}


@pytest.mark.parametrize(
    ("specs", "replica_type", "index", "expected"),
    [
        (
            {"Master": replica(), "Worker": replica(2)},
            "Master",
            0,
            {
                "MASTER_ADDR": "j-master-0",
                "MASTER_PORT": "23456",
                "RANK": "0",
                "WORLD_SIZE": "3",
                "PET_NNODES": "3",
            },
        ),
        (
            {"Master": replica(), "Worker": replica(2)},
            "Worker",
            1,
            {
                "PET_MASTER_ADDR": "j-master-0",
                "RANK": "2",
                "PET_NODE_RANK": "2",
                "PET_NPROC_PER_NODE": "auto",
            },
        ),
        ({"Worker": replica(2)}, "Worker", 0, {"PYTHONUNBUFFERED": "1", "PET_NNODES": "2"}),
    ],
)
def test_replica_env(specs: dict[str, Any], replica_type: str, index: int, expected: dict[str, str]) -> None:
    found = env(replica_pod(with_defaults(job(specs)), replica_type, index))
    assert {k: found.get(k) for k in expected} == expected
    if "Master" not in specs:  # without a Master the operator sets no rendezvous of its own
        assert not {"MASTER_ADDR", "RANK", "WORLD_SIZE"} & set(found)


def test_nproc_per_node_multiplies_the_world() -> None:
    pod = replica_pod(
        with_defaults(job({"Master": replica(), "Worker": replica(1)}, nprocPerNode="4")), "Worker", 0
    )
    assert (env(pod)["WORLD_SIZE"], env(pod)["PET_NPROC_PER_NODE"]) == ("8", "4")


@pytest.mark.parametrize(
    ("specs", "replica_type", "index", "role", "init"),
    [
        ({"Master": replica(), "Worker": replica()}, "Master", 0, "master", False),
        ({"Master": replica(), "Worker": replica()}, "Worker", 0, None, True),
        ({"Worker": replica(2)}, "Worker", 0, "master", False),
        ({"Worker": replica(2)}, "Worker", 1, None, False),
    ],
)
def test_replica_pod(
    specs: dict[str, Any], replica_type: str, index: int, role: str | None, init: bool
) -> None:
    pod = replica_pod(with_defaults(job(specs, restartPolicy="x")), replica_type, index)
    meta = pod["metadata"]
    assert meta["name"] == f"j-{replica_type.lower()}-{index}"
    assert meta["labels"] == {
        "training.kubeflow.org/operator-name": "pytorchjob-controller",
        "training.kubeflow.org/job-name": "j",
        "training.kubeflow.org/replica-type": replica_type.lower(),
        "training.kubeflow.org/replica-index": str(index),
        **({"training.kubeflow.org/job-role": role} if role else {}),
    }
    assert meta["ownerReferences"][0]["kind"] == "PyTorchJob" and meta["ownerReferences"][0]["controller"]
    assert pod["spec"]["restartPolicy"] == "OnFailure"
    inits = pod["spec"].get("initContainers") or []
    assert [c["name"] for c in inits] == (["init-pytorch"] if init else [])
    if init:
        assert "nslookup j-master-0" in inits[0]["command"][2]


@pytest.mark.parametrize(
    ("policy", "pod_policy"), [("ExitCode", "Never"), ("Never", "Never"), ("Always", "Always")]
)
def test_replica_restart_policy(policy: str, pod_policy: str) -> None:
    pod = replica_pod(with_defaults(job({"Worker": replica(restartPolicy=policy)})), "Worker", 0)
    assert pod["spec"]["restartPolicy"] == pod_policy


def test_replica_service_is_headless() -> None:
    svc = replica_service(with_defaults(job({"Master": replica()})), "Master", 0)
    assert svc["metadata"]["name"] == "j-master-0"
    assert svc["spec"] == {
        "clusterIP": "None",
        "selector": {
            "training.kubeflow.org/operator-name": "pytorchjob-controller",
            "training.kubeflow.org/job-name": "j",
            "training.kubeflow.org/replica-type": "master",
            "training.kubeflow.org/replica-index": "0",
        },
        "ports": [{"name": "pytorchjob-port", "port": 23456}],
    }


# ---------------------------------------------------------------------- the webhook

CONTAINERS = "spec.pytorchReplicaSpecs[Worker].template.spec.containers"


@pytest.mark.parametrize(
    ("obj", "errors"),
    [
        (job({"Master": replica(), "Worker": replica(3)}), []),
        (job({"Master": replica(None)}), ["spec.pytorchReplicaSpecs[Master].replicas: Forbidden: must be 1"]),
        (
            job({"Worker": replica(0)}),
            ["spec.pytorchReplicaSpecs[Worker].replicas: Forbidden: must be at least 1"],
        ),
        (
            {"metadata": {"name": "j"}, "spec": {}},
            ["spec.pytorchReplicaSpecs: Required value: must be required"],
        ),
        (
            job({"Worker": {"template": {"spec": {}}}}),
            [
                f"{CONTAINERS}: Required value: must be specified",
                f"{CONTAINERS}: Required value: must have at least one container with name pytorch",
            ],
        ),
        (
            job({"Master": replica()}, elasticPolicy={"nProcPerNode": 2}, nprocPerNode="2"),
            [
                "spec.pytorchReplicaSpecs[Worker]: Required value: must be configured if elastic policy is "
                "used",
                "spec.elasticPolicy.nProcPerNode: Forbidden: must not be used with spec.nprocPerNode",
            ],
        ),
        (
            job({"Worker": replica()}, name="x" * 64),
            [f'metadata.name: Invalid value: "{"x" * 64}": should match: must be no more than 63 characters'],
        ),
        (job({"Worker": replica()}, runPolicy={"managedBy": "kueue.x-k8s.io/multikueue"}), []),
    ],
    ids=[
        "valid",
        "master-unset",
        "zero-workers",
        "no-specs",
        "no-containers",
        "elastic",
        "long-name",
        "kueue",
    ],
)
def test_webhook_field_errors(obj: dict[str, Any], errors: list[str]) -> None:
    assert field_errors(obj) == errors


def test_webhook_denies_with_403() -> None:
    with pytest.raises(ApiError) as err:
        validate(job({"Master": replica(2)}))
    assert (err.value.code, err.value.reason) == (403, "Forbidden")
    assert err.value.message == (
        'admission webhook "validator.pytorchjob.training-operator.kubeflow.org" denied the request: '
        "spec.pytorchReplicaSpecs[Master].replicas: Forbidden: must be 1"
    )
    validate(job({"Master": replica()}))  # a valid job passes


# ---------------------------------------------------------------------- one pass of the controller


def pod(
    replica_type: str, index: int, phase: str, *, exit_code: int | None = None, **extra: Any
) -> dict[str, Any]:
    status: dict[str, Any] = {"phase": phase}
    if exit_code is not None:
        status["containerStatuses"] = [{"name": "pytorch", "state": {"terminated": {"exitCode": exit_code}}}]
    status.update(extra.pop("status", {}))
    meta = {
        "name": f"j-{replica_type.lower()}-{index}",
        "labels": {
            "training.kubeflow.org/replica-type": replica_type.lower(),
            "training.kubeflow.org/replica-index": str(index),
        },
        **extra,
    }
    return {"metadata": meta, "status": status}


def service(replica_type: str, index: int) -> dict[str, Any]:
    return {"metadata": pod(replica_type, index, "Running")["metadata"]}


def conds(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


MASTER_WORKER = {"Master": replica(), "Worker": replica(1)}


def test_a_new_job_makes_every_replica_and_service() -> None:
    step = plan(with_defaults(job(MASTER_WORKER)), [], [], NOW)
    assert step.create == (("Master", 0), ("Worker", 0))
    assert step.create_services == (("Master", 0), ("Worker", 0))
    assert conds(step.status) == {"Created": ("True", "PyTorchJobCreated")}
    assert step.status["startTime"] == STAMP
    assert step.status["replicaStatuses"]["Master"] == {"selector": selector("j", "Master")}


@pytest.mark.parametrize(
    ("specs", "pods", "condition", "counts"),
    [
        (
            MASTER_WORKER,
            [pod("Master", 0, "Running"), pod("Worker", 0, "Running")],
            {"Running": ("True", "PyTorchJobRunning")},
            {"Master": {"active": 1}, "Worker": {"active": 1}},
        ),
        (
            MASTER_WORKER,
            [pod("Master", 0, "Succeeded", exit_code=0), pod("Worker", 0, "Running")],
            {"Succeeded": ("True", "PyTorchJobSucceeded")},
            {"Master": {"succeeded": 1}, "Worker": {"active": 1}},
        ),
        (
            {"Worker": replica(2)},
            [pod("Worker", 0, "Succeeded"), pod("Worker", 1, "Running")],
            {"Running": ("True", "PyTorchJobRunning")},
            {"Worker": {"succeeded": 1, "active": 1}},
        ),
        (
            {"Worker": replica(2)},
            [pod("Worker", 0, "Succeeded"), pod("Worker", 1, "Succeeded")],
            {"Succeeded": ("True", "PyTorchJobSucceeded")},
            {"Worker": {"succeeded": 2}},
        ),
        (
            {"Master": replica(restartPolicy="Never"), "Worker": replica(1)},
            [pod("Master", 0, "Failed", exit_code=1), pod("Worker", 0, "Running")],
            {"Failed": ("True", "PyTorchJobFailed")},
            {"Master": {"failed": 1}, "Worker": {"active": 1}},
        ),
        (
            {"Master": replica(), "Worker": replica(1, restartPolicy="ExitCode")},
            [pod("Master", 0, "Running"), pod("Worker", 0, "Failed", exit_code=1)],
            {"Failed": ("True", "PyTorchJobFailed")},
            {"Master": {"active": 1}, "Worker": {"failed": 1}},
        ),
        (
            {"Master": replica(), "Worker": replica(1, restartPolicy="ExitCode")},
            [pod("Master", 0, "Running"), pod("Worker", 0, "Failed", exit_code=137)],
            {"Restarting": ("True", "PyTorchJobRestarting")},
            {"Master": {"active": 1}, "Worker": {"failed": 1}},
        ),
    ],
    ids=[
        "running",
        "master-succeeded",
        "workers-running",
        "workers-succeeded",
        "never",
        "exit-code",
        "retryable",
    ],
)
def test_status_from_pods(
    specs: dict[str, Any],
    pods: list[dict[str, Any]],
    condition: dict[str, tuple[str, str]],
    counts: dict[str, dict[str, int]],
) -> None:
    step = plan(with_defaults(job(specs)), pods, [], NOW)
    found = conds(step.status)
    assert {k: found.get(k) for k in condition} == condition
    assert {
        t: {k: v for k, v in c.items() if k != "selector"} for t, c in step.status["replicaStatuses"].items()
    } == (counts)


def test_a_retryable_exit_deletes_the_pod_to_recreate_it() -> None:
    specs = {"Worker": replica(1, restartPolicy="ExitCode")}
    failed = pod("Worker", 0, "Failed", exit_code=143)
    step = plan(with_defaults(job(specs)), [failed], [service("Worker", 0)], NOW)
    assert step.delete_pods == ("j-worker-0",) and step.create == ()
    assert (
        "Warning",
        "PyTorchJobRestarting",
        "job j is restarting because Worker replica(s) failed.",
    ) in step.events
    # once it is gone, the next pass makes it again
    again = plan(with_defaults({**job(specs), "status": step.status}), [], [service("Worker", 0)], NOW)
    assert again.create == (("Worker", 0),)


def restarted(count: int) -> dict[str, Any]:
    return pod(
        "Worker", 0, "Running", status={"containerStatuses": [{"name": "pytorch", "restartCount": count}]}
    )


@pytest.mark.parametrize(
    ("limit", "restarts", "failed"),
    [(None, 5, False), (2, 1, False), (2, 2, True), (0, 1, True), (0, 0, False)],
)
def test_backoff_limit_counts_restarts(limit: int | None, restarts: int, failed: bool) -> None:
    run_policy = {} if limit is None else {"backoffLimit": limit, "cleanPodPolicy": "All"}
    step = plan(
        with_defaults(job({"Worker": replica()}, runPolicy=run_policy)), [restarted(restarts)], [], NOW
    )
    assert ("Failed" in conds(step.status)) is failed
    if failed:
        assert step.status["conditions"][-1]["message"] == (
            "Job j has failed because it has reached the specified backoff limit"
        )
        assert (step.delete_pods, step.delete_services) == (("j-worker-0",), ("j-worker-0",))


def test_active_deadline() -> None:
    created = {"type": "Created", "status": "True", "reason": "PyTorchJobCreated"}
    status = {"startTime": "2026-12-04T11:59:00Z", "conditions": [created]}
    running = [pod("Worker", 0, "Running")]
    early = plan(
        with_defaults(
            {**job({"Worker": replica()}, runPolicy={"activeDeadlineSeconds": 90}), "status": status}
        ),
        running,
        [],
        NOW,
    )
    assert "Failed" not in conds(early.status) and early.recheck_after == 30.0
    late = plan(
        with_defaults(
            {**job({"Worker": replica()}, runPolicy={"activeDeadlineSeconds": 60}), "status": status}
        ),
        running,
        [],
        NOW,
    )
    assert late.status["conditions"][-1]["message"] == (
        "Job j has failed because it was active longer than specified deadline"
    )
    assert late.status["completionTime"] == STAMP


@pytest.mark.parametrize(
    ("clean", "deleted"),
    [("None", ()), ("All", ("j-master-0", "j-worker-0")), ("Running", ("j-worker-0",))],
)
def test_clean_pod_policy_on_success(clean: str, deleted: tuple[str, ...]) -> None:
    pods = [pod("Master", 0, "Succeeded"), pod("Worker", 0, "Running")]
    first = plan(with_defaults(job(MASTER_WORKER, runPolicy={"cleanPodPolicy": clean})), pods, [], NOW)
    assert conds(first.status)["Succeeded"] == ("True", "PyTorchJobSucceeded")
    finished = {**job(MASTER_WORKER, runPolicy={"cleanPodPolicy": clean}), "status": first.status}
    step = plan(with_defaults(finished), pods, [], NOW)
    assert step.delete_pods == deleted and step.create == ()
    # a finished job counts its still active replicas as succeeded; the Master's success ended the
    # pass before the Worker's selector was written
    assert step.status["replicaStatuses"]["Worker"] == {"succeeded": 1}


def test_suspend_and_resume() -> None:
    pods = [pod("Master", 0, "Running"), pod("Worker", 0, "Running")]
    running = plan(with_defaults(job(MASTER_WORKER)), pods, [], NOW).status
    suspended = plan(
        with_defaults({**job(MASTER_WORKER, runPolicy={"suspend": True}), "status": running}), pods, [], NOW
    )
    assert suspended.delete_pods == ("j-master-0", "j-worker-0") == suspended.delete_services
    assert conds(suspended.status)["Running"] == ("False", "PyTorchJobSuspended")
    assert conds(suspended.status)["Suspended"] == ("True", "PyTorchJobSuspended")
    assert "active" not in suspended.status["replicaStatuses"]["Master"]
    later = datetime(2026, 12, 4, 12, 5, tzinfo=UTC)
    resumed = plan(with_defaults({**job(MASTER_WORKER), "status": suspended.status}), [], [], later)
    assert conds(resumed.status)["Suspended"] == ("False", "PyTorchJobResumed")
    assert resumed.status["startTime"] == "2026-12-04T12:05:00Z"
    assert resumed.create == (("Master", 0), ("Worker", 0))


def test_a_failed_job_keeps_its_conditions() -> None:
    failed_status = {"conditions": [{"type": "Failed", "status": "True", "reason": "PyTorchJobFailed"}]}
    step = plan(
        with_defaults({**job(MASTER_WORKER), "status": failed_status}), [pod("Master", 0, "Running")], [], NOW
    )
    assert [c["type"] for c in step.status["conditions"]] == ["Failed"]
    assert step.create == () and step.delete_pods == ()


def test_scaling_down_deletes_the_extra_replica() -> None:
    pods = [pod("Worker", 0, "Running"), pod("Worker", 1, "Running")]
    step = plan(
        with_defaults(job({"Worker": replica(1)})), pods, [service("Worker", 0), service("Worker", 1)], NOW
    )
    assert step.delete_pods == ("j-worker-1",) and step.delete_services == ("j-worker-1",)


# ---------------------------------------------------------------------- names in the pods


def running(name: str, ip: str, created: str, **labels: str) -> dict[str, Any]:
    meta = {"name": name, "namespace": "ns", "labels": labels, "creationTimestamp": created}
    return {"metadata": meta, "spec": {}, "status": {"phase": "Running", "podIP": ip}}


@pytest.mark.parametrize(
    ("cluster_ip", "lines"),
    [
        (
            "None",
            [
                "10.244.0.5\tsvc.ns.svc.cluster.local svc.ns.svc svc.ns svc",
                "10.244.0.6\tsvc.ns.svc.cluster.local svc.ns.svc svc.ns svc",
            ],
        ),
        ("10.96.0.9", ["10.244.0.5\tsvc.ns.svc.cluster.local svc.ns.svc svc.ns svc"]),
    ],
    ids=["headless-names-every-pod", "cluster-ip-names-the-oldest"],
)
def test_service_names_in_the_hosts_file(cluster_ip: str, lines: list[str]) -> None:
    """A pod of the process runtime finds a Service's pods by its name, as cluster DNS answers."""
    pods = [
        running("b", "10.244.0.6", "2026-12-04T12:00:01Z", app="x"),
        running("a", "10.244.0.5", "2026-12-04T12:00:00Z", app="x"),
        running("other", "10.244.0.7", "2026-12-04T12:00:00Z", app="y"),
        {**running("gone", "10.244.0.8", "2026-12-04T11:00:00Z", app="x"), "status": {"phase": "Pending"}},
    ]
    svc = {
        "metadata": {"name": "svc", "namespace": "ns"},
        "spec": {"clusterIP": cluster_ip, "selector": {"app": "x"}},
    }
    text = hosts_file(pods[2], "10.244.0.7", pods, [svc])
    assert [line for line in text.splitlines() if "svc.ns" in line] == lines


# ---------------------------------------------------------------------- the cluster file


def test_training_operator_switch() -> None:
    (spec,) = parse_cluster_file({"clusters": [{"name": "a", "trainingOperator": False}]})
    assert spec.training_operator is False
    (default,) = parse_cluster_file({"clusters": [{"name": "a"}]})
    assert default.training_operator is True
    with pytest.raises(ConfigError, match=r"clusters\[0\]\.trainingOperator: expected true or false"):
        parse_cluster_file({"clusters": [{"name": "a", "trainingOperator": "yes"}]})
