"""The unmodified Katib SDK against simcluster's Katib: trials run as real processes and print metrics."""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes.client.rest import ApiException

from simcluster.testing import SimProcess
from tests.environment import needs
from tests.harness.waits import wait_for

# the process runtime needs root; without it pods fall back to process-loopback (test_loopback_runtime.py)
pytestmark = [
    needs(os.geteuid() == 0, "runs trials as processes in their own namespaces: needs root"),
    pytest.mark.timeout(120),
]

GROUP, VERSION = "kubeflow.org", "v1beta1"
NS = "team-a"  # labelled for Katib's metrics collector, as Kubeflow profile namespaces are
COLLECTOR_LABEL = "katib.kubeflow.org/metrics-collector-injection=enabled"

CLUSTER_FILE = """
clusters:
  - name: onprem
    runtime: process
    podCIDR: 10.248.0.0/16
    timings: {pod_start: 0.05, pod_stop: 0.05}
    namespaces: [team-a, plain]
    nodeGroups:
      - name: cpu
        count: 1
        capacity: {cpu: "32", memory: 64Gi}
"""


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    tmp = tmp_path_factory.mktemp("katib")
    (tmp / "clusters.yaml").write_text(CLUSTER_FILE)
    proc = SimProcess(tmp / "sim", config=tmp / "clusters.yaml").start()
    proc.kubectl("label", "namespace", NS, COLLECTOR_LABEL)
    yield proc
    proc.stop()


@pytest.fixture(scope="module")
def api(sim: SimProcess) -> Iterator[client.ApiClient]:
    api_client = config.new_client_from_config(config_file=str(sim.kubeconfig), context="onprem")
    yield api_client
    api_client.close()


@pytest.fixture(scope="module")
def katib(sim: SimProcess) -> Iterator[Any]:
    from kubeflow.katib import KatibClient

    # KatibClient loads the kubeconfig into the kubernetes client's process-wide default: restore it
    saved = client.Configuration.get_default_copy()
    kc = KatibClient(config_file=str(sim.kubeconfig), context="onprem", namespace=NS)
    yield kc
    kc.api_client.close()
    client.Configuration.set_default(saved)


def experiment_of(api: client.ApiClient, name: str, namespace: str = NS) -> dict[str, Any]:
    custom = client.CustomObjectsApi(api)
    return dict(custom.get_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", name))


def finished(api: client.ApiClient, name: str) -> Callable[[], dict[str, Any] | None]:
    def check() -> dict[str, Any] | None:
        exp = experiment_of(api, name)
        done = {
            c["type"]
            for c in (exp.get("status") or {}).get("conditions") or []
            if c["status"] == "True" and c["type"] in {"Succeeded", "Failed"}
        }
        return (
            exp
            if done and not (exp["status"].get("trialsRunning") or exp["status"].get("trialsPending"))
            else None
        )

    return check


def conditions(obj: dict[str, Any]) -> dict[str, tuple[str, str]]:
    return {
        c["type"]: (c["status"], c.get("reason", ""))
        for c in (obj.get("status") or {}).get("conditions") or []
    }


def trials_of(api: client.ApiClient, name: str) -> list[dict[str, Any]]:
    custom = client.CustomObjectsApi(api)
    listed = custom.list_namespaced_custom_object(
        GROUP, VERSION, NS, "trials", label_selector=f"katib.kubeflow.org/experiment={name}"
    )
    return list(listed["items"])


def trial_output(api: client.ApiClient, trial: str, container: str) -> str:
    core = client.CoreV1Api(api)
    pods = core.list_namespaced_pod(NS, label_selector=f"katib.kubeflow.org/trial={trial}").items
    assert len(pods) == 1, [p.metadata.name for p in pods]
    return str(core.read_namespaced_pod_log(pods[0].metadata.name, NS, container=container))


def test_tune_finds_the_trial_that_printed_the_lowest_loss(katib: Any, api: client.ApiClient) -> None:
    import kubeflow.katib as katib_sdk

    def objective(parameters: dict[str, str]) -> None:
        import os

        x, n = float(parameters["x"]), int(parameters["n"])
        print(f"trial {os.environ['KATIB_TRIAL_NAME']} x={x} n={n}")
        # 0.33, not 0.3, around which 0.2 and 0.4 would tie: the best trial is one trial
        print(f"loss={(x - 0.33) ** 2 + n / 100:.6f}")

    katib.tune(
        name="tune-grid",
        objective=objective,
        parameters={
            "x": katib_sdk.search.double(min=0.1, max=0.5, step=0.1),
            "n": katib_sdk.search.int(1, 2),
        },
        algorithm_name="grid",
        objective_metric_name="loss",
        objective_type="minimize",
        max_trial_count=4,
        parallel_trial_count=2,
        base_image="python:3.11-slim",
        retain_trials=True,  # keeps the trials' pods so that the test can read what they printed
    )
    katib.wait_for_experiment_condition("tune-grid", timeout=90, polling_interval=1)
    exp = experiment_of(api, "tune-grid")
    assert conditions(exp)["Succeeded"] == ("True", "ExperimentMaxTrialsReached")
    assert conditions(exp)["Running"][0] == "False"
    assert exp["status"]["trialsSucceeded"] == 4
    # what each trial printed, read back from its pod's log
    printed: dict[str, tuple[float, dict[str, str]]] = {}
    for trial in trials_of(api, "tune-grid"):
        name = trial["metadata"]["name"]
        assert re.fullmatch(r"tune-grid-[bcdfghjklmnpqrstvwxz2456789]{8}", name)
        out = "\n".join(katib.get_job_logs("tune-grid", name))  # the collector sidecar's log
        assert f"trial {name} " in out  # KATIB_TRIAL_NAME reached the process
        assert trial_output(api, name, "training-container") == ""  # wrapped: its output went to the file
        loss = float(re.search(r"^loss=(\S+)$", out, re.M).group(1))  # type: ignore[union-attr]
        printed[name] = (loss, {a["name"]: a["value"] for a in trial["spec"]["parameterAssignments"]})
        metric = trial["status"]["observation"]["metrics"][0]
        assert metric["name"] == "loss" and float(metric["latest"]) == loss
    assert len({tuple(sorted(p.items())) for _, p in printed.values()}) == 4  # grid points are distinct
    best = min(printed, key=lambda t: printed[t][0])
    optimal = katib.get_optimal_hyperparameters("tune-grid")
    assert optimal.best_trial_name == best
    assert {p.name: p.value for p in optimal.parameter_assignments} == printed[best][1]
    assert float(optimal.observation.metrics[0].min) == printed[best][0]
    katib.delete_experiment("tune-grid")


def job_experiment(name: str, script: str, **spec: Any) -> dict[str, Any]:
    """An Experiment whose trials are batch Jobs running ``python3 -c script`` with ``a`` substituted."""
    code = script.replace("A", "${trialParameters.a}")
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Experiment",
        "metadata": {"name": name},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": "accuracy"},
            "algorithm": {
                "algorithmName": "random",
                "algorithmSettings": [{"name": "random_state", "value": "7"}],
            },
            "parameters": [
                {"name": "a", "parameterType": "double", "feasibleSpace": {"min": "0.6", "max": "0.9"}}
            ],
            "trialTemplate": {
                "primaryContainerName": "train",
                "trialParameters": [{"name": "a", "reference": "a"}],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {
                        "backoffLimit": 0,
                        "template": {
                            "spec": {
                                "restartPolicy": "Never",
                                "containers": [
                                    {
                                        "name": "train",
                                        "image": "python:3.11-slim",
                                        # one sh -c string: Katib's collector wraps it unquoted
                                        "command": ["sh", "-c", f'python3 -c "{code}"'],
                                    }
                                ],
                            }
                        },
                    },
                },
            },
            **spec,
        },
    }


def create(api: client.ApiClient, body: dict[str, Any], namespace: str = NS) -> dict[str, Any]:
    custom = client.CustomObjectsApi(api)
    return dict(custom.create_namespaced_custom_object(GROUP, VERSION, namespace, "experiments", body))


def test_workflow_trials_built_with_hera_run_to_completion(katib: Any, api: client.ApiClient) -> None:
    from hera.workflows import Container, Workflow
    from kubeflow.katib import (
        V1beta1AlgorithmSpec,
        V1beta1Experiment,
        V1beta1ExperimentSpec,
        V1beta1FeasibleSpace,
        V1beta1ObjectiveSpec,
        V1beta1ParameterSpec,
        V1beta1TrialParameterSpec,
        V1beta1TrialTemplate,
    )

    with Workflow(entrypoint="main") as workflow:
        Container(
            name="main",
            image="python:3.11-slim",
            command=["sh", "-c", "python3 -c \"print('accuracy=${trialParameters.a}')\""],
        )
    exp = V1beta1Experiment(
        api_version=f"{GROUP}/{VERSION}",
        kind="Experiment",
        metadata=client.V1ObjectMeta(name="argo-trials"),
        spec=V1beta1ExperimentSpec(
            max_trial_count=3,
            parallel_trial_count=3,
            algorithm=V1beta1AlgorithmSpec(algorithm_name="grid"),
            objective=V1beta1ObjectiveSpec(type="maximize", objective_metric_name="accuracy"),
            parameters=[
                V1beta1ParameterSpec(
                    name="a",
                    parameter_type="discrete",
                    feasible_space=V1beta1FeasibleSpace(list=["0.2", "0.7", "0.4"]),
                )
            ],
            trial_template=V1beta1TrialTemplate(
                primary_container_name="main",
                # Katib's Argo example: GJSON over the workflow's status; Workflow has no default
                success_condition='status.[@this].#(phase=="Succeeded")#',
                failure_condition='status.[@this].#(phase=="Failed")#',
                trial_parameters=[V1beta1TrialParameterSpec(name="a", reference="a")],
                trial_spec=workflow.to_dict(),
                retain=True,
            ),
        ),
    )
    katib.create_experiment(exp)
    katib.wait_for_experiment_condition("argo-trials", timeout=90, polling_interval=1)
    done = experiment_of(api, "argo-trials")
    assert conditions(done)["Succeeded"] == ("True", "ExperimentMaxTrialsReached")
    custom = client.CustomObjectsApi(api)
    for trial in trials_of(api, "argo-trials"):
        name = trial["metadata"]["name"]
        wf = custom.get_namespaced_custom_object("argoproj.io", "v1alpha1", NS, "workflows", name)
        assert wf["status"]["phase"] == "Succeeded"
        assert wf["metadata"]["ownerReferences"][0]["kind"] == "Trial"
        assert conditions(trial)["Succeeded"] == ("True", "TrialSucceeded")
        value = trial["spec"]["parameterAssignments"][0]["value"]
        assert f"accuracy={value}" in trial_output(api, name, "metrics-logger-and-collector")
    optimal = katib.get_optimal_hyperparameters("argo-trials")
    assert [(p.name, p.value) for p in optimal.parameter_assignments] == [("a", "0.7")]
    assert optimal.observation.metrics[0].max == "0.7"
    katib.delete_experiment("argo-trials")


def test_failing_trials_fail_the_experiment_at_max_failed_trial_count(api: client.ApiClient) -> None:
    create(
        api,
        job_experiment(
            "fails",
            "import sys; print('accuracy=A'); sys.exit(3)",
            maxTrialCount=3,
            parallelTrialCount=1,
            maxFailedTrialCount=1,
        ),
    )
    exp = wait_for("experiment fails to end", finished(api, "fails"), 60)
    assert conditions(exp)["Failed"] == ("True", "ExperimentFailed")
    assert exp["status"]["trialsFailed"] == 1 and exp["status"]["trials"] == 1
    (trial,) = trials_of(api, "fails")
    status, reason = conditions(trial)["Failed"]
    assert status == "True" and reason == "TrialFailed. Job reason: BackoffLimitExceeded"
    assert conditions(trial)["Running"][0] == "False"


def test_a_trial_that_prints_no_objective_is_metrics_unavailable(katib: Any, api: client.ApiClient) -> None:
    # "accuracy: 0.9" is not Katib's name=value format (katib#1416), so the objective is never seen
    create(api, job_experiment("no-metric", "print('accuracy: A')", maxTrialCount=1, parallelTrialCount=1))
    exp = wait_for("experiment no-metric to end", finished(api, "no-metric"), 60)
    assert exp["status"]["trialMetricsUnavailable"] == 1
    assert conditions(exp)["Succeeded"] == ("True", "ExperimentMaxTrialsReached")
    (trial,) = trials_of(api, "no-metric")
    assert conditions(trial)["MetricsUnavailable"][1] == "MetricsUnavailable. Job reason: CompletionsReached"
    assert trial["status"]["observation"]["metrics"] == [
        {"name": "accuracy", "min": "unavailable", "max": "unavailable", "latest": "unavailable"}
    ]
    assert katib.get_optimal_hyperparameters("no-metric") is None


def test_reaching_the_goal_ends_the_experiment_and_trial_jobs_go(api: client.ApiClient) -> None:
    create(
        api,
        job_experiment(
            "goal",
            "print('accuracy=0.1'); print('accuracy=A')",
            maxTrialCount=5,
            parallelTrialCount=1,
            objective={"type": "maximize", "goal": 0.5, "objectiveMetricName": "accuracy"},
        ),
    )
    exp = wait_for("experiment goal to end", finished(api, "goal"), 60)
    assert conditions(exp)["Succeeded"] == ("True", "ExperimentGoalReached")
    assert exp["status"]["trials"] == 1  # the first trial already printed more than the goal
    best = exp["status"]["currentOptimalTrial"]
    (metric,) = best["observation"]["metrics"]
    value = best["parameterAssignments"][0]["value"]
    assert metric == {"name": "accuracy", "min": "0.1", "max": value, "latest": value}
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    trial = best["bestTrialName"]
    with pytest.raises(ApiException) as err:
        batch.read_namespaced_job(trial, NS)  # retain: false deletes the trial's Job ...
    assert err.value.status == 404
    wait_for(
        "the trial's pods to go",
        lambda: not core.list_namespaced_pod(NS, label_selector=f"katib.kubeflow.org/trial={trial}").items,
        60,
    )


REFUSALS = [
    pytest.param(
        {"algorithm": {"algorithmName": "hillclimb"}},
        'spec.algorithm.algorithmName: Invalid value: "hillclimb": unable to get Suggestion config data for '
        "algorithm hillclimb: failed to find suggestion config for algorithm: hillclimb in ConfigMap: "
        "katib-config",
        id="unknown-algorithm",
    ),
    pytest.param(
        {"objective": None},
        "spec.objective: Required value: must be specified",
        id="no-objective",
    ),
    pytest.param(
        {"parameters": [{"name": "a", "parameterType": "double", "feasibleSpace": {"min": "0.6"}}]},
        "spec.parameters[0].feasibleSpace.max: Required value: feasibleSpace.max or feasibleSpace.min "
        "must be specified for parameterType: double",
        id="no-max",
    ),
    pytest.param(
        {"parameters": [{"name": "a", "parameterType": "float", "feasibleSpace": {"min": "0", "max": "1"}}]},
        'spec.parameters[0].parameterType: Invalid value: "float": parameterType: float is not supported',
        id="bad-type",
    ),
    pytest.param(
        {"trialTemplate": None},
        "spec.trialTemplate: Required value: must be specified",
        id="no-template",
    ),
    pytest.param(
        {"maxTrialCount": 2, "parallelTrialCount": 3},
        "spec.parallelTrialCount: Invalid value: 3: should be less than or equal to spec.maxTrialCount",
        id="parallel-over-max",
    ),
]


@pytest.mark.parametrize(("change", "message"), REFUSALS)
def test_the_webhook_refuses_what_katibs_refuses(
    api: client.ApiClient, change: dict[str, Any], message: str
) -> None:
    body = job_experiment("refused", "print('accuracy=A')")
    body["spec"].update(change)
    body["spec"] = {k: v for k, v in body["spec"].items() if v is not None}
    with pytest.raises(ApiException) as err:
        create(api, body)
    assert err.value.status == 400
    status = json.loads(err.value.body)
    assert (
        status["message"]
        == f'admission webhook "validator.experiment.katib.kubeflow.org" denied the request: {message}'
    )
    with pytest.raises(ApiException) as gone:
        experiment_of(api, "refused")
    assert gone.value.status == 404


def test_a_template_that_is_not_json_after_substitution_and_other_template_errors(
    api: client.ApiClient,
) -> None:
    body = job_experiment("refused", "print('accuracy=A')")
    body["spec"]["trialTemplate"]["trialParameters"].append({"name": "b", "reference": "a"})
    with pytest.raises(ApiException) as err:
        create(api, body)
    message = json.loads(err.value.body)["message"]
    assert (
        'spec.trialTemplate.trialParameters[1].reference: Invalid value: "a": '
        "parameter reference a can't be duplicated" in message
    )
    argo = job_experiment("refused", "print('accuracy=A')")
    argo["spec"]["trialTemplate"]["trialSpec"] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "spec": {
            "entrypoint": "main",
            "templates": [{"name": "main", "container": {"image": "x", "args": ["${trialParameters.a}"]}}],
        },
    }
    with pytest.raises(ApiException) as err:
        create(api, argo)
    assert json.loads(err.value.body)["message"].endswith(
        "spec.trialTemplate: Required value: successCondition and failureCondition must be specified"
    )


def test_an_experiment_outside_a_katib_namespace_is_refused(api: client.ApiClient) -> None:
    with pytest.raises(ApiException) as err:
        create(api, job_experiment("elsewhere", "print('accuracy=A')"), namespace="plain")
    assert err.value.status == 400
    assert json.loads(err.value.body)["message"] == (
        'admission webhook "validator.experiment.katib.kubeflow.org" denied the request: Cannot create the '
        'Experiment "elsewhere" in namespace "plain": the namespace lacks label '
        '"katib.kubeflow.org/metrics-collector-injection: enabled"'
    )


def test_a_search_the_suggestion_service_refuses_fails_the_experiment(api: client.ApiClient) -> None:
    # Katib's grid service refuses a trial budget larger than the grid (optuna service.py)
    body = job_experiment(
        "small-grid", "print('accuracy=A')", maxTrialCount=4, algorithm={"algorithmName": "grid"}
    )
    body["spec"]["parameters"] = [
        {"name": "a", "parameterType": "discrete", "feasibleSpace": {"list": ["1", "2"]}}
    ]
    create(api, body)
    exp = wait_for("experiment small-grid to end", finished(api, "small-grid"), 60)
    assert conditions(exp)["Failed"] == ("True", "ExperimentFailed")
    assert [c["message"] for c in exp["status"]["conditions"] if c["type"] == "Failed"] == [
        "Suggestion has failed"
    ]
    custom = client.CustomObjectsApi(api)
    suggestion = custom.get_namespaced_custom_object(GROUP, VERSION, NS, "suggestions", "small-grid")
    (failed,) = [c for c in suggestion["status"]["conditions"] if c["type"] == "Failed"]
    assert failed["message"] == "Max Trial Count: 4 > all possible search combinations: 2"
    assert trials_of(api, "small-grid") == []


def test_the_optimizer_client_searches_over_trainjob_trials(sim: SimProcess, api: client.ApiClient) -> None:
    from kubeflow.optimizer import GridSearch, Objective, OptimizerClient, Search, TrialConfig
    from kubeflow.trainer import CustomTrainer, KubernetesBackendConfig, TrainJobTemplate

    def train(lr: str) -> None:
        import os

        if os.environ.get("RANK", "0") == "0":
            # 0.018, not 0.02, around which 0.01 and 0.03 would tie for the best
            print(f"loss={(float(lr) - 0.018) ** 2:.8f}")

    cfg = client.Configuration()
    config.load_kube_config(config_file=str(sim.kubeconfig), context="onprem", client_configuration=cfg)
    optimizer = OptimizerClient(KubernetesBackendConfig(namespace=NS, client_configuration=cfg))
    name = optimizer.optimize(
        trial_template=TrainJobTemplate(
            trainer=CustomTrainer(func=train, num_nodes=1, resources_per_node={"cpu": 1})
        ),
        search_space={"lr": Search.choice([0.01, 0.03, 0.05])},
        trial_config=TrialConfig(num_trials=3, parallel_trials=3),
        objectives=[Objective(metric="loss", direction="minimize")],
        algorithm=GridSearch(),
    )
    job = optimizer.wait_for_job_status(name, timeout=90, polling_interval=1)
    assert job.status == "Complete"
    printed = {}
    for trial in trials_of(api, name):
        trial_name = trial["metadata"]["name"]
        train_job = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "trainer.kubeflow.org", "v1alpha1", NS, "trainjobs", trial_name
        )
        assert train_job["metadata"]["ownerReferences"][0]["kind"] == "Trial"
        out = "\n".join(optimizer.get_job_logs(name, trial_name=trial_name))
        value = trial["spec"]["parameterAssignments"][0]["value"]
        printed[value] = float(re.search(r"^loss=(\S+)$", out, re.M).group(1))  # type: ignore[union-attr]
    assert sorted(printed) == ["0.01", "0.03", "0.05"]
    best = optimizer.get_best_results(name)
    assert best is not None
    assert best.parameters == {"lr": min(printed, key=printed.__getitem__)}
    assert float(best.metrics[0].min) == min(printed.values())
    optimizer.delete_job(name)


def test_the_trial_budget_is_editable_and_lowering_parallelism_deletes_the_newest(
    api: client.ApiClient,
) -> None:
    create(
        api,
        job_experiment(
            "slow", "import time; print('accuracy=A'); time.sleep(60)", maxTrialCount=6, parallelTrialCount=3
        ),
    )
    wait_for(
        "three trials of slow running",
        lambda: (
            len(trials_of(api, "slow")) == 3
            and experiment_of(api, "slow")["status"].get("trialsRunning") == 3
        ),
        60,
    )
    first = sorted(trials_of(api, "slow"), key=lambda t: t["metadata"]["creationTimestamp"])
    custom = client.CustomObjectsApi(api)
    with pytest.raises(ApiException) as err:  # only the three budget counts may change
        custom.patch_namespaced_custom_object(
            GROUP, VERSION, NS, "experiments", "slow", {"spec": {"algorithm": {"algorithmName": "grid"}}}
        )
    assert (
        "only spec.parallelTrialCount, spec.maxTrialCount and spec.maxFailedTrialCount are editable"
        in (json.loads(err.value.body)["message"])
    )
    custom.patch_namespaced_custom_object(
        GROUP, VERSION, NS, "experiments", "slow", {"spec": {"parallelTrialCount": 1}}
    )
    wait_for("slow down to one trial", lambda: len(trials_of(api, "slow")) == 1, 60)
    (left,) = trials_of(api, "slow")
    assert left["metadata"]["name"] in {t["metadata"]["name"] for t in first}  # none added, two deleted
    suggestion = custom.get_namespaced_custom_object(GROUP, VERSION, NS, "suggestions", "slow")
    assert suggestion["spec"]["requests"] == 1 and suggestion["status"]["suggestionCount"] == 1
    custom.delete_namespaced_custom_object(GROUP, VERSION, NS, "experiments", "slow")
    # the experiment's trials, their Jobs and pods go with it
    wait_for(
        "slow's pods to go",
        lambda: (
            not client.CoreV1Api(api)
            .list_namespaced_pod(NS, label_selector="katib.kubeflow.org/experiment=slow")
            .items
        ),
        60,
    )
    assert trials_of(api, "slow") == []


def test_tune_with_trainer_resources_runs_pytorchjob_trials(katib: Any, api: client.ApiClient) -> None:
    import kubeflow.katib as katib_sdk

    def objective(parameters: dict[str, str]) -> None:
        import os

        if os.environ.get("RANK", "0") == "0":
            print(f"loss={abs(int(parameters['n']) / 4 - 0.5):.4f}")

    katib.tune(
        name="tune-pytorch",
        objective=objective,
        # katib 0.19's search.categorical() passes its list as the distribution: the webhook refuses it
        parameters={"n": katib_sdk.search.int(min=1, max=3)},
        algorithm_name="grid",
        objective_metric_name="loss",
        objective_type="minimize",
        max_trial_count=3,
        parallel_trial_count=3,
        # one worker: the SDK runs "python -u" in a Master-only PyTorchJob (more would run torchrun)
        resources_per_trial=katib_sdk.TrainerResources(
            num_workers=1, num_procs_per_worker=1, resources_per_worker={"cpu": "1"}
        ),
        retain_trials=True,
    )
    katib.wait_for_experiment_condition("tune-pytorch", timeout=90, polling_interval=1)
    exp = experiment_of(api, "tune-pytorch")
    assert conditions(exp)["Succeeded"] == ("True", "ExperimentMaxTrialsReached")
    template = exp["spec"]["trialTemplate"]
    assert template["primaryPodLabels"] == {"training.kubeflow.org/job-role": "master"}  # defaulted
    assert template["successCondition"] == 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'
    printed = {}
    for trial in trials_of(api, "tune-pytorch"):
        name = trial["metadata"]["name"]
        job = client.CustomObjectsApi(api).get_namespaced_custom_object(
            "kubeflow.org", "v1", NS, "pytorchjobs", name
        )
        assert job["metadata"]["ownerReferences"][0]["kind"] == "Trial"
        out = "\n".join(katib.get_job_logs("tune-pytorch", name))  # the master's collector sidecar
        printed[trial["spec"]["parameterAssignments"][0]["value"]] = float(
            re.search(r"loss=(\S+)", out).group(1)
        )  # type: ignore[union-attr]
    assert sorted(printed) == ["1", "2", "3"]
    optimal = katib.get_optimal_hyperparameters("tune-pytorch")
    assert [p.value for p in optimal.parameter_assignments] == [min(printed, key=printed.__getitem__)]
    katib.delete_experiment("tune-pytorch")
