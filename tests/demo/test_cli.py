"""``hybridhub demo``'s command line: each mistake is one line on stderr and a non-zero exit, no traceback."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from spawner.cli import SUBCOMMANDS
from spawner.cli import main as hybridhub
from spawner.demo.state import DemoState, write_state


@pytest.fixture
def listener() -> Iterator[int]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        yield int(s.getsockname()[1])


def running_state(tmp_path: Path, runtime: str) -> None:
    """A state file naming a live process (the one that runs the tests), as a running demo leaves it."""
    write_state(
        tmp_path,
        DemoState(
            pid=os.getppid(),
            url="http://127.0.0.1:1/",
            password="p" * 12,
            ports={},
            token="t",
            endpoints=str(tmp_path / "endpoints.json"),
            kubeconfig="",
            runtime=runtime,
            hub_log="",
            sim_log="",
        ),
    )


def test_demo_is_a_subcommand() -> None:
    assert SUBCOMMANDS["demo"][0] == "spawner.demo.cli"


def one_line_error(capsys: pytest.CaptureFixture[str], code: int) -> str:
    out, err = capsys.readouterr()
    assert code != 0
    assert out == ""
    assert err.startswith("hybridhub demo: ") and err.count("\n") == 1, err
    return err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["status"], "no demo is running from"),
        (["outage", "onprem"], "no demo is running from"),
        (["recover", "onprem"], "no demo is running from"),
        (["recover", "onprem", "--wait", "-1"], "--wait must be 0 or more seconds"),
        (["--port", "0"], "--port must be a TCP port"),
        (["--hub-port", "70000"], "--hub-port must be a TCP port"),
    ],
)
def test_errors_are_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code = hybridhub(["demo", *argv, "--state-dir", str(tmp_path)])
    assert message in one_line_error(capsys, code)


@pytest.mark.parametrize("kind", ["--link", "--site"])
def test_hanging_outages_need_root(tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str) -> None:
    """Refused before simcluster is asked (the endpoints file does not even exist)."""
    running_state(tmp_path, "process-loopback")
    code = hybridhub(["demo", "outage", "onprem", kind, "--state-dir", str(tmp_path)])
    err = one_line_error(capsys, code)
    assert "needs simcluster's process runtime and so root" in err and "use --api" in err


def test_a_busy_port_stops_the_demo_before_it_starts(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], listener: int
) -> None:
    code = hybridhub(["demo", "--port", str(listener), "--state-dir", str(tmp_path / "d")])
    err = one_line_error(capsys, code)
    assert f"port {listener} on 127.0.0.1 is in use" in err and "--port PORT" in err
    assert not (tmp_path / "d" / "jupyterhub_config.py").exists()  # nothing was started


def test_a_second_demo_in_the_same_state_dir_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], listener: int
) -> None:
    running_state(tmp_path, "process")
    # the busy port would stop it next, should this check ever let it through
    code = hybridhub(["demo", "--state-dir", str(tmp_path), "--port", str(listener)])
    assert "a demo is already running from" in one_line_error(capsys, code)


@pytest.mark.parametrize(
    "argv", [["--help"], ["status", "--help"], ["outage", "--help"], ["recover", "--help"]]
)
def test_help(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        hybridhub(["demo", *argv])
    assert exit_.value.code == 0
    assert "usage: hybridhub demo" in capsys.readouterr().out
