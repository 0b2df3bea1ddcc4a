"""LoadBalancer and NodePort Services carry TCP: ingress IPs, node ports, endpoint choice, teardown."""

from __future__ import annotations

import asyncio
import json
import random
import socket
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import pytest_asyncio

from simcluster.config import ConfigError, NodeGroup, parse_cluster_file
from simcluster.nodes import make_node
from simcluster.resources import Registry
from simcluster.runtimes.process import can_use_namespaces
from simcluster.selectors import FieldSelector, LabelSelector
from simcluster.serviceproxy import ServiceProxy, default_load_balancer_cidr, endpoints, target_port
from simcluster.store import Store
from simcluster.testing import SimProcess
from tests.environment import needs

# 127.0.0.0/8 is local on Linux; a random /24 per test keeps parallel runs (and the simclusters of
# other tests, which use 127.100+ for pods and 127.210.x for load balancers) apart.
_USED: set[str] = set()


def fresh_net() -> str:
    while True:
        net = f"127.{random.randint(220, 250)}.{random.randint(0, 255)}"
        if net not in _USED:
            _USED.add(net)
            return net


# ---------------------------------------------------------------------------------- pure policy


def pod(
    name: str, ip: str = "10.0.0.1", *, ready: bool = True, node: str = "n1", **extra: Any
) -> dict[str, Any]:
    ports = extra.pop("ports", [{"name": "http", "containerPort": 8888}])
    return {
        "metadata": {
            "name": name,
            "namespace": "default",
            "labels": {"app": "web"},
            "creationTimestamp": extra.pop("created", "2024-01-01T00:00:00Z"),
        },
        "spec": {"nodeName": node, "containers": [{"name": "c", "image": "x", "ports": ports}]},
        "status": {
            "phase": "Running",
            "podIP": ip,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
        **extra,
    }


SERVICE = {"metadata": {"name": "web", "namespace": "default"}, "spec": {"selector": {"app": "web"}}}


@pytest.mark.parametrize(
    ("port", "expected"),
    [
        ({"port": 80}, 80),
        ({"port": 80, "targetPort": 8080}, 8080),
        ({"port": 80, "targetPort": "8080"}, 8080),
        ({"port": 80, "targetPort": "http"}, 8888),
        ({"port": 80, "targetPort": "metrics"}, None),
        ({"port": 80, "targetPort": "http", "protocol": "UDP"}, None),
    ],
)
def test_target_port(port: dict[str, Any], expected: int | None) -> None:
    assert target_port(port, pod("a")) == expected


def test_endpoints_are_ready_pods_with_an_ip_and_the_port_oldest_first() -> None:
    pods = [
        pod("young", "10.0.0.2", created="2024-01-02T00:00:00Z"),
        pod("old", "10.0.0.1"),
        pod("unready", "10.0.0.3", ready=False),
        pod("no-ip", ""),
        pod("no-port", "10.0.0.4", ports=[]),
        pod("elsewhere", "10.0.0.5", node="n2"),
        pod("going", "10.0.0.6", metadata={**pod("going")["metadata"], "deletionTimestamp": "x"}),
        {**pod("other-app", "10.0.0.7"), "metadata": {**pod("x")["metadata"], "labels": {"app": "db"}}},
    ]
    port = {"port": 80, "targetPort": "http"}
    everywhere = [("10.0.0.5", 8888), ("10.0.0.1", 8888), ("10.0.0.2", 8888)]  # by age, then name
    assert endpoints(SERVICE, port, pods) == everywhere
    assert endpoints(SERVICE, port, pods, node="n2") == [("10.0.0.5", 8888)]
    assert endpoints({**SERVICE, "spec": {}}, port, pods) == []  # no selector, no endpoints


def test_cluster_file_load_balancer_cidr() -> None:
    base = {"name": "c", "nodeGroups": []}
    (spec,) = parse_cluster_file({"clusters": [{**base, "loadBalancerCIDR": "127.220.5.0/24"}]})
    assert spec.load_balancer_cidr == "127.220.5.0/24"
    assert parse_cluster_file({"clusters": [base]})[0].load_balancer_cidr == ""
    assert default_load_balancer_cidr(1) == "127.210.1.0/24"
    for bad in ("nonsense", "fd00::/64"):
        with pytest.raises(ConfigError, match=r"clusters\[0\]\.loadBalancerCIDR"):
            parse_cluster_file({"clusters": [{**base, "loadBalancerCIDR": bad}]})


# ---------------------------------------------------------------------------------- in process


async def until(check: Callable[[], Any]) -> Any:
    """``check()`` once it is truthy (within 3 seconds)."""
    for _ in range(300):
        if value := check():
            return value
        await asyncio.sleep(0.01)
    raise AssertionError("not within 3 s")


async def ask(ip: str, port: int, text: str = "hi") -> str:
    """One connection: send a line, return the answer line ("" when closed or reset, not refused)."""
    try:
        reader, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 2)
    except (ConnectionResetError, BrokenPipeError):  # reset before connect() even returned
        return ""
    try:
        writer.write(text.encode() + b"\n")
        await writer.drain()
        return (await asyncio.wait_for(reader.readline(), 3)).decode().strip()
    except (ConnectionResetError, BrokenPipeError):
        return ""
    finally:
        writer.close()


async def refused(ip: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(ip, port), 2)
    except ConnectionRefusedError:
        return True
    writer.close()
    return False


class Cluster:
    """A store with one node, echo-server "pods" on loopback addresses, and a ServiceProxy."""

    def __init__(self, net: str) -> None:
        self.net = net
        self.store = Store(Registry.with_defaults([]))
        self.store.create(self.store.registry.core("namespaces"), None, {"metadata": {"name": "default"}})
        self.node_ip = f"{net}.200"
        group = NodeGroup(name="g", capacity={"cpu": "8", "memory": "16Gi"})
        node = make_node(group, "n1", self.node_ip, "10.244.1.0/24", self.store.now())
        self.store.create(self.store.registry.core("nodes"), None, node, keep_status=True)
        self.proxy = ServiceProxy(self.store, f"{net}.0/25", connect_timeout=0.5)
        self.servers: list[asyncio.Server] = []

    async def echo_pod(self, name: str, ip: str, *, ready: bool = True, node: str = "n1") -> None:
        """A pod at ``ip`` whose named port "echo" answers each line with "<name>:<line>"."""

        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            while line := await reader.readline():
                writer.write(f"{name}:{line.decode()}".encode())
                await writer.drain()
            writer.close()

        server = await asyncio.start_server(handle, ip, 0)
        self.servers.append(server)
        self.add_pod(name, ip, server.sockets[0].getsockname()[1], ready=ready, node=node)

    def add_pod(self, name: str, ip: str, port: int, *, ready: bool = True, node: str = "n1") -> None:
        pods = self.store.registry.core("pods")
        container = {"name": "c", "image": "x", "ports": [{"name": "echo", "containerPort": port}]}
        meta = {"name": name, "labels": {"app": "echo"}}
        self.store.create(
            pods, "default", {"metadata": meta, "spec": {"nodeName": node, "containers": [container]}}
        )

        def running(p: dict[str, Any]) -> None:
            ready_cond = {"type": "Ready", "status": "True" if ready else "False"}
            p["status"].update(phase="Running", podIP=ip, conditions=[ready_cond])

        self.store.update(pods, "default", name, running, subresource="status")

    def service(self, name: str = "echo", type_: str = "LoadBalancer", **spec: Any) -> dict[str, Any]:
        ports = [{"name": "echo", "port": 7000, "targetPort": "echo"}]
        body = {
            "metadata": {"name": name},
            "spec": {"type": type_, "selector": {"app": "echo"}, "ports": ports, **spec},
        }
        return self.store.create(self.store.registry.core("services"), "default", body)

    def get(self, name: str = "echo") -> dict[str, Any]:
        return self.store.get(self.store.registry.core("services"), "default", name)

    def ingress(self, name: str = "echo") -> str | None:
        svc = self.get(name)
        found = (svc.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
        return str(found[0]["ip"]) if found else None

    async def close(self) -> None:
        await self.proxy.stop()
        for server in self.servers:
            server.close()


@pytest_asyncio.fixture
async def cluster() -> AsyncIterator[Cluster]:
    c = Cluster(fresh_net())
    c.proxy.start()
    yield c
    await c.close()


@pytest.mark.asyncio
async def test_a_load_balancer_gets_an_ingress_ip_and_forwards_to_the_pod(cluster: Cluster) -> None:
    await cluster.echo_pod("a", "127.0.0.1")
    services = cluster.store.registry.core("services")
    created = cluster.service()
    since = created["metadata"]["resourceVersion"]
    watch = cluster.store.watch(services, "default", LabelSelector(), FieldSelector(), since)
    ip = await until(cluster.ingress)
    assert ip.startswith(f"{cluster.net}.")
    assert cluster.get()["status"]["loadBalancer"] == {"ingress": [{"ip": ip, "ipMode": "VIP"}]}
    typ, obj, _ = watch.queue.get_nowait()  # type: ignore[misc]
    assert typ == "MODIFIED" and obj["status"]["loadBalancer"]["ingress"][0]["ip"] == ip
    assert await ask(ip, 7000, "hello") == "a:hello"
    node_port = cluster.get()["spec"]["ports"][0]["nodePort"]  # a LoadBalancer has node ports too
    assert await ask(cluster.node_ip, node_port, "via-node") == "a:via-node"
    reasons = [e["reason"] for e in cluster.store.list(cluster.store.registry.core("events"), "default")]
    assert reasons == ["EnsuringLoadBalancer", "EnsuredLoadBalancer"]


@pytest.mark.asyncio
async def test_connections_round_robin_over_ready_pods(cluster: Cluster) -> None:
    await cluster.echo_pod("a", "127.0.0.1")
    await cluster.echo_pod("b", "127.0.0.1")
    await cluster.echo_pod("unready", "127.0.0.1", ready=False)
    cluster.service()
    ip = await until(cluster.ingress)
    answers = [await ask(ip, 7000, str(i)) for i in range(4)]
    assert answers == ["a:0", "b:1", "a:2", "b:3"]
    # with ClientIP affinity every connection from this host goes to the same pod
    cluster.service("sticky", sessionAffinity="ClientIP")
    sticky = await until(lambda: cluster.ingress("sticky"))
    assert sticky != ip
    assert len({(await ask(sticky, 7000)).split(":")[0] for _ in range(4)}) == 1


@pytest.mark.asyncio
async def test_without_a_ready_endpoint_connections_are_reset_promptly(cluster: Cluster) -> None:
    silent = socket.create_server(("127.0.0.1", 0), backlog=0)  # its accept queue is full: SYNs drop
    fill = [socket.socket() for _ in range(3)]
    for sock in fill:
        sock.setblocking(False)
        sock.connect_ex(silent.getsockname())
    try:
        cluster.add_pod("a-refuses", "127.0.0.1", 1)  # port 1: connection refused
        cluster.add_pod("b-silent", "127.0.0.1", silent.getsockname()[1])  # the connect times out (0.5 s)
        cluster.service("empty", selector={"app": "nothing"})
        cluster.service("dead")
        empty, dead = (
            await until(lambda: cluster.ingress("empty")),
            await until(lambda: cluster.ingress("dead")),
        )
        took = []
        for ip in (empty, dead, dead):  # no pod; then round robin over the two
            started = time.monotonic()
            assert await ask(ip, 7000) == ""
            took.append(time.monotonic() - started)
        assert max(took) < 2 and took[2] >= 0.4  # the silent pod was given its connect timeout
    finally:
        for sock in [silent, *fill]:
            sock.close()


@pytest.mark.asyncio
async def test_a_half_close_and_a_large_transfer_pass_through(cluster: Cluster) -> None:
    async def count(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        total = len(await reader.read())  # until the client's half-close
        writer.write(str(total).encode())
        writer.close()

    server = await asyncio.start_server(count, "127.0.0.1", 0)
    cluster.servers.append(server)
    cluster.add_pod("counter", "127.0.0.1", server.sockets[0].getsockname()[1])
    cluster.service()
    ip = await until(cluster.ingress)
    reader, writer = await asyncio.open_connection(ip, 7000)
    writer.write(b"x" * (4 << 20))
    writer.write_eof()
    assert await asyncio.wait_for(reader.read(), 5) == str(4 << 20).encode()
    writer.close()


@pytest.mark.asyncio
async def test_deleting_the_service_closes_its_listeners_and_releases_its_ip(cluster: Cluster) -> None:
    await cluster.echo_pod("a", "127.0.0.1")
    cluster.service()
    ip = await until(cluster.ingress)
    node_port = cluster.get()["spec"]["ports"][0]["nodePort"]
    reader, writer = await asyncio.open_connection(ip, 7000)  # open across the deletion
    writer.write(b"before\n")
    assert await reader.readline() == b"a:before\n"
    cluster.store.delete(cluster.store.registry.core("services"), "default", "echo")
    await until(lambda: not cluster.proxy.serving())
    assert await refused(ip, 7000) and await refused(cluster.node_ip, node_port)
    assert await asyncio.wait_for(reader.read(), 2) == b""  # the load balancer went: so did the connection
    writer.close()
    cluster.service("next")
    assert await until(lambda: cluster.ingress("next")) == ip  # the address is free again


@pytest.mark.asyncio
async def test_changing_the_type_deletes_the_load_balancer(cluster: Cluster) -> None:
    await cluster.echo_pod("a", "127.0.0.1")
    cluster.service()
    ip = await until(cluster.ingress)
    node_port = cluster.get()["spec"]["ports"][0]["nodePort"]
    services = cluster.store.registry.core("services")
    cluster.store.update(services, "default", "echo", lambda s: s["spec"].update(type="NodePort"))
    await until(lambda: cluster.get()["status"]["loadBalancer"] == {})
    assert await refused(ip, 7000)
    assert await ask(cluster.node_ip, node_port) == "a:hi"  # the node port stays
    cluster.store.update(services, "default", "echo", lambda s: s["spec"].update(type="ClusterIP"))
    await until(lambda: not cluster.proxy.serving())
    assert await refused(cluster.node_ip, node_port)


@pytest.mark.asyncio
async def test_node_ports_follow_node_readiness_and_skip_addresses_not_on_this_host(
    cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level("INFO", logger="simcluster.serviceproxy")
    nodes = cluster.store.registry.core("nodes")
    group = NodeGroup(name="g", capacity={"cpu": "8", "memory": "16Gi"})
    remote = make_node(group, "remote", "203.0.113.10", "10.244.2.0/24", cluster.store.now())
    cluster.store.create(nodes, None, remote, keep_status=True)
    await cluster.echo_pod("a", "127.0.0.1")
    port = cluster.service(type_="NodePort")["spec"]["ports"][0]["nodePort"]
    await until(cluster.proxy.serving)
    assert list(cluster.proxy.serving()) == [(cluster.node_ip, port)]
    assert cluster.ingress() is None
    assert await ask(cluster.node_ip, port) == "a:hi"
    assert "node address 203.0.113.10 is not on this host" in caplog.text

    def not_ready(node: dict[str, Any]) -> None:
        for cond in node["status"]["conditions"]:
            if cond["type"] == "Ready":
                cond["status"] = "Unknown"

    cluster.store.update(nodes, None, "n1", not_ready, subresource="status")
    await until(lambda: not cluster.proxy.serving())
    assert await refused(cluster.node_ip, port)


@pytest.mark.asyncio
async def test_external_traffic_policy_local_keeps_node_port_traffic_on_the_node(cluster: Cluster) -> None:
    await cluster.echo_pod("elsewhere", "127.0.0.1", node="n2")
    port = cluster.service(type_="NodePort", externalTrafficPolicy="Local")["spec"]["ports"][0]["nodePort"]
    await until(cluster.proxy.serving)
    assert await ask(cluster.node_ip, port) == ""  # n1 has no pod of the service
    await cluster.echo_pod("here", "127.0.0.1", node="n1")
    assert await ask(cluster.node_ip, port) == "here:hi"


@pytest.mark.asyncio
async def test_a_used_address_is_skipped_and_stop_closes_everything() -> None:
    c = Cluster(fresh_net())
    squatter = socket.create_server((f"{c.net}.1", 7000))  # another program holds .1:7000
    try:
        c.proxy.start()
        await c.echo_pod("a", "127.0.0.1")
        c.service()
        ip = await until(c.ingress)
        assert ip == f"{c.net}.2"
        assert await ask(ip, 7000) == "a:hi"
    finally:
        squatter.close()
        await c.close()
    assert not c.proxy.serving() and await refused(ip, 7000)


# ---------------------------------------------------------------------------------- end to end

CLUSTER_FILE = """
clusters:
  - name: onprem
    runtime: {runtime}
    podCIDR: 10.232.0.0/16
    nodeCIDR: {net}.0/24
    loadBalancerCIDR: {lb}.0/24
    timings: {{pod_start: 0.1}}
    nodeGroups:
      - {{name: cpu, count: 2, capacity: {{cpu: "8", memory: 16Gi}}}}
"""
# answers each connection with the pod's name and what it was sent; binds the pod IP, which works in
# both the process runtime and the loopback fallback
ECHO = (
    "import os, socket\n"
    "s = socket.create_server((os.environ['POD_IP'], 9000))\n"
    "while True:\n"
    "    c, _ = s.accept()\n"
    "    with c:\n"
    "        c.sendall(os.environ['POD_NAME'].encode() + b':' + c.recv(100))\n"
)
ENV = [
    {"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}},
    {"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
]
SANDBOXES, WHY_NOT = can_use_namespaces()  # the process runtime's variant needs them


def echo_pod(name: str) -> dict[str, Any]:
    container = {
        "name": "echo",
        "image": "ignored:1",
        "command": ["python3", "-c", ECHO],
        "env": ENV,
        "ports": [{"name": "echo", "containerPort": 9000}],
    }
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "labels": {"app": "echo"}},
        "spec": {"containers": [container]},
    }


def service(name: str, type_: str, selector: str = "echo") -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name},
        "spec": {
            "type": type_,
            "selector": {"app": selector},
            "ports": [{"port": 8000, "targetPort": "echo"}],
        },
    }


def talk(ip: str, port: int, text: str = "hi", wait: float = 10.0) -> str:
    """Send ``text`` and read the answer ("" when reset); retried for ``wait`` seconds."""
    deadline = time.monotonic() + wait
    while True:
        answer = b""
        try:
            with socket.create_connection((ip, port), timeout=3) as conn:
                conn.sendall(text.encode())
                while chunk := conn.recv(100):
                    answer += chunk
        except ConnectionError:  # refused (not served yet) or reset (no pod answered)
            answer = b""
        if answer or time.monotonic() > deadline:
            return answer.decode()
        time.sleep(0.1)


@dataclass
class Sim:
    proc: SimProcess
    lb: str  # the first three octets of its loadBalancerCIDR


@pytest.fixture(
    scope="module",
    params=[
        "process-loopback",
        pytest.param(
            "process",
            marks=needs(SANDBOXES, WHY_NOT),
        ),
    ],
)
def sim(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sim]:
    tmp = tmp_path_factory.mktemp(request.param)
    lb = fresh_net()
    (tmp / "clusters.yaml").write_text(CLUSTER_FILE.format(runtime=request.param, net=fresh_net(), lb=lb))
    with SimProcess(tmp / "sim", config=tmp / "clusters.yaml") as proc:
        pods = {"apiVersion": "v1", "kind": "List", "items": [echo_pod("echo-a"), echo_pod("echo-b")]}
        proc.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(pods))
        proc.kubectl("wait", "--for=condition=Ready", "pod/echo-a", "pod/echo-b", "--timeout=30s")
        for name in ("echo-a", "echo-b"):  # both servers are up before any test counts answers
            ip = proc.kubectl("get", "pod", name, "-o", "jsonpath={.status.podIP}").stdout
            assert talk(ip, 9000).startswith(f"{name}:")
        yield Sim(proc, lb)


def apply(sim: SimProcess, obj: dict[str, Any]) -> None:
    sim.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(obj))


def ingress_ip(sim: SimProcess, name: str) -> str:
    deadline = time.monotonic() + 10
    while True:
        out = sim.kubectl("get", "svc", name, "-o", "jsonpath={.status.loadBalancer.ingress[0].ip}").stdout
        if out or time.monotonic() > deadline:
            return out
        time.sleep(0.1)


def test_a_load_balancer_service_reaches_its_pods_from_the_host(sim: Sim) -> None:
    apply(sim.proc, service("echo-lb", "LoadBalancer"))
    ip = ingress_ip(sim.proc, "echo-lb")
    assert ip == f"{sim.lb}.1"
    mode = sim.proc.kubectl(
        "get", "svc", "echo-lb", "-o", "jsonpath={.status.loadBalancer.ingress[0].ipMode}"
    )
    assert mode.stdout == "VIP"
    assert sim.proc.kubectl("get", "svc", "echo-lb").stdout.splitlines()[1].split()[3] == ip  # EXTERNAL-IP
    answers = [talk(ip, 8000, f"hello{i}") for i in range(4)]
    pods = [a.split(":")[0] for a in answers]
    assert answers == [f"{pod}:hello{i}" for i, pod in enumerate(pods)]
    assert set(pods) == {"echo-a", "echo-b"}  # round robin over both pods
    sim.proc.kubectl("delete", "svc", "echo-lb")
    deadline = time.monotonic() + 5
    while True:
        try:
            socket.create_connection((ip, 8000), timeout=2).close()
        except ConnectionRefusedError:
            break
        assert time.monotonic() < deadline, "the load balancer still listens after its Service went"
        time.sleep(0.05)


def test_a_node_port_is_served_on_every_node_address(sim: Sim) -> None:
    apply(sim.proc, service("echo-np", "NodePort"))
    port = int(sim.proc.kubectl("get", "svc", "echo-np", "-o", "jsonpath={.spec.ports[0].nodePort}").stdout)
    path = 'jsonpath={.items[*].status.addresses[?(@.type=="InternalIP")].address}'
    ips = sim.proc.kubectl("get", "nodes", "-o", path).stdout.split()
    assert len(ips) == 2
    for ip in ips:
        assert talk(ip, port).startswith("echo-")
    sim.proc.kubectl("delete", "svc", "echo-np")


def test_a_service_without_ready_pods_resets_connections(sim: Sim) -> None:
    apply(sim.proc, service("nobody", "LoadBalancer", selector="nobody"))
    ip = ingress_ip(sim.proc, "nobody")
    started = time.monotonic()
    with (
        pytest.raises((ConnectionResetError, BrokenPipeError)),  # accepted, then reset (not refused)
        socket.create_connection((ip, 8000), timeout=3) as conn,
    ):
        conn.sendall(b"hi")
        conn.recv(100)
    assert time.monotonic() - started < 2
    sim.proc.kubectl("delete", "svc", "nobody")
