"""The state file by which other shells (and a browser test) find a running demo: URL, password, ports."""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

__all__ = ["STATE_FILE", "DemoError", "DemoState", "alive", "read_state", "remove_state", "write_state"]

STATE_FILE = "demo.json"


class DemoError(Exception):
    """What went wrong, in one line a person can act on; the CLI prints it and exits non-zero."""


@dataclass(frozen=True)
class DemoState:
    """What ``hybridhub demo`` writes once it is ready, and removes when it stops."""

    pid: int  # the demo process
    url: str  # where people browse
    password: str  # the shared password; any user name
    ports: dict[str, int]  # public, proxy_api, hub, service
    token: str  # the demo's hub API token (read users and servers, the service's capacity)
    endpoints: str  # simcluster's endpoints file (admin API, its token and CA)
    kubeconfig: str  # contexts onprem and eks
    runtime: str  # simcluster's pod runtime: process, or process-loopback without root
    hub_log: str
    sim_log: str

    def as_json(self) -> bytes:
        return json.dumps(asdict(self), indent=2).encode()


def write_state(state_dir: Path, state: DemoState) -> Path:
    """Write the state file atomically, readable by its owner only: it holds the password and a token."""
    path = state_dir / STATE_FILE
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(state.as_json())
    os.replace(tmp, path)
    return path


def alive(pid: int) -> bool:
    """Whether a process with this ID runs (a zombie counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False


def read_state(state_dir: Path) -> DemoState:
    """The running demo's state; DemoError when there is none, or it is gone."""
    path = state_dir / STATE_FILE
    start = "start one with `hybridhub demo`" + (
        f" --state-dir {state_dir}" if str(state_dir) != ".demo" else ""
    )
    try:
        data: dict[str, Any] = json.loads(path.read_text())
        state = DemoState(**data)
    except FileNotFoundError:
        raise DemoError(f"no demo is running from {state_dir} (no {path}): {start}") from None
    except (OSError, ValueError, TypeError) as exc:
        raise DemoError(f"cannot read {path}: {exc}") from None
    if not alive(state.pid):
        raise DemoError(f"the demo that wrote {path} (pid {state.pid}) is gone: {start}")
    return state


def remove_state(state_dir: Path) -> None:
    (state_dir / STATE_FILE).unlink(missing_ok=True)
