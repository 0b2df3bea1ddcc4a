"""Time how the service's health follows an outage of a cluster's API: hung -> DOWN, return -> HEALTHY
with a current inventory, and refused -> DOWN for comparison, against a simcluster of its own.

    .venv/bin/python bench/outage.py                              # the service's defaults: about 3 minutes
    .venv/bin/python bench/outage.py --source /tmp/outage-before  # the fleet code of another checkout
    .venv/bin/python bench/outage.py --quick                      # short probes and outages: about 20 s

One ``ClusterMember`` (spawner/service/fleet.py: the service's client, watches and probes of one
cluster) with the settings of ``HybridHubService`` follows the on-prem cluster of simcluster's default
topology. Each repetition:

- hangs the API (``hungParts: ["api"]``, no root needed) just after a probe called the cluster
  HEALTHY, with a notebook pod created and another deleted by the API server during the hang, and
  times the hang until DOWN;
- keeps it hung ``--outage`` seconds more, then lets the link return and times the return until
  HEALTHY, checking that the inventory was current at that moment (the two pods as they are, and
  the nodes equal to fresh LISTs); also times the return until the inventory has both pod changes,
  whatever the health says (each at most ``--wait`` seconds);
- does the same with the API refusing connections (simcluster's ``down`` fault).

Figures are read every 10 ms. See bench/README.md for the figures measured.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib
import inspect
import json
import logging
import platform
import shlex
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from kubernetes_asyncio import client, config  # noqa: E402

from simcluster.testing import AdminClient, SimProcess  # noqa: E402

A100 = "NVIDIA-A100-SXM4-80GB"
L40S = "NVIDIA-L40S"
NAMESPACE = "bench-outage"
POD_FIELD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed"
LATENCY = 0.3  # s the API server holds the two requests, so that it carries them out during the hang


def load(source: Path | None) -> dict[str, ModuleType]:
    """The service's modules of the checkout at ``source`` (this one by default)."""
    if source is not None:
        sys.path.insert(0, str(source.resolve()))
    names = ("spawner.core.clusters", "spawner.core.health", "spawner.core.labels", "spawner.core.model")
    modules = {name.rsplit(".", 1)[-1]: importlib.import_module(name) for name in names}
    modules["fleet"] = importlib.import_module("spawner.service.fleet")
    modules["app"] = importlib.import_module("spawner.service.app")
    modules["index"] = importlib.import_module("spawner.inventory.index")
    return modules


def member_of(m: dict[str, ModuleType], sim: SimProcess, quick: bool) -> tuple[Any, dict[str, float]]:
    """A ClusterMember of the on-prem cluster with the service's settings, and those settings."""
    service = m["app"].HybridHubService()
    settings = {
        name: getattr(service, name)
        for name in (
            "probe_interval",
            "probe_retry_interval",
            "probe_timeout",
            "watch_timeout",
            "watch_read_timeout",
            "degraded_latency",
            "down_after_failures",
            "recover_after",
            "max_watch_age",
        )
        if hasattr(service, name)  # an older checkout may lack some
    }
    if quick:
        settings.update(probe_interval=1.0, probe_timeout=0.5)
        if "probe_retry_interval" in settings:
            settings["probe_retry_interval"] = 0.5
    policy = m["health"].HealthPolicy(
        degraded_latency=settings["degraded_latency"],
        down_after_failures=settings["down_after_failures"],
        recover_after=settings["recover_after"],
        max_watch_age=settings["max_watch_age"],
    )
    (cfg,) = m["clusters"].parse_clusters(
        [
            {
                "name": "onprem",
                "role": "onprem",
                "kubeconfig": str(sim.kubeconfig),
                "context": "onprem",
                "namespace": NAMESPACE,
                "hub_connect_url": "http://hub:8081",
                "home_storage": {"kind": "none"},
                "pools": [
                    {"name": "a100", "node_selector": {"nvidia.com/gpu.product": A100}},
                    {"name": "l40s", "node_selector": {"nvidia.com/gpu.product": L40S}},
                ],
            }
        ]
    )
    accepted = inspect.signature(m["fleet"].ClusterMember).parameters
    kwargs = {k: v for k, v in settings.items() if k in accepted}
    return m["fleet"].ClusterMember(cfg, policy=policy, **kwargs), settings


def notebook(m: dict[str, ModuleType], name: str, user: str) -> dict[str, Any]:
    labels = m["labels"]
    return {
        "metadata": {
            "name": name,
            "labels": {labels.COMPONENT_LABEL: labels.NOTEBOOK_COMPONENT},
            "annotations": {labels.USERNAME_KEY: user},
        },
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": A100},
            "containers": [
                {"name": "notebook", "image": "jupyter", "resources": {"limits": {"nvidia.com/gpu": "1"}}}
            ],
        },
    }


class Outage:
    """One ClusterMember against one simcluster, and the measurements."""

    def __init__(self, m: dict[str, ModuleType], member: Any, admin: AdminClient, v1: client.CoreV1Api):
        self.m, self.member, self.admin, self.v1 = m, member, admin, v1
        self.health = m["model"].Health

    def state(self) -> Any:
        return self.member.health().state

    async def until(self, check: Callable[[], bool], within: float) -> float | None:
        """Seconds until ``check()`` held, or None after ``within``."""
        started = time.monotonic()
        while not check():
            if time.monotonic() - started > within:
                return None
            await asyncio.sleep(0.01)
        return time.monotonic() - started

    async def healthy_probe(self, within: float) -> None:
        """Return just after a probe that called the cluster HEALTHY."""
        deadline = time.monotonic() + within
        while True:
            before = self.member.state
            if await self.until(lambda before=before: self.member.state is not before, within) is None:
                raise SystemExit(f"no probe within {within} s")
            if self.state() is self.health.HEALTHY:
                return
            if time.monotonic() > deadline:
                raise SystemExit(f"the cluster is not HEALTHY after {within} s: {self.member.health()}")

    async def requests(self, since: int) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self.admin.requests, since)

    async def hang_with_changes(self, new: str, old: str) -> tuple[float, list[asyncio.Task[Any]]]:
        """Hang the API while the API server creates pod ``new`` and deletes pod ``old``."""
        since = await asyncio.to_thread(self.admin.last_request)
        await asyncio.to_thread(self.admin.set_faults, latency=LATENCY)
        body = notebook(self.m, new, new)
        tasks = [
            asyncio.create_task(self.v1.create_namespaced_pod(NAMESPACE, body, _request_timeout=120)),
            asyncio.create_task(
                self.v1.delete_namespaced_pod(old, NAMESPACE, grace_period_seconds=0, _request_timeout=120)
            ),
        ]
        pods = f"/api/v1/namespaces/{NAMESPACE}/pods"
        wanted = {("POST", pods), ("DELETE", f"{pods}/{old}")}

        def ours(log: list[dict[str, Any]]) -> list[dict[str, Any]]:
            return [r for r in log if (r["method"], r["path"]) in wanted]

        deadline = time.monotonic() + 10
        while True:  # each request waits LATENCY in the API server once it has arrived
            if len(ours(await self.requests(since))) == 2:
                break
            if time.monotonic() > deadline:
                raise SystemExit("the create and delete requests never reached the API server")
            await asyncio.sleep(0.01)
        await asyncio.to_thread(self.admin.set_faults, latency=0, hung=True, hungParts=["api"])
        hung_at = time.monotonic()
        if any(r["status"] for r in ours(await self.requests(since))):
            raise SystemExit("the API server answered before the hang began: raise LATENCY")
        return hung_at, tasks

    def current(self, new: str, old: str) -> bool:
        w = self.member.watcher
        return w.server(new) is not None and w.server(old) is None

    async def matches_lists(self) -> bool:
        async def items(method: Any, **kwargs: Any) -> list[dict[str, Any]]:
            resp = await method(_preload_content=False, _request_timeout=10, **kwargs)
            async with resp:
                return list(json.loads(await resp.read())["items"])

        seen = self.member.inventory().nodes
        nodes = await items(self.v1.list_node)
        pods = await items(self.v1.list_pod_for_all_namespaces, field_selector=POD_FIELD_SELECTOR)
        return bool(seen == self.m["index"].build_nodes(nodes, pods, self.member.config.pools))

    async def hung(self, rep: int, outage: float, wait: float, probe_every: float) -> dict[str, Any]:
        old, new = f"keep-{rep}", f"born-{rep}"
        await self.v1.create_namespaced_pod(NAMESPACE, notebook(self.m, old, old))
        await self.until(lambda: self.member.watcher.server(old) is not None, 10)
        await self.healthy_probe(probe_every + 5)
        hung_at, tasks = await self.hang_with_changes(new, old)
        await self.until(lambda: self.state() is self.health.DOWN, wait)
        down = time.monotonic() - hung_at if self.state() is self.health.DOWN else None
        reason = self.member.health().reason
        await asyncio.sleep(outage)  # the outage itself: its length is the scenario, not a wait
        await asyncio.to_thread(self.admin.clear_faults)
        back = time.monotonic()
        healthy = current = current_then = None  # seconds after the return; what placement read then
        while time.monotonic() < back + wait and (healthy is None or current is None):
            if current is None and self.current(new, old):
                current = time.monotonic() - back
            if healthy is None and self.state() is self.health.HEALTHY:
                healthy, current_then = time.monotonic() - back, self.current(new, old)
            await asyncio.sleep(0.01)
        if current_then:  # the nodes too: unchanged since, so fresh LISTs tell what they were then
            current_then = await self.matches_lists()
        with contextlib.suppress(Exception):
            async with asyncio.timeout(30):  # the held answers come at a retransmission
                await asyncio.gather(*tasks, return_exceptions=True)
        await self.v1.delete_namespaced_pod(new, NAMESPACE, grace_period_seconds=0)
        return {
            "down_s": down,
            "down_reason": reason,
            "healthy_s": healthy,
            "current_at_healthy": current_then,
            "current_s": current,
        }

    async def refused(self, outage: float, wait: float, probe_every: float) -> dict[str, Any]:
        await self.healthy_probe(probe_every + 5)
        await asyncio.to_thread(self.admin.set_faults, down=True)
        refused_at = time.monotonic()
        await self.until(lambda: self.state() is self.health.DOWN, wait)
        down = time.monotonic() - refused_at if self.state() is self.health.DOWN else None
        reason = self.member.health().reason
        await asyncio.sleep(outage)  # the outage itself
        await asyncio.to_thread(self.admin.clear_faults)
        healthy = await self.until(lambda: self.state() is self.health.HEALTHY, wait)
        return {"down_s": down, "down_reason": reason, "healthy_s": healthy}


def seconds(x: float | None, wait: float) -> str:
    return f">{wait:g} s" if x is None else f"{x:.2f} s"


async def run(args: argparse.Namespace) -> int:
    m = load(args.source)
    with tempfile.TemporaryDirectory(prefix="bench-outage-") as work, SimProcess(Path(work)) as sim:
        member, settings = member_of(m, sim, args.quick)
        admin = sim.admin("onprem")
        api = await config.new_client_from_config(config_file=str(sim.kubeconfig), context="onprem")
        async with api:
            v1 = client.CoreV1Api(api)
            await v1.create_namespace({"metadata": {"name": NAMESPACE}})
            await member.start()
            try:
                bench = Outage(m, member, admin, v1)
                if await bench.until(lambda: bench.state() is bench.health.HEALTHY, 30) is None:
                    raise SystemExit(f"the cluster never became HEALTHY: {member.health()}")
                rows = []
                for rep in range(1, args.reps + 1):
                    hung = await bench.hung(rep, args.outage, args.wait, settings["probe_interval"])
                    refused = await bench.refused(args.outage, args.wait, settings["probe_interval"])
                    rows.append({"hung": hung, "refused": refused})
            finally:
                await member.stop()
                await asyncio.to_thread(admin.clear_faults)
    report(args, settings, rows)
    return 0


def report(args: argparse.Namespace, settings: dict[str, float], rows: list[dict[str, Any]]) -> None:
    command = shlex.join(["bench/outage.py", *args.argv])
    print(f"command:  .venv/bin/python {command}")
    print(f"fleet:    spawner.service.fleet of {args.source or REPO}")
    print("settings: " + ", ".join(f"{k} {v:g}" for k, v in settings.items()))
    interval, timeout = settings["probe_interval"], settings["probe_timeout"]
    retry = settings.get("probe_retry_interval")
    n, m = settings["down_after_failures"], settings["recover_after"]
    if retry is not None:
        print(
            f"bounds:   hung -> DOWN {interval + (n - 1) * retry + timeout:g} s, refused -> DOWN "
            f"{interval + (n - 1) * retry:g} s, return -> HEALTHY {m * retry + timeout:g} s"
        )
    print(
        f"outage:   {args.outage:g} s after DOWN; python {platform.python_version()} on {platform.machine()}"
    )
    print()
    w = args.wait
    head = (
        "rep",
        "hung->DOWN",
        "back->HEALTHY",
        "current then",
        "back->current",
        "refused->DOWN",
        "back->HEALTHY",
    )
    widths = (4, 12, 15, 14, 15, 15, 15)
    print("".join(f"{h:>{wd}}" for h, wd in zip(head, widths, strict=True)))
    print("-" * sum(widths))
    for i, row in enumerate(rows, 1):
        h, r = row["hung"], row["refused"]
        cells = (
            str(i),
            seconds(h["down_s"], w),
            seconds(h["healthy_s"], w),
            {True: "yes", False: "NO", None: "-"}[h["current_at_healthy"]],
            seconds(h["current_s"], w),
            seconds(r["down_s"], w),
            seconds(r["healthy_s"], w),
        )
        print("".join(f"{c:>{wd}}" for c, wd in zip(cells, widths, strict=True)))
    print("-" * sum(widths))

    def median(values: list[float | None]) -> str:
        known = [v for v in values if v is not None]
        if len(known) < len(values):
            return f">{w:g} s"
        return f"{statistics.median(known):.2f} s"

    cells = (
        "med",
        median([r["hung"]["down_s"] for r in rows]),
        median([r["hung"]["healthy_s"] for r in rows]),
        f"{sum(bool(r['hung']['current_at_healthy']) for r in rows)}/{len(rows)}",
        median([r["hung"]["current_s"] for r in rows]),
        median([r["refused"]["down_s"] for r in rows]),
        median([r["refused"]["healthy_s"] for r in rows]),
    )
    print("".join(f"{c:>{wd}}" for c, wd in zip(cells, widths, strict=True)))
    print(f"\nwhy DOWN: {rows[-1]['hung']['down_reason']}; {rows[-1]['refused']['down_reason']}")
    if args.json:
        args.json.write_text(json.dumps({"settings": settings, "rows": rows}, indent=2))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3, help="repetitions (default 3)")
    parser.add_argument(
        "--outage", type=float, default=10.0, help="seconds each outage lasts after DOWN (default 10)"
    )
    parser.add_argument(
        "--wait", type=float, default=60.0, help="the longest wait for DOWN, HEALTHY or a current inventory"
    )
    parser.add_argument(
        "--quick", action="store_true", help="probes every 1 s (0.5 s when failing), 0.5 s each"
    )
    parser.add_argument("--source", type=Path, help="the checkout whose spawner package to time")
    parser.add_argument("--json", type=Path, help="write the figures as JSON too")
    parser.add_argument("--log", action="store_true", help="show the service's log (warnings are hidden)")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if args.log else logging.ERROR, format="%(asctime)s %(name)s %(message)s"
    )
    args.argv = sys.argv[1:] if argv is None else argv
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
