"""The home page's note about a server whose cluster is down: the sentence, who sees it, one shared
answer from the service, and HybridSpawner's poll that sets it."""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import pytest

from spawner.hybrid import HybridSpawner
from spawner.spawning.cluster_note import RecentAnswer, cluster_note, home_announcement, note_for
from spawner.spawning.multicluster import MultiClusterSpawner
from spawner.spawning.service_client import ServiceClient
from tests.spawner.in_process import make_spawner

LOG = logging.getLogger("test")
DOWN_NOTE = (
    "onprem, the cluster your server runs on, is unreachable from the hub now (API unreachable for 3 "
    "probes). Your server is kept: if it does not open, it will once onprem is back."
)


@pytest.mark.parametrize(
    ("health", "reason", "note"),
    [
        pytest.param("down", "API unreachable for 3 probes", DOWN_NOTE, id="down: the note, with why"),
        pytest.param(
            "down",
            "",
            "onprem, the cluster your server runs on, is unreachable from the hub now. Your server is "
            "kept: if it does not open, it will once onprem is back.",
            id="down without a reason",
        ),
        pytest.param("degraded", "API unreachable for 1 probe", None, id="degraded: its servers still run"),
        pytest.param("healthy", "", None, id="healthy"),
        pytest.param("unknown", "", None, id="a state this hub does not know"),
    ],
)
def test_cluster_note(health: str, reason: str, note: str | None) -> None:
    assert cluster_note("onprem", health, reason) == note


@pytest.mark.parametrize(
    ("health", "note"),
    [
        pytest.param({"onprem": ("down", "API unreachable for 3 probes")}, DOWN_NOTE, id="its cluster down"),
        pytest.param({"eks": ("down", "x"), "onprem": ("healthy", "")}, None, id="another cluster down"),
        pytest.param({"eks": ("down", "x")}, None, id="its cluster not in the answer"),
        pytest.param(None, None, id="no answer from the service"),
    ],
)
def test_note_for(health: dict[str, tuple[str, str]] | None, note: str | None) -> None:
    assert note_for("onprem", health) == note


class Server:
    def __init__(self, note: Any = None) -> None:
        self.cluster_note = note


class User:
    def __init__(self, spawners: dict[str, Any]) -> None:
        self.spawners = spawners


@pytest.mark.parametrize(
    ("user", "html"),
    [
        pytest.param(None, None, id="logged out"),
        pytest.param(User({}), None, id="no server"),
        pytest.param(User({"": Server()}), None, id="a server without a note"),
        pytest.param(User({"": object()}), None, id="a server of another spawner"),
        pytest.param(
            User({"": Server("onprem is <down> & out")}), "onprem is &lt;down&gt; &amp; out", id="escaped"
        ),
        pytest.param(
            User({"b": Server("second"), "": Server("default"), "a": Server(None)}),
            "default<br>Server b: second",
            id="the default server first, then named ones by name",
        ),
    ],
)
def test_home_announcement(user: Any, html: str | None) -> None:
    assert home_announcement(user) == html


class Service:
    def __init__(self) -> None:
        self.asked = 0
        self.release = asyncio.Event()
        self.fail = False

    async def fetch(self) -> dict[str, tuple[str, str]]:
        self.asked += 1
        await self.release.wait()
        if self.fail:
            raise OSError("connection refused")
        return {"onprem": ("down", "")}


@pytest.mark.asyncio
async def test_callers_meanwhile_share_one_answer_and_a_later_one_asks_again() -> None:
    service = Service()
    answer = RecentAnswer(service.fetch, max_age=0.05, timeout=5.0, log=LOG)
    waiting = [asyncio.ensure_future(answer.get()) for _ in range(100)]
    await asyncio.sleep(0)  # every caller is waiting now
    service.release.set()
    assert await asyncio.gather(*waiting) == [{"onprem": ("down", "")}] * 100
    assert service.asked == 1
    await asyncio.sleep(0.1)  # older than max_age
    assert await answer.get() == {"onprem": ("down", "")}
    assert service.asked == 2


@pytest.mark.asyncio
async def test_a_cancelled_caller_leaves_the_answer_to_the_others() -> None:
    service = Service()
    answer = RecentAnswer(service.fetch, max_age=10.0, timeout=5.0, log=LOG)
    first, second = asyncio.ensure_future(answer.get()), asyncio.ensure_future(answer.get())
    await asyncio.sleep(0)
    first.cancel()
    service.release.set()
    assert await second == {"onprem": ("down", "")}
    assert service.asked == 1


@pytest.mark.asyncio
@pytest.mark.parametrize("trouble", ["fail", "hang"])
async def test_no_answer_is_none(trouble: str) -> None:
    service = Service()
    service.fail = trouble == "fail"
    if trouble == "fail":
        service.release.set()
    answer = RecentAnswer(service.fetch, max_age=10.0, timeout=0.05, log=LOG)
    assert await answer.get() is None


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("polled", "health", "note"),
    [
        pytest.param(
            None, {"onprem": ("down", "API unreachable for 3 probes")}, DOWN_NOTE, id="running, down"
        ),
        pytest.param(None, {"onprem": ("healthy", "")}, None, id="running, healthy"),
        pytest.param(None, OSError("refused"), None, id="running, the service does not answer"),
        pytest.param(0, {"onprem": ("down", "x")}, None, id="stopped: no note, the service not asked"),
    ],
)
async def test_poll_sets_the_note(
    monkeypatch: pytest.MonkeyPatch, polled: int | None, health: Any, note: str | None
) -> None:
    asked = []

    async def poll(self: MultiClusterSpawner) -> int | None:
        return polled

    async def cluster_health(self: ServiceClient) -> dict[str, tuple[str, str]]:
        asked.append(self.url)
        if isinstance(health, Exception):
            raise health
        return dict(health)

    monkeypatch.setattr(MultiClusterSpawner, "poll", poll)
    monkeypatch.setattr(ServiceClient, "cluster_health", cluster_health)
    monkeypatch.setattr(HybridSpawner, "_recent_health", {})
    spawner = make_spawner()
    spawner.cluster_name = "onprem"
    spawner.cluster_note = "an earlier poll's note"
    assert await spawner.poll() == polled
    assert spawner.cluster_note == note
    assert len(asked) == (0 if polled == 0 else 1)
