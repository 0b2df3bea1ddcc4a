"""bench/notebook_capacity.py (capacity through the notebook server's extension against straight from the
service) in its quick form, about 10 s, and the arithmetic its figures come from. The figures themselves
are not checked: the machine is shared and noisy."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "notebook_capacity.py"


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_notebook_capacity", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while they are made
    spec.loader.exec_module(module)
    return module


bench = _load()


@pytest.mark.timeout(120)
def test_notebook_capacity_benchmark_completes(tmp_path: Path) -> None:
    """Every request of every path answered 200 (the script exits non-zero otherwise), and the extension
    answered the service's capacity body unchanged: both clusters, in the tables and the JSON."""
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--warmup", "2", "--json", str(figures)],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=SCRIPT.parent.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "command:  .venv/bin/python bench/notebook_capacity.py --quick --warmup 2" in out, out
    for row in (
        "\nextension (hybridhub/api)       30 ",
        "\ndirect (service api)            30 ",
        "\nextension (hybridhub/api)       50 ",
        "\ndirect (service api)            50 ",
        "\nextension/direct: p50 ",
        "\nextension/direct: req/s ",
    ):
        assert row in out, out
    data = json.loads(figures.read_text())
    assert data["clusters"] == ["onprem", "cloud"]
    for path in bench.PATHS:
        assert len(data["latency_ms"][path]) == 30 and len(data["loaded_ms"][path]) == 50, path
        assert data["requests_per_second"][path] > 0, path
    # the extension's requests ran in the notebook server; the direct ones never reached it
    cpu = data["cpu_ms_per_request"]
    assert cpu["extension"]["server"] > cpu["direct"]["server"], cpu


@pytest.mark.parametrize(
    ("values", "q", "expected"),
    [
        ([5.0], 0.99, 5.0),
        ([3.0, 1.0, 2.0, 4.0], 0.5, 2.5),  # unsorted in, between the two middle ranks
        ([float(v) for v in range(1, 101)], 0.99, 99.01),
        ([float(v) for v in range(1, 101)], 1.0, 100.0),
        ([float(v) for v in range(1, 11)], 0.0, 1.0),
    ],
)
def test_quantile_interpolates_between_ranks(values: list[float], q: float, expected: float) -> None:
    assert bench.quantile(values, q) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("extension", "direct", "expected"),
    [
        # one slow request moves the mean and the p99, not the p50
        ([2.0, 2.0, 2.0, 20.0], [1.0, 1.0, 1.0, 1.0], {"p50": 2.0, "p99": 19.46, "mean": 6.5}),
        ([3.0, 3.0], [3.0, 3.0], {"p50": 1.0, "p99": 1.0, "mean": 1.0}),
        ([1.0, 1.0], [2.0, 2.0], {"p50": 0.5, "p99": 0.5, "mean": 0.5}),  # a faster extension reads below 1
    ],
)
def test_ratio_is_extension_over_direct(
    extension: list[float], direct: list[float], expected: dict[str, float]
) -> None:
    ratio = bench.ratio(bench.summarise(extension), bench.summarise(direct))
    assert ratio == pytest.approx(expected, rel=1e-3)


@pytest.mark.parametrize(
    ("requests", "seconds", "expected"),
    [(1000, 2.0, 500.0), (50, 0.25, 200.0), (8, 8.0, 1.0)],
)
def test_throughput_is_requests_over_wall_seconds(requests: int, seconds: float, expected: float) -> None:
    assert bench.throughput(requests, seconds) == pytest.approx(expected)


@pytest.mark.parametrize("seconds", [0.0, -1.0])
def test_throughput_refuses_a_time_that_is_not_positive(seconds: float) -> None:
    with pytest.raises(ValueError, match="must be positive"):
        bench.throughput(10, seconds)
