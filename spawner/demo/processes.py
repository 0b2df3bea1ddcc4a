"""Starting the demo's processes, each in a process group of its own, and stopping every one of them.

JupyterHub starts the proxy and its managed services in sessions of their own, and a process whose
parent dies is handed to the nearest "subreaper". The demo makes itself that subreaper, so whatever its
children start stays in its process tree however it ends, and :meth:`Supervisor.stop` can find it.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import subprocess
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from .state import DemoError

__all__ = ["Child", "Supervisor", "descendants", "make_subreaper"]

_PR_SET_CHILD_SUBREAPER = 36


def make_subreaper(on: bool = True) -> bool:
    """Make this process adopt its orphaned descendants (Linux), or stop it; False where that fails."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, int(on), 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _parents() -> dict[int, int]:
    """Every process's parent, from /proc."""
    parents = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", encoding="ascii", errors="replace") as fh:
                fields = fh.read().rpartition(")")[2].split()
            parents[int(entry)] = int(fields[1])
        except (OSError, IndexError, ValueError):
            continue  # gone meanwhile
    return parents


def descendants(pid: int) -> list[int]:
    """The process IDs below ``pid``, children first."""
    children: dict[int, list[int]] = {}
    for child, parent in _parents().items():
        children.setdefault(parent, []).append(child)
    found, queue = [], list(children.get(pid, []))
    while queue:
        p = queue.pop(0)
        found.append(p)
        queue.extend(children.get(p, []))
    return found


@dataclass
class Child:
    """One process the demo started, the leader of its own process group."""

    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


class Supervisor:
    """Starts processes with their output in log files; stops them in reverse order, then every
    process left below the demo."""

    def __init__(self) -> None:
        self.children: list[Child] = []
        self.subreaper = make_subreaper()

    def start(self, name: str, argv: Sequence[str], *, env: Mapping[str, str], cwd: Path, log: Path) -> Child:
        try:
            with log.open("wb") as out:
                proc = subprocess.Popen(
                    list(argv),
                    env=dict(env),
                    cwd=cwd,
                    stdin=subprocess.DEVNULL,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,  # its own process group: a signal to it reaches its whole group
                )
        except OSError as exc:
            raise DemoError(f"cannot start {name} ({argv[0]}): {exc.strerror}") from None
        child = Child(name, proc, log)
        self.children.append(child)
        return child

    def reap_orphans(self) -> None:
        """Reap the exited processes this subreaper adopted (a pod's process whose nsenter ended, say), as
        init would; the children it started are left to their Popen."""
        ours = {c.pid for c in self.children}
        for pid, parent in _parents().items():
            if parent == os.getpid() and pid not in ours:
                with contextlib.suppress(ChildProcessError):
                    os.waitpid(pid, os.WNOHANG)

    def exited(self) -> Child | None:
        """The first child that is no longer running, or None."""
        return next((c for c in self.children if not c.running()), None)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM each child's process group, the last started first, and wait for it up to ``timeout``
        seconds, then SIGKILL; then end whatever else is left below this process the same way."""
        pending = list(reversed(self.children))
        while pending:
            child = pending.pop(0)
            _signal_group(child.pid, signal.SIGTERM)
            try:
                child.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                _signal_group(child.pid, signal.SIGKILL)
                child.proc.wait(10)
            # what the child started in groups of its own and left behind, not the trees still to stop
            keep = {p for c in pending for p in (c.pid, *descendants(c.pid))}
            _end([p for p in descendants(os.getpid()) if p not in keep], timeout)


def _signal_group(pgid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # the group is gone
        os.killpg(pgid, sig)


def _end(pids: Sequence[int], timeout: float) -> None:
    """SIGTERM these processes, wait for them, SIGKILL the rest, and reap those that are our children."""
    for pid in pids:
        _kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    pause = 0.02
    while (left := [p for p in pids if _reap(p)]) and time.monotonic() < deadline:
        time.sleep(pause)
        pause = min(pause * 2, 0.5)
    for pid in left:
        _kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while [p for p in left if _reap(p)] and time.monotonic() < deadline:
        time.sleep(0.05)


def _kill(pid: int, sig: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):  # gone
        os.kill(pid, sig)


def _reap(pid: int) -> bool:
    """Whether ``pid`` still runs; an exited child of ours (adopted as subreaper) is reaped here."""
    try:
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    except ChildProcessError:
        pass  # not our child: look at /proc
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as fh:
            return fh.read().rpartition(")")[2].split()[0] != "Z"
    except (OSError, IndexError):
        return False
