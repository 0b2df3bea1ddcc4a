"""The supervisor stops every process it started, and what those started in sessions of their own."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import pytest

from spawner.demo.processes import Supervisor, descendants, make_subreaper
from spawner.demo.state import DemoError, alive

# A parent that starts a grandchild in a session of its own (as JupyterHub starts its proxy) and a child
# that ignores SIGTERM, prints their PIDs, and sleeps.
FAMILY = """
import os, signal, subprocess, sys, time
detached = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"], start_new_session=True)
IGNORE = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('ok', flush=True); "
stubborn = subprocess.Popen([sys.executable, "-c", IGNORE + "time.sleep(600)"], stdout=subprocess.PIPE)
stubborn.stdout.readline()
print(detached.pid, stubborn.pid, flush=True)
time.sleep(600)
"""


def wait_for_line(path: Path, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    while not path.read_text().strip():
        assert time.monotonic() < deadline, "the family did not start"
        time.sleep(0.02)
    return path.read_text().strip()


def test_stop_leaves_no_process(tmp_path: Path) -> None:
    supervisor = Supervisor()
    assert supervisor.subreaper
    try:
        stop_all(supervisor, tmp_path)
    finally:
        make_subreaper(False)  # the rest of the session's orphans go to init again


def stop_all(supervisor: Supervisor, tmp_path: Path) -> None:
    env = dict(os.environ)
    first = supervisor.start(
        "first", [sys.executable, "-c", FAMILY], env=env, cwd=tmp_path, log=tmp_path / "1.log"
    )
    second = supervisor.start(
        "second", [sys.executable, "-c", FAMILY], env=env, cwd=tmp_path, log=tmp_path / "2.log"
    )
    pids = [first.pid, second.pid]
    for log in (first.log, second.log):
        pids += [int(p) for p in wait_for_line(log).split()]
    assert set(pids) <= set(descendants(os.getpid()))
    assert supervisor.exited() is None
    supervisor.stop(timeout=0.5)
    assert [p for p in pids if alive(p)] == []
    assert not first.running() and not second.running()


def test_a_program_that_cannot_start_is_a_one_line_error(tmp_path: Path) -> None:
    with pytest.raises(
        DemoError, match=r"cannot start proxy \(/no/such/program\): No such file or directory"
    ):
        Supervisor().start("proxy", ["/no/such/program"], env={}, cwd=tmp_path, log=tmp_path / "p.log")
    make_subreaper(False)
