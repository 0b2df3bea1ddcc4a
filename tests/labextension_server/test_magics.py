"""%gpus, %runs and %logs in a real IPython shell, against the fake extension server."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from IPython.core.error import UsageError
from IPython.core.interactiveshell import InteractiveShell

from labextension_server.display import GpusView, RunsView

from .fake_extension import TOKEN, FakeExtension, LogStep, serve

pytestmark = pytest.mark.timeout(60)

CAPACITY = {
    "clusters": [
        {
            "name": "onprem",
            "role": "onprem",
            "health": "healthy",
            "products": [{"product": "A100", "total": 8, "free": 3, "largest_free": 2}],
        },
        {"name": "eks", "role": "cloud", "health": "down", "reason": "refused", "products": []},
    ]
}
SWEEP = {
    "kind": "Experiment",
    "name": "sweep",
    "cluster": "onprem",
    "phase": "Running",
    "gpus": 2,
    "age": 60.0,
}
QUEUED = {
    "kind": "Workflow",
    "name": "pipe",
    "cluster": None,
    "phase": "Queued",
    "gpus": 4,
    "age": 10.0,
    "queue": {"cluster": "onprem", "position": 1, "expected_wait": 300, "reason": "onprem is full"},
}
OLD = {"kind": "Job", "name": "old", "cluster": "eks", "phase": "Complete", "gpus": 0, "age": 200000.0}
EXPERIMENT = {
    "kind": "Experiment",
    "status": {
        "trials": 2,
        "trialsSucceeded": 1,
        "trialsRunning": 1,
        "succeededTrialList": ["sweep-a"],
        "runningTrialList": ["sweep-b"],
        "currentOptimalTrial": {
            "bestTrialName": "sweep-a",
            "parameterAssignments": [{"name": "lr", "value": "0.1"}],
            "observation": {"metrics": [{"name": "loss", "latest": "0.4"}]},
        },
    },
}


@pytest.fixture
def fake() -> FakeExtension:
    return FakeExtension(
        capacity=CAPACITY,
        rows=[SWEEP, QUEUED, OLD],
        objects={("Experiment", "sweep"): EXPERIMENT},
        gpus={"nvml": False, "reason": "no NVIDIA driver in this pod", "gpus": []},
    )


@pytest.fixture
def shell(fake: FakeExtension, monkeypatch: pytest.MonkeyPatch) -> Iterator[InteractiveShell]:
    """A real IPython shell with the extension loaded by %load_ext, as the notebook image's kernels have."""
    for bind_url in serve(fake):
        monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", bind_url)
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", TOKEN)
        ipython = InteractiveShell.instance()
        ipython.run_line_magic("load_ext", "labextension_server")
        yield ipython
        InteractiveShell.clear_instance()


def formats(shell: InteractiveShell, value: Any) -> dict[str, str]:
    """What a notebook (text/html) and a terminal (text/plain) get for a cell's value."""
    formatter: Any = shell.display_formatter
    data, _ = formatter.format(value)
    return dict(data)


def run_cell(shell: InteractiveShell, cell: str) -> Any:
    """The cell's ExecutionResult; IPython's run_cell carries no types."""
    runner: Any = shell.run_cell
    return runner(cell)


def test_gpus_shows_the_same_numbers_as_the_capacity_answer_in_html_and_text(shell: InteractiveShell) -> None:
    view = shell.run_line_magic("gpus", "")
    assert isinstance(view, GpusView)
    shown = formats(shell, view)
    assert shown["text/plain"].splitlines() == [
        "onprem (onprem, healthy)",
        "  A100  ████████░░░░░░░░░░░░  3/8 free, at most 2 on one node",
        "  1 of your runs waits here; expected wait 5m",
        "eks (cloud, down: refused)",
        "  no GPUs",
        "this notebook: no NVIDIA driver in this pod",
    ]
    assert "3/8 free, at most 2 on one node" in shown["text/html"]


def test_gpus_still_answers_when_the_runs_are_refused(shell: InteractiveShell, fake: FakeExtension) -> None:
    fake.forced["runs"] = (403, "application/json", b'{"status": 403, "message": "no runs scope"}')
    text = formats(shell, shell.run_line_magic("gpus", ""))["text/plain"]
    assert "3/8 free" in text
    assert text.splitlines()[-1] == "expected waits unknown: 403: no runs scope"


@pytest.mark.parametrize(
    ("line", "names", "hidden"),
    [("", ["pipe", "sweep"], 1), ("--all", ["pipe", "sweep", "old"], 0)],
)
def test_runs_lists_each_run_with_its_cluster_and_why(
    shell: InteractiveShell, fake: FakeExtension, line: str, names: list[str], hidden: int
) -> None:
    view = shell.run_line_magic("runs", line)
    assert isinstance(view, RunsView)
    assert [r.name for r in view.runs] == names
    assert view.hidden == hidden
    text = formats(shell, view)["text/plain"]
    assert "position 1 for onprem, expected wait 5m: onprem is full" in text
    # the sweep's object was read for its trials; the queued run, with no object yet, was not
    assert "    trial sweep-a  Succeeded  lr=0.1  loss=0.4  (best)" in text.splitlines()
    asked = [p.rsplit("/api/", 1)[1] for _, p, _, _ in fake.requests]
    assert asked == ["runs", "runs/Experiment/sweep"]


def test_runs_shows_a_sweeps_trials_when_the_server_sends_them(
    shell: InteractiveShell, fake: FakeExtension
) -> None:
    fake.trials[("Experiment", "sweep")] = [
        {
            "metadata": {"name": "sweep-c", "creationTimestamp": "2026-01-01T00:00:00Z"},
            "spec": {"parameterAssignments": [{"name": "lr", "value": "0.3"}]},
            "status": {"observation": {"metrics": [{"name": "loss", "latest": "0.9"}]}},
        }
    ]
    html = formats(shell, shell.run_line_magic("runs", ""))["text/html"]
    assert "<td>sweep-c</td><td>Created</td><td>lr=0.3</td><td>loss=0.9</td>" in html


def test_runs_notes_a_run_whose_details_failed(shell: InteractiveShell, fake: FakeExtension) -> None:
    fake.forced["runs/Experiment/sweep"] = (504, "application/json", b'{"status": 504, "message": "slow"}')
    view = shell.run_line_magic("runs", "")
    assert view.notes == ("Experiment/sweep: details unknown: 504: slow",)


def test_logs_prints_each_pods_lines_under_a_heading(
    shell: InteractiveShell, fake: FakeExtension, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.log_scripts[("Experiment", "sweep")] = [
        [LogStep(0, "sweep-a-pod", "loss=0.4"), LogStep(0, "sweep-b-pod", "loss=0.7")]
    ]
    assert shell.run_line_magic("logs", "sweep") is None
    assert capsys.readouterr().out.splitlines() == [
        "==> sweep-a-pod <==",
        "loss=0.4",
        "==> sweep-b-pod <==",
        "loss=0.7",
    ]
    assert fake.requests[-1][2] == {"follow": ["false"]}


def test_logs_follow_asks_for_the_stream(shell: InteractiveShell, fake: FakeExtension) -> None:
    shell.run_line_magic("logs", "--follow Workflow/pipe")
    assert fake.requests[-1][2] == {"follow": ["true"]}


@pytest.mark.parametrize(
    ("cell", "message"),
    [
        ("%logs nothing", 'hybridhub: 404: you have no run named "nothing"'),
        ("%logs Workflow/gone", 'hybridhub: 404: Workflow "gone" not found'),
        ("%runs --bogus", "unrecognized arguments: --bogus"),
        ("%logs", "the following arguments are required: run"),
    ],
)
def test_a_failing_magic_is_a_one_line_usage_error(shell: InteractiveShell, cell: str, message: str) -> None:
    result = run_cell(shell, cell)
    assert isinstance(result.error_in_exec, UsageError)
    assert message in str(result.error_in_exec)


@pytest.mark.parametrize("cell", ["%gpus", "%runs", "%logs sweep"])
def test_a_token_the_server_refuses_fails_every_magic_with_its_message(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch, cell: str
) -> None:
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "not-alices")
    result = run_cell(shell, cell)
    assert isinstance(result.error_in_exec, UsageError)
    assert str(result.error_in_exec) == "hybridhub: 403: Forbidden: this token may not use alice's server"


def test_outside_a_hub_server_the_magics_say_what_is_missing(
    shell: InteractiveShell, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("JUPYTERHUB_SERVICE_URL")
    result = run_cell(shell, "%gpus")
    assert isinstance(result.error_in_exec, UsageError)
    assert "JUPYTERHUB_SERVICE_URL not set" in str(result.error_in_exec)


def test_a_kernel_with_the_magics_loaded_imports_neither_tornado_nor_the_server() -> None:
    probe = (
        "import sys\n"
        "from IPython.core.interactiveshell import InteractiveShell\n"
        "shell = InteractiveShell.instance()\n"
        "shell.run_line_magic('load_ext', 'labextension_server')\n"
        "assert {'gpus', 'runs', 'logs'} <= set(shell.magics_manager.magics['line'])\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'tornado', 'jupyter_server', 'spawner'}))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True
    )
    assert done.stdout.strip() == "[]"
