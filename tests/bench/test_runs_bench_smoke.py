"""bench/runs.py (submitting a workflow through the service against straight to simcluster) in its
quick form, about 5 s, and the arithmetic its figures come from. The figures themselves are not
checked: the machine is shared and noisy."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "runs.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_runs", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while they are made
    spec.loader.exec_module(module)
    return module


runs = _load()


@pytest.mark.kubectl
@pytest.mark.timeout(120)
def test_runs_benchmark_completes(tmp_path: Path) -> None:
    """Every create of both paths returned and is in simcluster (the script checks it and exits
    non-zero otherwise), the service's first one held back with the hub's label."""
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--gap", "0.05", "--json", str(figures)],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=SCRIPT.parent.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "command:  .venv/bin/python bench/runs.py --quick --gap 0.05" in out, out
    assert "from create() to the workflow existing in simcluster" in out, out
    assert "from create() until it returns" in out, out
    assert out.count("service/direct: mean ") == 2, out
    for row in (
        "\nservice (Argo endpoint)      5 ",
        "\ndirect (simcluster Argo)     5 ",
        "service/direct: mean ",
    ):
        assert row in out, out
    for label in ("RunManager.submit, all of it", "store: add the run", "cluster: create as the user"):
        assert f"\n{label} " in out, out
    data = json.loads(figures.read_text())
    assert len(data["service_ms"]) == len(data["direct_ms"]) == len(data["submissions_ms"]) == 5
    # each timed create's ADDED event came, after its create started
    assert len(data["service_exists_ms"]) == len(data["direct_exists_ms"]) == 5
    assert all(ms > 0 for ms in data["service_exists_ms"] + data["direct_exists_ms"]), data
    assert set(data["ratio"]) == {"exists", "returns"}
    # the service path's steps until the workflow exists, each create through every step
    assert list(data["timeline"]) == [*runs.STEPS.values(), "from create() to existing, all of it"]
    assert all(step["n"] == 5 for step in data["timeline"].values()), data["timeline"]
    assert "\nthe service path until the workflow exists " in out, out
    assert list(data["first_service_ms"]) == ["bench-0"]
    assert "hub-labelled" in data["verified"], data["verified"]
    # each timed submission reached the store three times and the cluster once
    for parts in data["submissions_ms"]:
        assert set(parts) == {runs.SUBMIT, *runs.PARTS.values()}, parts


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 0.5, 5.0),
        ([1.0, 2.0, 3.0], 0.5, 2.0),
        ([3.0, 1.0, 2.0, 4.0], 0.5, 2.5),  # unsorted in, between the two middle ranks
        ([float(v) for v in range(1, 11)], 0.9, 9.1),
        ([float(v) for v in range(1, 11)], 1.0, 10.0),
        ([float(v) for v in range(1, 11)], 0.0, 1.0),
    ],
)
def test_quantile_interpolates_between_ranks(values: list[float], q: float, expected: float) -> None:
    assert runs.quantile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("service", "direct", "mean", "p50"),
    [
        ([10.0, 10.0, 40.0], [5.0, 5.0, 5.0], 4.0, 2.0),  # one slow create moves the mean, not the p50
        ([6.0, 6.0], [6.0, 6.0], 1.0, 1.0),
        ([3.0, 5.0], [6.0, 10.0], 0.5, 0.5),  # a faster service reads below 1
    ],
)
def test_ratio_is_service_over_direct(
    service: list[float], direct: list[float], mean: float, p50: float
) -> None:
    assert runs.ratio(runs.summarise(service), runs.summarise(direct)) == pytest.approx(
        {"mean": mean, "p50": p50}
    )


def test_parts_pair_each_create_with_its_submission() -> None:
    """What submit did beside the timed parts, and what the create spent outside submit, per create."""
    add, update = (runs.PARTS[(runs.RunRegistry, name)] for name in ("add", "update"))
    send = runs.PARTS[(runs.UserApi, "send")]
    submissions = [
        {runs.SUBMIT: 10.0, add: 3.0, update: 3.0, send: 3.0},
        {runs.SUBMIT: 20.0, add: 6.0, update: 6.0, send: 4.0},
    ]
    parts = runs.parts_of([15.0, 21.0], submissions)
    assert parts["submit: the rest (checks, placement)"].mean == pytest.approx((1.0 + 4.0) / 2)
    assert parts["outside submit: Hera, HTTP, token, handler"].mean == pytest.approx((5.0 + 1.0) / 2)
    assert parts[update].high == 6.0 and parts[send].low == 3.0
    with pytest.raises(ValueError, match="3 creates but 2 submissions"):
        runs.parts_of([1.0, 2.0, 3.0], submissions)


def test_the_timeline_steps_add_up_to_the_time_to_existence() -> None:
    """Each step runs from the moment before it; together they are the whole, create to ADDED."""
    starts = {"a": 10.0, "b": 20.0}
    stamps = {
        "a": {"handler": 10.002, "submit": 10.0021, "add": 10.0025, "added": 10.0045, "post": 10.0046},
        "b": {"handler": 20.001, "submit": 20.0011, "add": 20.0015, "added": 20.0025, "post": 20.0026},
    }
    steps = runs.timeline(starts, {"a": 10.010, "b": 20.006, "other": 1.0}, stamps)
    whole = steps.pop("from create() to existing, all of it")
    assert whole.low == pytest.approx(6.0) and whole.high == pytest.approx(10.0)
    assert steps[runs.STEPS["added"]].low == pytest.approx(1.0)
    assert steps[runs.STEPS["exists"]].high == pytest.approx(5.4)
    # a is the slower in every step, b the faster: each one's steps add up to its whole
    assert sum(step.high for step in steps.values()) == pytest.approx(whole.high)
    assert sum(step.low for step in steps.values()) == pytest.approx(whole.low)
