"""The hub's one shared poll of cluster health: asked once per interval however many spawns hold it,
stopped with the last one, and an unanswered poll says nothing."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping

import pytest

from spawner.spawning.health_poll import HealthPoll
from tests.harness.waits import wait_for_async

LOG = logging.getLogger("test")


class Service:
    def __init__(self) -> None:
        self.asked = 0
        self.answer: Mapping[str, str] | None = {"onprem": "healthy"}
        self.fail = False
        self.hang = False

    async def fetch(self) -> Mapping[str, str] | None:
        self.asked += 1
        if self.hang:
            await asyncio.Event().wait()
        if self.fail:
            raise OSError("connection refused")
        return self.answer


@pytest.mark.asyncio
async def test_many_holders_share_one_poll_which_stops_with_the_last() -> None:
    service = Service()
    poll = HealthPoll(service.fetch, interval=0.05, timeout=1.0, log=LOG)
    release = asyncio.Event()

    async def attempt() -> str | None:
        async with poll.held():
            await release.wait()
            return poll.state("onprem")

    attempts = [asyncio.ensure_future(attempt()) for _ in range(50)]
    await wait_for_async(lambda: service.asked >= 4, within=5)
    release.set()
    assert await asyncio.gather(*attempts) == ["healthy"] * 50
    asked = service.asked
    # 50 holders over >= 4 intervals: one question per interval, not one per holder
    assert asked < 50
    await asyncio.sleep(0.2)
    assert service.asked == asked  # no holder left: no more questions
    assert poll.state("onprem") is None


@pytest.mark.asyncio
@pytest.mark.parametrize("trouble", ["fail", "hang"])
async def test_no_answer_forgets_what_was_known(trouble: str) -> None:
    service = Service()
    service.answer = {"onprem": "healthy", "eks": "healthy"}
    poll = HealthPoll(service.fetch, interval=0.05, timeout=0.2, log=LOG)
    async with poll.held():
        await wait_for_async(lambda: poll.state("onprem") == "healthy", within=5)
        setattr(service, trouble, True)
        await wait_for_async(lambda: poll.state("onprem") is None, within=5)
        assert poll.state("eks") is None
        setattr(service, trouble, False)
        service.answer = {"onprem": "down"}
        await wait_for_async(lambda: poll.state("onprem") == "down", within=5)
        assert poll.state("nowhere") is None
