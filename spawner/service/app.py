"""``hybridhub service``: the JupyterHub managed service that owns inventory, health and placement."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import secrets
import signal
from collections.abc import Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

from jupyterhub.services.auth import HubAuth, HubOAuth
from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import Bool, Dict, Enum, Float, Integer, List, TraitError, Unicode, default, validate
from traitlets.config import Application

from spawner.core.clusters import ClusterConfig, ClusterSet
from spawner.core.health import HealthPolicy
from spawner.core.labels import HUB_LABEL, label_value_problem
from spawner.kube.instance import FALLBACK, default_hub_instance
from spawner.placement.reservations import ReservationBook

from .api import handlers
from .capacity import CapacitySource, fleet_capacity
from .fleet import ClusterMember, Fleet, FleetView
from .metrics import Metrics
from .runs.budget import CloudBudget, parse_budget
from .runs.manager import RunManager, RunSettings
from .runs.metering import CloudMeter
from .runs.moves import cluster_rewrites
from .runs.namespaces import RunNamespaceSettings, settings_problems
from .ssh.access import SshAccess
from .ssh.ca import CertificateAuthority, generate_ca_key, load_or_create_key_file
from .ssh.gateways import address_problem, site_gateways
from .store import Store
from .store.runs import RunRegistry, UsageLedger
from .sweeper import HubServers, LeftoverSweeper

__all__ = ["HybridHubService", "main"]


# The smallest value each number may take, and what goes wrong below it.
_MINIMUM: dict[str, tuple[float, bool, str]] = {  # name -> (bound, bound allowed, why)
    "probe_interval": (0.5, True, "must be at least 0.5 seconds (shorter probes /readyz back to back)"),
    "probe_retry_interval": (0.5, True, "must be at least 0.5 seconds (shorter probes /readyz back to back)"),
    "probe_timeout": (0.0, False, "must be more than 0 seconds (every request would time out)"),
    "watch_timeout": (1, True, "must be at least 1 second"),
    "watch_read_timeout": (1.0, True, "must be at least 1 second"),
    "reservation_ttl": (1.0, True, "must be at least 1 second (a reservation must outlive its answer)"),
    "degraded_latency": (0.0, False, "must be more than 0 seconds (every cluster would be DEGRADED)"),
    "down_after_failures": (1, True, "must be 1 or more"),
    "recover_after": (1, True, "must be 1 or more"),
    "max_watch_age": (0.0, False, "must be more than 0 seconds (every cluster would be DEGRADED)"),
    "leftover_sweep_interval": (1.0, True, "must be 0 (off) or at least 1 second"),
    "leftover_grace": (0.0, True, "must be 0 or more seconds"),
}


def _number_problem(name: str, value: float) -> str | None:
    """What is wrong with a numeric setting, or None."""
    bound, inclusive, why = _MINIMUM[name]
    if name == "leftover_sweep_interval" and value == 0:
        return None  # the sweep is off
    if value != value or value in (float("inf"), float("-inf")):  # NaN or infinite
        return "must be a finite number"
    if value < bound or (value == bound and not inclusive):
        return why
    return None


class HybridHubService(Application):
    """The brain beside the hub: the only holder, with the hub, of cluster credentials."""

    name = "hybridhub-service"
    description = __doc__
    classes = [ClusterSet]
    aliases = {"config": "HybridHubService.config_file", "log-level": "Application.log_level"}

    config_file = Unicode(
        "hybridhub_service_config.py",
        config=True,
        help="""Python config file to load (traitlets), e.g. the hub's clusters file, which sets
        ``c.ClusterSet.clusters``. A missing default file is fine; a missing named file is an error.""",
    )
    service_prefix = Unicode(
        config=True,
        help="""URL prefix the service answers under; JupyterHub passes it to a managed service
        as JUPYTERHUB_SERVICE_PREFIX (default ``/services/hybridhub/``).""",
    )
    bind_url = Unicode(
        config=True,
        help="""Where to listen, e.g. ``http://127.0.0.1:10101``; JupyterHub passes it to a managed
        service as JUPYTERHUB_SERVICE_URL.""",
    )
    api_url = Unicode(config=True, help="The hub's REST API (JUPYTERHUB_API_URL), to check callers' tokens.")
    api_token = Unicode(
        config=True, help="This service's hub API token (JUPYTERHUB_API_TOKEN). Never logged."
    )
    probe_interval = Float(
        5.0,
        config=True,
        help="""Seconds between health probes (GET /readyz) of each cluster's API while the cluster is
        HEALTHY and its last probe answered, e.g. 5. At least 0.5. A cluster whose link hangs just after
        a probe is DOWN within probe_interval + (down_after_failures - 1) * probe_retry_interval +
        probe_timeout seconds: 10 s with the defaults, 7 s when its API refuses connections.""",
    )
    probe_retry_interval = Float(
        1.0,
        config=True,
        help="""Seconds between health probes of a cluster that is not HEALTHY (DEGRADED, DOWN, or one
        of its pools so), or whose last probe has not answered yet, e.g. 1. Probes may overlap, so a
        probe that hangs until probe_timeout does not hold up the next one. This bounds how soon an
        outage is confirmed (see probe_interval) and how soon a return is seen: once the link is
        back, the cluster is HEALTHY with a current inventory within recover_after *
        probe_retry_interval + probe_timeout seconds (5 s with the defaults; about 2 s measured), the
        probe_timeout being for the watches to reopen. At least 0.5.""",
    )
    probe_timeout = Float(
        3.0,
        config=True,
        help="""Seconds a health probe, a cluster API request or a hub API request may take, e.g. 3.
        A probe that takes longer counts as unanswered. More than 0.""",
    )
    watch_timeout = Integer(
        300,
        config=True,
        help="""Seconds one node/pod watch stays open before it is resumed (the watch's timeoutSeconds),
        e.g. 300. At least 1.""",
    )
    watch_read_timeout = Float(
        90.0,
        config=True,
        help="""Seconds a node or pod watch may carry nothing, not even a bookmark, before it is dropped
        and resumed from its last resourceVersion (a relist only on 410 Gone), e.g. 90. Kubernetes
        sends a bookmark about once a minute on the service's watches, so keep it above 60 unless
        watch_timeout is shorter. This catches a connection lost without a reset while the API answers;
        after an outage the probes resume silent watches sooner (see probe_retry_interval). At least
        1.""",
    )
    reservation_ttl = Float(
        180.0,
        config=True,
        help="""Seconds a placement's reservation lasts, e.g. 180: what the attempt HybridSpawner is
        about to make uses (GPUs, CPUs, memory) is held from the placement answer until HybridSpawner
        releases it when that attempt ends, started or failed, or until it expires. Each attempt,
        fallbacks included, is placed and reserved when it is tried. An attempt that waits for an
        elastic pool's node extends its reservation by this much (``POST api/placements/{id}/extend``)
        each time a third of it is left, so this bounds how long a hub that died mid-spawn holds
        anything, not how long a node may take. At least 1.""",
    )
    placement_policy = Enum(
        ["best-fit", "spread"],
        "best-fit",
        config=True,
        help="""``best-fit`` fills the fullest node that fits (keeps whole 8-GPU nodes free for big
        jobs); ``spread`` the emptiest.""",
    )
    authenticate_metrics = Bool(
        True, config=True, help="Whether GET metrics needs a token with the read:metrics scope."
    )
    degraded_latency = Float(
        1.0,
        config=True,
        help="Seconds: a slower /readyz answer makes a cluster DEGRADED, e.g. 1. More than 0.",
    )
    down_after_failures = Integer(
        3,
        config=True,
        help="""Unanswered probes in a row before a cluster is DOWN (no new placements there), e.g. 3.
        After the first, probes come every probe_retry_interval. At least 1.""",
    )
    recover_after = Integer(
        2,
        config=True,
        help="""Good probes in a row before a cluster counts as recovered, e.g. 2. After an unanswered
        probe, a probe is good only once the node and pod watches have had news since (they are
        resumed as soon as the API answers), so a cluster is never HEALTHY with a stale inventory.
        At least 1.""",
    )
    max_watch_age = Float(
        120.0,
        config=True,
        help="""Seconds without a watch event or bookmark before a cluster is DEGRADED, e.g. 120.
        More than 0.""",
    )

    leftover_sweep_interval = Float(
        30.0,
        config=True,
        help="""Seconds between sweeps for leftover notebook pods: pods HybridSpawner made (in any
        cluster) for a server the hub neither runs nor is starting, as a hub that died mid-start
        leaves them, e.g. 30. 0 turns the sweep off; otherwise at least 1. The service's hub token
        needs the ``read:servers`` scope.""",
    )
    leftover_grace = Float(
        60.0,
        config=True,
        help="""Seconds a notebook pod must have been seen before the sweep may remove it, e.g. 60.
        0 or more.""",
    )
    hub_instance = Unicode(
        # the default is _default_hub_instance's; a static one other than "" makes a configured "" a
        # change of value, which traitlets then checks
        FALLBACK,
        config=True,
        help="""The name of the hub this service serves, as HybridSpawner labels its pods
        (``hybridhub.io/hub``, ``HybridSpawner.hub_instance``: the same value). The leftover sweep
        judges only pods with this label, in any namespace of its clusters, so hubs that share a
        namespace or a cluster never remove each other's servers; pods without the label, from before
        it, are left alone. A label value, e.g. ``research-hub``. Default: $HYBRIDHUB_HUB_INSTANCE
        (which the hub hands its managed service), else the namespace the pod runs in, else
        ``jupyterhub``.""",
    )

    db_url = Unicode(
        config=True,
        help="""The service's own SQL database (SQLAlchemy URL): registered SSH keys, the SSH CA, the
        run registry and queue. In a deployment a PostgreSQL database beside the hub's, e.g.
        ``postgresql://hybridhub@db.example.org/hybridhub`` (psycopg 3; the password in the URL or in
        ~/.pgpass); the default, a sqlite file in the working directory, suits one replica and the
        demo. The service upgrades its tables (alembic migrations) at start. Default:
        $HYBRIDHUB_SERVICE_DB_URL (30-service.py hands the service the hub's HYBRIDHUB_* variables, so
        a Secret can hold the URL), else ``sqlite:///hybridhub.sqlite``.""",
    )
    ssh_ca_key_file = Unicode(
        "",
        config=True,
        help="""File holding the SSH certificate authority's private key (OpenSSH format), e.g.
        ``/srv/hybridhub/ssh_ca``: made with mode 0600 on first start if missing, refused if others
        may read it. Empty (the default): the key is made on first start and kept in the database
        (db_url), so whoever can read that database can sign host certificates.""",
    )
    ssh_gateway_address = Unicode(
        config=True,
        help="""Where users' SSH clients reach the SSH gateway, ``host`` or ``host:port``, e.g.
        ``ssh.hub.example.org:2222``: the ProxyJump of the ``~/.ssh/config`` snippet the service
        gives users (api/ssh/config). Empty: the snippet is not offered (503 naming this setting).
        Default: $HYBRIDHUB_SSH_GATEWAY_ADDRESS.""",
    )
    ssh_gateway_services = List(
        Unicode(),
        ["ssh-gateway"],
        config=True,
        help="""Names of the hub services that are SSH gateways, e.g. ``["ssh-gateway"]``: a token of one
        of them gets the gateway's host key signed (api/ssh/gateway-certificate) for the host of
        ssh_gateway_address, so that clients trusting the CA accept the gateway as well.""",
    )
    ssh_site_gateways = Dict(
        config=True,
        help="""SSH gateways that run inside a cluster, by cluster: ``{"onprem": {"address":
        "ssh.onprem.example.org:2222", "service": "ssh-gateway-onprem"}}``. A server that runs in such a
        cluster gets that gateway as its ProxyJump in the ``~/.ssh/config`` snippet, so its SSH traffic
        stays on the site; ssh_gateway_address still reaches every server, wherever it runs. ``service``
        is the hub service whose token that gateway holds: it gets its host key signed for the host of
        ``address``, and needs the same scopes as the gateway beside the hub. Default:
        $HYBRIDHUB_SSH_SITE_GATEWAYS (JSON), else empty: one gateway for all.""",
    )
    ssh_host_certificate_validity = Float(
        3600.0,
        config=True,
        help="""Seconds a notebook server's SSH host certificate stays valid, e.g. 3600; the server asks
        for a new one before it expires. At least 60.""",
    )
    ssh_max_keys_per_user = Integer(
        20, config=True, help="How many SSH public keys one user may register, e.g. 20. At least 1."
    )

    run_namespace_template = Unicode(
        "hybridhub-runs-{user}",
        config=True,
        help="""The name of each user's run namespace in every cluster; ``{user}`` becomes the hub user
        name made a DNS label, e.g. ``runs-{user}``. The service makes the namespace on the user's first
        run there (docs/runs.md lists what it holds).""",
    )
    run_impersonate_template = Unicode(
        "hybridhub:user:{username}",
        config=True,
        help="""The user the service acts as in a cluster when it writes a user's run
        (``Impersonate-User``); ``{username}`` is the hub user name. The default's prefix keeps a hub
        user named like a cluster identity from getting that identity's rights. Sites whose cluster
        users are their hub users may set ``{username}``. The service's credentials need the
        ``impersonate`` verb on users.""",
    )
    run_user_cluster_role = Unicode(
        "edit",
        config=True,
        help="""The ClusterRole bound to each user in their run namespace, e.g. ``edit``. It must let
        the user create, read and delete the run kinds (Workflows, Experiments and Trials, TrainJobs,
        PyTorchJobs, Jobs), their pods and logs. Argo aggregates its kinds into Kubernetes' ``edit``;
        a Kubeflow installation aggregates Katib's and the Trainer's into ``kubeflow-edit`` instead,
        so name that one there. The service needs the ``bind`` verb on it.""",
    )
    run_gpu_quota = Integer(
        8,
        config=True,
        help="""GPUs one user's runs may request at once in each cluster (the run namespace's
        ResourceQuota), and the most one run's gang may ask for, e.g. 8. At least 0.""",
    )
    run_pod_quota = Integer(
        200, config=True, help="Pods one user's runs may have at once in each cluster, e.g. 200. At least 1."
    )
    run_max_wait = Float(
        1800.0,
        config=True,
        help="""Seconds a run with cluster ``auto`` may wait for on-prem before it goes to the cloud
        instead, e.g. 1800. A run that waited this long on a busy on-prem cluster moves to the cloud
        once the cloud can start it; 0 sends runs that do not fit on-prem now to the cloud at once.
        A run overrides it with the label ``hybridhub.io/max-wait`` (``90``, ``30m``, ``2h``). At
        least 0.""",
    )
    run_cluster_images = Dict(
        config=True,
        help="""Per cluster, image prefixes to rewrite in runs made there, because the on-prem
        registry is not reachable from the cloud: ``{"eks": {"registry.lab:5000/":
        "123456789012.dkr.ecr.us-east-1.amazonaws.com/"}}``. The longest prefix that matches wins.
        Applied when a run is first made in that cluster and when it moves there. Default: none.""",
    )
    run_cluster_artifact_repositories = Dict(
        config=True,
        help="""Per cluster, the Argo ``artifactRepositoryRef`` set on workflows made there, because
        the on-prem MinIO is not reachable from the cloud: ``{"eks": {"configMap":
        "artifact-repositories", "key": "s3"}}``. Default: none (the cluster's default repository).""",
    )
    run_move_settle = Float(
        30.0,
        config=True,
        help="""Seconds a run that moved between clusters stays before it may move again, unless its
        cluster goes down, so that a cluster whose health flaps does not bounce runs, e.g. 30. At
        least 0.""",
    )
    run_cloud_budget_period = Unicode(
        "month",
        config=True,
        help="""The period cloud budgets count over, in UTC: ``day``, ``week`` (from Monday) or
        ``month``. Default: month.""",
    )
    run_cloud_budget_gpu_hours = Dict(
        config=True,
        help="""Cloud GPU-hours per period, by user; ``"*"`` is everyone not named:
        ``{"*": 200, "ada": 1000}``. A user past theirs has runs with cluster ``auto`` wait for
        on-prem however long, runs pinned to a cloud cluster wait there, and the wait says why. What
        counts is every GPU their pods hold in the cloud clusters, notebooks and runs, as the
        service's inventory sees them bound. Default: none (no budget).""",
    )
    run_cloud_budget_teams = Dict(
        config=True,
        help="""Cloud GPU-hours per period, by team: ``{"vision": {"gpu_hours": 2000, "members":
        ["ada", "bob"]}}``. A team's use is its members' together; past it, every member waits for
        on-prem as past their own budget. Default: none.""",
    )
    run_admission_interval = Float(
        2.0,
        config=True,
        help="""Seconds between admission passes, which let waiting runs start when their whole GPU
        gang fits in one cluster, e.g. 2. A new run or a deletion starts a pass at once. At least 0.1.""",
    )
    run_kueue_queues = Dict(
        config=True,
        help="""Clusters that run Kueue, and the LocalQueue of each user namespace that admits runs
        there: ``{"onprem": "user-queue"}``. Runs placed in such a cluster carry Kueue's queue label
        and Kueue, not the service, lets them start. Default: none.""",
    )
    run_blocked_egress_cidrs = List(
        Unicode(),
        config=True,
        help="""Address ranges run pods may not reach, typically the pod ranges where notebooks run,
        e.g. ``["10.240.0.0/16"]`` (the run namespace's NetworkPolicy). Default: none.""",
    )

    @validate("ssh_gateway_address")
    def _check_ssh_gateway_address(self, proposal: dict[str, Any]) -> str:
        value: str = proposal["value"]
        problem = address_problem(value) if value else None
        if problem:
            raise TraitError(f"HybridHubService.ssh_gateway_address: {problem}")
        return value

    @validate("ssh_site_gateways")
    def _check_ssh_site_gateways(self, proposal: dict[str, Any]) -> dict[str, Any]:
        value: dict[str, Any] = proposal["value"]
        try:
            site_gateways(value)
        except ValueError as exc:
            raise TraitError(f"HybridHubService.ssh_site_gateways: {exc}") from None
        return value

    @validate("run_gpu_quota", "run_pod_quota", "run_max_wait", "run_admission_interval", "run_move_settle")
    def _check_run_number(self, proposal: dict[str, Any]) -> float:
        name = proposal["trait"].name
        value: float = proposal["value"]
        least = {
            "run_gpu_quota": 0,
            "run_pod_quota": 1,
            "run_max_wait": 0,
            "run_admission_interval": 0.1,
            "run_move_settle": 0,
        }[name]
        if not (value >= least and value != float("inf")):
            raise TraitError(f"HybridHubService.{name}: must be at least {least}, got {value!r}")
        return value

    def run_settings(self) -> RunSettings:
        """The runs' settings; SystemExit naming the setting when they cannot be used."""
        namespaces = RunNamespaceSettings(
            hub_instance=self.hub_instance,
            name_template=self.run_namespace_template,
            impersonate_template=self.run_impersonate_template,
            gpu_quota=self.run_gpu_quota,
            pod_quota=self.run_pod_quota,
            user_cluster_role=self.run_user_cluster_role,
            blocked_egress_cidrs=tuple(self.run_blocked_egress_cidrs),
        )
        problems = settings_problems(namespaces)
        for cluster, queue in self.run_kueue_queues.items():
            if not isinstance(queue, str) or label_value_problem(queue) or not queue:
                problems.append(f"run_kueue_queues[{cluster!r}]: {queue!r} is not a queue name")
        rewrites = cluster_rewrites(self.run_cluster_images, self.run_cluster_artifact_repositories, problems)
        budget = parse_budget(
            self.run_cloud_budget_period, self.run_cloud_budget_gpu_hours, self.run_cloud_budget_teams
        )
        if isinstance(budget, str):
            problems.append(budget)
            budget = CloudBudget()
        if problems:
            raise SystemExit(f"hybridhub service: HybridHubService run settings: {'; '.join(problems)}")
        return RunSettings(
            namespaces=namespaces,
            max_gpus=self.run_gpu_quota,
            default_max_wait=self.run_max_wait,
            request_timeout=max(self.probe_timeout * 3, 5.0),
            admission_interval=self.run_admission_interval,
            kueue_queues=dict(self.run_kueue_queues),
            cluster_rewrites=rewrites,
            move_settle=self.run_move_settle,
            cloud_budget=budget,
        )

    @validate("ssh_host_certificate_validity", "ssh_max_keys_per_user")
    def _check_ssh_number(self, proposal: dict[str, Any]) -> float:
        name = proposal["trait"].name
        value: float = proposal["value"]
        least = 60 if name == "ssh_host_certificate_validity" else 1
        if not (value >= least and value != float("inf")):
            raise TraitError(f"HybridHubService.{name}: must be at least {least}, got {value!r}")
        return value

    @validate("service_prefix")
    def _check_prefix(self, proposal: dict[str, Any]) -> str:
        value: str = proposal["value"]
        if not value.startswith("/"):
            raise TraitError(f"HybridHubService.service_prefix: must start with '/', got {value!r}")
        return value

    @validate("bind_url")
    def _check_bind_url(self, proposal: dict[str, Any]) -> str:
        value: str = proposal["value"]
        url = urlparse(value)
        try:
            url.port  # noqa: B018 (parsing the port is the check)
        except ValueError as exc:
            raise TraitError(f"HybridHubService.bind_url: {exc} in {value!r}") from exc
        if url.scheme != "http" or not url.hostname:
            raise TraitError(
                f"HybridHubService.bind_url: expected http://HOST:PORT (the service serves plain HTTP), "
                f"got {value!r}"
            )
        return value

    @validate("api_url")
    def _check_api_url(self, proposal: dict[str, Any]) -> str:
        value: str = proposal["value"]
        url = urlparse(value)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise TraitError(f"HybridHubService.api_url: expected the hub's http(s) API URL, got {value!r}")
        return value

    @validate(
        "probe_interval",
        "probe_retry_interval",
        "probe_timeout",
        "watch_timeout",
        "watch_read_timeout",
        "reservation_ttl",
        "degraded_latency",
        "down_after_failures",
        "recover_after",
        "max_watch_age",
        "leftover_sweep_interval",
        "leftover_grace",
    )
    def _check_number(self, proposal: dict[str, Any]) -> float:
        name = proposal["trait"].name
        value: float = proposal["value"]
        problem = _number_problem(name, value)
        if problem:
            raise TraitError(f"HybridHubService.{name}: {problem}, got {value!r}")
        return value

    @validate("hub_instance")
    def _check_hub_instance(self, proposal: dict[str, Any]) -> str:
        value: str = proposal["value"]
        problem = label_value_problem(value) if value else "must not be empty"
        if problem:
            raise TraitError(f"HybridHubService.hub_instance: {problem}")
        return value

    @default("hub_instance")
    def _default_hub_instance(self) -> str:
        return default_hub_instance()

    @default("db_url")
    def _default_db_url(self) -> str:
        return os.environ.get("HYBRIDHUB_SERVICE_DB_URL") or "sqlite:///hybridhub.sqlite"

    @default("ssh_gateway_address")
    def _default_ssh_gateway_address(self) -> str:
        return os.environ.get("HYBRIDHUB_SSH_GATEWAY_ADDRESS", "")

    @default("ssh_site_gateways")
    def _default_ssh_site_gateways(self) -> dict[str, Any]:
        text = os.environ.get("HYBRIDHUB_SSH_SITE_GATEWAYS", "")
        try:
            value = json.loads(text) if text else {}
        except ValueError as exc:
            raise TraitError(
                f"HybridHubService.ssh_site_gateways: $HYBRIDHUB_SSH_SITE_GATEWAYS: {exc}"
            ) from None
        if not isinstance(value, dict):
            raise TraitError(
                "HybridHubService.ssh_site_gateways: $HYBRIDHUB_SSH_SITE_GATEWAYS is not an object"
            )
        return value

    @default("service_prefix")
    def _default_prefix(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/hybridhub/")

    @default("bind_url")
    def _default_bind_url(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101")

    @default("api_url")
    def _default_api_url(self) -> str:
        return os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")

    @default("api_token")
    def _default_api_token(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    def initialize(self, argv: list[str] | None = None) -> None:
        super().initialize(argv)
        if self.config_file:
            path = self.config_file
            if os.path.exists(path):
                self.load_config_file(path)
            elif (
                "config_file" in self.config.get("HybridHubService", {})
                or path != "hybridhub_service_config.py"
            ):
                raise SystemExit(f"hybridhub service: config file {path} not found")
        try:
            # defaults read from JupyterHub's environment are checked like configured values
            for name in (
                "service_prefix",
                "bind_url",
                "api_url",
                "hub_instance",
                "ssh_gateway_address",
                "ssh_site_gateways",
            ):
                setattr(self, name, getattr(self, name))
            self.cluster_set = ClusterSet(parent=self)
        except TraitError as exc:
            raise SystemExit(f"hybridhub service: {exc}") from exc
        if self.ssh_site_gateways:
            try:
                clusters = frozenset(c.name for c in self.cluster_set.configs)
            except ValueError as exc:  # no clusters
                raise SystemExit(f"hybridhub service: {exc}") from exc
            try:  # each site gateway names a cluster of this service
                site_gateways(self.ssh_site_gateways, clusters)
            except ValueError as exc:
                raise SystemExit(f"hybridhub service: HybridHubService.ssh_site_gateways: {exc}") from exc

    def make_app(
        self,
        fleet: FleetView,
        book: ReservationBook,
        metrics: Metrics,
        capacity: CapacitySource,
        hub_auth: HubAuth | None = None,
        *,
        store: Store | None = None,
        ssh_ca: CertificateAuthority | None = None,
        hub_oauth: HubOAuth | None = None,
        runs: RunManager | None = None,
    ) -> web.Application:
        """The tornado application of the API; ``hub_auth`` checks callers' tokens with the hub,
        ``hub_oauth`` tokens and the SSH page's login cookie; without ``store`` the SSH API answers 503."""
        oauth = hub_oauth or self._hub_oauth()
        settings: dict[str, Any] = {
            "fleet": fleet,
            "reservations": book,
            "capacity": capacity,
            "metrics": metrics,
            "policy": self.placement_policy,
            "authenticate_metrics": self.authenticate_metrics,
            "hub_auth": hub_auth or HubAuth(api_url=self.api_url, api_token=self.api_token, cache_max_age=60),
            # the SSH API and page (api/ssh.py, api/ssh_page.py)
            "hub_oauth": oauth,
            "store": store,
            "runs": runs,
            "ssh_ca": ssh_ca,
            "ssh_access": SshAccess(self.api_url, self.api_token, timeout=self.probe_timeout),
            "ssh_gateway": self.ssh_gateway_address,
            "ssh_gateway_services": frozenset(self.ssh_gateway_services),
            "ssh_site_gateways": site_gateways(self.ssh_site_gateways),
            "ssh_host_certificate_validity": self.ssh_host_certificate_validity,
            "ssh_max_keys": self.ssh_max_keys_per_user,
            # the scope a token needs to use this service (the hub's own check at its proxy is off for
            # API requests); JupyterHub names the service at the end of its prefix
            "service_access_scope": next(
                (s for s in sorted(oauth.access_scopes if oauth else ()) if "!service=" in s),
                f"access:services!service={self.service_prefix.rstrip('/').rsplit('/', 1)[-1]}",
            ),
            "service_prefix": self.service_prefix,
            # the page's login cookie lasts as long as this process: a restarted service logs users in
            # again through the hub, without a prompt
            "cookie_secret": secrets.token_bytes(32),
        }
        return web.Application(handlers(self.service_prefix), **settings)

    def _hub_oauth(self) -> HubOAuth | None:
        """The hub's OAuth login for the SSH page, from what the hub hands a managed service
        (JUPYTERHUB_CLIENT_ID, JUPYTERHUB_OAUTH_CALLBACK_URL...); None outside a hub."""
        try:
            return HubOAuth(
                api_url=self.api_url, api_token=self.api_token, base_url=self.service_prefix, cache_max_age=60
            )
        except (TraitError, ValueError) as exc:
            self.log.warning("the SSH keys page is off (%s): run the service as a hub's managed service", exc)
            return None

    async def open_store(self) -> tuple[Store, CertificateAuthority]:
        """The store, upgraded to the code's tables, and the SSH CA (made on first start)."""
        where = self.db_url.rsplit("@", 1)[-1]  # never the password of a URL that holds one
        try:
            store = Store(self.db_url)
        except Exception as exc:
            raise SystemExit(f"hybridhub service: HybridHubService.db_url ({where}): {exc}") from exc
        try:
            await store.upgrade()
            if self.ssh_ca_key_file:
                key = await asyncio.to_thread(load_or_create_key_file, Path(self.ssh_ca_key_file))
            else:
                key = await store.ca_private_key(generate_ca_key)
            return store, CertificateAuthority(key)
        except Exception as exc:
            await store.close()
            raise SystemExit(f"hybridhub service: the store at {where} failed: {exc}") from exc

    def cluster_members(self, configs: Iterable[ClusterConfig]) -> list[ClusterMember]:
        """Each cluster as the service follows it, with the service's health policy, probe and watch
        timings: what ``serve`` runs, and what the benchmarks run in their own process."""
        policy = HealthPolicy(
            degraded_latency=self.degraded_latency,
            down_after_failures=self.down_after_failures,
            recover_after=self.recover_after,
            max_watch_age=self.max_watch_age,
        )
        return [
            ClusterMember(
                c,
                policy=policy,
                probe_interval=self.probe_interval,
                probe_retry_interval=self.probe_retry_interval,
                probe_timeout=self.probe_timeout,
                watch_timeout=self.watch_timeout,
                watch_read_timeout=self.watch_read_timeout,
            )
            for c in configs
        ]

    async def serve(self, stop: asyncio.Event) -> None:
        try:
            configs = self.cluster_set.configs
        except ValueError as exc:
            raise SystemExit(f"hybridhub service: {exc}") from exc
        fleet = Fleet(self.cluster_members(configs))
        book = ReservationBook(ttl=self.reservation_ttl)
        capacity = fleet_capacity(fleet, book)
        metrics = Metrics(capacity, fleet.health, lambda: len(book))
        sweeper = LeftoverSweeper(
            fleet,
            HubServers(self.api_url, self.api_token, timeout=self.probe_timeout),
            hub_instance=self.hub_instance,
            interval=self.leftover_sweep_interval,
            grace=self.leftover_grace,
            request_timeout=self.probe_timeout,
            on_removed=lambda x: metrics.leftovers.labels(x.cluster).inc(),
        )
        run_settings = self.run_settings()
        store, ssh_ca = await self.open_store()
        await fleet.start()
        hub = HubServers(self.api_url, self.api_token, timeout=self.probe_timeout)
        meter = CloudMeter(UsageLedger(store), run_settings.cloud_budget)
        runs = RunManager(
            RunRegistry(store),
            fleet,
            book,
            run_settings,
            hub_users=hub.all_users,
            meter=meter,
            on_move=metrics.moved,
        )
        teams = {name: team.members for name, team in run_settings.cloud_budget.teams.items()}
        metrics.watch_runs(lambda: runs.lag, meter.used, teams)
        runs.start()
        if self.leftover_sweep_interval > 0:
            sweeper.start()
        url = urlparse(self.bind_url)
        server = HTTPServer(
            self.make_app(fleet, book, metrics, capacity, store=store, ssh_ca=ssh_ca, runs=runs),
            xheaders=True,
        )
        try:
            server.listen(url.port or 80, url.hostname or "127.0.0.1")
            self.log.info(
                "hybridhub service at %s%s for clusters %s, of hub %s (its pods' %s label)",
                self.bind_url.rstrip("/"),
                self.service_prefix,
                ", ".join(c.name for c in configs),
                self.hub_instance,
                HUB_LABEL,
            )
            await stop.wait()
        finally:
            server.stop()
            await runs.stop()
            await sweeper.stop()
            await fleet.stop()
            await store.close()

    def start(self) -> None:
        async def run() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await self.serve(stop)

        asyncio.run(run())


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = HybridHubService()
    app.initialize(argv)
    app.start()
    return 0
