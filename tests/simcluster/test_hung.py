"""The hung fault: a site link that drops packets, as the clients of the API, Services and pods see it."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
import pytest_asyncio
from kubernetes_asyncio import client, config, watch

from simcluster.config import NodeGroup
from simcluster.gate import GatedListener
from simcluster.link import HOLD_LIMIT, LINUX, Backoff, Link
from simcluster.nodes import make_node
from simcluster.resources import Registry
from simcluster.runtimes.blackhole import nft_available
from simcluster.runtimes.process import can_use_namespaces
from simcluster.serviceproxy import ServiceProxy
from simcluster.store import Store
from simcluster.testing import SimProcess
from simcluster.tls import make_serving_certs
from tests.environment import needs
from tests.harness.waits import wait_for, watch_opened

pytestmark = pytest.mark.timeout(120)

FAST = Backoff(rto_min=0.05, rto_max=0.2, retries=3)  # retransmits at 0.05, 0.15, 0.35 s; gives up at 0.55 s


# ------------------------------------------------------------------ the retransmission schedule


@pytest.mark.parametrize(
    ("elapsed", "delivered"),
    [
        (0.0, 0.2),  # the first retransmission, 200 ms after the lost send
        (0.2, 0.2),
        (0.21, 0.6),
        (1.0, 1.4),
        (3.0, 3.0),
        (20.0, 25.4),
        (100.0, 102.2),
        (204.7, 324.6),  # the timeout stopped doubling at 120 s
        (804.6, 804.6),  # the fifteenth and last
        (804.7, None),  # the sender gives up before another one
    ],
)
def test_held_data_goes_through_at_the_next_retransmission(elapsed: float, delivered: float | None) -> None:
    assert LINUX.delivery(elapsed) == (None if delivered is None else pytest.approx(delivered))


def test_a_linux_sender_gives_up_after_fifteen_retransmissions() -> None:
    assert len(list(LINUX.retransmissions())) == 15
    assert LINUX.give_up == pytest.approx(924.6)
    assert FAST.give_up == pytest.approx(0.55)


# ------------------------------------------------------------------ valves


class Recorder:
    """Actions that record their name and when they ran."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.times: list[float] = []
        self.changed = asyncio.Event()

    def action(self, name: str) -> Callable[[], None]:
        def run() -> None:
            self.seen.append(name)
            self.times.append(asyncio.get_running_loop().time())
            self.changed.set()

        return run

    async def until(self, count: int, within: float = 3.0) -> None:
        async with asyncio.timeout(within):
            while len(self.seen) < count:
                self.changed.clear()
                await self.changed.wait()


@pytest.mark.asyncio
async def test_a_valve_holds_while_hung_and_delivers_in_order_at_the_retransmission() -> None:
    link, rec = Link(FAST), Recorder()
    valve = link.valve()
    valve.send(1, rec.action("before"))
    assert rec.seen == ["before"]
    link.hang()
    sent = asyncio.get_running_loop().time()
    valve.send(1, rec.action("during"))
    link.restore()
    valve.send(1, rec.action("after"))  # queues behind what is held, as TCP keeps order
    assert rec.seen == ["before"]
    await rec.until(3)
    assert rec.seen == ["before", "during", "after"]
    assert rec.times[1] - sent >= FAST.rto_min
    assert not valve.holding


@pytest.mark.asyncio
async def test_a_quiet_direction_carries_on_at_once_and_a_rehang_keeps_holding() -> None:
    link, rec = Link(FAST), Recorder()
    quiet, busy = link.valve(), link.valve()
    link.hang()
    busy.send(1, rec.action("held"))
    link.restore()
    quiet.send(1, rec.action("quiet"))
    assert rec.seen == ["quiet"]  # nothing was in flight there: no retransmission to wait for
    link.hang()  # before the retransmission: it is lost too
    await asyncio.sleep(FAST.rto_min * 2)  # past the first retransmission (this checks an absence)
    assert rec.seen == ["quiet"] and busy.holding
    link.restore()
    await rec.until(2)
    assert rec.seen == ["quiet", "held"]


@pytest.mark.asyncio
async def test_a_valve_stops_its_sender_when_full_and_gives_up_like_tcp() -> None:
    link = Link(FAST)
    full: list[bool] = []
    dead = asyncio.Event()
    valve = link.valve(on_full=full.append, on_dead=dead.set)
    link.hang()
    valve.send(HOLD_LIMIT, lambda: None)
    assert full == []
    valve.send(1, lambda: None)
    assert full == [True]
    started = asyncio.get_running_loop().time()
    async with asyncio.timeout(3):
        await dead.wait()
    assert asyncio.get_running_loop().time() - started == pytest.approx(FAST.give_up, abs=0.2)
    assert valve.dead and not valve.holding
    ran: list[int] = []
    valve.send(1, lambda: ran.append(1))
    link.restore()
    assert ran == []


# ------------------------------------------------------------------ the gate, in process


class Echo(asyncio.Protocol):
    """Answers each chunk with itself; remembers when it was asked to stop writing, and how it ended."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.lost: list[BaseException | None] = []
        self.flow: list[str] = []

    def pause_writing(self) -> None:
        self.flow.append("pause")

    def resume_writing(self) -> None:
        self.flow.append("resume")

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        assert self.transport is not None
        self.transport.write(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost.append(exc)


@dataclass
class Gated:
    """An echo server behind a GatedListener."""

    link: Link
    listener: GatedListener
    connect: Callable[..., Any]  # connect(within=2.0): a TLS connection's (reader, writer)
    echoes: list[Echo]  # the server's protocols, one per connection


@pytest_asyncio.fixture
async def gated() -> AsyncIterator[Gated]:
    """An echo server behind a GatedListener on a link whose senders give up fast."""
    certs = make_serving_certs(["127.0.0.1"])
    link, echoes = Link(FAST), list[Echo]()

    def echo() -> Echo:
        echoes.append(Echo())
        return echoes[-1]

    listener = GatedListener(echo, certs.server_context(), link)
    port = listener.open("127.0.0.1", 0)
    ctx = ssl.create_default_context(cadata=certs.ca_pem.decode())

    def connect(within: float = 2.0) -> Any:
        return asyncio.wait_for(asyncio.open_connection("127.0.0.1", port, ssl=ctx), within)

    try:
        yield Gated(link, listener, connect, echoes)
    finally:
        await listener.stop()


@pytest.mark.asyncio
async def test_the_gate_holds_both_ways_and_plugs_new_connections(
    gated: Gated,
) -> None:
    link, connect, echoes = gated.link, gated.connect, gated.echoes
    reader, writer = await connect()
    writer.write(b"one")
    assert await asyncio.wait_for(reader.read(3), 2) == b"one"
    link.hang()
    writer.write(b"two")
    with pytest.raises(TimeoutError):  # nothing comes back, and nothing breaks
        await asyncio.wait_for(reader.read(3), FAST.rto_min * 2)
    with pytest.raises(TimeoutError):  # a new connection hangs in its SYN
        await connect(FAST.rto_min * 2)
    link.restore()  # before FAST.give_up
    assert await asyncio.wait_for(reader.read(3), 2) == b"two"  # held, then delivered: both ways
    reader2, writer2 = await connect()
    writer2.write(b"three")
    assert await asyncio.wait_for(reader2.read(5), 2) == b"three"
    assert len(echoes) == 2 and echoes[0].lost == []
    for w in (writer, writer2):
        w.close()


@pytest.mark.asyncio
async def test_full_valves_stop_their_senders_and_everything_arrives_intact(
    gated: Gated,
) -> None:
    link, connect, echoes = gated.link, gated.connect, gated.echoes
    reader, writer = await connect()
    writer.write(b"x")
    assert await asyncio.wait_for(reader.readexactly(1), 2) == b"x"
    big = os.urandom(HOLD_LIMIT + 1_000_000)
    assert echoes[0].transport is not None
    link.hang()
    echoes[0].transport.write(big)  # more than a valve holds: the server is asked to wait
    assert echoes[0].flow == ["pause"]
    link.restore()
    assert await asyncio.wait_for(reader.readexactly(len(big)), 10) == big
    for _ in range(100):
        if echoes[0].flow == ["pause", "resume"]:
            break
        await asyncio.sleep(0.01)
    assert echoes[0].flow == ["pause", "resume"]
    # the client's upload: a valve's worth is held, then the server stops reading, and the rest
    # waits in the kernels' buffers and in the client
    upload = big * 3
    link.hang()
    writer.write(upload)
    (conn,) = gated.listener.connections
    for _ in range(100):
        if conn.up.full:
            break
        await asyncio.sleep(0.005)
    assert conn.up.full and conn.real is not None and not conn.real.is_reading()
    link.restore()
    assert await asyncio.wait_for(reader.readexactly(len(upload)), 20) == upload  # whole and in order
    assert conn.real.is_reading()
    writer.close()


@pytest.mark.asyncio
async def test_when_the_client_gives_up_both_ends_are_reset(
    gated: Gated,
) -> None:
    link, connect, echoes = gated.link, gated.connect, gated.echoes
    reader, writer = await connect()
    link.hang()
    writer.write(b"lost")  # never acknowledged: after FAST.give_up the client's kernel would give up
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(4), FAST.give_up + 2)
    assert len(echoes[0].lost) == 1 and isinstance(echoes[0].lost[0], ConnectionResetError)
    writer.close()


@pytest.mark.asyncio
async def test_when_the_server_gives_up_the_client_hears_nothing_until_it_sends_again(
    gated: Gated,
) -> None:
    link, connect, echoes = gated.link, gated.connect, gated.echoes
    reader, writer = await connect()
    writer.write(b"hi")
    assert await asyncio.wait_for(reader.read(2), 2) == b"hi"
    link.hang()
    assert echoes[0].transport is not None
    echoes[0].transport.write(b"never")  # the server's unacknowledged data
    for _ in range(100):
        if echoes[0].lost:
            break
        await asyncio.sleep(FAST.give_up / 20)
    assert isinstance(echoes[0].lost[0], TimeoutError)  # the server's kernel gave up: ETIMEDOUT
    with pytest.raises(TimeoutError):  # the client is told nothing
        await asyncio.wait_for(reader.read(5), FAST.rto_min * 2)
    link.restore()
    writer.write(b"anyone?")  # reaches a host that no longer has the connection
    with pytest.raises(ConnectionResetError):
        await asyncio.wait_for(reader.read(5), 2)
    writer.close()


# ------------------------------------------------------------------ Service addresses, in process


async def echo_server(name: str) -> asyncio.Server:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while line := await reader.readline():
            writer.write(f"{name}:{line.decode()}".encode())
            await writer.drain()
        writer.close()

    return await asyncio.start_server(handle, "127.0.0.1", 0)


@pytest_asyncio.fixture
async def load_balancer() -> AsyncIterator[tuple[Link, str]]:
    """A LoadBalancer Service in front of an echo server, its proxy behind ``link``: (link, ingress IP)."""
    store = Store(Registry.with_defaults([]))
    core = store.registry.core
    store.create(core("namespaces"), None, {"metadata": {"name": "default"}})
    node = make_node(
        NodeGroup(name="g", capacity={"cpu": "8"}), "n1", "192.0.2.10", "10.0.0.0/24", store.now()
    )
    store.create(core("nodes"), None, node, keep_status=True)
    server = await echo_server("pod")
    port = server.sockets[0].getsockname()[1]
    container = {"name": "c", "image": "x", "ports": [{"name": "echo", "containerPort": port}]}
    spec = {"nodeName": "n1", "containers": [container]}
    store.create(
        core("pods"), "default", {"metadata": {"name": "p", "labels": {"app": "echo"}}, "spec": spec}
    )

    def running(pod: dict[str, Any]) -> None:
        pod["status"].update(
            phase="Running", podIP="127.0.0.1", conditions=[{"type": "Ready", "status": "True"}]
        )

    store.update(core("pods"), "default", "p", running, subresource="status")
    ports = [{"name": "echo", "port": 7000, "targetPort": "echo"}]
    body = {
        "metadata": {"name": "echo"},
        "spec": {"type": "LoadBalancer", "selector": {"app": "echo"}, "ports": ports},
    }
    store.create(core("services"), "default", body)
    link = Link()
    # an address range of its own: other tests' proxies may listen on port 7000 elsewhere
    proxy = ServiceProxy(store, f"127.212.{os.getpid() % 250}.0/28", link=link)
    proxy.start()
    try:
        for _ in range(300):  # the proxy listens once it has seen the Service
            if proxy.serving():
                break
            await asyncio.sleep(0.01)
        (ip, _), *_ = proxy.serving()
        yield link, ip
    finally:
        await proxy.stop()
        server.close()


@pytest.mark.asyncio
async def test_load_balancer_addresses_hang_with_the_services_part(load_balancer: tuple[Link, str]) -> None:
    link, ip = load_balancer
    reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, 7000), 2)
    writer.write(b"a\n")
    assert await asyncio.wait_for(reader.readline(), 2) == b"pod:a\n"
    link.hang()
    hung_at = time.monotonic()
    writer.write(b"b\n")
    with pytest.raises(TimeoutError):  # the open connection carries nothing
        await asyncio.wait_for(reader.readline(), 1)
    with pytest.raises(TimeoutError):  # and a new one hangs in its SYN: not refused, not reset
        await asyncio.wait_for(asyncio.open_connection(ip, 7000), 1)
    link.restore()
    restored_at = time.monotonic()
    fresh_reader, fresh_writer = await asyncio.wait_for(asyncio.open_connection(ip, 7000), 1)
    fresh_writer.write(b"c\n")
    assert await asyncio.wait_for(fresh_reader.readline(), 1) == b"pod:c\n"
    assert time.monotonic() - restored_at < 1
    # the held line goes through at its sender's next retransmission: 3 s after it was sent
    assert await asyncio.wait_for(reader.readline(), 5) == b"pod:b\n"
    assert time.monotonic() - hung_at >= 1.4
    for w in (writer, fresh_writer):
        w.close()


# ------------------------------------------------------------------ the API, with kubernetes_asyncio


@pytest.fixture(scope="module")
def hsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    """A simcluster of its own (default topology: simulated pods): faults must not disturb the session's."""
    with SimProcess(tmp_path_factory.mktemp("hung")) as proc:
        yield proc


@pytest.fixture
def cleared(hsim: SimProcess) -> Iterator[SimProcess]:
    yield hsim
    hsim.admin("onprem").clear_faults()


@asynccontextmanager
async def core_api(sim: SimProcess) -> AsyncIterator[client.CoreV1Api]:
    api = await config.new_client_from_config(config_file=str(sim.kubeconfig), context="onprem")
    async with api:
        yield client.CoreV1Api(api)


async def admin_call(sim: SimProcess, method: str, *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(getattr(sim.admin("onprem"), method), *args, **kwargs)


async def times_out(call: Callable[..., Any], within: float) -> float:
    """How long ``call()`` took to time out: not refused, not an HTTP error."""
    started = time.monotonic()
    with pytest.raises(TimeoutError) as err:
        await call()
    assert not isinstance(err.value, aiohttp.ClientConnectorError | client.ApiException)
    elapsed = time.monotonic() - started
    assert within * 0.9 <= elapsed < within + 1
    return elapsed


@pytest.mark.asyncio
async def test_requests_time_out_while_the_api_hangs_and_succeed_at_once_after(cleared: SimProcess) -> None:
    async with core_api(cleared) as v1:
        await v1.list_node()  # a pooled keep-alive connection, as a long-lived client has
        assert (await admin_call(cleared, "set_faults", hung=True))["hungParts"] == [
            "api",
            "pods",
            "services",
        ]
        since = await admin_call(cleared, "last_request")
        await times_out(lambda: v1.list_node(_request_timeout=1), 1)  # total timeout, pooled connection
        async with core_api(cleared) as fresh:  # a new connection: its SYN is dropped
            await times_out(lambda: fresh.list_node(_request_timeout=(1, 5)), 1)  # connect timeout
        assert await admin_call(cleared, "requests", since) == []  # nothing reached the API server
        await admin_call(cleared, "clear_faults")
        started = time.monotonic()
        assert (await v1.list_node(_request_timeout=5)).items
        async with core_api(cleared) as fresh:
            await fresh.list_namespace(_request_timeout=5)
        assert time.monotonic() - started < 1


@pytest.mark.asyncio
async def test_a_create_that_timed_out_during_the_hang_happens_when_the_link_returns(
    cleared: SimProcess,
) -> None:
    name = f"late-{os.getpid()}"
    async with core_api(cleared) as v1:
        await v1.list_namespace()
        await admin_call(cleared, "set_faults", hung=True, hungParts=["api"])
        await times_out(lambda: v1.create_namespace({"metadata": {"name": name}}, _request_timeout=1), 1)
        # the request and the client's close, held on the way in
        assert (await admin_call(cleared, "clear_faults"))["held"]["api"] >= 1
        # the client closed its connection, but its kernel still retransmits the request: 3 s after
        # it was sent, 2 s after the link is back; the faults say when nothing is held any more
        for _ in range(50):
            names = [ns.metadata.name for ns in (await v1.list_namespace()).items]
            if name in names:
                break
            await asyncio.sleep(0.1)
        assert name in names
        for _ in range(200):  # an earlier test's connections too, held since before: up to 13 s more
            if (await admin_call(cleared, "faults"))["held"] == {"api": 0, "services": 0}:
                break
            await asyncio.sleep(0.1)
        assert (await admin_call(cleared, "faults"))["held"] == {"api": 0, "services": 0}
        await v1.delete_namespace(name)


@pytest.mark.asyncio
async def test_a_watch_open_before_the_hang_stays_open_and_silent_then_carries_on(
    cleared: SimProcess,
) -> None:
    admin = cleared.admin("onprem")
    events: list[tuple[float, str, bool]] = []  # (when, node, ready)
    arrived = asyncio.Event()

    async with core_api(cleared) as v1:
        listed = await v1.list_node()
        since = await admin_call(cleared, "last_request")

        async def follow() -> None:
            async with watch.Watch() as w:
                stream = w.stream(
                    v1.list_node, resource_version=listed.metadata.resource_version, timeout_seconds=60
                )
                async for ev in stream:
                    node = ev["object"]
                    ready = next(c.status for c in node.status.conditions if c.type == "Ready") == "True"
                    events.append((time.monotonic(), node.metadata.name, ready))
                    arrived.set()

        task = asyncio.create_task(follow())
        try:
            await asyncio.to_thread(watch_opened, admin, since, "/api/v1/nodes")
            await admin_call(cleared, "node_not_ready", "l40s-1")
            async with asyncio.timeout(5):
                await arrived.wait()
            assert [(n, r) for _, n, r in events] == [("l40s-1", False)]

            await admin_call(cleared, "set_faults", hung=True, hungParts=["api"])
            hung_at = time.monotonic()
            await admin_call(cleared, "node_ready", "l40s-1")  # a change the watch would carry
            # while a request times out, the watch delivers nothing, and does not end either
            await times_out(lambda: v1.list_node(_request_timeout=1.5), 1.5)
            assert [e for e in events if e[0] >= hung_at] == [] and not task.done()

            watches = await admin_call(cleared, "requests", since)
            await admin_call(cleared, "clear_faults")
            cleared_at = time.monotonic()
            async with asyncio.timeout(5):  # the held event, at the server's next retransmission
                while len(events) < 2:
                    arrived.clear()
                    await arrived.wait()
            assert [(n, r) for _, n, r in events] == [("l40s-1", False), ("l40s-1", True)]
            assert events[1][0] >= cleared_at
            # the same watch carried it: the client did not open another one
            assert len([r for r in await admin_call(cleared, "requests", since) if r["watch"]]) == len(
                [r for r in watches if r["watch"]]
            )
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


def test_faults_report_the_hung_parts_and_delete_clears_them(cleared: SimProcess) -> None:
    admin = cleared.admin("onprem")
    assert admin.set_faults(hung=True, hungParts=["api", "services"])["hungParts"] == ["api", "services"]
    assert admin.faults()["hung"] is True
    # down and hung exclude each other, but one request may swap them
    assert admin.set_faults(down=True, hung=False) == {**admin.faults(), "down": True, "hung": False}
    assert admin.set_faults(down=False, hung=True)["hungParts"] == ["api", "pods", "services"]
    assert admin.clear_faults()["hungParts"] == []
    assert admin.faults() == {
        "down": False,
        "hung": False,
        "hungParts": [],
        "latency": 0.0,
        "errorRate": 0.0,
        "errorCode": 503,
        "held": {"api": 0, "services": 0},
    }


# ------------------------------------------------------------------ pod addresses, in the runtimes

CLUSTER_FILE = """
clusters:
  - name: onprem
    runtime: {runtime}
    podCIDR: {cidr}
    timings: {{pod_start: 0.1}}
    nodeGroups:
      - {{name: cpu, count: 1, capacity: {{cpu: "8", memory: 16Gi}}}}
"""
POD_IP_ENV = {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}


def one_cluster(tmp: Path, runtime: str) -> SimProcess:
    """A simcluster (not started yet) of one cluster named onprem with one CPU node."""
    tmp.mkdir(parents=True, exist_ok=True)
    cidr = f"10.{232 + os.getpid() % 20}.0.0/16"  # apart from other runs' pods on this machine
    (tmp / "clusters.yaml").write_text(CLUSTER_FILE.format(runtime=runtime, cidr=cidr))
    return SimProcess(tmp / "sim", config=tmp / "clusters.yaml")


def web_pod(name: str) -> dict[str, Any]:
    command = ["python3", "-m", "http.server", "8888", "--bind", "$(POD_IP)"]
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name},
        "spec": {
            "containers": [{"name": "web", "image": "ignored:1", "command": command, "env": [POD_IP_ENV]}]
        },
    }


def serve(sim: SimProcess, name: str) -> str:
    """Start a web server pod; its pod IP once it answers."""
    sim.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(web_pod(name)))
    sim.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "--timeout=30s")
    ip = sim.kubectl("get", "pod", name, "-o", "jsonpath={.status.podIP}").stdout
    wait_for(f"pod {name} answers", lambda: answers(ip), 10)
    return ip


def answers(ip: str, timeout: float = 2.0) -> bool:
    """Whether the pod's server answers; False when it refuses, AssertionError when it does neither."""
    try:
        with urllib.request.urlopen(f"http://{ip}:8888/", timeout=timeout) as resp:
            return resp.status == 200
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, ConnectionRefusedError):
            return False
        raise


def connect_times_out(ip: str, timeout: float = 1.0) -> bool:
    """Whether connecting to the pod's port hangs: not refused, not reset, not answered."""
    with socket.socket() as sock:
        sock.settimeout(timeout)
        try:
            sock.connect((ip, 8888))
        except TimeoutError:
            return True
        except OSError:
            return False
    return False


def simcluster_tables(pid: int) -> list[str]:
    out = subprocess.run(["nft", "-j", "list", "tables"], capture_output=True, text=True, check=True).stdout
    names = [i["table"]["name"] for i in json.loads(out)["nftables"] if "table" in i]
    return [n for n in names if n.startswith(f"simcluster_{pid}_")]


SANDBOXES, WHY_NOT = can_use_namespaces()
NFT, WHY_NO_NFT = nft_available()


@pytest.mark.kubectl
@needs(SANDBOXES, WHY_NOT)
@needs(NFT, WHY_NO_NFT + " (make system-deps installs nftables)")
def test_pod_addresses_hang_new_pods_too_and_come_back(tmp_path: Path) -> None:
    sim = one_cluster(tmp_path, "process").start()
    try:
        assert sim.endpoints["clusters"]["onprem"]["runtime"] == "process"
        old = serve(sim, "old")
        admin = sim.admin("onprem")
        admin.set_faults(hung=True, hungParts=["pods"])  # the API still answers: a pod can start now
        assert connect_times_out(old)
        sim.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(web_pod("new")))
        sim.kubectl("wait", "--for=condition=Ready", "pod/new", "--timeout=30s")
        new = sim.kubectl("get", "pod", "new", "-o", "jsonpath={.status.podIP}").stdout
        assert connect_times_out(new)
        assert simcluster_tables(sim.proc.pid if sim.proc else 0)
        admin.clear_faults()
        started = time.monotonic()
        assert answers(old) and wait_for("the new pod answers", lambda: answers(new), 10)
        assert time.monotonic() - started < 2
        admin.set_faults(hung=True)  # all parts, the API too
        assert connect_times_out(old)
        pid = sim.proc.pid if sim.proc else 0
    finally:
        sim.stop()
    assert simcluster_tables(pid) == []  # a clean stop takes the table away


@pytest.mark.kubectl
@needs(SANDBOXES, WHY_NOT)
@needs(NFT, WHY_NO_NFT + " (make system-deps installs nftables)")
def test_a_killed_simclusters_table_is_removed_by_the_next(tmp_path: Path) -> None:
    sim = one_cluster(tmp_path / "first", "process").start()
    try:
        sim.admin("onprem").set_faults(hung=True, hungParts=["pods"])
        pid = sim.proc.pid if sim.proc else 0
        assert simcluster_tables(pid)
        os.kill(pid, signal.SIGKILL)
    finally:
        sim.stop()
    assert simcluster_tables(pid)  # a crash leaves it behind
    with one_cluster(tmp_path / "second", "process") as second:
        assert simcluster_tables(pid) == []
        assert "removed nftables tables a stopped simcluster left behind" in second.log_text()


@pytest.mark.kubectl
def test_the_loopback_runtime_cannot_hang_pods_but_hangs_the_rest(tmp_path: Path) -> None:
    with one_cluster(tmp_path, "process-loopback") as sim:
        admin = sim.admin("onprem")
        with pytest.raises(urllib.error.HTTPError) as err:
            admin.set_faults(hung=True)
        assert err.value.code == 409
        message = json.loads(err.value.read())["message"]
        assert "needs the process runtime (root)" in message and '"hungParts": ["api", "services"]' in message
        assert admin.faults()["hung"] is False  # nothing was applied
        ip = serve(sim, "web")
        admin.set_faults(hung=True, hungParts=["api", "services"])
        assert answers(ip)  # pod addresses are not cut off: the fault says so
        with pytest.raises(urllib.error.URLError) as hung_api:
            urllib.request.urlopen(sim.api_url("onprem") + "/readyz", timeout=1, context=sim.ssl_context())
        assert isinstance(hung_api.value.reason, TimeoutError)
