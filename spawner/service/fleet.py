"""The fleet: one client, one inventory watcher and one health monitor per cluster."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from kubernetes_asyncio.client import ApiClient, V1DeleteOptions, V1Preconditions

from spawner.core.clusters import ClusterConfig
from spawner.core.health import HealthPolicy, HealthState, Probe, classify, cluster_health, pool_probes
from spawner.core.model import ClusterHealth, ClusterInventory, Health
from spawner.inventory.index import ServerLocation
from spawner.inventory.watcher import ClusterWatcher
from spawner.kube.client import ClusterClient

__all__ = ["ClusterMember", "Fleet", "FleetView"]

log = logging.getLogger(__name__)


class FleetView(Protocol):
    """What the API handlers read of the fleet: snapshots, never the watchers or clients."""

    def inventories(self) -> list[ClusterInventory]: ...

    def health(self) -> dict[str, ClusterHealth]: ...

    def servers(self, user: str) -> list[tuple[str, ServerLocation]]: ...


class ClusterMember:
    """One cluster as the service holds it: client, watcher, and the latest health.

    Probes start on a schedule of their own and may overlap, so a probe that hangs until its timeout
    does not hold up the next one: every ``probe_interval`` seconds while the cluster and its pools
    are HEALTHY and the last probe has answered, else every ``probe_retry_interval`` seconds. Results
    are classified in the order the probes started; one that ends after a later one was classified is
    dropped. With the link hung just after a good probe, the cluster is DOWN within
    ``probe_interval + (down_after_failures - 1) * probe_retry_interval + probe_timeout`` seconds.
    When the API answers after a probe it did not, the watches that have been silent since are
    resumed at once, and the probe waits up to ``probe_timeout`` for them before it is classified.
    """

    def __init__(
        self,
        config: ClusterConfig,
        *,
        policy: HealthPolicy,
        probe_interval: float,
        probe_retry_interval: float,
        probe_timeout: float,
        watch_timeout: int,
        watch_read_timeout: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.config = config
        self.policy = policy
        self.probe_interval = probe_interval
        self.probe_retry_interval = probe_retry_interval
        self.probe_timeout = probe_timeout
        self.clock = clock
        self.client = ClusterClient(config, request_timeout=probe_timeout, user_agent="hybridhub-service")
        self.watcher = ClusterWatcher(
            config.name,
            config.role,
            config.pools,
            self.client.core,
            call=self.client.call,
            watch_timeout=watch_timeout,
            read_timeout=watch_read_timeout,
            clock=clock,
        )
        self.state: HealthState | None = None
        self.pool_states: dict[str, HealthState] = {}  # the single-cluster topology's pools
        self._task: asyncio.Task[None] | None = None
        self._probing: set[asyncio.Task[None]] = set()  # probes in flight, started by the loop
        self._started = 0  # probes started so far: each probe's number, in start order
        self._classified = 0  # the number of the latest probe classified
        self._wake = asyncio.Event()  # a probe ended: the schedule may change

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def last_probe(self) -> int:
        """The number of the latest probe classified; probes are numbered 1, 2, ... as they start."""
        return self._classified

    async def start(self) -> None:
        await self.client.start()
        self.watcher.start()
        self._task = asyncio.get_running_loop().create_task(self._probe_loop(), name=f"probe-{self.name}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        probes, self._probing = self._probing, set()
        for probe in probes:
            probe.cancel()
        await asyncio.gather(*probes, return_exceptions=True)
        await self.watcher.stop()
        await self.client.close()

    async def readyz(self) -> tuple[bool, float | None, str]:
        """GET /readyz: (answered ok, seconds, error text), in ``probe_timeout`` seconds at most, the
        renewal of credentials that may come before the request included."""
        started = self.clock()
        try:
            async with asyncio.timeout(self.probe_timeout):
                await self.client.call(
                    self.client.api_client.call_api,
                    "/readyz",
                    "GET",
                    auth_settings=["BearerToken"],
                    _return_http_data_only=True,
                    _request_timeout=self.probe_timeout,
                )
        except Exception as exc:  # any failure to answer is what a probe measures
            return False, None, _describe(exc)
        return True, self.clock() - started, ""

    async def probe(self) -> HealthState:
        """Probe the cluster now and classify the result; returns the state after it."""
        self._started += 1
        try:
            return await self._probe(self._started)
        finally:
            self._wake.set()

    async def _probe(self, number: int) -> HealthState:
        ok, latency, error = await self.readyz()
        api_failed_at = self.state.api_failed_at if self.state is not None else None
        if ok and api_failed_at is not None:
            # a watch open across the outage may be silent still, and a failed one in a long backoff
            await self.watcher.resume(api_failed_at, within=self.probe_timeout)
        if number < self._classified and self.state is not None:
            return self.state  # a probe started later has been classified: this result is older news
        snapshot = self.watcher.snapshot()
        fixed = {p.name for p in self.config.pools if not p.elastic}
        per_pool = len(self.config.roles) > 1  # then Ready nodes count per pool, not for the cluster
        nodes = [] if per_pool else [n for n in snapshot.nodes if n.pool in fixed]
        probe = Probe(
            api_ok=ok,
            api_latency=latency,
            watch_age=self.watcher.age() if self.watcher.synced else None,
            ready_nodes=sum(1 for n in nodes if n.ready),
            total_nodes=len(nodes),
            time=self.clock(),
            elastic=not fixed,
            error=error,
        )
        self._classified = number
        new = classify(self.state, probe, self.policy)
        if self.state is None or new.state != self.state.state:
            log.info(
                "cluster %s is %s%s", self.name, new.state.value, f": {new.reason}" if new.reason else ""
            )
        self.state = new
        if per_pool:  # one cluster with on-prem and cloud pools (EKS Hybrid Nodes): each pool's own health
            for pool, pool_probe in pool_probes(probe, self.config.pools, snapshot.nodes).items():
                old = self.pool_states.get(pool)
                now = self.pool_states[pool] = classify(old, pool_probe, self.policy)
                if (old.state if old is not None else Health.HEALTHY) != now.state:
                    log.info(
                        "pool %s of cluster %s is %s%s",
                        pool,
                        self.name,
                        now.state.value,
                        f": {now.reason}" if now.reason else "",
                    )
        return new

    def _period(self, answered: bool) -> float:
        """Seconds from the latest probe's start to the next one's; ``answered``: that probe has ended."""
        calm = (
            answered
            and self.state is not None
            and self.state.state is Health.HEALTHY
            and all(s.state is Health.HEALTHY for s in self.pool_states.values())
        )
        return self.probe_interval if calm else self.probe_retry_interval

    async def _probe_loop(self) -> None:
        latest: asyncio.Task[None] | None = None
        started = 0.0  # when ``latest`` started
        while True:
            self._wake.clear()  # before reading the schedule: a probe that ends later wakes us
            now = self.clock()
            due = now if latest is None else started + self._period(latest.done())
            if now >= due:
                started = now
                latest = asyncio.get_running_loop().create_task(self._one_probe(), name=f"probe-{self.name}")
                self._probing.add(latest)
                latest.add_done_callback(self._probing.discard)
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(due - now):
                    await self._wake.wait()

    async def _one_probe(self) -> None:
        try:
            await self.probe()
        except Exception:
            log.exception("probing cluster %s failed", self.name)

    def health(self) -> ClusterHealth:
        if self.state is None:
            return ClusterHealth(self.name, Health.DEGRADED, "not probed yet")
        return cluster_health(self.name, self.state, self.pool_states)

    def inventory(self) -> ClusterInventory:
        return self.watcher.snapshot()


class Fleet:
    """All clusters; what the handlers read."""

    def __init__(self, members: Sequence[ClusterMember]) -> None:
        self.members = {m.name: m for m in members}

    async def start(self) -> None:
        started: list[ClusterMember] = []
        try:
            for member in self.members.values():
                await member.start()
                started.append(member)
        except BaseException:
            for member in started:
                await member.stop()
            raise

    async def stop(self) -> None:
        await asyncio.gather(*(m.stop() for m in self.members.values()), return_exceptions=True)

    def inventories(self) -> list[ClusterInventory]:
        return [m.inventory() for m in self.members.values()]

    def api_client(self, cluster: str) -> ApiClient:
        """The cluster's API client, with the service's credentials (renewed before they expire)."""
        return self.members[cluster].client.api_client

    def health(self) -> dict[str, ClusterHealth]:
        return {name: m.health() for name, m in self.members.items()}

    def counts_pod(self, cluster: str, namespace: str, name: str) -> bool:
        """Whether the cluster's inventory counts the pod on its node yet (the watch has seen it bound)."""
        member = self.members.get(cluster)
        return member is not None and member.watcher.counts_pod(namespace, name)

    def gpu_pods(self, cluster: str) -> tuple[tuple[str, str, int], ...]:
        """The cluster's pods that hold GPUs on a node, as (namespace, name, GPUs), from its inventory."""
        member = self.members.get(cluster)
        return () if member is None else member.watcher.gpu_pods()

    def servers(self, user: str) -> list[tuple[str, ServerLocation]]:
        return [(name, s) for name, m in self.members.items() for s in m.watcher.servers(user)]

    def notebook_pods(self) -> list[tuple[str, ServerLocation]]:
        """Every notebook pod of each cluster, in any namespace, as (cluster, location): the labels
        tell whose each is (spawner.service.sweeper.whose), not the namespace."""
        return [(name, loc) for name, m in self.members.items() for loc in m.watcher.all_servers()]

    async def delete_pod(
        self, cluster: str, namespace: str, pod: str, uid: str, *, request_timeout: float
    ) -> None:
        """Delete a pod only if it is still the one with this UID (Kubernetes answers 409 otherwise).

        Raises the client's ``ApiException`` (404 gone, 409 another pod of that name) or a network error.
        """
        client = self.members[cluster].client
        await client.call(
            client.core().delete_namespaced_pod,
            pod,
            namespace,
            body=V1DeleteOptions(preconditions=V1Preconditions(uid=uid)),
            _request_timeout=request_timeout,
        )


def _describe(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    cause = getattr(exc, "os_error", None)  # aiohttp's ClientConnectorError keeps the OSError there
    if isinstance(cause, OSError) and cause.errno == errno.ECONNREFUSED:
        return "connection refused"
    if "Connect" in type(exc).__name__ or "refused" in text.lower():
        return "connection refused" if "refused" in text.lower() else text
    if isinstance(exc, TimeoutError | asyncio.TimeoutError):
        return "timed out"
    return text[:200]
