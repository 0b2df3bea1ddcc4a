"""Tests for spawner.service.runs.policy: the service's checks of submitted runs, one row per refusal."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from spawner.service.runs.podspec import PodGpus
from spawner.service.runs.policy import KINDS, Gang, Refusal, Run, RunLimits, check_run

from .sdk_runs import NAMESPACE, sdk_run

USER_NS = NAMESPACE
RUNNER = "hybridhub-runner"
LIMITS = RunLimits(max_gpus=8)
DELETE = object()  # a value for ``put`` that removes the key

# Where the SDKs' runs keep their first container.
HERA_TRAIN = ("spec", "templates", 2, "script")  # the DAG, prep, then the GPU step
KATIB_POD = ("spec", "trialTemplate", "trialSpec", "spec", "template", "spec")
PTJ_POD = ("spec", "pytorchReplicaSpecs", "Master", "template", "spec")
JOB_POD = ("spec", "template", "spec")
GPU = "nvidia.com/gpu"


def put(obj: dict[str, Any], path: tuple[Any, ...], value: Any) -> dict[str, Any]:
    """A copy of ``obj`` with the value at ``path`` set, or removed when ``value`` is DELETE; the
    objects on the way are made when missing."""
    out = copy.deepcopy(obj)
    here: Any = out
    for key in path[:-1]:
        if isinstance(here, dict) and here.get(key) is None:
            here[key] = {}
        here = here[key]
    if value is DELETE:
        del here[path[-1]]
    else:
        here[path[-1]] = value
    return out


def check(obj: Any, limits: RunLimits = LIMITS) -> Run | Refusal:
    return check_run(obj, user_namespace=USER_NS, runner_service_account=RUNNER, limits=limits)


def refusal(obj: Any, limits: RunLimits = LIMITS) -> str:
    answer = check(obj, limits)
    assert isinstance(answer, Refusal), answer
    return answer.message


def accepted(obj: Any, limits: RunLimits = LIMITS) -> Run:
    answer = check(obj, limits)
    assert isinstance(answer, Run), answer
    return answer


# --------------------------------------------------------------------------- what the SDKs build


@pytest.mark.parametrize(
    ("kind", "name", "generate_name", "pods", "suspend_field"),
    [
        # Hera's DAG: a CPU step, then a step with Resources(gpus=2); generate_name="dag-"
        ("Workflow", None, "dag-", (PodGpus(2),), "spec.suspend"),
        # KatibClient.tune(parallel_trial_count=2, resources_per_trial={"gpu": "1"}): two trial Jobs at once
        ("Experiment", "sweep", None, (PodGpus(1),) * 2, None),
        # TrainerClient.train(num_nodes=2, resources_per_node={"gpu": 4}), written as 4.0
        ("TrainJob", None, None, (PodGpus(4),) * 2, "spec.suspend"),
        # TrainingClient.create_job(num_workers=2, resources_per_worker={"gpu": 2}): Master + 1 Worker
        ("PyTorchJob", "ptj", None, (PodGpus(2),) * 2, "spec.runPolicy.suspend"),
        ("Job", "one-off", None, (PodGpus(1),), "spec.suspend"),
    ],
)
def test_accepts_what_the_sdks_build(
    kind: str,
    name: str | None,
    generate_name: str | None,
    pods: tuple[PodGpus, ...],
    suspend_field: str | None,
) -> None:
    obj = sdk_run(kind)
    run = accepted(obj)
    if kind == "TrainJob":  # the SDK names it at random, with no namespace
        name = obj["metadata"]["name"]
        assert "namespace" not in obj["metadata"]
    assert run == Run(kind, KINDS[kind].api_version, name, generate_name, USER_NS, Gang(pods), suspend_field)
    assert run.suspendable is (suspend_field is not None)


def test_sdk_namespaces_resolve_to_the_users() -> None:
    # Hera wrote "default"; Katib and the Training client the namespace they were given.
    assert sdk_run("Workflow")["metadata"]["namespace"] == "default"
    assert sdk_run("PyTorchJob")["metadata"]["namespace"] == USER_NS
    assert accepted(sdk_run("Workflow")).namespace == USER_NS


# --------------------------------------------------------------------------- refusals, one per row

REFUSALS: list[tuple[str, str, tuple[Any, ...], Any, str]] = [
    # (id, kind, path, value, message)
    (
        "other-namespace",
        "Job",
        ("metadata", "namespace"),
        "bob",
        "metadata.namespace: 'bob' is not your namespace; runs go in 'hybridhub-runs-alice' (or 'default')",
    ),
    (
        "unknown-kind",
        "Job",
        ("kind",),
        "CronJob",
        "kind: 'CronJob' is not a run the service takes; "
        "it takes Workflow, Experiment, TrainJob, PyTorchJob, Job",
    ),
    (
        "no-kind",
        "Job",
        ("kind",),
        DELETE,
        "kind: is missing; the service takes Workflow, Experiment, TrainJob, PyTorchJob, Job",
    ),
    (
        "wrong-api-version",
        "PyTorchJob",
        ("apiVersion",),
        "kubeflow.org/v2",
        "apiVersion: PyTorchJob is served as kubeflow.org/v1, not 'kubeflow.org/v2'",
    ),
    (
        "bad-name",
        "PyTorchJob",
        ("metadata", "name"),
        "1-ptj",
        "metadata.name: '1-ptj' is not a valid PyTorchJob name: it must be a DNS-1035 label "
        "(lower-case letters, digits and '-', starting and ending with a letter or digit)",
    ),
    (
        "dotted-job-name",
        "Job",
        ("metadata", "name"),
        "a.b",
        "metadata.name: 'a.b' is not a valid Job name: it must be a DNS-1123 label "
        "(lower-case letters, digits and '-', starting and ending with a letter or digit)",
    ),
    (
        "long-experiment-name",
        "Experiment",
        ("metadata", "name"),
        "e" * 41,
        "metadata.name: Experiment names have at most 40 characters, not 41",
    ),
    (
        "bad-generate-name",
        "Workflow",
        ("metadata", "generateName"),
        "DAG-",
        "metadata.generateName: 'DAG-' is not a valid Workflow name: it must be a DNS-1123 subdomain "
        "(lower-case letters, digits and '-', starting and ending with a letter or digit)",
    ),
    (
        "no-name",
        "Workflow",
        ("metadata", "generateName"),
        DELETE,
        "metadata.name: a run needs a name or a generateName",
    ),
    # pod security, in each kind's pods
    (
        "privileged",
        "Workflow",
        (*HERA_TRAIN, "securityContext"),
        {"privileged": True},
        "spec.templates[2].script.securityContext.privileged: privileged containers are not allowed",
    ),
    (
        "escalation",
        "Job",
        (*JOB_POD, "containers", 0, "securityContext"),
        {"allowPrivilegeEscalation": True},
        "spec.template.spec.containers[0].securityContext.allowPrivilegeEscalation: "
        "privilege escalation is not allowed",
    ),
    (
        "capability",
        "PyTorchJob",
        (*PTJ_POD, "containers", 0, "securityContext"),
        {"capabilities": {"add": ["CHOWN", "SYS_ADMIN"]}},
        "spec.pytorchReplicaSpecs.Master.template.spec.containers[0].securityContext.capabilities.add[1]: "
        "adding capability 'SYS_ADMIN' is not allowed (Pod Security baseline)",
    ),
    (
        "host-path",
        "Experiment",
        (*KATIB_POD, "volumes"),
        [{"name": "root", "hostPath": {"path": "/"}}],
        "spec.trialTemplate.trialSpec.spec.template.spec.volumes[0].hostPath: "
        "hostPath volumes are not allowed",
    ),
    (
        "host-network",
        "Job",
        (*JOB_POD, "hostNetwork"),
        True,
        "spec.template.spec.hostNetwork: sharing the node's namespaces is not allowed",
    ),
    (
        "host-pid",
        "PyTorchJob",
        (*PTJ_POD, "hostPID"),
        True,
        "spec.pytorchReplicaSpecs.Master.template.spec.hostPID: sharing the node's namespaces is not allowed",
    ),
    (
        "host-ipc",
        "Job",
        (*JOB_POD, "hostIPC"),
        True,
        "spec.template.spec.hostIPC: sharing the node's namespaces is not allowed",
    ),
    (
        "host-port",
        "Job",
        (*JOB_POD, "containers", 0, "ports"),
        [{"containerPort": 80, "hostPort": 80}],
        "spec.template.spec.containers[0].ports[0].hostPort: host ports are not allowed",
    ),
    (
        "init-privileged",
        "Job",
        (*JOB_POD, "initContainers"),
        [{"name": "i", "securityContext": {"privileged": True}}],
        "spec.template.spec.initContainers[0].securityContext.privileged: "
        "privileged containers are not allowed",
    ),
    (
        "job-service-account",
        "Job",
        (*JOB_POD, "serviceAccountName"),
        "admin",
        "spec.template.spec.serviceAccountName: service account 'admin' is not allowed: "
        "run pods use the namespace's default",
    ),
    (
        "job-runner-account",
        "PyTorchJob",
        (*PTJ_POD, "serviceAccount"),
        RUNNER,
        "spec.pytorchReplicaSpecs.Master.template.spec.serviceAccount: service account 'hybridhub-runner' "
        "is not allowed: run pods use the namespace's default",
    ),
    (
        "workflow-service-account",
        "Workflow",
        ("spec", "serviceAccountName"),
        "admin",
        "spec.serviceAccountName: service account 'admin' is not allowed: "
        "workflows run as 'hybridhub-runner'",
    ),
    (
        "template-service-account",
        "Workflow",
        ("spec", "templates", 1, "serviceAccountName"),
        "default",
        "spec.templates[1].serviceAccountName: service account 'default' is not allowed: "
        "workflows run as 'hybridhub-runner'",
    ),
    (
        "sidecar-privileged",
        "Workflow",
        ("spec", "templates", 1, "sidecars"),
        [{"name": "s", "image": "x", "securityContext": {"privileged": True}}],
        "spec.templates[1].sidecars[0].securityContext.privileged: privileged containers are not allowed",
    ),
    (
        "container-set-host-port",
        "Workflow",
        ("spec", "templates", 1, "containerSet"),
        {"containers": [{"name": "a", "ports": [{"containerPort": 1, "hostPort": 2}]}]},
        "spec.templates[1].containerSet.containers[0].ports[0].hostPort: host ports are not allowed",
    ),
    (
        "workflow-host-path",
        "Workflow",
        ("spec", "volumes"),
        [{"name": "v", "hostPath": {"path": "/var"}}],
        "spec.volumes[0].hostPath: hostPath volumes are not allowed",
    ),
    (
        "workflow-host-network",
        "Workflow",
        ("spec", "hostNetwork"),
        True,
        "spec.hostNetwork: sharing the node's namespaces is not allowed",
    ),
    # what no admission sees in time
    (
        "resource-template",
        "Workflow",
        ("spec", "templates", 1, "resource"),
        {"action": "create", "manifest": "x"},
        "spec.templates[1].resource: Argo resource templates are not served: they create any object as the "
        "workflow's service account, past the service's checks",
    ),
    (
        "http-template",
        "Workflow",
        ("spec", "templates", 1, "http"),
        {"url": "http://x"},
        "spec.templates[1].http: Argo http templates are not served: the workflow controller sends their "
        "requests, outside your namespace's network policy",
    ),
    (
        "plugin-template",
        "Workflow",
        ("spec", "templates", 1, "plugin"),
        {"hello": {}},
        "spec.templates[1].plugin: Argo plugin templates are not served: executor plugins run code the "
        "service cannot check",
    ),
    (
        "workflow-pod-spec-patch",
        "Workflow",
        ("spec", "podSpecPatch"),
        '{"hostNetwork": true}',
        "spec.podSpecPatch: podSpecPatch is not served: "
        "the service cannot check what a patch changes in the pod",
    ),
    (
        "template-pod-spec-patch",
        "Workflow",
        ("spec", "templates", 2, "podSpecPatch"),
        "{}",
        "spec.templates[2].podSpecPatch: podSpecPatch is not served: the service cannot check what a patch "
        "changes in the pod",
    ),
    (
        "unresolved-task",
        "Workflow",
        ("spec", "templates", 0, "dag", "tasks", 1, "template"),
        "trian",
        "spec.templates[0].dag.tasks[1].template: template 'trian' is not in spec.templates",
    ),
    (
        "template-ref",
        "Workflow",
        ("spec", "templates", 0, "dag", "tasks", 0, "templateRef"),
        {"name": "shared", "template": "prep"},
        "spec.templates[0].dag.tasks[0].templateRef: templateRef is not served: the service does not serve "
        "WorkflowTemplates yet; copy the template into spec.templates",
    ),
    (
        "workflow-template-ref",
        "Workflow",
        ("spec", "workflowTemplateRef"),
        {"name": "shared"},
        "spec.workflowTemplateRef: workflowTemplateRef is not served: the service does not serve "
        "WorkflowTemplates yet; put the templates in spec.templates",
    ),
    (
        "unresolved-steps",
        "Workflow",
        ("spec", "templates", 0),
        {"name": "d", "steps": [[{"name": "a", "template": "nope"}]]},
        "spec.templates[0].steps[0][0].template: template 'nope' is not in spec.templates",
    ),
    (
        "unresolved-entrypoint",
        "Workflow",
        ("spec", "entrypoint"),
        "main",
        "spec.entrypoint: template 'main' is not in spec.templates",
    ),
    (
        "unresolved-exit",
        "Workflow",
        ("spec", "onExit"),
        "cleanup",
        "spec.onExit: template 'cleanup' is not in spec.templates",
    ),
    (
        "unresolved-hook",
        "Workflow",
        ("spec", "hooks"),
        {"exit": {"template": "gone"}},
        "spec.hooks['exit'].template: template 'gone' is not in spec.templates",
    ),
    (
        "inline-template",
        "Workflow",
        ("spec", "templates", 0, "dag", "tasks", 0, "inline"),
        {"container": {"image": "x", "securityContext": {"privileged": True}}},
        "spec.templates[0].dag.tasks[0].inline: inline templates are not served; "
        "name a template of spec.templates",
    ),
    (
        "task-without-template",
        "Workflow",
        ("spec", "templates", 0, "dag", "tasks", 0, "template"),
        DELETE,
        "spec.templates[0].dag.tasks[0].template: a step needs the name of a template of spec.templates",
    ),
    (
        "unresolved-task-hook",
        "Workflow",
        ("spec", "templates", 0, "dag", "tasks", 1, "hooks"),
        {"running": {"expression": "true", "template": "gone"}},
        "spec.templates[0].dag.tasks[1].hooks['running'].template: template 'gone' is not in spec.templates",
    ),
    (
        "executor-service-account",
        "Workflow",
        ("spec", "templates", 2, "executor"),
        {"serviceAccountName": "admin"},
        "spec.templates[2].executor.serviceAccountName: service account 'admin' is not allowed: "
        "workflows run as 'hybridhub-runner'",
    ),
    (
        "template-defaults-gpus",
        "Workflow",
        ("spec", "templateDefaults"),
        {"container": {"resources": {"limits": {GPU: 1}}}},
        "spec.templateDefaults: GPUs in template defaults are not served; "
        "ask for them in the templates that use them",
    ),
    (
        "template-defaults-privileged",
        "Workflow",
        ("spec", "templateDefaults"),
        {"container": {"securityContext": {"privileged": True}}},
        "spec.templateDefaults.container.securityContext.privileged: privileged containers are not allowed",
    ),
    (
        "template-without-name",
        "Workflow",
        ("spec", "templates", 1, "name"),
        DELETE,
        "spec.templates[1].name: a template needs a name",
    ),
    (
        "no-entrypoint",
        "Workflow",
        ("spec", "entrypoint"),
        DELETE,
        "spec.entrypoint: a workflow needs an entrypoint",
    ),
    (
        "duplicate-template",
        "Workflow",
        ("spec", "templates", 2, "name"),
        "prep",
        "spec.templates[2].name: template name 'prep' is used twice (also spec.templates[1])",
    ),
    (
        "trainjob-pod-patch",
        "TrainJob",
        ("spec", "podTemplateOverrides"),
        [{"targetJobs": [{"name": "node"}]}],
        "spec.podTemplateOverrides: pod patches are not served: "
        "the service cannot check the pods they change",
    ),
    (
        "trainjob-pod-spec-overrides",
        "TrainJob",
        ("spec", "podSpecOverrides"),
        [],
        "spec.podSpecOverrides: pod patches are not served: the service cannot check the pods they change",
    ),
    (
        "trainjob-runtime-patches",
        "TrainJob",
        ("spec", "runtimePatches"),
        [{"manager": "me"}],
        "spec.runtimePatches: pod patches are not served: the service cannot check the pods they change",
    ),
    (
        "katib-config-map",
        "Experiment",
        ("spec", "trialTemplate", "configMap"),
        {"configMapName": "t"},
        "spec.trialTemplate.configMap: trial specs from a ConfigMap are not served: the service cannot check "
        "them; use trialSpec",
    ),
    (
        "katib-trial-kind",
        "Experiment",
        ("spec", "trialTemplate", "trialSpec", "kind"),
        "Experiment",
        "spec.trialTemplate.trialSpec.kind: 'Experiment' is not a run the service takes; "
        "it takes Job, PyTorchJob, TrainJob, Workflow",
    ),
    (
        "katib-trial-namespace",
        "Experiment",
        ("spec", "trialTemplate", "trialSpec", "metadata"),
        {"namespace": "x"},
        "spec.trialTemplate.trialSpec.metadata.namespace: trials run in the experiment's namespace "
        "'hybridhub-runs-alice'",
    ),
    (
        "katib-custom-collector",
        "Experiment",
        ("spec", "metricsCollectorSpec", "collector"),
        {"kind": "Custom", "customCollector": {"name": "c", "securityContext": {"privileged": True}}},
        "spec.metricsCollectorSpec.collector.customCollector.securityContext.privileged: "
        "privileged containers are not allowed",
    ),
    # GPUs over the limit, named by what sets the gang's size
    (
        "workflow-gpus",
        "Workflow",
        (*HERA_TRAIN, "resources"),
        {"limits": {GPU: "9"}},
        "spec.templates[2]: the run asks for 9 GPUs at once (one pod), over your limit of 8",
    ),
    (
        "trainjob-gpus",
        "TrainJob",
        ("spec", "trainer", "numNodes"),
        3,
        "spec.trainer: the run asks for 12 GPUs at once (3 pods of 4 GPUs), over your limit of 8",
    ),
    (
        "pytorchjob-gpus",
        "PyTorchJob",
        ("spec", "pytorchReplicaSpecs", "Worker", "replicas"),
        4,
        "spec.pytorchReplicaSpecs: the run asks for 10 GPUs at once (5 pods of 2 GPUs), over your limit of 8",
    ),
    (
        "katib-gpus",
        "Experiment",
        ("spec", "parallelTrialCount"),
        4,
        "spec.parallelTrialCount: the run asks for 4 GPUs at once (4 pods of 1 GPU), over your limit of 3",
    ),
    (
        "job-gpus",
        "Job",
        ("spec", "parallelism"),
        9,
        "spec.template: the run asks for 9 GPUs at once (9 pods of 1 GPU), over your limit of 8",
    ),
    (
        "gpu-request-limit-mismatch",
        "Job",
        (*JOB_POD, "containers", 0, "resources", "requests", GPU),
        "2",
        "spec.template.spec.containers[0].resources.requests['nvidia.com/gpu']: GPU requests (2) must equal "
        "GPU limits (1), as Kubernetes requires",
    ),
    (
        "fractional-gpus",
        "TrainJob",
        ("spec", "trainer", "resourcesPerNode", "limits", GPU),
        1.5,
        "spec.trainer.resourcesPerNode.limits['nvidia.com/gpu']: GPUs must be a whole number, not 1.5",
    ),
    (
        "gpu-word",
        "Workflow",
        (*HERA_TRAIN, "resources", "limits", GPU),
        "two",
        "spec.templates[2].script.resources.limits['nvidia.com/gpu']: GPUs must be a whole number, not 'two'",
    ),
    (
        "gpu-bool",
        "Job",
        (*JOB_POD, "containers", 0, "resources", "limits", GPU),
        True,
        "spec.template.spec.containers[0].resources.limits['nvidia.com/gpu']: GPUs must be a whole number, "
        "not a boolean",
    ),
    (
        "trial-parameter-gpus",
        "Experiment",
        (*KATIB_POD, "containers", 0, "resources", "limits", GPU),
        "${trialParameters.gpus}",
        "spec.trialTemplate.trialSpec.spec.template.spec.containers[0].resources.limits['nvidia.com/gpu']: "
        "GPUs must be a whole number, not '${trialParameters.gpus}'",
    ),
    (
        "negative-replicas",
        "PyTorchJob",
        ("spec", "pytorchReplicaSpecs", "Worker", "replicas"),
        -1,
        "spec.pytorchReplicaSpecs.Worker.replicas: must be a whole number of at least 0, not -1",
    ),
    (
        "zero-nodes",
        "TrainJob",
        ("spec", "trainer", "numNodes"),
        0,
        "spec.trainer.numNodes: must be a whole number of at least 1, not 0",
    ),
    # counts so big that listing the gang's pods would be the harm
    (
        "huge-replicas",
        "PyTorchJob",
        ("spec", "pytorchReplicaSpecs", "Worker", "replicas"),
        10**12,
        "spec.pytorchReplicaSpecs.Worker.replicas: must be at most 10000, not 1000000000000",
    ),
    (
        "replicas-just-over",
        "Job",
        ("spec", "parallelism"),
        10_001,
        "spec.parallelism: must be at most 10000, not 10001",
    ),
    (
        "many-replica-specs",
        "PyTorchJob",
        ("spec", "pytorchReplicaSpecs", "Worker", "replicas"),
        10_000,
        "spec.pytorchReplicaSpecs: a run may start at most 10000 pods at once, not 10001",
    ),
    (
        "many-trials",
        "Experiment",
        ("spec", "trialTemplate", "trialSpec", "spec", "parallelism"),
        5_001,  # two trials at once
        "spec.parallelTrialCount: a run may start at most 10000 pods at once, not 10002",
    ),
    (
        "infinite-nodes",
        "TrainJob",
        ("spec", "trainer", "numNodes"),
        float("inf"),
        "spec.trainer.numNodes: must be a whole number of at least 1, not inf",
    ),
    # garbage where an object or a list belongs
    ("metadata-string", "Job", ("metadata",), "x", "metadata: must be an object, not a string"),
    (
        "templates-object",
        "Workflow",
        ("spec", "templates"),
        {"a": 1},
        "spec.templates: must be a list, not an object",
    ),
    (
        "template-number",
        "Workflow",
        ("spec", "templates", 1),
        7,
        "spec.templates[1]: must be an object, not a number",
    ),
    (
        "container-string",
        "Job",
        (*JOB_POD, "containers", 0),
        "busybox",
        "spec.template.spec.containers[0]: must be an object, not a string",
    ),
    (
        "privileged-string",
        "Job",
        (*JOB_POD, "containers", 0, "securityContext"),
        {"privileged": "yes"},
        "spec.template.spec.containers[0].securityContext.privileged: must be true or false, not a string",
    ),
    ("no-spec", "PyTorchJob", ("spec",), DELETE, "spec: a PyTorchJob needs a spec"),
    (
        "no-replica-specs",
        "PyTorchJob",
        ("spec", "pytorchReplicaSpecs"),
        {},
        "spec.pytorchReplicaSpecs: a PyTorchJob needs at least one replica spec (Master, Worker)",
    ),
    (
        "no-pod-template-spec",
        "Job",
        ("spec", "template", "spec"),
        DELETE,
        "spec.template.spec: a pod template needs a spec",
    ),
    (
        "no-runtime",
        "TrainJob",
        ("spec", "runtimeRef"),
        DELETE,
        "spec.runtimeRef: is missing; it must be an object",
    ),
    (
        "dag-tasks-string",
        "Workflow",
        ("spec", "templates", 0, "dag", "tasks"),
        "prep",
        "spec.templates[0].dag.tasks: must be a list, not a string",
    ),
    (
        "namespace-number",
        "Job",
        ("metadata", "namespace"),
        3,
        "metadata.namespace: must be a string, not a number",
    ),
]


# Rows that need a lower limit than LIMITS: tune()'s maxTrialCount of 4 caps its trials at 4 GPUs.
ROW_LIMITS = {"katib-gpus": RunLimits(3)}


@pytest.mark.parametrize(("row", "kind", "path", "value", "message"), REFUSALS, ids=[r[0] for r in REFUSALS])
def test_refusals_name_the_field(
    row: str, kind: str, path: tuple[Any, ...], value: Any, message: str
) -> None:
    limits = ROW_LIMITS.get(row, LIMITS)
    assert refusal(put(sdk_run(kind), path, value), limits) == message


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (None, "(the run): is missing; it must be an object"),
        ([], "(the run): must be an object, not a list"),
        ("Workflow", "(the run): must be an object, not a string"),
        (3, "(the run): must be an object, not a number"),
        ({1: "x"}, "(the run): must be an object with string keys"),
        (
            {"kind": "Job", "apiVersion": "batch/v1", "metadata": {"name": "j"}, "spec": []},
            "spec: must be an object, not a list",
        ),
    ],
    ids=["null", "list", "string", "number", "non-string-keys", "spec-list"],
)
def test_a_body_that_is_not_an_object_is_refused(body: Any, message: str) -> None:
    assert refusal(body) == message


# --------------------------------------------------------------------------- accepted edge cases


@pytest.mark.parametrize(
    ("kind", "path", "value", "gpus"),
    [
        ("Workflow", (*HERA_TRAIN, "resources"), {"limits": {GPU: 2.0}}, 2),  # an SDK's float count
        ("Workflow", (*HERA_TRAIN, "resources"), {"requests": {GPU: "3"}}, 3),  # a quantity, requests only
        ("Workflow", (*HERA_TRAIN, "resources"), DELETE, 0),
        ("TrainJob", ("spec", "trainer", "resourcesPerNode"), DELETE, 0),  # the runtime's own resources
        ("TrainJob", ("spec", "trainer", "numNodes"), DELETE, 4),  # one node counted without numNodes
        ("TrainJob", ("spec", "trainer", "numNodes"), 2.0, 8),
        (
            "PyTorchJob",
            ("spec", "pytorchReplicaSpecs", "Worker", "replicas"),
            DELETE,
            4,
        ),  # replicas default 1
        ("PyTorchJob", ("spec", "pytorchReplicaSpecs", "Worker"), DELETE, 2),
        ("Experiment", ("spec", "parallelTrialCount"), DELETE, 3),  # Katib's default of 3 at once
        ("Experiment", ("spec", "maxTrialCount"), 1, 1),  # never more at once than in all
        ("Job", ("spec", "parallelism"), 4, 4),
        ("Job", ("spec", "completions"), 2, 1),
        ("Job", (*JOB_POD, "initContainers"), [{"name": "i", "resources": {"limits": {GPU: 3}}}], 3),
        ("Job", (*JOB_POD, "containers", 0, "ports"), [{"containerPort": 80, "hostPort": 0}], 1),
    ],
)
def test_gang_sizes(kind: str, path: tuple[Any, ...], value: Any, gpus: int) -> None:
    assert accepted(put(sdk_run(kind), path, value)).gang.gpus == gpus


@pytest.mark.parametrize(
    ("kind", "path", "value"),
    [
        ("Workflow", ("spec", "serviceAccountName"), RUNNER),
        ("Workflow", ("spec", "templates", 2, "executor"), {"serviceAccountName": RUNNER}),
        (
            "Job",
            (*JOB_POD, "containers", 0, "securityContext"),
            {
                "allowPrivilegeEscalation": False,
                "privileged": False,
                "capabilities": {"add": ["NET_BIND_SERVICE"]},
            },
        ),
        ("Job", (*JOB_POD, "hostNetwork"), False),
        ("Job", ("metadata", "namespace"), DELETE),
        ("Job", ("metadata", "namespace"), "default"),
        ("Workflow", ("metadata", "name"), "a.b-c"),
        ("Workflow", ("metadata", "generateName"), "g" * 70),  # the cluster cuts long prefixes
        ("Experiment", ("metadata", "name"), "e" * 40),
    ],
)
def test_allowed(kind: str, path: tuple[Any, ...], value: Any) -> None:
    accepted(put(sdk_run(kind), path, value))


def test_the_product_a_node_selector_names_goes_with_the_gang() -> None:
    a100 = {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"}
    run = accepted(put(sdk_run("PyTorchJob"), (*PTJ_POD, "nodeSelector"), a100))
    assert run.gang.pods == (PodGpus(2, "NVIDIA-A100-SXM4-80GB"), PodGpus(2))
    assert run.gang.products == {"NVIDIA-A100-SXM4-80GB"}
    wf = accepted(put(sdk_run("Workflow"), ("spec", "nodeSelector"), a100))
    assert wf.gang.pods == (PodGpus(2, "NVIDIA-A100-SXM4-80GB"),)


def test_workflow_gang_is_its_biggest_step() -> None:
    # Two GPU steps: the gang is the bigger one alone, not their sum (this slice's simplification).
    wf = put(sdk_run("Workflow"), (*HERA_TRAIN, "resources"), {"limits": {GPU: 3}})
    wf = put(wf, ("spec", "templates", 1, "script", "resources"), {"limits": {GPU: 5}})
    run = accepted(wf)
    assert run.gang.pods == (PodGpus(5),)
    # A container set's containers run side by side, so their GPUs add up, here to the step's 3.
    both = {"containers": [{"name": n, "resources": {"limits": {GPU: 3}}} for n in ("a", "b")]}
    with_set = put(wf, ("spec", "templates", 2, "containerSet"), both)
    assert accepted(with_set, RunLimits(16)).gang.pods == (PodGpus(9),)
    # A sidecar's GPUs add to its main container's, as in any pod.
    wf = put(wf, ("spec", "templates", 2, "sidecars"), [{"name": "s", "resources": {"limits": {GPU: 4}}}])
    assert accepted(wf).gang.pods == (PodGpus(7),)


def test_katib_trials_may_be_workflows_run_by_the_runner() -> None:
    exp = sdk_run("Experiment")
    workflow = sdk_run("Workflow")
    workflow["spec"]["serviceAccountName"] = RUNNER
    del workflow["metadata"]
    exp["spec"]["trialTemplate"]["trialSpec"] = workflow
    run = accepted(exp)
    assert run.gang == Gang((PodGpus(2),) * 2)
    assert run.suspend_field is None


def test_katib_trials_may_be_trainjobs_as_the_optimizer_client_builds_them() -> None:
    exp = sdk_run("Experiment")
    trainjob = sdk_run("TrainJob")
    del trainjob["metadata"]
    exp["spec"]["trialTemplate"]["trialSpec"] = trainjob
    assert accepted(exp, RunLimits(16)).gang.gpus == 16  # two trials of two 4-GPU nodes
    assert refusal(exp).startswith("spec.parallelTrialCount: the run asks for 16 GPUs at once")


def _paths(obj: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every path into ``obj``, through objects and lists."""
    found = [path] if path else []
    if isinstance(obj, dict):
        for key, value in obj.items():
            found += _paths(value, (*path, key))
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            found += _paths(value, (*path, i))
    return found


GARBAGE = [None, 7, -1.5, "x", "", [], [1], {}, {"a": 1}, True]


@pytest.mark.parametrize("kind", list(KINDS))
def test_garbage_anywhere_is_an_answer_never_an_exception(kind: str) -> None:
    # Each value of each SDK run swapped for each kind of garbage: the answer is a run or a refusal.
    obj = sdk_run(kind)
    refused = 0
    for path in _paths(obj):
        for junk in GARBAGE:
            answer = check(put(obj, path, junk))
            assert isinstance(answer, Run | Refusal), (path, junk)
            if isinstance(answer, Refusal):
                refused += 1
                assert answer.message.startswith(answer.field + ": ") and answer.reason
    assert refused > 0
