"""HybridSpawner: KubeSpawner that asks the hybridhub service where to run and falls back fast."""

from __future__ import annotations

import asyncio
import contextlib
import copy
from collections.abc import AsyncIterator, Sequence
from typing import Any, ClassVar

from jupyterhub.utils import url_path_join
from kubernetes_asyncio.client import V1ContainerPort
from traitlets import default

from spawner.core.clusters import ClusterConfig
from spawner.spawning import metrics
from spawner.spawning.attempt import (
    ATTEMPT_TRAITS,
    Candidate,
    PodSettings,
    build_attempt,
    container_mounts,
    placement_reason,
    spawn_base,
)
from spawner.spawning.cluster_note import RecentAnswer, note_for
from spawner.spawning.compat import SpawnRefused
from spawner.spawning.config import HybridConfig, OptionsRefused
from spawner.spawning.follow import (
    NoRoom,
    Unreachable,
    fail_fast,
    progress,
    service_address,
    until_answering,
    until_unreachable,
)
from spawner.spawning.form import options_from_form, render_form
from spawner.spawning.home import home_note, usual_home
from spawner.spawning.leftovers import LeftoverPods
from spawner.spawning.options import GpuOptions
from spawner.spawning.service_client import Placed, ReservationKeeper, ServiceClient
from spawner.spawning.ssh_wiring import SSH_PORT_NAME, with_ssh_server

__all__ = ["HybridSpawner", "OptionsRefused", "SpawnRefused"]

# Seconds an attempt waits for the leftover check of its own cluster before it makes its pod there.
LEFTOVER_WAIT = 2.0
# Seconds between two questions to the service, while an attempt runs, whether its cluster is down.
HEALTH_INTERVAL = 1.0


_CONTAINERS = (list, dict, set)


def _copied(value: Any) -> Any:
    return copy.deepcopy(value) if isinstance(value, _CONTAINERS) else value


class HybridSpawner(HybridConfig):
    """Places each notebook through the hybridhub service: on-prem first, the cloud when needed."""

    # one recent answer on cluster health per service and event loop, shared by the running attempts
    # (is their cluster down?) and the servers' polls (the home page's note)
    _recent_health: ClassVar[dict[tuple[int, str, str], RecentAnswer[dict[str, tuple[str, str]]]]] = {}

    @default("options_form")
    def _default_options_form(self) -> Any:
        async def form(spawner: HybridSpawner) -> str:
            return await spawner.render_options_form()

        return form

    @default("options_from_form")
    def _default_options_from_form(self) -> Any:
        return options_from_form

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._configured = self._snapshot()  # the operator's values
        self._base = self._configured  # this spawn's: configured values plus what hooks changed
        self._applied: dict[str, Any] = {}  # what the last attempt set
        self._messages: list[str] = []
        # what the home page says while the server's cluster is down (the last poll's; None: nothing)
        self.cluster_note: str | None = None
        # the pod name in clusters the server is not in; its pod in the cluster in use is left alone
        self.leftovers = LeftoverPods(self.cluster_client, lambda name: name == self.cluster_name, self.log)

    def _snapshot(self) -> dict[str, Any]:
        # only containers are copied: a spawn takes three snapshots, and most traits are strings
        return {name: _copied(getattr(self, name)) for name in ATTEMPT_TRAITS}

    def apply_attempt(self, candidate: Candidate, opts: GpuOptions) -> ClusterConfig:
        """Set what an attempt on ``candidate`` changes (no I/O): this spawn's values of the attempt
        traits plus the candidate's cluster, pool, nodes, GPUs and home (spawner.spawning.attempt)."""
        cluster = self.cluster_config(candidate.cluster)
        settings = build_attempt(
            PodSettings.from_traits(self._base),
            cluster,
            candidate,
            opts,
            home_mount_path=self.home_mount_path,
            pvc_name=self.pvc_name,
            other_mounts=container_mounts(self.init_containers, self.extra_containers),
            hub_instance=self.hub_instance,
        )
        self.cluster_name = cluster.name
        for name, value in settings.traits().items():
            setattr(self, name, value)
        if cluster.home_storage.kind == "pvc":
            self.forget_claim()  # made on another cluster is not made here
        self._applied = self._snapshot()
        return cluster

    def clear_state(self) -> None:
        super().clear_state()
        # the server is gone: the next spawn's hooks start from the configured values again
        for name, value in self._configured.items():
            setattr(self, name, _copied(value))
        self._applied = {}

    # ------------------------------------------------------------------ SSH

    def get_env(self) -> dict[str, str]:
        env = super().get_env()
        url = self.pod_service_urls.get(self.cluster_name or "")
        if url:
            env["HYBRIDHUB_SERVICE_URL"] = url
            # the kubeconfig the notebook's SDKs and kubectl read (labextension_server/_startup.py
            # writes it, naming the service's k8s endpoint and no token); per cluster, since the service
            # URL differs per cluster and a shared /tmp (simcluster's process runtime) must not mix them.
            # An operator's c.Spawner.environment wins.
            env.setdefault("KUBECONFIG", f"/tmp/hybridhub/{self.cluster_name}/kubeconfig")
        return env

    async def get_pod_manifest(self) -> Any:
        """KubeSpawner's pod, with the SSH server wrapped around the notebook's command when SSH is on."""
        pod = await super().get_pod_manifest()
        if self.ssh_enabled:
            notebook = pod.spec.containers[0]  # KubeSpawner's notebook container comes first
            if not notebook.args:  # no cmd: the image's own command runs, and it cannot be wrapped
                raise SpawnRefused(
                    "SSH is on (HybridSpawner.ssh_enabled) but the notebook's command is not set: the SSH "
                    "server starts the notebook's command beside itself, so set c.Spawner.cmd (z2jh: "
                    "singleuser.cmd), e.g. jupyterhub-singleuser",
                    reason="config",
                )
            notebook.args = with_ssh_server(notebook.args or [], self.ssh_server_command, self.ssh_port)
            ports = list(notebook.ports or [])
            if not any(p.name == SSH_PORT_NAME for p in ports):
                ssh = V1ContainerPort(name=SSH_PORT_NAME, container_port=self.ssh_port, protocol="TCP")
                ports.append(ssh)
            notebook.ports = ports
        return pod

    # ------------------------------------------------------------------ the service

    def _service(self) -> ServiceClient:
        return ServiceClient(self.service_url, self.service_token, self.service_timeout)

    async def render_options_form(self) -> str:
        """The spawn form, with live GPU availability from the service (the form works without it)."""
        capacity = None
        try:
            capacity = await self._service().capacity()
        except SpawnRefused as exc:
            self.log.warning("spawn form without live availability: %s", exc)
        return render_form(
            capacity,
            products=self.gpu_products,
            max_gpus=self.max_gpus,
            allowed_clusters=self._allowed(),
            previous=self.user_options or None,
        )

    def _gpus_in_use(self) -> int:
        """GPUs the user's other running servers asked for (the limit spans all of them)."""
        total = 0
        for other in getattr(self.user, "spawners", {}).values():
            if other is self or not getattr(other, "active", False):
                continue
            gpus = (getattr(other, "user_options", None) or {}).get("gpus") or 0
            total += gpus if isinstance(gpus, int) else 0
        return total

    async def _place(self, opts: GpuOptions, tried: Sequence[Candidate] = ()) -> Placed:
        """The service's candidates for this spawn, the first one reserved for it; ``tried``: the
        candidates earlier attempts of this spawn tried, which it leaves out. The first request also
        asks which clusters have no pod of this server's name."""
        # what the scheduler will count: the guarantee, or the limit when only that is set
        # (Kubernetes then requests the limit)
        cpu = self.cpu_guarantee if self.cpu_guarantee is not None else self.cpu_limit
        memory = self.mem_guarantee if self.mem_guarantee is not None else self.mem_limit
        request: dict[str, Any] = {
            "user": self.user.name,
            "gpus": opts.gpus,
            "gpu_product": opts.gpu_product,
            "cpu": float(cpu or 0),
            "memory": int(memory or 0),
            "cluster": opts.cluster,
            "allowed_clusters": self._allowed(),
            "gpu_quota": self._limit(),
            "gpus_in_use": self._gpus_in_use(),
        }
        if tried:
            request["tried"] = [c.tried() for c in tried]
        else:
            request["pod"] = self.pod_name
            request["namespaces"] = {c.name: c.namespace for c in self.cluster_set.configs}
        try:
            with metrics.PLACEMENT_SECONDS.time():
                return await self._service().place(request)
        except SpawnRefused as exc:
            if not tried:  # refused before any pod was made
                metrics.REFUSED.labels(getattr(exc, "reason", "hybridhub")).inc()
            raise

    # ------------------------------------------------------------------ start

    def _say(self, message: str) -> None:
        self.log.info("%s: %s", self.user.name, message)
        self._messages.append(message)

    async def _start(self) -> str:
        opts = self.gpu_options()
        self._base = spawn_base(self._snapshot(), self._configured, self._applied)
        self._messages = []
        self.access_url = None
        placed = await self._place(opts)
        candidates = placed.candidates
        # Pods an interrupted start left, in the clusters the service cannot vouch for, are looked for
        # in the background: an attempt waits only for its own cluster's check (settle), so a cluster
        # that does not answer never holds up a spawn elsewhere.
        await self.leftovers.begin(
            [(c.name, c.namespace) for c in self.cluster_set.configs if c.name not in placed.vouched],
            self.pod_name,
        )
        failures: list[str] = []
        tried: list[Candidate] = []
        candidate = candidates[0]
        for attempt in range(self.max_attempts):
            if attempt:
                # Placed afresh and reserved now, not taken from the first answer: what is free has
                # changed since, and only what an attempt is about to use may be held for it.
                try:
                    candidate = (await self._place(opts, tried)).candidates[0]
                except SpawnRefused as exc:
                    if getattr(exc, "reason", None) == "capacity":  # nothing untried has room
                        message = exc.jupyterhub_message
                        failures.append(message[:1].lower() + message[1:])
                        break
                    # the service cannot be asked now: the first answer's next one, unreserved
                    named = [c.tried() for c in tried]
                    rest = [c for c in candidates if c.tried() not in named]
                    if not rest:
                        break
                    self.log.warning("%s: next candidate from the first answer: %s", self.user.name, exc)
                    candidate = rest[0]
            cluster = await self.use_cluster(candidate.cluster)
            why = candidate.reason if attempt == 0 else f"{failures[-1]}; now: {candidate.reason}"
            note = home_note(usual_home(self.cluster_set.configs), cluster)
            self._say(f"{why}; {note}" if note else why)
            await self.leftovers.settle(cluster.name, LEFTOVER_WAIT)
            self.apply_attempt(candidate, opts)
            try:
                try:
                    url = await self._attempt(cluster, candidate)
                finally:
                    if candidate.reservation:  # the pod holds the GPUs now, or the attempt is over
                        await self._service().release(candidate.reservation)
            except SpawnRefused:
                raise
            except Exception as exc:
                failures.append(str(exc) if isinstance(exc, NoRoom) else f"{cluster.name} failed: {exc}")
                tried.append(candidate)
                metrics.FALLBACKS.labels(cluster.name).inc()
                self.log.warning("%s: attempt on %s failed: %s", self.user.name, cluster.name, exc)
                await self._clean_up_attempt(cluster, gone=isinstance(exc, Unreachable))
                continue
            metrics.PLACEMENTS.labels(cluster.name, placement_reason(cluster, opts, attempt)).inc()
            return url
        reasons = "; ".join(failures) or "no candidate"
        raise SpawnRefused(
            f"No cluster could start your server now ({reasons}). Try fewer GPUs or later.", reason="capacity"
        )

    async def _clean_up_attempt(self, cluster: ClusterConfig, *, gone: bool) -> None:
        """Remove a failed attempt's pod, for at most ``attempt_cleanup_timeout`` seconds. A cluster
        that is ``gone`` (stopped answering) is not waited for at all. Either way, a pod that may be
        left there, even one whose timed-out create is carried out later, is removed in the
        background once the cluster answers (``LeftoverPods.watch``)."""
        if not gone:
            try:
                await asyncio.wait_for(self.stop_pod(now=True), self.attempt_cleanup_timeout)
                return
            except Exception as exc:
                self.log.warning(
                    "%s: the failed attempt's pod on %s is not removed yet (%s); removing it once %s answers",
                    self.user.name,
                    cluster.name,
                    exc or type(exc).__name__,
                    cluster.name,
                )
        self.leftovers.watch(cluster.name, self.namespace, self.pod_name)

    def _pod_seen(self) -> bool:
        reflector = self.pod_reflector
        return reflector is not None and f"{self.namespace}/{self.pod_name}" in reflector.pods

    async def _attempt(self, cluster: ClusterConfig, candidate: Candidate) -> str:
        """Start the pod on ``candidate``, then find its address and wait until it answers."""
        keeper = None
        if candidate.elastic and candidate.reservation:
            # a node takes minutes, maybe longer than the reservation's ttl: keep it while we wait
            # (60 s: an answer without expires_in, from a service older than the extension)
            held_for = candidate.expires_in or 60.0
            keeper = ReservationKeeper(self._service(), candidate.reservation, held_for, self.log)
            keeper.start()
        try:
            url = await self._start_pod(cluster, candidate)
        finally:
            if keeper is not None:  # the pod is bound, or the attempt is over
                await keeper.stop()
        if cluster.pod_access == "service":
            url = self.access_url = await service_address(
                self.api,
                cluster,
                name=self.pod_name,
                namespace=self.namespace,
                port=self.port,
                host_ip=self.pod_host_ip,
                within=self.service_address_timeout,
                request_timeout=self.k8s_api_request_timeout,
                say=self._say,
                log=self.log,
            )
        if not url.startswith("https"):  # internal SSL needs the hub's client certificate: JupyterHub checks
            target = url_path_join(url, self.server.base_url if self.server else "/", "api")
            await until_answering(
                target, interval=self.answer_poll_interval, within=self.http_timeout, log=self.log
            )
        return url

    async def _start_pod(self, cluster: ClusterConfig, candidate: Candidate) -> str:
        """KubeSpawner's start on ``candidate`` while the pod's events are read and the cluster's health
        is watched (one recent answer of the service, shared by all spawns): the first to end wins."""
        pool = cluster.pool(candidate.pool)

        async def cluster_health() -> str | None:
            entry = (await self._health_answer().get() or {}).get(cluster.name)
            return entry[0] if entry else None

        start = asyncio.ensure_future(super()._start())
        watch = asyncio.ensure_future(
            fail_fast(
                lambda: self.events,
                cluster,
                pool,
                elastic=candidate.elastic,
                deadline=pool.provisioning_deadline or self.elastic_deadline,
                say=self._say,
                changed=lambda: len(self.event_reflector.resources) if self.event_reflector else None,
            )
        )
        reachable = asyncio.ensure_future(
            until_unreachable(
                cluster.name,
                cluster_health,
                self._pod_seen,
                create_within=self.attempt_create_timeout,
                interval=HEALTH_INTERVAL,
            )
        )
        try:
            done, _ = await asyncio.wait({start, watch, reachable}, return_when=asyncio.FIRST_COMPLETED)
            for task in (watch, reachable):
                if task in done and task.exception() is not None:
                    raise task.exception()  # type: ignore[misc]
            url: str = await start
        finally:
            for task in (start, watch, reachable):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        return url

    # ------------------------------------------------------------------ poll

    def _health_answer(self) -> RecentAnswer[dict[str, tuple[str, str]]]:
        key = (id(asyncio.get_running_loop()), self.service_url, self.service_token)
        answer = self._recent_health.get(key)
        if answer is None:
            answer = self._recent_health[key] = RecentAnswer(
                self._service().cluster_health,
                max_age=HEALTH_INTERVAL,
                timeout=2 * HEALTH_INTERVAL,
                log=self.log,
            )
        return answer

    async def poll(self) -> int | None:
        """The server's state as MultiClusterSpawner polls it, and ``cluster_note`` for the home page
        (which polls before it renders): set while the service calls the server's cluster down."""
        status = await super().poll()
        note = None
        if status is None and self.cluster_name is not None:
            note = note_for(self.cluster_name, await self._health_answer().get())
        self.cluster_note = note
        return status

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        """Where and why (our messages), then the pod's events in the cluster it is being tried in."""
        async for event in progress(
            lambda: self._messages,
            lambda: self.cluster_name,
            lambda: self.events if self.event_reflector is not None else None,
            self.start_done,
        ):
            yield event
