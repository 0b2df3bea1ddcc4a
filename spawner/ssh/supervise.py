"""Runs the notebook's own command beside the SSH server: forwards signals to it and ends with it."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Sequence

__all__ = ["FORWARDED_SIGNALS", "exit_code", "run_child", "split_command"]

# What Kubernetes and a person at a terminal send; the notebook decides what each means.
FORWARDED_SIGNALS = (
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGHUP,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
)


def split_command(argv: Sequence[str]) -> tuple[list[str], list[str]]:
    """The server's own options and the command after ``--`` (empty when there is none)."""
    if "--" not in argv:
        return list(argv), []
    at = list(argv).index("--")
    return list(argv[:at]), list(argv[at + 1 :])


def exit_code(returncode: int) -> int:
    """The status a shell reports for a child that ended with ``returncode`` (128 + N for signal N)."""
    return 128 - returncode if returncode < 0 else returncode


async def run_child(command: Sequence[str]) -> int:
    """Start ``command`` with this process's stdio and environment, forward signals to it until it
    ends, and return its exit code."""
    child = await asyncio.create_subprocess_exec(*command)
    loop = asyncio.get_running_loop()

    def forward(sig: signal.Signals) -> None:
        if child.returncode is None:
            child.send_signal(sig)

    for sig in FORWARDED_SIGNALS:
        loop.add_signal_handler(sig, forward, sig)
    try:
        return exit_code(await child.wait())
    finally:
        for sig in FORWARDED_SIGNALS:
            loop.remove_signal_handler(sig)
