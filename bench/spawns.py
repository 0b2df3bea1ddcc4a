"""Concurrent spawns through a real hub: HybridSpawner against stock KubeSpawner on the same simcluster.

Prints, for N users started at once (JupyterHub's light ``mocksu`` server in each pod, simcluster's
process runtime): the wall time until all are ready, per-spawn latency, the API requests per spawn
that each spawner made (simcluster's request log, all clusters), and the time from an on-prem
outage to the service's first EKS placement. Needs root (pods reached at their pod IPs).

With ``--gpu-mix N`` it measures instead, under ``--latency`` (0.2 s by default there) on both
clusters, N concurrent 1-GPU L40S spawns (8 fit on-prem, the rest burst to eks's cold elastic pool)
against one on-prem spawn and one burst spawn from the same cold pool, with the stdlib echo server
(tests/harness/echosu.py) in the pods.

    .venv/bin/python bench/spawns.py [--users 50] [--latency 0]
    .venv/bin/python bench/spawns.py --gpu-mix 20
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from simcluster.testing import SimProcess  # noqa: E402
from tests.harness.hub import HubProcess  # noqa: E402
from tests.harness.hybrid import wire  # noqa: E402
from tests.harness.service_api import call, wait_for_service  # noqa: E402

CLUSTERS = REPO / "tests" / "harness" / "clusters.yaml"


def api_requests(sim: SimProcess, marks: dict[str, int]) -> int:
    """API requests to both clusters since ``marks`` (the shared watchers' included)."""
    return sum(len(sim.admin(c).requests(since=marks[c])) for c in ("onprem", "eks"))


def marks(sim: SimProcess) -> dict[str, int]:
    return {c: sim.admin(c).last_request() for c in ("onprem", "eks")}


def spawn_all(hub: HubProcess, users: list[str], options: dict[str, object]) -> tuple[float, list[float]]:
    for name in users:
        hub.create_user(name)

    def one(name: str) -> float:
        started = time.monotonic()
        hub.start_server(name, options)
        hub.wait_ready(name, timeout=300)
        return time.monotonic() - started

    started = time.monotonic()
    with ThreadPoolExecutor(len(users)) as pool:
        each = list(pool.map(one, users))
    return time.monotonic() - started, each


def stop_all(hub: HubProcess, users: list[str]) -> None:
    with ThreadPoolExecutor(len(users)) as pool:
        list(pool.map(hub.stop_server, users))


def run(hub: HubProcess, sim: SimProcess, label: str, n: int, options: dict[str, object]) -> dict[str, float]:
    warm = f"{label}-warm"
    spawn_all(hub, [warm], options)  # reflectors, clients, the first service call
    stop_all(hub, [warm])
    before = marks(sim)
    users = [f"{label}-{i}" for i in range(n)]
    wall, each = spawn_all(hub, users, options)
    requests = api_requests(sim, before)
    stop_all(hub, users)
    each.sort()
    return {
        "wall": wall,
        "p50": statistics.median(each),
        "p95": each[int(0.95 * (len(each) - 1))],
        "requests_per_spawn": requests / n,
    }


def fallback_detection(hub: HubProcess, sim: SimProcess) -> float:
    """Seconds from on-prem going down to the service's first placement on eks."""
    token = hub.wiring.hub_token
    admin = sim.admin("onprem")
    started = time.monotonic()
    admin.set_faults(down=True)
    try:
        while True:
            status, body = call(
                hub,
                "POST",
                "api/placements",
                token,
                {"user": "probe", "gpus": 1, "gpu_product": "NVIDIA-L40S"},
            )
            if status == 200 and body["candidates"][0]["cluster"] == "eks":
                elapsed = time.monotonic() - started
                call(hub, "DELETE", f"api/placements/{body['candidates'][0]['reservation']}", token)
                return elapsed
            if time.monotonic() - started > 60:
                raise TimeoutError("the service never placed on eks")
            time.sleep(0.1)
    finally:
        admin.clear_faults()


def elastic_nodes(sim: SimProcess) -> set[str]:
    out = sim.kubectl(
        "get", "nodes", "-l", "eks.amazonaws.com/nodegroup=gpu-l40s", "-o", "name", context="eks"
    )
    return {n.removeprefix("node/") for n in out.stdout.split()}


def gpu_mix(work: Path, sim: SimProcess, n: int, latency: float) -> dict[str, float]:
    """N concurrent 1-GPU spawns against one on-prem and one burst spawn, all under ``latency``."""
    one_l40s: dict[str, object] = {"gpus": 1, "gpu_product": "NVIDIA-L40S"}
    hub = HubProcess(work / "mix", sim, singleuser="echosu", namespace="jupyterhub")
    hub.wiring = wire(hub, sim, work, spawner=True)
    cold = elastic_nodes(sim)
    eks = sim.admin("eks")

    def back_to_cold() -> None:
        for node in elastic_nodes(sim) - cold:
            eks.remove_node(node)

    def service_sees_cold() -> None:
        """Until the service's inventory has no node of the elastic pool left either."""
        deadline = time.monotonic() + 30
        while True:
            _, body = call(hub, "GET", "api/capacity", hub.wiring.hub_token)
            eks_nodes = next(c["nodes"] for c in body["clusters"] if c["name"] == "eks")
            if not {n["name"] for n in eks_nodes if n["pool"] == "gpu-l40s"} - cold:
                return
            if time.monotonic() > deadline:
                raise TimeoutError("the service still lists the removed nodes")
            time.sleep(0.1)

    with hub:
        wait_for_service(hub)
        for cluster in ("onprem", "eks"):
            sim.admin(cluster).set_faults(latency=latency)
        try:
            run(hub, sim, "mixwarm", 1, one_l40s)  # clients, reflectors
            on_prem, _ = spawn_all(hub, ["mix-onprem"], one_l40s)
            stop_all(hub, ["mix-onprem"])
            burst, _ = spawn_all(hub, ["mix-burst"], {**one_l40s, "cluster": "eks"})
            stop_all(hub, ["mix-burst"])
            back_to_cold()
            service_sees_cold()
            users = [f"mix-{i}" for i in range(n)]
            wall, each = spawn_all(hub, users, one_l40s)
            where = [hub.user(u)["servers"][""]["state"]["hybridhub"]["cluster"] for u in users]
            stop_all(hub, users)
        finally:
            for cluster in ("onprem", "eks"):
                sim.admin(cluster).clear_faults()
            back_to_cold()
    for cluster in ("onprem", "eks"):
        mine = sorted(t for t, c in zip(each, where, strict=True) if c == cluster)
        print(f"{cluster}: {len(mine)} spawns, " + " ".join(f"{t:.1f}" for t in mine) + " s")
    each.sort()
    return {
        "on_prem": on_prem,
        "burst": burst,
        "wall": wall,
        "p50": statistics.median(each),
        "ratio_burst": wall / burst,
        "ratio_on_prem": wall / on_prem,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--latency", type=float, default=None, help="seconds of API latency on both clusters")
    parser.add_argument(
        "--singleuser",
        choices=("mocksu", "echosu"),
        default="mocksu",
        help="what the pods run: JupyterHub's mocksu (about 1 s of CPU) or the stdlib echosu",
    )
    parser.add_argument(
        "--gpu-mix", type=int, default=0, help="N concurrent 1-GPU spawns instead (see above)"
    )
    args = parser.parse_args()
    if args.gpu_mix:
        latency = 0.2 if args.latency is None else args.latency
        with (
            tempfile.TemporaryDirectory(prefix="bench-spawns-") as tmp,
            SimProcess(Path(tmp) / "sim", config=CLUSTERS) as sim,
        ):
            f = gpu_mix(Path(tmp), sim, args.gpu_mix, latency)
        print(f"command: .venv/bin/python bench/spawns.py --gpu-mix {args.gpu_mix} --latency {latency}")
        print(
            f"{latency * 1000:.0f} ms API latency, echosu pods: 1 spawn on-prem {f['on_prem']:.2f} s, "
            f"1 burst to eks (cold pool) {f['burst']:.2f} s, {args.gpu_mix} concurrent 1-GPU spawns "
            f"{f['wall']:.2f} s (p50 {f['p50']:.2f} s): {f['ratio_burst']:.2f}x the burst spawn, "
            f"{f['ratio_on_prem']:.2f}x the on-prem one"
        )
        print(json.dumps(f))
        return 0
    args.latency = args.latency or 0.0
    options: dict[str, object] = {"gpus": 0}
    with tempfile.TemporaryDirectory(prefix="bench-spawns-") as tmp:
        work = Path(tmp)
        with SimProcess(work / "sim", config=CLUSTERS) as sim:
            for cluster in ("onprem", "eks"):
                if args.latency:
                    sim.admin(cluster).set_faults(latency=args.latency)
            with HubProcess(work / "stock", sim, singleuser=args.singleuser, namespace="jupyterhub") as stock:
                stock_figures = run(stock, sim, "stock", args.users, {})
            hybrid = HubProcess(work / "hybrid", sim, singleuser=args.singleuser, namespace="jupyterhub")
            hybrid.wiring = wire(hybrid, sim, work, spawner=True)
            with hybrid:
                wait_for_service(hybrid)
                hybrid_figures = run(hybrid, sim, "hybrid", args.users, options)
                for cluster in ("onprem", "eks"):
                    sim.admin(cluster).clear_faults()
                detection = fallback_detection(hybrid, sim)
    print(
        f"command: .venv/bin/python bench/spawns.py --users {args.users} --latency {args.latency} "
        f"--singleuser {args.singleuser}"
    )
    print(f"{'spawner':<14}{'wall s':>9}{'p50 s':>9}{'p95 s':>9}{'API req/spawn':>15}")
    for name, f in (("KubeSpawner", stock_figures), ("HybridSpawner", hybrid_figures)):
        print(f"{name:<14}{f['wall']:>9.2f}{f['p50']:>9.2f}{f['p95']:>9.2f}{f['requests_per_spawn']:>15.1f}")
    print(
        f"wall-time ratio HybridSpawner / KubeSpawner: {hybrid_figures['wall'] / stock_figures['wall']:.2f}"
    )
    print(f"on-prem down -> first eks placement: {detection:.2f} s (service probe interval 1 s)")
    print(json.dumps({"stock": stock_figures, "hybrid": hybrid_figures, "fallback_detection_s": detection}))
    return 0


if __name__ == "__main__":
    urllib.request.install_opener(urllib.request.build_opener())
    sys.exit(main())
