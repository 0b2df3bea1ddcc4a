"""The %gpus, %runs and %logs views: plain text and HTML from parameter tables, hostile names escaped."""

from __future__ import annotations

from typing import Any

import pytest

from labextension_server.display import (
    Progress,
    TrialLine,
    bar,
    duration,
    experiment_trials,
    gpus_view,
    log_lines,
    runs_view,
    status_line,
    trainjob_progress,
    visible,
    why,
)

HOSTILE = "<script>alert('x')</script>&\""
ESCAPED = "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;&amp;&quot;"


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (None, "unknown"),
        (0, "0s"),
        (-3, "0s"),
        (44.6, "45s"),
        (60, "1m"),
        (3599, "59m"),
        (3600, "1h"),
        (3660, "1h 1m"),
        (86399, "23h 59m"),
        (86400, "1d"),
        (90000, "1d 1h"),
    ],
)
def test_duration(seconds: float | None, text: str) -> None:
    assert duration(seconds) == text


@pytest.mark.parametrize(
    ("part", "whole", "width", "text"),
    [
        (0, 8, 8, "░░░░░░░░"),
        (8, 8, 8, "████████"),
        (3, 8, 8, "███░░░░░"),
        (1, 100, 4, "█░░░"),  # a free GPU always shows
        (9, 8, 4, "████"),
        (-1, 8, 4, "░░░░"),
        (0, 0, 4, "····"),  # no GPUs of the kind at all
    ],
)
def test_bar(part: int, whole: int, width: int, text: str) -> None:
    assert bar(part, whole, width) == text


QUEUED = {
    "kind": "Workflow",
    "name": "train",
    "cluster": None,
    "phase": "Queued",
    "reason": "cluster auto",
    "queue": {"cluster": "onprem", "position": 2, "expected_wait": 125, "reason": "2 A100 are busy"},
}


@pytest.mark.parametrize(
    ("row", "reason", "line"),
    [
        (
            QUEUED,
            "position 2 for onprem, expected wait 2m: 2 A100 are busy",
            "Workflow/train is queued: position 2 for onprem, expected wait 2m: 2 A100 are busy",
        ),
        (
            {**QUEUED, "queue": {"cluster": "eks", "position": 1, "expected_wait": None, "reason": ""}},
            "position 1 for eks, expected wait unknown",
            "Workflow/train is queued: position 1 for eks, expected wait unknown",
        ),
        (
            {"kind": "Job", "name": "j", "cluster": "eks", "phase": "Running", "reason": "onprem is down"},
            "onprem is down",
            "Job/j is Running on eks: onprem is down",
        ),
        ({"kind": "Job", "name": "j", "cluster": None, "phase": "Failed"}, "", "Job/j is Failed"),
        ({"kind": "Job", "name": "j"}, "", "Job/j is Unknown"),
    ],
)
def test_why_and_status_line(row: dict[str, Any], reason: str, line: str) -> None:
    assert why(row) == reason
    assert status_line(row) == line


# --------------------------------------------------------------------------------------------- %gpus

CAPACITY = {
    "clusters": [
        {
            "name": "onprem",
            "role": "onprem",
            "health": "healthy",
            "reason": "",
            "synced": True,
            "products": [
                {"product": "NVIDIA-A100", "total": 8, "free": 2, "largest_free": 1, "new_node_gpus": 0},
                {"product": "NVIDIA-H100", "total": 4, "free": 0, "largest_free": 0, "new_node_gpus": 0},
            ],
        },
        {
            "name": "eks",
            "role": "cloud",
            "health": "degraded",
            "reason": "slow API",
            "synced": True,
            "products": [
                {"product": "NVIDIA-A10G", "total": 0, "free": 0, "largest_free": 0, "new_node_gpus": 4}
            ],
        },
        {"name": "lab", "role": "onprem", "health": "down", "reason": "", "synced": False, "products": []},
    ]
}


def test_gpus_text_shows_free_of_total_per_cluster_and_product_with_health() -> None:
    assert gpus_view(CAPACITY).text().splitlines() == [
        "onprem (onprem, healthy)",
        "  NVIDIA-A100  █████░░░░░░░░░░░░░░░  2/8 free, at most 1 on one node",
        "  NVIDIA-H100  ░░░░░░░░░░░░░░░░░░░░  0/4 free",
        "eks (cloud, degraded: slow API)",
        "  NVIDIA-A10G  ····················  0/0 free, a new node adds 4",
        "lab (onprem, down)",
        "  not synced yet: its GPUs are not known",
    ]


def test_gpus_shows_the_lag_each_product_has_for_a_run_placed_now() -> None:
    a100 = {
        "product": "NVIDIA-A100",
        "total": 8,
        "free": 2,
        "largest_free": 2,
        "new_node_gpus": 0,
        "queued_gpus": 4,
        "expected_wait": [
            {"gpus": 1, "seconds": 0.0},
            {"gpus": 2, "seconds": 0.0},
            {"gpus": 4, "seconds": 1200.0},
            {"gpus": 8, "seconds": None},
            {"gpus": "x", "seconds": 1.0},  # what does not parse is left out
            {"gpus": 16, "seconds": "soon"},
        ],
    }
    capacity = {"clusters": [{"name": "onprem", "role": "onprem", "health": "healthy", "products": [a100]}]}
    view = gpus_view(capacity)
    assert (
        view.text()
        .splitlines()[1]
        .endswith("2/8 free, at most 2 on one node, 4 queued; a run of 4: about 20m, 8: never fits")
    )
    assert "a run of 4: about 20m, 8: never fits" in view.html()


@pytest.mark.parametrize(
    ("queues", "line"),
    [
        ([], None),
        ([("onprem", 300.0)], "  1 of your runs waits here; expected wait 5m"),
        ([("onprem", 300.0), ("onprem", 90.0), ("eks", 5.0)], "  2 of your runs wait here; expected wait 1m"),
        ([("onprem", None)], "  1 of your runs waits here; expected wait unknown"),
        ([("onprem", None), ("onprem", 4000.0)], "  2 of your runs wait here; expected wait 1h 6m"),
    ],
)
def test_gpus_shows_the_expected_wait_of_your_runs_queued_for_a_cluster(
    queues: list[tuple[str, float | None]], line: str | None
) -> None:
    rows = [
        {"kind": "Job", "name": f"j{i}", "queue": {"cluster": c, "expected_wait": w}}
        for i, (c, w) in enumerate(queues)
    ]
    rows.append({"kind": "Job", "name": "running", "phase": "Running", "cluster": "onprem"})
    lines = gpus_view(CAPACITY, rows).text().splitlines()
    onprem = lines[: lines.index("eks (cloud, degraded: slow API)")]
    assert [ln for ln in onprem if "wait" in ln] == ([line] if line else [])


@pytest.mark.parametrize(
    ("local", "tail"),
    [
        (None, []),
        (
            {"nvml": False, "reason": "NVML could not start: no driver", "gpus": []},
            ["this notebook: NVML could not start: no driver"],
        ),
        ({"nvml": True, "driver": "550.54", "gpus": []}, ["this notebook: no GPU in this pod"]),
        (
            {
                "nvml": True,
                "driver": "550.54",
                "gpus": [
                    {
                        "index": 0,
                        "name": "NVIDIA A100",
                        "memory_total": 80 * 1024**3,
                        "memory_used": 3 * 1024**3,
                        "utilization_gpu": 12,
                        "temperature": 40,
                    },
                    {
                        "index": 1,
                        "name": "MIG 1g.10gb",
                        "memory_total": None,
                        "memory_used": None,
                        "utilization_gpu": None,
                        "temperature": None,
                    },
                ],
            },
            [
                "this notebook: driver 550.54",
                "  0: NVIDIA A100, 12% busy, 3.0/80.0 GiB, 40°C",
                "  1: MIG 1g.10gb",
            ],
        ),
    ],
)
def test_gpus_ends_with_this_notebooks_own_gpus(local: dict[str, Any] | None, tail: list[str]) -> None:
    lines = gpus_view({"clusters": []}, (), local).text().splitlines()
    assert lines == (tail or ["no clusters"])


def test_gpus_html_has_a_bar_per_product_and_escapes_every_name() -> None:
    capacity = {
        "clusters": [
            {
                "name": HOSTILE,
                "role": HOSTILE,
                "health": HOSTILE,
                "reason": HOSTILE,
                "products": [{"product": HOSTILE, "total": 4, "free": 1, "largest_free": 1}],
            }
        ]
    }
    page = gpus_view(capacity, [], {"nvml": False, "reason": HOSTILE}, [HOSTILE])._repr_html_()
    assert "<script>" not in page and "alert('x')" not in page
    assert page.count(ESCAPED) == 7
    assert 'style="width:25%;' in page
    assert "1/4 free, at most 1 on one node" in page


@pytest.mark.parametrize(
    ("free", "total", "width"), [(2, 8, "25%"), (0, 4, "0%"), (4, 4, "100%"), (0, 0, "0%")]
)
def test_gpus_html_bar_width_is_the_free_share(free: int, total: int, width: str) -> None:
    capacity = {"clusters": [{"name": "c", "products": [{"product": "p", "total": total, "free": free}]}]}
    assert f'<div style="width:{width};height:100%;background:#43a047">' in gpus_view(capacity).html()


def test_the_gpus_view_renders_as_text_in_terminals() -> None:
    view = gpus_view(CAPACITY)
    assert repr(view) == view.text()


# --------------------------------------------------------------------------------------------- %runs

EXPERIMENT_STATUS = {
    "trials": 4,
    "trialsSucceeded": 2,
    "trialsRunning": 1,
    "trialsFailed": 1,
    "succeededTrialList": ["sweep-a", "sweep-b"],
    "runningTrialList": ["sweep-c"],
    "failedTrialList": ["sweep-d"],
    "currentOptimalTrial": {
        "bestTrialName": "sweep-b",
        "parameterAssignments": [{"name": "lr", "value": "0.01"}],
        "observation": {"metrics": [{"name": "loss", "latest": "0.12", "min": "0.12", "max": "0.5"}]},
    },
}
EXPERIMENT = {"kind": "Experiment", "spec": {"maxTrialCount": 8}, "status": EXPERIMENT_STATUS}


def trial(name: str, created: str, lr: str, loss: str | None, state: str) -> dict[str, Any]:
    metrics = [] if loss is None else [{"name": "loss", "latest": loss, "min": loss, "max": loss}]
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "spec": {"parameterAssignments": [{"name": "lr", "value": lr}]},
        "status": {
            "observation": {"metrics": metrics},
            "conditions": [
                {"type": "Created", "status": "True", "lastTransitionTime": "2026-01-01T00:00:00Z"},
                {"type": state, "status": "True", "lastTransitionTime": "2026-01-01T00:01:00Z"},
            ],
        },
    }


@pytest.mark.parametrize(
    ("trials", "expected"),
    [
        (
            None,
            (
                TrialLine("sweep-a", "Succeeded"),
                TrialLine("sweep-b", "Succeeded", (("lr", "0.01"),), (("loss", "0.12"),), best=True),
                TrialLine("sweep-c", "Running"),
                TrialLine("sweep-d", "Failed"),
            ),
        ),
        (
            [
                trial("sweep-b", "2026-01-01T00:00:02Z", "0.01", "0.12", "Succeeded"),
                trial("sweep-a", "2026-01-01T00:00:01Z", "0.1", "0.5", "Succeeded"),
                trial("sweep-c", "2026-01-01T00:00:03Z", "0.05", None, "Running"),
            ],
            (
                TrialLine("sweep-a", "Succeeded", (("lr", "0.1"),), (("loss", "0.5"),)),
                TrialLine("sweep-b", "Succeeded", (("lr", "0.01"),), (("loss", "0.12"),), best=True),
                TrialLine("sweep-c", "Running", (("lr", "0.05"),), ()),
            ),
        ),
        ([], ()),
    ],
)
def test_an_experiments_trials_come_from_its_trials_or_else_its_status(
    trials: list[dict[str, Any]] | None, expected: tuple[TrialLine, ...]
) -> None:
    summary, lines = experiment_trials(EXPERIMENT, trials)
    assert summary == "trials: 4 of 8 (2 succeeded, 1 running, 1 failed); best sweep-b: lr=0.01 loss=0.12"
    assert lines == expected


@pytest.mark.parametrize(
    ("status", "summary"),
    [
        ({}, "trials: 0"),
        ({"trials": 1, "trialsPending": 1, "pendingTrialList": ["t"]}, "trials: 1 (1 pending)"),
        ({"trials": 2, "trialMetricsUnavailable": 2}, "trials: 2 (2 without metrics)"),
        (
            {"trials": 1, "trialsSucceeded": 1, "currentOptimalTrial": {"bestTrialName": "t"}},
            "trials: 1 (1 succeeded); best t",
        ),
    ],
)
def test_an_experiments_summary(status: dict[str, Any], summary: str) -> None:
    assert experiment_trials({"status": status})[0] == summary


@pytest.mark.parametrize(
    ("status", "progress", "text"),
    [
        ({}, None, None),
        ({"trainerStatus": None}, None, None),
        (
            {
                "trainerStatus": {
                    "progressPercentage": 40,
                    "estimatedRemainingSeconds": 300,
                    "metrics": [{"name": "loss", "value": "0.3"}],
                }
            },
            Progress(40.0, 300.0, (("loss", "0.3"),)),
            "████░░░░░░ 40%, about 5m left, loss=0.3",
        ),
        ({"trainerStatus": {"progressPercentage": 100}}, Progress(100.0, None), "██████████ 100%"),
        (
            {"trainerStatus": {"metrics": [{"name": "acc", "value": "0.9"}]}},
            Progress(None, None, (("acc", "0.9"),)),
            "acc=0.9",
        ),
    ],
)
def test_a_trainjobs_progress(status: dict[str, Any], progress: Progress | None, text: str | None) -> None:
    found = trainjob_progress({"status": status})
    assert found == progress
    assert (found.text() if found else None) == text


ROWS: list[dict[str, Any]] = [
    {"kind": "Workflow", "name": "old", "cluster": "onprem", "phase": "Succeeded", "gpus": 1, "age": 90000.0},
    {
        "kind": "Workflow",
        "name": "old-running",
        "cluster": "onprem",
        "phase": "Running",
        "gpus": 1,
        "age": 90000.0,
    },
    {
        "kind": "Job",
        "name": "recent",
        "cluster": "eks",
        "phase": "Failed",
        "gpus": 0,
        "age": 600.0,
        "reason": "onprem is down",
    },
    {**QUEUED, "gpus": 2, "age": 30.0},
]


@pytest.mark.parametrize(
    ("show_all", "names"),
    [(False, ["train", "recent", "old-running"]), (True, ["train", "recent", "old", "old-running"])],
)
def test_runs_shows_newest_first_and_leaves_out_old_ended_runs_without_all(
    show_all: bool, names: list[str]
) -> None:
    assert [r["name"] for r in visible(ROWS, show_all=show_all)] == names
    view = runs_view(ROWS, show_all=show_all)
    assert [r.name for r in view.runs] == names
    assert view.hidden == 4 - len(names)


def test_runs_text_is_a_table_with_why_last() -> None:
    assert runs_view(ROWS).text().splitlines() == [
        "KIND      NAME         CLUSTER  PHASE    GPUS  AGE    WHY",
        "Workflow  train        -        Queued   2     30s    "
        "position 2 for onprem, expected wait 2m: 2 A100 are busy",
        "Job       recent       eks      Failed   0     10m    onprem is down",
        "Workflow  old-running  onprem   Running  1     1d 1h",
        "1 run that ended a day or more after submission not shown: %runs --all shows them",
    ]


def test_runs_text_puts_a_sweeps_trials_and_a_trainjobs_progress_under_their_rows() -> None:
    rows = [
        {
            "kind": "Experiment",
            "name": "sweep",
            "cluster": "onprem",
            "phase": "Running",
            "gpus": 4,
            "age": 60.0,
        },
        {"kind": "TrainJob", "name": "tj", "cluster": "eks", "phase": "Created", "gpus": 8, "age": 120.0},
    ]
    details: dict[tuple[str, str], dict[str, Any]] = {
        ("Experiment", "sweep"): {"object": EXPERIMENT},
        ("TrainJob", "tj"): {"object": {"status": {"trainerStatus": {"progressPercentage": 50}}}},
    }
    assert runs_view(rows, details).text().splitlines() == [
        "KIND        NAME   CLUSTER  PHASE    GPUS  AGE  WHY",
        "Experiment  sweep  onprem   Running  4     1m",
        "    trials: 4 of 8 (2 succeeded, 1 running, 1 failed); best sweep-b: lr=0.01 loss=0.12",
        "    trial sweep-a  Succeeded",
        "    trial sweep-b  Succeeded  lr=0.01  loss=0.12  (best)",
        "    trial sweep-c  Running",
        "    trial sweep-d  Failed",
        "TrainJob    tj     eks      Created  8     2m",
        "    progress: █████░░░░░ 50%",
    ]


def test_runs_text_says_where_a_moved_run_waited_before() -> None:
    rows = [
        {
            "kind": "Workflow",
            "name": "moved",
            "cluster": "eks",
            "phase": "Succeeded",
            "gpus": 1,
            "age": 300.0,
            "reason": "moved from onprem to eks: onprem is down: starting on eks",
            "moves": [
                {
                    "from": "onprem",
                    "to": "eks",
                    "at": "2026-12-04T14:02:09Z",
                    "reason": "moved from onprem to eks: onprem is down: starting on eks",
                },
                {
                    "from": "eks",
                    "to": "onprem",
                    "at": "2026-12-04T14:09:00Z",
                    "reason": "moved back from eks to onprem: room",
                },
            ],
        }
    ]
    lines = runs_view(rows).text().splitlines()
    assert lines[2:] == [
        "    moved from onprem to eks at 14:02 UTC: onprem is down: starting on eks",
        "    moved from eks to onprem at 14:09 UTC: room",
    ]
    assert "<div>moved from onprem to eks at 14:02 UTC: onprem is down: starting on eks</div>" in (
        runs_view(rows).html()
    )


def test_runs_with_none_says_so() -> None:
    assert runs_view([]).text() == "no runs"
    assert "<p>no runs</p>" in runs_view([]).html()


def test_runs_html_escapes_names_reasons_and_trial_values() -> None:
    rows = [
        {
            "kind": "Experiment",
            "name": HOSTILE,
            "cluster": HOSTILE,
            "phase": HOSTILE,
            "gpus": 1,
            "age": 1.0,
            "reason": HOSTILE,
        }
    ]
    hostile_trial = trial(HOSTILE, "2026-01-01T00:00:00Z", HOSTILE, HOSTILE, "Running")
    hostile_trial["spec"]["parameterAssignments"][0]["name"] = HOSTILE
    details = {("Experiment", HOSTILE): {"object": {"status": {"trials": 1}}, "trials": [hostile_trial]}}
    page = runs_view(rows, details, notes=[HOSTILE])._repr_html_()
    assert "<script>" not in page and "alert('x')" not in page
    # the name, cluster, phase and reason; the trial's name, parameter name and value, metric; the note
    assert page.count(ESCAPED) == 9
    assert repr(runs_view(rows, details)) == runs_view(rows, details).text()


def test_runs_html_shows_progress_as_a_bar() -> None:
    rows = [{"kind": "TrainJob", "name": "tj", "cluster": "eks", "phase": "Running", "gpus": 8, "age": 1.0}]
    details = {
        ("TrainJob", "tj"): {
            "object": {
                "status": {"trainerStatus": {"progressPercentage": 62.5, "estimatedRemainingSeconds": 60}}
            }
        }
    }
    page = runs_view(rows, details).html()
    assert 'style="width:62.5%;height:100%;background:#1e88e5"' in page
    assert "62.5% about 1m left" in page


# --------------------------------------------------------------------------------------------- %logs


@pytest.mark.parametrize(
    ("lines", "printed"),
    [
        ([], []),
        ([("", "no pod")], ["no pod"]),
        ([("a", "1"), ("a", "2")], ["==> a <==", "1", "2"]),
        ([("a", "1"), ("b", "x"), ("a", "2")], ["==> a <==", "1", "==> b <==", "x", "==> a <==", "2"]),
    ],
)
def test_log_lines_head_each_change_of_pod(lines: list[tuple[str, str]], printed: list[str]) -> None:
    assert list(log_lines(lines)) == printed


def test_a_trial_whose_conditions_share_a_second_reads_as_the_last_one_set() -> None:
    tied = trial("sweep-e", "2026-01-01T00:00:04Z", "0.2", "0.3", "Succeeded")
    for condition in tied["status"]["conditions"]:
        condition["lastTransitionTime"] = "2026-01-01T00:00:00Z"
    _, (line,) = experiment_trials(EXPERIMENT, [tied])
    assert line.state == "Succeeded"
