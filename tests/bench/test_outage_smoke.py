"""bench/outage.py (the service's health through an outage) in its smallest form: about 15 s."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "outage.py"


@pytest.mark.timeout(150)
def test_outage_benchmark_completes(tmp_path: Path) -> None:
    """One repetition with short probes; the figures are the script's business, but a hung API must
    end DOWN and come back HEALTHY with a current inventory, or the run measured nothing."""
    figures = tmp_path / "figures.json"
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--reps", "1", "--outage", "1", "--json", str(figures)],
        capture_output=True,
        text=True,
        timeout=140,
        cwd=SCRIPT.parent.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    assert "command:  .venv/bin/python bench/outage.py --quick --reps 1 --outage 1" in out, out
    assert "bounds:   hung -> DOWN 2.5 s, refused -> DOWN 2 s, return -> HEALTHY 1.5 s" in out, out
    for head in ("hung->DOWN", "back->HEALTHY", "current then", "refused->DOWN"):
        assert head in out, out
    ((row,),) = [json.loads(figures.read_text())["rows"]]
    assert row["hung"]["down_s"] is not None and row["hung"]["current_at_healthy"] is True, row
    assert row["refused"]["down_s"] is not None and row["refused"]["healthy_s"] is not None, row
