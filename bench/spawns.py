"""Concurrent spawns through a real hub: HybridSpawner against stock KubeSpawner on the same simcluster.

Prints, for N users started at once (JupyterHub's light ``mocksu`` server in each pod, simcluster's
process runtime): the wall time until all are ready, per-spawn latency, the API requests per spawn
that each spawner made (simcluster's request log, all clusters), and the time from an on-prem
outage to the service's first EKS placement. Needs root (pods reached at their pod IPs).

    .venv/bin/python bench/spawns.py [--users 50] [--latency 0]
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
            status, body = call(hub, "POST", "api/placements", token,
                                {"user": "probe", "gpus": 1, "gpu_product": "NVIDIA-L40S"})  # fmt: skip
            if status == 200 and body["candidates"][0]["cluster"] == "eks":
                elapsed = time.monotonic() - started
                call(hub, "DELETE", f"api/placements/{body['candidates'][0]['reservation']}", token)
                return elapsed
            if time.monotonic() - started > 60:
                raise TimeoutError("the service never placed on eks")
            time.sleep(0.1)
    finally:
        admin.clear_faults()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds of API latency on both clusters")
    args = parser.parse_args()
    options: dict[str, object] = {"gpus": 0}
    with tempfile.TemporaryDirectory(prefix="bench-spawns-") as tmp:
        work = Path(tmp)
        with SimProcess(work / "sim", config=CLUSTERS) as sim:
            for cluster in ("onprem", "eks"):
                if args.latency:
                    sim.admin(cluster).set_faults(latency=args.latency)
            with HubProcess(work / "stock", sim, singleuser="mocksu", namespace="jupyterhub") as stock:
                stock_figures = run(stock, sim, "stock", args.users, {})
            hybrid = HubProcess(work / "hybrid", sim, singleuser="mocksu", namespace="jupyterhub")
            hybrid.wiring = wire(hybrid, sim, work, spawner=True)
            with hybrid:
                wait_for_service(hybrid)
                hybrid_figures = run(hybrid, sim, "hybrid", args.users, options)
                for cluster in ("onprem", "eks"):
                    sim.admin(cluster).clear_faults()
                detection = fallback_detection(hybrid, sim)
    print(f"command: .venv/bin/python bench/spawns.py --users {args.users} --latency {args.latency}")
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
