"""The benchmarks run end to end in their smallest form (figures are not checked)."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "simcluster_api.py"


@pytest.mark.timeout(120)
def test_simcluster_api_benchmark_completes(tmp_path: Path) -> None:
    args = [
        "--quick",
        "--nodes",
        "20",
        "--pods",
        "300",
        "--namespaces",
        "3",
        "--list-reps",
        "1",
        "--watch-events",
        "10",
        "--idle-seconds",
        "0.5",
        "--timeout",
        "90",
        "--json",
        str(tmp_path / "figures.json"),
    ]
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, str(SCRIPT), *args],
        capture_output=True,
        text=True,
        timeout=110,
        cwd=SCRIPT.parent.parent,
    )
    elapsed = time.monotonic() - started
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "command:  .venv/bin/python bench/simcluster_api.py --quick" in out
    for row in (
        "phase",
        "create pods",
        "LIST all pods",
        "LIST label selector",
        "watch latency",
        "idle, 4 watches",
    ):
        assert f"\n{row}" in out, out
    assert (tmp_path / "figures.json").exists()
    print(f"benchmark smoke run took {elapsed:.1f}s")


INVENTORY = SCRIPT.parent / "inventory.py"


@pytest.mark.timeout(60)
def test_inventory_benchmark_completes(tmp_path: Path) -> None:
    """bench/inventory.py (the NodeIndex upkeep figures) in its smallest form: about 1 s."""
    args = ["--nodes", "40", "--pods", "600", "--events", "50", "--batches", "5", "--relists", "1"]
    result = subprocess.run(
        [sys.executable, str(INVENTORY), *args, "--json", str(tmp_path / "figures.json")],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=INVENTORY.parent.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "command:  .venv/bin/python bench/inventory.py --nodes 40" in out, out
    for row in (
        "relist + first snapshot",
        "pod event (a node's requests)",
        "10 pod events + snapshot",
        "node event (Ready flips)",
        "snapshot, nothing changed",
    ):
        assert f"\n{row}" in out, out
    assert (tmp_path / "figures.json").exists()


PROFILED = SCRIPT.parent / "profiled.py"


@pytest.mark.timeout(60)
def test_profiled_runs_a_module_and_writes_its_profile(tmp_path: Path) -> None:
    """bench/profiled.py, the wrapper behind simcluster_api.py --profile, around `hybridhub --help`."""
    command = [sys.executable, "-m", "spawner.cli", "--help"]
    result = subprocess.run(
        [sys.executable, str(PROFILED), "--out", str(tmp_path), "--", *command],
        capture_output=True,
        text=True,
        timeout=50,
        cwd=PROFILED.parent.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "usage: hybridhub SUBCOMMAND" in result.stdout, result.stdout
    assert (tmp_path / "profile.pstats").exists()
    assert (tmp_path / "gc.json").exists()
