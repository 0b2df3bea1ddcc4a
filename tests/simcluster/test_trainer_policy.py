"""The TrainJob controller's pure parts: the Jobs JobSet would make, the status plan, the webhook's checks."""

from __future__ import annotations

import copy
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from simcluster.config import ConfigError, parse_cluster_file
from simcluster.errors import ApiError
from simcluster.resources import DEFAULT_CUSTOM_RESOURCES, Registry
from simcluster.store import Store
from simcluster.trainer.controller import TrainJobController, seed
from simcluster.trainer.jobset import build, master_address, num_proc_per_node
from simcluster.trainer.manifests import torch_distributed
from simcluster.trainer.status import plan, set_condition
from simcluster.trainer.webhook import admit, apply_defaults, check_schema

NOW = datetime(2026, 1, 1, tzinfo=UTC)
STAMP = "2026-01-01T00:00:00Z"


def a_trainjob(name: str = "tj", **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": "trainer.kubeflow.org/v1alpha1",
        "kind": "TrainJob",
        "metadata": {"name": name, "namespace": "ns", "uid": "u-1", "creationTimestamp": STAMP},
        "spec": {"runtimeRef": {"name": "torch-distributed"}, **spec},
    }


# ---------------------------------------------------------------------- PET_NPROC_PER_NODE


@pytest.mark.parametrize(
    ("trainer", "resources", "expected"),
    [
        ({}, {}, "1"),  # nothing asked: at least one process
        ({}, {"requests": {"cpu": "4"}}, "4"),
        ({}, {"requests": {"cpu": "500m"}}, "1"),  # a Quantity's Value() rounds up
        ({}, {"requests": {"cpu": 2.5}, "limits": {"cpu": 8}}, "3"),  # the request wins
        ({}, {"limits": {"cpu": "3"}}, "3"),  # no request: the limit
        ({}, {"requests": {"cpu": "0"}, "limits": {"cpu": "2"}}, "2"),
        ({}, {"limits": {"nvidia.com/gpu": 4.0, "cpu": "8"}}, "auto"),  # GPUs: torchrun counts them
        ({}, {"requests": {"example.com/gpu-slice": "1"}}, "auto"),  # any resource named *gpu*
        ({"numProcPerNode": 3}, {"limits": {"nvidia.com/gpu": 1}}, "3"),  # set explicitly
    ],
)
def test_processes_per_node_follow_trainers_torch_plugin(
    trainer: dict[str, Any], resources: dict[str, Any], expected: str
) -> None:
    assert num_proc_per_node(trainer, resources) == expected


# ---------------------------------------------------------------------- the Jobs JobSet would make


def env_of(container: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container.get("env") or []}


def test_a_trainjob_becomes_one_indexed_job_per_replica_with_jobsets_names_and_torchruns_variables() -> None:
    tj = a_trainjob(
        trainer={
            "numNodes": 3,
            "command": ["torchrun", "train.py"],
            "resourcesPerNode": {"limits": {"nvidia.com/gpu": 2.0}, "requests": {"cpu": 4.0}},
            "env": [{"name": "LR", "value": "0.1"}],
        },
        suspend=True,
    )
    children = build(tj, torch_distributed(), "/opt/sim/bin")
    (job,) = children.jobs
    assert job["metadata"]["name"] == "tj-node-0"
    assert job["metadata"]["ownerReferences"] == [
        {
            "apiVersion": "trainer.kubeflow.org/v1alpha1",
            "kind": "TrainJob",
            "name": "tj",
            "uid": "u-1",
            "controller": True,
            "blockOwnerDeletion": True,
        }
    ]
    spec = job["spec"]
    assert (spec["completionMode"], spec["parallelism"], spec["completions"], spec["suspend"]) == (
        "Indexed",
        3,
        3,
        True,
    )
    pod = spec["template"]
    assert pod["spec"]["restartPolicy"] == "OnFailure" and pod["spec"]["subdomain"] == "tj"
    labels = pod["metadata"]["labels"]
    assert labels == pod["metadata"]["annotations"]
    assert labels["jobset.sigs.k8s.io/jobset-name"] == "tj"
    assert labels["jobset.sigs.k8s.io/replicatedjob-name"] == "node"
    assert labels["jobset.sigs.k8s.io/job-index"] == labels["jobset.sigs.k8s.io/job-global-index"] == "0"
    assert labels["jobset.sigs.k8s.io/global-replicas"] == labels["jobset.sigs.k8s.io/group-replicas"] == "1"
    assert len(labels["jobset.sigs.k8s.io/job-key"]) == 40  # sha1 of "ns/tj-node-0"
    assert job["metadata"]["labels"]["trainer.kubeflow.org/trainjob-ancestor-step"] == "trainer"
    (container,) = pod["spec"]["containers"]
    assert container["command"] == ["torchrun", "train.py"]
    assert container["resources"] == {"limits": {"nvidia.com/gpu": "2"}, "requests": {"cpu": "4"}}
    assert container["ports"] == [{"containerPort": 29500, "protocol": "TCP"}]
    assert env_of(container) == {
        "LR": "0.1",
        "PET_NNODES": "3",
        "PET_NPROC_PER_NODE": "auto",
        "PET_NODE_RANK": {
            "fieldRef": {"fieldPath": "metadata.annotations['batch.kubernetes.io/job-completion-index']"}
        },
        "PET_MASTER_ADDR": "tj-node-0-0.tj",
        "PET_MASTER_PORT": "29500",
        "PATH": "/opt/sim/bin:$(PATH)",
    }
    assert master_address("tj") == "tj-node-0-0.tj"
    assert children.service["spec"] == {
        "clusterIP": "None",
        "selector": {"jobset.sigs.k8s.io/jobset-name": "tj"},
        "publishNotReadyAddresses": True,
    }


def test_runtime_defaults_fill_in_what_the_trainjob_leaves_out() -> None:
    runtime = torch_distributed()
    node = runtime["spec"]["template"]["spec"]["replicatedJobs"][0]["template"]["spec"]
    node["backoffLimit"] = 2
    node["template"]["spec"]["restartPolicy"] = "Never"
    node["template"]["spec"]["containers"][0]["resources"] = {"requests": {"cpu": "2"}}
    (job,) = build(a_trainjob(trainer={"command": ["true"]}), runtime).jobs
    spec = job["spec"]
    assert spec["backoffLimit"] == 2 and spec["template"]["spec"]["restartPolicy"] == "Never"
    assert spec["parallelism"] == spec["completions"] == 1  # mlPolicy.numNodes
    (container,) = spec["template"]["spec"]["containers"]
    assert env_of(container)["PET_NPROC_PER_NODE"] == "2" and "PATH" not in env_of(container)


def test_replicated_jobs_get_global_and_group_indexes_and_only_the_trainer_is_torch() -> None:
    runtime = torch_distributed()
    rjobs = runtime["spec"]["template"]["spec"]["replicatedJobs"]
    helper = {
        "name": "helper",
        "replicas": 2,
        "template": {"spec": {"template": {"spec": {"containers": [{"name": "helper", "image": "x"}]}}}},
    }
    rjobs.insert(0, helper)
    jobs = build(a_trainjob(trainer={"numNodes": 2}), runtime).jobs
    names = [j["metadata"]["name"] for j in jobs]
    assert names == ["tj-helper-0", "tj-helper-1", "tj-node-0"]
    indexes = [j["metadata"]["labels"]["jobset.sigs.k8s.io/job-global-index"] for j in jobs]
    assert indexes == ["0", "1", "2"]
    assert {j["metadata"]["labels"]["jobset.sigs.k8s.io/global-replicas"] for j in jobs} == {"3"}
    helper_container = jobs[0]["spec"]["template"]["spec"]["containers"][0]
    assert "env" not in helper_container and "parallelism" not in jobs[0]["spec"]
    assert jobs[2]["spec"]["parallelism"] == 2


def test_a_runtime_without_torch_gets_no_torchrun_variables() -> None:
    runtime = torch_distributed()
    runtime["spec"]["mlPolicy"] = {"numNodes": 2}
    (job,) = build(a_trainjob(trainer={"env": [{"name": "A", "value": "1"}]}), runtime, "/bin").jobs
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert env_of(container) == {"A": "1"} and "ports" not in container


# ---------------------------------------------------------------------- the status plan


def a_job(name: str, state: str = "active", suspend: bool = False, **status: Any) -> dict[str, Any]:
    conditions = []
    if state == "failed":
        conditions = [{"type": "Failed", "status": "True", "lastTransitionTime": status.pop("at", STAMP)}]
    elif state == "succeeded":
        conditions = [{"type": "Complete", "status": "True"}]
    return {
        "metadata": {"name": name, "labels": {"jobset.sigs.k8s.io/replicatedjob-name": "node"}},
        "spec": {"parallelism": 2, "completions": 2, "suspend": suspend},
        "status": {"conditions": conditions, **status},
    }


def kinds(status: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {c["type"]: (c["status"], c["reason"]) for c in status.get("conditions") or []}


@pytest.mark.parametrize(
    ("spec", "status", "jobs", "create", "suspend", "delete", "conditions"),
    [
        # a new TrainJob makes its children
        ({}, {}, [], True, (), (), {}),
        # a suspended one too, suspended
        ({"suspend": True}, {}, [], True, (), (), {"Suspended": ("True", "Suspended")}),
        # resumed: its Jobs follow
        (
            {},
            {"conditions": [{"type": "Suspended", "status": "True", "reason": "Suspended"}]},
            [a_job("tj-node-0", suspend=True)],
            False,
            (("tj-node-0", False),),
            (),
            {"Suspended": ("False", "Resumed")},
        ),
        # suspended while running
        (
            {"suspend": True},
            {},
            [a_job("tj-node-0")],
            False,
            (("tj-node-0", True),),
            (),
            {"Suspended": ("True", "Suspended")},
        ),
        # a failed Job fails the TrainJob and the others stop
        (
            {},
            {},
            [a_job("tj-a-0"), a_job("tj-node-0", "failed")],
            False,
            (),
            ("tj-a-0",),
            {"Failed": ("True", "FailedJobs")},
        ),
        # every Job done: Complete
        (
            {},
            {},
            [a_job("tj-node-0", "succeeded")],
            False,
            (),
            (),
            {"Complete": ("True", "AllJobsCompleted")},
        ),
        # already finished: whatever still runs goes, nothing new starts
        (
            {},
            {"conditions": [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded"}]},
            [a_job("tj-node-0")],
            False,
            (),
            ("tj-node-0",),
            {"Failed": ("True", "DeadlineExceeded")},
        ),
    ],
)
def test_the_plan_follows_jobset_and_trainer(
    spec: dict[str, Any],
    status: dict[str, Any],
    jobs: list[dict[str, Any]],
    create: bool,
    suspend: tuple[tuple[str, bool], ...],
    delete: tuple[str, ...],
    conditions: dict[str, tuple[str, str]],
) -> None:
    tj = a_trainjob(**spec)
    tj["status"] = copy.deepcopy(status)
    step = plan(tj, jobs, ["node"], NOW, STAMP)
    assert (step.create, step.suspend, step.delete) == (create, suspend, delete)
    assert kinds(step.status) == conditions


def test_the_failed_message_names_the_first_job_that_failed() -> None:
    jobs = [
        a_job("tj-node-1", "failed", at="2026-01-01T00:00:09Z"),
        a_job("tj-node-0", "failed", at="2026-01-01T00:00:05Z"),
    ]
    step = plan(a_trainjob(), jobs, ["node"], NOW, STAMP)
    (failed,) = step.status["conditions"]
    assert failed["message"] == "jobset failed due to one or more job failures (first failed job: tj-node-0)"
    assert step.status["jobsStatus"] == [
        {"name": "node", "ready": 0, "succeeded": 0, "failed": 2, "active": 0, "suspended": 0}
    ]


def test_jobs_status_counts_ready_active_and_suspended_jobs() -> None:
    ready = a_job("tj-node-0", ready=2, active=2)
    waiting = a_job("tj-node-1", suspend=True, ready=0, active=0)
    step = plan(a_trainjob(suspend=True), [ready, waiting], ["node"], NOW, STAMP)
    assert step.status["jobsStatus"] == [
        {"name": "node", "ready": 1, "succeeded": 0, "failed": 0, "active": 1, "suspended": 1}
    ]


def test_the_active_deadline_fails_the_trainjob_and_removes_its_jobs() -> None:
    tj = a_trainjob(activeDeadlineSeconds=10)
    running = [a_job("tj-node-0")]
    waiting = plan(tj, running, ["node"], NOW + timedelta(seconds=4), STAMP)
    assert waiting.recheck_after == pytest.approx(6.0) and waiting.delete == ()
    late = plan(tj, running, ["node"], NOW + timedelta(seconds=11), STAMP)
    assert late.delete == ("tj-node-0",)
    (failed,) = late.status["conditions"]
    assert (failed["reason"], failed["message"]) == (
        "DeadlineExceeded",
        "TrainJob exceeded its active deadline",
    )
    # the deadline counts from the resume, and stops while suspended
    tj["status"] = {
        "conditions": [{"type": "Suspended", "status": "False", "lastTransitionTime": "2026-01-01T00:00:08Z"}]
    }
    assert plan(tj, running, ["node"], NOW + timedelta(seconds=11), STAMP).recheck_after == pytest.approx(7.0)
    assert (
        plan(
            a_trainjob(activeDeadlineSeconds=1, suspend=True),
            running,
            ["node"],
            NOW + timedelta(hours=1),
            STAMP,
        ).delete
        == ()
    )


def test_a_condition_keeps_its_transition_time_while_its_status_holds() -> None:
    status: dict[str, Any] = {}
    set_condition(status, "Suspended", "True", "Suspended", "TrainJob is suspended", "t1")
    set_condition(status, "Suspended", "True", "Suspended", "TrainJob is suspended", "t2")
    assert status["conditions"][0]["lastTransitionTime"] == "t1"
    set_condition(status, "Suspended", "False", "Resumed", "TrainJob is resumed", "t3")
    assert status["conditions"] == [
        {
            "type": "Suspended",
            "status": "False",
            "reason": "Resumed",
            "message": "TrainJob is resumed",
            "lastTransitionTime": "t3",
        }
    ]


# ---------------------------------------------------------------------- the CRD and the webhook


def test_the_crd_defaults_the_runtime_reference_suspend_and_the_manager() -> None:
    tj = a_trainjob()
    apply_defaults(tj)
    assert tj["spec"] == {
        "runtimeRef": {
            "name": "torch-distributed",
            "apiGroup": "trainer.kubeflow.org",
            "kind": "ClusterTrainingRuntime",
        },
        "suspend": False,
        "managedBy": "trainer.kubeflow.org/trainjob-controller",
    }


@pytest.mark.parametrize(
    ("name", "spec", "message"),
    [
        ("9lives", {}, '<nil>: Invalid value: "object": metadata.name must match RFC 1035 DNS label format'),
        ("a" * 64, {}, '<nil>: Invalid value: "object": metadata.name must be no more than 63 characters'),
        ("ok", {"runtimeRef": {}}, "spec.runtimeRef.name: Required value"),
        (
            "ok",
            {"trainer": {"numProcPerNode": 0}},
            'spec.trainer.numProcPerNode: Invalid value: "integer": '
            "numProcPerNode must be greater than or equal to 1",
        ),
    ],
)
def test_the_crd_refuses_what_its_schema_rules_out(name: str, spec: dict[str, Any], message: str) -> None:
    tj = a_trainjob(name, **spec)
    apply_defaults(tj)
    with pytest.raises(ApiError) as refused:
        check_schema(tj, None)
    assert refused.value.code == 422
    assert refused.value.message == f'TrainJob.trainer.kubeflow.org "{name}" is invalid: {message}'


def test_an_update_may_not_change_the_immutable_fields() -> None:
    old = a_trainjob(trainer={"numNodes": 1})
    apply_defaults(old)
    new = copy.deepcopy(old)
    new["spec"]["suspend"] = True
    check_schema(new, old)  # suspend may change
    new["spec"]["trainer"]["numNodes"] = 2
    with pytest.raises(ApiError) as refused:
        check_schema(new, old)
    assert refused.value.message.endswith('spec.trainer: Invalid value: "object": field is immutable')


def test_the_webhook_refuses_torchruns_own_variables() -> None:
    tj = a_trainjob(trainer={"env": [{"name": "PET_NNODES", "value": "9"}, {"name": "LR", "value": "1"}]})
    with pytest.raises(ApiError) as refused:
        admit(tj, None, lambda ns, plural, name: torch_distributed())
    assert refused.value.code == 403
    assert refused.value.message.endswith(
        "must not have reserved envs, invalid envs configured: [PET_NNODES]"
    )
    assert refused.value.message.startswith(
        'admission webhook "validator.trainjob.trainer.kubeflow.org" denied the request: spec.trainer.env: '
    )


# ---------------------------------------------------------------------- the switch and the install


def test_the_trainer_switch_is_read_from_the_cluster_file() -> None:
    (on,) = parse_cluster_file({"clusters": [{"name": "a"}]})
    (off,) = parse_cluster_file({"clusters": [{"name": "a", "trainer": False}]})
    assert on.trainer and not off.trainer
    with pytest.raises(ConfigError, match=r"clusters\[0\].trainer: expected true or false, got 'yes'"):
        parse_cluster_file({"clusters": [{"name": "a", "trainer": "yes"}]})


def test_the_install_seeds_the_runtime_and_the_webhook_guards_the_store() -> None:
    store = Store(Registry.with_defaults(DEFAULT_CUSTOM_RESOURCES))
    store.create(store.registry.core("namespaces"), None, {"metadata": {"name": "ns"}})
    TrainJobController(store)
    seed(store)
    runtimes = store.registry.get("trainer.kubeflow.org", "v1alpha1", "clustertrainingruntimes")
    assert runtimes is not None and not runtimes.namespaced
    (runtime,) = store.list(runtimes)
    assert runtime["metadata"]["labels"] == {"trainer.kubeflow.org/framework": "torch"}
    public = store.get(store.registry.core("configmaps"), "kubeflow-system", "kubeflow-trainer-public")
    assert public["data"] == {"kubeflow_trainer_version": "v2.3.0"}
    trainjobs = store.registry.get("trainer.kubeflow.org", "v1alpha1", "trainjobs")
    assert trainjobs is not None
    with pytest.raises(ApiError) as refused:
        store.create(trainjobs, "ns", a_trainjob("lost", runtimeRef={"name": "gone"}))
    assert refused.value.code == 403 and store.list(trainjobs) == []
    created = store.create(trainjobs, "ns", a_trainjob("found"))
    assert created["spec"]["managedBy"] == "trainer.kubeflow.org/trainjob-controller"
