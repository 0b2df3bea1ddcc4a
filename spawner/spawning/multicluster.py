"""KubeSpawner across clusters: the server's cluster, its client and watches there, its state, its polls.

KubeSpawner 7 has no public seams for this. The KubeSpawner internals it overrides or touches
(``reflectors``, ``_start_reflector``, ``_get_reflector_key``, ``_start_watching_pods``,
``_start_watching_events``, ``_get_pod_url``, ``_pvc_exists``, ``_start_future``, and the module
globals ``load_config`` and ``shared_client`` that ``__init__`` calls) and those of KubeSpawner's
``ResourceReflector`` (``api``, ``parent``, ``_stopping``, ``first_load_future``, ``watch_task``,
``_list_and_update``, ``timeout_seconds``, and its module's ``watch``, whose ``Watch`` is kubernetes_asyncio's
with its ``ApiClient`` made in ``__init__``) are all in this module, so a KubeSpawner upgrade is checked here.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import time
import types
from collections.abc import Iterator
from contextvars import ContextVar
from typing import Any, ClassVar

import kubernetes_asyncio.watch.watch
import kubespawner.reflector
import kubespawner.spawner
from jupyterhub.utils import url_path_join, utcnow
from kubespawner import KubeSpawner
from kubespawner.reflector import ResourceReflector
from kubespawner.spawner import EventReflector, PodReflector
from traitlets import Dict, Unicode

from spawner.core.clusters import ClusterConfig, ClusterSet
from spawner.kube.client import ClusterClient

__all__ = [
    "ClusterEventReflector",
    "ClusterPodReflector",
    "ClusterUnreachable",
    "EventsByPod",
    "MultiClusterSpawner",
    "gave_up",
    "stalled",
]

STATE_VERSION = 2  # 1: {"cluster"}; 2 adds "access_url" (the Service address of pod_access: service)


# Seconds the check that a cluster answers may take before a stalled watch there is started again.
# Short: it runs inside a spawn or a poll, and a cluster that takes longer is not back yet.
PROBE_TIMEOUT = 2.0
# Seconds between two such checks for one watch: while its cluster stays unreachable, spawns and polls
# there cost at most one quick request per watch this often, not one each.
RESTART_EVERY = 2.0


# Set while a poll runs. Polls come every poll_interval for every server, so while a cluster stays out of
# reach they ask it at most once every RESTART_EVERY seconds. A spawn or a stop asks whenever it needs
# to: an answer that a poll did not get a moment ago says nothing about a link that has just returned.
_POLLING: ContextVar[bool] = ContextVar("hybridhub_polling", default=False)


class ClusterUnreachable(Exception):
    """The server's cluster does not answer, so its pod was not deleted now."""


class _NoClient:
    """What a reflector's watch has instead of an API client of its own: the watch turns nothing into
    models (KubeSpawner's reflector hands it a ``partial``, whose docstring names no return type, and
    reads each event's ``raw_object``), so it only ever closes it."""

    def deserialize(self, response: Any, response_type: Any) -> Any:
        return json.loads(response.data)  # should a return type be named after all: the plain object

    async def close(self) -> None:
        return None


class _ReflectorWatch(kubernetes_asyncio.watch.Watch):
    """kubernetes_asyncio's ``Watch`` without the API client it makes for itself, and closes, on every
    watch. KubeSpawner's reflectors make a watch each time theirs ends (every ``timeout_seconds``), and
    that client's TLS context loads the system's CA certificates whenever the process-wide default
    configuration names no CA file, as in a hub whose clusters all come from ``ClusterSet``: about 30 ms
    of CPU per watch, twice a cluster, against nothing at all here."""

    def __init__(self, return_type: str | None = None) -> None:
        module: Any = kubernetes_asyncio.watch.watch
        saved = module.ApiClient
        module.ApiClient = _NoClient  # between two statements of one synchronous call
        try:
            super().__init__(return_type)
        finally:
            module.ApiClient = saved


# KubeSpawner's reflectors call ``watch.Watch()`` from their module; every reflector of this process
# (MultiClusterSpawner's, and KubeSpawner's own should a hub run both) makes its watches so.
_reflector_module: Any = kubespawner.reflector
_reflector_module.watch = types.SimpleNamespace(Watch=_ReflectorWatch)


class _ListedWatch:
    """What a reflector needs for ``stalled``, which KubeSpawner's does not keep: when it last began a
    LIST, and since when its LISTs fail. KubeSpawner's reflector LISTs before every watch."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with _no_default_client():  # its cluster's client is set by the class that uses this
            super().__init__(*args, **kwargs)
        self.listed_at = time.monotonic()
        self.answered_at: float | None = None  # when its last LIST was answered
        self.failing_since: float | None = None

    async def _list_and_update(self, resource_version: str | None = None) -> Any:
        self.listed_at = time.monotonic()
        try:
            version = await super()._list_and_update(resource_version)  # type: ignore[misc]
        except Exception:
            if self.failing_since is None:
                self.failing_since = self.listed_at
            raise
        self.failing_since = None
        self.answered_at = time.monotonic()
        return version


def _pod_of(event: Any) -> Any:
    return (event.get("involvedObject") or {}).get("name")


class EventsByPod(dict[str, Any]):
    """An event watch's ``resources`` (event key -> event), which also keeps each pod's events apart,
    in the dict's own order: a spawn reads its pod's few events instead of every event of the
    namespace, which grow with every pod that came and went there (simcluster and the API server
    keep them for an hour). KubeSpawner's reflector sets and pops single keys, and replaces the whole
    dict after each LIST (``ClusterEventReflector`` puts one of these in its place)."""

    def __init__(self, items: Any = ()) -> None:
        super().__init__()
        self._by_pod: dict[Any, dict[str, Any]] = {}
        for key, event in dict(items).items():
            self[key] = event

    def of(self, pod: str) -> list[Any]:
        """The events about ``pod``, in the order the dict holds them."""
        return list(self._by_pod.get(pod, {}).values())

    def _forget(self, key: str, event: Any) -> None:
        bucket = self._by_pod.get(_pod_of(event))
        if bucket is not None:
            bucket.pop(key, None)
            if not bucket:
                del self._by_pod[_pod_of(event)]

    def __setitem__(self, key: str, event: Any) -> None:
        old = super().get(key)
        if old is not None and _pod_of(old) != _pod_of(event):
            self._forget(key, old)
        super().__setitem__(key, event)
        self._by_pod.setdefault(_pod_of(event), {})[key] = event  # a key it holds keeps its place

    def __delitem__(self, key: str) -> None:
        self._forget(key, self[key])
        super().__delitem__(key)

    def pop(self, key: str, *default: Any) -> Any:
        if key in self:
            self._forget(key, self[key])
        return super().pop(key, *default)

    def popitem(self) -> tuple[str, Any]:
        key = next(reversed(self))
        return key, self.pop(key)

    def setdefault(self, key: str, default: Any = None) -> Any:
        if key not in self:
            self[key] = default
        return self[key]

    def update(self, *args: Any, **kwargs: Any) -> None:
        for key, event in dict(*args, **kwargs).items():
            self[key] = event

    def clear(self) -> None:
        super().clear()
        self._by_pod.clear()


class ClusterPodReflector(_ListedWatch, PodReflector):  # type: ignore[misc]
    """KubeSpawner's pod watch, on the spawner's chosen cluster rather than the global default."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api = self.parent.api


class ClusterEventReflector(_ListedWatch, EventReflector):  # type: ignore[misc]
    """KubeSpawner's event watch, on the spawner's chosen cluster rather than the global default, its
    events kept by pod as well (``EventsByPod``)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api = self.parent.api

    async def _list_and_update(self, resource_version: str | None = None) -> Any:
        version = await super()._list_and_update(resource_version)
        # KubeSpawner's LIST has just put a plain dict in place, and nothing has run since
        listed: dict[str, Any] = self.resources  # type: ignore[has-type]
        self.resources = EventsByPod(listed)
        return version


@contextlib.contextmanager
def _no_default_client() -> Iterator[None]:
    """KubeSpawner.__init__ without its last two steps, loading the process-wide default cluster
    configuration and making a client from it; and a reflector's without its client from that default.

    Every cluster of a MultiClusterSpawner comes from ClusterSet, with a client of its own, so that
    default is never used. Loading it costs a thread and an event loop per spawner, and where the hub
    has no default kubeconfig it fails each time with a "Config not found" warning, uncached. The
    swap happens between two statements of one synchronous call, so nothing else runs meanwhile.
    """
    module: Any = kubespawner.spawner
    reflector: Any = kubespawner.reflector
    saved = module.load_config, module.shared_client, reflector.shared_client
    module.load_config = lambda **kwargs: None
    module.shared_client = reflector.shared_client = lambda *args, **kwargs: None
    try:
        yield
    finally:
        module.load_config, module.shared_client, reflector.shared_client = saved


def gave_up(reflector: Any) -> bool:
    """Whether a KubeSpawner reflector is dead: its watch stopped on its own (KubeSpawner's gives up
    after about a minute of errors, an on-prem outage say) or its first LIST failed. One still
    starting, or stopped on purpose, is not."""
    if reflector._stopping or not reflector.first_load_future.done():
        return False
    if reflector.first_load_future.exception() is not None:
        return True
    task = reflector.watch_task
    return task is None or task.done()


def stalled(reflector: Any, now: float) -> bool:
    """Whether a live reflector is not watching now although it will try again by itself: its last
    LIST failed and it waits out a retry (KubeSpawner's waits up to 25.6 s), its LIST has gone
    unanswered for its watch's server-side timeout, or it began no LIST for twice that timeout (a LIST
    or a watch that hangs, as over a blackholed link). A healthy one LISTs again each time the server
    ends its watch, and its LIST is answered at once. One that gave up, is starting or was stopped is
    not stalled (see ``gave_up``); ``now`` is ``time.monotonic()``."""
    if reflector._stopping or not reflector.first_load_future.done():
        return False
    if reflector.first_load_future.exception() is not None:
        return False
    task = reflector.watch_task
    if task is None or task.done():
        return False
    if getattr(reflector, "failing_since", None) is not None:
        return True
    listed = getattr(reflector, "listed_at", None)
    limit = reflector.timeout_seconds
    if listed is None or limit <= 0:
        return False
    answered = getattr(reflector, "answered_at", listed)
    if (answered is None or answered < listed) and now - listed > limit:
        return True
    return bool(now - listed > 2 * limit)


class MultiClusterSpawner(KubeSpawner):  # type: ignore[misc]
    """A KubeSpawner whose server may be in any cluster of ``ClusterSet.clusters``: each call goes to
    the server's cluster, and that cluster's outage never makes the hub forget the server."""

    reflectors: ClassVar[dict[Any, ResourceReflector]] = {}  # keyed by (cluster, kind, namespace)
    _clients: ClassVar[dict[tuple[int, str], ClusterClient]] = {}
    _restart_tried: ClassVar[dict[tuple[int, Any], float]] = {}  # by (event loop, reflector key)
    # when a quick LIST last went unanswered, by (event loop, cluster)
    _unanswered: ClassVar[dict[tuple[int, str | None], float]] = {}
    _warned_namespaces: ClassVar[set[str]] = set()

    service_annotations = Dict(
        Unicode(),
        config=True,
        help="""Annotations on the per-user Service of clusters with ``pod_access: service``, e.g. for
        an internal AWS Network Load Balancer (AWS Load Balancer Controller):
        ``{"service.beta.kubernetes.io/aws-load-balancer-type": "external",
        "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
        "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip"}``.""",
    )

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        with _no_default_client():
            super().__init__(*args, **kwargs)
        self.cluster_set = ClusterSet(parent=self)
        self.cluster_name: str | None = None  # where the server is, or is being tried
        self.api: Any = None  # that cluster's CoreV1Api (never the process-wide default)
        self.access_url: str | None = None  # the server's URL through its Service (pod_access: service)

    def cluster_config(self, name: str) -> ClusterConfig:
        return self.cluster_set.get(name)

    async def cluster_client(self, name: str) -> ClusterClient:
        """The client of cluster ``name``: one per cluster and event loop, shared by all spawners."""
        key = (id(asyncio.get_running_loop()), name)
        client = self._clients.get(key)
        if client is None:
            client = ClusterClient(self.cluster_config(name), parent=self)
            await client.start()
            self._clients[key] = client
        return client

    async def use_cluster(self, name: str) -> ClusterConfig:
        """Point the spawner (its API, namespace and watches) at cluster ``name``."""
        cluster = self.cluster_config(name)
        if cluster.user_namespace_template and name not in self._warned_namespaces:
            self._warned_namespaces.add(name)
            self.log.warning(
                "cluster %s: user_namespace_template is not used yet; notebooks go to namespace %s",
                name,
                cluster.namespace,
            )
        self.cluster_name = name
        self.api = (await self.cluster_client(name)).core()
        self.namespace = cluster.namespace
        return cluster

    def forget_claim(self) -> None:
        """The home claim may not exist in the cluster about to be used: KubeSpawner 7.1 skips the
        claim's create once it has seen it, in whatever cluster that was."""
        self._pvc_exists = False

    def start_done(self) -> bool:
        """Whether KubeSpawner's start, begun by ``start()``, has ended."""
        return self._start_future is not None and bool(self._start_future.done())

    @property
    def events(self) -> list[dict[str, Any]]:
        """KubeSpawner's ``events``: this pod's events, oldest first, after ``_last_event`` (the marker
        its start sets). KubeSpawner sorts every event of the namespace and then picks the pod's;
        picking first (from ``EventsByPod``, without a scan) sorts a handful, the same ones in the same
        order (both sorts are stable)."""
        if not self.event_reflector:
            return []
        every = self.event_reflector.resources
        if isinstance(every, EventsByPod):
            mine = every.of(self.pod_name)
        else:
            mine = [e for e in every.values() if e["involvedObject"]["name"] == self.pod_name]
        mine.sort(key=lambda event: event["lastTimestamp"] or event["eventTime"])
        events: list[dict[str, Any]] = []
        for event in mine:
            if self._last_event and event["metadata"]["uid"] == self._last_event:
                events = []  # only what came after the marker
            else:
                events.append(event)
        return events

    def pod_host_ip(self) -> str | None:
        """The address of the node the server's pod runs on, from the pod watch (None: not yet)."""
        pod = self.pod_reflector.pods.get(f"{self.namespace}/{self.pod_name}") or {}
        host: str | None = (pod.get("status") or {}).get("hostIP")
        return host

    # ------------------------------------------------------------------ KubeSpawner's watches

    async def _start_reflector(
        self, kind: str, reflector_class: type[ResourceReflector], replace: bool = False, **kwargs: Any
    ) -> ResourceReflector:
        key = self._get_reflector_key(kind)
        previous = self.__class__.reflectors.get(key)
        if previous is None or replace:
            return await super()._start_reflector(kind, reflector_class, replace=replace, **kwargs)
        # KubeSpawner reuses a reflector that gave up for good; start that one again instead
        if gave_up(previous):
            self.log.warning(
                "the %s watch on cluster %s had given up; starting it again", kind, self.cluster_name
            )
            return await self._replace_reflector(key, previous, kind, reflector_class, **kwargs)
        # one that waits out a retry would leave this spawn or poll blind until then, up to 25.6 s
        # after its cluster is back: started again as soon as the cluster answers
        if (
            self._stale(previous)
            and await self._may_restart(key)
            and self.__class__.reflectors.get(key) is previous  # no one replaced it meanwhile
        ):
            self.log.info(
                "the %s watch on cluster %s was waiting to retry; the cluster answers: starting it again",
                kind,
                self.cluster_name,
            )
            try:
                return await self._replace_reflector(key, previous, kind, reflector_class, **kwargs)
            except Exception as exc:
                # the old one goes on retrying by itself, as it would have without this
                self.log.warning(
                    "the %s watch on cluster %s did not start again: %s", kind, self.cluster_name, exc
                )
        return await super()._start_reflector(kind, reflector_class, replace=False, **kwargs)

    async def _replace_reflector(
        self,
        key: Any,
        previous: ResourceReflector,
        kind: str,
        reflector_class: type[ResourceReflector],
        **kwargs: Any,
    ) -> ResourceReflector:
        """KubeSpawner's replacement of a reflector, undone when the new one does not start. KubeSpawner
        puts the new one in place before its first LIST; if that LIST fails, or the caller stops
        waiting, the old one, which KubeSpawner stops only after, is put back."""
        try:
            return await super()._start_reflector(kind, reflector_class, replace=True, **kwargs)
        except BaseException:
            current = self.__class__.reflectors.get(key)
            if current is not previous and (current is None or current.watch_task is None):
                self.__class__.reflectors[key] = previous
                if current is not None and current.first_load_future.done():
                    current.first_load_future.exception()  # raised to the caller: not "never retrieved"
            raise

    async def _may_restart(self, key: Any) -> bool:
        """Whether a stalled watch of this spawner's cluster may start again now: its cluster answers a
        quick LIST of the spawner's namespace. Polls ask at most once every RESTART_EVERY seconds per
        watch (``_POLLING``)."""
        tried = (id(asyncio.get_running_loop()), key)
        now = time.monotonic()
        if _POLLING.get() and now - self._restart_tried.get(tried, -math.inf) < RESTART_EVERY:
            return False
        self._restart_tried[tried] = now
        return await self._answers()

    async def _answers(self) -> bool:
        """Whether this spawner's cluster answers a quick LIST of at most one pod of its namespace:
        what the pod watch's own LIST asks, so an answer means that LIST will be answered too. In a
        poll, a cluster that left such a LIST unanswered less than RESTART_EVERY seconds ago is not
        asked again: while it is out of reach, a poll waits for one timeout at most, not one each."""
        key = (id(asyncio.get_running_loop()), self.cluster_name)
        if _POLLING.get() and time.monotonic() - self._unanswered.get(key, -math.inf) < RESTART_EVERY:
            return False
        try:
            client = await self.cluster_client(self.cluster_name)  # type: ignore[arg-type]
            await client.call(
                client.core().list_namespaced_pod, self.namespace, limit=1, _request_timeout=PROBE_TIMEOUT
            )
        except Exception as exc:
            self._unanswered[key] = time.monotonic()
            self.log.debug("cluster %s does not answer yet: %s", self.cluster_name, exc)
            return False
        self._unanswered.pop(key, None)
        return True

    def _stale(self, reflector: Any) -> bool:
        """Whether a live watch of this spawner's cluster may not see the cluster as it is now: it is
        stalled, or a check of its cluster went unanswered after its last LIST began, so that LIST or
        the watch after it may hang over a link that was down, for a while even after its return."""
        if stalled(reflector, time.monotonic()):
            return True
        if reflector._stopping or not reflector.first_load_future.done() or gave_up(reflector):
            return False  # starting, stopped or given up: not a live watch
        unanswered = self._unanswered.get((id(asyncio.get_running_loop()), self.cluster_name))
        listed = getattr(reflector, "listed_at", None)
        return unanswered is not None and listed is not None and unanswered > listed

    def _pod_watch_current(self) -> bool:
        """Whether the pod watch on this spawner's cluster sees the cluster as it is now: loaded, and
        neither given up nor stale. Otherwise what it holds is the cluster as it was last seen."""
        reflector = self.__class__.reflectors.get(self._get_reflector_key("pods"))
        if reflector is None or not reflector.first_load_future.done():
            return False
        return not gave_up(reflector) and not self._stale(reflector)

    def _get_reflector_key(self, kind: str) -> tuple[Any, ...]:
        return (self.cluster_name, kind, None if self.enable_user_namespaces else self.namespace)

    async def _start_watching_pods(self, replace: bool = False) -> ResourceReflector:
        return await self._start_reflector(
            kind="pods",
            reflector_class=ClusterPodReflector,
            labels={"component": self.component_label},
            omit_namespace=self.enable_user_namespaces,
            replace=replace,
        )

    async def _start_watching_events(self, replace: bool = False) -> ResourceReflector:
        return await self._start_reflector(
            kind="events",
            reflector_class=ClusterEventReflector,
            fields={"involvedObject.kind": "Pod"},
            omit_namespace=self.enable_user_namespaces,
            replace=replace,
        )

    # ------------------------------------------------------------------ what the pod and Service get

    def get_env(self) -> dict[str, str]:
        env: dict[str, str] = super().get_env()
        if self.cluster_name is None:
            return env
        # pods reach the hub at their own cluster's address for it
        connect = self.cluster_config(self.cluster_name).hub_connect_url.rstrip("/")
        api = connect + url_path_join(self.hub.base_url, "api")
        for key in ("JUPYTERHUB_API_URL", "JUPYTERHUB_ACTIVITY_URL"):
            if key in env:
                env[key] = env[key].replace(self.hub.api_url.rstrip("/"), api, 1)
        env["HYBRIDHUB_CLUSTER"] = self.cluster_name
        return env

    def get_service_manifest(self, owner_reference: Any, *args: Any, **kwargs: Any) -> Any:
        """The per-user Service of a ``pod_access: service`` cluster: a LoadBalancer or a NodePort.
        (KubeSpawner 7.1 passes the port as well.)"""
        service = super().get_service_manifest(owner_reference, *args, **kwargs)
        cluster = self.cluster_config(self.cluster_name) if self.cluster_name else None
        if cluster is not None and cluster.pod_access == "service" and cluster.service_type:
            service.spec.type = cluster.service_type
            annotations = service.metadata.annotations or {}
            service.metadata.annotations = {**annotations, **self.service_annotations}
        return service

    def _get_pod_url(self, pod: dict[str, Any]) -> str:
        # KubeSpawner's poll compares this with the server's URL and "corrects" a difference: through
        # a Service, the address is the load balancer's or the node port's, not the cluster DNS name
        cluster = self.cluster_config(self.cluster_name) if self.cluster_name else None
        if self.access_url and cluster is not None and cluster.pod_access == "service":
            return self.access_url
        return str(super()._get_pod_url(pod))

    # ------------------------------------------------------------------ state

    def get_state(self) -> dict[str, Any]:
        state: dict[str, Any] = super().get_state()
        if self.cluster_name:
            state["hybridhub"] = {"version": STATE_VERSION, "cluster": self.cluster_name}
            if self.access_url:
                state["hybridhub"]["access_url"] = self.access_url
        return state

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        hybrid = state.get("hybridhub") or {}
        if hybrid.get("cluster"):  # versions 1 and 2; older states had no cluster: nothing to restore
            self.cluster_name = hybrid["cluster"]
        self.access_url = hybrid.get("access_url") or None

    def clear_state(self) -> None:
        super().clear_state()
        self.cluster_name = None
        self.access_url = None

    # ------------------------------------------------------------------ poll, stop

    async def poll(self) -> int | None:
        if self.cluster_name is None:
            return 0 if self.pod_name is None else 1
        polling = _POLLING.set(True)
        try:
            await self.use_cluster(self.cluster_name)
            # a watch that gave up during an outage is started again once the cluster answers
            await asyncio.wait_for(self._start_watching_pods(), timeout=self.k8s_api_request_timeout * 3)
            status: int | None = await asyncio.wait_for(
                super().poll(), timeout=self.k8s_api_request_timeout * 3
            )
        except Exception as exc:
            # a cluster we cannot reach right now still has the server: answering "stopped"
            # would make the hub forget a running notebook
            self.log.warning(
                "%s: cannot check the server on %s (%s); assuming it runs",
                self.user.name,
                self.cluster_name,
                exc,
            )
            self._count_as_active()
            return None
        finally:
            _POLLING.reset(polling)
        if status is None and not self._pod_watch_current():
            self._count_as_active()  # "running" as last seen: the hub cannot see the server now
        return status

    def _count_as_active(self) -> None:
        """Record the server as active now, while the hub cannot see it. Its own reports of activity
        and the proxy's cannot reach the hub over a link that is down, and the idle culler stops a
        server whose recorded activity is older than its timeout: without this, an outage longer than
        that timeout would stop every server of the cluster, busy or not. Time out of sight is taken
        as activity, so a server's idle time counts again from the moment its cluster is back."""
        orm_spawner = self.orm_spawner
        if orm_spawner is None or self.db is None:
            return
        now = utcnow(with_tz=False)
        orm_spawner.last_activity = max(orm_spawner.last_activity or now, now)
        orm_user = getattr(self.user, "orm_user", None)
        if orm_user is not None:
            orm_user.last_activity = max(orm_user.last_activity or now, now)
        self.db.commit()

    async def stop(self, now: bool = False) -> None:
        try:
            await self.stop_pod(now=now)
        except ClusterUnreachable as exc:
            # JupyterHub marks the server stopped and revokes its token; the service's leftover sweep
            # removes the pod once the cluster answers and the hub no longer runs that server
            self.log.warning(
                "%s: %s; the server's pod %s there is removed once it answers",
                self.user.name,
                exc,
                self.pod_name,
            )

    async def stop_pod(self, now: bool = False) -> None:
        """KubeSpawner's stop in the server's cluster, or ClusterUnreachable within PROBE_TIMEOUT when
        that cluster does not answer a quick LIST. KubeSpawner's own stop would retry its delete there
        for k8s_api_request_retry_timeout and then fail, and a delete sent over a hung link may be
        carried out when the link returns, after a new pod of that name was made."""
        if self.cluster_name is not None:
            await self.use_cluster(self.cluster_name)
            # asked even when the pod watch looks current: a link that hung a moment ago looks so too
            if not await self._answers():
                raise ClusterUnreachable(f"{self.cluster_name} does not answer")
            with contextlib.suppress(Exception):  # KubeSpawner's stop says what is wrong, if anything
                await asyncio.wait_for(self._start_watching_pods(), timeout=self.k8s_api_request_timeout * 3)
        await super().stop(now=now)
