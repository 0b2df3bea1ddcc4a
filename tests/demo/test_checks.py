"""What the demo checks before it starts: programs, ports, another demo in the same state directory."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from spawner.demo.checks import busy_port, check_commands, check_ports, check_state_dir
from spawner.demo.plan import Plan, Ports
from spawner.demo.state import DemoError

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def listener() -> Iterator[int]:
    """A port something listens on, on 127.0.0.1."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_busy_port(listener: int) -> None:
    assert busy_port("127.0.0.1", listener)
    assert busy_port("0.0.0.0", listener)  # the hub's bind in the process runtime overlaps it
    assert not busy_port("127.0.0.1", free_port())


@pytest.mark.parametrize(
    ("field", "option"),
    [
        ("public", "--port"),
        ("proxy_api", "--proxy-api-port"),
        ("hub", "--hub-port"),
        ("service", "--service-port"),
        ("ssh", "--ssh-port"),
    ],
)
def test_check_ports_names_the_busy_port_and_its_option(
    tmp_path: Path, listener: int, field: str, option: str
) -> None:
    ports = {name: free_port() for name in ("public", "proxy_api", "hub", "service", "ssh")}
    ports[field] = listener
    plan = Plan(repo=REPO, state_dir=tmp_path, ports=Ports(**ports))
    with pytest.raises(DemoError, match=rf"port {listener} on .* is in use .* {option} PORT"):
        check_ports(plan, "process")


def test_check_ports_refuses_one_port_twice(tmp_path: Path) -> None:
    port = free_port()
    plan = Plan(repo=REPO, state_dir=tmp_path, ports=Ports(port, free_port(), port, free_port(), free_port()))
    with pytest.raises(DemoError, match=f"--hub-port and --port are both {port}"):
        check_ports(plan, "process")


def test_check_ports_passes_free_ports(tmp_path: Path) -> None:
    check_ports(Plan(repo=REPO, state_dir=tmp_path, ports=Ports(*(free_port() for _ in range(5)))), "process")


@pytest.mark.parametrize(
    ("repo", "path", "message"),
    [
        ("empty", "node", "jupyterhub_config.py is missing: run the demo from a hybridhub checkout"),
        ("no-proxy", "", r"node \(Node.js\) is not on PATH.*make demo"),
        ("no-proxy", "node", r"configurable-http-proxy is missing: run `make demo`"),
        ("full", "node", r"jupyterhub-singleuser is not on PATH"),
    ],
)
def test_check_commands(tmp_path: Path, repo: str, path: str, message: str) -> None:
    """Each missing piece, with a PATH holding only what the case names."""
    root = tmp_path / "repo"
    if repo != "empty":
        (root / "hub_config").mkdir(parents=True)
        (root / "hub_config" / "jupyterhub_config.py").write_text("")
    if repo == "full":
        (root / "node_modules" / ".bin").mkdir(parents=True)
        (root / "node_modules" / ".bin" / "configurable-http-proxy").write_text("")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if path:  # a PATH holding only `node`
        (bin_dir / "node").write_text("#!/bin/sh\n")
        (bin_dir / "node").chmod(0o755)
    with pytest.raises(DemoError, match=message):
        check_commands(Plan(repo=root, state_dir=tmp_path), str(bin_dir))


def test_check_commands_wants_jupyterlab(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for name in ("node", "jupyterhub-singleuser", "hybridhub"):
        (bin_dir / name).write_text("#!/bin/sh\n")
        (bin_dir / name).chmod(0o755)
    root = tmp_path / "repo"
    for part in ("hub_config/jupyterhub_config.py", "node_modules/.bin/configurable-http-proxy"):
        (root / part).parent.mkdir(parents=True)
        (root / part).write_text("")
    plan = Plan(repo=root, state_dir=tmp_path)
    check_commands(plan, str(bin_dir))  # everything there
    monkeypatch.setitem(sys.modules, "jupyterlab", None)  # what find_spec reports for a missing package
    with pytest.raises(DemoError, match="JupyterLab is not installed: run `make demo`"):
        check_commands(plan, str(bin_dir))


def test_check_state_dir(tmp_path: Path) -> None:
    check_state_dir(tmp_path)  # nothing there
    (tmp_path / "demo.json").write_text("not json")
    check_state_dir(tmp_path)  # unreadable: not a running demo
    dead = subprocess.Popen(["true"])
    dead.wait()
    (tmp_path / "demo.json").write_text(json.dumps({"pid": dead.pid}))
    check_state_dir(tmp_path)  # its demo is gone
    (tmp_path / "demo.json").write_text(json.dumps({"pid": os.getppid()}))
    with pytest.raises(
        DemoError, match=f"a demo is already running from {tmp_path} \\(pid {os.getppid()}\\)"
    ):
        check_state_dir(tmp_path)
