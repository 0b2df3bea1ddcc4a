"""Benchmark the inventory's upkeep: one cluster's ``NodeIndex`` fed node and pod JSON event by event.

    .venv/bin/python bench/inventory.py                  # 1,000 nodes, 30,000 pods: about 30 s
    .venv/bin/python bench/inventory.py --source DIR     # the NodeIndex of another checkout, e.g. older

The service keeps one ``NodeIndex`` per cluster (spawner/inventory/index.py). Its watchers hand it
every node and pod event as parsed JSON, and placement reads its snapshots. Since the fit index
landed, the NodeIndex also keeps placement's ``FitIndex`` (spawner/placement/fit_index.py): a pod
event moves its node in the presorted orders at once, and a snapshot freezes only the pools that
changed. This script times that work alone, each measurement with ``time.perf_counter_ns`` and the
garbage collector on, as in the service. See bench/README.md for the figures measured.
"""

from __future__ import annotations

import argparse
import copy
import cProfile
import gc
import importlib
import json
import platform
import pstats
import random
import shlex
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parent.parent

A100, H100, L40S = "NVIDIA-A100-SXM4-80GB", "NVIDIA-H100-80GB-HBM3", "NVIDIA-L40S"
POOL_LABEL = "bench.hybridhub.io/pool"
GPU_TAINT = {"key": "nvidia.com/gpu", "value": "present", "effect": "NoSchedule"}
GPU_TOLERATION = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

# (pool, share of the nodes, GPUs per node, product, CPUs, memory GiB): one on-prem cluster
LAYOUT = [
    ("dgx-a100", 0.20, 8, A100, 128, 1024),
    ("dgx-h100", 0.16, 8, H100, 192, 2048),
    ("l40s", 0.24, 4, L40S, 64, 512),
    ("cpu", 0.40, 0, None, 64, 256),
]

Json = dict[str, Any]


def load(source: Path) -> tuple[ModuleType, ModuleType]:
    """The inventory index and model modules of the checkout at ``source``.

    A checkout from before the package layout of commit df18ac1 has them as ``spawner.inventory_model``
    and ``spawner.model``; both have the same ``NodeIndex`` interface.
    """
    sys.path.insert(0, str(source))
    try:
        return importlib.import_module("spawner.inventory.index"), importlib.import_module(
            "spawner.core.model"
        )
    except ModuleNotFoundError:
        return importlib.import_module("spawner.inventory_model"), importlib.import_module("spawner.model")


def node_json(name: str, pool: str, gpus: int, product: str | None, cpus: int, memory_gib: int) -> Json:
    """A node as the API server sends it: GPU Feature Discovery labels, allocatable, a Ready condition."""
    labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux", POOL_LABEL: pool}
    capacity = {"cpu": str(cpus), "memory": f"{memory_gib}Gi", "pods": "110"}
    allocatable = {"cpu": f"{cpus * 1000 - 500}m", "memory": f"{memory_gib - 4}Gi", "pods": "110"}
    taints = []
    if gpus:
        labels |= {
            "nvidia.com/gpu.present": "true",
            "nvidia.com/gpu.product": product or "",
            "nvidia.com/gpu.memory": "81920",
            "nvidia.com/gpu.count": str(gpus),
        }
        capacity["nvidia.com/gpu"] = allocatable["nvidia.com/gpu"] = str(gpus)
        taints.append(dict(GPU_TAINT))
    return {
        "metadata": {"name": name, "uid": f"uid-{name}", "resourceVersion": "1", "labels": labels},
        "spec": {"podCIDR": "10.244.0.0/24", "taints": taints},
        "status": {
            "capacity": capacity,
            "allocatable": allocatable,
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "DiskPressure", "status": "False"},
                {"type": "Ready", "status": "True", "reason": "KubeletReady"},
            ],
            "nodeInfo": {"kubeletVersion": "v1.31.0", "containerRuntimeVersion": "containerd://1.7.20"},
        },
    }


def pod_json(name: str, namespace: str, node: str, gpus: int, cpu: str, memory: str) -> Json:
    """A running pod bound to ``node``, with requests and limits as KubeSpawner writes them."""
    requests = {"cpu": cpu, "memory": memory}
    limits = {"memory": memory}
    if gpus:
        requests["nvidia.com/gpu"] = limits["nvidia.com/gpu"] = str(gpus)
    return {
        "metadata": {
            "name": name,
            "namespace": namespace,
            "uid": f"uid-{name}",
            "resourceVersion": "2",
            "labels": {"app": "bench", "component": "worker"},
        },
        "spec": {
            "nodeName": node,
            "initContainers": [
                {"name": "init", "image": "busybox", "resources": {"requests": {"cpu": "100m"}}}
            ],
            "containers": [
                {
                    "name": "main",
                    "image": "example/app:1",
                    "resources": {"requests": requests, "limits": limits},
                }
            ],
            "tolerations": [dict(GPU_TOLERATION)] if gpus else [],
        },
        "status": {
            "phase": "Running",
            "podIP": "10.244.0.10",
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


# A pod as the bench keeps it between events: (name, namespace, node, GPUs, CPU, memory). Its JSON is
# made only when an event or a LIST delivers it, so that the bench's own objects do not add to the work
# of the garbage collector that the figures include.
PodSpec = tuple[str, str, str, int, str, str]


class Fleet:
    """The cluster's nodes as JSON, its pods, and new pods to add as a watch would deliver them."""

    def __init__(self, nodes: int, pods: int, rng: random.Random) -> None:
        self.rng = rng
        self.nodes: list[Json] = []
        self.gpus: dict[str, int] = {}
        for pool, share, gpus, product, cpus, memory in LAYOUT:
            for i in range(max(1, round(nodes * share))):
                name = f"{pool}-{i:04d}"
                self.nodes.append(node_json(name, pool, gpus, product, cpus, memory))
                self.gpus[name] = gpus
        rng.shuffle(self.nodes)  # a LIST's order, not grouped by pool
        self.names = [n["metadata"]["name"] for n in self.nodes]
        self._made = 0
        self.pods = [self.new_pod() for _ in range(pods)]

    def new_pod(self) -> PodSpec:
        """A pod on a random node: on a GPU node one in three holds a GPU, the rest are small CPU pods."""
        self._made += 1
        name, namespace = f"pod-{self._made:06d}", f"team-{self._made % 30:02d}"
        node = self.rng.choice(self.names)
        if self.gpus[node] and self.rng.random() < 1 / 3:
            return name, namespace, node, 1, "8", "64Gi"
        cpu = self.rng.choice(("250m", "500m", "1", "2"))
        memory = self.rng.choice(("512Mi", "1Gi", "2Gi", "4Gi"))
        return name, namespace, node, 0, cpu, memory


def percentile(sorted_us: list[float], q: float) -> float:
    return sorted_us[min(len(sorted_us) - 1, int(q * len(sorted_us)))]


def timed(clock: Callable[[], int], fn: Callable[[], object]) -> float:
    """Microseconds ``fn()`` took."""
    t0 = clock()
    fn()
    return (clock() - t0) / 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=1000, help="nodes in the cluster (default 1000)")
    parser.add_argument("--pods", type=int, default=30000, help="pods bound to them (default 30000)")
    parser.add_argument("--events", type=int, default=2000, help="timed single pod events (default 2000)")
    parser.add_argument(
        "--batches", type=int, default=200, help="timed batches of 10 pod events and a snapshot (default 200)"
    )
    parser.add_argument("--relists", type=int, default=3, help="timed relists (default 3)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--source",
        type=Path,
        default=REPO,
        help="the checkout whose NodeIndex is timed (default: this one), e.g. an older commit unpacked",
    )
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    parser.add_argument(
        "--profile", type=Path, help="profile one more relist with cProfile; the stats go to this file"
    )
    args = parser.parse_args(argv)
    if min(args.nodes, args.relists, args.batches) < 1 or args.pods < 0 or args.events < 0:
        parser.error("--nodes, --relists and --batches must be 1 or more; --pods and --events 0 or more")

    index_module, model = load(args.source.resolve())
    pools = tuple(
        model.Pool(name, node_selector={POOL_LABEL: name}, tolerations=(GPU_TOLERATION,) if gpus else ())
        for name, _, gpus, *_ in LAYOUT
    )
    rng = random.Random(args.seed)
    fleet = Fleet(args.nodes, args.pods, rng)
    index = index_module.NodeIndex("onprem", model.Role.ONPREM, pools)
    clock = time.perf_counter_ns
    live = list(fleet.pods)  # the pods the index holds
    adding = True

    def event() -> tuple[str, Json]:
        """The next pod event, made before it is timed: alternately a new pod bound to a random node and
        a random pod gone, so each one changes a node's requests and the pod count stays the same."""
        nonlocal adding
        adding = not adding
        if not adding:
            pod = fleet.new_pod()
            live.append(pod)
            return "ADDED", pod_json(*pod)
        i = rng.randrange(len(live))
        live[i], live[-1] = live[-1], live[i]
        return "DELETED", pod_json(*live.pop())

    gc.collect()
    relists = []
    for _ in range(args.relists):
        # fresh objects, as a LIST decodes them
        nodes, pods = copy.deepcopy(fleet.nodes), [pod_json(*p) for p in live]
        gc.collect()
        t0 = clock()
        index.replace_nodes(nodes)
        index.replace_pods(pods)
        index.snapshot(synced=True)
        relists.append((clock() - t0) / 1000)
        del nodes, pods  # the watcher keeps no LIST either
    if args.profile is not None:  # one more relist, untimed, under cProfile
        nodes, pods = copy.deepcopy(fleet.nodes), [pod_json(*p) for p in live]
        profiler = cProfile.Profile()
        profiler.runcall(
            lambda: (index.replace_nodes(nodes), index.replace_pods(pods), index.snapshot(synced=True))
        )
        profiler.dump_stats(args.profile)
        del nodes, pods
    fits_kept = getattr(index.snapshot(synced=True), "fits", None) is not None

    for _ in range(min(500, args.events)):  # warm up
        index.apply_pod(*event())
    index.snapshot(synced=True)
    gc.collect()

    singles = []
    for _ in range(args.events):
        typ, pod = event()
        singles.append(timed(clock, lambda typ=typ, pod=pod: index.apply_pod(typ, pod)))
    index.snapshot(synced=True)

    batches = []
    for _ in range(args.batches):
        ten = [event() for _ in range(10)]

        def apply_ten(ten: list[tuple[str, Json]] = ten) -> None:
            for typ, pod in ten:
                index.apply_pod(typ, pod)
            index.snapshot(synced=True)

        batches.append(timed(clock, apply_ten))

    unchanged = [timed(clock, lambda: index.snapshot(synced=True)) for _ in range(args.batches)]

    flips = []
    for _ in range(args.batches):
        node = copy.deepcopy(rng.choice(fleet.nodes))
        ready = next(c for c in node["status"]["conditions"] if c["type"] == "Ready")
        ready["status"] = "False"
        flips.append(timed(clock, lambda node=node: index.apply_node("MODIFIED", node)))
        back = copy.deepcopy(node)
        next(c for c in back["status"]["conditions"] if c["type"] == "Ready")["status"] = "True"
        flips.append(timed(clock, lambda back=back: index.apply_node("MODIFIED", back)))
    index.snapshot(synced=True)

    command = shlex.join(["bench/inventory.py", *(sys.argv[1:] if argv is None else argv)])
    print(f"command:  .venv/bin/python {command}")
    print(
        f"index:    {len(index)} nodes in {len(pools)} pools, {index.pod_count} pods; NodeIndex from "
        f"{index_module.__name__} ({args.source}); keeps a FitIndex: {'yes' if fits_kept else 'no'}"
    )
    print(f"python:   {platform.python_version()} on {platform.system()} {platform.machine()}")
    print()
    print(f"{'what':<34}{'reps':>6}{'p50 µs':>10}{'p99 µs':>10}{'max µs':>10}")
    print("-" * 70)
    rows: dict[str, dict[str, float]] = {}

    def row(label: str, values: list[float]) -> None:
        values = sorted(values)
        if not values:
            return
        p50, p99 = statistics.median(values), percentile(values, 0.99)
        rows[label] = {"reps": len(values), "p50_us": p50, "p99_us": p99, "max_us": values[-1]}
        print(f"{label:<34}{len(values):>6}{p50:>10.0f}{p99:>10.0f}{values[-1]:>10.0f}")

    row("relist + first snapshot", relists)
    row("pod event (a node's requests)", singles)
    row("10 pod events + snapshot", batches)
    row("node event (Ready flips)", flips)
    row("snapshot, nothing changed", unchanged)
    print("-" * 70)
    if args.profile is not None:
        print(f"\nprofile of one relist: {args.profile}; the calls that took longest, callees included:")
        pstats.Stats(str(args.profile), stream=sys.stdout).sort_stats("cumulative").print_stats(12)
    if args.json:
        args.json.write_text(json.dumps({"fits_kept": fits_kept, "rows": rows}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
