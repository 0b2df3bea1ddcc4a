"""One emulated cluster (store, API server, controllers) and the environment that runs several."""

from __future__ import annotations

import logging
import secrets
import shutil
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web

from .admin import make_admin_app
from .api import ApiServer
from .argo.controller import WorkflowController, workflow_type
from .argo.server import ArgoServer
from .auth import Authenticator
from .autoscaler import Autoscaler, create_node
from .batch.controller import JobController
from .config import ClusterSpec
from .controller import Controller
from .errors import ApiError
from .faults import ApiFaults, FaultUnsupported
from .gate import GatedListener
from .katib.admission import KatibAdmission
from .katib.experiments import ExperimentController
from .katib.trials import TrialController
from .kubelet import Kubelet
from .link import Link
from .logs import PodLogs
from .nodes import AddressPool
from .pvc import VolumeBinder
from .resources import Registry
from .runtimes.base import Runtime
from .runtimes.blackhole import PodBlackhole, nft_available
from .runtimes.local import GATEWAY
from .runtimes.loopback import LoopbackRuntime
from .runtimes.process import ProcessRuntime, can_use_namespaces, veth_prefix
from .runtimes.simulated import SimulatedRuntime
from .scheduler import NodeUsage, Scheduler
from .security import install as install_security
from .serviceproxy import ServiceProxy, default_load_balancer_cidr
from .store import Store, clone
from .tls import ServingCerts, make_serving_certs
from .trainer.controller import TrainJobController
from .trainer.controller import seed as seed_trainer
from .training.controller import PyTorchJobController

__all__ = ["SimCluster", "SimEnvironment"]

_UNREACHABLE = "node.kubernetes.io/unreachable"

log = logging.getLogger(__name__)


def make_runtime(
    spec: ClusterSpec, logs: PodLogs, store: Store, state_dir: Path | None, index: int
) -> Runtime:
    """The cluster's runtime; ``process`` without root falls back to ``process-loopback``, and says so."""
    if spec.runtime == "simulated":
        return SimulatedRuntime(logs, spec.timings.pod_stop)
    if state_dir is None:
        raise ValueError(f"cluster {spec.name}: the {spec.runtime} runtime needs a state directory")
    directory = state_dir / spec.name
    if spec.runtime == "process":
        ok, why = can_use_namespaces()
        if ok:
            return ProcessRuntime(logs, store, directory, veth_prefix(index))
        log.warning(
            "cluster %s: %s; running pods in the process-loopback fallback instead: each pod gets a "
            "127.x.y.z address (in $POD_IP) its command must bind, and no volumes are mounted",
            spec.name,
            why,
        )
    return LoopbackRuntime(logs, store, directory, octet=100 + index)


def _admin_port(runner: web.AppRunner) -> int:
    """The port the runner's one site listens on (it was asked for port 0)."""
    if not runner.addresses:
        raise RuntimeError("the site is not listening")
    return int(runner.addresses[0][1])


class SimCluster:
    """Everything one emulated cluster is: its objects, its API, its controllers."""

    def __init__(
        self,
        spec: ClusterSpec,
        certs: ServingCerts,
        *,
        state_dir: Path | None = None,
        index: int = 0,
        signing_key: bytes | None = None,
    ) -> None:
        self.spec = spec
        self.certs = certs
        self.registry = Registry.with_defaults(spec.custom_resources)
        self.store = Store(self.registry, history=spec.history)
        self.tokens = {spec.user_tokens.get(user) or secrets.token_urlsafe(24): user for user in spec.users}
        self.signing_key = signing_key or secrets.token_bytes(32)
        self.auth = Authenticator(
            static_tokens=self.tokens, signing_key=self.signing_key, groups=spec.user_groups
        )
        self.logs = PodLogs(self.store)
        self.faults = ApiFaults()
        self.api = ApiServer(
            self.store,
            self.auth,
            cluster_name=spec.name,
            bookmark_seconds=spec.timings.bookmark,
            log_reader=self.logs.serve,
            before_request=self.faults.before_request,
        )
        self.runtime = make_runtime(spec, self.logs, self.store, state_dir, index)
        # the site link, part by part: the API, the Services' addresses (in this process), the pods
        self.api_link, self.services_link = Link(), Link()
        self.pod_blackhole: PodBlackhole | None = None
        if isinstance(self.runtime, ProcessRuntime):
            self.pod_blackhole = PodBlackhole(self.runtime.veth_prefix, index)
        self.addresses = AddressPool(spec)
        self.usage = NodeUsage()
        self.controllers: list[Controller] = [
            Scheduler(self.store, self.usage),
            Kubelet(self.store, self.logs, spec.timings, self.runtime),
            Autoscaler(self.store, spec, self.addresses, self.usage),
            VolumeBinder(self.store, spec),
            ServiceProxy(
                self.store,
                spec.load_balancer_cidr or default_load_balancer_cidr(index),
                link=self.services_link,
            ),
            *install_security(self.store, extended_resource_toleration=spec.extended_resource_toleration),
        ]
        if spec.jobs:
            self.controllers.append(JobController(self.store))
        # Argo: the workflow controller, and the Argo Server on a port of its own behind the same link
        self.argo: ArgoServer | None = None
        if spec.argo and workflow_type(self.store) is not None:
            simulated = self.runtime.name == "simulated"
            self.controllers.append(WorkflowController(self.store, self.logs, simulated=simulated))
            self.argo = ArgoServer(self.store, self.auth, self.logs, authorizer=self.api.authorizer)
        # Katib: its webhooks as an admission plugin ahead of the validating ones, and its controllers
        if spec.katib and self.registry.get("kubeflow.org", "v1beta1", "experiments") is not None:
            self.store.admission_plugins.insert(0, KatibAdmission(self.store))
            self.controllers += [ExperimentController(self.store), TrialController(self.store, self.logs)]
        # Kubeflow Trainer: the TrainJob controller (its webhook is an admission plugin); its Jobs need `jobs`
        if spec.trainer and self.registry.get("trainer.kubeflow.org", "v1alpha1", "trainjobs") is not None:
            self.controllers.append(TrainJobController(self.store))
        # Training Operator (v1): the PyTorchJob controller, its validating webhook an admission plugin
        if spec.training_operator and self.registry.get("kubeflow.org", "v1", "pytorchjobs") is not None:
            self.controllers.append(PyTorchJobController(self.store))
        self._argo_runner: web.AppRunner | None = None
        self._argo_listener: GatedListener | None = None
        self.argo_url = ""
        self._runner: web.AppRunner | None = None
        self._listener: GatedListener | None = None
        self._host, self._port = "127.0.0.1", 0
        self.url = ""
        self._argo_port = 0

    def token_for(self, user: str = "admin") -> str:
        for token, name in self.tokens.items():
            if name == user:
                return token
        raise KeyError(user)

    def _seed(self) -> None:
        ns = self.registry.core("namespaces")
        for name in self.spec.namespaces:
            self.store.create(ns, None, {"metadata": {"name": name}})
        for group in self.spec.node_groups:
            for _ in range(group.min if group.elastic else group.count):
                create_node(self.store, self.spec, self.addresses, group, ready=True)
        if any(isinstance(c, TrainJobController) for c in self.controllers):
            seed_trainer(self.store)  # what the Trainer install leaves: torch-distributed and its ConfigMap

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> str:
        self._seed()
        if self.pod_blackhole is not None and nft_available()[0]:
            await self.pod_blackhole.remove_stale()
        for controller in self.controllers:
            controller.start()
        self._runner = web.AppRunner(self.api.make_app(), access_log=None, shutdown_timeout=1.0)
        await self._runner.setup()
        self._host = host
        if self._runner.server is None:
            raise RuntimeError("the API runner has no server")
        self._listener = GatedListener(self._runner.server, self.certs.server_context(), self.api_link)
        self._port = self._listener.open(host, port)
        self.url = f"https://{host}:{self._port}"
        log.info("cluster %s serves %s", self.spec.name, self.url)
        if self.argo is not None:
            self._argo_runner = web.AppRunner(self.argo.make_app(), access_log=None, shutdown_timeout=1.0)
            await self._argo_runner.setup()
            if self._argo_runner.server is None:
                raise RuntimeError("the Argo Server runner has no server")
            self._argo_listener = GatedListener(
                self._argo_runner.server, self.certs.server_context(), self.api_link
            )
            self._argo_port = self._argo_listener.open(host, 0)
            # Hera joins its paths to the host with urljoin: the URL ends with "/"
            self.argo_url = f"https://{host}:{self._argo_port}/"
            log.info("cluster %s serves the Argo Server at %s", self.spec.name, self.argo_url)
        return self.url

    async def set_down(self, down: bool) -> None:
        """Down: the API port refuses connections and open connections (watches too) break."""
        if self._listener is None:
            raise RuntimeError("the cluster is not started")
        if down and self._listener.listening:
            self._listener.close()
            self._listener.abort_all()
            if self._argo_listener is not None:
                self._argo_listener.close()
                self._argo_listener.abort_all()
            self.store.close_watches()
        elif not down and not self._listener.listening:
            self._listener.open(self._host, self._port)
            if self._argo_listener is not None:
                self._argo_listener.open(self._host, self._argo_port)
        self.faults.down = down

    def check_hung(self, parts: frozenset[str]) -> None:
        """Raise FaultUnsupported when this cluster cannot hang ``parts``."""
        if "pods" not in parts or self.runtime.name == "simulated":
            return  # simulated pods run nothing that traffic could reach
        rest = 'Send {"hung": true, "hungParts": ["api", "services"]} to hang only the API and the Services.'
        if self.pod_blackhole is None:
            raise FaultUnsupported(
                f"cluster {self.spec.name} runs its pods with the {self.runtime.name} runtime, on this "
                "machine's loopback addresses: hanging pod addresses needs the process runtime (root). "
                + rest
            )
        ok, why = nft_available()
        if not ok:
            raise FaultUnsupported(f"cluster {self.spec.name}: {why}. {rest}")

    async def set_hung(self, parts: frozenset[str]) -> None:
        """Drop what crosses between this machine and ``parts`` of the cluster, as a dead site link does."""
        self.check_hung(parts)
        if self.pod_blackhole is not None:
            if "pods" in parts:
                await self.pod_blackhole.hang()
            else:
                await self.pod_blackhole.restore()
        for part, link in (("api", self.api_link), ("services", self.services_link)):
            if part in parts:
                link.hang()
            else:
                link.restore()
        if parts != self.faults.hung:
            log.info("cluster %s: hung %s", self.spec.name, ", ".join(sorted(parts)) or "nothing any more")
        self.faults.hung = parts

    def set_node_ready(self, name: str, ready: bool) -> dict[str, Any]:
        """NotReady as the node lifecycle controller records it (kubelet silent; unreachable taint)."""
        nodes = self.registry.core("nodes")
        node = clone(self.store.get(nodes, None, name))
        now = self.store.now()
        taints = [t for t in node["spec"].get("taints") or [] if t.get("key") != _UNREACHABLE]
        for cond in node["status"]["conditions"]:
            if cond["type"] != "Ready":
                continue
            if ready:
                cond.update(status="True", reason="KubeletReady", message="kubelet is posting ready status")
            else:
                cond.update(
                    status="Unknown",
                    reason="NodeStatusUnknown",
                    message="Kubelet stopped posting node status.",
                )
            cond["lastTransitionTime"] = now
        if not ready:
            taints.append({"key": _UNREACHABLE, "effect": "NoSchedule", "timeAdded": now})
        if taints:
            node["spec"]["taints"] = taints
        else:
            node["spec"].pop("taints", None)
        return self.store.system_update(nodes, node)

    def remove_node(self, name: str) -> None:
        """The machine is gone: the Node object goes, and pod GC deletes its pods."""
        nodes = self.registry.core("nodes")
        node = self.store.get(nodes, None, name)
        self.store.delete(nodes, None, name)
        self.addresses.release(clone(node))

    def kill_pods(self) -> int:
        """The site loses power: every pod bound to a node is force-deleted at once, so the kubelet
        kills its processes with no grace period. The nodes stay, as they come back with the power."""
        pods = self.registry.core("pods")
        killed = 0
        for pod in self.store.list(pods):
            if not (pod.get("spec") or {}).get("nodeName"):
                continue  # never scheduled: nothing runs
            meta = pod["metadata"]
            try:
                self.store.delete(pods, meta["namespace"], meta["name"], grace_period=0)
            except ApiError:
                continue  # gone meanwhile
            killed += 1
        return killed

    def held(self) -> dict[str, int]:
        """Per part of the site link this machine sees in user space, the connection directions whose
        data it still holds (the pod addresses are dropped by the kernel, which shows nothing)."""
        return {"api": self.api_link.held, "services": self.services_link.held}

    async def stop(self) -> None:
        self.store.close_watches()
        # what the link holds goes out now, so every connection closes
        self.api_link.shutdown()
        self.services_link.shutdown()
        if self.pod_blackhole is not None:
            try:
                await self.pod_blackhole.restore()
            except RuntimeError as exc:
                log.error("cluster %s: the pods' nftables table stays: %s", self.spec.name, exc)
        for controller in self.controllers:
            await controller.stop()
        if self._listener is not None:
            await self._listener.stop()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._argo_listener is not None:
            await self._argo_listener.stop()
        if self._argo_runner is not None:
            await self._argo_runner.cleanup()
            self._argo_runner = None


@dataclass
class SimEnvironment:
    """Several clusters plus one admin server: what ``hybridhub sim up`` runs."""

    specs: Sequence[ClusterSpec]
    host: str = "127.0.0.1"
    clusters: dict[str, SimCluster] = field(default_factory=dict)
    admin_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    admin_url: str = ""
    certs: ServingCerts | None = None
    state_dir: Path | None = None  # pod files and volumes of process runtimes; a temporary one if None
    _admin_runner: web.AppRunner | None = None
    _own_state_dir: bool = False

    async def start(self) -> None:
        self.certs = make_serving_certs([self.host, "localhost"])
        if self.state_dir is None:
            self.state_dir, self._own_state_dir = Path(tempfile.mkdtemp(prefix="simcluster-")), True
        try:
            for spec in self.specs:
                cluster = SimCluster(spec, self.certs, state_dir=self.state_dir, index=len(self.clusters))
                self.clusters[spec.name] = cluster
                await cluster.start(self.host)
            self._admin_runner = web.AppRunner(
                make_admin_app(self.clusters, self.admin_token),
                access_log=None,
                shutdown_timeout=1.0,
            )
            await self._admin_runner.setup()
            site = web.TCPSite(self._admin_runner, self.host, 0, ssl_context=self.certs.server_context())
            await site.start()
            self.admin_url = f"https://{self.host}:{_admin_port(self._admin_runner)}"
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        for cluster in self.clusters.values():
            await cluster.stop()
        if self._admin_runner is not None:
            await self._admin_runner.cleanup()
            self._admin_runner = None
        if self._own_state_dir and self.state_dir is not None:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def endpoints(self) -> dict[str, Any]:
        return {
            "admin_token": self.admin_token,
            "clusters": {
                name: {
                    "api": c.url,
                    "admin": f"{self.admin_url}/clusters/{name}",
                    "role": c.spec.role,
                    "context": name,
                    "runtime": c.runtime.name,
                    # where pods reach this machine (a hub, say)
                    "pod_gateway": GATEWAY if c.runtime.name == "process" else "127.0.0.1",
                    # the Argo Server (Hera's host), when the cluster file leaves Argo on
                    **({"argoServer": c.argo_url} if c.argo_url else {}),
                }
                for name, c in self.clusters.items()
            },
        }

    async def __aenter__(self) -> SimEnvironment:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()
