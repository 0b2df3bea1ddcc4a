"""Time Hera's create of a workflow through the service's Argo endpoint against the same create sent
straight to simcluster's Argo Server: the overhead of submitting runs through the service.

    .venv/bin/python bench/runs.py            # 40 pairs and 3 first submissions: about 25 s
    .venv/bin/python bench/runs.py --quick    # 5 pairs and 1 first submission: about 5 s

simcluster runs one on-prem cluster (simulated runtime, Argo on) in a subprocess. The service runs in
this process as ``HybridHubService.serve`` builds it, with the service's default settings: the fleet
(client, watches and probes of the cluster), a sqlite store, the run manager with its admission loop,
and the tornado app. The one stand-in is the hub's token check: a table answers it, as a warm
``HubAuth`` cache would.

Each pair submits the same one-step Hera workflow under a new name, once through each path, in
alternating order, and times ``WorkflowsService.create_workflow`` (sync Hera, in a thread, each path
with its own keep-alive session) two ways: until the workflow exists in simcluster, the issue's
measure, read from a watch of workflows by a process of its own (the moment its ADDED event
arrives), and until the call returns:

- **service**: the service's Argo endpoint (``{prefix}argo/``) with the user's hub token. When the call
  returns, the run is checked, in the registry, and exists held back (``spec.suspend``) in the user's
  run namespace, created as the user; a GET to simcluster right after the first create checks that.
- **direct**: simcluster's own Argo Server (``sim.argo_url("onprem")``, its admin token, its CA) into a
  plain namespace, the body unchanged.

The first submission of each user also makes the user's run namespace (quota, limits, RBAC, network
policy, runner service account); those are timed apart and left out of the ratio, as is the direct
path's first create (its first TLS connection). ``--gap`` seconds pass before each timed create, so
that what the one before set off (admission letting the run go, the controller's pod) is over.

The last table splits the service's time: ``RunManager.submit`` and, inside it, the store's round
trips and the create in the cluster, timed by wrapping those methods in this process only. See
bench/README.md for the figures measured.
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
import ssl
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

import aiohttp  # noqa: E402
from hera.workflows import Container, Workflow, WorkflowsService  # noqa: E402
from hera.workflows.models import Workflow as WorkflowModel  # noqa: E402
from hera.workflows.models import WorkflowCreateRequest  # noqa: E402
from tornado.httpserver import HTTPServer  # noqa: E402
from tornado.testing import bind_unused_port  # noqa: E402

from simcluster.testing import SimProcess  # noqa: E402
from spawner.core.clusters import parse_clusters  # noqa: E402
from spawner.core.labels import HUB_LABEL  # noqa: E402
from spawner.core.model import Health  # noqa: E402
from spawner.placement.reservations import ReservationBook  # noqa: E402
from spawner.service.api.argo import ArgoWorkflowsHandler  # noqa: E402
from spawner.service.app import HybridHubService  # noqa: E402
from spawner.service.capacity import fleet_capacity  # noqa: E402
from spawner.service.fleet import ClusterMember, Fleet  # noqa: E402
from spawner.service.metrics import Metrics  # noqa: E402
from spawner.service.runs.clusterio import UserApi  # noqa: E402
from spawner.service.runs.manager import RunManager  # noqa: E402
from spawner.service.store import Store  # noqa: E402
from spawner.service.store.runs import RunRegistry  # noqa: E402
from tests.spawner.service.inprocess import TokenTable, user  # noqa: E402

__all__ = ["Summary", "main", "parts_of", "ratio", "summarise"]

CLUSTER = "onprem"
DIRECT_NAMESPACE = "bench-direct"
SCOPES = ("custom:hybridhub:runs", "access:services!service=hybridhub")
# One cluster with room for the steps; only Argo of the controllers, so that simcluster does no other work.
CLUSTER_FILE = f"""
clusters:
  - name: {CLUSTER}
    role: onprem
    runtime: simulated
    namespaces: [default, {DIRECT_NAMESPACE}]
    jobs: false
    katib: false
    trainer: false
    trainingOperator: false
    timings: {{pod_start: 0.05, pod_stop: 0.05}}
    nodeGroups:
      - name: cpu
        count: 2
        capacity: {{cpu: "64", memory: 256Gi}}
"""


@dataclass(frozen=True)
class Summary:
    """Milliseconds of one path's timed creates."""

    n: int
    p50: float
    p90: float
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
    return Summary(len(ms), quantile(ms, 0.5), quantile(ms, 0.9), statistics.fmean(ms), min(ms), max(ms))


def ratio(service: Summary, direct: Summary) -> dict[str, float]:
    """Service over direct, for the mean and the median; above 1 the service is slower."""
    return {"mean": service.mean / direct.mean, "p50": service.p50 / direct.p50}


# ---------------------------------------------------------------------------- the service


@dataclass
class Running:
    """The service in this process, and what the bench reads of it."""

    manager: RunManager
    port: int
    prefix: str
    hub: str  # the hub instance, the value of the hub's label on what the service makes

    @property
    def argo_host(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}argo/"


def member(service: HybridHubService, sim: SimProcess) -> ClusterMember:
    """The cluster as the service follows it, with the service's settings (as in serve())."""
    (config,) = parse_clusters(
        [
            {
                "name": CLUSTER,
                "role": "onprem",
                "kubeconfig": str(sim.kubeconfig),
                "context": CLUSTER,
                "namespace": "jupyterhub",
                "hub_connect_url": "http://hub:8081",
                "home_storage": {"kind": "none"},
                "pools": [{"name": "cpu", "node_selector": {}}],
            }
        ]
    )
    (found,) = service.cluster_members([config])
    return found


@contextlib.asynccontextmanager
async def running_service(
    sim: SimProcess, work: Path, users: list[str], *, log: bool = False
) -> AsyncIterator[Running]:
    """HybridHubService.serve's objects, with a token table for the hub, on a free loopback port."""
    service = HybridHubService()
    service.log.setLevel(logging.INFO if log else logging.ERROR)  # it warns that the SSH page is off
    fleet = Fleet([member(service, sim)])
    book = ReservationBook(ttl=service.reservation_ttl)
    store = Store(f"sqlite:///{work / 'store.sqlite'}")
    await store.upgrade()
    manager = RunManager(RunRegistry(store), fleet, book, service.run_settings())
    await fleet.start()
    try:
        # submissions are placed by the inventory and the health, so both must be known first
        async with asyncio.timeout(30):
            while not (  # noqa: ASYNC110 - polled snapshots
                all(i.synced for i in fleet.inventories())
                and all(h.state == Health.HEALTHY for h in fleet.health().values())
            ):
                await asyncio.sleep(0.05)
        manager.start()
        capacity = fleet_capacity(fleet, book)
        metrics = Metrics(capacity, fleet.health, lambda: len(book))
        tokens = TokenTable({f"{name}-token": user(name, *SCOPES) for name in users})
        sock, port = bind_unused_port()
        server = HTTPServer(service.make_app(fleet, book, metrics, capacity, hub_auth=tokens, runs=manager))
        server.add_sockets([sock])
        try:
            yield Running(manager, port, service.service_prefix, service.hub_instance)
        finally:
            server.stop()
            await server.close_all_connections()
            await manager.stop()
    finally:
        await fleet.stop()
        await store.close()


# ---------------------------------------------------------------------------- where the time goes

# The parts of the submission under way in this task; the admission loop's own calls see None.
_SUBMISSION: ContextVar[dict[str, float] | None] = ContextVar("submission", default=None)
SUBMIT = "RunManager.submit, all of it"
PARTS = {
    (RunRegistry, "add"): "store: add the run",
    (RunRegistry, "update"): "store: mark it queued",
    (UserApi, "send"): "cluster: create as the user",
}


# The moments (time.perf_counter()) a create through the service passed, for the timeline to existence:
# the handler's start, submit's start, the registry add's start and end, the create's request sent.
_STAMPS: ContextVar[dict[str, float] | None] = ContextVar("stamps", default=None)
STEPS = {  # each step: from the moment before to this one
    "handler": "Hera's client and the request, to the handler",
    "submit": "the token check and the body, to submit",
    "add": "checks and placement",
    "added": "store: add the run",
    "post": "until the create is sent to the cluster",
    "exists": "the create in simcluster as the user, to its ADDED",
}


def _timed_part(label: str, call: Callable[..., Any]) -> Callable[..., Any]:
    async def timed_call(*args: Any, **kwargs: Any) -> Any:
        parts, stamps = _SUBMISSION.get(), _STAMPS.get()
        started = time.perf_counter()
        if stamps is not None and (label != PARTS[(UserApi, "send")] or args[1] == "POST"):
            stamps.setdefault({PARTS[(RunRegistry, "add")]: "add"}.get(label, "post"), started)
        try:
            return await call(*args, **kwargs)
        finally:
            if parts is not None:
                parts[label] = parts.get(label, 0.0) + (time.perf_counter() - started) * 1000
            if stamps is not None and label == PARTS[(RunRegistry, "add")]:
                stamps["added"] = time.perf_counter()

    return timed_call


@contextlib.contextmanager
def instrumented(
    submissions: list[dict[str, float]], stamps: dict[str, dict[str, float]] | None = None
) -> Iterator[None]:
    """Time each RunManager.submit and, inside it, its store round trips and cluster requests; one dict
    of milliseconds per submission is appended to ``submissions``. With ``stamps``, the moments each
    create through the Argo endpoint passed go there too, by workflow name (see STEPS). The methods
    are wrapped on their classes for the bench's life only: the production code has no timers of its
    own."""
    originals: dict[tuple[type, str], Any] = {
        (RunManager, "submit"): RunManager.submit,
        (ArgoWorkflowsHandler, "prepare"): ArgoWorkflowsHandler.prepare,
    }
    originals.update({key: getattr(*key) for key in PARTS})
    submit, prepare = RunManager.submit, ArgoWorkflowsHandler.prepare

    async def stamped_prepare(self: ArgoWorkflowsHandler) -> None:
        if stamps is not None and self.request.method == "POST":
            # prepare and post run in the handler's one task: what is set here, submit sees
            _STAMPS.set({"handler": time.perf_counter()})
        await prepare(self)

    async def timed_submit(self: RunManager, user: str, body: Any) -> Any:
        parts: dict[str, float] = {}
        token = _SUBMISSION.set(parts)
        started = time.perf_counter()
        marks = _STAMPS.get()
        if stamps is not None and marks is not None:
            marks["submit"] = started
            stamps[str(body["metadata"]["name"])] = marks
        try:
            return await submit(self, user, body)
        finally:
            parts[SUBMIT] = (time.perf_counter() - started) * 1000
            _SUBMISSION.reset(token)
            submissions.append(parts)

    try:
        for (owner, name), label in PARTS.items():
            setattr(owner, name, _timed_part(label, getattr(owner, name)))
        setattr(RunManager, "submit", timed_submit)  # noqa: B010 - the same form as the parts
        setattr(ArgoWorkflowsHandler, "prepare", stamped_prepare)  # noqa: B010
        yield
    finally:
        for (owner, name), original in originals.items():
            setattr(owner, name, original)


def timeline(
    starts: dict[str, float], exists: dict[str, float], stamps: dict[str, dict[str, float]]
) -> dict[str, Summary]:
    """Milliseconds of each step of the timed service creates, from the create's start (``starts``,
    perf_counter) to the workflow's ADDED event (``exists``, perf_counter), through the moments
    ``stamps`` holds by name; and the whole, which is the existence figure."""
    columns: dict[str, list[float]] = {label: [] for label in STEPS.values()}
    columns["from create() to existing, all of it"] = []
    for name, start in starts.items():
        moments = {**stamps[name], "exists": exists[name]}
        before = start
        for step, label in STEPS.items():
            columns[label].append((moments[step] - before) * 1000)
            before = moments[step]
        columns["from create() to existing, all of it"].append((exists[name] - start) * 1000)
    return {label: summarise(ms) for label, ms in columns.items()}


def parts_of(creates: list[float], submissions: list[dict[str, float]]) -> dict[str, Summary]:
    """Milliseconds of each part of the timed service creates, paired in order with their submissions:
    each labelled part, what else submit did, and what the create spent outside submit (Hera's client,
    HTTP, the token check, the handler)."""
    if len(creates) != len(submissions):
        raise ValueError(f"{len(creates)} creates but {len(submissions)} submissions")
    columns: dict[str, list[float]] = {label: [] for label in (SUBMIT, *PARTS.values())}
    columns["submit: the rest (checks, placement)"] = []
    columns["outside submit: Hera, HTTP, token, handler"] = []
    for create, parts in zip(creates, submissions, strict=True):
        for label in (SUBMIT, *PARTS.values()):
            columns[label].append(parts.get(label, 0.0))
        columns["submit: the rest (checks, placement)"].append(
            parts[SUBMIT] - sum(parts.get(label, 0.0) for label in PARTS.values())
        )
        columns["outside submit: Hera, HTTP, token, handler"].append(create - parts[SUBMIT])
    return {label: summarise(ms) for label, ms in columns.items()}


# ---------------------------------------------------------------------------- when a run exists


class Arrivals:
    """When each workflow came into being in simcluster: a cluster-wide watch of workflows, read by a
    process of its own (``--watch-workflows``), notes the ``time.perf_counter()`` at which each name's
    ADDED event arrives. Read in this process, even on a thread of its own, the event waited for the
    interpreter while the service (or Hera's thread) went on with its work after the create, about
    2 ms on the service's path. perf_counter is the system's monotonic clock, the same in both
    processes. The issue's measure, "from ``Workflow.create()`` to the object existing in
    simcluster", is that moment less the create's start; the watch's own delay (0.1-0.3 ms,
    bench/README.md) is in both paths alike."""

    def __init__(self, sim: SimProcess) -> None:
        url = sim.api_url(CLUSTER).rstrip("/") + "/apis/argoproj.io/v1alpha1/workflows"
        self._command = [sys.executable, str(Path(__file__).resolve()), "--watch-workflows", url, sim.ca_file]
        self._env = {**os.environ, WATCH_TOKEN: sim.token(CLUSTER)}
        self.at: dict[str, float] = {}
        self._open = threading.Event()
        self._lines: list[str] = []  # what the watcher wrote that was not an arrival: its error
        self._proc: subprocess.Popen[str] | None = None
        self._thread = threading.Thread(target=self._read, name="bench-arrivals", daemon=True)

    def __enter__(self) -> Arrivals:
        self._proc = subprocess.Popen(
            self._command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=self._env, text=True
        )
        self._thread.start()
        if not self._open.wait(30) or self._proc.poll() is not None:
            self.__exit__()
            raise SystemExit(f"the watch of workflows did not open in 30 s: {''.join(self._lines)[-2000:]}")
        return self

    def __exit__(self, *exc: object) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(10)
        self._thread.join(10)

    def _read(self) -> None:
        assert self._proc is not None and self._proc.stdout is not None
        for line in self._proc.stdout:
            match line.split():
                case ["open"]:
                    self._open.set()
                case ["ADDED", name, moment]:
                    self.at.setdefault(name, float(moment))
                case _:
                    self._lines.append(line)
        self._open.set()

    async def existed(self, starts: dict[str, float], within: float = 10.0) -> dict[str, float]:
        """Milliseconds from each name's create start to its ADDED event, once all have arrived."""
        async with asyncio.timeout(within):
            while missing := [n for n in starts if n not in self.at]:  # another thread's dict
                if self._proc is None or self._proc.poll() is not None:
                    raise SystemExit(
                        f"the watch of workflows ended: {''.join(self._lines)[-2000:]}; not seen: {missing}"
                    )
                await asyncio.sleep(0.01)
        return {name: (self.at[name] - start) * 1000 for name, start in starts.items()}


WATCH_TOKEN = "BENCH_RUNS_WATCH_TOKEN"


async def watch_workflows(url: str, ca_file: str) -> None:
    """The watcher process: "open" once the watch answered, then "ADDED <name> <perf_counter>" per
    new workflow, each line flushed as it is written."""
    headers = {"Authorization": f"Bearer {os.environ[WATCH_TOKEN]}"}
    timeout = aiohttp.ClientTimeout(total=None, connect=10, sock_read=None)
    async with (
        aiohttp.ClientSession(timeout=timeout) as session,
        session.get(
            url, params={"watch": "true"}, headers=headers, ssl=ssl.create_default_context(cafile=ca_file)
        ) as resp,
    ):
        resp.raise_for_status()
        print("open", flush=True)
        async for line in resp.content:
            event = json.loads(line)
            if event.get("type") == "ADDED":
                print("ADDED", event["object"]["metadata"]["name"], time.perf_counter(), flush=True)


# ---------------------------------------------------------------------------- the creates


def request(name: str, namespace: str) -> WorkflowCreateRequest:
    """The small workflow both paths create: one container step."""
    with Workflow(name=name, entrypoint="main", namespace=namespace) as w:
        Container(name="main", image="busybox:1.36", command=["echo", "hello"])
    built = w.build()
    if not isinstance(built, WorkflowModel):
        raise TypeError(f"Hera built a {type(built).__name__}, not a Workflow")
    return WorkflowCreateRequest(workflow=built)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


async def timed(create: Callable[[], Any]) -> tuple[float, float]:
    """When one sync create started (``time.perf_counter()``) and its milliseconds until it returned,
    run in a thread so that the service's loop goes on."""

    def run() -> tuple[float, float]:
        started = time.perf_counter()
        create()
        return started, (time.perf_counter() - started) * 1000

    return await asyncio.to_thread(run)


async def service_create(hera: WorkflowsService, name: str) -> tuple[float, float]:
    req = request(name, "default")  # "default" stands for the user's run namespace
    return await timed(lambda: hera.create_workflow(req, namespace="default"))


async def direct_create(hera: WorkflowsService, name: str) -> tuple[float, float]:
    req = request(name, DIRECT_NAMESPACE)
    return await timed(lambda: hera.create_workflow(req, namespace=DIRECT_NAMESPACE))


def check_made(direct: WorkflowsService, namespace: str, name: str, hub: str) -> str:
    """The service's run as simcluster has it, read straight from simcluster's Argo Server."""
    found = direct.get_workflow(name, namespace=namespace)
    labels = found.metadata.labels or {}
    if labels.get(HUB_LABEL) != hub:
        raise SystemExit(f"{namespace}/{name} exists in simcluster without the hub's label: {labels}")
    # admission may have let the run go between the create's answer and this GET
    held = "held back" if found.spec and found.spec.suspend else "already let go by admission"
    return f"GET {namespace}/{name} from simcluster right after its create: there, hub-labelled, {held}"


def names_in(direct: WorkflowsService, namespace: str) -> set[str]:
    listed = direct.list_workflows(namespace=namespace)
    return {w.metadata.name for w in listed.items or [] if w.metadata.name}


async def measure(
    args: argparse.Namespace,
    sim: SimProcess,
    work: Path,
    submissions: list[dict[str, float]],
    stamps: dict[str, dict[str, float]],
) -> dict[str, Any]:
    users = [f"bench-{i}" for i in range(args.first)]
    direct = WorkflowsService(
        host=sim.argo_url(CLUSTER),
        token=sim.token(CLUSTER),
        verify_ssl=sim.ca_file,  # type: ignore[arg-type]  # requests takes a CA file where Hera says bool
        namespace=DIRECT_NAMESPACE,
    )
    with Arrivals(sim) as arrivals:
        async with running_service(sim, work, users, log=args.log) as svc:
            via = {
                u: WorkflowsService(host=svc.argo_host, token=f"{u}-token", namespace="default")
                for u in users
            }
            made: dict[str, list[str]] = {"service": [], "direct": []}
            starts: dict[str, dict[str, float]] = {"service": {}, "direct": {}}

            async def one(path: str, who: str = users[0]) -> float:
                name = unique(f"bench-{path}")
                made[path].append(name)
                create = service_create(via[who], name) if path == "service" else direct_create(direct, name)
                starts[path][name], ms = await create
                return ms

            first_direct = await one("direct")
            first = {users[0]: await one("service", users[0])}
            verified = await asyncio.to_thread(
                check_made, direct, svc.manager.namespace(users[0]), made["service"][0], svc.hub
            )
            first.update({u: await one("service", u) for u in users[1:]})
            times: dict[str, list[float]] = {"service": [], "direct": []}
            for path in starts:  # the first creates are not in the ratio
                starts[path].clear()
            submissions.clear()  # nor in the breakdown
            for i in range(args.pairs):
                # alternate which path goes first, so that neither always follows the other's work
                for path in ("service", "direct") if i % 2 == 0 else ("direct", "service"):
                    # what a create sets off (admission letting the run go, the controller's pod) is
                    # over before the next create starts, so that it is charged to neither path
                    await asyncio.sleep(args.gap)
                    times[path].append(await one(path))
            # the first service create was checked by a GET; here every timed create of both paths is listed
            wanted_service = set(made["service"][len(users) :])
            listed_service = await asyncio.to_thread(names_in, direct, svc.manager.namespace(users[0]))
            listed_direct = await asyncio.to_thread(names_in, direct, DIRECT_NAMESPACE)
            missing = (wanted_service - listed_service) | (set(made["direct"]) - listed_direct)
            if missing:
                raise SystemExit(f"creates that returned but are not in simcluster: {sorted(missing)}")
            existed = {path: await arrivals.existed(names) for path, names in starts.items()}
            steps = timeline(starts["service"], arrivals.at, stamps)
    return {
        "first_direct_ms": first_direct,
        "first_service_ms": first,
        "verified": verified,
        "service_ms": times["service"],
        "direct_ms": times["direct"],
        "service_exists_ms": list(existed["service"].values()),
        "direct_exists_ms": list(existed["direct"].values()),
        "submissions_ms": list(submissions),
        "timeline": {label: vars(summary) for label, summary in steps.items()},
    }


# ---------------------------------------------------------------------------- the report


def print_parts(title: str, rows: dict[str, Summary]) -> None:
    """A table of milliseconds, one row per part: p50, mean and max."""
    width = max(len(title), *map(len, rows)) + 2
    head = f"{title:<{width}}{'p50 ms':>9}{'mean ms':>9}{'max ms':>9}"
    print(head)
    print("-" * len(head))
    for label, part in rows.items():
        print(f"{label:<{width}}{part.p50:>9.1f}{part.mean:>9.1f}{part.high:>9.1f}")
    print("-" * len(head))


def report(args: argparse.Namespace, figures: dict[str, Any]) -> None:
    print(f"command:  .venv/bin/python {shlex.join(['bench/runs.py', *args.argv])}")
    service = HybridHubService()
    print(
        f"service:  HybridHubService defaults (probes every {service.probe_interval:g} s, admission every "
        f"{service.run_admission_interval:g} s), sqlite store, the hub's token check from a table"
    )
    print(
        f"cluster:  simcluster, one on-prem cluster, simulated runtime; python {platform.python_version()} "
        f"on {platform.machine()}, {os.cpu_count()} CPUs; {args.gap:g} s between creates"
    )
    print()
    print("first create of each path, not in the ratio:")
    for name, ms in figures["first_service_ms"].items():
        print(f"  service, {name}'s first run (makes its run namespace)  {ms:8.1f} ms")
    print(f"  direct, the first create (a new TLS connection)        {figures['first_direct_ms']:8.1f} ms")
    print()
    ratios = {}
    for measure, key, title in (
        (
            "exists",
            "_exists_ms",
            "from create() to the workflow existing in simcluster (its watch's ADDED event)",
        ),
        ("returns", "_ms", "from create() until it returns"),
    ):
        rows = {"service (Argo endpoint)": summarise(figures["service" + key])}
        rows["direct (simcluster Argo)"] = summarise(figures["direct" + key])
        print(title + ":")
        head = f"{'path':<26}{'n':>4}{'p50 ms':>9}{'p90 ms':>9}{'mean ms':>9}{'min ms':>9}{'max ms':>9}"
        print(head)
        print("-" * len(head))
        for label, s in rows.items():
            print(f"{label:<26}{s.n:>4}{s.p50:>9.1f}{s.p90:>9.1f}{s.mean:>9.1f}{s.low:>9.1f}{s.high:>9.1f}")
        print("-" * len(head))
        svc, direct = rows.values()
        r = ratios[measure] = ratio(svc, direct)
        print(
            f"service/direct: mean {r['mean']:.2f}, p50 {r['p50']:.2f} (aim: at most 1.05); "
            f"added mean {svc.mean - direct.mean:+.1f} ms, p50 {svc.p50 - direct.p50:+.1f} ms"
        )
        print()
    print(f"verified: {figures['verified']}")
    print("          and every create of both paths listed in simcluster at the end")
    print()
    steps = {label: Summary(**step) for label, step in figures["timeline"].items()}
    print_parts("the service path until the workflow exists", steps)
    print()
    parts = parts_of(figures["service_ms"], figures["submissions_ms"])
    print_parts("where a service create spends its time", parts)
    if args.json:
        out = dict(figures, ratio=ratios)
        out["parts"] = {k: vars(v) for k, v in parts.items()}
        args.json.write_text(json.dumps(out, indent=2))


async def run(args: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory(prefix="bench-runs-") as tmp:
        work = Path(tmp)
        (work / "clusters.yaml").write_text(CLUSTER_FILE)
        with SimProcess(work / "sim", config=work / "clusters.yaml") as sim:
            submissions: list[dict[str, float]] = []
            stamps: dict[str, dict[str, float]] = {}
            with instrumented(submissions, stamps):
                async with asyncio.timeout(args.timeout):
                    figures = await measure(args, sim, work, submissions, stamps)
    report(args, figures)
    return 0


def main(argv: list[str] | None = None) -> int:
    given = sys.argv[1:] if argv is None else argv
    if given[:1] == ["--watch-workflows"]:  # the watcher process of Arrivals
        url, ca_file = given[1:]
        with contextlib.suppress(KeyboardInterrupt):
            asyncio.run(watch_workflows(url, ca_file))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, help="timed creates per path (default 40, --quick 5)")
    parser.add_argument("--first", type=int, help="users whose first run is timed (default 3, --quick 1)")
    parser.add_argument("--quick", action="store_true", help="5 pairs and one first submission")
    parser.add_argument(
        "--gap", type=float, default=0.2, help="seconds between two timed creates (default 0.2)"
    )
    parser.add_argument("--timeout", type=float, default=300.0, help="seconds the whole run may take")
    parser.add_argument("--json", type=Path, help="write the figures as JSON too")
    parser.add_argument("--log", action="store_true", help="show the service's log (warnings are hidden)")
    args = parser.parse_args(argv)
    args.pairs = args.pairs if args.pairs is not None else (5 if args.quick else 40)
    args.first = args.first if args.first is not None else (1 if args.quick else 3)
    if args.pairs < 2 or args.first < 1:
        parser.error("--pairs must be at least 2 and --first at least 1")
    logging.basicConfig(
        level=logging.INFO if args.log else logging.ERROR, format="%(asctime)s %(name)s %(message)s"
    )
    args.argv = sys.argv[1:] if argv is None else argv
    return asyncio.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
