"""Benchmark spawner.placement.rank.place() over a fleet of 1,000 nodes: p50/p99 per kind of request.

    .venv/bin/python bench/placement.py                  # 1,000 nodes, 20,000 calls (a few seconds)
    .venv/bin/python bench/placement.py --nodes 5000     # a bigger fleet

The fleet is two clusters (half on-prem with fixed pools, half EKS with elastic pools), mixed GPU
products, random usage (most GPU nodes nearly full, as ~30 pods per node leave them), 1 % of the
nodes NotReady and 1 % cordoned, and reservations (some expired) for spawns in flight. Each inventory
carries the FitIndex (usable nodes per pool, presorted) that the service's NodeIndex keeps up to date;
the last row times that upkeep for one changed node. Each call is timed alone with
``time.perf_counter_ns``. Last, per kind of request, the most node names a candidate carried and the
size of the required node affinity a pod for it gets (JSON bytes). See bench/README.md for the
figures measured.
"""

from __future__ import annotations

import argparse
import gc
import json
import platform
import random
import shlex
import statistics
import sys
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from spawner.core.model import (  # noqa: E402
    Candidate,
    ClusterHealth,
    ClusterInventory,
    Health,
    NodeCapacity,
    PlacementRequest,
    Pool,
    Reservation,
    Role,
)
from spawner.placement.fit_index import FitIndexBuilder, build_fit_index  # noqa: E402
from spawner.placement.rank import availability, place  # noqa: E402
from spawner.spawning.attempt import required_terms  # noqa: E402

A100, H100, L40S, A10G = "NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3", "NVIDIA-L40S", "NVIDIA-A10G"
GiB = 2**30
NOW = 1000.0
CLUSTERS = [("onprem", Role.ONPREM), ("eks", Role.CLOUD)]

# (cluster, pool, share of the fleet, GPUs per node, product, CPUs, memory GiB, elastic)
LAYOUT = [
    ("onprem", "dgx-a100", 0.10, 8, A100, 128, 1024, False),
    ("onprem", "dgx-h100", 0.08, 8, H100, 192, 2048, False),
    ("onprem", "l40s", 0.12, 4, L40S, 64, 512, False),
    ("onprem", "cpu", 0.20, 0, None, 64, 256, False),
    ("eks", "gpu-a100", 0.10, 8, A100, 96, 1152, True),
    ("eks", "gpu-l40s", 0.10, 4, L40S, 48, 384, True),
    ("eks", "gpu-a10g", 0.10, 1, A10G, 16, 64, True),
    ("eks", "cpu", 0.20, 0, None, 32, 128, True),
]

# (label, weight, gpus, product, cpu, memory GiB)
REQUESTS = [
    ("1 x A100", 25, 1, A100, 8, 64),
    ("2 x A100", 10, 2, A100, 16, 128),
    ("8 x A100", 5, 8, A100, 64, 512),
    ("1 x L40S", 15, 1, L40S, 8, 64),
    ("4 x H100", 5, 4, H100, 32, 256),
    ("1 x any GPU", 10, 1, None, 4, 32),
    ("CPU only", 25, 0, None, 2, 8),
    ("16 x A100 (never fits)", 5, 16, A100, 8, 64),
]


def fleet(nodes: int, rng: random.Random) -> list[ClusterInventory]:
    pools: dict[str, list[Pool]] = {"onprem": [], "eks": []}
    members: dict[str, list[NodeCapacity]] = {"onprem": [], "eks": []}
    for cluster, pool, share, gpus, product, cpus, mem, is_elastic in LAYOUT:
        count = max(1, round(nodes * share))
        pools[cluster].append(
            Pool(pool, elastic=is_elastic, gpus_per_node=gpus, gpu_product=product, max_nodes=count * 3 // 2)
            if is_elastic
            else Pool(pool)
        )
        for i in range(count):
            used = gpus if rng.random() < 0.6 else rng.randint(0, gpus)  # most GPU nodes full
            members[cluster].append(
                NodeCapacity(
                    name=f"{pool}-{i:04d}",
                    pool=pool,
                    ready=rng.random() > 0.01,
                    schedulable=rng.random() > 0.01,
                    gpu_product=product,
                    gpu_memory_mib=81920 if gpus else None,
                    gpus_allocatable=gpus,
                    gpus_requested=used,
                    cpu_allocatable=float(cpus),
                    cpu_requested=round(rng.uniform(0.2, 1.0) * cpus, 1),
                    memory_allocatable=mem * GiB,
                    memory_requested=int(rng.uniform(0.2, 1.0) * mem * GiB),
                )
            )
    rng.shuffle(members["onprem"])  # a watcher's order, not grouped by pool
    rng.shuffle(members["eks"])
    return [inventory(c, role, tuple(pools[c]), tuple(members[c])) for c, role in CLUSTERS]


def inventory(
    cluster: str, role: Role, pools: tuple[Pool, ...], nodes: tuple[NodeCapacity, ...]
) -> ClusterInventory:
    """A snapshot as the service's NodeIndex hands it out: with the index of its nodes placement uses."""
    return ClusterInventory(cluster, role, pools, nodes, True, fits=build_fit_index(nodes))


def reservations(inventories: list[ClusterInventory], count: int, rng: random.Random) -> list[Reservation]:
    out = []
    gpu_nodes = [(inv.cluster, n) for inv in inventories for n in inv.nodes if n.gpus_allocatable]
    for i in range(count):
        expires = NOW + rng.uniform(-60, 120)  # about a third expired
        if i % 10 == 9:  # a future node of an elastic pool
            out.append(
                Reservation(f"r{i}", "eks", None, rng.choice(["gpu-a100", "gpu-l40s"]), 1, 8.0, 0, expires)
            )
        else:
            cluster, n = rng.choice(gpu_nodes)
            out.append(Reservation(f"r{i}", cluster, n.name, n.pool, 1, 8.0, 64 * GiB, expires))
    return out


def percentile(sorted_us: list[float], q: float) -> float:
    return sorted_us[min(len(sorted_us) - 1, int(q * len(sorted_us)))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000, help="nodes in the fleet (default 1000)")
    parser.add_argument("--calls", type=int, default=20000, help="timed place() calls (default 20000)")
    parser.add_argument(
        "--reservations", type=int, default=60, help="reservations, some expired (default 60)"
    )
    parser.add_argument("--policy", default="best-fit", choices=["best-fit", "spread"])
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    rng = random.Random(args.seed)
    inventories = fleet(args.nodes, rng)
    held = reservations(inventories, args.reservations, rng)
    health = {"onprem": ClusterHealth("onprem", Health.HEALTHY), "eks": ClusterHealth("eks", Health.HEALTHY)}
    kinds = [(label, PlacementRequest("u", g, p, float(c), m * GiB)) for label, _, g, p, c, m in REQUESTS]
    weights = [w for _, w, *_ in REQUESTS]
    plan = rng.choices(range(len(kinds)), weights, k=args.calls)
    builders = {inv.cluster: FitIndexBuilder(inv.nodes) for inv in inventories}

    for i in range(min(500, args.calls)):  # warm up
        place(kinds[plan[i]][1], inventories, health, held, policy=args.policy, now=NOW)
    gc.collect()
    times: dict[str, list[float]] = {label: [] for label, _ in kinds}
    outcome: dict[str, set[str]] = {label: set() for label, _ in kinds}
    widest: dict[str, Candidate] = {}  # per kind, the candidate that named the most nodes
    clock = time.perf_counter_ns
    for k in plan:
        label, request = kinds[k]
        t0 = clock()
        result = place(request, inventories, health, held, policy=args.policy, now=NOW)
        t1 = clock()
        times[label].append((t1 - t0) / 1000)
        outcome[label].add(
            "NoCapacity"
            if not isinstance(result, list)
            else f"{len(result)} candidate{'s' if len(result) > 1 else ''}, first on {result[0].cluster}"
        )
        for c in result if isinstance(result, list) else ():
            if label not in widest or len(c.nodes) > len(widest[label].nodes):
                widest[label] = c
    avail = []
    for _ in range(200):
        t0 = clock()
        availability(inventories, held, now=NOW)
        avail.append((clock() - t0) / 1000)
    # the inventory's side: a watch event changes one node (a pod bound or gone), then a snapshot
    # freezes the index (only the pool that changed)
    upkeep = []
    for _ in range(200):
        inv = rng.choice(inventories)
        builder = builders[inv.cluster]
        n = rng.choice(inv.nodes)
        t0 = clock()
        builder.put(replace(n, cpu_requested=n.cpu_requested + 1.0))
        builder.index(inv.nodes)
        upkeep.append((clock() - t0) / 1000)
        builder.put(n)

    gpus = sum(n.gpus_allocatable for inv in inventories for n in inv.nodes)
    live = sum(1 for r in held if r.expires > NOW)
    command = shlex.join(["bench/placement.py", *(sys.argv[1:] if argv is None else argv)])
    print(f"command:  .venv/bin/python {command}")
    print(
        f"fleet:    {sum(len(inv.nodes) for inv in inventories)} nodes "
        f"({', '.join(f'{inv.cluster} {len(inv.nodes)}' for inv in inventories)}), {gpus} GPUs, "
        f"{len(held)} reservations ({live} live), policy {args.policy}"
    )
    print(f"python:   {platform.python_version()} on {platform.system()} {platform.machine()}")
    print()
    print(f"{'request':<24}{'calls':>7}{'p50 µs':>9}{'p99 µs':>9}{'max µs':>9}  result")
    print("-" * 86)
    rows: dict[str, dict[str, float]] = {}

    def row(label: str, values: list[float], result: str) -> None:
        values = sorted(values)
        if not values:
            return
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        rows[label] = {"calls": len(values), "p50_us": p50, "p99_us": p99, "max_us": values[-1]}
        print(f"{label:<24}{len(values):>7}{p50:>9.0f}{p99:>9.0f}{values[-1]:>9.0f}  {result}")

    for label, _ in kinds:
        row(label, times[label], "; ".join(sorted(outcome[label])) if len(outcome[label]) < 3 else "varies")
    print("-" * 86)
    everything = [t for values in times.values() for t in values]
    fits = [t for label, values in times.items() if "never" not in label for t in values]
    row("all requests", everything, "")
    row("all but never-fits", fits, "")
    row("availability()", avail, "")
    row("index: 1 node changed", upkeep, "FitIndexBuilder.put + index (not in place())")
    print(
        f"\nplace() p50 {rows['all requests']['p50_us']:.0f} µs, p99 {rows['all requests']['p99_us']:.0f} µs"
    )
    print(f"\n{'request':<24}{'names':>7}{'affinity bytes':>16}  (the candidate naming the most nodes)")
    for label, _ in kinds:
        c = widest.get(label)
        if c is not None:
            size = len(json.dumps(required_terms((), c.nodes, ())))
            print(f"{label:<24}{len(c.nodes):>7}{size:>16}")
            rows[label]["names"] = len(c.nodes)
            rows[label]["affinity_bytes"] = size
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
