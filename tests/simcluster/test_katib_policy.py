"""Katib's pure parts: GJSON conditions, the metric parser, the searches, status arithmetic, the webhook."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from simcluster.config import ConfigError, parse_cluster_file
from simcluster.katib.collector import inject, is_primary
from simcluster.katib.gjson import GjsonError, matches
from simcluster.katib.metrics import MetricLog, objective_value, observation, parse_text
from simcluster.katib.search import Param, SearchError, grid_points, params_of, seed_of, suggest
from simcluster.katib.status import (
    JobState,
    conclude,
    job_state,
    summarize,
    trial_bucket,
    trial_delta,
    trial_outcome,
)
from simcluster.katib.webhook import (
    TemplateError,
    aggregate,
    default_experiment,
    namespace_refusal,
    run_spec,
    validate_experiment,
)

JOB_OK = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
JOB_FAILED = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
ARGO_OK = 'status.[@this].#(phase=="Succeeded")#'


def cond(type_: str, status: str = "True", reason: str = "", message: str = "") -> dict[str, str]:
    return {"type": type_, "status": status, "reason": reason, "message": message}


@pytest.mark.parametrize(
    ("document", "path", "expected"),
    [
        pytest.param(
            {"status": {"conditions": [cond("Complete", reason="CompletionsReached")]}},
            JOB_OK,
            [cond("Complete", reason="CompletionsReached")],
            id="job-complete",
        ),
        pytest.param(
            {"status": {"conditions": [cond("Complete", "False")]}}, JOB_OK, None, id="complete-false"
        ),
        pytest.param({"status": {}}, JOB_OK, None, id="no-conditions"),
        pytest.param({}, JOB_FAILED, None, id="no-status"),
        pytest.param(
            {"status": {"phase": "Succeeded", "message": "done"}},
            ARGO_OK,
            [{"phase": "Succeeded", "message": "done"}],
            id="argo-succeeded",
        ),
        pytest.param({"status": {"phase": "Running"}}, ARGO_OK, None, id="argo-running"),
        pytest.param(
            {"status": {"conditions": [cond("Failed"), cond("Complete")]}},
            'status.conditions.#(type=="Complete")',
            cond("Complete"),
            id="first-match-object",
        ),
        pytest.param(
            {"status": {"conditions": [cond("A", reason="x"), cond("B", reason="y")]}},
            'status.conditions.#(status=="True")#.reason',
            ["x", "y"],  # "." after a filter reaches into each match; a non-empty array counts as met
            id="dot-after-filter-maps",
        ),
    ],
)
def test_gjson_conditions(document: Any, path: str, expected: Any) -> None:
    assert matches(document, path) == expected


@pytest.mark.parametrize(
    "path", ['status.conditions.#(type%"Comp*")#', "status.conditions.#", "status..phase", "@reverse", ""]
)
def test_gjson_outside_the_subset_is_refused_clearly(path: str) -> None:
    with pytest.raises(GjsonError):
        matches({}, path)


@pytest.mark.parametrize(
    ("lines", "metrics", "filters", "expected"),
    [
        pytest.param(
            ["epoch 1", "loss=0.3", "loss = .25 accuracy=0.9"],
            ["loss", "accuracy"],
            [],
            [("loss", "0.3"), ("loss", ".25"), ("accuracy", "0.9")],
            id="default-format",
        ),
        pytest.param(
            ["Score=-7.53e-05", "Score=1E0"],
            ["Score"],
            [],
            [("Score", "-7.53e-05"), ("Score", "1E0")],
            id="exponents",
        ),
        pytest.param(["accuracy: 0.9"], ["accuracy"], [], [("accuracy", "unavailable")], id="katib-1416"),
        pytest.param(["val_loss=0.2"], ["loss"], [], [("loss", "unavailable")], id="other-name-only"),
        pytest.param(
            ["{acc: 0.5}"], ["acc"], [r"\{(\w+):\s*([\d.]+)\}"], [("acc", "0.5")], id="custom-filter"
        ),
    ],
)
def test_the_stdout_parser(
    lines: list[str], metrics: list[str], filters: list[str], expected: list[tuple[str, str]]
) -> None:
    assert [(m.name, m.value) for m in parse_text(lines, metrics, filters)] == expected


def test_a_leading_rfc3339_time_stamps_the_metric() -> None:
    (log,) = parse_text(["2026-12-04T10:00:00.123456789Z loss=0.5"], ["loss"])
    assert log == MetricLog("2026-12-04T10:00:00.123456789Z", "loss", "0.5")
    (plain,) = parse_text(["step-7 loss=0.5"], ["loss"])
    assert plain.timestamp == "0001-01-01T00:00:00Z"


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(
            ["0.5", "0.2", "0.9", "0.4"], {"min": "0.2", "max": "0.9", "latest": "0.4"}, id="min-max-latest"
        ),
        pytest.param(
            ["unavailable"], {"min": "unavailable", "max": "unavailable", "latest": "unavailable"}, id="none"
        ),
        pytest.param(
            ["nan-ish", "1"], {"min": "1", "max": "1", "latest": "1"}, id="unparsable-kept-as-latest-only"
        ),
    ],
)
def test_observation_folds_values_as_get_metrics_does(values: list[str], expected: dict[str, str]) -> None:
    logs = [MetricLog("0001-01-01T00:00:00Z", "loss", v) for v in values]
    assert observation(logs, ["loss"]) == {"metrics": [{"name": "loss", **expected}]}


@pytest.mark.parametrize(("strategy", "expected"), [("min", "0.1"), ("max", "0.9"), ("latest", "0.5")])
def test_objective_value_follows_the_metric_strategy(strategy: str, expected: str) -> None:
    trial = {
        "spec": {
            "objective": {
                "objectiveMetricName": "loss",
                "metricStrategies": [{"name": "loss", "value": strategy}],
            }
        },
        "status": {
            "observation": {"metrics": [{"name": "loss", "min": "0.1", "max": "0.9", "latest": "0.5"}]}
        },
    }
    assert objective_value(trial) == expected


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        pytest.param([Param("n", "int", "1", "5", "2")], [["1"], ["3"], ["5"]], id="int-step"),
        pytest.param(
            [Param("x", "double", "0.1", "0.4", "0.1")],
            [["0.1"], ["0.2"], ["0.30000000000000004"], ["0.4"]],
            id="double-as-np-arange",
        ),
        pytest.param(
            [Param("x", "double", "0", "1", "0.3")],
            [["0.0"], ["0.3"], ["0.6"], ["0.8999999999999999"]],
            id="past-max-dropped",
        ),
        pytest.param(
            [Param("opt", "categorical", values=("sgd", "adam")), Param("b", "discrete", values=("8", "16"))],
            [["8", "sgd"], ["8", "adam"], ["16", "sgd"], ["16", "adam"]],
            id="names-sorted",
        ),
    ],
)
def test_grid_points(params: list[Param], expected: list[list[str]]) -> None:
    points = grid_points(params)
    assert [[p[k] for k in sorted(p)] for p in points] == expected


def test_grid_visits_every_point_once_in_a_seeded_order() -> None:
    params = [Param("n", "int", "1", "3", "1"), Param("opt", "categorical", values=("a", "b"))]
    first = suggest("grid", params, 3, 6, 6)
    assert sorted(tuple(sorted(p.items())) for p in first) == sorted(
        tuple(sorted(p.items())) for p in grid_points(params)
    )
    assert suggest("grid", params, 3, 4, 6) == first[:4]  # more requests keep the earlier ones
    assert suggest("grid", params, 3, 8, None)[6:] == first[:2]  # past the grid, points repeat


@pytest.mark.parametrize(
    ("params", "max_trials", "message"),
    [
        pytest.param([Param("x", "double", "0", "1")], 2, "Param x step is nil", id="double-without-step"),
        pytest.param(
            [Param("n", "int", "1", "3", "1")],
            4,
            "Max Trial Count: 4 > all possible search combinations: 3",
            id="too-many",
        ),
    ],
)
def test_grid_refusals(params: list[Param], max_trials: int, message: str) -> None:
    with pytest.raises(SearchError, match=message):
        suggest("grid", params, 0, 1, max_trials)


def test_random_is_seeded_and_stays_in_its_space() -> None:
    params = [
        Param("lr", "double", "0.001", "0.1", distribution="logUniform"),
        Param("n", "int", "2", "8", "2"),
        Param("opt", "categorical", values=("sgd", "adam")),
        Param("m", "double", "0", "1", "0.25"),
    ]
    draws = suggest("random", params, 42, 30, 30)
    assert draws == suggest("random", params, 42, 30, 30)
    assert draws != suggest("random", params, 43, 30, 30)
    for d in draws:
        assert 0.001 <= float(d["lr"]) <= 0.1
        assert int(d["n"]) in {2, 4, 6, 8}
        assert d["opt"] in {"sgd", "adam"}
        assert float(d["m"]) in {0.0, 0.25, 0.5, 0.75, 1.0}
    with pytest.raises(SearchError, match="random and grid"):
        suggest("tpe", params, 0, 1, 1)


def test_params_and_seed_from_the_experiment() -> None:
    spec = {"parameters": [{"name": "n", "parameterType": "int", "feasibleSpace": {"min": "1", "max": "3"}}]}
    assert params_of(spec) == (Param("n", "int", "1", "3", "1"),)  # an int's step defaults to 1
    assert seed_of({"algorithmSettings": [{"name": "random_state", "value": "9"}]}, 5) == 9
    assert seed_of({}, 5) == 5
    with pytest.raises(SearchError, match="failed to validate random_state"):
        seed_of({"algorithmSettings": [{"name": "random_state", "value": "x"}]}, 5)


def trial(name: str, *conds: str, loss: str | None = None, params: str = "1") -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": [cond(c) for c in conds]}
    if loss is not None:
        status["observation"] = {"metrics": [{"name": "loss", "min": loss, "max": loss, "latest": loss}]}
    return {
        "metadata": {"name": name},
        "spec": {
            "objective": {
                "objectiveMetricName": "loss",
                "metricStrategies": [{"name": "loss", "value": "min"}],
            },
            "parameterAssignments": [{"name": "x", "value": params}],
        },
        "status": status,
    }


@pytest.mark.parametrize(
    ("conds", "bucket"),
    [
        ((), "Pending"),
        (("Created",), "Pending"),
        (("Created", "Running"), "Running"),
        (("Created", "Succeeded"), "Succeeded"),
        (("Created", "Failed"), "Failed"),
        (("Created", "MetricsUnavailable"), "MetricsUnavailable"),
        (("Killed", "Succeeded"), "Killed"),
    ],
)
def test_trial_buckets(conds: tuple[str, ...], bucket: str) -> None:
    assert trial_bucket(trial("t", *conds)) == bucket


@pytest.mark.parametrize(
    ("kind", "goal", "best", "reached"),
    [
        ("minimize", None, "b", False),
        ("minimize", 0.2, "b", True),
        ("maximize", None, "a", False),
        ("maximize", 0.5, "a", True),
    ],
)
def test_summarize_finds_the_best_trial(kind: str, goal: float | None, best: str, reached: bool) -> None:
    exp = {"spec": {"objective": {"type": kind, "goal": goal}}}
    trials = [
        trial("a", "Succeeded", loss="0.6", params="6"),
        trial("b", "Succeeded", loss="0.1", params="1"),
        trial("c", "Running"),
        trial("d", "MetricsUnavailable", loss="unavailable"),
    ]
    summary, goal_reached = summarize(exp, trials)
    assert summary["currentOptimalTrial"]["bestTrialName"] == best
    assert (
        summary["trials"],
        summary["trialsSucceeded"],
        summary["trialsRunning"],
        summary["trialMetricsUnavailable"],
    ) == (4, 2, 1, 1)
    assert summary["runningTrialList"] == ["c"]
    assert goal_reached is reached


@pytest.mark.parametrize(
    ("spec", "counts", "goal", "ending"),
    [
        pytest.param({}, {}, True, ("Succeeded", "ExperimentGoalReached"), id="goal"),
        pytest.param(
            {"maxFailedTrialCount": 2},
            {"trialsFailed": 1, "trialMetricsUnavailable": 1},
            False,
            ("Failed", "ExperimentFailed"),
            id="max-failed",
        ),
        pytest.param(
            {"maxFailedTrialCount": 0, "maxTrialCount": 9},
            {"trialsSucceeded": 2},
            False,
            None,
            id="zero-failed-allowed-none-failed",
        ),
        pytest.param(
            {"maxTrialCount": 3},
            {"trialsSucceeded": 2, "trialMetricsUnavailable": 1},
            False,
            ("Succeeded", "ExperimentMaxTrialsReached"),
            id="budget",
        ),
        pytest.param(
            {"maxTrialCount": 3}, {"trialsSucceeded": 2, "trialsRunning": 1}, False, None, id="running"
        ),
    ],
)
def test_conclude(
    spec: dict[str, Any], counts: dict[str, int], goal: bool, ending: tuple[str, str] | None
) -> None:
    status: dict[str, Any] = {
        "conditions": [cond("Created"), cond("Running", reason="ExperimentRunning")],
        **counts,
    }
    conclude({"spec": spec}, status, goal, "now")
    final = {c["type"]: (c["status"], c["reason"]) for c in status["conditions"]}
    if ending is None:
        assert final["Running"] == ("True", "ExperimentRunning") and "completionTime" not in status
        return
    assert final[ending[0]] == ("True", ending[1])
    assert final["Running"] == ("False", "ExperimentRunning")
    assert status["conditions"][-1]["type"] == ending[0]


@pytest.mark.parametrize(
    ("spec", "status", "add"),
    [
        ({"parallelTrialCount": 3, "maxTrialCount": 10}, {}, 3),
        ({"parallelTrialCount": 3, "maxTrialCount": 2}, {}, 2),
        ({"parallelTrialCount": 3, "maxTrialCount": 10}, {"trialsRunning": 2, "trialsPending": 1}, 0),
        ({"parallelTrialCount": 1, "maxTrialCount": 10}, {"trialsRunning": 2, "trialsPending": 1}, -2),
        ({"parallelTrialCount": 3, "maxTrialCount": 4}, {"trialsSucceeded": 3, "trialsRunning": 1}, 0),
        (
            {"parallelTrialCount": 2, "maxTrialCount": 4},
            {"trialsSucceeded": 2, "trialMetricsUnavailable": 1},
            2,
        ),
        ({"parallelTrialCount": 2}, {"trialsSucceeded": 50}, 2),
    ],
)
def test_trial_delta(spec: dict[str, Any], status: dict[str, Any], add: int) -> None:
    assert trial_delta(spec, status) == add


def test_job_state_and_the_trial_outcome() -> None:
    t = trial("t", "Created")
    t["spec"].update(successCondition=JOB_OK, failureCondition=JOB_FAILED)
    assert job_state(t, {"status": {}}) == JobState("Running")
    running, event = trial_outcome(t, JobState("Running"), "now")
    assert event == ("Normal", "JobRunning", "Job t is running")
    t["status"] = running
    assert job_state(t, {"status": {}}) is None
    job = {
        "status": {
            "conditions": [
                cond(
                    "Failed",
                    reason="BackoffLimitExceeded",
                    message="Job has reached the specified backoff limit",
                )
            ]
        }
    }
    state = job_state(t, job)
    assert state == JobState("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    failed, _ = trial_outcome(t, state, "later")
    final = failed["conditions"][-1]
    assert (final["type"], final["reason"]) == ("Failed", "TrialFailed. Job reason: BackoffLimitExceeded")
    assert final["message"] == "Trial has failed. Job message: Job has reached the specified backoff limit"
    with_metrics = trial("t", "Created", "Running", loss="0.3")
    done, event = trial_outcome(with_metrics, JobState("Succeeded"), "later")
    assert done["conditions"][-1]["type"] == "Succeeded" and event is not None and event[1] == "JobSucceeded"
    unavailable, event = trial_outcome(
        trial("t", "Created", "Running", loss="unavailable"), JobState("Succeeded"), "x"
    )
    assert unavailable["conditions"][-1]["type"] == "MetricsUnavailable" and event is not None


def experiment(**spec: Any) -> dict[str, Any]:
    body = {
        "metadata": {"name": "exp", "namespace": "ns"},
        "spec": {
            "objective": {
                "type": "minimize",
                "objectiveMetricName": "loss",
                "additionalMetricNames": ["acc"],
            },
            "algorithm": {"algorithmName": "random"},
            "parameters": [
                {"name": "lr", "parameterType": "double", "feasibleSpace": {"min": "0.1", "max": "1"}}
            ],
            "trialTemplate": {
                "primaryContainerName": "main",
                "trialParameters": [
                    {"name": "learningRate", "reference": "lr"},
                    {"name": "me", "reference": "${trialSpec.Name}"},
                ],
                "trialSpec": {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "spec": {
                        "template": {
                            "spec": {
                                "containers": [
                                    {
                                        "name": "main",
                                        "args": [
                                            "--lr=${trialParameters.learningRate}",
                                            "${trialParameters.me}",
                                        ],
                                    }
                                ]
                            }
                        }
                    },
                },
            },
        },
    }
    body["spec"].update(spec)
    return body


KINDS = {
    ("batch/v1", "Job"),
    ("argoproj.io/v1alpha1", "Workflow"),
    ("trainer.kubeflow.org/v1alpha1", "TrainJob"),
}


def test_defaults_as_the_mutating_webhook_sets_them() -> None:
    exp = experiment()
    default_experiment(exp)
    spec = exp["spec"]
    assert spec["parallelTrialCount"] == 3 and spec["resumePolicy"] == "Never"
    assert spec["metricsCollectorSpec"] == {"collector": {"kind": "StdOut"}}
    assert spec["objective"]["metricStrategies"] == [
        {"name": "loss", "value": "min"},
        {"name": "acc", "value": "min"},
    ]
    assert spec["trialTemplate"]["successCondition"] == JOB_OK
    assert spec["trialTemplate"]["failureCondition"] == JOB_FAILED
    assert "primaryPodLabels" not in spec["trialTemplate"]
    assert spec["parameters"][0]["feasibleSpace"]["distribution"] == "uniform"
    assert validate_experiment(exp, None, KINDS) == []
    train = experiment()
    train["spec"]["trialTemplate"]["trialSpec"]["apiVersion"] = "trainer.kubeflow.org/v1alpha1"
    train["spec"]["trialTemplate"]["trialSpec"]["kind"] = "TrainJob"
    default_experiment(train)
    assert train["spec"]["trialTemplate"]["primaryPodLabels"] == {
        "jobset.sigs.k8s.io/replicatedjob-name": "node",
        "batch.kubernetes.io/job-completion-index": "0",
    }
    argo = experiment()
    argo["spec"]["trialTemplate"]["trialSpec"] = {
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Workflow",
        "spec": {"x": "${trialParameters.learningRate} ${trialParameters.me}"},
    }
    default_experiment(argo)
    assert "successCondition" not in argo["spec"]["trialTemplate"]  # Katib has no default for Workflow


@pytest.mark.parametrize(
    ("change", "message"),
    [
        pytest.param(
            {"maxTrialCount": 0},
            "spec.maxTrialCount: Invalid value: 0: must be greater than 0",
            id="max-zero",
        ),
        pytest.param(
            {"maxFailedTrialCount": -1},
            "spec.maxFailedTrialCount: Invalid value: -1: should not be less than 0",
            id="failed-negative",
        ),
        pytest.param(
            {"objective": {"type": "lowest", "objectiveMetricName": "loss"}},
            'spec.objective.type: Invalid value: "lowest": must be minimize or maximize',
            id="objective-type",
        ),
        pytest.param(
            {"resumePolicy": "Sometimes"},
            'spec.resumePolicy: Invalid value: "Sometimes": invalid ResumePolicyType',
            id="resume",
        ),
        pytest.param(
            {"parameters": []},
            "spec: Required value: spec.parameters or spec.nasConfig must be specified",
            id="no-parameters",
        ),
        pytest.param(
            {
                "parameters": [
                    {
                        "name": "lr",
                        "parameterType": "categorical",
                        "feasibleSpace": {"list": ["a"], "min": "1"},
                    }
                ]
            },
            "feasibleSpace .max, .min and .step is not supported for parameterType: categorical",
            id="categorical-range",
        ),
        pytest.param(
            {"metricsCollectorSpec": {"collector": {"kind": "File"}}},
            "simcluster collects metrics with the StdOut collector only",
            id="file-collector",
        ),
        pytest.param(
            {
                "metricsCollectorSpec": {
                    "collector": {"kind": "StdOut"},
                    "source": {"filter": {"metricsFormat": ["(\\w+)=1"]}},
                }
            },
            "two top subexpressions are required",
            id="one-group-filter",
        ),
    ],
)
def test_validation_messages(change: dict[str, Any], message: str) -> None:
    exp = experiment(**change)
    default_experiment(exp)
    errors = validate_experiment(exp, None, KINDS)
    assert any(message in e for e in errors), errors


@pytest.mark.parametrize(
    ("template_change", "message"),
    [
        pytest.param(
            {"primaryContainerName": ""},
            "spec.trialTemplate.primaryContainerName: Required value: must be specified",
            id="primary",
        ),
        pytest.param(
            {"trialParameters": [{"name": "learningRate", "reference": "momentum"}]},
            "parameter reference momentum does not exist in spec.parameters",
            id="bad-reference",
        ),
        pytest.param(
            {"trialParameters": [{"name": "learningRate", "reference": "lr"}]},
            "parameters: [${trialParameters.me}] in spec.trialTemplate not found in spec.trialParameters",
            id="unreplaced",
        ),
        pytest.param(
            {
                "trialSpec": {
                    "kind": "Job",
                    "spec": {"a": "${trialParameters.learningRate}${trialParameters.me}"},
                }
            },
            "APIVersion and Kind in spec.trialTemplate must be specified",
            id="no-api-version",
        ),
        pytest.param(
            {
                "trialSpec": {
                    "apiVersion": "v1",
                    "kind": "ConfigMap",
                    "data": {"a": "${trialParameters.learningRate}${trialParameters.me}"},
                }
            },
            "simcluster serves no resource of kind ConfigMap in v1 for trials",
            id="unserved-kind",
        ),
        pytest.param(
            {"successCondition": "status.conditions.#", "failureCondition": JOB_FAILED},
            "spec.trialTemplate.successCondition: Invalid value",
            id="gjson-outside-subset",
        ),
        pytest.param(
            {"trialSpec": "kind: Job ${trialParameters.learningRate} ${trialParameters.me}"},
            "to unstructured",
            id="not-an-object",
        ),
        pytest.param(
            {"configMap": {"configMapName": "t"}},
            "only one of spec.trialTemplate.trialSpec or spec.trialTemplate.configMap can be specified",
            id="both-sources",
        ),
    ],
)
def test_trial_template_validation(template_change: dict[str, Any], message: str) -> None:
    exp = experiment()
    exp["spec"]["trialTemplate"].update(template_change)
    default_experiment(exp)
    errors = validate_experiment(exp, None, KINDS)
    assert any(message in e for e in errors), errors


def test_only_the_trial_budget_is_editable() -> None:
    old = experiment()
    default_experiment(old)
    new = copy.deepcopy(old)
    new["spec"]["maxTrialCount"] = 12
    assert validate_experiment(new, old, KINDS) == []
    new["spec"]["algorithm"] = {"algorithmName": "grid"}
    assert "spec: Forbidden: only spec.parallelTrialCount" in aggregate(validate_experiment(new, old, KINDS))


def test_aggregate_and_namespace_refusal() -> None:
    assert aggregate(["a", "a"]) == "a"
    assert aggregate(["a", "b"]) == "[a, b]"
    assert namespace_refusal("e", "ns", {"katib.kubeflow.org/metrics-collector-injection": "enabled"}) is None
    assert "lacks label" in str(namespace_refusal("e", "ns", {}))


def test_run_spec_substitutes_parameters_and_trial_metadata() -> None:
    exp = experiment()
    run = run_spec(exp, "exp-abcdefgh", "ns", [{"name": "lr", "value": "0.25"}])
    assert run["metadata"] == {"name": "exp-abcdefgh", "namespace": "ns"}
    assert run["spec"]["template"]["spec"]["containers"][0]["args"] == ["--lr=0.25", "exp-abcdefgh"]
    with pytest.raises(TemplateError, match="unable to find parameter: lr"):
        run_spec(exp, "t", "ns", [{"name": "momentum", "value": "1"}])


def test_the_cluster_file_switch() -> None:
    base = {
        "clusters": [
            {
                "name": "c",
                "nodeGroups": [{"name": "g", "count": 1, "capacity": {"cpu": "1", "memory": "1Gi"}}],
            }
        ]
    }
    assert parse_cluster_file(base)[0].katib is True
    base["clusters"][0]["katib"] = False
    assert parse_cluster_file(base)[0].katib is False
    base["clusters"][0]["katib"] = "no"
    with pytest.raises(ConfigError, match="katib: expected true or false"):
        parse_cluster_file(base)


MARK = (
    "1>/var/log/katib/metrics.log 2>&1 && echo completed > /var/log/katib/$$$$.pid || "
    "{ rc=$$?; echo failed > /var/log/katib/$$$$.pid; exit $$rc; }"
)


@pytest.mark.parametrize(
    ("container", "command", "args"),
    [
        pytest.param(
            {"command": ["bash", "-c"], "args": ["python -u train.py"]},
            ["bash", "-c"],
            [f"python -u train.py {MARK}"],
            id="bash-c-kept",
        ),
        pytest.param(
            {"command": ["python3", "train.py", "--lr=0.1"]},
            ["sh", "-c"],
            [f"python3 train.py --lr=0.1 {MARK}"],
            id="words-joined-unquoted",
        ),
        pytest.param(
            {"command": ["sh"], "args": ["-c", "echo loss=1"]},
            ["sh", "-c"],
            [f"echo loss=1 {MARK}"],
            id="command-and-args",
        ),
    ],
)
def test_the_collector_wraps_the_primary_container(
    container: dict[str, Any], command: list[str], args: list[str]
) -> None:
    spec = {"containers": [{"name": "main", **container}, {"name": "other", "command": ["x"]}]}
    assert inject(spec, "main")
    main, other, sidecar = spec["containers"]
    assert (main["command"], main["args"]) == (command, args)
    assert other == {"name": "other", "command": ["x"]}
    assert sidecar["name"] == "metrics-logger-and-collector"
    assert (
        main["volumeMounts"]
        == sidecar["volumeMounts"]
        == [{"name": "metrics-volume", "mountPath": "/var/log/katib"}]
    )
    assert spec["volumes"] == [{"name": "metrics-volume", "emptyDir": {}}]
    assert spec["shareProcessNamespace"] is True
    assert not inject(spec, "main")  # once only


def test_no_primary_container_no_collector() -> None:
    spec: dict[str, Any] = {"containers": [{"name": "main", "command": ["x"]}]}
    assert not inject(spec, "training")
    assert not inject({"containers": [{"name": "main", "image": "only-an-entrypoint"}]}, "main")
    assert spec == {"containers": [{"name": "main", "command": ["x"]}]}
    assert is_primary({"a": "1", "b": "2"}, {"a": "1"}) and is_primary({}, {})
    assert not is_primary({"a": "2"}, {"a": "1"})
