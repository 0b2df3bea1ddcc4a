"""HybridSpawner's settings and the user options they govern: the traits with their defaults and
checks, and how a spawn refused for its options is answered (one log line, a 400, and the user's
earlier options kept)."""

from __future__ import annotations

import copy
import os
from typing import Any

from sqlalchemy.orm import object_session
from tornado import web
from traitlets import Bool, Dict, Float, Integer, List, TraitError, Unicode, Union, default, observe, validate
from traitlets import Callable as CallableTrait

from spawner.core.labels import label_value_problem
from spawner.kube.instance import FALLBACK, default_hub_instance
from spawner.spawning.compat import SpawnRefused
from spawner.spawning.multicluster import MultiClusterSpawner
from spawner.spawning.options import GpuOptions, OptionsError, parse_options
from spawner.spawning.settings import CHECKS

__all__ = ["HybridConfig", "OptionsRefused"]


class OptionsRefused(web.HTTPError):
    """A 400 for options HybridSpawner refuses: its sentence is the API's message and what the spawn
    form shows above itself (``jupyterhub_message``)."""

    def __init__(self, message: str) -> None:
        super().__init__(400, "%s", message)
        self.jupyterhub_message = message


class HybridConfig(MultiClusterSpawner):
    """HybridSpawner's own settings (``c.HybridSpawner.*``) and its user options; the spawning is
    ``spawner.hybrid.HybridSpawner``'s."""

    user_options: dict[str, Any]  # JupyterHub's trait, typed here for mypy (an annotation adds no attribute)

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
    service_timeout = Float(
        10.0,
        config=True,
        help="Seconds one request to the hybridhub service may take, e.g. 10; more than 0.",
    )
    max_gpus = Integer(
        8, config=True, help="The most GPUs one server may ask for, e.g. 8 (the largest node's); at least 1."
    )
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
        help="""GPUs a user may hold at once across their servers: a number (0 or more), or a callable
        ``(spawner) -> int | None`` (e.g. per group). None: no limit.""",
    )
    max_attempts = Integer(
        3,
        config=True,
        help="""Candidates a spawn tries, one after the other, before it gives up, e.g. 3 (on-prem,
        then two more); at least 1.""",
    )
    home_mount_path = Unicode(
        "/home/jovyan",
        config=True,
        help="""Where a cluster's ``home_storage`` (``ClusterSet.clusters``) is mounted in the notebook
        container, an absolute path; a configured volume mount at this path gives way to it. Clusters
        with ``home_storage: none`` keep the configured ``volumes``/``volume_mounts`` as they are.""",
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

    attempt_create_timeout = Float(
        6.0,
        config=True,
        help="""Seconds an attempt's pod may take to be made and seen in its cluster before the spawn
        takes the cluster as not answering and goes on to the next candidate, unless the hybridhub
        service still calls the cluster healthy (its probes are answered: the pod is late because the
        hub is busy, not because the cluster is gone), e.g. 6. A create takes well under a second when
        the API answers; over a hung site link KubeSpawner would retry it for
        ``k8s_api_request_retry_timeout``. While an attempt runs, the spawn also asks the hybridhub
        service every second and moves on as soon as it calls the cluster down. More than 0.""",
    )
    attempt_cleanup_timeout = Float(
        5.0,
        config=True,
        help="""Seconds the removal of a failed attempt's pod may take before the spawn goes on and
        leaves the pod to be removed in the background once its cluster answers, e.g. 5. KubeSpawner
        retries a pod DELETE for ``k8s_api_request_retry_timeout``. More than 0.""",
    )

    ssh_enabled = Bool(
        False,
        config=True,
        help="""Whether notebook pods run ``hybridhub ssh-server`` beside the notebook, in the notebook
        container (its GPUs, its files), so that users reach them with ``ssh`` through the SSH gateway
        (docs/ssh.md). The notebook image must have the ``ssh`` extra installed. The SSH port is never
        put on a per-user Service: only the gateway reaches it, as the NetworkPolicies allow.""",
    )
    ssh_port = Integer(
        2222,
        config=True,
        help="""Port of the SSH server in each notebook pod, e.g. 2222 (the gateway's
        ``GatewayApp.pod_ssh_port`` must be the same). Not 8888 or another port the notebook uses.""",
    )
    ssh_server_command = List(
        Unicode(),
        ["hybridhub", "ssh-server"],
        config=True,
        help="""The command that starts the SSH server in the notebook container, before its own options
        and ``-- <the notebook's command>``, e.g. ``["hybridhub", "ssh-server"]`` (on the image's PATH),
        or ``["/opt/conda/bin/hybridhub", "ssh-server", "--config=/etc/hybridhub/ssh.py"]``.""",
    )
    pod_service_urls = Dict(
        Unicode(),
        config=True,
        help="""The hybridhub service's URL with its prefix as each cluster's pods reach it, by cluster
        name, e.g. ``{"eks": "http://hub:10101/services/hybridhub/", "onprem":
        "https://hub.example.org/services/hybridhub/"}``. Pods get it as $HYBRIDHUB_SERVICE_URL: the
        SSH server asks there for its host certificate and the keys allowed in. A cluster left out:
        its pods get none, and their SSH server does not start (the notebook runs regardless).""",
    )

    hub_instance = Unicode(
        # the default is _default_hub_instance's; a static one other than "" makes a configured "" a
        # change of value, which traitlets then checks
        FALLBACK,
        config=True,
        help="""This hub's name among hubs that share a namespace or a cluster: the value of the label
        ``hybridhub.io/hub`` on every pod HybridSpawner makes. The hybridhub service of this hub
        (``HybridHubService.hub_instance``, which must be the same) removes leftover pods only with
        this label, in any namespace, never another hub's. A label value: letters, digits, ``-``,
        ``_`` and ``.``, at most 63, e.g. ``research-hub``. Default: $HYBRIDHUB_HUB_INSTANCE (which the
        hub also hands its service), else the namespace the hub pod runs in, else ``jupyterhub``.""",
    )

    # ------------------------------------------------------------------ settings: defaults, checks

    @validate("hub_instance")
    def _check_hub_instance(self, proposal: dict[str, Any]) -> str:
        value: str = proposal["value"]
        problem = label_value_problem(value) if value else "must not be empty"
        if problem:
            raise TraitError(f"HybridSpawner.hub_instance {problem}")
        return value

    @validate("ssh_port")
    def _check_ssh_port(self, proposal: dict[str, Any]) -> int:
        value = int(proposal["value"])
        if not 0 < value < 65536 or value == self.port:
            raise TraitError(
                f"HybridSpawner.ssh_port must be a port from 1 to 65535 other than the notebook's "
                f"({self.port}), not {value}"
            )
        return value

    @validate("pod_service_urls")
    def _check_pod_service_urls(self, proposal: dict[str, Any]) -> dict[str, str]:
        value: dict[str, str] = dict(proposal["value"])
        for cluster, url in value.items():
            problem = CHECKS["service_url"](url)
            if problem:
                raise TraitError(f"HybridSpawner.pod_service_urls[{cluster!r}] {problem}")
        return value

    @validate("attempt_create_timeout", "attempt_cleanup_timeout")
    def _check_attempt_timeout(self, proposal: dict[str, Any]) -> float:
        value = float(proposal["value"])
        if not value > 0:
            raise TraitError(f"HybridSpawner.{proposal['trait'].name} must be more than 0 seconds")
        return value

    @default("hub_instance")
    def _default_hub_instance(self) -> str:
        return default_hub_instance()

    @validate(*CHECKS)
    def _check_setting(self, proposal: dict[str, Any]) -> Any:
        name, value = proposal["trait"].name, proposal["value"]
        problem = CHECKS[name](value)
        if problem:
            raise TraitError(f"HybridSpawner.{name} {problem}")
        return value

    @default("service_url")
    def _default_service_url(self) -> str:
        return os.environ.get("HYBRIDHUB_SERVICE_URL", "http://127.0.0.1:10101/services/hybridhub/")

    @default("service_token")
    def _default_service_token(self) -> str:
        return os.environ.get("HYBRIDHUB_HUB_TOKEN", "")

    @default("apply_user_options")
    def _default_apply_user_options(self) -> Any:
        def apply(spawner: HybridConfig, user_options: dict[str, Any]) -> None:
            # _run_apply_user_options has checked the options already; checked again here only for a
            # JupyterHub whose hook runner is not that method. A raised HTTPError is the API's answer.
            try:
                spawner.gpu_options(user_options)
            except SpawnRefused as exc:
                raise OptionsRefused(exc.jupyterhub_message) from None

        return apply

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._saved_options: dict[str, Any] = dict(self.user_options)  # replaced as options change

    @observe("user_options")
    def _remember_saved_options(self, change: dict[str, Any]) -> None:
        # JupyterHub sets a spawn's options here right after saving them as the user's future defaults;
        # the value they replace is what those defaults were
        self._saved_options = change["old"]

    async def _run_apply_user_options(self, user_options: dict[str, Any]) -> None:
        """JupyterHub's step (5.5 and 6) that runs ``apply_user_options``, with the options checked first.
        JupyterHub logs any error of that hook as an ERROR with a traceback, and by then it has saved the
        options as the user's future defaults: refused options are logged here as one line, the saved
        defaults are put back, and the 400 carries the sentence the user reads."""
        try:
            self.gpu_options(user_options)
        except SpawnRefused as exc:
            self._put_back_saved_options(user_options)
            self.log.info("%s: spawn refused for its options: %s", self._log_name, exc.jupyterhub_message)
            raise OptionsRefused(exc.jupyterhub_message) from None
        await super()._run_apply_user_options(user_options)

    def _put_back_saved_options(self, refused: dict[str, Any]) -> None:
        """Make the options the spawn form and the next spawn start from those saved before ``refused``."""
        previous = copy.deepcopy(self._saved_options)
        if self.user_options == refused:
            self.user_options = previous
        orm = self.orm_spawner
        # the spawner's options follow what JupyterHub saves, except that JupyterHub 6's PATCH saves
        # options without telling the spawner; refused options equal to those before are left alone
        if orm is not None and orm.user_options == refused and refused != previous:
            orm.user_options = previous
            session = object_session(orm)
            if session is not None:
                session.commit()

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
