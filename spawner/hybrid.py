"""HybridSpawner: KubeSpawner that asks the hybridhub service where to run and falls back fast."""

from __future__ import annotations

import asyncio
import contextlib
import copy
import json
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import aiohttp
from jupyterhub.utils import exponential_backoff, url_path_join
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import ConfigException
from kubespawner import KubeSpawner
from kubespawner.reflector import ResourceReflector
from kubespawner.spawner import EventReflector, PodReflector
from prometheus_client import Counter, Histogram
from tornado import web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from traitlets import Callable as CallableTrait
from traitlets import Dict, Float, Integer, List, Unicode, Union, default

from spawner.core.clusters import ClusterConfig, ClusterSet
from spawner.core.labels import CLUSTER_LABEL, GPU, PRODUCT_LABEL
from spawner.kube.client import ClusterClient
from spawner.spawning.events import Verdict, read_event
from spawner.spawning.form import options_from_form, render_form
from spawner.spawning.home import home_note, usual_home, with_home
from spawner.spawning.options import GpuOptions, OptionsError, parse_options

__all__ = ["HybridSpawner", "SpawnRefused"]

STATE_VERSION = 2  # 1: {"cluster"}; 2 adds "access_url" (the Service address of pod_access: service)
# Traits an attempt sets; each attempt starts from the configured values (jupyterhub#3095).
_ATTEMPT_TRAITS = (
    "namespace",
    "node_affinity_required",
    "node_affinity_preferred",
    "tolerations",
    "extra_resource_limits",
    "node_selector",
    "volumes",
    "volume_mounts",
    "storage_pvc_ensure",
    "storage_capacity",
    "storage_class",
    "services_enabled",
    "extra_labels",
)


try:  # JupyterHub 6: the spawn failure users read, with a reason label for metrics
    from jupyterhub.spawner import SpawnException as _SpawnException
except ImportError:  # JupyterHub 5.5
    _SpawnException = None


if _SpawnException is not None:

    class SpawnRefused(_SpawnException):  # type: ignore[misc]
        """A spawn failure the user reads (JupyterHub 6's SpawnException)."""

        def __init__(self, message: str, reason: str = "hybridhub") -> None:
            super().__init__(message, reason=reason)
            self.jupyterhub_message = message

else:

    class SpawnRefused(Exception):  # type: ignore[no-redef]
        """A spawn failure the user reads: JupyterHub 5.5 shows ``jupyterhub_message``, not "HTTP 500"."""

        def __init__(self, message: str, reason: str = "hybridhub") -> None:
            super().__init__(message)
            self.reason = reason
            self.jupyterhub_message = message
            self.jupyterhub_html_message = None
            self.log_message = "%s"  # the API's write_error formats log_message % args


# In the hub's own registry: JupyterHub serves it at /hub/metrics.
PLACEMENTS = Counter(
    "hybridhub_spawn_placements",
    "Servers started, by cluster and why: on-prem, burst (the cloud because on-prem could not), "
    "pinned (the user chose the cluster), retry (after an attempt failed fast)",
    ["cluster", "reason"],
)
FALLBACKS = Counter(
    "hybridhub_spawn_fallbacks", "Spawn attempts abandoned for the next candidate", ["cluster"]
)
PLACEMENT_SECONDS = Histogram(
    "hybridhub_spawn_placement_seconds",
    "Time to get candidates from the hybridhub service",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
REFUSED = Counter("hybridhub_spawn_refusals", "Spawns refused before any pod was made, by reason", ["reason"])


def _why(cluster: ClusterConfig, opts: GpuOptions, attempt: int) -> str:
    if attempt:
        return "retry"
    if opts.cluster != "auto":
        return "pinned"
    return "on-prem" if cluster.role.value == "onprem" else "burst"


class _NoRoom(Exception):
    """This candidate cannot take the pod after all."""


def _cluster_api(parent: Any) -> Any:
    return parent.api


class _ClusterPodReflector(PodReflector):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api = _cluster_api(self.parent)  # the spawner's cluster, not the global default


class _ClusterEventReflector(EventReflector):  # type: ignore[misc]
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.api = _cluster_api(self.parent)


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


class HybridSpawner(KubeSpawner):  # type: ignore[misc]
    """Places each notebook through the hybridhub service: on-prem first, the cloud when needed."""

    reflectors: ClassVar[dict[Any, ResourceReflector]] = {}  # keyed by (cluster, kind, namespace)
    _clients: ClassVar[dict[tuple[int, str], ClusterClient]] = {}
    _warned_namespaces: ClassVar[set[str]] = set()

    service_url = Unicode(
        config=True,
        help="""The hybridhub service's URL as the hub reaches it, with its prefix, e.g.
        ``http://127.0.0.1:10101/services/hybridhub/`` (default: $HYBRIDHUB_SERVICE_URL).""",
    )
    service_token = Unicode(
        config=True,
        help="""Token for the service's placement API: a service token with the
        ``custom:hybridhub:place`` scope (default: $HYBRIDHUB_HUB_TOKEN). Never logged.""",
    )
    service_timeout = Float(10.0, config=True, help="Seconds a request to the hybridhub service may take.")
    max_gpus = Integer(8, config=True, help="The most GPUs one server may ask for (the largest node's).")
    gpu_products = List(
        Unicode(),
        config=True,
        help="""GPU products on offer, as their ``nvidia.com/gpu.product`` label values
        (e.g. ``["NVIDIA-A100-SXM4-80GB", "NVIDIA-L40S"]``); empty: any product a cluster has.""",
    )
    allowed_clusters = Union(
        [List(Unicode()), CallableTrait()],
        allow_none=True,
        default_value=None,
        config=True,
        help="""Clusters a user may use: a list, or a callable ``(spawner) -> list | None`` (e.g. by
        group). None: all clusters.""",
    )
    gpu_limit = Union(
        [Integer(), CallableTrait()],
        allow_none=True,
        default_value=None,
        config=True,
        help="""GPUs a user may hold at once across their servers: a number, or a callable
        ``(spawner) -> int | None`` (e.g. per group). None: no limit.""",
    )
    max_attempts = Integer(3, config=True, help="Candidates tried before a spawn gives up.")
    home_mount_path = Unicode(
        "/home/jovyan",
        config=True,
        help="""Where a cluster's ``home_storage`` (``ClusterSet.clusters``) is mounted in the notebook
        container; a configured volume mount at this path gives way to it. Clusters with
        ``home_storage: none`` keep the configured ``volumes``/``volume_mounts`` as they are.""",
    )
    service_annotations = Dict(
        Unicode(),
        config=True,
        help="""Annotations on the per-user Service of clusters with ``pod_access: service``, e.g. for
        an internal AWS Network Load Balancer (AWS Load Balancer Controller):
        ``{"service.beta.kubernetes.io/aws-load-balancer-type": "external",
        "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
        "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip"}``.""",
    )
    service_address_timeout = Float(
        300.0,
        config=True,
        help="""Seconds a cluster with ``pod_access: service`` and ``service_type: LoadBalancer`` may
        take to give the server's Service an address (an AWS load balancer takes a minute or two).""",
    )
    answer_poll_interval = Float(
        0.25,
        config=True,
        help="""Seconds between checks that a started server answers HTTP, before start() returns (0:
        no checks). JupyterHub's own wait after start() backs off exponentially, up to 5 s between
        tries, so a server that needs a few seconds after its pod runs would be seen up to 5 s late;
        checked at this steady pace, it is seen at once. Bounded by ``http_timeout``.""",
    )
    elastic_deadline = Float(
        600.0,
        config=True,
        help="""Seconds an elastic pool (cluster-autoscaler, Karpenter) may take to bring a node
        when the pool does not set its own ``provisioning_deadline``.""",
    )

    @default("apply_user_options")
    def _default_apply_user_options(self) -> Any:
        def apply(spawner: HybridSpawner, user_options: dict[str, Any]) -> None:
            # JupyterHub (5.3+) turns a raised HTTPError into the API's answer: a 400 users read
            try:
                spawner.gpu_options(user_options)
            except SpawnRefused as exc:
                raise web.HTTPError(400, exc.jupyterhub_message) from exc

        return apply

    @default("options_form")
    def _default_options_form(self) -> Any:
        async def form(spawner: HybridSpawner) -> str:
            return await spawner.render_options_form()

        return form

    @default("options_from_form")
    def _default_options_from_form(self) -> Any:
        return options_from_form

    async def render_options_form(self) -> str:
        """The spawn form, with live GPU availability from the service (the form works without it)."""
        capacity = None
        try:
            code, body = await self._service("GET", "api/capacity")
            capacity = body if code == 200 else None
        except SpawnRefused as exc:
            self.log.warning("spawn form without live availability: %s", exc)
        return render_form(
            capacity,
            products=self.gpu_products,
            max_gpus=self.max_gpus,
            allowed_clusters=self._allowed(),
            previous=self.user_options or None,
        )

    @default("service_url")
    def _default_service_url(self) -> str:
        import os

        return os.environ.get("HYBRIDHUB_SERVICE_URL", "http://127.0.0.1:10101/services/hybridhub/")

    @default("service_token")
    def _default_service_token(self) -> str:
        import os

        return os.environ.get("HYBRIDHUB_HUB_TOKEN", "")

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # KubeSpawner.__init__ ends by loading the process-wide default kubeconfig, which a hub
        # whose clusters all come from ClusterSet need not have; everything else is set by then.
        with contextlib.suppress(ConfigException):
            super().__init__(*args, **kwargs)
        self.cluster_set = ClusterSet(parent=self)
        self.cluster_name: str | None = None
        self._configured = self._snapshot()  # the operator's values
        self._base = self._configured  # this spawn's: configured values plus what hooks changed
        self._applied: dict[str, Any] = {}  # what the last attempt set
        self._messages: list[str] = []
        self._reservation: str | None = None
        self.api: Any = None  # the chosen cluster's CoreV1Api (never the process-wide default)
        self.access_url: str | None = None  # the server's URL through its Service (pod_access: service)

    # ------------------------------------------------------------------ clusters

    def _config(self, name: str) -> ClusterConfig:
        return self.cluster_set.get(name)

    async def _client(self, name: str) -> ClusterClient:
        key = (id(asyncio.get_running_loop()), name)
        client = self._clients.get(key)
        if client is None:
            client = ClusterClient(self._config(name), parent=self)
            await client.start()
            self._clients[key] = client
        return client

    async def _use_cluster(self, name: str) -> ClusterConfig:
        cluster = self._config(name)
        if cluster.user_namespace_template and name not in self._warned_namespaces:
            self._warned_namespaces.add(name)
            self.log.warning(
                "cluster %s: user_namespace_template is not used yet; notebooks go to namespace %s",
                name,
                cluster.namespace,
            )
        self.cluster_name = name
        self.api = (await self._client(name)).core()
        self.namespace = cluster.namespace
        return cluster

    async def _start_reflector(
        self, kind: str, reflector_class: type[ResourceReflector], replace: bool = False, **kwargs: Any
    ) -> ResourceReflector:
        # KubeSpawner reuses a reflector that gave up for good; start that one again instead
        previous = self.__class__.reflectors.get(self._get_reflector_key(kind))
        if previous is not None and not replace and gave_up(previous):
            self.log.warning(
                "the %s watch on cluster %s had given up; starting it again", kind, self.cluster_name
            )
            replace = True
        return await super()._start_reflector(kind, reflector_class, replace=replace, **kwargs)

    def _get_reflector_key(self, kind: str) -> tuple[Any, ...]:
        return (self.cluster_name, kind, None if self.enable_user_namespaces else self.namespace)

    async def _start_watching_pods(self, replace: bool = False) -> ResourceReflector:
        return await self._start_reflector(
            kind="pods",
            reflector_class=_ClusterPodReflector,
            labels={"component": self.component_label},
            omit_namespace=self.enable_user_namespaces,
            replace=replace,
        )

    async def _start_watching_events(self, replace: bool = False) -> ResourceReflector:
        return await self._start_reflector(
            kind="events",
            reflector_class=_ClusterEventReflector,
            fields={"involvedObject.kind": "Pod"},
            omit_namespace=self.enable_user_namespaces,
            replace=replace,
        )

    def get_env(self) -> dict[str, str]:
        env: dict[str, str] = super().get_env()
        if self.cluster_name is None:
            return env
        connect = self._config(self.cluster_name).hub_connect_url.rstrip("/")
        api = connect + url_path_join(self.hub.base_url, "api")
        for key in ("JUPYTERHUB_API_URL", "JUPYTERHUB_ACTIVITY_URL"):
            if key in env:
                env[key] = env[key].replace(self.hub.api_url.rstrip("/"), api, 1)
        env["HYBRIDHUB_CLUSTER"] = self.cluster_name
        return env

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
        # the server is gone: the next spawn's hooks start from the configured values again
        for name, value in self._configured.items():
            setattr(self, name, copy.deepcopy(value))
        self._applied = {}

    def _snapshot(self) -> dict[str, Any]:
        return {name: copy.deepcopy(getattr(self, name)) for name in _ATTEMPT_TRAITS}

    def _spawn_base(self) -> dict[str, Any]:
        """The values each attempt of this spawn starts from: what JupyterHub's hooks
        (auth_state_hook, apply_user_options, pre_spawn_hook) made of the configuration, without
        what an earlier attempt set (a value still equal to it is the configured one again)."""
        base = {}
        for name, value in self._snapshot().items():
            ours = name in self._applied and value == self._applied[name]
            base[name] = copy.deepcopy(self._configured[name]) if ours else value
        return base

    def _get_pod_url(self, pod: dict[str, Any]) -> str:
        # KubeSpawner's poll compares this with the server's URL and "corrects" a difference: through
        # a Service, the address is the load balancer's or the node port's, not the cluster DNS name
        if self.access_url and self.cluster_name and self._config(self.cluster_name).pod_access == "service":
            return self.access_url
        return str(super()._get_pod_url(pod))

    # ------------------------------------------------------------------ options

    def _allowed(self) -> list[str] | None:
        value = self.allowed_clusters
        return list(value(self)) if callable(value) else (list(value) if value is not None else None)

    def _limit(self) -> int | None:
        value = self.gpu_limit
        return value(self) if callable(value) else value  # type: ignore[no-any-return]

    def gpu_options(self, user_options: dict[str, Any] | None = None) -> GpuOptions:
        try:
            return parse_options(
                self.user_options if user_options is None else user_options,
                max_gpus=self.max_gpus,
                products=self.gpu_products,
                clusters=[c.name for c in self.cluster_set.configs],
                allowed_clusters=self._allowed(),
            )
        except OptionsError as exc:
            raise SpawnRefused(str(exc)) from exc

    # ------------------------------------------------------------------ the service

    async def _service(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        req = HTTPRequest(
            url_path_join(self.service_url, path),
            method=method,
            headers={"Authorization": f"token {self.service_token}", "Content-Type": "application/json"},
            body=None if body is None else json.dumps(body),
            request_timeout=self.service_timeout,
            connect_timeout=self.service_timeout,
            allow_nonstandard_methods=True,
        )
        try:
            resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        except (OSError, HTTPClientError) as exc:
            raise SpawnRefused(
                f"The GPU placement service is unreachable ({exc}); try again shortly."
            ) from exc
        if resp.code == 599:
            raise SpawnRefused("The GPU placement service did not answer in time; try again shortly.")
        text = resp.body.decode() if resp.body else ""
        return resp.code, json.loads(text) if text else None

    async def _place(self, opts: GpuOptions) -> list[dict[str, Any]]:
        code, body = await self._service(
            "POST",
            "api/placements",
            {
                "user": self.user.name,
                "gpus": opts.gpus,
                "gpu_product": opts.gpu_product,
                "cluster": opts.cluster,
                "allowed_clusters": self._allowed(),
                "gpu_quota": self._limit(),
                "gpus_in_use": self._gpus_in_use(),
            },
        )
        if code == 409:
            raise SpawnRefused(body["message"], reason="capacity")
        if code != 200:
            message = (body or {}).get("message", f"HTTP {code}")
            raise SpawnRefused(f"The GPU placement service refused the request: {message}")
        return list(body["candidates"])

    def _gpus_in_use(self) -> int:
        """GPUs the user's other running servers asked for (the limit spans all of them)."""
        total = 0
        for other in getattr(self.user, "spawners", {}).values():
            if other is self or not getattr(other, "active", False):
                continue
            gpus = (getattr(other, "user_options", None) or {}).get("gpus") or 0
            total += gpus if isinstance(gpus, int) else 0
        return total

    async def _release(self) -> None:
        rid, self._reservation = self._reservation, None
        if rid:
            with contextlib.suppress(SpawnRefused):
                await self._service("DELETE", f"api/placements/{rid}")

    # ------------------------------------------------------------------ start

    def _say(self, message: str) -> None:
        self.log.info("%s: %s", self.user.name, message)
        self._messages.append(message)

    def _apply(self, cluster: ClusterConfig, candidate: dict[str, Any], opts: GpuOptions) -> None:
        for name, value in self._base.items():
            setattr(self, name, copy.deepcopy(value))
        self.namespace = cluster.namespace
        pool = cluster.pool(candidate["pool"])
        base: dict[str, Any] = {name: getattr(self, name) for name in _ATTEMPT_TRAITS}
        if opts.gpus:
            self.extra_resource_limits = {**base["extra_resource_limits"], GPU: str(opts.gpus)}
        selector = {**base["node_selector"], **pool.node_selector}
        if opts.gpu_product:
            selector[PRODUCT_LABEL] = opts.gpu_product
        self.node_selector = selector
        self.tolerations = [*base["tolerations"], *(dict(t) for t in pool.tolerations)]
        if candidate["nodes"]:
            term = {"matchFields": [{"key": "metadata.name", "operator": "In", "values": candidate["nodes"]}]}
            self.node_affinity_required = [*base["node_affinity_required"], term]
        # marks the pods (and Services, PVCs) it makes: the service's leftover sweep looks only at these
        self.extra_labels = {**base["extra_labels"], CLUSTER_LABEL: cluster.name}
        self._apply_home(cluster, base)
        self.services_enabled = bool(base["services_enabled"]) or cluster.pod_access == "service"
        if candidate.get("preferred_node"):
            self.node_affinity_preferred = [
                *base["node_affinity_preferred"],
                {
                    "weight": 100,
                    "preference": {
                        "matchFields": [
                            {
                                "key": "metadata.name",
                                "operator": "In",
                                "values": [candidate["preferred_node"]],
                            }
                        ]
                    },
                },
            ]
        self._applied = self._snapshot()

    def _apply_home(self, cluster: ClusterConfig, base: dict[str, Any]) -> None:
        home = cluster.home_storage
        if home.kind == "none":
            return
        containers = (*self.init_containers, *self.extra_containers)
        others = [m for c in containers for m in c.get("volumeMounts") or []]
        self.volumes, self.volume_mounts = with_home(
            home,
            base["volumes"],
            base["volume_mounts"],
            claim_name="{pvc_name}",  # KubeSpawner expands it
            mount_path=self.home_mount_path,
            other_mounts=others,
        )
        if home.kind == "pvc":
            self.storage_pvc_ensure = True
            self.storage_capacity = home.size
            self.storage_class = home.storage_class
            self._pvc_exists = False  # made on another cluster is not made here (KubeSpawner 7.1 checks)
        elif not any(
            (v.get("persistentVolumeClaim") or {}).get("claimName") in ("{pvc_name}", self.pvc_name)
            for v in self.volumes
        ):
            self.storage_pvc_ensure = False  # the configured claim was the home this one replaces

    def get_service_manifest(self, owner_reference: Any, *args: Any, **kwargs: Any) -> Any:
        """The per-user Service of a ``pod_access: service`` cluster: a LoadBalancer or a NodePort.
        (KubeSpawner 7.1 passes the port as well.)"""
        service = super().get_service_manifest(owner_reference, *args, **kwargs)
        cluster = self._config(self.cluster_name) if self.cluster_name else None
        if cluster is not None and cluster.pod_access == "service" and cluster.service_type:
            service.spec.type = cluster.service_type
            annotations = service.metadata.annotations or {}
            service.metadata.annotations = {**annotations, **self.service_annotations}
        return service

    async def _service_address(self, cluster: ClusterConfig) -> str:
        """The server's URL through its Service: the load balancer's address, or its node's port."""
        name, namespace = self.pod_name, self.namespace
        said = False

        async def address() -> str | None:
            nonlocal said
            try:
                svc = await asyncio.wait_for(
                    self.api.read_namespaced_service(name, namespace), self.k8s_api_request_timeout
                )
            except (ApiException, TimeoutError, OSError, aiohttp.ClientError) as exc:  # a blip: ask again
                self.log.warning(
                    "%s: cannot read service %s/%s (%s)",
                    self.user.name,
                    namespace,
                    name,
                    getattr(exc, "status", exc),
                )
                return None
            if cluster.service_type == "NodePort":
                pod = self.pod_reflector.pods.get(f"{namespace}/{name}") or {}
                host = (pod.get("status") or {}).get("hostIP")
                port = next((p.node_port for p in svc.spec.ports or [] if p.port == self.port), None)
                return f"http://{host}:{port}" if host and port else None
            ingress = svc.status.load_balancer.ingress if svc.status and svc.status.load_balancer else None
            for entry in ingress or []:
                if entry.ip or entry.hostname:
                    return f"http://{entry.ip or entry.hostname}:{self.port}"
            if not said:
                said = True
                self._say(f"waiting for {cluster.name} to give the server a load-balancer address")
            return None

        try:
            url: str = await exponential_backoff(
                address, f"no address for service {namespace}/{name}", timeout=self.service_address_timeout
            )
        except TimeoutError as exc:
            raise _NoRoom(
                f"{cluster.name} gave the server's Service no address in {self.service_address_timeout:.0f} s"
            ) from exc
        return url

    async def _remove_leftovers(self) -> None:
        """A hub that died mid-start never saved where the pod went: any pod of this server, in any
        cluster, is a leftover now that JupyterHub starts the server afresh (checked concurrently,
        a few seconds at most: an unreachable cluster must not hold up a spawn elsewhere)."""

        async def remove(cluster: ClusterConfig) -> None:
            try:
                client = await self._client(cluster.name)
                await client.call(
                    client.core().delete_namespaced_pod,
                    self.pod_name,
                    cluster.namespace,
                    grace_period_seconds=0,
                    _request_timeout=5,
                )
            except ApiException as exc:
                if exc.status != 404:
                    self.log.warning(
                        "%s: cannot check %s for a leftover pod (%s)",
                        self.user.name,
                        cluster.name,
                        exc.status,
                    )
                return
            except Exception as exc:
                self.log.warning(
                    "%s: cannot check %s for a leftover pod (%s)", self.user.name, cluster.name, exc
                )
                return
            self.log.warning(
                "%s: removed pod %s that an earlier start left in %s",
                self.user.name,
                self.pod_name,
                cluster.name,
            )

        await asyncio.gather(*(remove(c) for c in self.cluster_set.configs))

    async def _start(self) -> str:
        opts = self.gpu_options()
        self._base = self._spawn_base()
        self._messages = []
        self.access_url = None
        cleanup = asyncio.ensure_future(self._remove_leftovers())  # beside placement, not before it
        try:
            with PLACEMENT_SECONDS.time():
                candidates = await self._place(opts)
        except SpawnRefused as exc:
            REFUSED.labels(getattr(exc, "reason", "hybridhub")).inc()
            raise
        finally:
            await cleanup  # never raises: failures are logged
        failures: list[str] = []
        for attempt, candidate in enumerate(candidates[: self.max_attempts]):
            cluster = await self._use_cluster(candidate["cluster"])
            self._reservation = candidate.get("reservation")
            why = candidate["reason"] if attempt == 0 else f"{failures[-1]}; now: {candidate['reason']}"
            note = home_note(usual_home(self.cluster_set.configs), cluster)
            self._say(f"{why}; {note}" if note else why)
            self._apply(cluster, candidate, opts)
            try:
                url: str = await self._attempt(cluster, candidate)
            except (_NoRoom, Exception) as exc:
                if isinstance(exc, SpawnRefused):
                    await self._release()
                    raise
                failures.append(str(exc) if isinstance(exc, _NoRoom) else f"{cluster.name} failed: {exc}")
                FALLBACKS.labels(cluster.name).inc()
                self.log.warning("%s: attempt on %s failed: %s", self.user.name, cluster.name, exc)
                await self._release()
                with contextlib.suppress(Exception):
                    await super().stop(now=True)
                continue
            except BaseException:
                await self._release()
                raise
            await self._release()
            PLACEMENTS.labels(cluster.name, _why(cluster, opts, attempt)).inc()
            return url
        reasons = "; ".join(failures) or "no candidate"
        raise SpawnRefused(
            f"No cluster could start your server now ({reasons}). Try fewer GPUs or later.", reason="capacity"
        )

    async def _attempt(self, cluster: ClusterConfig, candidate: dict[str, Any]) -> str:
        start = asyncio.ensure_future(super()._start())
        watch = asyncio.ensure_future(self._fail_fast(cluster, candidate))
        try:
            done, _ = await asyncio.wait({start, watch}, return_when=asyncio.FIRST_COMPLETED)
            if watch in done and watch.exception() is not None:
                raise watch.exception()  # type: ignore[misc]
            url: str = await start
        finally:
            for task in (start, watch):
                if not task.done():
                    task.cancel()
                    with contextlib.suppress(asyncio.CancelledError, Exception):
                        await task
        if cluster.pod_access == "service":
            url = self.access_url = await self._service_address(cluster)
        await self._until_answering(url)
        return url

    async def _until_answering(self, url: str) -> None:
        """Return once the server answers HTTP at ``url`` (any status but a 5xx), or after
        ``http_timeout``: JupyterHub's own wait then decides."""
        if self.answer_poll_interval <= 0 or url.startswith("https"):
            return  # internal SSL needs the hub's client certificate: leave it to JupyterHub
        target = url_path_join(url, self.server.base_url if self.server else "/", "api")
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.http_timeout
        client = AsyncHTTPClient()
        while loop.time() < deadline:
            req = HTTPRequest(target, connect_timeout=1.0, request_timeout=2.0, follow_redirects=False)
            try:
                resp = await client.fetch(req, raise_error=False)
            except (OSError, HTTPClientError):
                resp = None
            self.log.debug("%s: %s answered %s", self.user.name, target, resp.code if resp else "nothing")
            if resp is not None and resp.code < 500:
                return
            await asyncio.sleep(self.answer_poll_interval)

    async def _fail_fast(self, cluster: ClusterConfig, candidate: dict[str, Any]) -> None:
        """Watch this pod's events: give up on a fixed pool at the first capacity FailedScheduling."""
        elastic = bool(candidate.get("elastic"))
        pool = cluster.pool(candidate["pool"])
        deadline = asyncio.get_running_loop().time() + (pool.provisioning_deadline or self.elastic_deadline)
        seen = 0
        while True:
            await asyncio.sleep(0.25)
            events = self.events if self.event_reflector is not None else []
            for event in events[seen:]:
                message = event.get("message") or ""
                verdict = read_event(event.get("reason") or "", message, elastic=elastic)
                if verdict is Verdict.NO_ROOM:
                    raise _NoRoom(
                        f"{cluster.name} had no room after all ({message.split('. preemption')[0]})"
                    )
                if verdict is Verdict.CANNOT_GROW:
                    raise _NoRoom(f"{cluster.name} pool {pool.name} cannot grow ({message})")
                if verdict is Verdict.SCALING_UP:
                    self._say(
                        f"{cluster.name} is adding a node to pool {pool.name}; this takes a few minutes"
                    )
            seen = len(events)
            if elastic and asyncio.get_running_loop().time() > deadline:
                raise _NoRoom(f"{cluster.name} pool {pool.name} brought no node in time")

    async def progress(self) -> AsyncIterator[dict[str, Any]]:
        """Where and why (our messages), then the pod's events in the cluster it is being tried in."""
        sent, next_event, progress, cluster = 0, 0, 0.0, None
        while True:
            done = self._start_future is not None and self._start_future.done()
            while sent < len(self._messages):
                progress += (90 - progress) / 3
                yield {"progress": int(progress), "message": self._messages[sent]}
                sent += 1
            if self.cluster_name is not None and self.event_reflector is not None:
                if cluster != self.cluster_name:
                    cluster, next_event = self.cluster_name, 0
                events = self.events
                for event in events[next_event:]:
                    progress += (90 - progress) / 3
                    stamp = event.get("lastTimestamp") or event.get("eventTime")
                    yield {
                        "progress": int(progress),
                        "raw_event": event,
                        "message": f"{stamp} [{event['type']}] {event['message']}",
                    }
                next_event = len(events)
            if done:
                return
            await asyncio.sleep(0.5)

    # ------------------------------------------------------------------ poll, stop

    async def poll(self) -> int | None:
        if self.cluster_name is None:
            return 0 if self.pod_name is None else 1
        try:
            await self._use_cluster(self.cluster_name)
            # a watch that gave up during an outage is started again once the cluster answers
            await asyncio.wait_for(self._start_watching_pods(), timeout=self.k8s_api_request_timeout * 3)
            return await asyncio.wait_for(super().poll(), timeout=self.k8s_api_request_timeout * 3)
        except Exception as exc:
            # a cluster we cannot reach right now still has the server: answering "stopped"
            # would make the hub forget a running notebook
            self.log.warning(
                "%s: cannot check the server on %s (%s); assuming it runs",
                self.user.name,
                self.cluster_name,
                exc,
            )
            return None

    async def stop(self, now: bool = False) -> None:
        if self.cluster_name is not None:
            await self._use_cluster(self.cluster_name)
            with contextlib.suppress(Exception):  # KubeSpawner's stop says what is wrong, if anything
                await asyncio.wait_for(self._start_watching_pods(), timeout=self.k8s_api_request_timeout * 3)
        await super().stop(now=now)
