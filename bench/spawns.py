"""Concurrent spawns through two real hubs, HybridSpawner against stock KubeSpawner on the same simcluster.

For N users started at once (``--singleuser``: JupyterHub's ``mocksu``, about 1 s of CPU, or the
stdlib ``echosu``; simcluster's process runtime), in ``--pairs`` interleaved rounds per spawner (the
order alternates, so drift hits both alike), it prints per round and as medians over the rounds:

- wall time from the first request to the last server ready (its route in the proxy's table, polled
  every 50 ms: the moment JupyterHub calls a server ready), and per-spawn p50/p95;
- the paired wall-time ratio HybridSpawner / KubeSpawner, with its range over the pairs;
- API requests per spawn from simcluster's request log, told apart by User-Agent and kind: the hub's
  own requests, its watches' renewals (a WATCH and the LIST before it, which depend on time, not on
  spawns), and the hybridhub service's (its probes and watches, counted apart);
- the hub process's CPU seconds per spawn (psutil), and the service's, apart;
- where a spawn's time goes, from the hub's log (millisecond stamps): request -> pod create call,
  create call -> ``start()`` and JupyterHub's own readiness check done, -> route in the proxy; for
  HybridSpawner also the mean placement round trip (its ``hybridhub_placement_seconds`` metric).

With ``--profile DIR`` each hub also runs cProfile over the rounds only (on from a round's first
request to its last ready), written to DIR/stock.pstats and DIR/hybrid.pstats at the
end; its CPU figures are then the profiled ones, for comparing, not for reporting.

Then the time from an on-prem outage to the service's first EKS placement. Needs root.

With ``--gpu-mix N`` it measures instead, under ``--latency`` (0.2 s by default there) on both
clusters, N concurrent 1-GPU L40S spawns (8 fit on-prem, the rest burst to eks's cold elastic pool)
against one on-prem spawn and one burst spawn from the same cold pool, with the stdlib echo server
(tests/harness/echosu.py) in the pods.

    .venv/bin/python bench/spawns.py --singleuser echosu --users 10 --pairs 5
    .venv/bin/python bench/spawns.py --gpu-mix 20
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import re
import secrets
import signal
import statistics
import sys
import tempfile
import textwrap
import threading
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from simcluster.testing import SimProcess  # noqa: E402
from tests.harness.hub import HubProcess  # noqa: E402
from tests.harness.hybrid import wire  # noqa: E402
from tests.harness.service_api import call, wait_for_service  # noqa: E402

CLUSTERS = REPO / "tests" / "harness" / "clusters.yaml"


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


# ---------------------------------------------------------------------------------- paired rounds

PROXY_TOKEN = secrets.token_hex(16)
LOG_LINE = re.compile(r"^\[\w (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{3}) ")
CREATE = re.compile(r"Attempting to create pod jupyter-(\S+?),")
TOOK = re.compile(r"User (\S+?) took [\d.]+ seconds to start")


def routes(hub: HubProcess) -> set[str]:
    """The user routes in the hub's proxy now (configurable-http-proxy's API)."""
    req = urllib.request.Request(
        f"http://127.0.0.1:{hub.api_port}/api/routes", headers={"Authorization": f"token {PROXY_TOKEN}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        table = json.loads(resp.read())
    return {path.rstrip("/") for path in table if path.startswith("/user/")}


def log_times(hub: HubProcess, offset: int) -> tuple[dict[str, float], dict[str, float]]:
    """From the hub's log after byte ``offset``: when each user's pod create was called, and when
    JupyterHub logged the start done (unix time, from the log's local-time millisecond stamps)."""
    created: dict[str, float] = {}
    started: dict[str, float] = {}
    with hub.log_file.open("rb") as f:
        f.seek(offset)
        text = f.read().decode(errors="replace")
    for line in text.splitlines():
        stamp = LOG_LINE.match(line)
        if not stamp:
            continue
        when = dt.datetime.strptime(stamp.group(1), "%Y-%m-%d %H:%M:%S.%f").timestamp()
        if m := CREATE.search(line):
            created.setdefault(m.group(1), when)
        elif m := TOOK.search(line):
            started.setdefault(m.group(1), when)
    return created, started


def metric_sum_count(hub: HubProcess, name: str) -> tuple[float, float]:
    text = _metrics(hub)
    total = count = 0.0
    for line in text.splitlines():
        if line.startswith(f"{name}_sum"):
            total += float(line.split()[-1])
        elif line.startswith(f"{name}_count"):
            count += float(line.split()[-1])
    return total, count


def _metrics(hub: HubProcess) -> str:
    req = urllib.request.Request(
        f"http://127.0.0.1:{hub.hub_port}/hub/metrics", headers={"Authorization": f"token {hub.token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.read().decode()


def cpu_seconds(proc: psutil.Process | None) -> float:
    if proc is None:
        return 0.0
    try:
        times = proc.cpu_times()
    except psutil.NoSuchProcess:
        return 0.0
    return float(times.user + times.system)


def service_process(hub: HubProcess) -> psutil.Process | None:
    assert hub.proc is not None
    for child in psutil.Process(hub.proc.pid).children(recursive=True):
        if "service" in child.cmdline():
            return child
    return None


def classify(records: list[dict[str, Any]]) -> dict[str, int]:
    """A round's API requests by who sent them (User-Agent) and what they were: ``own`` a hub's
    requests for its spawns; ``renewals`` a hub's WATCHes and the LISTs before them; ``service``
    the hybridhub service's (probes, watches); ``other`` (kubectl, this script)."""
    out = {"own": 0, "renewals": 0, "service": 0, "other": 0}
    for r in records:
        agent = r.get("user_agent") or ""
        listing = r["method"] == "GET" and r["path"].rstrip("/").rsplit("/", 1)[-1] in ("pods", "events")
        if agent.startswith("hybridhub-service"):
            out["service"] += 1
        elif agent.startswith(("hybridhub-hub", "OpenAPI-Generator")):
            out["renewals" if r["watch"] or listing else "own"] += 1
        else:
            out["other"] += 1
    return out


def idle_cpu(hubs: list[HubProcess], seconds: float) -> list[float]:
    """Each hub's CPU seconds per second while no one spawns: watch renewals, polls, the service's
    questions. Measured for all hubs over the same seconds."""
    procs = [psutil.Process(hub.proc.pid) for hub in hubs]  # type: ignore[union-attr]
    before = [cpu_seconds(p) for p in procs]
    time.sleep(seconds)
    return [(cpu_seconds(p) - b) / seconds for p, b in zip(procs, before, strict=True)]


def profiled(out: Path) -> str:
    """Hub configuration that profiles the hub's CPU time between two SIGUSR2 (JupyterHub takes
    SIGUSR1), adding up over rounds, and writes the profile to ``out`` when the hub stops, with the
    garbage collector's time in those windows per generation (cProfile charges it to whatever function
    was running) and the number of objects it tracked at the end in ``out`` + ``.gc.json``."""
    return textwrap.dedent(
        f"""
        import atexit, cProfile, gc, json, signal, sys, time

        def _toggle(*_):
            profile = sys.bench_profile
            if profile.on:
                profile.disable()
            else:
                profile.enable()
            profile.on = not profile.on

        def _gc(phase, info):
            profile = sys.bench_profile
            if phase == "start":
                profile.gc_began = time.process_time()
            elif profile.on and profile.gc_began is not None:
                spent = profile.gc_seconds.setdefault(str(info["generation"]), [0, 0.0])
                spent[0] += 1
                spent[1] += time.process_time() - profile.gc_began

        def _dump():
            sys.bench_profile.dump_stats({str(out)!r})
            gc_figures = {{"collections": sys.bench_profile.gc_seconds, "objects": len(gc.get_objects())}}
            with open({str(out) + ".gc.json"!r}, "w") as f:
                json.dump(gc_figures, f)

        if not hasattr(sys, "bench_profile"):  # once, should JupyterHub read its configuration twice
            sys.bench_profile = cProfile.Profile(time.process_time)  # CPU, not wall, time
            sys.bench_profile.on = False
            sys.bench_profile.gc_began = None
            sys.bench_profile.gc_seconds = {{}}
            signal.signal(signal.SIGUSR2, _toggle)
            gc.callbacks.append(_gc)
            atexit.register(_dump)
        """
    )


def one_round(
    hub: HubProcess,
    sim: SimProcess,
    users: list[str],
    options: dict[str, object],
    *,
    hybrid: bool,
    idle: float = 0.0,
    profile: bool = False,
) -> dict[str, Any]:
    """Start ``users`` at once, until each is routed in the proxy; then stop them all."""
    for name in users:
        hub.create_user(name)
    # whose requests count: this hub's, and with HybridSpawner its service's (apart)
    agents = ("hybridhub-hub", "hybridhub-service") if hybrid else ("OpenAPI-Generator",)
    hub_proc = psutil.Process(hub.proc.pid)  # type: ignore[union-attr]
    service = service_process(hub) if hybrid else None
    placement_before = metric_sum_count(hub, "hybridhub_spawn_placement_seconds") if hybrid else (0.0, 0.0)
    offset = hub.log_file.stat().st_size
    before = marks(sim)
    requested: dict[str, float] = {}
    ready: dict[str, float] = {}
    done = threading.Event()

    def watch_routes() -> None:
        wanted = {f"/user/{u}": u for u in users}
        while not done.is_set() and len(ready) < len(users):
            now = time.time()
            for path in routes(hub):
                user = wanted.get(path)
                if user is not None:
                    ready.setdefault(user, now)
            time.sleep(0.05)

    def start(name: str) -> None:
        requested[name] = time.time()
        hub.start_server(name, options)

    if profile:
        hub_proc.send_signal(signal.SIGUSR2)  # on
    cpu0, svc0 = cpu_seconds(hub_proc), cpu_seconds(service)
    watcher = threading.Thread(target=watch_routes, daemon=True)
    watcher.start()
    with ThreadPoolExecutor(len(users)) as pool:
        list(pool.map(start, users))
    watcher.join(300)
    done.set()
    cpu1, svc1 = cpu_seconds(hub_proc), cpu_seconds(service)
    if profile:
        hub_proc.send_signal(signal.SIGUSR2)  # off
    if len(ready) < len(users):
        late = sorted(set(users) - set(ready))
        kept = Path(tempfile.gettempdir()) / f"bench-spawns-{late[0]}.log"
        kept.write_bytes(hub.log_file.read_bytes())
        about = [line for line in hub.log_text().splitlines() if any(u in line for u in late)]
        raise TimeoutError(f"not ready in 300 s: {late} (hub log kept in {kept})\n" + "\n".join(about[-40:]))
    records = [r for c, m in before.items() for r in sim.admin(c).requests(since=m)]
    counts = classify([r for r in records if (r.get("user_agent") or "").startswith(agents)])
    created, started = log_times(hub, offset)
    placement_after = metric_sum_count(hub, "hybridhub_spawn_placement_seconds") if hybrid else (0.0, 0.0)
    stop_all(hub, users)
    n = len(users)
    each = sorted(ready[u] - requested[u] for u in users)

    def phase(a: dict[str, float], b: dict[str, float]) -> float:
        return statistics.median(b[u] - a[u] for u in users if u in a and u in b)

    placed = placement_after[1] - placement_before[1]
    return {
        "wall": max(ready.values()) - min(requested.values()),
        "p50": statistics.median(each),
        "p95": each[int(0.95 * (n - 1))],
        "own_requests": counts["own"] / n,
        "renewals": counts["renewals"] / n,
        "service_requests": counts["service"] / n,
        "hub_cpu": (cpu1 - cpu0) / n,
        # less what the hub spends idle over as long: what the spawns themselves cost it
        "hub_cpu_net": (cpu1 - cpu0 - idle * (max(ready.values()) - min(requested.values()))) / n,
        "service_cpu": (svc1 - svc0) / n,
        "to_create": phase(requested, created),
        "create_to_started": phase(created, started),
        "started_to_ready": phase(started, ready),
        "placement": (placement_after[0] - placement_before[0]) / placed if placed else 0.0,
    }


def paired(
    stock: HubProcess, hybrid: HubProcess, sim: SimProcess, n: int, pairs: int, *, profile: bool = False
) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """``pairs`` rounds of each spawner, interleaved (stock first in even pairs, hybrid first in odd)."""
    for hub, label, options, is_hybrid in ((stock, "s", {}, False), (hybrid, "h", {"gpus": 0}, True)):
        one_round(hub, sim, [f"{label}warm"], options, hybrid=is_hybrid)  # reflectors, clients
    idle = dict(zip((False, True), idle_cpu([stock, hybrid], 30.0), strict=True))
    print(
        f"idle hub CPU: KubeSpawner {idle[False] * 1000:.1f} ms/s, HybridSpawner {idle[True] * 1000:.1f} ms/s"
    )
    out = []
    for i in range(pairs):
        order = [(stock, "s", {}, False), (hybrid, "h", {"gpus": 0}, True)]
        if i % 2:
            order.reverse()
        got: dict[bool, dict[str, Any]] = {}
        for hub, label, options, is_hybrid in order:
            users = [f"{label}{i}-{u}" for u in range(n)]
            got[is_hybrid] = one_round(
                hub, sim, users, options, hybrid=is_hybrid, idle=idle[is_hybrid], profile=profile
            )
        out.append((got[False], got[True]))
        s, h = got[False], got[True]
        print(
            f"pair {i + 1}: KubeSpawner {s['wall']:.2f} s, HybridSpawner {h['wall']:.2f} s, "
            f"ratio {h['wall'] / s['wall']:.2f}",
            flush=True,
        )
    return out


def report(n: int, rounds: list[tuple[dict[str, Any], dict[str, Any]]]) -> dict[str, Any]:
    def med(which: int, key: str) -> float:
        return statistics.median(r[which][key] for r in rounds)

    ratios = sorted(h["wall"] / s["wall"] for s, h in rounds)
    cpu_ratio = med(1, "hub_cpu") / med(0, "hub_cpu")
    net_ratio = med(1, "hub_cpu_net") / med(0, "hub_cpu_net")
    print(f"\n{n} users, {len(rounds)} interleaved pairs; medians over the rounds")
    header = ("spawner", "wall s", "p50 s", "p95 s", "own req", "renewals", "service req", "hub CPU s")
    print(f"{header[0]:<14}" + "".join(f"{h:>12}" for h in header[1:]) + "   (requests and CPU per spawn)")
    for name, i in (("KubeSpawner", 0), ("HybridSpawner", 1)):
        keys = ("wall", "p50", "p95", "own_requests", "renewals", "service_requests", "hub_cpu")
        fmt = ("{:.2f}", "{:.2f}", "{:.2f}", "{:.2f}", "{:.2f}", "{:.2f}", "{:.4f}")
        print(f"{name:<14}" + "".join(f"{f.format(med(i, k)):>12}" for f, k in zip(fmt, keys, strict=True)))
    print(
        f"wall-time ratio HybridSpawner / KubeSpawner: median {statistics.median(ratios):.2f} "
        f"(pairs {', '.join(f'{r:.2f}' for r in ratios)})"
    )
    print(
        f"hub CPU per spawn, HybridSpawner / KubeSpawner: {cpu_ratio:.2f}; less each hub's idle CPU over "
        f"the round ({med(0, 'hub_cpu_net'):.4f} s against {med(1, 'hub_cpu_net'):.4f} s): {net_ratio:.2f}; "
        f"service CPU per spawn "
        f"{med(1, 'service_cpu'):.4f} s (apart)"
    )
    print(
        "where a spawn's time goes (median per spawn, s): request -> pod create call -> start done "
        "(pod running, JupyterHub's check) -> route in the proxy"
    )
    for name, i in (("KubeSpawner", 0), ("HybridSpawner", 1)):
        extra = f"; placement round trip (mean) {med(1, 'placement') * 1000:.1f} ms" if i else ""
        print(
            f"  {name:<14} {med(i, 'to_create'):.3f} + {med(i, 'create_to_started'):.3f} + "
            f"{med(i, 'started_to_ready'):.3f}{extra}"
        )
    return {
        "ratio_median": statistics.median(ratios),
        "ratios": ratios,
        "cpu_ratio": cpu_ratio,
        "cpu_ratio_net": net_ratio,
        "rounds": rounds,
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
            spawn_all(hub, ["mixwarm"], one_l40s)  # clients, reflectors
            stop_all(hub, ["mixwarm"])
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
    parser.add_argument("--users", type=int, default=50, help="users started at once in each round")
    parser.add_argument("--pairs", type=int, default=5, help="interleaved rounds of each spawner")
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
    parser.add_argument(
        "--profile", type=Path, default=None, help="write each hub's cProfile of the rounds into this folder"
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
    # the proxy's API token, for this script to read its routes; at the proxy's default log level it
    # would log each of those reads into the hub's log
    proxy = (
        f'\nc.ConfigurableHTTPProxy.auth_token = "{PROXY_TOKEN}"\n'
        'c.ConfigurableHTTPProxy.command = [c.ConfigurableHTTPProxy.command[0], "--log-level", "warn"]\n'
    )
    with tempfile.TemporaryDirectory(prefix="bench-spawns-") as tmp:
        work = Path(tmp)
        with SimProcess(work / "sim", config=CLUSTERS) as sim:
            for cluster in ("onprem", "eks"):
                if args.latency:
                    sim.admin(cluster).set_faults(latency=args.latency)
            stock = HubProcess(
                work / "stock", sim, singleuser=args.singleuser, namespace="jupyterhub", extra_config=proxy
            )
            hybrid = HubProcess(work / "hybrid", sim, singleuser=args.singleuser, namespace="jupyterhub")
            # the service on its shipped schedule (probes, the leftover sweep), as operators run it
            hybrid.wiring = wire(hybrid, sim, work, spawner=True, quick=False)
            # JupyterHub's poll of each server at its default (30 s), as the stock hub has it, not
            # the tests' 2 s
            hybrid.extra_config += proxy + "c.Spawner.poll_interval = 30\n"
            if args.profile:
                args.profile.mkdir(parents=True, exist_ok=True)
                for hub, name in ((stock, "stock"), (hybrid, "hybrid")):
                    hub.extra_config += profiled(args.profile.resolve() / f"{name}.pstats")
            with stock, hybrid:
                wait_for_service(hybrid)
                rounds = paired(stock, hybrid, sim, args.users, args.pairs, profile=args.profile is not None)
                for cluster in ("onprem", "eks"):
                    sim.admin(cluster).clear_faults()
                detection = fallback_detection(hybrid, sim)
    print(
        f"command: .venv/bin/python bench/spawns.py --users {args.users} --pairs {args.pairs} "
        f"--latency {args.latency} --singleuser {args.singleuser}"
    )
    figures = report(args.users, rounds)
    print(f"on-prem down -> first eks placement: {detection:.2f} s (the service's default probe schedule)")
    print(json.dumps({**figures, "fallback_detection_s": detection}))
    return 0


if __name__ == "__main__":
    urllib.request.install_opener(urllib.request.build_opener())
    sys.exit(main())
