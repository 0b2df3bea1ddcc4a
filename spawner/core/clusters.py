"""The clusters operators configure (``c.ClusterSet.clusters``), parsed into frozen ClusterConfigs."""

from __future__ import annotations

import re
import string
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, cast
from urllib.parse import urlsplit

from traitlets import Dict, List, TraitError, validate
from traitlets.config import Configurable

from spawner.core.model import Pool, Role
from spawner.core.quantity import QuantityError, parse_quantity

__all__ = ["ClusterConfig", "ClusterSet", "HomeStorage", "parse_clusters"]

PodAccess = Literal["pod-ip", "service"]
ServiceType = Literal["LoadBalancer", "NodePort"]
HomeKind = Literal["pvc", "nfs", "none"]

_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
# the fields KubeSpawner 7 fills into its name templates (KubeSpawner._expand_user_properties)
_TEMPLATE_FIELDS = frozenset(
    {
        "userid",
        "unescaped_username",
        "unescaped_servername",
        "hubnamespace",
        "username",
        "servername",
        "user_server",
        "safe_username",
        "safe_servername",
        "safe_user_server",
        "escaped_username",
        "escaped_servername",
        "escaped_user_server",
    }
)
_USER_FIELDS = _TEMPLATE_FIELDS - {
    "hubnamespace",
    "servername",
    "unescaped_servername",
    "safe_servername",
    "escaped_servername",
}
# Kubernetes' label syntax: a node selector, a toleration or a GPU product that breaks it makes every
# pod of that pool a 422, or matches no node at all
_LABEL_NAME = re.compile(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
_TOLERATION_KEYS = frozenset({"key", "operator", "value", "effect"})
_EFFECTS = ("NoSchedule", "PreferNoSchedule", "NoExecute")


@dataclass(frozen=True)
class HomeStorage:
    """Where users' home directories live in one cluster: a PVC per user, an NFS export, or nothing."""

    kind: HomeKind = "none"
    storage_class: str | None = None  # pvc: None means the cluster's default StorageClass
    size: str | None = None  # pvc: a quantity such as "10Gi"
    nfs_server: str | None = None
    nfs_path: str | None = None  # nfs: absolute path of the export; per-user subdirectories below it


@dataclass(frozen=True)
class ClusterConfig:
    """One Kubernetes cluster the hub can start notebooks in, and how to reach it and its pods."""

    name: str
    role: Role
    kubeconfig: str | None  # None: in-cluster config (the hub runs in this cluster)
    context: str | None  # None: the kubeconfig's current-context
    namespace: str
    user_namespace_template: str | None  # e.g. "jupyter-{username}"; None: everything in `namespace`
    hub_connect_url: str  # how pods in this cluster reach the hub
    pod_access: PodAccess  # how the hub reaches the notebook: its pod IP, or a per-user Service
    service_type: ServiceType | None  # for pod_access "service"
    home_storage: HomeStorage
    pools: tuple[Pool, ...]

    @property
    def in_cluster(self) -> bool:
        return self.kubeconfig is None

    @property
    def roles(self) -> frozenset[Role]:
        """The roles of its pools: two in the single-cluster topology (e.g. EKS Hybrid Nodes)."""
        return frozenset(self.pool_role(p) for p in self.pools)

    def pool_role(self, pool: Pool) -> Role:
        return pool.role if pool.role is not None else self.role

    def pool(self, name: str) -> Pool:
        for pool in self.pools:
            if pool.name == name:
                return pool
        raise KeyError(f"cluster {self.name} has no pool {name!r}")


# -- parsing: every error names its place, e.g. "clusters[1].pools[0].node_selector: expected a mapping"


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise ValueError(f"{where}: expected a mapping, got {type(value).__name__}")
    for key in value:
        if not isinstance(key, str):
            raise ValueError(f"{where}: keys must be strings, got {key!r}")
    return value


def _keys(data: Mapping[str, Any], where: str, required: set[str], optional: set[str]) -> None:
    unknown = set(data) - required - optional
    if unknown:
        raise ValueError(f"{where}: unknown keys {sorted(unknown)} (known: {sorted(required | optional)})")
    missing = required - set(data)
    if missing:
        raise ValueError(f"{where}.{sorted(missing)[0]}: required")


def _str(value: Any, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{where}: expected a non-empty string, got {value!r}")
    return value


def _opt_str(data: Mapping[str, Any], key: str, where: str) -> str | None:
    value = data.get(key)
    return None if value is None else _str(value, f"{where}.{key}")


def _name(value: Any, where: str) -> str:
    name = _str(value, where)
    if len(name) > 63 or not _DNS_LABEL.match(name):
        raise ValueError(f"{where}: {name!r} is not a DNS label (lower-case letters, digits, '-'; <= 63)")
    return name


def _choice(value: Any, where: str, choices: Sequence[str]) -> str:
    if value not in choices:
        raise ValueError(f"{where}: must be one of {', '.join(choices)}, got {value!r}")
    return str(value)


def _string_map(value: Any, where: str) -> dict[str, str]:
    data = _mapping(value, where)
    for key, item in data.items():
        if not isinstance(item, str):
            raise ValueError(f"{where}.{key}: expected a string, got {item!r}")
    return dict(data)


def _label_key(key: str, where: str) -> str:
    prefix, slash, name = key.rpartition("/")
    if (
        len(name) > 63
        or not _LABEL_NAME.match(name)
        or (slash and (len(prefix) > 253 or not _DNS_SUBDOMAIN.match(prefix)))
    ):
        raise ValueError(f"{where}: {key!r} is not a label key (e.g. 'nvidia.com/gpu.product')")
    return key


def _label_value(value: str, where: str) -> str:
    if value and (len(value) > 63 or not _LABEL_NAME.match(value)):
        raise ValueError(f"{where}: {value!r} is not a label value (letters, digits, '-', '_', '.'; <= 63)")
    return value


def _selector(value: Any, where: str) -> dict[str, str]:
    selector = _string_map(value, where)
    for key, item in selector.items():
        _label_key(key, where)
        _label_value(item, f"{where}.{key}")
    return selector


def _int(value: Any, where: str, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{where}: expected an integer >= {minimum}, got {value!r}")
    return value


def _role(value: Any, where: str) -> Role:
    return Role(_choice(value, where, [r.value for r in Role]))


def _template(value: Any, where: str) -> str:
    template = _str(value, where)
    try:
        fields = {f for _, f, _, _ in string.Formatter().parse(template) if f is not None}
    except ValueError as exc:
        raise ValueError(f"{where}: {exc}") from exc
    unknown = fields - _TEMPLATE_FIELDS
    if unknown:
        raise ValueError(f"{where}: unknown fields {sorted(unknown)} (known: {sorted(_TEMPLATE_FIELDS)})")
    if not fields & _USER_FIELDS:
        raise ValueError(f"{where}: must name the user, e.g. 'jupyter-{{username}}'")
    return template


def _url(value: Any, where: str) -> str:
    url = _str(value, where)
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{where}: expected an http(s) URL with a host, got {url!r}")
    return url


def _tolerations(value: Any, where: str) -> tuple[Mapping[str, str], ...]:
    if not isinstance(value, list | tuple):
        raise ValueError(f"{where}: expected a list, got {type(value).__name__}")
    result = []
    for i, raw in enumerate(value):
        here = f"{where}[{i}]"
        toleration = _string_map(raw, here)
        _keys(toleration, here, set(), set(_TOLERATION_KEYS))
        operator = toleration.get("operator", "Equal")
        _choice(operator, f"{here}.operator", ("Equal", "Exists"))
        if "effect" in toleration:
            _choice(toleration["effect"], f"{here}.effect", _EFFECTS)
        if operator == "Equal" and not toleration.get("key"):
            raise ValueError(f"{here}.key: required with operator Equal")
        if toleration.get("key"):
            _label_key(toleration["key"], f"{here}.key")
        _label_value(toleration.get("value", ""), f"{here}.value")
        if operator == "Exists" and "value" in toleration:
            raise ValueError(f"{here}.value: not allowed with operator Exists")
        result.append(toleration)
    return tuple(result)


def _pool(raw: Any, where: str) -> Pool:
    data = _mapping(raw, where)
    elastic_only = {"gpus_per_node", "gpu_product", "max_nodes", "provisioning_deadline"}
    _keys(data, where, {"name"}, {"role", "node_selector", "tolerations", "elastic", *elastic_only})
    elastic = data.get("elastic", False)
    if not isinstance(elastic, bool):
        raise ValueError(f"{where}.elastic: expected true or false, got {elastic!r}")
    if not elastic:
        misplaced = sorted(elastic_only & set(data))
        if misplaced:
            raise ValueError(f"{where}.{misplaced[0]}: only for elastic pools (a fixed pool's nodes say it)")
    deadline = data.get("provisioning_deadline")
    if deadline is not None and (
        isinstance(deadline, bool) or not isinstance(deadline, int | float) or not 0 < deadline < float("inf")
    ):
        raise ValueError(f"{where}.provisioning_deadline: expected seconds > 0, got {deadline!r}")
    if elastic and "max_nodes" not in data:
        raise ValueError(
            f"{where}.max_nodes: required for an elastic pool (without it no node is ever added)"
        )
    gpus_per_node = _int(data.get("gpus_per_node", 0), f"{where}.gpus_per_node")
    gpu_product = _opt_str(data, "gpu_product", where)
    if gpu_product is not None:
        _label_value(gpu_product, f"{where}.gpu_product")
        if not gpus_per_node:
            raise ValueError(
                f"{where}.gpus_per_node: required (1 or more) with gpu_product: "
                "without it no GPU spawn ever uses the pool"
            )
    return Pool(
        name=_name(data["name"], f"{where}.name"),
        node_selector=_selector(data.get("node_selector", {}), f"{where}.node_selector"),
        elastic=elastic,
        gpus_per_node=gpus_per_node,
        gpu_product=gpu_product,
        max_nodes=_int(data["max_nodes"], f"{where}.max_nodes", 1) if elastic else 0,
        tolerations=_tolerations(data.get("tolerations", []), f"{where}.tolerations"),
        provisioning_deadline=None if deadline is None else float(deadline),
        role=_role(data["role"], f"{where}.role") if "role" in data else None,
    )


def _positive_quantity(value: Any) -> bool:
    try:
        return isinstance(value, str) and parse_quantity(value) > 0
    except QuantityError:
        return False


def _home_storage(raw: Any, where: str) -> HomeStorage:
    data = _mapping(raw, where)
    kind = _choice(data.get("kind"), f"{where}.kind", ("pvc", "nfs", "none"))
    if kind == "pvc":
        _keys(data, where, {"kind", "size"}, {"storage_class"})
        size = data["size"]
        if not _positive_quantity(size):
            raise ValueError(f"{where}.size: expected a quantity such as '10Gi', got {size!r}")
        storage_class = _opt_str(data, "storage_class", where)
        if storage_class is not None and (
            len(storage_class) > 253 or not _DNS_SUBDOMAIN.match(storage_class)
        ):
            raise ValueError(f"{where}.storage_class: {storage_class!r} is not a StorageClass name")
        return HomeStorage(kind="pvc", size=size, storage_class=storage_class)
    if kind == "nfs":
        _keys(data, where, {"kind", "nfs_server", "nfs_path"}, set())
        path = _str(data["nfs_path"], f"{where}.nfs_path")
        if not path.startswith("/"):
            raise ValueError(f"{where}.nfs_path: expected an absolute path, got {path!r}")
        return HomeStorage(
            kind="nfs", nfs_server=_str(data["nfs_server"], f"{where}.nfs_server"), nfs_path=path
        )
    _keys(data, where, {"kind"}, set())
    return HomeStorage(kind="none")


def _cluster(raw: Any, where: str) -> ClusterConfig:
    data = _mapping(raw, where)
    _keys(
        data,
        where,
        {"name", "role", "namespace", "hub_connect_url", "home_storage", "pools"},
        {"kubeconfig", "context", "user_namespace_template", "pod_access", "service_type"},
    )
    name = _name(data["name"], f"{where}.name")
    role = _role(data["role"], f"{where}.role")
    kubeconfig = _opt_str(data, "kubeconfig", where)
    context = _opt_str(data, "context", where)
    if kubeconfig is None and context is not None:
        raise ValueError(f"{where}.context: needs a kubeconfig (without one the hub uses in-cluster config)")
    pod_access = _choice(data.get("pod_access", "pod-ip"), f"{where}.pod_access", ("pod-ip", "service"))
    service_type = data.get("service_type")
    if pod_access == "service":
        service_type = _choice(service_type, f"{where}.service_type", ("LoadBalancer", "NodePort"))
    elif service_type is not None:
        raise ValueError(f"{where}.service_type: only with pod_access 'service' (a ClusterIP is unreachable)")
    raw_pools = data["pools"]
    if not isinstance(raw_pools, list | tuple) or not raw_pools:
        raise ValueError(f"{where}.pools: expected a non-empty list")
    pools = tuple(_pool(p, f"{where}.pools[{i}]") for i, p in enumerate(raw_pools))
    seen: dict[str, int] = {}
    selectors: dict[tuple[tuple[str, str], ...], int] = {}
    for i, pool in enumerate(pools):
        here = f"{where}.pools[{i}]"
        if pool.name in seen:
            raise ValueError(
                f"{here}.name: duplicate pool name {pool.name!r} (also pools[{seen[pool.name]}])"
            )
        seen[pool.name] = i
        if len(pools) > 1 and not pool.node_selector:
            raise ValueError(f"{here}.node_selector: required when a cluster has several pools")
        key = tuple(sorted(pool.node_selector.items()))
        if key in selectors:
            raise ValueError(f"{here}.node_selector: same as pools[{selectors[key]}]")
        selectors[key] = i
    return ClusterConfig(
        name=name,
        role=role,
        kubeconfig=kubeconfig,
        context=context,
        namespace=_name(data["namespace"], f"{where}.namespace"),
        user_namespace_template=(
            None
            if data.get("user_namespace_template") is None
            else _template(data["user_namespace_template"], f"{where}.user_namespace_template")
        ),
        hub_connect_url=_url(data["hub_connect_url"], f"{where}.hub_connect_url"),
        pod_access=cast(PodAccess, pod_access),
        service_type=cast(ServiceType | None, service_type),
        home_storage=_home_storage(data["home_storage"], f"{where}.home_storage"),
        pools=pools,
    )


def parse_clusters(raw: Sequence[Mapping[str, Any]]) -> tuple[ClusterConfig, ...]:
    """ClusterConfigs from the operator's list; ``ValueError`` naming the place of the first mistake."""
    if not isinstance(raw, list | tuple):
        raise ValueError(f"clusters: expected a list, got {type(raw).__name__}")
    if not raw:
        raise ValueError("clusters: at least one cluster is required")
    clusters = tuple(_cluster(c, f"clusters[{i}]") for i, c in enumerate(raw))
    seen: dict[str, int] = {}
    for i, cluster in enumerate(clusters):
        if cluster.name in seen:
            raise ValueError(
                f"clusters[{i}].name: duplicate cluster name {cluster.name!r} "
                f"(also clusters[{seen[cluster.name]}])"
            )
        seen[cluster.name] = i
    return clusters


_EXAMPLE = """
    c.ClusterSet.clusters = [
        {
            "name": "onprem",
            "role": "onprem",
            "kubeconfig": None,  # in-cluster: the hub runs here
            "namespace": "jupyterhub",
            "user_namespace_template": "jupyter-{username}",
            "hub_connect_url": "http://hub.jupyterhub.svc:8081",
            "pod_access": "pod-ip",
            "home_storage": {"kind": "nfs", "nfs_server": "nas.lab", "nfs_path": "/export/home"},
            "pools": [
                {"name": "dgx", "node_selector": {"nvidia.com/gpu.product": "NVIDIA-A100-SXM4-80GB"},
                 "tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}]},
                {"name": "l40s", "node_selector": {"nvidia.com/gpu.product": "NVIDIA-L40S"}},
            ],
        },
        {
            "name": "eks",
            "role": "cloud",
            "kubeconfig": "/etc/hybridhub/eks.kubeconfig",  # an `aws eks get-token` exec user
            "context": "eks",
            "namespace": "jupyterhub",
            "hub_connect_url": "https://hub.example.org",
            "pod_access": "service",
            "service_type": "LoadBalancer",
            "home_storage": {"kind": "pvc", "storage_class": "gp3", "size": "50Gi"},
            "pools": [
                {"name": "a100", "elastic": True, "max_nodes": 2, "gpus_per_node": 8,
                 "gpu_product": "NVIDIA-A100-SXM4-80GB", "provisioning_deadline": 900,
                 "node_selector": {"eks.amazonaws.com/nodegroup": "gpu-a100"},
                 "tolerations": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}]},
            ],
        },
    ]
"""


# parse_clusters' answers by the repr of what it was given: every spawner has a ClusterSet of its own,
# and each parsed the same setting again (twice: once checked, once read) at about 0.4 ms a time
_PARSED: dict[str, tuple[ClusterConfig, ...]] = {}


def _parsed(value: Sequence[Mapping[str, Any]]) -> tuple[ClusterConfig, ...]:
    """``parse_clusters(value)``, parsed once per process for each value (ClusterConfigs are frozen)."""
    key = repr(value)
    clusters = _PARSED.get(key)
    if clusters is None:
        clusters = parse_clusters(value)
        if len(_PARSED) >= 16:  # a process has one setting, tests a handful: never grows without end
            _PARSED.clear()
        _PARSED[key] = clusters
    return clusters


class ClusterSet(Configurable):
    """The clusters the hub (HybridSpawner) and the hybridhub service use: one setting for both."""

    clusters = List(
        Dict(),
        config=True,
        help=f"""The Kubernetes clusters notebooks may run in, tried on-prem first.

        Each entry is a dict:

        - ``name`` (DNS label; also in spawner state and metrics), ``role`` (``onprem`` | ``cloud``).
        - ``kubeconfig`` (path) and ``context`` (default: its current-context) say how to reach the
          API; leave ``kubeconfig`` out (None) for the in-cluster service account. Exec credential
          plugins (``aws eks get-token``) are re-run before their tokens expire and after a 401.
        - ``namespace`` for the hub's objects and the notebook pods there. ``user_namespace_template``
          (a KubeSpawner template such as ``jupyter-{{username}}``) is checked but not used yet:
          HybridSpawner puts every pod in ``namespace`` and logs a warning when the template is set.
        - ``hub_connect_url``: the hub's URL as pods in this cluster reach it (differs per cluster).
        - ``pod_access``: how the hub reaches a notebook there: ``pod-ip`` (flat network, or one
          cluster with hybrid nodes; the default) or ``service``, a per-user Service whose
          ``service_type`` is ``LoadBalancer`` or ``NodePort`` (a ClusterIP is unreachable from
          another cluster).
        - ``home_storage``: ``{{"kind": "pvc", "size": "10Gi", "storage_class": ...}}`` (storage_class
          optional: the cluster's default), ``{{"kind": "nfs", "nfs_server": ..., "nfs_path": "/abs"}}``
          or ``{{"kind": "none"}}`` (ephemeral home).
        - ``pools``: node pools, each ``name`` with ``node_selector`` (labels that pick its nodes;
          required when there are several pools), ``tolerations`` (``key``, ``operator``, ``value``,
          ``effect``), and for ``elastic: true`` pools (cluster-autoscaler, Karpenter) ``max_nodes``,
          ``gpus_per_node``, ``gpu_product`` and ``provisioning_deadline`` (seconds a new node may
          take; default ``HybridSpawner.elastic_deadline``). A pool's ``role`` defaults to the
          cluster's; set it for the single-cluster topology (EKS Hybrid Nodes: one cluster, an
          ``onprem`` and a ``cloud`` pool).

        Unknown keys are errors, and errors name the place
        (``clusters[1].pools[0].node_selector: expected a mapping``). Example, an on-prem cluster the
        hub runs in and an EKS cluster whose A100 pool scales from zero:
        {_EXAMPLE}""",
    )

    @validate("clusters")
    def _validate_clusters(self, proposal: dict[str, Any]) -> list[dict[str, Any]]:
        value: list[dict[str, Any]] = proposal["value"]
        try:
            self._parsed = (value, _parsed(value))
        except ValueError as exc:
            raise TraitError(f"ClusterSet.clusters: {exc}") from exc
        return value

    _parsed: tuple[list[dict[str, Any]], tuple[ClusterConfig, ...]] | None = None

    @property
    def configs(self) -> tuple[ClusterConfig, ...]:
        """The parsed clusters; ``ValueError`` when none are configured. Parsed once per value of
        ``clusters``: a spawn reads them dozens of times."""
        value = self.clusters
        if self._parsed is None or self._parsed[0] is not value:
            self._parsed = (value, _parsed(value))
        return self._parsed[1]

    def get(self, name: str) -> ClusterConfig:
        for cluster in self.configs:
            if cluster.name == name:
                return cluster
        raise KeyError(f"no cluster named {name!r} in ClusterSet.clusters")
