"""Runs users submit: checked, registered, created held back in a cluster as the user, let go by admission."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Protocol

from kubernetes_asyncio.client import ApiClient

from spawner.core.labels import HUB_LABEL, RUNS_USER_ANNOTATION
from spawner.core.model import ClusterHealth, ClusterInventory, Health, Reservation, Role
from spawner.inventory.index import ServerLocation
from spawner.placement.reservations import ReservationBook
from spawner.service.runs import admission
from spawner.service.runs.budget import CloudBudget
from spawner.service.runs.clusterio import COLLECTIONS, ClusterError, UserApi, collection_path, object_path
from spawner.service.runs.manifests import RUN_POD_LABELS, generated_name, placeholder, prepare, wanted
from spawner.service.runs.metering import CloudMeter
from spawner.service.runs.moves import ClusterRewrite, Move, for_cluster, plan_move, restarts, unmovable
from spawner.service.runs.namespaces import RunNamespaceSettings, build, impersonated_user, namespace_name
from spawner.service.runs.podspec import PodGpus
from spawner.service.runs.policy import Gang, Refusal, Run, RunLimits, check_run, unchecked_run
from spawner.service.runs.provision import ProvisionError, ensure, remove
from spawner.service.store.runs import (
    ADMITTED,
    DELETING,
    QUEUED,
    REFUSED,
    SUBMITTING,
    DuplicateRun,
    MoveRecord,
    NewRun,
    RunRecord,
    RunRegistry,
)

__all__ = ["RunError", "RunManager", "RunSettings", "Waiting"]

log = logging.getLogger(__name__)


class RunError(Exception):
    """A request about a run that the service answers with ``status``; ``reason`` is Kubernetes'
    word for it (NotFound, AlreadyExists, Forbidden, Invalid...)."""

    def __init__(self, status: int, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.reason = reason


class ClusterAccess(Protocol):
    """What the manager needs of the fleet: snapshots and each cluster's API client."""

    def inventories(self) -> list[ClusterInventory]: ...

    def health(self) -> dict[str, ClusterHealth]: ...

    def api_client(self, cluster: str) -> ApiClient: ...

    def counts_pod(self, cluster: str, namespace: str, name: str) -> bool: ...

    def gpu_pods(self, cluster: str) -> tuple[tuple[str, str, int], ...]: ...

    def notebook_pods(self) -> list[tuple[str, ServerLocation]]: ...


@dataclass(frozen=True)
class RunSettings:
    """What an operator chooses for runs (HybridHubService's run_* settings)."""

    namespaces: RunNamespaceSettings = field(default_factory=RunNamespaceSettings)
    # the most GPUs one run's gang may hold at once
    max_gpus: int = 8
    # seconds a run with cluster auto may wait for on-prem before it goes to the cloud
    default_max_wait: float = 1800.0
    # seconds one cluster request may take
    request_timeout: float = 10.0
    # seconds between admission passes (a submission or a deletion also wakes it)
    admission_interval: float = 2.0
    # seconds the GPUs of a run just let go stay held, until its pods show in the inventory
    admission_hold: float = 60.0
    # seconds the oldest waiting run of a cluster may be passed by smaller ones before it blocks them
    head_hold: float = 600.0
    # seconds a followed log may stay silent before its stream ends
    log_idle_timeout: float = 300.0
    # seconds between sweeps for runs in the clusters that the registry does not know (made by a
    # create that a hung link delivered after the user deleted the run); 0 turns the sweep off
    orphan_sweep_interval: float = 60.0
    # seconds an unknown run must have existed before the sweep deletes it, so that a create still
    # on its way to the registry is never taken for an orphan
    orphan_grace: float = 120.0
    # seconds between sweeps for run namespaces of users the hub no longer has; 0 turns it off
    user_sweep_interval: float = 600.0
    # test-only: False sends runs the service's policy refuses on to the clusters, to show that
    # their RBAC, Pod Security admission and quota refuse them too; never set it in a deployment
    enforce_policy: bool = True
    # clusters that run Kueue: the LocalQueue that admits runs there, by cluster
    kueue_queues: Mapping[str, str] = field(default_factory=dict)
    # per cluster, what changes in a run made there: its image registry and artifact repository
    cluster_rewrites: Mapping[str, ClusterRewrite] = field(default_factory=dict)
    # seconds a run that moved stays before it may move again, unless its cluster is down
    move_settle: float = 30.0
    # cloud GPU-hours per period, per user and team; past them, runs wait for on-prem
    cloud_budget: CloudBudget = field(default_factory=CloudBudget)

    def rewrite(self, cluster: str) -> ClusterRewrite:
        """What changes in a run made in ``cluster``, Kueue's queue included."""
        found = self.cluster_rewrites.get(cluster, ClusterRewrite())
        return replace(found, kueue_queue=self.kueue_queues.get(cluster))


@dataclass(frozen=True)
class Waiting:
    """Why a queued run waits, as the last admission pass saw it."""

    cluster: str
    position: int
    expected_wait: float | None
    reason: str


def _gang(record: RunRecord) -> Gang:
    return Gang(tuple(PodGpus(gpus, product) for gpus, product in record.gang))


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _cluster_answer(exc: ClusterError, cluster: str) -> RunError:
    """A cluster's refusal as the service's answer: the cluster's status and message, or 503/504."""
    if exc.status is None:
        return RunError(504, f"cluster {cluster} did not answer: {exc}", "Timeout")
    if exc.status >= 500 or exc.status == 0:
        return RunError(503, f"cluster {cluster} failed: {exc}", "ServiceUnavailable")
    reason = str(exc.body.get("reason") or "")
    return RunError(exc.status, f"cluster {cluster} refused it: {exc}", reason)


class RunManager:
    """Owns the admission loop. Every public coroutine answers or raises RunError."""

    def __init__(
        self,
        registry: RunRegistry,
        fleet: ClusterAccess,
        book: ReservationBook,
        settings: RunSettings,
        *,
        clock: Callable[[], float] = time.time,
        hub_users: Callable[[], Awaitable[frozenset[str] | None]] | None = None,
        meter: CloudMeter | None = None,
        on_move: Callable[[str, str, bool, float], None] | None = None,
    ) -> None:
        self.registry = registry
        # cloud GPU use by user, and the cloud budget read against it (None: neither)
        self.meter = meter
        # told of each move: (source, target, back to on-prem, seconds the run had waited)
        self.on_move = on_move
        # per cluster, the runs waiting there and the longest wait, in seconds (the last pass's view)
        self.lag: dict[str, tuple[int, float]] = {}
        # per cluster and GPU product, what a run of 1, 2, 4, 8 GPUs placed now would wait there, in
        # seconds (admission.product_waits, the last pass's view; None: none yet)
        self.product_lag: dict[str, dict[str, list[tuple[int, float | None]]]] | None = None
        self.fleet = fleet
        self.book = book
        self.settings = settings
        self.clock = clock
        self._task: asyncio.Task[None] | None = None
        self._wake = asyncio.Event()
        self._ensured: set[tuple[str, str]] = set()  # (cluster, user) whose namespace is made
        self._in_flight: set[int] = set()  # registry ids a request of this process is creating
        self.waiting: dict[int, Waiting] = {}  # the last admission pass's view of each queued run
        # GPUs held for runs just let go, until their GPU pods are bound: run id -> (record, hold ids)
        self._holding: dict[int, tuple[RunRecord, tuple[str, ...]]] = {}
        # the runs not yet let go, by registry id: (cluster, gang), for placement's view of the queue;
        # refreshed by each admission pass, added to by each submission
        self._queue: dict[int, tuple[str, Gang]] | None = None
        self._swept_at: float | None = None  # when the last orphan sweep ran (self.clock)
        # every user of the hub, or None when the hub does not answer: for the user sweep
        self.hub_users = hub_users
        self._users_swept_at: float | None = None
        self._sweeping: asyncio.Task[None] | None = None  # the sweeps under way, beside the passes
        # the phase last seen of each started run with restart-on-failover, by registry id: whether
        # it had finished is what decides a restart once its cluster is down and cannot be asked
        self._phases: dict[int, str] = {}
        # why runs that would move stay where they are, by registry id (the last pass's view)
        self._stays: dict[int, str] = {}

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="run-admission")

    async def stop(self) -> None:
        for task in (self._task, self._sweeping):
            if task is not None:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
        self._task = self._sweeping = None

    def wake(self) -> None:
        self._wake.set()

    async def _loop(self) -> None:
        while True:
            try:
                await self.pass_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("run admission pass failed; trying again")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(self.settings.admission_interval):
                    await self._wake.wait()

    # ------------------------------------------------------------------ names and clients

    def namespace(self, user: str) -> str:
        return namespace_name(self.settings.namespaces, user)

    def user_api(self, cluster: str, user: str) -> UserApi:
        impersonate = impersonated_user(self.settings.namespaces, user)
        return UserApi(self.fleet.api_client(cluster), impersonate, timeout=self.settings.request_timeout)

    def service_api(self, cluster: str) -> UserApi:
        """The service's own identity (no impersonation), for what admission does."""
        return UserApi(self.fleet.api_client(cluster), None, timeout=self.settings.request_timeout)

    async def _ensure_namespace(self, cluster: str, user: str) -> None:
        if (cluster, user) in self._ensured:
            return
        try:
            await ensure(
                self.fleet.api_client(cluster),
                build(self.settings.namespaces, user),
                total_timeout=self.settings.request_timeout * 2,
                request_timeout=self.settings.request_timeout,
            )
        except ProvisionError as exc:
            status = 504 if exc.status is None else 503
            raise RunError(status, f"cluster {cluster}: your run namespace could not be made: {exc}") from exc
        self._ensured.add((cluster, user))

    # ------------------------------------------------------------------ submit

    def _snapshot(self) -> tuple[list[ClusterInventory], dict[str, ClusterHealth], tuple[Reservation, ...]]:
        """Inventories, health and the live reservations, whose expiry is moved from the book's clock
        to the manager's (wall time, which the registry's submission times are on)."""
        shift = self.clock() - self.book.clock()
        held = tuple(replace(r, expires=r.expires + shift) for r in self.book.active())
        return self.fleet.inventories(), self.fleet.health(), held

    async def submit(self, user: str, body: object) -> dict[str, Any]:
        """Check, register and create a run held back; the object as the cluster (or the queue) has it."""
        namespace = self.namespace(user)
        checked = check_run(
            body,
            user_namespace=namespace,
            runner_service_account=self.settings.namespaces.runner_service_account,
            limits=RunLimits(max_gpus=self.settings.max_gpus),
        )
        if isinstance(checked, Refusal) and not self.settings.enforce_policy:
            checked = unchecked_run(body, namespace)
        if isinstance(checked, Refusal):
            status = 403 if checked.field == "metadata.namespace" else 422
            raise RunError(status, checked.message, "Forbidden" if status == 403 else "Invalid")
        if not isinstance(body, dict):  # check_run accepts objects only; this keeps mypy sure of it
            raise RunError(400, "a run is a JSON object", "BadRequest")
        inventories, health, held = self._snapshot()
        want = wanted(body, [i.cluster for i in inventories], self.settings.default_max_wait)
        if isinstance(want, str):
            raise RunError(422, want, "Invalid")
        name = checked.name or generated_name(checked.generate_name or "run-")
        choice = admission.choose_cluster(
            admission.QueuedRun(
                key=f"{user}/{checked.kind}/{name}",
                user=user,
                gang=checked.gang,
                cluster=want.cluster,
                max_wait=want.max_wait,
                submitted=self.clock(),
            ),
            inventories,
            health,
            held,
            self.clock(),
            queued_ahead=await self._queued_gangs(),
            cloud_closed=await self.cloud_closed(user),
        )
        if choice.cluster is None:
            raise RunError(503, f"no cluster can take the run: {choice.reason}", "ServiceUnavailable")
        cluster = choice.cluster
        manifest = prepare(
            body,
            checked,
            name,
            hub_instance=self.settings.namespaces.hub_instance,
            runner_service_account=self.settings.namespaces.runner_service_account,
        )
        try:
            record = await self.registry.add(
                NewRun(
                    user=user,
                    kind=checked.kind,
                    name=name,
                    namespace=checked.namespace,
                    wanted=want.cluster,
                    max_wait=want.max_wait,
                    cluster=cluster,
                    gang=tuple((p.gpus, p.product) for p in checked.gang.pods),
                    manifest=manifest,
                    reason=choice.reason,
                )
            )
        except DuplicateRun:
            raise RunError(409, f'{checked.kind.lower()}s "{name}" already exists', "AlreadyExists") from None
        if is_down(health, cluster):
            # a run pinned to a cluster that is down waits in the queue; a pass creates it there
            # once the cluster is back
            log.info("run %s %s/%s waits for %s, which is down", checked.kind, user, name, cluster)
            return placeholder(record.manifest, created=_iso(record.submitted), reason=choice.reason)
        if self._queue is not None:
            self._queue[record.id] = (cluster, checked.gang)
        self._in_flight.add(record.id)
        try:
            return await self._create(record, checked)
        finally:
            self._in_flight.discard(record.id)
            self.wake()

    def queued_now(self) -> dict[str, list[Gang]]:
        """The gangs waiting in each cluster's queue, as the last admission pass read them with the
        runs submitted since (empty before the first pass): for the lag that api/capacity shows."""
        gangs: dict[str, list[Gang]] = {}
        for cluster, gang in (self._queue or {}).values():
            gangs.setdefault(cluster, []).append(gang)
        return gangs

    async def _queued_gangs(self) -> dict[str, list[Gang]]:
        """The gangs waiting in each cluster's queue, oldest first: as the last admission pass read
        them, with the runs submitted since; from the store only before the first pass."""
        if self._queue is None:
            self._queue = {}
            for n, (where, pods) in enumerate(await self.registry.queued_gangs()):
                self._queue[-n - 1] = (where or "", Gang(tuple(PodGpus(g, p) for g, p in pods)))
        gangs: dict[str, list[Gang]] = {}
        for cluster, gang in self._queue.values():
            gangs.setdefault(cluster, []).append(gang)
        return gangs

    async def _create(self, record: RunRecord, run: Run | None, *, moved: bool = False) -> dict[str, Any]:
        """Create ``record`` in its cluster held back; a kind that cannot be held waits in the queue.
        ``run`` is None when a pass finishes a submission that a crash or a hung cluster left, or makes
        a run that ``moved``: one the cluster refuses stays, refused, so that its user reads why."""
        cluster = record.cluster or ""
        suspendable = run.suspendable if run is not None else record.kind != "Experiment"
        if not suspendable:
            await self.registry.update(record.id, expect_state=SUBMITTING, state=QUEUED)
            return placeholder(record.manifest, created=_iso(record.submitted), reason=record.reason)
        try:
            created = await self._post(cluster, record)
        except RunError as exc:
            if exc.status < 500:
                await self.registry.remove(record.id)
            raise
        except ClusterError as exc:
            if exc.status == 409 and run is None:
                # the first try reached the cluster after all (a hung link delivers late)
                return await self._adopt(record)
            if exc.status is not None and exc.status < 500 and (moved or await self._moved(record.id)):
                await self.registry.update(
                    record.id,
                    state=REFUSED,
                    reason=f"cluster {cluster} refused it after it moved there: {exc}",
                )
            elif exc.status is not None and exc.status < 500:
                # refused by the cluster's RBAC, Pod Security or quota: nothing was made
                await self.registry.remove(record.id)
            # unanswered or failed: the registry keeps the run; a later pass makes sure it exists once
            raise _cluster_answer(exc, cluster) from exc
        uid = (created.get("metadata") or {}).get("uid")
        await self.registry.update(record.id, expect_state=SUBMITTING, state=QUEUED, uid=uid)
        log.info("run %s %s/%s created held back in %s", record.kind, record.user, record.name, cluster)
        return created

    async def _post(self, cluster: str, record: RunRecord) -> dict[str, Any]:
        """Create the run's object as the user, its namespace made first if this process has not made
        it yet, or made again if it went (a 404 for the namespace)."""
        path = collection_path(record.kind, record.namespace)
        manifest = for_cluster(record.manifest, record.kind, self.settings.rewrite(cluster))
        await self._ensure_namespace(cluster, record.user)
        try:
            return await self.user_api(cluster, record.user).send("POST", path, manifest)
        except ClusterError as exc:
            if exc.status != 404 or (exc.body.get("details") or {}).get("kind") != "namespaces":
                raise
        self._ensured.discard((cluster, record.user))
        await self._ensure_namespace(cluster, record.user)
        return await self.user_api(cluster, record.user).send("POST", path, manifest)

    async def _adopt(self, record: RunRecord) -> dict[str, Any]:
        """Take the object a submission made in its cluster as the run, when it is the service's own
        (the hub's label); else the registry lets the name go and the user hears of the conflict."""
        cluster = record.cluster or ""
        try:
            found = await self.user_api(cluster, record.user).send(
                "GET", object_path(record.kind, record.namespace, record.name)
            )
        except ClusterError as exc:
            raise _cluster_answer(exc, cluster) from exc
        labels = (found.get("metadata") or {}).get("labels") or {}
        if labels.get(HUB_LABEL) != self.settings.namespaces.hub_instance:
            await self.registry.remove(record.id)
            raise RunError(
                409, f"{record.kind} {record.name} exists in {cluster}, not made by this hub", "AlreadyExists"
            )
        uid = (found.get("metadata") or {}).get("uid")
        await self.registry.update(record.id, expect_state=SUBMITTING, state=QUEUED, uid=uid)
        log.info("run %s %s/%s found made in %s", record.kind, record.user, record.name, cluster)
        return found

    # ------------------------------------------------------------------ read

    async def _record(self, user: str, kind: str, name: str) -> RunRecord:
        record = await self.registry.get(user, kind, name)
        if record is None:
            raise RunError(404, f'{kind.lower()}s "{name}" not found', "NotFound")
        return record

    def _placeholder(self, record: RunRecord) -> dict[str, Any]:
        waiting = self.waiting.get(record.id)
        reason = waiting.reason if waiting is not None else record.reason
        return placeholder(
            record.manifest, created=_iso(record.submitted), reason=reason, refused=record.state == REFUSED
        )

    async def get(self, user: str, kind: str, name: str, *, again: bool = True) -> dict[str, Any]:
        """The run as its cluster has it; read from the one cluster the registry names."""
        record = await self._record(user, kind, name)
        cluster = record.cluster or ""
        # a run the service has not let go is held back wherever it is: while its cluster does not
        # answer, the registry says all there is to say, and the SDKs' wait() goes on waiting
        held_back = record.state in (SUBMITTING, QUEUED)
        if record.uid is None or (held_back and is_down(self.fleet.health(), cluster)):
            return self._placeholder(record)
        try:
            return await self.user_api(cluster, user).send("GET", object_path(kind, record.namespace, name))
        except ClusterError as exc:
            if held_back and (exc.status is None or exc.status >= 500):
                return self._placeholder(record)
            if exc.status == 404 and record.state != DELETING:
                # deleted in the cluster behind the service's back (or with its namespace): forget it,
                # unless it moved while it was read, when it is read again where it is now
                if not await self.registry.remove(record.id, uid=record.uid) and again:
                    return await self.get(user, kind, name, again=False)
                raise RunError(404, f'{kind.lower()}s "{name}" not found', "NotFound") from exc
            raise _cluster_answer(exc, cluster) from exc

    async def list_runs(
        self, user: str, kind: str, label_selector: str | None = None
    ) -> list[dict[str, Any]]:
        """The user's runs of ``kind``: one LIST per cluster that the registry says holds some, and the
        queued ones no cluster holds yet. A cluster that does not answer fails the request."""
        records = await self.registry.runs(user=user, kinds=[kind])
        items: list[dict[str, Any]] = []
        by_cluster: dict[str, set[str]] = {}
        for record in records:
            if record.uid is None:
                if label_selector is None:
                    items.append(self._placeholder(record))
            else:
                by_cluster.setdefault(record.cluster or "", set()).add(record.name)
        for cluster, names in sorted(by_cluster.items()):
            query = {"labelSelector": label_selector} if label_selector else None
            try:
                answer = await self.user_api(cluster, user).send(
                    "GET", collection_path(kind, self.namespace(user)), query=query
                )
            except ClusterError as exc:
                raise _cluster_answer(exc, cluster) from exc
            items += [o for o in answer.get("items") or [] if (o.get("metadata") or {}).get("name") in names]
        return items

    async def pods(self, user: str, record: RunRecord, label_selector: str) -> list[dict[str, Any]]:
        """The pods of the run's namespace in its cluster that match ``label_selector``."""
        if record.uid is None or record.state in (SUBMITTING, QUEUED):
            # held back: it has no pods, wherever it is and whether or not its cluster answers
            return []
        cluster = record.cluster or ""
        try:
            answer = await self.user_api(cluster, user).send(
                "GET", f"/api/v1/namespaces/{record.namespace}/pods", query={"labelSelector": label_selector}
            )
        except ClusterError as exc:
            raise _cluster_answer(exc, cluster) from exc
        return list(answer.get("items") or [])

    async def pod_log(
        self,
        user: str,
        cluster: str,
        namespace: str,
        pod: str,
        container: str | None,
        *,
        follow: bool,
        tail_lines: int | None = None,
    ) -> AsyncIterator[bytes]:
        """The lines of one pod's log, read as the user; with ``follow``, until the pod ends or the log
        is quiet for log_idle_timeout seconds."""
        query: dict[str, str] = {}
        if container:
            query["container"] = container
        if follow:
            query["follow"] = "true"
        if tail_lines is not None:
            query["tailLines"] = str(tail_lines)
        path = f"/api/v1/namespaces/{namespace}/pods/{pod}/log"
        try:
            async for line in self.user_api(cluster, user).lines(
                path, query, idle_timeout=self.settings.log_idle_timeout
            ):
                yield line
        except ClusterError as exc:
            raise _cluster_answer(exc, cluster) from exc

    async def user_clusters(self, user: str) -> list[str]:
        """The clusters that hold some of the user's runs that were let go, by the registry: only those
        have pods, trials or events. A cluster that is down is left out, so that what the others hold
        is still listed while it is (a run held back there has nothing of that kind)."""
        health = self.fleet.health()
        runs = await self.registry.runs(user=user, states=[ADMITTED])
        return sorted({r.cluster for r in runs if r.uid and r.cluster and not is_down(health, r.cluster)})

    async def read(
        self, cluster: str, path: str, query: Mapping[str, str] | None = None, *, user: str | None
    ) -> dict[str, Any]:
        """One GET in ``cluster``, as ``user`` (None: as the service, for what every user may read)."""
        api = self.user_api(cluster, user) if user is not None else self.service_api(cluster)
        try:
            return await api.send("GET", path, query=query)
        except ClusterError as exc:
            raise _cluster_answer(exc, cluster) from exc

    def reachable_clusters(self) -> list[str]:
        """Every cluster that is not DOWN, on-prem first."""
        health = self.fleet.health()
        inventories = sorted(self.fleet.inventories(), key=lambda i: (i.role.value != "onprem", i.cluster))
        return [i.cluster for i in inventories if not is_down(health, i.cluster)]

    async def record(self, user: str, kind: str, name: str) -> RunRecord:
        return await self._record(user, kind, name)

    async def history(self, record: RunRecord) -> list[MoveRecord]:
        """Where the run waited before it went where it is: its moves, oldest first."""
        return await self.registry.moves(run_ids=[record.id])

    async def overview(self, user: str) -> list[dict[str, Any]]:
        """The user's runs of every kind across clusters, oldest first: phase, cluster, GPUs, age,
        why there, and while waiting the queue position and expected wait. One LIST per cluster and
        kind that holds some; a cluster that does not answer shows its runs' phase as Unknown."""
        records = await self.registry.runs(user=user)
        history: dict[int, list[dict[str, Any]]] = {}
        for m in await self.registry.moves(run_ids=[r.id for r in records]):
            history.setdefault(m.run_id, []).append(
                {"from": m.source, "to": m.target, "at": _iso(m.at), "reason": m.reason}
            )
        live: dict[tuple[str, str], dict[str, dict[str, Any]]] = {}
        wanted_lists = {(r.cluster or "", r.kind) for r in records if r.uid is not None}

        async def listed(cluster: str, kind: str) -> None:
            try:
                answer = await self.user_api(cluster, user).send(
                    "GET", collection_path(kind, self.namespace(user))
                )
            except ClusterError as exc:
                log.info("runs of %s in %s: %s", user, cluster, exc)
                return
            live[(cluster, kind)] = {str(o["metadata"]["name"]): o for o in answer.get("items") or []}

        # at once: a cluster whose link hangs costs one timeout, not one per kind
        await asyncio.gather(*(listed(cluster, kind) for cluster, kind in sorted(wanted_lists)))
        now = datetime.now(UTC)
        out: list[dict[str, Any]] = []
        for r in records:
            row: dict[str, Any] = {
                "kind": r.kind,
                "name": r.name,
                "cluster": r.cluster,
                "wanted": r.wanted,
                "state": r.state,
                "gpus": r.gpus,
                "submitted": _iso(r.submitted),
                "age": round((now - r.submitted).total_seconds(), 1),
                "reason": r.reason,
                "moves": history.get(r.id, []),
            }
            if r.uid is None:
                row["phase"] = "Failed" if r.state == REFUSED else "Queued"
            else:
                found = live.get((r.cluster or "", r.kind))
                obj = None if found is None else found.get(r.name)
                row["phase"] = "Unknown" if obj is None else phase_of(obj)
            if r.state in (SUBMITTING, QUEUED):
                row["phase"] = "Queued"  # held back, whatever its object's own status says
            waiting = self.waiting.get(r.id)
            if r.state == QUEUED and waiting is not None:
                row["queue"] = {
                    "cluster": waiting.cluster,
                    "position": waiting.position,
                    "expected_wait": waiting.expected_wait,
                    "reason": waiting.reason,
                }
            out.append(row)
        return out

    # ------------------------------------------------------------------ delete

    async def delete(self, user: str, kind: str, name: str) -> dict[str, Any]:
        """Delete the run wherever it is; a Status object as Kubernetes answers a delete."""
        first = await self._record(user, kind, name)
        await self.registry.update(first.id, state=DELETING)
        # read again: a move that was under way when it was first read has changed its cluster
        record = await self._record(user, kind, name)
        self.waiting.pop(record.id, None)
        if record.uid is not None or SUBMITTING in (first.state, record.state):
            try:
                await self._delete_in_cluster(record)
            except ClusterError as exc:
                if exc.status is None or exc.status >= 500:
                    # the registry keeps it as deleting; admission passes try again
                    raise _cluster_answer(exc, record.cluster or "") from exc
                raise _cluster_answer(exc, record.cluster or "") from exc
        await self.registry.remove(record.id)
        self._release(record.id)
        if self._queue is not None:
            self._queue.pop(record.id, None)
        self.wake()
        log.info("run %s %s/%s deleted", kind, user, name)
        return {"kind": "Status", "apiVersion": "v1", "status": "Success", "details": {"name": name}}

    async def _delete_in_cluster(self, record: RunRecord) -> None:
        path = object_path(record.kind, record.namespace, record.name)
        body: dict[str, Any] = {
            "kind": "DeleteOptions",
            "apiVersion": "v1",
            "propagationPolicy": "Background",
        }
        if record.uid is not None:
            # only the object this run made: never one of the same name made since
            body["preconditions"] = {"uid": record.uid}
        try:
            await self.user_api(record.cluster or "", record.user).send("DELETE", path, body)
        except ClusterError as exc:
            # 409 with a uid: the object of that name is another one, so this run's is gone
            if exc.status != 404 and not (exc.status == 409 and record.uid is not None):
                raise

    # ------------------------------------------------------------------ admission

    async def pass_once(self) -> None:
        """One admission pass: finish what a crash or a hung cluster left, then let go what fits."""
        await self._meter_cloud()
        health = self.fleet.health()
        unfinished = [
            r
            for r in await self.registry.runs(states=[SUBMITTING, DELETING])
            if r.id not in self._in_flight and not is_down(health, r.cluster or "")
        ]
        # at once, so that a cluster whose link hangs holds up no other cluster's runs
        await asyncio.gather(*(self._finish(r) for r in unfinished))
        await self._release_bound()
        self._start_sweeps()
        await self._clean_copies()
        started = await self._observe_started()
        waiting = await self.registry.runs(states=[SUBMITTING, QUEUED])
        if await self._move_waiting(waiting, started):
            waiting = await self.registry.runs(states=[SUBMITTING, QUEUED])
        self._queue = {r.id: (r.cluster or "", _gang(r)) for r in waiting}
        now = self.clock()
        lag: dict[str, tuple[int, float]] = {}
        for r in waiting:
            count, longest = lag.get(r.cluster or "", (0, 0.0))
            lag[r.cluster or ""] = (count + 1, max(longest, now - r.submitted.timestamp()))
        self.lag = lag
        # worked out once a pass, not once per api/capacity request: it walks every node
        inventories, _, held = self._snapshot()
        queued = self.queued_now()
        self.product_lag = {
            inv.cluster: admission.product_waits(inv, held, now, ahead=queued.get(inv.cluster, ()))
            for inv in inventories
        }
        await self._admit([r for r in waiting if r.state == QUEUED and r.id not in self._in_flight])

    def _start_sweeps(self) -> None:
        """Start the sweeps that are due, beside the pass: a sweep lists every cluster, and one that
        hangs until its timeouts must not hold up letting runs go elsewhere. One of each at a time."""
        if self._sweeping is not None and not self._sweeping.done():
            return
        orphans = self.settings.orphan_sweep_interval
        orphans_due = orphans > 0 and (self._swept_at is None or self.clock() - self._swept_at >= orphans)
        users = self.settings.user_sweep_interval
        users_due = (
            self.hub_users is not None
            and users > 0
            and (self._users_swept_at is None or self.clock() - self._users_swept_at >= users)
        )
        if not (orphans_due or users_due):
            return
        if orphans_due:
            self._swept_at = self.clock()
        if users_due:
            self._users_swept_at = self.clock()
        self._sweeping = asyncio.get_running_loop().create_task(
            self._sweep(orphans_due, users_due), name="run-sweeps"
        )

    async def _sweep(self, orphans: bool, users: bool) -> None:
        try:
            if orphans:
                await self.sweep_orphans()
            if users:
                await self.sweep_users()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("run sweep failed; trying again at the next interval")

    # ------------------------------------------------------------------ the cloud budget

    async def _meter_cloud(self) -> None:
        if self.meter is None:
            return
        roles = {i.cluster: i.role for i in self.fleet.inventories()}
        await self.meter.meter(self.clock(), self.fleet, roles, self._run_namespaces)

    async def _run_namespaces(self) -> dict[str, str]:
        """Run namespace -> user, for the users the registry knows."""
        return {self.namespace(user): user for user in await self.registry.users()}

    async def cloud_closed(self, user: str) -> str:
        """Why ``user``'s runs may not go to the cloud now (their cloud budget is spent); "" when they may."""
        return "" if self.meter is None else await self.meter.closed(user, self.clock())

    # ------------------------------------------------------------------ backup pipelines

    async def _moved(self, run_id: int) -> bool:
        return bool(await self.registry.moves(run_ids=[run_id]))

    async def _observe_started(self) -> list[RunRecord]:
        """Read the phase of each started run with restart-on-failover whose cluster answers (all at
        once); the started ones whose cluster is down, for ``_move_waiting``."""
        health = self.fleet.health()
        runs = [r for r in await self.registry.runs(states=[ADMITTED]) if restarts(r.manifest)]
        self._phases = {r.id: p for r, p in ((r, self._phases.get(r.id)) for r in runs) if p is not None}
        await asyncio.gather(*(self._observe(r) for r in runs if not is_down(health, r.cluster or "")))
        return [r for r in runs if is_down(health, r.cluster or "")]

    async def _observe(self, record: RunRecord) -> None:
        path = object_path(record.kind, record.namespace, record.name)
        try:
            found = await self.service_api(record.cluster or "").send("GET", path)
        except ClusterError as exc:
            if exc.status == 404:
                self._phases.pop(record.id, None)
            return
        if (found.get("metadata") or {}).get("uid") == record.uid:
            self._phases[record.id] = phase_of(found)

    async def _move_waiting(self, waiting: Sequence[RunRecord], started: Sequence[RunRecord] = ()) -> bool:
        """Move the runs that never started to where they should wait now (``moves.plan_move``): out
        of a cluster that is down or lagging, back to on-prem when it has room again; and restart the
        ``started`` runs with restart-on-failover whose cluster is down. True when one moved. Runs
        that would move but may not get the reason added to their wait."""
        self._stays = {}
        inventories, health, held = self._snapshot()
        roles = {i.cluster: i.role for i in inventories}
        now = self.clock()
        candidates = [
            r
            for r in waiting
            if r.wanted == admission.AUTO
            and r.id not in self._in_flight
            and (r.state == QUEUED or is_down(health, r.cluster or ""))
        ]
        # a started run whose phase this process never saw stays: it may have finished
        candidates += [r for r in started if r.id in self._phases and r.id not in self._in_flight]
        if not candidates:
            return False
        moved_at: dict[int, float] = {}
        for m in await self.registry.moves(run_ids=[r.id for r in candidates]):
            moved_at[m.run_id] = m.at.timestamp()
        order = sorted(waiting, key=lambda r: (r.submitted, r.id))
        view = (inventories, health, held, roles, now)
        moves: list[tuple[RunRecord, Move]] = []
        for r in candidates:
            ahead: dict[str, list[Gang]] = {}
            for other in order:
                if other.id == r.id:
                    break
                ahead.setdefault(other.cluster or "", []).append(_gang(other))
            queued = admission.QueuedRun(
                key=f"{r.id}",
                user=r.user,
                gang=_gang(r),
                cluster=r.cluster or r.wanted,
                max_wait=r.max_wait,
                submitted=r.submitted.timestamp(),
            )
            closed = await self.cloud_closed(r.user)
            if r.state == ADMITTED:
                plan = self._plan_move(r, queued, ahead, moved_at.get(r.id), closed, view, self._phases[r.id])
                if isinstance(plan, Move):
                    moves.append((r, plan))
                continue
            plan = self._plan_move(r, queued, ahead, moved_at.get(r.id), closed, view)
            if closed and not isinstance(plan, Move):
                # say so when the budget is what keeps it from the cloud
                free = self._plan_move(r, queued, ahead, moved_at.get(r.id), "", view)
                if isinstance(free, Move) and roles.get(free.target) is not Role.ONPREM:
                    plan = f"it does not go to {free.target}: {closed}"
            if isinstance(plan, str):
                self._stays[r.id] = plan
            elif plan is not None:
                moves.append((r, plan))
        # at once: a delete that waits on a cluster that stopped answering holds up no other move
        return any(await asyncio.gather(*(self._carry_out(r, plan) for r, plan in moves)))

    def _plan_move(
        self,
        r: RunRecord,
        queued: admission.QueuedRun,
        ahead: Mapping[str, Sequence[Gang]],
        moved_at: float | None,
        closed: str,
        view: tuple[
            list[ClusterInventory], dict[str, ClusterHealth], tuple[Reservation, ...], dict[str, Role], float
        ],
        started: str | None = None,
    ) -> Move | str | None:
        inventories, health, held, roles, now = view
        choice = admission.choose_cluster(
            replace(queued, cluster=admission.AUTO),
            inventories,
            health,
            held,
            now,
            queued_ahead=ahead,
            cloud_closed=closed,
        )
        return plan_move(
            queued,
            choice,
            health,
            roles,
            now,
            wanted=r.wanted,
            unmovable_reason=unmovable(r.manifest),
            kueue_clusters=self.settings.kueue_queues.keys(),
            moved_at=moved_at,
            settle=self.settings.move_settle,
            started=started,
            restart=restarts(r.manifest),
        )

    async def _carry_out(self, record: RunRecord, move: Move) -> bool:
        """Move ``record``: its copy in the source deleted first where the source answers, else left
        there held back and recorded; then made, held back, in the target. True when it moved."""
        for left in await self.registry.moves(run_ids=[record.id], copies_left=True):
            # a copy it left in the target on an earlier move goes before it is made there again
            if left.source == move.target and not await self._clean_copy(left):
                return False
        holds_object = record.uid is not None or record.state == SUBMITTING
        if holds_object and move.delete_first:
            try:
                await self._delete_in_cluster(record)
            except ClusterError as exc:
                log.info(
                    "run %s/%s %s stays in %s for now: %s",
                    record.user,
                    record.kind,
                    record.name,
                    move.source,
                    exc,
                )
                return False
        # a kind the registry holds until it is let go has nothing in a cluster to make
        state = SUBMITTING if record.kind != "Experiment" else QUEUED
        done = await self.registry.move(
            record,
            target=move.target,
            reason=move.reason,
            left_behind=holds_object and not move.delete_first,
            state=state,
        )
        if done is None:
            return False
        self._release(record.id)
        log.info("run %s %s/%s %s", record.kind, record.user, record.name, move.reason)
        if self.on_move is not None:
            roles = {i.cluster: i.role for i in self.fleet.inventories()}
            waited = max(0.0, self.clock() - record.submitted.timestamp())
            self.on_move(move.source, move.target, roles.get(move.target) is Role.ONPREM, waited)
        if state == SUBMITTING:
            moved = replace(record, cluster=move.target, uid=None, state=SUBMITTING, reason=move.reason)
            self._in_flight.add(record.id)
            try:
                await self._create(moved, None, moved=True)
            except RunError as exc:
                # unanswered: it stays submitting there, and a later pass makes it once
                log.info(
                    "run %s/%s %s: not made in %s yet: %s",
                    record.user,
                    record.kind,
                    record.name,
                    move.target,
                    exc.message,
                )
            finally:
                self._in_flight.discard(record.id)
        return True

    async def _clean_copies(self) -> None:
        """Delete the held-back copies that moved runs left in clusters that answer again."""
        health = self.fleet.health()
        copies = [m for m in await self.registry.moves(copies_left=True) if not is_down(health, m.source)]
        await asyncio.gather(*(self._clean_copy(m) for m in copies))

    async def _clean_copy(self, move: MoveRecord) -> bool:
        """Delete the copy ``move`` left, if it is still there and still this run's: True once it is gone."""
        api = self.service_api(move.source)
        path = object_path(move.kind, move.namespace, move.name)
        try:
            found = await api.send("GET", path)
        except ClusterError as exc:
            if exc.status != 404:
                return False
            found = None
        if found is not None:
            meta = found.get("metadata") or {}
            ours = (meta.get("labels") or {}).get(HUB_LABEL) == self.settings.namespaces.hub_instance
            if move.left_uid is not None:
                ours = ours and meta.get("uid") == move.left_uid
            if ours:
                body = {
                    "kind": "DeleteOptions",
                    "apiVersion": "v1",
                    "propagationPolicy": "Background",
                    "preconditions": {"uid": meta.get("uid")},
                }
                try:
                    await api.send("DELETE", path, body)
                except ClusterError as exc:
                    if exc.status not in (404, 409):
                        return False
                log.info(
                    "deleted the copy of %s %s/%s left in %s when it moved to %s",
                    move.kind,
                    move.user,
                    move.name,
                    move.source,
                    move.target,
                )
        await self.registry.copy_cleaned(move.id)
        return True

    async def sweep_orphans(self) -> list[tuple[str, str, str, str]]:
        """Delete runs this hub made that the registry no longer knows, older than orphan_grace:
        (cluster, namespace, kind, name) of each. A create that a hung link delivered after the user
        deleted the run leaves one; nothing else does. Objects with an owner are never taken: the
        service creates none, and controllers copy the run's labels onto what they make for it."""
        # by cluster: the copy a moved run left where it waited before is not the run
        known = {(r.cluster, r.namespace, r.kind, r.name) for r in await self.registry.runs()}
        selector = f"{HUB_LABEL}={self.settings.namespaces.hub_instance}"
        health = self.fleet.health()
        now = datetime.now(UTC)
        clusters = [i.cluster for i in self.fleet.inventories() if not is_down(health, i.cluster)]
        # each cluster at once, so that one whose link hangs holds up no other's sweep
        found = await asyncio.gather(*(self._sweep_cluster(c, known, selector, now) for c in clusters))
        return [one for removed in found for one in removed]

    async def _sweep_cluster(
        self, cluster: str, known: set[tuple[str | None, str, str, str]], selector: str, now: datetime
    ) -> list[tuple[str, str, str, str]]:
        api = self.service_api(cluster)
        removed: list[tuple[str, str, str, str]] = []
        for kind, (prefix, plural) in COLLECTIONS.items():
            try:
                found = await api.send("GET", f"{prefix}/{plural}", query={"labelSelector": selector})
            except ClusterError as exc:
                if exc.status is None:  # no answer: the next kinds would wait as long; next sweep
                    break
                continue
            for obj in found.get("items") or ():
                meta = obj.get("metadata") or {}
                key = (str(meta.get("namespace")), kind, str(meta.get("name")))
                # what the service creates has no owner; a controller's child that inherited the
                # hub's label from its run (a Katib trial's Job or TrainJob) belongs to that run
                owned = bool(meta.get("ownerReferences"))
                if owned or (cluster, *key) in known or not _older(meta, now, self.settings.orphan_grace):
                    continue
                try:
                    await api.send("DELETE", object_path(kind, key[0], key[2]))
                except ClusterError as exc:
                    if exc.status != 404:
                        continue
                log.warning(
                    "deleted %s %s/%s in %s: the registry has no such run", kind, key[0], key[2], cluster
                )
                removed.append((cluster, key[0], kind, key[2]))
        return removed

    async def sweep_users(self) -> list[tuple[str, str]]:
        """Remove the run namespaces, and with them the runs, of users the hub no longer has:
        (cluster, user) of each. Nothing is removed unless the hub listed its users in full and has
        at least one, so an unreachable or misconfigured hub never reads as "no users"."""
        if self.hub_users is None:
            return []
        users = await self.hub_users()
        if not users:
            return []
        settings = self.settings.namespaces
        selector = f"{HUB_LABEL}={settings.hub_instance}"
        health = self.fleet.health()
        removed: list[tuple[str, str]] = []
        for cluster in [i.cluster for i in self.fleet.inventories() if not is_down(health, i.cluster)]:
            try:
                found = await self.service_api(cluster).send(
                    "GET", "/api/v1/namespaces", query={"labelSelector": selector}
                )
            except ClusterError:
                continue
            for ns in found.get("items") or ():
                owner = ((ns.get("metadata") or {}).get("annotations") or {}).get(RUNS_USER_ANNOTATION)
                if (
                    not owner
                    or owner in users
                    or (ns.get("metadata") or {}).get("name") != self.namespace(owner)
                ):
                    continue
                try:
                    await remove(
                        self.fleet.api_client(cluster),
                        settings,
                        owner,
                        total_timeout=self.settings.request_timeout * 2,
                        request_timeout=self.settings.request_timeout,
                    )
                except ProvisionError as exc:
                    log.warning("run namespace of %s in %s not removed: %s", owner, cluster, exc)
                    continue
                for record in await self.registry.runs(user=owner):
                    if record.cluster == cluster:
                        await self.registry.remove(record.id)
                        self._release(record.id)
                self._ensured.discard((cluster, owner))
                log.info("removed the run namespace of %s in %s: the hub has no such user", owner, cluster)
                removed.append((cluster, owner))
        return removed

    async def _finish(self, record: RunRecord) -> None:
        """Carry out what a crash or an unanswered request left: a create, or a delete."""
        self._in_flight.add(record.id)
        try:
            if record.state == SUBMITTING:
                await self._resume_submit(record)
            else:
                await self._delete_in_cluster(record)
                await self.registry.remove(record.id)
                self._release(record.id)
        except (ClusterError, RunError) as exc:
            log.info("run %s/%s %s: still %s: %s", record.user, record.kind, record.name, record.state, exc)
        finally:
            self._in_flight.discard(record.id)

    def _release(self, run_id: int) -> None:
        """Give back what run ``run_id`` holds, if anything."""
        _, holds = self._holding.pop(run_id, (None, ()))
        for hold in holds:
            self.book.release(hold)

    async def _release_bound(self) -> None:
        """Give back the holds of runs whose GPU pods are bound: the inventory counts them now, and
        holding both would count those GPUs twice. A hold also ends by itself (admission_hold). All
        runs at once, so that a cluster whose link hangs holds up no other cluster's holds."""
        held = []
        for run_id, (record, holds) in list(self._holding.items()):
            if any(self.book.get(h) is not None for h in holds):
                held.append((run_id, record))
            else:
                del self._holding[run_id]
        await asyncio.gather(*(self._release_if_bound(run_id, record) for run_id, record in held))

    async def _release_if_bound(self, run_id: int, record: RunRecord) -> None:
        selector = f"{RUN_POD_LABELS[record.kind]}={record.name}"
        path = f"/api/v1/namespaces/{record.namespace}/pods"
        try:
            answer = await self.service_api(record.cluster or "").send(
                "GET", path, query={"labelSelector": selector}
            )
        except ClusterError:
            return
        # bound, and counted by the inventory: a hold given back before the watch has seen the pod
        # would leave its GPUs counted by neither for a moment
        bound = sum(
            1
            for pod in answer.get("items") or ()
            if _bound_gpu_pod(pod)
            and self.fleet.counts_pod(
                record.cluster or "", record.namespace, str((pod.get("metadata") or {}).get("name"))
            )
        )
        if bound >= sum(1 for gpus, _ in record.gang if gpus):
            self._release(run_id)

    async def _resume_submit(self, record: RunRecord) -> None:
        """A run registered but not confirmed created: created once, whether or not the first try
        reached the cluster."""
        if record.kind == "Experiment":
            await self.registry.update(record.id, expect_state=SUBMITTING, state=QUEUED)
            return
        await self._create(record, None)

    async def _admit(self, queued: Sequence[RunRecord]) -> None:
        inventories, health, held = self._snapshot()
        runs = {
            f"{r.id}": admission.QueuedRun(
                key=f"{r.id}",
                user=r.user,
                gang=_gang(r),
                cluster=r.cluster or r.wanted,
                max_wait=r.max_wait,
                submitted=r.submitted.timestamp(),
            )
            for r in queued
        }
        by_key = {f"{r.id}": r for r in queued}
        # a run in a cloud cluster whose user's cloud budget is spent is not let go (one left to the
        # service moves back to on-prem; one pinned there waits for the next period)
        roles = {i.cluster: i.role for i in inventories}
        waiting: dict[int, Waiting] = {}
        for r in queued:
            cluster = r.cluster or ""
            if cluster in roles and roles[cluster] is not Role.ONPREM:
                closed = await self.cloud_closed(r.user)
                if closed:
                    runs.pop(f"{r.id}")
                    # 1-based among the runs queued there before it, as admission counts
                    position = 1 + sum(
                        1
                        for o in queued
                        if o.cluster == r.cluster
                        and o.id != r.id
                        and (o.submitted, o.id) < (r.submitted, r.id)
                    )
                    waiting[r.id] = Waiting(cluster, position, None, f"{closed}: your run waits on {cluster}")
        decisions = admission.admit(
            list(runs.values()), inventories, health, held, self.clock(), head_hold=self.settings.head_hold
        )
        # the whole view at once, before any run is let go: a listing read while one is let go sees
        # every other run's wait, not part of them
        for decision in decisions:
            if isinstance(decision, admission.Wait):
                record = by_key[decision.key]
                stays = self._stays.get(record.id)
                reason = f"{decision.reason}; {stays}" if stays else decision.reason
                waiting[record.id] = Waiting(
                    decision.cluster, decision.position, decision.expected_wait, reason
                )
        self.waiting = waiting
        for decision in decisions:
            if isinstance(decision, admission.Start):
                await self._let_go(by_key[decision.key], decision)

    async def _let_go(self, record: RunRecord, decision: admission.Start) -> None:
        cluster = decision.cluster
        expires = self.book.clock() + self.settings.admission_hold
        holds = admission.gang_reservations(decision.fit, f"run/{record.id}", expires)
        for hold in holds:
            self.book.add(hold)
        self._holding[record.id] = (record, tuple(h.id for h in holds))
        try:
            if record.uid is None:  # a kind held in the queue: created now, as the user
                created = await self._post(cluster, record)
                uid = (created.get("metadata") or {}).get("uid")
                await self.registry.update(
                    record.id, state=ADMITTED, uid=uid, admitted=datetime.now(UTC), reason=decision.reason
                )
            elif cluster in self.settings.kueue_queues:
                # Kueue admits it in that cluster: it un-suspends the run itself
                await self.registry.update(record.id, state=ADMITTED, admitted=datetime.now(UTC))
            else:
                kind = record.kind
                path = object_path(kind, record.namespace, record.name)
                patch = _unsuspend_patch(kind)
                await self.service_api(cluster).send(
                    "PATCH", path, patch, content_type="application/merge-patch+json"
                )
                await self.registry.update(
                    record.id, state=ADMITTED, admitted=datetime.now(UTC), reason=decision.reason
                )
        except (ClusterError, RunError) as exc:
            self._release(record.id)
            status = getattr(exc, "status", None)
            if record.uid is None and status is not None and 400 <= status < 500:
                await self.registry.update(
                    record.id, state=REFUSED, reason=f"cluster {cluster} refused it: {exc}"
                )
            log.warning(
                "run %s/%s %s: could not be let go in %s: %s",
                record.user,
                record.kind,
                record.name,
                cluster,
                exc,
            )
            return
        log.info(
            "run %s %s/%s let go in %s: %s", record.kind, record.user, record.name, cluster, decision.reason
        )


def _older(meta: Mapping[str, Any], now: datetime, seconds: float) -> bool:
    """Whether the object was made more than ``seconds`` before ``now``; False when it does not say."""
    try:
        created = datetime.strptime(str(meta.get("creationTimestamp")), "%Y-%m-%dT%H:%M:%SZ").replace(
            tzinfo=UTC
        )
    except ValueError:
        return False
    return (now - created).total_seconds() > seconds


def _bound_gpu_pod(pod: Mapping[str, Any]) -> bool:
    """A pod on a node that asks for GPUs: the inventory counts its GPUs from now on."""
    spec = pod.get("spec") or {}
    if not spec.get("nodeName"):
        return False
    for container in spec.get("containers") or ():
        limits = (container.get("resources") or {}).get("limits") or {}
        if str(limits.get("nvidia.com/gpu", "0")) not in ("0", ""):
            return True
    return False


def _unsuspend_patch(kind: str) -> dict[str, Any]:
    if kind == "PyTorchJob":
        return {"spec": {"runPolicy": {"suspend": False}}}
    return {"spec": {"suspend": False}}


def is_down(health: Mapping[str, ClusterHealth], cluster: str) -> bool:
    state = health.get(cluster)
    return state is not None and state.state == Health.DOWN


def phase_of(obj: Mapping[str, Any]) -> str:
    """A run's phase in one word: Argo's phase, else the newest True condition's type."""
    status = obj.get("status") or {}
    if status.get("phase"):
        return str(status["phase"])
    true = [c for c in status.get("conditions") or () if c.get("status") == "True"]
    if not true:
        return "Created"
    # Times are to the second, so a run that moves fast has ties; a tie goes to the condition set last,
    # which controllers append last.
    newest = max(reversed(true), key=lambda c: str(c.get("lastTransitionTime") or ""))
    return str(newest.get("type") or "Created")
