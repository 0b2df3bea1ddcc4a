"""The kernel-side client against a fake extension server speaking the REST contract, on a thread."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest

from labextension_server import client
from labextension_server.client import Client, HybridhubError, LogLine, RunFailed, resolve, server_url

from .fake_extension import PREFIX, TOKEN, FakeExtension, LogStep, serve

pytestmark = pytest.mark.timeout(60)

CAPACITY = {
    "clusters": [
        {
            "name": "onprem",
            "role": "onprem",
            "health": "healthy",
            "products": [{"product": "A100", "total": 8, "free": 3, "largest_free": 2}],
        }
    ]
}
TRAIN = {"kind": "Workflow", "name": "train", "cluster": "onprem", "phase": "Running", "gpus": 2, "age": 5.0}


def queued(position: int, wait: float | None) -> dict[str, Any]:
    return {
        **TRAIN,
        "phase": "Queued",
        "cluster": None,
        "queue": {
            "cluster": "onprem",
            "position": position,
            "expected_wait": wait,
            "reason": "onprem is full",
        },
    }


@pytest.fixture
def fake() -> FakeExtension:
    return FakeExtension(capacity=CAPACITY, rows=[TRAIN])


@pytest.fixture
def url(fake: FakeExtension, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The fake's bind URL, also set in the environment as JupyterHub sets it for a kernel."""
    for bind_url in serve(fake):
        monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", bind_url)
        monkeypatch.setenv("JUPYTERHUB_API_TOKEN", TOKEN)
        yield bind_url


@pytest.fixture
def api(url: str) -> Client:
    return Client.from_env()


# --------------------------------------------------------------------------------------- pure parts


@pytest.mark.parametrize(
    ("bind", "reached"),
    [
        ("http://0.0.0.0:8888/user/alice/", "http://127.0.0.1:8888/user/alice/"),
        ("http://:8888/user/alice/", "http://127.0.0.1:8888/user/alice/"),
        ("http://[::]:8888/user/alice", "http://[::1]:8888/user/alice/"),
        ("http://10.0.0.7:8888/user/alice/", "http://10.0.0.7:8888/user/alice/"),
        ("https://nb.example.org/user/bob/", "https://nb.example.org/user/bob/"),
        ("http://0.0.0.0:8888/user/a%40b/srv/", "http://127.0.0.1:8888/user/a%40b/srv/"),
    ],
)
def test_the_server_url_makes_a_wildcard_bind_address_local(bind: str, reached: str) -> None:
    assert server_url(bind) == reached


@pytest.mark.parametrize("bind", ["", "user/alice/", "http:///user/alice/"])
def test_a_service_url_that_is_no_url_is_refused(bind: str) -> None:
    with pytest.raises(HybridhubError, match="is not a URL"):
        server_url(bind)


@pytest.mark.parametrize(
    ("environ", "missing"),
    [
        ({}, "JUPYTERHUB_SERVICE_URL and JUPYTERHUB_API_TOKEN not set"),
        ({"JUPYTERHUB_API_TOKEN": "t"}, "JUPYTERHUB_SERVICE_URL not set"),
        ({"JUPYTERHUB_SERVICE_URL": "http://0.0.0.0:1/"}, "JUPYTERHUB_API_TOKEN not set"),
    ],
)
def test_a_process_outside_a_hub_server_is_told_what_is_missing(
    environ: dict[str, str], missing: str
) -> None:
    with pytest.raises(HybridhubError, match=missing):
        Client.from_env(environ)


def test_the_token_never_shows_in_the_client_repr() -> None:
    assert "s3cret" not in repr(
        Client.from_env({"JUPYTERHUB_SERVICE_URL": "http://h/", "JUPYTERHUB_API_TOKEN": "s3cret"})
    )


ROWS = [
    {"kind": "Workflow", "name": "train"},
    {"kind": "Experiment", "name": "sweep"},
    {"kind": "TrainJob", "name": "sweep"},
]


@pytest.mark.parametrize(
    ("ref", "rows", "found"),
    [
        ("train", ROWS, ("Workflow", "train")),
        ("Workflow/train", None, ("Workflow", "train")),
        ("workflow/train", None, ("Workflow", "train")),
        ("trainjob/sweep", None, ("TrainJob", "sweep")),
        ("Experiment/sweep", ROWS, ("Experiment", "sweep")),
        ("Thing/x", None, ("Thing", "x")),
        ({"kind": "Job", "name": "j", "phase": "Running"}, None, ("Job", "j")),
    ],
)
def test_a_run_is_named_by_its_name_or_kind_and_name(ref: Any, rows: Any, found: tuple[str, str]) -> None:
    assert resolve(ref, rows) == found


@pytest.mark.parametrize(
    ("ref", "status", "message"),
    [
        ("sweep", 409, r'"sweep" names 2 runs \(Experiment/sweep, TrainJob/sweep\): say which, as KIND/NAME'),
        ("nothing", 404, 'you have no run named "nothing"'),
        ("/x", None, "is not a run"),
        ("Workflow/", None, "is not a run"),
    ],
)
def test_a_name_that_names_no_run_or_several_is_a_clear_error(
    ref: str, status: int | None, message: str
) -> None:
    with pytest.raises(HybridhubError, match=message) as caught:
        resolve(ref, ROWS)
    assert caught.value.status == status


# ------------------------------------------------------------------------------------- against the fake


def test_capacity_is_the_servers_body_asked_for_with_the_servers_token(
    api: Client, fake: FakeExtension
) -> None:
    assert api.capacity() == CAPACITY
    assert fake.requests == [("GET", PREFIX + "capacity", {}, f"token {TOKEN}")]


def test_the_module_functions_read_the_environment(url: str, fake: FakeExtension) -> None:
    assert client.capacity() == CAPACITY
    assert client.runs() == [TRAIN]
    assert client.gpus() == fake.gpus


def test_a_bare_name_is_looked_up_in_the_runs_then_asked_for(api: Client, fake: FakeExtension) -> None:
    fake.objects[("Workflow", "train")] = {"kind": "Workflow", "metadata": {"name": "train"}}
    assert api.run("train") == {"run": TRAIN, "object": fake.objects[("Workflow", "train")]}
    assert [(m, p) for m, p, _, _ in fake.requests] == [
        ("GET", PREFIX + "runs"),
        ("GET", PREFIX + "runs/Workflow/train"),
    ]


def test_kind_and_name_go_straight_to_the_run_escaped_in_the_path(api: Client, fake: FakeExtension) -> None:
    fake.rows.append({**TRAIN, "name": "a?b#c"})
    assert api.run("Workflow/a?b#c")["run"]["name"] == "a?b#c"
    assert [p for _, p, _, _ in fake.requests] == [PREFIX + "runs/Workflow/a%3Fb%23c"]


def test_cancel_deletes_the_run(api: Client, fake: FakeExtension) -> None:
    assert api.cancel("Workflow/train")["status"] == "Success"
    assert fake.requests[-1][:2] == ("DELETE", PREFIX + "runs/Workflow/train")


@pytest.mark.parametrize(
    ("forced", "status", "message"),
    [
        (
            (404, "application/json", b'{"status": 404, "message": "Workflow \\"x\\" not found"}'),
            404,
            'Workflow "x"',
        ),
        (
            (504, "application/json", b'{"status": 504, "message": "the service did not answer"}'),
            504,
            "did not",
        ),
        ((502, "text/html", b"<h1>Bad Gateway</h1>"), 502, "<h1>Bad Gateway</h1>"),
        ((500, "application/json", b"{}"), 500, "Internal Server Error"),
    ],
)
def test_an_error_answer_is_one_exception_with_its_status_and_message(
    api: Client, fake: FakeExtension, forced: tuple[int, str, bytes], status: int, message: str
) -> None:
    fake.forced["runs/Workflow/x"] = forced
    with pytest.raises(HybridhubError) as caught:
        api.run("Workflow/x")
    assert caught.value.status == status
    assert message in caught.value.message


def test_a_token_the_server_refuses_is_a_403_with_its_message(url: str) -> None:
    with pytest.raises(HybridhubError, match=r"^403: Forbidden: this token may not use alice's server$"):
        Client(server_url(url), "someone-else").runs()


def test_a_server_that_is_not_there_is_an_error_without_a_status() -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(HybridhubError, match="cannot reach the Jupyter server") as caught:
        Client(f"http://127.0.0.1:{port}/user/alice/", TOKEN).capacity()
    assert caught.value.status is None


def test_a_server_that_does_not_answer_in_time_is_an_error_naming_the_timeout(
    url: str, fake: FakeExtension
) -> None:
    fake.delay = 1.0
    start = time.monotonic()
    with pytest.raises(HybridhubError, match=r"did not answer within 0\.3s"):
        Client(server_url(url), TOKEN, timeout=0.3).capacity()
    assert time.monotonic() - start < 0.9


# --------------------------------------------------------------------------------------------- logs


def test_logs_without_follow_are_every_line_with_its_pod(api: Client, fake: FakeExtension) -> None:
    fake.log_scripts[("Workflow", "train")] = [
        [LogStep(0, "train-a", "step 1"), LogStep(0, "train-a", "step 2"), LogStep(0, "train-b", "done")]
    ]
    lines = list(api.logs("Workflow/train", follow=False, container="main"))
    assert [(line.pod, str(line)) for line in lines] == [
        ("train-a", "step 1"),
        ("train-a", "step 2"),
        ("train-b", "done"),
    ]
    assert all(isinstance(line, LogLine) for line in lines)
    assert fake.requests[-1][2] == {"follow": ["false"], "container": ["main"]}


def test_followed_logs_stream_each_line_as_it_comes_and_end_with_the_run(
    api: Client, fake: FakeExtension
) -> None:
    fake.log_scripts[("Workflow", "train")] = [
        [LogStep(0, "p", "first"), LogStep(0.6, "p", "second"), LogStep(0.6, "p", "third"), LogStep(0.1)]
    ]
    start = time.monotonic()
    seen = [(str(line), time.monotonic() - start) for line in api.logs("Workflow/train")]
    assert [text for text, _ in seen] == ["first", "second", "third"]
    # the first line came before the server had written the rest: it was streamed, not buffered
    assert seen[0][1] < 0.5 < seen[1][1] < seen[2][1]
    assert fake.requests[-1][2] == {"follow": ["true"]}


def test_a_silent_followed_stream_is_opened_again_without_repeating_lines(
    api: Client, fake: FakeExtension
) -> None:
    # The first stream stops talking for longer than the client waits; the second replays the
    # pods' logs from their start and goes on to the end.
    fake.log_scripts[("Workflow", "train")] = [
        [LogStep(0, "a", "1"), LogStep(0, "b", "x"), LogStep(0, "a", "2"), LogStep(3.0)],
        [
            LogStep(0, "a", "1"),
            LogStep(0, "a", "2"),
            LogStep(0, "a", "3"),
            LogStep(0, "b", "x"),
            LogStep(0, "b", "y"),
        ],
    ]
    lines = list(api.logs("Workflow/train", idle=0.4))
    assert [(line.pod, str(line)) for line in lines] == [
        ("a", "1"),
        ("b", "x"),
        ("a", "2"),
        ("a", "3"),
        ("b", "y"),
    ]
    assert [p for _, p, _, _ in fake.requests].count(PREFIX + "runs/Workflow/train/logs") == 2


def test_a_silent_stream_of_a_run_that_ended_meanwhile_is_not_opened_again(
    api: Client, fake: FakeExtension
) -> None:
    fake.rows[0] = {**TRAIN, "phase": "Succeeded"}
    fake.log_scripts[("Workflow", "train")] = [[LogStep(0, "a", "1"), LogStep(3.0)]]
    assert [str(line) for line in api.logs("Workflow/train", idle=0.4)] == ["1"]
    assert [p for _, p, _, _ in fake.requests].count(PREFIX + "runs/Workflow/train/logs") == 1


def test_the_logs_of_an_unknown_run_are_a_404(api: Client) -> None:
    with pytest.raises(HybridhubError, match='404: Workflow "nope" not found'):
        list(api.logs("Workflow/nope"))


# --------------------------------------------------------------------------------------------- wait


def test_wait_says_each_change_while_queued_and_returns_the_final_row(
    api: Client, fake: FakeExtension
) -> None:
    done = {**TRAIN, "phase": "Succeeded", "reason": "placed on onprem"}
    fake.timeline[("Workflow", "train")] = [queued(3, 600), queued(3, 600), queued(1, 60), TRAIN, TRAIN, done]
    said: list[str] = []
    assert api.wait("Workflow/train", poll=0.01, echo=said.append) == done
    assert said == [
        "Workflow/train is queued: position 3 for onprem, expected wait 10m: onprem is full",
        "Workflow/train is queued: position 1 for onprem, expected wait 1m: onprem is full",
        "Workflow/train is Running on onprem",
        "Workflow/train is Succeeded on onprem: placed on onprem",
    ]


@pytest.mark.parametrize("phase", ["Failed", "Error"])
def test_wait_raises_when_the_run_fails(api: Client, fake: FakeExtension, phase: str) -> None:
    failed = {**TRAIN, "phase": phase, "reason": "OOMKilled"}
    fake.timeline[("Workflow", "train")] = [TRAIN, failed]
    with pytest.raises(RunFailed, match=f"Workflow/train is {phase} on onprem: OOMKilled") as caught:
        api.wait("train", poll=0.01, echo=lambda _: None)
    assert caught.value.row == failed


def test_wait_gives_up_after_its_timeout(api: Client, fake: FakeExtension) -> None:
    fake.timeline[("Workflow", "train")] = [queued(2, None)]
    ended = r"Workflow/train did not end within 0\.2s: .*expected wait unknown"
    with pytest.raises(TimeoutError, match=ended):
        api.wait("Workflow/train", poll=0.05, timeout=0.2, echo=lambda _: None)


def test_wait_prints_to_stdout_by_default(
    url: str, fake: FakeExtension, capsys: pytest.CaptureFixture[str]
) -> None:
    fake.timeline[("Workflow", "train")] = [{**TRAIN, "phase": "Complete"}]
    client.wait("Workflow/train", poll=0.01)
    assert capsys.readouterr().out == "Workflow/train is Complete on onprem\n"


# -------------------------------------------------------------------------------------- async twins


async def test_the_async_twins_answer_as_the_sync_functions_do(url: str, fake: FakeExtension) -> None:
    fake.objects[("Workflow", "train")] = {"kind": "Workflow"}
    assert await client.acapacity() == CAPACITY
    assert await client.aruns() == [TRAIN]
    assert await client.agpus() == fake.gpus
    assert (await client.arun("train"))["object"] == {"kind": "Workflow"}
    assert (await client.acancel("Workflow/train"))["status"] == "Success"


async def test_alogs_streams_without_blocking_the_loop(url: str, fake: FakeExtension) -> None:
    fake.log_scripts[("Workflow", "train")] = [[LogStep(0, "p", "a"), LogStep(0.3, "p", "b")]]
    ticks = 0

    async def tick() -> None:
        nonlocal ticks
        while True:
            await asyncio.sleep(0.02)
            ticks += 1

    ticker = asyncio.create_task(tick())
    try:
        assert [str(line) async for line in client.alogs("Workflow/train")] == ["a", "b"]
    finally:
        ticker.cancel()
    # the loop went on while the stream was silent for 0.3 s
    assert ticks >= 5


async def test_await_is_bounded_by_asyncio_timeout(url: str, fake: FakeExtension) -> None:
    fake.timeline[("Workflow", "train")] = [queued(1, 30)]
    with pytest.raises(TimeoutError):
        async with asyncio.timeout(0.3):
            await client.await_("Workflow/train", poll=0.05)
    fake.timeline[("Workflow", "train")] = [{**TRAIN, "phase": "Succeeded"}]
    fake._served.clear()
    assert (await client.await_("Workflow/train", poll=0.05))["phase"] == "Succeeded"


# --------------------------------------------------------------------- the real extension and service


async def test_the_async_client_against_a_real_server_with_the_extension_and_the_service(
    jp_serverapp: Any,
    http_server: Any,
    http_server_port: Any,
    jp_base_url: str,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The server runs on this test's event loop: only the async twins, which call from a thread, can
    # reach it without blocking the loop that serves them.
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", f"http://0.0.0.0:{http_server_port[-1]}{jp_base_url}")
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "alice-server")
    capacity = await client.acapacity()
    assert {c["name"] for c in capacity["clusters"]} == {"onprem", "eks"}
    local = await client.agpus()
    assert set(local) >= {"nvml", "gpus"}
    # this service has no store: its refusal comes through with its status and message
    with pytest.raises(HybridhubError, match=r"^503: the service's store is not open: runs are unavailable$"):
        await client.aruns()
    # another user's token is not let into alice's server
    monkeypatch.setenv("JUPYTERHUB_API_TOKEN", "bob")
    with pytest.raises(HybridhubError) as caught:
        await client.acapacity()
    assert caught.value.status == 403
