"""The hub's calls to the hybridhub service, against a real HTTP server in-process: answers, refusals,
a service that hangs or is gone, and what users read each time."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
from tornado import httpserver, netutil, web

from spawner.spawning import service_client
from spawner.spawning.attempt import Candidate
from spawner.spawning.compat import SpawnRefused
from spawner.spawning.service_client import ReservationKeeper, ServiceClient

TOKEN = "hub-service-token"


class Service:
    """What the stand-in service answers next, and what it was asked."""

    def __init__(self) -> None:
        self.status = 200
        self.body: Any = {}
        self.raw: bytes | None = None  # sent as it is instead of ``body``
        self.hang = asyncio.Event()  # a hung service: answers only once this is set
        self.hung = False
        self.requests: list[tuple[str, str, str, Any]] = []
        self.script: list[tuple[int, Any]] = []  # (status, body) of the next answers, before the above


class Handler(web.RequestHandler):
    def initialize(self, service: Service) -> None:
        self.service = service

    async def answer(self) -> None:
        s = self.service
        body = json.loads(self.request.body) if self.request.body else None
        s.requests.append(
            (self.request.method or "", self.request.path, self.request.headers["Authorization"], body)
        )
        if s.hung:
            await s.hang.wait()
        status, answer = s.script.pop(0) if s.script else (s.status, s.body)
        self.set_status(status)
        if s.raw is not None:
            self.finish(s.raw)
        elif answer is not None:
            self.finish(json.dumps(answer))

    get = post = delete = answer


@pytest_asyncio.fixture
async def service() -> AsyncIterator[tuple[Service, ServiceClient]]:
    state = Service()
    app = web.Application([(r"/services/hybridhub/.*", Handler, {"service": state})])
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    port = sockets[0].getsockname()[1]
    yield state, ServiceClient(f"http://127.0.0.1:{port}/services/hybridhub/", TOKEN, timeout=2.0)
    state.hang.set()
    server.stop()
    await server.close_all_connections()


CANDIDATE = {
    "cluster": "onprem",
    "pool": "l40s",
    "elastic": False,
    "nodes": ["l40s-0"],
    "preferred_node": "l40s-0",
    "reason": "l40s-0 on onprem has 4 free NVIDIA-L40S (best fit)",
    "reservation": "r-1",
}
REQUEST = {"user": "ann", "gpus": 1, "gpu_product": None, "cluster": "auto"}


@pytest.mark.asyncio
async def test_place_sends_the_request_with_the_token_and_reads_the_candidates(
    service: tuple[Service, ServiceClient],
) -> None:
    state, client = service
    state.body = {"candidates": [CANDIDATE, {**CANDIDATE, "cluster": "eks", "reservation": None}]}
    got = await client.place(REQUEST)
    assert [c.cluster for c in got.candidates] == ["onprem", "eks"]
    assert got.candidates[0] == Candidate.from_json(CANDIDATE)
    assert got.vouched == frozenset()  # an answer without ``pods`` vouches for no cluster
    assert state.requests == [("POST", "/services/hybridhub/api/placements", f"token {TOKEN}", REQUEST)]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("pods", "vouched"),
    [
        ({"checked": ["onprem", "eks"], "found": []}, {"onprem", "eks"}),
        ({"checked": ["onprem", "eks"], "found": [{"cluster": "onprem", "uid": "u"}]}, {"eks"}),
        ({"checked": ["eks"], "found": []}, {"eks"}),
        ({"checked": "all", "found": []}, set()),
        ({"checked": ["eks"]}, set()),
        ([], set()),
    ],
)
async def test_place_reads_which_clusters_the_service_vouches_for(
    service: tuple[Service, ServiceClient], pods: Any, vouched: set[str]
) -> None:
    state, client = service
    state.body = {"candidates": [CANDIDATE], "pods": pods}
    assert (await client.place(REQUEST)).vouched == vouched


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "body", "raw", "message", "reason"),
    [
        (
            409,
            {"message": "No cluster has 9 free NVIDIA-L40S"},
            None,
            "No cluster has 9 free NVIDIA-L40S",
            "capacity",
        ),
        (
            403,
            {"message": "missing scope custom:hybridhub:place"},
            None,
            "refused the request: missing scope",
            "hybridhub",
        ),
        (502, None, b"", "refused the request: HTTP 502", "hybridhub"),
        (502, None, b"<html>Bad Gateway</html>", "not JSON (HTTP 502)", "hybridhub"),
        (200, {"candidates": "none"}, None, "without candidates", "hybridhub"),
        (
            200,
            {"candidates": [{"cluster": "onprem"}]},
            None,
            "malformed candidate: candidate pool",
            "hybridhub",
        ),
    ],
)
async def test_place_refusals_are_sentences(
    service: tuple[Service, ServiceClient],
    status: int,
    body: Any,
    raw: bytes | None,
    message: str,
    reason: str,
) -> None:
    state, client = service
    state.status, state.body, state.raw = status, body, raw
    with pytest.raises(SpawnRefused) as err:
        await client.place(REQUEST)
    assert message in err.value.jupyterhub_message
    assert err.value.reason == reason


@pytest.mark.asyncio
async def test_a_hung_service_is_given_up_on_after_the_timeout(
    service: tuple[Service, ServiceClient],
) -> None:
    state, client = service
    state.hung = True
    fast = ServiceClient(client.url, client.token, timeout=0.2)
    started = asyncio.get_running_loop().time()
    with pytest.raises(SpawnRefused, match="did not answer in time"):
        await fast.place(REQUEST)
    assert asyncio.get_running_loop().time() - started < 2.0


@pytest.mark.asyncio
async def test_a_service_that_is_gone_is_unreachable() -> None:
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    port = sockets[0].getsockname()[1]
    sockets[0].close()  # nothing listens there now
    with pytest.raises(SpawnRefused, match="unreachable"):
        await ServiceClient(f"http://127.0.0.1:{port}/", TOKEN, timeout=2.0).capacity()


@pytest.mark.asyncio
@pytest.mark.parametrize(("status", "expected"), [(200, {"clusters": []}), (503, None)])
async def test_capacity(service: tuple[Service, ServiceClient], status: int, expected: Any) -> None:
    state, client = service
    state.status, state.body = status, {"clusters": []}
    assert await client.capacity() == expected
    assert state.requests[0][:2] == ("GET", "/services/hybridhub/api/capacity")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (
            200,
            {
                "clusters": [
                    {"name": "onprem", "health": "down", "reason": "x"},
                    {"name": "eks", "health": "healthy"},
                ]
            },
            {"onprem": ("down", "x"), "eks": ("healthy", "")},
        ),
        (200, {"clusters": [{"name": "onprem"}, {"health": "down"}, "eks"]}, {}),
        (200, {"clusters": "all fine"}, "did not say how the clusters are (HTTP 200)"),
        (503, {"message": "starting"}, "did not say how the clusters are (HTTP 503)"),
    ],
)
async def test_health_answers_are_read_strictly(
    service: tuple[Service, ServiceClient], status: int, body: Any, expected: Any
) -> None:
    state, client = service
    state.status, state.body = status, body
    if isinstance(expected, str):
        with pytest.raises(SpawnRefused) as err:
            await client.cluster_health()
        assert expected in err.value.jupyterhub_message
    else:
        assert await client.cluster_health() == expected
    assert state.requests[0][:2] == ("GET", "/services/hybridhub/api/health")


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("body", "expected"),
    [
        pytest.param(
            {
                "clusters": [
                    {"name": "onprem", "health": "down", "reason": "API unreachable for 3 probes"},
                    {"name": "eks", "health": "healthy", "reason": ""},
                ]
            },
            {"onprem": ("down", "API unreachable for 3 probes"), "eks": ("healthy", "")},
            id="health and reason",
        ),
        pytest.param(
            {
                "clusters": [
                    {"name": "onprem", "health": "down"},
                    {"name": "eks", "health": "down", "reason": 3},
                ]
            },
            {"onprem": ("down", ""), "eks": ("down", "")},
            id="a missing or malformed reason is none",
        ),
    ],
)
async def test_cluster_health(service: tuple[Service, ServiceClient], body: Any, expected: Any) -> None:
    state, client = service
    state.body = body
    assert await client.cluster_health() == expected
    assert state.requests[0][:2] == ("GET", "/services/hybridhub/api/health")


@pytest.mark.asyncio
@pytest.mark.parametrize("status", [204, 404, 500])
async def test_release_never_fails_the_spawn(service: tuple[Service, ServiceClient], status: int) -> None:
    state, client = service
    state.status, state.body = status, None
    await client.release("r-1")
    assert state.requests == [("DELETE", "/services/hybridhub/api/placements/r-1", f"token {TOKEN}", None)]


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("status", "body", "expected"),
    [
        (200, {"id": "r-1", "expires_in": 180.0}, 180.0),
        (200, {"id": "r-1", "expires_in": 180}, 180.0),
        (404, {"message": "no reservation r-1 (expired or released)"}, None),
        (500, None, "did not extend reservation r-1 (HTTP 500)"),
        (200, {"id": "r-1"}, "did not extend reservation r-1 (HTTP 200)"),
        (200, {"id": "r-1", "expires_in": True}, "did not extend reservation r-1 (HTTP 200)"),
    ],
)
async def test_extend(service: tuple[Service, ServiceClient], status: int, body: Any, expected: Any) -> None:
    state, client = service
    state.status, state.body = status, body
    if isinstance(expected, str):
        with pytest.raises(SpawnRefused) as err:
            await client.extend("r-1")
        assert expected in err.value.jupyterhub_message
    else:
        assert await client.extend("r-1") == expected
    assert state.requests[0][:2] == ("POST", "/services/hybridhub/api/placements/r-1/extend")


async def until(condition: Any, within: float = 5.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    while not condition():
        assert loop.time() < deadline, "timed out"
        await asyncio.sleep(0.01)


@pytest.mark.asyncio
async def test_a_keeper_extends_until_the_reservation_is_gone(service: tuple[Service, ServiceClient]) -> None:
    """A third of the time left before each extension; a failed one is tried again, a reservation the
    service no longer has is left alone."""
    state, client = service
    state.script = [(502, None), (200, {"id": "r-1", "expires_in": 0.6}), (404, {"message": "gone"})]
    keeper = ReservationKeeper(client, "r-1", 0.6, logging.getLogger("test"), min_interval=0.01)
    loop = asyncio.get_running_loop()
    began = loop.time()
    keeper.start()
    await until(lambda: keeper._task is not None and keeper._task.done())
    took = loop.time() - began
    assert [r[1] for r in state.requests] == ["/services/hybridhub/api/placements/r-1/extend"] * 3
    assert keeper.extensions == 1
    # 0.2 s (a third of 0.6), then a third of the 0.4 s left, then 0.2 s again: about 0.53 s
    assert 0.45 < took < 3.0, took
    await keeper.stop()


@pytest.mark.asyncio
async def test_a_stopped_keeper_asks_nothing_more(service: tuple[Service, ServiceClient]) -> None:
    state, client = service
    state.body = {"id": "r-1", "expires_in": 0.3}
    keeper = ReservationKeeper(client, "r-1", 0.3, logging.getLogger("test"), min_interval=0.01)
    keeper.start()
    await until(lambda: keeper.extensions >= 2)
    await keeper.stop()
    asked = len(state.requests)
    assert keeper._task is None
    # the keeper's task is gone: nothing can ask any more (not a wait for silence)
    await keeper.stop()  # stopping twice is harmless
    assert len(state.requests) == asked


# ---------------------------------------------------------------- connections


@pytest.mark.asyncio
async def test_requests_share_one_kept_alive_connection(service: tuple[Service, ServiceClient]) -> None:
    """A placement and its release cost the hub a request each, not a connection each."""
    state, _ = service
    peers: list[Any] = []

    class Seen(Handler):
        async def answer(self) -> None:
            peers.append(self.request.connection.stream.socket.getpeername())  # type: ignore[union-attr]
            await super().answer()

        get = post = delete = answer

    state.body = {"candidates": [CANDIDATE]}
    app = web.Application([(r"/.*", Seen, {"service": state})])
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    try:
        url = f"http://127.0.0.1:{sockets[0].getsockname()[1]}/"
        other = ServiceClient(url, TOKEN, timeout=2.0)
        await other.place(REQUEST)
        state.body = None
        await other.release("r-1")
        assert len(peers) == 2 and peers[0] == peers[1], peers
    finally:
        server.stop()
        await server.close_all_connections()


@pytest.mark.asyncio
async def test_a_post_on_a_connection_the_service_closed_is_sent_once_more() -> None:
    """A service that closes a kept-alive connection as the next request arrives (it restarted, or a
    proxy between ends idle connections) answered nothing: the placement is asked again on a new
    connection, once, and reaches the service once."""
    asked: list[str] = []
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        answered = 0
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    (
                        int(line.split(b":")[1])
                        for line in head.split(b"\r\n")
                        if line.lower().startswith(b"content-length")
                    ),
                    0,
                )
                await reader.readexactly(length)
                if connections == 1 and answered == 1:
                    return  # the second request on the first connection: closed unanswered
                asked.append(head.split(b" ")[0].decode())
                body = json.dumps({"candidates": [CANDIDATE]}).encode()
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    + f"Content-Length: {len(body)}\r\n\r\n".encode()
                    + body
                )
                await writer.drain()
                answered += 1
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    try:
        port = server.sockets[0].getsockname()[1]
        client = ServiceClient(f"http://127.0.0.1:{port}/", TOKEN, timeout=2.0)
        await client.place(REQUEST)
        placed = await client.place(REQUEST)
        assert placed.candidates[0].cluster == "onprem"
        assert asked == ["POST", "POST"] and connections == 2
    finally:
        server.close()
        await server.wait_closed()


def test_the_shared_session_is_closed_when_its_loop_ends() -> None:
    """One session per loop, shared by every spawner of the hub, closed when the loop's tasks are
    cancelled at its end (asyncio.run here, JupyterHub's shutdown in the hub), not left unclosed."""

    async def twice() -> tuple[Any, Any]:
        return service_client._session(), service_client._session()

    first, again = asyncio.run(twice())
    assert first is again and first.closed
