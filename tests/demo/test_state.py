"""The state file: written for its owner only, read back while its demo runs, refused when it is gone."""

from __future__ import annotations

import os
import stat
import subprocess
from pathlib import Path

import pytest

from spawner.demo.state import DemoError, DemoState, alive, read_state, remove_state, write_state


def state(pid: int) -> DemoState:
    return DemoState(
        pid=pid,
        url="http://127.0.0.1:8000/",
        password="p" * 12,
        ports={"public": 8000, "proxy_api": 8001, "hub": 8081, "service": 10101},
        token="t" * 12,
        endpoints="/x/endpoints.json",
        kubeconfig="/x/kubeconfig",
        runtime="process",
        hub_log="/x/jupyterhub.log",
        sim_log="/x/simcluster.log",
    )


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_round_trip_and_owner_only(tmp_path: Path) -> None:
    written = state(os.getpid())
    path = write_state(tmp_path, written)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600  # the password and a token are in it
    assert read_state(tmp_path) == written
    remove_state(tmp_path)
    remove_state(tmp_path)  # gone already: fine
    assert not path.exists()


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (None, r"no demo is running from .* start one with `hybridhub demo` --state-dir"),
        ("{", "cannot read"),
        ('{"pid": 1}', "cannot read"),  # fields missing
        ("dead", r"the demo that wrote .* \(pid \d+\) is gone"),
    ],
)
def test_read_state_refuses(tmp_path: Path, content: str | None, message: str) -> None:
    if content == "dead":
        write_state(tmp_path, state(dead_pid()))
    elif content is not None:
        (tmp_path / "demo.json").write_text(content)
    with pytest.raises(DemoError, match=message):
        read_state(tmp_path)


def test_alive() -> None:
    assert alive(os.getpid())
    assert not alive(dead_pid())
    zombie = subprocess.Popen(["true"])
    while alive(zombie.pid):  # exits, and stays a zombie until waited for
        os.sched_yield()
    zombie.wait()
