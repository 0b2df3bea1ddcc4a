"""The cluster file: which clusters to emulate, their node groups, elastic pools and timings."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from .history import DEFAULT_WINDOW, WatchWindow
from .resources import DEFAULT_CUSTOM_RESOURCES

__all__ = [
    "ClusterSpec",
    "ConfigError",
    "NodeGroup",
    "Timings",
    "default_cluster_file",
    "load_cluster_file",
    "parse_cluster_file",
]


RUNTIMES = ("simulated", "process", "process-loopback")


class ConfigError(ValueError):
    """The cluster file is wrong; the message names the place."""


@dataclass(frozen=True)
class NodeGroup:
    """Identical nodes: a fixed group (``count`` nodes) or an elastic pool (``min``..``max``)."""

    name: str
    capacity: Mapping[str, str]  # cpu, memory, pods, nvidia.com/gpu, ephemeral-storage
    count: int = 0
    elastic: bool = False
    min: int = 0
    max: int = 0
    labels: Mapping[str, str] = field(default_factory=dict)
    taints: tuple[Mapping[str, str], ...] = ()
    gpu_product: str | None = None
    gpu_memory_mib: int | None = None
    instance_type: str | None = None
    zone: str | None = None

    def node_labels(self, node_name: str) -> dict[str, str]:
        """The labels a node of this group carries, GPU Feature Discovery's included."""
        labels = {
            "kubernetes.io/hostname": node_name,
            "kubernetes.io/os": "linux",
            "kubernetes.io/arch": "amd64",
            "simcluster.hybridhub.io/node-group": self.name,
        }
        if self.instance_type:
            labels["node.kubernetes.io/instance-type"] = self.instance_type
        if self.zone:
            labels["topology.kubernetes.io/zone"] = self.zone
        gpus = int(self.capacity.get("nvidia.com/gpu", 0) or 0)
        if gpus:
            labels["nvidia.com/gpu.present"] = "true"
            labels["nvidia.com/gpu.count"] = str(gpus)
            if self.gpu_product:
                labels["nvidia.com/gpu.product"] = self.gpu_product
            if self.gpu_memory_mib:
                labels["nvidia.com/gpu.memory"] = str(self.gpu_memory_mib)
        labels.update(self.labels)
        return labels


@dataclass(frozen=True)
class Timings:
    """Delays, in seconds, of the emulated controllers."""

    pod_start: float = 0.5  # bound -> Running (image pull, container start)
    pod_stop: float = 0.2  # longest a deleted pod takes to go (bounded by its grace period)
    scale_up: float = 5.0  # TriggeredScaleUp -> the new node exists
    node_ready: float = 1.0  # node exists -> Ready
    scale_down_idle: float = 600.0  # an elastic node with no pods for this long is removed
    bookmark: float = 60.0  # watch bookmark interval


@dataclass(frozen=True)
class ClusterSpec:
    """One emulated cluster."""

    name: str
    role: str = "onprem"  # onprem | cloud
    node_groups: tuple[NodeGroup, ...] = ()
    namespaces: tuple[str, ...] = ("default", "kube-system", "kube-public")
    custom_resources: tuple[Mapping[str, Any], ...] = DEFAULT_CUSTOM_RESOURCES
    timings: Timings = Timings()
    exec_token_ttl: float = 900.0  # lifetime of exec-plugin tokens (EKS: 15 minutes)
    users: tuple[str, ...] = ("admin",)  # each gets a static token
    # users declared with groups: only RBAC decides what they may do (the others are cluster-admin)
    user_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    user_tokens: Mapping[str, str] = field(default_factory=dict)  # user -> the static token the file names
    history: WatchWindow = DEFAULT_WINDOW  # what watches and continue tokens resume from (else 410)
    pod_cidr: str = "10.244.0.0/16"
    node_cidr: str = "192.168.0.0/16"
    load_balancer_cidr: str = ""  # LoadBalancer ingress IPs; "" = 127.210.<cluster index>.0/24
    storage_classes: tuple[str, ...] = ("standard",)
    default_storage_class: str = "standard"
    runtime: str = "simulated"  # simulated | process | process-loopback
    argo: bool = True  # the Argo Server and the workflow controller
    jobs: bool = True  # the batch/v1 Job controller
    katib: bool = True  # Katib's webhooks and its experiment, suggestion and trial controllers
    trainer: bool = True  # Kubeflow Trainer: the TrainJob controller, its webhook, torch-distributed
    training_operator: bool = True  # the Training Operator: PyTorchJobs (`trainingOperator` in the file)
    # the ExtendedResourceToleration admission plugin: a pod asking for nvidia.com/gpu tolerates the
    # nvidia.com/gpu taint of GPU nodes. EKS enables it (since 1.19); kubeadm clusters do not. The
    # file's `extendedResourceToleration`; by default on for role cloud.
    extended_resource_toleration: bool = False


def _mapping(value: Any, where: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__}")
    return value


def _int(value: Any, where: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ConfigError(f"{where}: expected a non-negative integer, got {value!r}")
    return value


def _node_group(raw: Any, where: str) -> NodeGroup:
    data = _mapping(raw, where)
    known = {
        "name",
        "count",
        "elastic",
        "min",
        "max",
        "capacity",
        "labels",
        "taints",
        "gpu",
        "instanceType",
        "zone",
    }
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.name: required")
    capacity = {str(k): str(v) for k, v in _mapping(data.get("capacity"), f"{where}.capacity").items()}
    for need in ("cpu", "memory"):
        if need not in capacity:
            raise ConfigError(f"{where}.capacity.{need}: required")
    capacity.setdefault("pods", "110")
    capacity.setdefault("ephemeral-storage", "500Gi")
    gpu = _mapping(data.get("gpu"), f"{where}.gpu")
    if gpu and "count" in gpu:
        capacity["nvidia.com/gpu"] = str(_int(gpu["count"], f"{where}.gpu.count"))
    elastic = bool(data.get("elastic", False))
    taints = tuple(
        {"key": str(t["key"]), "value": str(t.get("value", "")), "effect": str(t["effect"])}
        for t in data.get("taints") or []
    )
    group = NodeGroup(
        name=name,
        capacity=capacity,
        count=_int(data.get("count", 0), f"{where}.count"),
        elastic=elastic,
        min=_int(data.get("min", 0), f"{where}.min"),
        max=_int(data.get("max", 0), f"{where}.max"),
        labels={str(k): str(v) for k, v in _mapping(data.get("labels"), f"{where}.labels").items()},
        taints=taints,
        gpu_product=gpu.get("product"),
        gpu_memory_mib=gpu.get("memoryMiB"),
        instance_type=data.get("instanceType"),
        zone=data.get("zone"),
    )
    if elastic and group.max < max(group.min, 1):
        raise ConfigError(f"{where}: an elastic pool needs max >= max(min, 1)")
    return group


def _users(raw: Any, where: str) -> tuple[tuple[str, ...], dict[str, tuple[str, ...]], dict[str, str]]:
    """(names, groups of the non-admin users, tokens the file names) from ``users``.

    A string is a cluster-admin user (group system:masters), as users always were; a mapping
    ``{name, groups, token}`` is a user only RBAC grants anything, with the static token it names
    (a random one when it names none), as a kube-apiserver token file declares users.
    """
    names: list[str] = []
    groups: dict[str, tuple[str, ...]] = {}
    tokens: dict[str, str] = {}
    for i, item in enumerate(raw or ["admin"]):
        at = f"{where}[{i}]"
        if isinstance(item, str) and item:
            names.append(item)
            continue
        data = _mapping(item, at)
        unknown = set(data) - {"name", "groups", "token"}
        if unknown:
            raise ConfigError(f"{at}: unknown keys {sorted(unknown)}")
        name, token, member_of = data.get("name"), data.get("token"), data.get("groups") or []
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{at}.name: required")
        if not isinstance(member_of, list) or not all(isinstance(g, str) and g for g in member_of):
            raise ConfigError(f"{at}.groups: expected a list of group names")
        if "system:masters" in member_of:
            raise ConfigError(f"{at}.groups: name the user as a plain string to make it cluster-admin")
        if token is not None:
            if not isinstance(token, str) or len(token) < 16:
                raise ConfigError(f"{at}.token: expected a string of at least 16 characters")
            if token in tokens.values():
                raise ConfigError(f"{at}.token: another user has this token")
            tokens[name] = token
        names.append(name)
        groups[name] = tuple(member_of)
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: duplicate user names")
    return tuple(names), groups, tokens


def _watch_cache(raw: Any, where: str) -> WatchWindow:
    """``watchCache: {seconds, minEvents, maxEvents, compaction}``; what it leaves out is kube-apiserver's."""
    data = _mapping(raw, where)
    keys = {
        "seconds": "seconds",
        "minEvents": "min_events",
        "maxEvents": "max_events",
        "compaction": "compaction",
    }
    unknown = set(data) - set(keys)
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    values: dict[str, Any] = {}
    for key, name in keys.items():
        if key not in data:
            continue
        values[name] = (
            _int(data[key], f"{where}.{key}")
            if key.endswith("Events")
            else _seconds(data[key], f"{where}.{key}")
        )
    try:
        return WatchWindow(**values)
    except ValueError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def _seconds(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ConfigError(f"{where}: expected a non-negative number of seconds, got {value!r}")
    return float(value)


def _cluster(raw: Any, where: str) -> ClusterSpec:
    data = _mapping(raw, where)
    known = {
        "name",
        "role",
        "nodeGroups",
        "namespaces",
        "customResources",
        "timings",
        "execTokenTTL",
        "users",
        "watchCache",
        "podCIDR",
        "nodeCIDR",
        "loadBalancerCIDR",
        "storageClasses",
        "runtime",
        "argo",
        "jobs",
        "katib",
        "trainer",
        "trainingOperator",
        "extendedResourceToleration",
    }
    unknown = set(data) - known
    if unknown:
        raise ConfigError(f"{where}: unknown keys {sorted(unknown)}")
    name = data.get("name")
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}.name: required")
    role = data.get("role", "onprem")
    if role not in {"onprem", "cloud"}:
        raise ConfigError(f"{where}.role: must be onprem or cloud, got {role!r}")
    groups = tuple(
        _node_group(g, f"{where}.nodeGroups[{i}]") for i, g in enumerate(data.get("nodeGroups") or [])
    )
    names = [g.name for g in groups]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}.nodeGroups: duplicate names")
    timing_data = _mapping(data.get("timings"), f"{where}.timings")
    try:
        timings = Timings(**{k: float(v) for k, v in timing_data.items()})
    except TypeError as exc:
        raise ConfigError(f"{where}.timings: {exc}") from exc
    pod_cidr = str(data.get("podCIDR", "10.244.0.0/16"))
    try:
        room = 2 ** max(0, 24 - ipaddress.ip_network(pod_cidr).prefixlen)
    except ValueError as exc:
        raise ConfigError(f"{where}.podCIDR: {exc}") from exc
    most = sum(g.max if g.elastic else g.count for g in groups)
    if most > room:
        raise ConfigError(
            f"{where}.podCIDR: {pod_cidr} has room for {room} nodes (a /24 each), but the node "
            f"groups can have {most}; widen it (a /12 holds 4096)"
        )
    lb_cidr = str(data.get("loadBalancerCIDR", ""))
    if lb_cidr:
        try:
            if ipaddress.ip_network(lb_cidr).version != 4:
                raise ValueError("must be an IPv4 network")
        except ValueError as exc:
            raise ConfigError(f"{where}.loadBalancerCIDR: {exc}") from exc
    runtime = data.get("runtime", "simulated")
    if runtime not in RUNTIMES:
        raise ConfigError(f"{where}.runtime: must be one of {', '.join(RUNTIMES)}, got {runtime!r}")
    namespaces = tuple(data.get("namespaces") or ClusterSpec.namespaces)
    switches = {}
    for key in ("argo", "jobs", "katib", "trainer", "trainingOperator", "extendedResourceToleration"):
        value = data.get(key, role == "cloud" if key == "extendedResourceToleration" else True)
        if not isinstance(value, bool):
            raise ConfigError(f"{where}.{key}: expected true or false, got {value!r}")
        switches[key] = value
    classes = tuple(data.get("storageClasses") or ("standard",))
    users, user_groups, user_tokens = _users(data.get("users"), f"{where}.users")
    return ClusterSpec(
        name=name,
        role=role,
        node_groups=groups,
        namespaces=namespaces if "default" in namespaces else ("default", *namespaces),
        custom_resources=tuple(data.get("customResources") or DEFAULT_CUSTOM_RESOURCES),
        timings=timings,
        exec_token_ttl=float(data.get("execTokenTTL", 900)),
        users=users,
        user_groups=user_groups,
        user_tokens=user_tokens,
        history=_watch_cache(data.get("watchCache"), f"{where}.watchCache"),
        pod_cidr=pod_cidr,
        node_cidr=str(data.get("nodeCIDR", "192.168.0.0/16")),
        load_balancer_cidr=lb_cidr,
        storage_classes=classes,
        default_storage_class=classes[0],
        runtime=runtime,
        argo=switches["argo"],
        jobs=switches["jobs"],
        katib=switches["katib"],
        trainer=switches["trainer"],
        training_operator=switches["trainingOperator"],
        extended_resource_toleration=switches["extendedResourceToleration"],
    )


def parse_cluster_file(data: Any) -> tuple[ClusterSpec, ...]:
    """Clusters from the parsed YAML of a cluster file."""
    top = _mapping(data, "cluster file")
    raw = top.get("clusters")
    if not isinstance(raw, list) or not raw:
        raise ConfigError("cluster file: 'clusters' must be a non-empty list")
    clusters = tuple(_cluster(c, f"clusters[{i}]") for i, c in enumerate(raw))
    names = [c.name for c in clusters]
    if len(set(names)) != len(names):
        raise ConfigError("cluster file: duplicate cluster names")
    return clusters


def load_cluster_file(path: str | Path | None = None) -> tuple[ClusterSpec, ...]:
    """Clusters from ``path``, or the packaged default (on-prem + EKS) when None."""
    if path is None:
        text = default_cluster_file()
        where = "default cluster file"
    else:
        text = Path(path).read_text()
        where = str(path)
    try:
        return parse_cluster_file(yaml.safe_load(text))
    except yaml.YAMLError as exc:
        raise ConfigError(f"{where}: not valid YAML: {exc}") from exc
    except ConfigError as exc:
        raise ConfigError(f"{where}: {exc}") from exc


def default_cluster_file() -> str:
    return resources.files("simcluster").joinpath("clusters.yaml").read_text()
