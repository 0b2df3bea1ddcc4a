"""Every route of the extension through a real jupyter server: who may call it, what the service says, and
what happens when the service fails, hangs or streams."""

from __future__ import annotations

import asyncio
import json
import socket
import sys
import time
from collections.abc import Iterator
from typing import Any

import pytest
from tornado import web
from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.iostream import StreamClosedError
from tornado.tcpclient import TCPClient
from tornado.testing import bind_unused_port

from labextension_server.app import HybridHubExtension
from simcluster.testing import SimProcess

from .conftest import TOKENS, Fetch

pytestmark = pytest.mark.timeout(60)

RUN = ("runs", "Job", "train-1")
RUN_ROUTES = [("GET", ("runs",)), ("GET", RUN), ("DELETE", RUN), ("GET", (*RUN, "logs"))]
SERVICE_ROUTES = [("GET", ("capacity",)), *RUN_ROUTES]
ROUTES = [*SERVICE_ROUTES, ("GET", ("gpus",))]


def route_id(route: tuple[str, tuple[str, ...]]) -> str:
    return f"{route[0]} {'/'.join(route[1])}"


def answer(response: Any) -> Any:
    assert response.headers["Content-Type"].startswith("application/json"), response.headers
    return json.loads(response.body)


async def direct(url: str, path: str, token: str) -> Any:
    response = await AsyncHTTPClient().fetch(
        url + path, headers={"Authorization": f"token {token}"}, request_timeout=10
    )
    return json.loads(response.body)


# ------------------------------------------------------------------------------------------ who may call


@pytest.mark.parametrize("route", ROUTES, ids=route_id)
@pytest.mark.parametrize(
    "token",
    [
        pytest.param("bob", id="another-users-token"),
        pytest.param("stranger", id="a-token-the-hub-does-not-know"),
        pytest.param(None, id="no-token"),
    ],
)
async def test_only_the_servers_owner_gets_in(
    api: Fetch, route: tuple[str, tuple[str, ...]], token: str | None
) -> None:
    method, parts = route
    response = await api(*parts, method=method, token=token)
    assert response.code == 403
    assert answer(response)["status"] == 403


@pytest.mark.parametrize("token", ["alice-server", "alice"])
async def test_capacity_is_the_services_answer_unchanged(api: Fetch, service_url: str, token: str) -> None:
    response = await api("capacity", token=token)
    assert response.code == 200
    body = answer(response)
    assert body == await direct(service_url, "api/capacity", "alice-server")
    assert {c["name"] for c in body["clusters"]} == {"onprem", "eks"}


# -------------------------------------------------------------------------------- the service's answers


@pytest.mark.parametrize("route", RUN_ROUTES, ids=route_id)
async def test_a_server_token_without_the_runs_scope_gets_the_services_403(
    api: Fetch, hybridhub: HybridHubExtension, route: tuple[str, tuple[str, ...]]
) -> None:
    hybridhub.api_token = "alice-server-noruns"
    method, parts = route
    response = await api(*parts, method=method)
    assert response.code == 403
    assert answer(response) == {
        "status": 403,
        "message": "user alice may not do this: it needs the scope custom:hybridhub:runs",
    }


@pytest.mark.parametrize(
    ("api_token", "status", "message"),
    [
        ("", 503, "this server has no hub token to reach the hybridhub service"),
        (
            "revoked",
            502,
            "the hybridhub service did not accept this server's hub token: "
            "this needs a hub API token: send 'Authorization: token <token>'",
        ),
    ],
)
async def test_a_server_token_the_service_cannot_use(
    api: Fetch, hybridhub: HybridHubExtension, api_token: str, status: int, message: str
) -> None:
    hybridhub.api_token = api_token
    response = await api("capacity")
    assert (response.code, answer(response)) == (status, {"status": status, "message": message})


@pytest.mark.parametrize("route", RUN_ROUTES, ids=route_id)
async def test_the_services_own_errors_are_relayed(api: Fetch, route: tuple[str, tuple[str, ...]]) -> None:
    # this service runs without its store
    method, parts = route
    response = await api(*parts, method=method)
    assert (response.code, answer(response)) == (
        503,
        {"status": 503, "message": "the service's store is not open: runs are unavailable"},
    )


# ---------------------------------------------------------------------------- a service that fails


@pytest.fixture
def hung_url() -> Iterator[str]:
    """A service that accepts connections and never answers: the kernel's backlog accepts for it."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    yield f"http://127.0.0.1:{sock.getsockname()[1]}/services/hybridhub/"
    sock.close()


@pytest.fixture
def down_url() -> str:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    return f"http://127.0.0.1:{port}/services/hybridhub/"


@pytest.mark.parametrize("route", SERVICE_ROUTES, ids=route_id)
async def test_a_hung_service_gives_504_within_the_timeout(
    api: Fetch, hybridhub: HybridHubExtension, hung_url: str, route: tuple[str, tuple[str, ...]]
) -> None:
    hybridhub.service_url, hybridhub.request_timeout = hung_url, 0.5
    method, parts = route
    started = time.monotonic()
    response = await api(*parts, method=method)
    assert time.monotonic() - started < 3
    assert (response.code, answer(response)) == (
        504,
        {"status": 504, "message": "the hybridhub service did not answer within 0.5 s"},
    )


@pytest.mark.parametrize("route", SERVICE_ROUTES, ids=route_id)
async def test_a_service_that_is_down_gives_502(
    api: Fetch, hybridhub: HybridHubExtension, down_url: str, route: tuple[str, tuple[str, ...]]
) -> None:
    hybridhub.service_url = down_url
    method, parts = route
    response = await api(*parts, method=method)
    assert response.code == 502
    assert answer(response)["message"].startswith("the hybridhub service could not be reached: ")


async def test_without_a_service_url_the_routes_say_so(api: Fetch, hybridhub: HybridHubExtension) -> None:
    hybridhub.service_url = ""
    response = await api("runs")
    assert (response.code, answer(response)) == (
        503,
        {
            "status": 503,
            "message": "the hybridhub service is not configured: $HYBRIDHUB_SERVICE_URL is empty",
        },
    )


# ------------------------------------------------------------------------------------------- this pod


async def test_gpus_without_nvml(api: Fetch, monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes ``import pynvml`` fail, as in an image without nvidia-ml-py
    monkeypatch.setitem(sys.modules, "pynvml", None)
    response = await api("gpus")
    assert (response.code, answer(response)) == (
        200,
        {"nvml": False, "reason": "nvidia-ml-py is not installed in this server's environment", "gpus": []},
    )


# ------------------------------------------------------------------------------------------------- logs


class SlowLogs(web.RequestHandler):
    """A service whose logs route writes one NDJSON line every ``interval`` seconds and flushes it."""

    def initialize(self, record: dict[str, Any]) -> None:
        self.record = record

    async def get(self, kind: str, name: str) -> None:
        record = self.record
        record["path"] = (kind, name)
        record["query"] = {k: self.get_query_argument(k) for k in self.request.query_arguments}
        record["authorization"] = self.request.headers.get("Authorization")
        self.set_header("Content-Type", "application/x-ndjson")
        try:
            for i in range(record["lines"]):
                if i:
                    await asyncio.sleep(record["interval"])
                self.write(json.dumps({"pod": "train-1-abc", "line": f"epoch {i}"}) + "\n")
                await self.flush()
                record["written"].append(time.monotonic())
        except StreamClosedError:
            record["closed"].set()
            return
        self.finish()

    def on_connection_close(self) -> None:
        self.record["closed"].set()


@pytest.fixture
def slow_logs(jp_asyncio_loop: Any) -> Iterator[dict[str, Any]]:
    sock, port = bind_unused_port()
    record: dict[str, Any] = {"written": [], "closed": asyncio.Event(), "lines": 5, "interval": 0.3}
    app = web.Application(
        [(r"/services/hybridhub/api/runs/([^/]+)/([^/]+)/logs", SlowLogs, {"record": record})]
    )

    async def start() -> HTTPServer:
        server = HTTPServer(app)
        server.add_sockets([sock])
        return server

    server = jp_asyncio_loop.run_until_complete(start())
    record["url"] = f"http://127.0.0.1:{port}/services/hybridhub/"
    yield record
    server.stop()


@pytest.fixture
def port(http_server: Any, jp_http_port: int) -> int:
    """The jupyter server's port, served: pytest-jupyter starts serving for jp_fetch only."""
    return jp_http_port


def logs_url(port: int, query: str) -> str:
    return f"http://127.0.0.1:{port}/user/alice/hybridhub/api/runs/Job/train-1/logs?{query}"


@pytest.mark.parametrize(
    ("query", "forwarded", "all_lines"),
    [
        # the stream lasts longer than request_timeout: following it is bounded by log_follow_timeout
        (
            "follow=true&container=main&pod=train-1-abc",
            {"follow": "true", "container": "main", "pod": "train-1-abc"},
            True,
        ),
        # without follow the stream is one call like the others, cut at request_timeout
        ("follow=false&color=1", {"follow": "false"}, False),
    ],
)
async def test_logs_stream_line_by_line_as_they_come(
    port: int,
    hybridhub: HybridHubExtension,
    slow_logs: dict[str, Any],
    query: str,
    forwarded: dict[str, str],
    all_lines: bool,
) -> None:
    hybridhub.service_url, hybridhub.request_timeout = slow_logs["url"], 0.8
    arrived: list[tuple[float, bytes]] = []
    response = await AsyncHTTPClient().fetch(
        logs_url(port, query),
        headers={"Authorization": "token alice"},
        streaming_callback=lambda chunk: arrived.append((time.monotonic(), chunk)),
        request_timeout=30,
    )
    assert response.code == 200
    assert response.headers["Content-Type"] == "application/x-ndjson"
    lines = b"".join(chunk for _, chunk in arrived).decode().splitlines()
    expected = 5 if all_lines else 3  # lines at 0, 0.3 and 0.6 s come before the 0.8 s cut
    assert [json.loads(line)["line"] for line in lines] == [f"epoch {i}" for i in range(expected)]
    # each line reached the caller before the service wrote the next one
    written = slow_logs["written"]
    for i in range(1, expected):
        first_byte_of_next = written[i]
        received_before = b"".join(c for t, c in arrived if t < first_byte_of_next).decode()
        assert f"epoch {i - 1}" in received_before, (i, arrived, written)
    assert slow_logs["path"] == ("Job", "train-1")
    assert slow_logs["query"] == forwarded
    # the caller used alice's own token; the service got the server's
    assert slow_logs["authorization"] == "token alice-server"


async def test_a_caller_that_goes_away_ends_the_upstream_request(
    port: int, hybridhub: HybridHubExtension, slow_logs: dict[str, Any]
) -> None:
    hybridhub.service_url = slow_logs["url"]
    slow_logs.update(lines=200, interval=0.05)
    stream = await TCPClient().connect("127.0.0.1", port)
    path = "/user/alice/hybridhub/api/runs/Job/train-1/logs?follow=true"
    await stream.write(
        f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: token alice-server\r\n\r\n".encode()
    )
    head = await asyncio.wait_for(stream.read_until(b"epoch 0"), 10)
    assert head.startswith(b"HTTP/1.1 200")
    stream.close()
    await asyncio.wait_for(slow_logs["closed"].wait(), 5)
    assert len(slow_logs["written"]) < 100


async def test_a_log_stream_error_is_relayed(
    api: Fetch, hybridhub: HybridHubExtension, slow_logs: dict[str, Any]
) -> None:
    hybridhub.service_url = slow_logs["url"]
    response = await api("runs", "Job", "train-1", "logs", params={"follow": "true"}, token="bob")
    assert response.code == 403 and slow_logs["written"] == []


# ------------------------------------------------------------------- runs, through the real service


async def test_runs_through_the_service_and_simcluster(
    api: Fetch, hybridhub: HybridHubExtension, sim: SimProcess, tmp_path: Any
) -> None:
    from tests.spawner.service.runs.runs_harness import running_runs_service

    async with running_runs_service(sim, tmp_path, TOKENS) as svc:
        hybridhub.service_url = f"http://127.0.0.1:{svc.port}/services/hybridhub/"
        job = {
            "apiVersion": "batch/v1",
            "kind": "Job",
            "metadata": {"name": "train-1", "labels": {"hybridhub.io/cluster": "onprem"}},
            "spec": {
                "template": {
                    "spec": {
                        "restartPolicy": "Never",
                        "containers": [{"name": "main", "image": "busybox", "command": ["true"]}],
                    }
                }
            },
        }
        status, body = await svc.call(
            "POST", "k8s/apis/batch/v1/namespaces/default/jobs", "alice-server", job
        )
        assert status == 201, body
        # the service lets the run go on its next admission pass; both reads below come after it
        deadline = time.monotonic() + 20
        while (await svc.call("GET", "api/runs", "alice-server"))[1]["runs"][0]["state"] != "admitted":
            assert time.monotonic() < deadline, "train-1 not let go within 20 s"
            await asyncio.sleep(0.05)

        response = await api("runs")
        assert response.code == 200
        rows = {(r["kind"], r["name"]): r for r in answer(response)["runs"]}
        assert rows[("Job", "train-1")]["cluster"] == "onprem"
        direct = (await svc.call("GET", "api/runs", "alice-server"))[1]["runs"]

        def ageless(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:  # age grows between the reads
            return [{k: v for k, v in r.items() if k != "age"} for r in rows]

        assert ageless(answer(response)["runs"]) == ageless(direct)

        response = await api(*RUN)
        assert response.code == 200
        one = answer(response)
        assert one["run"]["name"] == "train-1" and one["object"]["kind"] == "Job"

        response = await api(*RUN, "logs")
        assert response.code == 200 and response.headers["Content-Type"] == "application/x-ndjson"

        response = await api("runs", "Job", "nothing-here")
        assert response.code == 404 and answer(response)["status"] == 404

        response = await api(*RUN, method="DELETE")
        assert response.code == 200
        response = await api("runs")
        assert ("Job", "train-1") not in {(r["kind"], r["name"]) for r in answer(response)["runs"]}
