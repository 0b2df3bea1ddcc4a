"""What the demo needs before it starts anything: Node.js and the proxy, the notebook command, free ports."""

from __future__ import annotations

import errno
import importlib.util
import json
import os
import shutil
import socket
from collections.abc import Sequence
from pathlib import Path

from .plan import Plan, hub_bind_host
from .state import STATE_FILE, DemoError, alive

__all__ = ["busy_port", "check_commands", "check_ports", "check_state_dir"]


def check_commands(plan: Plan, path: str) -> None:
    """DemoError naming the first missing program and how to get it; ``path`` is the hub's PATH."""
    if not plan.shipped_loader.exists():
        raise DemoError(f"{plan.shipped_loader} is missing: run the demo from a hybridhub checkout")
    if shutil.which("node", path=path) is None:
        raise DemoError(
            "node (Node.js) is not on PATH; configurable-http-proxy needs it: run `make demo`, which "
            "installs it (Debian packages nodejs and npm)"
        )
    if not plan.proxy.exists():
        raise DemoError(f"{plan.proxy} is missing: run `make demo` (or `npm ci` in {plan.repo})")
    for command in ("jupyterhub-singleuser", "hybridhub"):
        if shutil.which(command, path=path) is None:
            raise DemoError(f"{command} is not on PATH: run `make demo`, which installs hybridhub's extras")
    # the pods run this Python's jupyterhub-singleuser; without JupyterLab their /lab is a 404
    if importlib.util.find_spec("jupyterlab") is None:
        raise DemoError("JupyterLab is not installed: run `make demo`, which installs hybridhub's extras")


def busy_port(host: str, port: int) -> bool:
    """Whether binding ``host:port`` fails because something listens there (as a server binds it)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                return True
            raise DemoError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    return False


def check_ports(plan: Plan, runtime: str) -> None:
    """DemoError naming the first port in use and the option that moves it."""
    wanted: Sequence[tuple[str, str, int]] = (
        ("--port", plan.ip or "0.0.0.0", plan.ports.public),
        ("--proxy-api-port", "127.0.0.1", plan.ports.proxy_api),
        ("--hub-port", hub_bind_host(runtime), plan.ports.hub),
        ("--service-port", hub_bind_host(runtime), plan.ports.service),
        ("--ssh-port", plan.ip or "0.0.0.0", plan.ports.ssh),
    )
    seen: dict[int, str] = {}
    for option, host, port in wanted:
        if port in seen:
            raise DemoError(f"{option} and {seen[port]} are both {port}: give each its own port")
        seen[port] = option
        if busy_port(host, port):
            raise DemoError(
                f"port {port} on {host} is in use (another demo or JupyterHub?): stop it, or choose "
                f"another port with {option} PORT"
            )


def check_state_dir(state_dir: Path) -> None:
    """DemoError when a demo already runs from ``state_dir``; a state file left by a dead one is fine."""
    path = state_dir / STATE_FILE
    try:
        pid = int(json.loads(path.read_text())["pid"])
    except (OSError, ValueError, KeyError, TypeError):
        return
    if alive(pid) and pid != os.getpid():
        raise DemoError(
            f"a demo is already running from {state_dir} (pid {pid}): stop it with Ctrl-C there, or start "
            "another with its own --state-dir and ports"
        )
