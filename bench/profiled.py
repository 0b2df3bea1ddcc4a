"""Run a server module under cProfile and time its garbage collections, for the benchmarks' ``--profile``.

    .venv/bin/python bench/profiled.py --out DIR -- PYTHON -m MODULE [ARGS...]

The part after ``--`` is the command a benchmark would have run, so a benchmark passes this script as
the wrapper of its server's command (``simcluster.testing.SimProcess(wrapper=...)``). The module runs
in this process, so its process id, CPU time and memory are the server's. When the module returns,
after SIGTERM for instance, two files are written to DIR: ``profile.pstats`` (read it with
``python -m pstats``) and ``gc.json``: per generation, how many collections ran, their seconds in
total and the longest one.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import runpy
import sys
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class GcTimer:
    """Times each collection through ``gc.callbacks``: count, total and longest, per generation."""

    def __init__(self) -> None:
        self.started = 0.0
        self.generations: dict[int, dict[str, float]] = {
            g: {"collections": 0, "seconds": 0.0, "longest": 0.0} for g in range(3)
        }

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self.started = time.perf_counter()
            return
        took = time.perf_counter() - self.started
        figures = self.generations[int(info.get("generation", 2))]
        figures["collections"] += 1
        figures["seconds"] += took
        figures["longest"] = max(figures["longest"], took)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, required=True, help="where profile.pstats and gc.json go")
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- PYTHON -m MODULE [ARGS...]")
    args = parser.parse_args()
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if len(command) < 3 or command[1] != "-m":
        parser.error("expected the server's command after --: PYTHON -m MODULE [ARGS...]")
    module, rest = command[2], command[3:]
    args.out.mkdir(parents=True, exist_ok=True)
    if str(REPO) not in sys.path:  # the module is this checkout's, as with `python -m` run from it
        sys.path.insert(0, str(REPO))
    sys.argv = [module, *rest]
    timer = GcTimer()
    gc.callbacks.append(timer)
    profiler = cProfile.Profile()
    code = 0
    try:
        profiler.enable()
        runpy.run_module(module, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    finally:
        profiler.disable()
        profiler.dump_stats(args.out / "profile.pstats")
        (args.out / "gc.json").write_text(json.dumps(timer.generations, indent=2))
    return code


if __name__ == "__main__":
    sys.exit(main())
