"""Time a backup pipeline: from the moment on-prem goes down to a run that was waiting for it Running
on EKS, with the service's default settings, for an outage that refuses and one that hangs.

    .venv/bin/python bench/failover.py            # 3 repetitions of each outage: about 3 minutes
    .venv/bin/python bench/failover.py --quick    # 1 of each: about 1 minute
    .venv/bin/python bench/failover.py --quick --outage refused   # one outage only

simcluster runs an on-prem cluster (one node of 4 A100) and an EKS cluster whose A100 node group
scales from zero (simulated runtime: cluster-autoscaler adds a node in ``scale_up`` + ``node_ready``
seconds, 3 + 1 as in simcluster's default topology; each repetition starts with no GPU node there,
so every figure includes a new node). The service runs in this process as
``HybridHubService.serve`` builds it, with all its defaults: the fleet's probes (DOWN after 3
unanswered probes), the run manager and its admission loop every 2 s. A run pinned to on-prem holds
its GPUs; each repetition submits a one-step workflow of 4 GPUs with ``cluster: auto`` through the
service's Argo endpoint, sees it held back on-prem, then takes on-prem's API down (simcluster's
``down`` fault: connections refused; or ``hung``: the API accepts and never answers) and times, from
that moment:

- **down**: the service's health calls on-prem DOWN;
- **moved**: the registry has the run on EKS (made there, held back, and its move recorded);
- **let go**: admission un-suspended it on EKS;
- **running**: its pod runs on EKS's new node (the autoscaler's node included).

Then on-prem comes back, and the time until the service has deleted the copy on-prem is the last
figure. Kueue's MultiKueue, the nearest peer, waits ``workerLostTimeout`` (15 minutes by default)
before it dispatches a lost cluster's workload again. See bench/README.md for the figures measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import platform
import shlex
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from tornado.httpclient import AsyncHTTPClient  # noqa: E402
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
from spawner.service.runs.manager import RunManager  # noqa: E402
from spawner.service.store import Store  # noqa: E402
from spawner.service.store.runs import ADMITTED, QUEUED, RunRegistry  # noqa: E402
from tests.spawner.service.inprocess import TokenTable, user  # noqa: E402

__all__ = ["main"]

A100 = "NVIDIA-A100-SXM4-80GB"
CLUSTER_FILE = f"""
clusters:
  - name: onprem
    role: onprem
    runtime: simulated
    timings: {{pod_start: 0.5, pod_stop: 0.2}}
    nodeGroups:
      - name: a100
        count: 1
        capacity: {{cpu: "64", memory: 512Gi}}
        gpu: {{count: 4, product: {A100}}}
  - name: eks
    role: cloud
    runtime: simulated
    timings: {{pod_start: 0.5, pod_stop: 0.2, scale_up: 3, node_ready: 1, scale_down_idle: 2}}
    nodeGroups:
      - name: system
        count: 1
        capacity: {{cpu: "4", memory: 15Gi}}
        labels: {{eks.amazonaws.com/nodegroup: system}}
      - name: gpu-a100
        elastic: true
        min: 0
        max: 1
        capacity: {{cpu: "96", memory: 1100Gi}}
        gpu: {{count: 4, product: {A100}}}
        labels: {{eks.amazonaws.com/nodegroup: gpu-a100}}
        taints: [{{key: nvidia.com/gpu, value: "true", effect: NoSchedule}}]
"""
POOLS: dict[str, list[dict[str, Any]]] = {
    "onprem": [{"name": "gpu", "node_selector": {}}],
    "eks": [
        {"name": "system", "node_selector": {"eks.amazonaws.com/nodegroup": "system"}},
        {
            "name": "gpu-a100",
            "node_selector": {"eks.amazonaws.com/nodegroup": "gpu-a100"},
            "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
            "elastic": True,
            "gpus_per_node": 4,
            "gpu_product": A100,
            "max_nodes": 1,
        },
    ],
}
SCOPES = ("custom:hybridhub:runs", "access:services!service=hybridhub")
USER = "ada"
NAMESPACE = f"hybridhub-runs-{USER}"
STAGES = ("down", "moved", "let go", "running")
OUTAGES = ("refused", "hung")


def members(service: HybridHubService, sim: SimProcess) -> list[ClusterMember]:
    configs = parse_clusters(
        [
            {
                "name": name,
                "role": name if name == "onprem" else "cloud",
                "kubeconfig": str(sim.kubeconfig),
                "context": name,
                "namespace": "jupyterhub",
                "hub_connect_url": "http://hub:8081",
                "home_storage": {"kind": "none"},
                "pools": POOLS[name],
            }
            for name in ("onprem", "eks")
        ]
    )
    return service.cluster_members(configs)


class Bench:
    def __init__(self, sim: SimProcess, fleet: Fleet, manager: RunManager, port: int, prefix: str) -> None:
        self.sim, self.fleet, self.manager, self.port, self.prefix = sim, fleet, manager, port, prefix

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        resp = await AsyncHTTPClient().fetch(
            f"http://127.0.0.1:{self.port}{self.prefix}{path}",
            method=method,
            headers={"Authorization": f"Bearer {USER}-token"},
            body=None if body is None else json.dumps(body),
            raise_error=False,
            allow_nonstandard_methods=True,
            request_timeout=60,
            connect_timeout=10,
        )
        return resp.code, json.loads(resp.body) if resp.body else None

    async def submit(self, name: str, cluster: str = "auto", seconds: float = 5.0) -> None:
        workflow = {
            "apiVersion": "argoproj.io/v1alpha1",
            "kind": "Workflow",
            "metadata": {"name": name, "labels": {"hybridhub.io/cluster": cluster}},
            "spec": {
                "entrypoint": "main",
                "templates": [
                    {
                        "name": "main",
                        "metadata": {"annotations": {"simcluster.hybridhub.io/exit-after": str(seconds)}},
                        "container": {
                            "image": "busybox",
                            "command": ["true"],
                            "resources": {"limits": {"nvidia.com/gpu": "4"}},
                        },
                    }
                ],
            },
        }
        status, body = await self.call("POST", "argo/api/v1/workflows/default", {"workflow": workflow})
        if status != 200:
            raise RuntimeError(f"submit {name}: {status} {body}")

    async def state(self, name: str) -> tuple[str | None, str | None]:
        record = await self.manager.registry.get(USER, "Workflow", name)
        return (None, None) if record is None else (record.cluster, record.state)

    def pod_running(self, name: str) -> bool:
        out = self.sim.kubectl(
            "get",
            "pods",
            "-n",
            NAMESPACE,
            "-l",
            f"workflows.argoproj.io/workflow={name}",
            "-o",
            "json",
            context="eks",
            check=False,
        ).stdout
        try:
            items = json.loads(out)["items"]
        except (ValueError, KeyError):
            return False
        return any((p.get("status") or {}).get("phase") == "Running" for p in items)

    def eks_gpu_nodes(self) -> int:
        out = self.sim.kubectl(
            "get",
            "nodes",
            "-l",
            "eks.amazonaws.com/nodegroup=gpu-a100",
            "-o",
            "name",
            context="eks",
            check=False,
        )
        return len(out.stdout.split())

    def on_onprem(self, name: str) -> bool:
        out = self.sim.kubectl(
            "get", "workflows", "-n", NAMESPACE, "-o", "name", context="onprem", check=False
        )
        return any(line.rpartition("/")[2] == name for line in out.stdout.split())


async def until(check: Any, within: float) -> None:
    async with asyncio.timeout(within):
        while not await check():  # noqa: ASYNC110 - polled state of other processes
            await asyncio.sleep(0.05)


async def repetition(b: Bench, outage: str) -> dict[str, float]:
    name = f"wait-{uuid.uuid4().hex[:6]}"
    await b.submit(name)

    async def queued_onprem() -> bool:
        return await b.state(name) == ("onprem", QUEUED)

    await until(queued_onprem, 30)

    async def cold() -> bool:  # every repetition times a new EKS node, as after a quiet spell
        return await asyncio.to_thread(b.eks_gpu_nodes) == 0

    await until(cold, 60)
    admin = b.sim.admin("onprem")
    times: dict[str, float] = {}
    start = time.monotonic()
    admin.set_faults(down=True) if outage == "refused" else admin.set_faults(hung=True, hungParts=["api"])
    try:
        while len(times) < len(STAGES):
            now = time.monotonic() - start
            if now > 300:
                raise RuntimeError(f"{outage}: stages {times} not all seen within 300 s")
            if "down" not in times and b.fleet.health()["onprem"].state is Health.DOWN:
                times["down"] = now
            cluster, state = await b.state(name)
            if "moved" not in times and cluster == "eks":
                times["moved"] = now
            if "let go" not in times and cluster == "eks" and state == ADMITTED:
                times["let go"] = now
            if "let go" in times and "running" not in times and await asyncio.to_thread(b.pod_running, name):
                times["running"] = now
            await asyncio.sleep(0.05)
    finally:
        admin.clear_faults()
    back = time.monotonic()

    async def copy_gone() -> bool:
        return not await asyncio.to_thread(b.on_onprem, name)

    await until(copy_gone, 120)
    times["copy deleted after return"] = time.monotonic() - back

    async def healthy() -> bool:
        return b.fleet.health()["onprem"].state is Health.HEALTHY

    await until(healthy, 120)
    await b.call("DELETE", f"argo/api/v1/workflows/default/{name}")
    return times


@contextlib.asynccontextmanager
async def running(sim: SimProcess, work: Path) -> AsyncIterator[Bench]:
    service = HybridHubService()
    service.log.setLevel(logging.ERROR)
    fleet = Fleet(members(service, sim))
    book = ReservationBook(ttl=service.reservation_ttl)
    store = Store(f"sqlite:///{work / 'store.sqlite'}")
    await store.upgrade()
    manager = RunManager(RunRegistry(store), fleet, book, service.run_settings())
    await fleet.start()
    try:
        async with asyncio.timeout(60):
            while not (  # noqa: ASYNC110 - polled snapshots
                all(i.synced for i in fleet.inventories())
                and all(h.state is Health.HEALTHY for h in fleet.health().values())
            ):
                await asyncio.sleep(0.05)
        manager.start()
        capacity = fleet_capacity(fleet, book)
        metrics = Metrics(capacity, fleet.health, lambda: len(book))
        tokens = TokenTable({f"{USER}-token": user(USER, *SCOPES)})
        sock, port = bind_unused_port()
        server = HTTPServer(service.make_app(fleet, book, metrics, capacity, hub_auth=tokens, runs=manager))
        server.add_sockets([sock])
        try:
            yield Bench(sim, fleet, manager, port, service.service_prefix)
        finally:
            server.stop()
            await server.close_all_connections()
            await manager.stop()
    finally:
        await fleet.stop()
        await store.close()


async def measure(args: argparse.Namespace) -> dict[str, dict[str, list[float]]]:
    figures: dict[str, dict[str, list[float]]] = {}
    with tempfile.TemporaryDirectory(prefix="failover-") as tmp:
        work = Path(tmp)
        (work / "clusters.yaml").write_text(CLUSTER_FILE)
        with SimProcess(work / "sim", config=work / "clusters.yaml") as sim:
            async with running(sim, work) as b:
                holder = f"holder-{uuid.uuid4().hex[:6]}"
                await b.submit(holder, cluster="onprem", seconds=3600)

                async def held() -> bool:
                    return (await b.state(holder))[1] == ADMITTED

                await until(held, 30)
                for outage in args.outages:
                    for i in range(args.repeat):
                        times = await repetition(b, outage)
                        print(f"{outage} #{i + 1}: " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items()))
                        for key, value in times.items():
                            figures.setdefault(outage, {}).setdefault(key, []).append(value)
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of each outage (default 3)")
    parser.add_argument("--quick", action="store_true", help="one repetition of each outage")
    parser.add_argument(
        "--outage",
        dest="outages",
        action="append",
        choices=OUTAGES,
        help="time this outage only (refused: the API refuses connections; hung: it accepts and never"
        " answers); repeat the option for both, the default",
    )
    args = parser.parse_args(argv)
    args.outages = args.outages or list(OUTAGES)
    if args.quick:
        args.repeat = 1
    service = HybridHubService()
    print(f"# bench/failover.py {shlex.join(sys.argv[1:])}")
    print(
        f"# {platform.node()}, Python {platform.python_version()}; service defaults: probe every"
        f" {service.probe_interval:g} s (retry {service.probe_retry_interval:g} s, timeout"
        f" {service.probe_timeout:g} s), DOWN after {service.down_after_failures} failures, admission"
        f" every {service.run_admission_interval:g} s"
    )
    logging.basicConfig(level=logging.ERROR)
    figures = asyncio.run(measure(args))
    print("\nseconds from on-prem going down (median, max over the repetitions):")
    for outage, stages in figures.items():
        cells = ", ".join(
            f"{stage} {statistics.median(values):.1f} ({max(values):.1f})" for stage, values in stages.items()
        )
        print(f"  {outage}: {cells}")
    print("MultiKueue's workerLostTimeout before it dispatches a lost cluster's workload again: 900 s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
