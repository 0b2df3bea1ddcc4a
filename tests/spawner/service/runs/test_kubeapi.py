"""The Kubernetes-compatible endpoint's routing: every request the job SDKs make, and the refusals."""

from __future__ import annotations

from urllib.parse import parse_qs

import pytest

from spawner.service.runs.kubeapi import (
    MAX_PATH_LENGTH,
    SERVED,
    NotServed,
    Route,
    Verb,
    label_selector_problem,
    route,
)
from tests.spawner.service.runs.k8s_recorder import record_sdk_calls

# ---------------------------------------------------------------------------------------------
# What the SDKs send: recorded with kubeflow 0.5.0 (TrainerClient, OptimizerClient),
# kubeflow-training 1.9.0 (TrainingClient, PyTorchJob), kubeflow-katib 0.19.0 (KatibClient) and
# kubernetes 35.0.0, each driven unchanged against k8s_recorder's server in namespace "team-a".
# test_the_table_is_what_the_sdks_send drives them again and compares.
#
# Findings that decide the routing:
# - No SDK call sends watch=true. Waits poll with GET (wait_for_job_conditions, wait_for_job_status,
#   wait_for_experiment_condition); followed logs use pods/log?follow. So watch is refused.
# - The kubernetes client writes follow=True the Python way ("True"), not "true".
# - No SDK sends tailLines, fieldSelector or a cluster-wide list; none reads /api, /apis or /version.
# - Only two calls patch: TrainingClient.update_job and KatibClient.edit_experiment_budget (after a
#   GET). Patches are refused: runs are admitted by the service, so their specs don't change in place.
# - TrainerClient's pod selector is set-based ("in (...)"); Katib's adds the trial's primaryPodLabels.
# ---------------------------------------------------------------------------------------------

_CORE = "/api/v1/namespaces/team-a"
_KATIB = "/apis/kubeflow.org/v1beta1/namespaces/team-a"
_PTJ = "/apis/kubeflow.org/v1/namespaces/team-a/pytorchjobs"
_TRAINER = "/apis/trainer.kubeflow.org/v1alpha1"
_TRIAL = "exp-abcdefgh"

CONFIGMAP = "GET /api/v1/namespaces/kubeflow-system/configmaps/kubeflow-trainer-public"
RUNTIME_NS = f"GET {_TRAINER}/namespaces/team-a/trainingruntimes/torch-distributed"
RUNTIME_CLUSTER = f"GET {_TRAINER}/clustertrainingruntimes/torch-distributed"
TRAINJOB_PODS = (
    f"GET {_CORE}/pods?labelSelector=jobset.sigs.k8s.io/jobset-name={_TRIAL},"
    "jobset.sigs.k8s.io/replicatedjob-name in (dataset-initializer, model-initializer, launcher, node)"
)
TRAINJOB = f"GET {_TRAINER}/namespaces/team-a/trainjobs/{_TRIAL}"
# TrainerClient.get_job, which OptimizerClient runs for every trial: each trial is a TrainJob.
TRAINER_GET_JOB = (TRAINJOB, RUNTIME_NS, RUNTIME_CLUSTER, TRAINJOB_PODS)
EXPERIMENT = f"GET {_KATIB}/experiments/exp"
TRIALS = f"GET {_KATIB}/trials?labelSelector=katib.kubeflow.org/experiment=exp"
EVENTS = f"GET {_CORE}/events"
PTJ = f"GET {_PTJ}/ptj"
PTJ_MASTER_PODS = (
    f"GET {_CORE}/pods?labelSelector=training.kubeflow.org/job-name=ptj,training.kubeflow.org/job-role=master"
)
PTJ_LOG = f"GET {_CORE}/pods/ptj-master-0/log?container=pytorch"
TRIAL_NODE_LOG = f"GET {_CORE}/pods/{_TRIAL}-node-0-0-abcde/log?container=metrics-logger-and-collector"
KATIB_TRIAL_PODS = (
    f"GET {_CORE}/pods?labelSelector=katib.kubeflow.org/trial={_TRIAL},"
    "jobset.sigs.k8s.io/replicatedjob-name=node"
)
KATIB_TRIAL_LOG = f"GET {_CORE}/pods/{_TRIAL}-master-0/log?container=metrics-logger-and-collector"

RECORDED: dict[tuple[str, str], tuple[str, ...]] = {
    # kubeflow-training's TrainingClient(job_kind="PyTorchJob"); its constructor sends nothing.
    ("TrainingClient", "create_job(job)"): (f"POST {_PTJ}",),
    ("TrainingClient", "get_job"): (PTJ,),
    ("TrainingClient", "list_jobs"): (f"GET {_PTJ}",),
    ("TrainingClient", "get_job_logs(follow=False)"): (PTJ_MASTER_PODS, PTJ_LOG),
    ("TrainingClient", "get_job_logs(follow=True)"): (PTJ_MASTER_PODS, PTJ_LOG + "&follow=True"),
    ("TrainingClient", "get_job_logs(verbose=True)"): (PTJ_MASTER_PODS, PTJ_LOG, PTJ, EVENTS),
    ("TrainingClient", "wait_for_job_conditions"): (PTJ,),
    ("TrainingClient", "get_job_pods"): (
        f"GET {_CORE}/pods?labelSelector=training.kubeflow.org/job-name=ptj",
    ),
    ("TrainingClient", "get_job_pods(worker 0)"): (
        f"GET {_CORE}/pods?labelSelector=training.kubeflow.org/job-name=ptj,"
        "training.kubeflow.org/replica-type=worker,training.kubeflow.org/replica-index=0",
    ),
    ("TrainingClient", "update_job"): (f"PATCH {_PTJ}/ptj",),
    ("TrainingClient", "delete_job"): (f"DELETE {_PTJ}/ptj",),
    # kubeflow's OptimizerClient: Katib experiments whose trials are TrainJobs.
    ("OptimizerClient", "OptimizerClient()"): (CONFIGMAP,),
    ("OptimizerClient", "optimize"): (RUNTIME_NS, RUNTIME_CLUSTER, f"POST {_KATIB}/experiments"),
    ("OptimizerClient", "get_job"): (EXPERIMENT, TRIALS, *TRAINER_GET_JOB),
    ("OptimizerClient", "list_jobs"): (
        f"GET {_KATIB}/experiments",
        f"GET {_KATIB}/trials?labelSelector=katib.kubeflow.org/experiment=job-1",
        *TRAINER_GET_JOB,
    ),
    ("OptimizerClient", "get_best_results"): (EXPERIMENT, *TRAINER_GET_JOB),
    ("OptimizerClient", "get_job_logs(follow=False)"): (
        EXPERIMENT,
        *TRAINER_GET_JOB,
        *TRAINER_GET_JOB,
        TRIAL_NODE_LOG,
    ),
    ("OptimizerClient", "get_job_logs(follow=True)"): (
        EXPERIMENT,
        *TRAINER_GET_JOB,
        *TRAINER_GET_JOB,
        TRIAL_NODE_LOG + "&follow=True",
    ),
    ("OptimizerClient", "wait_for_job_status"): (EXPERIMENT, TRIALS, *TRAINER_GET_JOB),
    ("OptimizerClient", "get_job_events"): (EXPERIMENT, TRIALS, *TRAINER_GET_JOB, EVENTS),
    ("OptimizerClient", "delete_job"): (f"DELETE {_KATIB}/experiments/exp",),
    # kubeflow's TrainerClient, as research/jobs.md §1.3 has it.
    ("TrainerClient", "TrainerClient()"): (CONFIGMAP,),
    ("TrainerClient", "list_runtimes"): (
        f"GET {_TRAINER}/clustertrainingruntimes",
        f"GET {_TRAINER}/namespaces/team-a/trainingruntimes",
    ),
    ("TrainerClient", "train"): (RUNTIME_NS, RUNTIME_CLUSTER, f"POST {_TRAINER}/namespaces/team-a/trainjobs"),
    ("TrainerClient", "list_jobs"): (f"GET {_TRAINER}/namespaces/team-a/trainjobs", *TRAINER_GET_JOB[1:]),
    ("TrainerClient", "get_job"): TRAINER_GET_JOB,
    ("TrainerClient", "get_job_logs(follow=True)"): (
        *TRAINER_GET_JOB,
        f"GET {_CORE}/pods/{_TRIAL}-node-0-0-abcde/log?container=node&follow=True",
    ),
    ("TrainerClient", "wait_for_job_status"): TRAINER_GET_JOB,
    ("TrainerClient", "get_job_events"): (*TRAINER_GET_JOB, EVENTS),
    ("TrainerClient", "delete_job"): (f"DELETE {_TRAINER}/namespaces/team-a/trainjobs/{_TRIAL}",),
    # kubeflow-katib's KatibClient, as research/jobs.md §2.1 has it; its constructor sends nothing.
    ("KatibClient", "tune"): (f"POST {_KATIB}/experiments",),
    ("KatibClient", "get_experiment"): (EXPERIMENT,),
    ("KatibClient", "list_experiments"): (f"GET {_KATIB}/experiments",),
    ("KatibClient", "wait_for_experiment_condition"): (EXPERIMENT,),
    ("KatibClient", "get_optimal_hyperparameters"): (EXPERIMENT,),
    ("KatibClient", "list_trials"): (TRIALS,),
    ("KatibClient", "get_job_logs(follow=False)"): (
        f"GET {_KATIB}/trials/{_TRIAL}",
        KATIB_TRIAL_PODS,
        KATIB_TRIAL_LOG,
    ),
    ("KatibClient", "get_job_logs(follow=True)"): (
        f"GET {_KATIB}/trials/{_TRIAL}",
        KATIB_TRIAL_PODS,
        KATIB_TRIAL_LOG + "&follow=True",
    ),
    ("KatibClient", "edit_experiment_budget"): (EXPERIMENT, f"PATCH {_KATIB}/experiments/exp"),
    ("KatibClient", "delete_experiment"): (f"DELETE {_KATIB}/experiments/exp",),
}


def _split(request: str) -> tuple[str, str, dict[str, list[str]]]:
    method, _, target = request.partition(" ")
    path, _, query = target.partition("?")
    return method, path, parse_qs(query, keep_blank_values=True)


def _pods(selector: str | None) -> Route:
    return Route(
        verb="list",
        group="",
        version="v1",
        resource="pods",
        namespace="team-a",
        label_selector=selector,
        read_only=True,
    )


def _log(pod: str, container: str, follow: bool) -> Route:
    return Route(
        verb="log",
        group="",
        version="v1",
        resource="pods",
        namespace="team-a",
        name=pod,
        subresource="log",
        container=container,
        follow=follow,
        read_only=True,
    )


def _katib(verb: Verb, resource: str, name: str | None = None, selector: str | None = None) -> Route:
    kind = "Experiment" if resource == "experiments" else None
    return Route(
        verb=verb,
        group="kubeflow.org",
        version="v1beta1",
        resource=resource,
        kind=kind,
        namespace="team-a",
        name=name,
        label_selector=selector,
        read_only=kind is None,
    )


def _trainer(verb: Verb, resource: str, name: str | None = None, namespace: str | None = "team-a") -> Route:
    kind = "TrainJob" if resource == "trainjobs" else None
    return Route(
        verb=verb,
        group="trainer.kubeflow.org",
        version="v1alpha1",
        resource=resource,
        kind=kind,
        namespace=namespace,
        name=name,
        read_only=kind is None,
    )


def _ptj(verb: Verb, name: str | None = None) -> Route:
    return Route(
        verb=verb,
        group="kubeflow.org",
        version="v1",
        resource="pytorchjobs",
        kind="PyTorchJob",
        namespace="team-a",
        name=name,
    )


_JOBSET_SELECTOR = (
    f"jobset.sigs.k8s.io/jobset-name={_TRIAL},"
    "jobset.sigs.k8s.io/replicatedjob-name in (dataset-initializer, model-initializer, launcher, node)"
)

# Each distinct recorded request and what it must route to: a Route, or the status of its refusal.
EXPECTED: dict[str, Route | int] = {
    CONFIGMAP: Route(
        verb="get",
        group="",
        version="v1",
        resource="configmaps",
        namespace="kubeflow-system",
        name="kubeflow-trainer-public",
        read_only=True,
    ),
    RUNTIME_NS: _trainer("get", "trainingruntimes", "torch-distributed"),
    RUNTIME_CLUSTER: _trainer("get", "clustertrainingruntimes", "torch-distributed", namespace=None),
    f"GET {_TRAINER}/clustertrainingruntimes": _trainer("list", "clustertrainingruntimes", namespace=None),
    f"GET {_TRAINER}/namespaces/team-a/trainingruntimes": _trainer("list", "trainingruntimes"),
    TRAINJOB: _trainer("get", "trainjobs", _TRIAL),
    f"GET {_TRAINER}/namespaces/team-a/trainjobs": _trainer("list", "trainjobs"),
    f"POST {_TRAINER}/namespaces/team-a/trainjobs": _trainer("create", "trainjobs"),
    f"DELETE {_TRAINER}/namespaces/team-a/trainjobs/{_TRIAL}": _trainer("delete", "trainjobs", _TRIAL),
    TRAINJOB_PODS: _pods(_JOBSET_SELECTOR),
    EXPERIMENT: _katib("get", "experiments", "exp"),
    f"GET {_KATIB}/experiments": _katib("list", "experiments"),
    f"POST {_KATIB}/experiments": _katib("create", "experiments"),
    f"DELETE {_KATIB}/experiments/exp": _katib("delete", "experiments", "exp"),
    f"PATCH {_KATIB}/experiments/exp": 403,
    TRIALS: _katib("list", "trials", selector="katib.kubeflow.org/experiment=exp"),
    f"GET {_KATIB}/trials?labelSelector=katib.kubeflow.org/experiment=job-1": _katib(
        "list", "trials", selector="katib.kubeflow.org/experiment=job-1"
    ),
    f"GET {_KATIB}/trials/{_TRIAL}": _katib("get", "trials", _TRIAL),
    KATIB_TRIAL_PODS: _pods(f"katib.kubeflow.org/trial={_TRIAL},jobset.sigs.k8s.io/replicatedjob-name=node"),
    KATIB_TRIAL_LOG: _log(f"{_TRIAL}-master-0", "metrics-logger-and-collector", False),
    KATIB_TRIAL_LOG + "&follow=True": _log(f"{_TRIAL}-master-0", "metrics-logger-and-collector", True),
    TRIAL_NODE_LOG: _log(f"{_TRIAL}-node-0-0-abcde", "metrics-logger-and-collector", False),
    TRIAL_NODE_LOG + "&follow=True": _log(f"{_TRIAL}-node-0-0-abcde", "metrics-logger-and-collector", True),
    f"GET {_CORE}/pods/{_TRIAL}-node-0-0-abcde/log?container=node&follow=True": _log(
        f"{_TRIAL}-node-0-0-abcde", "node", True
    ),
    EVENTS: Route(verb="list", group="", version="v1", resource="events", namespace="team-a", read_only=True),
    f"POST {_PTJ}": _ptj("create"),
    PTJ: _ptj("get", "ptj"),
    f"GET {_PTJ}": _ptj("list"),
    f"DELETE {_PTJ}/ptj": _ptj("delete", "ptj"),
    f"PATCH {_PTJ}/ptj": 403,
    PTJ_MASTER_PODS: _pods("training.kubeflow.org/job-name=ptj,training.kubeflow.org/job-role=master"),
    f"GET {_CORE}/pods?labelSelector=training.kubeflow.org/job-name=ptj": _pods(
        "training.kubeflow.org/job-name=ptj"
    ),
    f"GET {_CORE}/pods?labelSelector=training.kubeflow.org/job-name=ptj,"
    "training.kubeflow.org/replica-type=worker,training.kubeflow.org/replica-index=0": _pods(
        "training.kubeflow.org/job-name=ptj,training.kubeflow.org/replica-type=worker,"
        "training.kubeflow.org/replica-index=0"
    ),
    PTJ_LOG: _log("ptj-master-0", "pytorch", False),
    PTJ_LOG + "&follow=True": _log("ptj-master-0", "pytorch", True),
}


def test_the_table_is_what_the_sdks_send() -> None:
    recorded = record_sdk_calls()
    rendered = {
        key: tuple(
            f"{r.method} {r.path}"
            + ("?" + "&".join(f"{k}={v[0]}" for k, v in r.query.items()) if r.query else "")
            for r in requests
        )
        for key, requests in recorded.items()
    }
    assert rendered == RECORDED


def test_every_recorded_request_has_an_expectation() -> None:
    sent = {request for requests in RECORDED.values() for request in requests}
    assert sent == set(EXPECTED)


@pytest.mark.parametrize(("request_line", "expected"), list(EXPECTED.items()))
def test_recorded_requests_route(request_line: str, expected: Route | int) -> None:
    got = route(*_split(request_line))
    if isinstance(expected, Route):
        assert got == expected
    else:
        assert isinstance(got, NotServed)
        assert got.status == expected


# Served requests no recorded SDK call makes but the endpoint serves: batch Jobs (Katib's default
# trials), workflows read-only, status subresources, tailLines, discovery.
@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        (
            "POST",
            "/apis/batch/v1/namespaces/team-a/jobs",
            {},
            Route(
                verb="create", group="batch", version="v1", resource="jobs", kind="Job", namespace="team-a"
            ),
        ),
        (
            "DELETE",
            "/apis/batch/v1/namespaces/default/jobs/j-1",
            {},
            Route(
                verb="delete",
                group="batch",
                version="v1",
                resource="jobs",
                kind="Job",
                namespace="default",
                name="j-1",
            ),
        ),
        (
            "GET",
            "/apis/batch/v1/namespaces/team-a/jobs",
            {"labelSelector": ["a in (b),!c"]},
            Route(
                verb="list",
                group="batch",
                version="v1",
                resource="jobs",
                kind="Job",
                namespace="team-a",
                label_selector="a in (b),!c",
            ),
        ),
        (
            "GET",
            "/apis/argoproj.io/v1alpha1/namespaces/team-a/workflows/wf-x",
            {},
            Route(
                verb="get",
                group="argoproj.io",
                version="v1alpha1",
                resource="workflows",
                kind="Workflow",
                namespace="team-a",
                name="wf-x",
                read_only=True,
            ),
        ),
        (
            "GET",
            "/apis/argoproj.io/v1alpha1/namespaces/team-a/workflows",
            {"watch": ["false"]},
            Route(
                verb="list",
                group="argoproj.io",
                version="v1alpha1",
                resource="workflows",
                kind="Workflow",
                namespace="team-a",
                read_only=True,
            ),
        ),
        (
            "GET",
            "/apis/trainer.kubeflow.org/v1alpha1/namespaces/team-a/trainjobs/t1/status",
            {},
            Route(
                verb="get",
                group="trainer.kubeflow.org",
                version="v1alpha1",
                resource="trainjobs",
                kind="TrainJob",
                namespace="team-a",
                name="t1",
                subresource="status",
            ),
        ),
        (
            "GET",
            "/api/v1/namespaces/team-a/pods/p-0",
            {},
            Route(
                verb="get",
                group="",
                version="v1",
                resource="pods",
                namespace="team-a",
                name="p-0",
                read_only=True,
            ),
        ),
        (
            "GET",
            "/api/v1/namespaces/team-a/pods/p-0/log",
            {"tailLines": ["20"], "follow": ["true"]},
            Route(
                verb="log",
                group="",
                version="v1",
                resource="pods",
                namespace="team-a",
                name="p-0",
                subresource="log",
                follow=True,
                tail_lines=20,
                read_only=True,
            ),
        ),
        (
            "GET",
            "/api/v1/namespaces/team-a/pods/p-0/log",
            {"follow": ["0"], "previous": ["false"]},
            Route(
                verb="log",
                group="",
                version="v1",
                resource="pods",
                namespace="team-a",
                name="p-0",
                subresource="log",
                read_only=True,
            ),
        ),
        # A labelSelector on a get means nothing to the apiserver, so it is not carried.
        (
            "GET",
            "/api/v1/namespaces/team-a/pods/p-0",
            {"labelSelector": ["a=b"]},
            Route(
                verb="get",
                group="",
                version="v1",
                resource="pods",
                namespace="team-a",
                name="p-0",
                read_only=True,
            ),
        ),
        ("get", "/api", {}, Route(verb="get", group="", version="", resource="api", read_only=True)),
        ("GET", "/apis", {}, Route(verb="get", group="", version="", resource="apis", read_only=True)),
        ("GET", "/version", {}, Route(verb="get", group="", version="", resource="version", read_only=True)),
    ],
)
def test_served_beyond_the_recording(
    method: str, path: str, query: dict[str, list[str]], expected: Route
) -> None:
    assert route(method, path, query) == expected


_TRAINJOBS = "/apis/trainer.kubeflow.org/v1alpha1/namespaces/team-a/trainjobs"


@pytest.mark.parametrize(
    ("method", "path", "query", "status", "names"),
    [
        # Known core resources that are not served.
        ("GET", "/api/v1/namespaces/team-a/secrets", {}, 403, "secrets"),
        ("GET", "/api/v1/namespaces/team-a/secrets/token", {}, 403, "secrets"),
        ("GET", "/api/v1/nodes", {}, 403, "nodes"),
        ("GET", "/api/v1/namespaces", {}, 403, "namespaces"),
        ("GET", "/api/v1/namespaces/team-a", {}, 403, "namespaces"),
        ("DELETE", "/api/v1/namespaces/team-a", {}, 403, "namespaces"),
        ("GET", "/api/v1/namespaces/team-a/services", {}, 403, "services"),
        ("GET", "/api/v1/namespaces/team-a/serviceaccounts/default/token", {}, 403, "serviceaccounts"),
        # Cluster-wide lists of namespaced resources.
        ("GET", "/api/v1/pods", {}, 403, "across all namespaces"),
        ("GET", "/api/v1/events", {}, 403, "across all namespaces"),
        ("GET", "/apis/trainer.kubeflow.org/v1alpha1/trainjobs", {}, 403, "across all namespaces"),
        ("GET", "/apis/trainer.kubeflow.org/v1alpha1/trainingruntimes", {}, 403, "across all namespaces"),
        # Writes to read-only resources.
        ("POST", "/apis/trainer.kubeflow.org/v1alpha1/clustertrainingruntimes", {}, 403, "read-only"),
        ("DELETE", "/apis/trainer.kubeflow.org/v1alpha1/clustertrainingruntimes/torch", {}, 403, "read-only"),
        (
            "POST",
            "/apis/trainer.kubeflow.org/v1alpha1/namespaces/team-a/trainingruntimes",
            {},
            403,
            "read-only",
        ),
        (
            "PUT",
            "/apis/trainer.kubeflow.org/v1alpha1/namespaces/team-a/trainingruntimes/r",
            {},
            403,
            "update",
        ),
        ("DELETE", "/apis/kubeflow.org/v1beta1/namespaces/team-a/trials/t", {}, 403, "read-only"),
        ("DELETE", "/api/v1/namespaces/team-a/pods/p-0", {}, 403, "read-only"),
        ("POST", "/api/v1/namespaces/team-a/pods", {}, 403, "read-only"),
        ("GET", "/api/v1/namespaces/team-a/events/e-1", {}, 403, "get on events"),
        ("POST", "/api/v1/namespaces/team-a/pods/p-0/log", {}, 403, "read-only"),
        ("POST", "/apis/argoproj.io/v1alpha1/namespaces/team-a/workflows", {}, 403, "Hera"),
        ("DELETE", "/apis/argoproj.io/v1alpha1/namespaces/team-a/workflows/w", {}, 403, "workflows"),
        ("PUT", f"{_TRAINJOBS}/t1/status", {}, 403, "trainjobs.trainer.kubeflow.org/status"),
        ("PATCH", f"{_TRAINJOBS}/t1", {}, 403, "not changed in place"),
        ("PUT", f"{_TRAINJOBS}/t1", {}, 403, "update"),
        ("DELETE", _TRAINJOBS, {}, 403, "deletecollection"),
        ("POST", "/api/v1/namespaces/team-a/pods/p-0/exec", {"command": ["sh"]}, 403, "pods/exec"),
        ("GET", "/api/v1/namespaces/team-a/pods/p-0/proxy", {}, 403, "pods/proxy"),
        ("GET", f"{_TRAINJOBS}/t1/scale", {}, 403, "trainjobs.trainer.kubeflow.org/scale"),
        # Other ConfigMaps, and the served one written or in another namespace.
        ("GET", "/api/v1/namespaces/team-a/configmaps/kubeflow-trainer-public", {}, 403, "configmaps"),
        ("GET", "/api/v1/namespaces/kubeflow-system/configmaps/katib-config", {}, 403, "configmaps"),
        ("GET", "/api/v1/namespaces/kubeflow-system/configmaps", {}, 403, "list on configmaps"),
        (
            "DELETE",
            "/api/v1/namespaces/kubeflow-system/configmaps/kubeflow-trainer-public",
            {},
            403,
            "delete",
        ),
        # Known resources of served groups that are not served; known groups that are not served.
        ("GET", "/apis/kubeflow.org/v1/namespaces/team-a/tfjobs", {}, 403, "tfjobs"),
        ("GET", "/apis/kubeflow.org/v1beta1/namespaces/team-a/suggestions", {}, 403, "suggestions"),
        (
            "GET",
            "/apis/argoproj.io/v1alpha1/namespaces/team-a/workflowtemplates",
            {},
            403,
            "workflowtemplates",
        ),
        (
            "GET",
            "/apis/trainer.kubeflow.org/v1alpha1/namespaces/team-a/optimizationjobs",
            {},
            403,
            "optimizationjobs",
        ),
        ("GET", "/apis/batch/v1/namespaces/team-a/cronjobs", {}, 403, "cronjobs"),
        ("GET", "/apis/apps/v1/namespaces/team-a/deployments", {}, 403, "apps"),
        ("GET", "/apis/rbac.authorization.k8s.io/v1/clusterroles", {}, 403, "rbac.authorization.k8s.io"),
        ("GET", "/apis/apps", {}, 403, "apps"),
        ("GET", "/api/v1", {}, 403, "discovery of v1"),
        ("GET", "/apis/kubeflow.org/v1beta1", {}, 403, "kubeflow.org/v1beta1"),
        ("POST", "/version", {}, 403, "/version"),
        # Unknown groups, versions, resources and paths.
        ("GET", "/apis/example.com/v1/namespaces/team-a/widgets", {}, 404, "example.com/v1"),
        ("GET", "/apis/example.com", {}, 404, "/apis/example.com"),
        ("GET", "/apis/kubeflow.org/v2/namespaces/team-a/pytorchjobs", {}, 404, "kubeflow.org/v2"),
        ("GET", "/api/v2/pods", {}, 404, "/api/v2/pods"),
        ("GET", "/api/v1/namespaces/team-a/widgets", {}, 404, "widgets"),
        (
            "GET",
            "/apis/kubeflow.org/v1beta1/namespaces/team-a/experiments/e/status/extra",
            {},
            404,
            "experiments",
        ),
        ("GET", f"{_TRAINJOBS}/t1/frobnicate", {}, 404, "frobnicate"),
        (
            "GET",
            "/apis/trainer.kubeflow.org/v1alpha1/namespaces/team-a/clustertrainingruntimes/r",
            {},
            404,
            "cluster-scoped",
        ),
        ("GET", "/healthz", {}, 404, "/healthz"),
        ("GET", "/", {}, 404, "/"),
        # Malformed paths.
        ("GET", "api/v1/namespaces/team-a/pods", {}, 400, "start with '/'"),
        ("GET", "/api/v1/namespaces/team-a/pods/", {}, 400, "empty segment"),
        ("GET", "/api//v1/pods", {}, 400, "empty segment"),
        ("GET", "/api/v1/namespaces/team-a/../kube-system/secrets", {}, 400, "'..'"),
        ("GET", "/api/v1/namespaces/team-a/pods/..", {}, 400, "'..'"),
        ("GET", "/api/v1/namespaces/./pods", {}, 400, "'.'"),
        ("GET", "/api/v1/namespaces/team-a/pods/%2e%2e", {}, 400, "character"),
        ("GET", "/api/v1/namespaces/team-a%2Fsecrets/pods", {}, 400, "character"),
        ("GET", "/api/v1/namespaces/team-a/pods/a\\b", {}, 400, "character"),
        ("GET", "/api/v1/namespaces/Team-A/pods", {}, 400, "namespace name"),
        ("GET", "/api/v1/namespaces/" + "a" * 64 + "/pods", {}, 400, "namespace name"),
        ("GET", "/api/v1/namespaces/team-a/pods/Upper", {}, 400, "object name"),
        ("GET", f"{_TRAINJOBS}/-dash", {}, 400, "object name"),
        ("GET", "/api/v1/namespaces/team-a/pods/" + "a" * (MAX_PATH_LENGTH), {}, 414, "longer"),
        ("GET", "/api/v1/namespaces/team-a/pods/" + "a" * 254, {}, 400, "object name"),
        # Methods.
        ("HEAD", "/api/v1/namespaces/team-a/pods", {}, 405, "HEAD"),
        ("CONNECT", "/api/v1/namespaces/team-a/pods/p/portforward", {}, 405, "CONNECT"),
        ("POST", f"{_TRAINJOBS}/t1", {}, 405, "named object"),
        ("PUT", _TRAINJOBS, {}, 405, "collection"),
        # Query parameters that would change the answer.
        ("GET", _TRAINJOBS, {"watch": ["true"]}, 403, "watch"),
        ("GET", _TRAINJOBS, {"watch": ["1"]}, 403, "watch"),
        ("GET", _TRAINJOBS, {"watch": ["yes"]}, 400, "boolean"),
        ("GET", f"{_TRAINJOBS}/t1", {"watch": ["True"]}, 403, "watch"),
        (
            "GET",
            "/api/v1/namespaces/team-a/events",
            {"fieldSelector": ["involvedObject.name=x"]},
            403,
            "fieldSelector",
        ),
        ("POST", _TRAINJOBS, {"dryRun": ["All"]}, 403, "dryRun"),
        ("GET", "/api/v1/namespaces/team-a/pods/p/log", {"follow": ["yes"]}, 400, "follow"),
        ("GET", "/api/v1/namespaces/team-a/pods/p/log", {"tailLines": ["-1"]}, 400, "tailLines"),
        ("GET", "/api/v1/namespaces/team-a/pods/p/log", {"tailLines": ["ten"]}, 400, "tailLines"),
        ("GET", "/api/v1/namespaces/team-a/pods/p/log", {"tailLines": ["9" * 30]}, 400, "tailLines"),
        ("GET", "/api/v1/namespaces/team-a/pods/p/log", {"container": ["../x"]}, 400, "container"),
        ("GET", "/api/v1/namespaces/team-a/pods/p/log", {"previous": ["true"]}, 403, "previous"),
        ("GET", "/api/v1/namespaces/team-a/pods/p/log", {"timestamps": ["maybe"]}, 400, "timestamps"),
        ("GET", "/api/v1/namespaces/team-a/pods/p/log", {"sinceSeconds": ["10"]}, 403, "sinceSeconds"),
        ("GET", "/api/v1/namespaces/team-a/pods/p/log", {"limitBytes": ["10"]}, 403, "limitBytes"),
        # Bad selectors on a list.
        ("GET", "/api/v1/namespaces/team-a/pods", {"labelSelector": ["a in (b"]}, 400, "labelSelector"),
        ("GET", _TRAINJOBS, {"labelSelector": ["a==b==c"]}, 400, "labelSelector"),
        ("GET", _TRAINJOBS, {"labelSelector": ["x" * 5000]}, 400, "longer than"),
    ],
)
def test_refusals(method: str, path: str, query: dict[str, list[str]], status: int, names: str) -> None:
    got = route(method, path, query)
    assert isinstance(got, NotServed), got
    assert got.status == status
    assert names in got.message


@pytest.mark.parametrize(
    "path",
    ["/api/v1/namespaces/team-a/secrets", "/apis/apps/v1/namespaces/team-a/deployments", "/api/v1/pods"],
)
def test_a_refusal_names_what_is_served(path: str) -> None:
    got = route("GET", path, {})
    assert isinstance(got, NotServed)
    assert got.message.endswith(SERVED)


@pytest.mark.parametrize(
    "selector",
    [
        "",
        "a",
        "!a",
        "a=b",
        "a==b",
        "a!=b",
        "a=",
        "a in (b, c)",
        "a notin (b)",
        "a in ()",
        "a in (b,)",
        " a = b , c ",
        "a>1",
        "a<-2",
        "example.com/a-b_c.d=E.f-g_h",
        "jobset.sigs.k8s.io/replicatedjob-name in (dataset-initializer, model-initializer, launcher, node)",
        "a=b,!c,d in (e),f",
    ],
)
def test_selectors_that_parse(selector: str) -> None:
    assert label_selector_problem(selector) is None


@pytest.mark.parametrize(
    ("selector", "why"),
    [
        ("a in (b", "')'"),
        ("a in b", "parentheses"),
        ("a in (b c)", "list of values"),
        ("a in (b,(c))", "list of values"),
        ("a=b=c", "expected ','"),
        ("a b", "expected one of in, notin"),
        ("a=b,", "must follow"),
        (",a", "label key"),
        ("=b", "label key"),
        ("!", "label key"),
        ("!a=b", "must stand alone"),
        ("a>b", "integer"),
        ("a<", "integer"),
        ("a=b c", "expected ','"),
        ("-a=b", "not a valid label key"),
        ("a/b/c=d", "invalid prefix"),
        ("Example.com/a=b", "invalid prefix"),
        ("/a=b", "invalid prefix"),
        ("a=" + "v" * 64, "label value"),
        ("a=-v", "label value"),
        ("k" * 64 + "=v", "label key"),
        ("a in (b,-c)", "label value"),
        ("a ! b", "expected one of in, notin"),
        ("a=(b)", "found '(', expected ','"),
        ("x" * 5000, "longer than"),
    ],
)
def test_selectors_that_do_not(selector: str, why: str) -> None:
    problem = label_selector_problem(selector)
    assert problem is not None
    assert why in problem
