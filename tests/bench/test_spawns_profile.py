"""bench/spawns.py --profile: the hub configuration it adds profiles only between two SIGUSR2 (not
before, not after) and writes the profile and the collector's share when the process exits."""

from __future__ import annotations

import importlib.util
import json
import pstats
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parents[2] / "bench" / "spawns.py"


def _profiled(out: Path) -> str:
    """bench/spawns.py's ``profiled``, loaded from the script (bench/ is not a package)."""
    spec = importlib.util.spec_from_file_location("bench_spawns", SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    text: str = module.profiled(out)
    return text


@pytest.mark.timeout(60)
def test_the_profile_covers_only_the_signalled_window(tmp_path: Path) -> None:
    out = tmp_path / "hub.pstats"
    program = (
        _profiled(out)
        + _profiled(out)
        + textwrap.dedent(  # read twice, as JupyterHub may
            """
        import gc, os, signal

        def before(): return sum(range(1000))
        def during(): gc.collect(); return sum(range(1000))
        def after(): return sum(range(1000))

        before()
        os.kill(os.getpid(), signal.SIGUSR2)  # on
        during()
        os.kill(os.getpid(), signal.SIGUSR2)  # off
        after()
        """
        )
    )
    subprocess.run([sys.executable, "-c", program], check=True, timeout=50)
    names = {name for (_, _, name) in pstats.Stats(str(out)).stats}  # type: ignore[attr-defined]
    assert "during" in names
    assert "before" not in names and "after" not in names
    figures = json.loads(Path(str(out) + ".gc.json").read_text())
    assert figures["collections"]["2"][0] == 1  # the full collection inside the window, counted once
    assert figures["objects"] > 0
