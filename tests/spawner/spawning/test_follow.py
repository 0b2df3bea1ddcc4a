"""Following an attempt in-process: fail-fast verdicts from the pod's events, the progress the spawn
page shows, and the wait until the server answers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from tornado import httpserver, netutil, web

from spawner.core.clusters import parse_clusters
from spawner.spawning.follow import (
    NoRoom,
    Unreachable,
    fail_fast,
    progress,
    until_answering,
    until_unreachable,
)

(CLUSTER,) = parse_clusters(
    [
        {
            "name": "onprem",
            "role": "onprem",
            "namespace": "jupyterhub",
            "hub_connect_url": "http://hub:8081",
            "home_storage": {"kind": "none"},
            "pools": [{"name": "l40s"}],
        }
    ]
)
POOL = CLUSTER.pools[0]
INSUFFICIENT = "0/4 nodes are available: 4 Insufficient nvidia.com/gpu. preemption: 0/4 nodes are available"


def event(reason: str, message: str) -> dict[str, Any]:
    return {"reason": reason, "message": message, "type": "Warning", "lastTimestamp": "2025-01-06T10:00:00Z"}


async def follow(events: list[dict[str, Any]], *, elastic: bool, deadline: float = 60.0) -> list[str]:
    said: list[str] = []
    await asyncio.wait_for(
        fail_fast(
            lambda: events, CLUSTER, POOL, elastic=elastic, deadline=deadline, say=said.append, interval=0.01
        ),
        timeout=5,
    )
    return said


@pytest.mark.asyncio
async def test_a_fixed_pool_without_room_fails_fast_with_the_schedulers_words() -> None:
    with pytest.raises(
        NoRoom, match=r"^onprem had no room after all \(0/4 nodes are available: 4 Insufficient"
    ):
        await follow([event("Pulling", "image"), event("FailedScheduling", INSUFFICIENT)], elastic=False)


@pytest.mark.asyncio
async def test_an_elastic_pool_that_cannot_grow_fails_fast() -> None:
    with pytest.raises(NoRoom, match="pool l40s cannot grow"):
        await follow([event("NotTriggerScaleUp", "max node group size reached")], elastic=True)


@pytest.mark.asyncio
async def test_an_elastic_pool_growing_is_told_then_given_its_deadline() -> None:
    events = [event("FailedScheduling", INSUFFICIENT), event("TriggeredScaleUp", "pod triggered scale-up")]
    said: list[str] = []
    with pytest.raises(NoRoom, match="brought no node in time"):
        await asyncio.wait_for(
            fail_fast(
                lambda: events, CLUSTER, POOL, elastic=True, deadline=0.05, say=said.append, interval=0.01
            ),
            timeout=5,
        )
    assert said == ["onprem is adding a node to pool l40s; this takes a few minutes"]  # once, not per read


@pytest.mark.asyncio
async def test_a_fixed_pool_waits_out_what_is_not_about_capacity() -> None:
    unbound = event("FailedScheduling", "pod has unbound immediate PersistentVolumeClaims")
    said: list[str] = []
    task = asyncio.ensure_future(
        fail_fast(
            lambda: [unbound], CLUSTER, POOL, elastic=False, deadline=0.01, say=said.append, interval=0.01
        )
    )
    done, _ = await asyncio.wait({task}, timeout=0.2)  # many reads, past the (elastic-only) deadline
    assert not done and said == []
    task.cancel()


@pytest.mark.asyncio
async def test_progress_shows_our_messages_then_the_pods_events_of_each_attempt() -> None:
    messages: list[str] = ["onprem has 4 free NVIDIA-L40S"]
    events: dict[str, list[dict[str, Any]]] = {
        "onprem": [event("Scheduled", "assigned to l40s-0")],
        "eks": [],
    }
    where = {"cluster": "onprem"}
    finished = asyncio.Event()
    shown = progress(
        lambda: messages,
        lambda: where["cluster"],
        lambda: events[where["cluster"]],
        finished.is_set,
        interval=0.01,
    )

    async def next_message() -> str:
        item = await asyncio.wait_for(anext(shown), timeout=5)
        assert 0 <= item["progress"] < 90
        return str(item["message"])

    assert await next_message() == "onprem has 4 free NVIDIA-L40S"
    assert await next_message() == "2025-01-06T10:00:00Z [Warning] assigned to l40s-0"
    messages.append("onprem had no room after all; now: eks")
    where["cluster"] = "eks"  # the next attempt: its pod's events from the start
    events["eks"].append(event("TriggeredScaleUp", "pod triggered scale-up"))
    assert await next_message() == "onprem had no room after all; now: eks"
    assert await next_message() == "2025-01-06T10:00:00Z [Warning] pod triggered scale-up"
    finished.set()
    with pytest.raises(StopAsyncIteration):
        await asyncio.wait_for(anext(shown), timeout=5)


class Flaky(web.RequestHandler):
    """A server that answers 503 twice, then 200, as a notebook server that is still starting."""

    def initialize(self, asked: list[int]) -> None:
        self.asked = asked

    def get(self) -> None:
        self.asked.append(1)
        self.set_status(503 if len(self.asked) <= 2 else 200)
        self.finish("{}")


@pytest_asyncio.fixture
async def flaky() -> AsyncIterator[tuple[str, list[int]]]:
    asked: list[int] = []
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(web.Application([(r"/user/ann/api", Flaky, {"asked": asked})]))
    server.add_sockets(sockets)
    yield f"http://127.0.0.1:{sockets[0].getsockname()[1]}/user/ann/api", asked
    server.stop()


@pytest.mark.asyncio
async def test_until_answering_asks_until_the_server_answers(flaky: tuple[str, list[int]]) -> None:
    url, asked = flaky
    await asyncio.wait_for(until_answering(url, interval=0.01, within=5.0, log=_log()), timeout=5)
    assert len(asked) == 3


@pytest.mark.asyncio
async def test_until_answering_with_interval_0_asks_nothing(flaky: tuple[str, list[int]]) -> None:
    url, asked = flaky
    await until_answering(url, interval=0, within=5.0, log=_log())
    assert asked == []


def _log() -> logging.Logger:
    return logging.getLogger("test")


@pytest.mark.asyncio
async def test_events_are_read_only_when_the_event_watch_moved() -> None:
    """Reading the pod's events sorts every event of the namespace: while the watch's mark stays, they
    are not read again (until read_every); once it moves, the new FailedScheduling is read at once."""
    reads = 0
    events: list[dict[str, Any]] = []
    mark = [1]

    def read() -> list[dict[str, Any]]:
        nonlocal reads
        reads += 1
        return events

    task = asyncio.ensure_future(
        fail_fast(
            read,
            CLUSTER,
            POOL,
            elastic=False,
            deadline=60,
            say=lambda _: None,
            interval=0.01,
            changed=lambda: mark[0],
            read_every=60,
        )
    )
    await asyncio.sleep(0.2)
    assert reads == 1 and not task.done()  # the first read, then nothing moved
    events.append(event("FailedScheduling", INSUFFICIENT))
    mark[0] = 2
    with pytest.raises(NoRoom, match="no room after all"):
        await asyncio.wait_for(task, 5)
    assert reads == 2


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("states", "seen", "expected"),
    [
        (["healthy", "down"], True, "eks stopped answering"),  # the service calls it down
        ([None, "down"], True, "eks stopped answering"),  # an unanswered question says nothing
        # no pod in time, and the service no longer calls the cluster healthy (or cannot say)
        (["degraded"] * 50, False, "eks did not take the server's pod in 0 s"),
        ([None] * 50, False, "eks did not take the server's pod in 0 s"),
        (["healthy"] * 20 + ["degraded"] * 50, False, "eks did not take the server's pod in 0 s"),
    ],
)
async def test_until_unreachable_gives_up_on_a_cluster_that_is_gone(
    states: list[str | None], seen: bool, expected: str
) -> None:
    answers = iter(states)

    async def health() -> str | None:
        return next(answers)

    with pytest.raises(Unreachable, match=expected):
        await asyncio.wait_for(
            until_unreachable("eks", health, lambda: seen, create_within=0.05, interval=0.01), 5
        )


@pytest.mark.asyncio
async def test_a_late_pod_on_a_cluster_the_service_calls_healthy_is_waited_for() -> None:
    """A busy hub creates the pod late; the cluster answers the service all along: no giving up."""

    async def health() -> str | None:
        return "healthy"

    task = asyncio.ensure_future(
        until_unreachable("eks", health, lambda: False, create_within=0.01, interval=0.01)
    )
    await asyncio.sleep(0.2)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task


@pytest.mark.asyncio
async def test_until_unreachable_runs_on_while_the_cluster_answers() -> None:
    async def health() -> str | None:
        return "degraded"

    task = asyncio.ensure_future(
        until_unreachable("eks", health, lambda: True, create_within=0.01, interval=0.01)
    )
    await asyncio.sleep(0.2)
    assert not task.done()
    task.cancel()
