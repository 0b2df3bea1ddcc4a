"""Which reflectors HybridSpawner starts again: those that gave up, not those starting or stopped."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest

from spawner.spawning.multicluster import gave_up


async def reflector(*, loaded: str, task: str, stopping: bool = False) -> Any:
    """A stand-in with the three attributes KubeSpawner's ResourceReflector has for this."""
    first_load: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if loaded == "ok":
        first_load.set_result(None)
    elif loaded == "failed":
        first_load.set_exception(RuntimeError("LIST failed"))
    watch = None
    if task != "none":
        watch = asyncio.ensure_future(asyncio.sleep(0 if task == "done" else 60))
        if task == "done":
            await watch
    return SimpleNamespace(_stopping=stopping, first_load_future=first_load, watch_task=watch)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("loaded", "task", "stopping", "dead"),
    [
        ("ok", "running", False, False),  # watching
        ("pending", "none", False, False),  # its first LIST is in flight: others wait for it
        ("ok", "done", False, True),  # the watch gave up after a minute of errors
        ("failed", "none", False, True),  # the first LIST failed (the cluster was down)
        ("ok", "none", False, True),
        ("ok", "done", True, False),  # stopped on purpose
    ],
)
async def test_gave_up(loaded: str, task: str, stopping: bool, dead: bool) -> None:
    r = await reflector(loaded=loaded, task=task, stopping=stopping)
    try:
        assert gave_up(r) is dead
    finally:
        if r.watch_task is not None:
            r.watch_task.cancel()
        if loaded == "failed":
            r.first_load_future.exception()  # retrieved
