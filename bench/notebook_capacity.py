"""Time ``GET hybridhub/api/capacity`` through the notebook server's extension against ``GET api/capacity``
straight from the service, interleaved in one run: latency one at a time, and requests per second at 8.

    .venv/bin/python bench/notebook_capacity.py            # 500 + 1,000 requests per path: about 20 s
    .venv/bin/python bench/notebook_capacity.py --quick    # 30 + 50 requests per path: about 10 s

simcluster runs two clusters (simulated runtime, a few GPU nodes each) in a subprocess. The service runs
in this process as ``HybridHubService.serve`` builds it for capacity: the fleet (each cluster's client,
watches and probes), the reservation book, the capacity source and the tornado app; no store and no run
manager, which ``api/capacity`` does not read. The hub's token check is a table (``TokenTable``), as a warm
``HubAuth`` cache would answer it.

The notebook server is a real ``jupyter server`` in a subprocess, with every extension the venv enables
(JupyterLab, the hybridhub extension, ...), base URL ``/user/alice/``, and the environment HybridSpawner
gives a notebook pod: ``$HYBRIDHUB_SERVICE_URL`` and ``$JUPYTERHUB_API_TOKEN`` (the server's hub token,
which the extension forwards with). Callers of the server authenticate with jupyter-server's plain token
identity provider, not JupyterHub's: JupyterHub's ``JupyterHubIdentityProvider`` would ask a hub for each
new token, which a stand-in hub would answer in this process's loop and so charge to the service's path.

Three paths are timed from this process with aiohttp, one keep-alive session per path, from sending the
request until the whole body is read: the extension's route, the service's route, and as the floor the
notebook server's own ``api/status`` (its token check and a JSON answer, no hop to the service). The
extension answers the service's body unchanged, which is checked first. Latency: ``--n`` rounds of one
request per path, the order rotating. Throughput: ``--total`` requests per path, 8 in flight
(``--concurrency``), in two halves per path, the second half's order reversed, so that no path always
runs first. CPU per request of the notebook server comes from psutil; this process's (the service and
the client) from ``time.process_time``.
See bench/README.md for the figures measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import platform
import shlex
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
import psutil  # noqa: E402
from tornado.httpserver import HTTPServer  # noqa: E402
from tornado.testing import bind_unused_port  # noqa: E402

from simcluster.testing import SimProcess  # noqa: E402
from spawner.core.clusters import parse_clusters  # noqa: E402
from spawner.core.model import Health  # noqa: E402
from spawner.placement.reservations import ReservationBook  # noqa: E402
from spawner.service.app import HybridHubService  # noqa: E402
from spawner.service.capacity import fleet_capacity  # noqa: E402
from spawner.service.fleet import ClusterMember, Fleet  # noqa: E402
from spawner.service.metrics import Metrics  # noqa: E402
from tests.spawner.service.inprocess import TokenTable, user  # noqa: E402

__all__ = ["Summary", "main", "quantile", "ratio", "summarise", "throughput"]

A100, L40S = "NVIDIA-A100-SXM4-80GB", "NVIDIA-L40S"
# the notebook server's own hub token, with the scopes c.Spawner.server_token_scopes gives it
SERVER_TOKEN = "alice-server-token"
SERVER_SCOPES = ("access:services!service=hybridhub", "custom:hybridhub:capacity", "custom:hybridhub:runs")
# the notebook server's token for its callers (jupyter-server's plain token identity provider)
JUPYTER_TOKEN = "bench-jupyter-token"
BASE_URL = "/user/alice/"
# the third path is the floor: the notebook server's own status route, token check and all, no upstream
PATHS = ("extension", "direct", "status")
LABELS = {
    "extension": "extension (hybridhub/api)",
    "direct": "direct (service api)",
    "status": "floor: jupyter api/status",
}
# Two clusters of a few GPU nodes each: the capacity answer has two clusters, two pools, a few nodes.
CLUSTERS = {"onprem": "onprem", "cloud": "cloud"}
CLUSTER_FILE = """
clusters:
  - name: onprem
    role: onprem
    runtime: simulated
    jobs: false
    katib: false
    trainer: false
    trainingOperator: false
    argo: false
    nodeGroups:
      - name: a100
        count: 2
        capacity: {cpu: "128", memory: 1000Gi}
        gpu: {count: 8, product: NVIDIA-A100-SXM4-80GB, memoryMiB: 81920}
      - name: l40s
        count: 2
        capacity: {cpu: "64", memory: 500Gi}
        gpu: {count: 4, product: NVIDIA-L40S, memoryMiB: 46068}
  - name: cloud
    role: cloud
    runtime: simulated
    jobs: false
    katib: false
    trainer: false
    trainingOperator: false
    argo: false
    nodeCIDR: 172.31.0.0/16
    podCIDR: 172.31.128.0/17
    nodeGroups:
      - name: a100
        count: 1
        capacity: {cpu: "96", memory: 1100Gi}
        gpu: {count: 8, product: NVIDIA-A100-SXM4-80GB, memoryMiB: 81920}
      - name: l40s
        count: 2
        capacity: {cpu: "48", memory: 370Gi}
        gpu: {count: 4, product: NVIDIA-L40S, memoryMiB: 46068}
"""


@dataclass(frozen=True)
class Summary:
    """Milliseconds of one path's requests."""

    n: int
    p50: float
    p99: float
    mean: float
    low: float
    high: float


def quantile(values: list[float], q: float) -> float:
    """The q-quantile by linear interpolation between the closest ranks (numpy's default)."""
    ordered = sorted(values)
    at = q * (len(ordered) - 1)
    below = int(at)
    above = min(below + 1, len(ordered) - 1)
    return ordered[below] + (ordered[above] - ordered[below]) * (at - below)


def summarise(ms: list[float]) -> Summary:
    return Summary(len(ms), quantile(ms, 0.5), quantile(ms, 0.99), statistics.fmean(ms), min(ms), max(ms))


def ratio(extension: Summary, direct: Summary) -> dict[str, float]:
    """Extension over direct, for the median, the 99th percentile and the mean; above 1 it is slower."""
    return {
        "p50": extension.p50 / direct.p50,
        "p99": extension.p99 / direct.p99,
        "mean": extension.mean / direct.mean,
    }


def throughput(requests: int, seconds: float) -> float:
    """Requests per second of a set of requests that took ``seconds`` of wall time together."""
    if seconds <= 0:
        raise ValueError(f"{requests} requests in {seconds} s: the time must be positive")
    return requests / seconds


# ---------------------------------------------------------------------------- the service


def members(service: HybridHubService, sim: SimProcess) -> list[ClusterMember]:
    """Each cluster as the service follows it, with the service's settings (as in serve())."""
    configs = parse_clusters(
        [
            {
                "name": name,
                "role": role,
                "kubeconfig": str(sim.kubeconfig),
                "context": name,
                "namespace": "jupyterhub",
                "hub_connect_url": "http://hub:8081",
                "home_storage": {"kind": "none"},
                "pools": [
                    {"name": "a100", "node_selector": {"nvidia.com/gpu.product": A100}},
                    {"name": "l40s", "node_selector": {"nvidia.com/gpu.product": L40S}},
                ],
            }
            for name, role in CLUSTERS.items()
        ]
    )
    return service.cluster_members(configs)


@contextlib.asynccontextmanager
async def running_service(sim: SimProcess) -> AsyncIterator[str]:
    """The service's capacity API in this process on a free loopback port; yields its URL prefix."""
    service = HybridHubService()
    service.log.setLevel(logging.ERROR)  # it warns that the SSH page is off
    fleet = Fleet(members(service, sim))
    book = ReservationBook(ttl=service.reservation_ttl)
    await fleet.start()
    try:
        # the answer is only worth timing once every cluster's inventory is synced and healthy
        async with asyncio.timeout(30):
            while not (  # noqa: ASYNC110 - polled snapshots
                all(i.synced for i in fleet.inventories())
                and all(h.state == Health.HEALTHY for h in fleet.health().values())
            ):
                await asyncio.sleep(0.05)
        capacity = fleet_capacity(fleet, book)
        metrics = Metrics(capacity, fleet.health, lambda: len(book))
        tokens = TokenTable({SERVER_TOKEN: user("alice", *SERVER_SCOPES)})
        sock, port = bind_unused_port()
        server = HTTPServer(service.make_app(fleet, book, metrics, capacity, hub_auth=tokens))
        server.add_sockets([sock])
        try:
            yield f"http://127.0.0.1:{port}{service.service_prefix}"
        finally:
            server.stop()
            await server.close_all_connections()
    finally:
        await fleet.stop()


# ---------------------------------------------------------------------------- the notebook server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def notebook_server(work: Path, service_url: str) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """``jupyter server`` in a subprocess with the venv's extensions and a notebook pod's environment;
    yields its base URL and the process. Its config, data and runtime folders are under ``work``."""
    home = work / "jupyter"
    for name in ("config", "data", "runtime", "root"):
        (home / name).mkdir(parents=True, exist_ok=True)
    port = free_port()
    env = dict(
        os.environ,
        HYBRIDHUB_SERVICE_URL=service_url,
        JUPYTERHUB_API_TOKEN=SERVER_TOKEN,
        JUPYTER_CONFIG_DIR=str(home / "config"),
        JUPYTER_DATA_DIR=str(home / "data"),
        JUPYTER_RUNTIME_DIR=str(home / "runtime"),
    )
    cmd = [
        sys.executable,
        "-m",
        "jupyter_server",
        "--no-browser",
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--ServerApp.base_url={BASE_URL}",
        f"--ServerApp.root_dir={home / 'root'}",
        f"--IdentityProvider.token={JUPYTER_TOKEN}",
        "--ServerApp.log_level=ERROR",
    ]
    if os.geteuid() == 0:  # jupyter-server refuses root unless told; a notebook pod runs as a user
        cmd.append("--allow-root")
    log = (work / "jupyter.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    log.close()
    try:
        yield f"http://127.0.0.1:{port}{BASE_URL}", proc
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def wait_ready(
    session: aiohttp.ClientSession, url: str, proc: subprocess.Popen[bytes], log: Path
) -> None:
    """Until the notebook server answers its status route, or has exited."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(
                f"jupyter server exited with {proc.returncode}:\n{await asyncio.to_thread(log.read_text)}"
            )
        with contextlib.suppress(aiohttp.ClientError):
            async with session.get(url + "api/status") as response:
                if response.status == 200:
                    return
        await asyncio.sleep(0.1)
    raise SystemExit(f"jupyter server did not answer in 60 s:\n{await asyncio.to_thread(log.read_text)}")


# ---------------------------------------------------------------------------- the requests


async def get(session: aiohttp.ClientSession, url: str) -> tuple[float, bytes]:
    """Milliseconds of one GET until its whole body is read, and the body; anything but 200 ends the run."""
    started = time.perf_counter()
    async with session.get(url) as response:
        body = await response.read()
    ms = (time.perf_counter() - started) * 1000
    if response.status != 200:
        raise SystemExit(f"GET {url} answered {response.status}: {body[:500]!r}")
    return ms, body


async def at_concurrency(
    session: aiohttp.ClientSession, url: str, count: int, concurrency: int
) -> tuple[float, list[float]]:
    """Wall seconds of ``count`` GETs with ``concurrency`` in flight, and each one's milliseconds."""
    left = iter(range(count))
    times: list[float] = []

    async def worker() -> None:
        for _ in left:  # one shared iterator: each request is taken by one worker
            times.append((await get(session, url))[0])

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return time.perf_counter() - started, times


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


async def measure(args: argparse.Namespace, sim: SimProcess, work: Path) -> dict[str, Any]:
    async with running_service(sim) as service_url:
        with notebook_server(work, service_url) as (base, proc):
            headers = {
                "extension": {"Authorization": f"token {JUPYTER_TOKEN}"},
                "direct": {"Authorization": f"token {SERVER_TOKEN}"},
                "status": {"Authorization": f"token {JUPYTER_TOKEN}"},
            }
            url = {
                "extension": base + "hybridhub/api/capacity",
                "direct": service_url + "api/capacity",
                "status": base + "api/status",
            }
            sessions = {
                path: aiohttp.ClientSession(
                    headers=headers[path], connector=aiohttp.TCPConnector(limit=args.concurrency)
                )
                for path in PATHS
            }
            try:
                await wait_ready(sessions["extension"], base, proc, work / "jupyter.log")
                # the first request of each path opens its connections and warms caches: not timed
                _, via = await get(sessions["extension"], url["extension"])
                _, straight = await get(sessions["direct"], url["direct"])
                if json.loads(via) != json.loads(straight):
                    raise SystemExit(
                        f"the extension's body differs from the service's:\n{via!r}\n{straight!r}"
                    )
                clusters = [c["name"] for c in json.loads(straight)["clusters"]]
                for _ in range(args.warmup):
                    for path in PATHS:
                        await get(sessions[path], url[path])
                server = psutil.Process(proc.pid)
                latency: dict[str, list[float]] = {path: [] for path in PATHS}
                for i in range(args.n):
                    # rotate which path goes first, so that none always follows the same other
                    for path in PATHS[i % len(PATHS) :] + PATHS[: i % len(PATHS)]:
                        latency[path].append((await get(sessions[path], url[path]))[0])
                loaded: dict[str, list[float]] = {path: [] for path in PATHS}
                wall = {path: 0.0 for path in PATHS}
                cpu = {path: {"server": 0.0, "bench": 0.0} for path in PATHS}
                half = {0: args.total // 2, 1: args.total - args.total // 2}
                for round_, order in enumerate((PATHS, PATHS[::-1])):
                    for path in order:
                        before = cpu_seconds(server), time.process_time()
                        seconds, ms = await at_concurrency(
                            sessions[path], url[path], half[round_], args.concurrency
                        )
                        cpu[path]["server"] += cpu_seconds(server) - before[0]
                        cpu[path]["bench"] += time.process_time() - before[1]
                        wall[path] += seconds
                        loaded[path].extend(ms)
            finally:
                for session in sessions.values():
                    await session.close()
    return {
        "clusters": clusters,
        "body_bytes": len(straight),
        "latency_ms": latency,
        "loaded_ms": loaded,
        "wall_s": wall,
        "cpu_ms_per_request": {
            path: {who: seconds * 1000 / args.total for who, seconds in cpu[path].items()} for path in PATHS
        },
    }


# ---------------------------------------------------------------------------- the report


def report(args: argparse.Namespace, figures: dict[str, Any]) -> dict[str, Any]:
    print(f"command:  .venv/bin/python {shlex.join(['bench/notebook_capacity.py', *args.argv])}")
    print(
        "service:  in this process, HybridHubService defaults for the fleet, capacity only (no store, no run "
        "manager), the hub's token check from a table"
    )
    print(
        "notebook: jupyter server in a subprocess with the venv's extensions, plain token identity provider, "
        f"base URL {BASE_URL}"
    )
    print(
        f"cluster:  simcluster, clusters {', '.join(figures['clusters'])}, simulated runtime; capacity body "
        f"{figures['body_bytes']} bytes; python {platform.python_version()} on {platform.machine()}, "
        f"{os.cpu_count()} CPUs"
    )
    print()
    lat = {path: summarise(figures["latency_ms"][path]) for path in PATHS}
    head = f"{'concurrency 1':<28}{'n':>6}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}{'min ms':>9}{'max ms':>9}"
    print(head)
    print("-" * len(head))
    for path, s in lat.items():
        print(
            f"{LABELS[path]:<28}{s.n:>6}{s.p50:>9.2f}{s.p99:>9.2f}{s.mean:>9.2f}{s.low:>9.2f}{s.high:>9.2f}"
        )
    print("-" * len(head))
    r = ratio(lat["extension"], lat["direct"])
    added = lat["extension"].mean - lat["direct"].mean
    print(
        f"extension/direct: p50 {r['p50']:.2f}, p99 {r['p99']:.2f}, mean {r['mean']:.2f}; "
        f"added mean {added:+.2f} ms"
    )
    print(
        f"extension - floor: mean {lat['extension'].mean - lat['status'].mean:+.2f} ms "
        "(the hop to the service and back)"
    )
    print()
    rps = {path: throughput(len(figures["loaded_ms"][path]), figures["wall_s"][path]) for path in PATHS}
    loaded = {path: summarise(figures["loaded_ms"][path]) for path in PATHS}
    cpu = figures["cpu_ms_per_request"]
    head = (
        f"{f'concurrency {args.concurrency}':<28}{'n':>6}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'mean ms':>9}"
        f"{'nb CPU ms':>11}{'bench CPU ms':>14}"
    )
    print(head)
    print("-" * len(head))
    for path, s in loaded.items():
        print(
            f"{LABELS[path]:<28}{s.n:>6}{rps[path]:>9.0f}{s.p50:>9.2f}{s.p99:>9.2f}{s.mean:>9.2f}"
            f"{cpu[path]['server']:>11.2f}{cpu[path]['bench']:>14.2f}"
        )
    print("-" * len(head))
    print(
        f"extension/direct: req/s {rps['extension'] / rps['direct']:.2f}; CPU per request: 'nb' the notebook "
        "server's, 'bench' this process's (the service and the client)"
    )
    out = dict(
        figures,
        latency={path: vars(s) for path, s in lat.items()},
        latency_ratio=r,
        loaded={path: vars(s) for path, s in loaded.items()},
        requests_per_second=rps,
        throughput_ratio=rps["extension"] / rps["direct"],
    )
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return out


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-nb-capacity-") as tmp:
        work = Path(tmp)
        (work / "clusters.yaml").write_text(CLUSTER_FILE)
        with SimProcess(work / "sim", config=work / "clusters.yaml") as sim:
            async with asyncio.timeout(args.timeout):
                figures = await measure(args, sim, work)
    report(args, figures)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, help="requests per path one at a time (default 500, --quick 30)")
    parser.add_argument(
        "--total", type=int, help="requests per path at --concurrency (default 1000, --quick 50)"
    )
    parser.add_argument("--concurrency", type=int, default=8, help="requests in flight for req/s (default 8)")
    parser.add_argument("--warmup", type=int, default=20, help="untimed requests per path first (default 20)")
    parser.add_argument("--quick", action="store_true", help="30 requests one at a time and 50 at 8")
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds the whole run may take")
    parser.add_argument("--json", type=Path, help="write the figures as JSON too")
    args = parser.parse_args(argv)
    args.n = args.n if args.n is not None else (30 if args.quick else 500)
    args.total = args.total if args.total is not None else (50 if args.quick else 1000)
    if args.n < 2 or args.total < 2 or args.concurrency < 1 or args.warmup < 0:
        parser.error("--n and --total must be at least 2, --concurrency at least 1, --warmup not negative")
    logging.basicConfig(level=logging.ERROR, format="%(asctime)s %(name)s %(message)s")
    args.argv = sys.argv[1:] if argv is None else argv
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
