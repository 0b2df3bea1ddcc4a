"""bench/failover.py in its quickest form (one refused outage, about 30 s): a waiting run moves to
EKS, runs there on a new node, and its on-prem copy goes when on-prem returns; the script raises when
a stage is not seen. The figures themselves are not checked: the machine is shared and noisy."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "failover.py"


@pytest.mark.kubectl
@pytest.mark.timeout(240)
def test_failover_benchmark_sees_every_stage() -> None:
    result = subprocess.run(
        [sys.executable, str(SCRIPT), "--quick", "--outage", "refused"],
        capture_output=True,
        text=True,
        timeout=230,
        cwd=SCRIPT.parent.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    out = result.stdout
    stages = r"down ([\d.]+) s, moved ([\d.]+) s, let go ([\d.]+) s, running ([\d.]+) s, copy deleted"
    found = re.search(r"refused #1: " + stages, out)
    assert found, out
    down, moved, let_go, running = (float(x) for x in found.groups())
    assert down <= moved <= let_go <= running, out  # in the order they happen
    assert "hung #1" not in out  # the one outage asked for
    assert "MultiKueue's workerLostTimeout" in out
