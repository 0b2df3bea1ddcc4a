"""Waiting on a condition, never for a fixed time: poll until it holds, fail with what was last seen."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar, cast

from simcluster.testing import AdminClient

__all__ = ["wait_for", "wait_for_async", "watch_opened"]

T = TypeVar("T")


def _given(value: object) -> bool:
    return value is not None and value is not False


def wait_for(
    what: str,
    look: Callable[[], T | None],
    timeout: float,
    *,
    until: Callable[[Any], bool] = _given,
    every: float = 0.2,
    explain: Callable[[], str] = str,
) -> T:
    """Call ``look`` every ``every`` seconds until ``until`` holds for its value (by default: a value
    other than None or False) and return that value; after ``timeout`` seconds raise AssertionError
    naming ``what``, the last value seen and ``explain()`` (a hub's log tail, say)."""
    deadline = time.monotonic() + timeout
    while True:
        value = look()
        if until(value):
            return cast(T, value)  # by default, not None; with ``until``, what it accepted
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {timeout}s (last seen: {value!r})\n{explain()}")
        time.sleep(every)


async def wait_for_async(check: Callable[[], object], within: float, *, every: float = 0.01) -> None:
    """In a test's event loop: until ``check()`` is true, for at most ``within`` seconds (then
    AssertionError). The loop runs meanwhile, so the code under test moves on."""
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {within}s: {getattr(check, '__name__', check)!r}")
        await asyncio.sleep(every)


def watch_opened(admin: AdminClient, since: int, path: str, count: int = 1, timeout: float = 10.0) -> None:
    """Until ``count`` watch requests on ``path`` have reached the cluster's API after request ``since``.

    A test that writes after this exercises a watch that is already there, as a controller's is.
    Its correctness does not hang on it: a write that lands between the request's arrival and the
    watch's start is replayed from the watch's resourceVersion, as in Kubernetes."""

    def opened() -> int:
        return sum(1 for r in admin.requests(since) if r["watch"] and r["path"] == path)

    wait_for(f"{count} watch request(s) on {path}", opened, timeout, until=lambda n: n >= count, every=0.02)
