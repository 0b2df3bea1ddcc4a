"""What one spawn attempt's pod looks like: the KubeSpawner settings a candidate of the service gives."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from typing import Any

from spawner.core.clusters import ClusterConfig
from spawner.core.labels import CLUSTER_LABEL, GPU, HUB_LABEL, PRODUCT_LABEL
from spawner.core.model import Role
from spawner.spawning.home import with_home
from spawner.spawning.options import GpuOptions

__all__ = [
    "ATTEMPT_TRAITS",
    "Candidate",
    "PodSettings",
    "build_attempt",
    "container_mounts",
    "placement_reason",
    "required_terms",
    "spawn_base",
]

# The claim name as KubeSpawner's volumes spell it; KubeSpawner expands it to the user's claim.
CLAIM_TEMPLATE = "{pvc_name}"


@dataclass(frozen=True)
class Candidate:
    """One place the hybridhub service proposes for a server, as ``POST api/placements`` answers it."""

    cluster: str
    pool: str
    nodes: tuple[str, ...] = ()  # the fixed pool's nodes that fit; empty for an elastic pool
    preferred_node: str | None = None  # the best-fit node, preferred but not required
    elastic: bool = False  # the pool adds nodes on demand, so waiting for one is normal
    reason: str = ""  # the sentence users read about why the server goes here
    reservation: str | None = None  # the service's reservation of the GPUs, released after the attempt
    # a new node's pod keeps off these: their free GPUs are held for other spawns
    avoid_nodes: tuple[str, ...] = ()
    expires_in: float | None = None  # seconds the reservation lasts unless extended

    def tried(self) -> dict[str, Any]:
        """How a spawn that tried this candidate names it in its next ``POST api/placements``."""
        return {"cluster": self.cluster, "pool": self.pool, "elastic": self.elastic}

    @classmethod
    def from_json(cls, raw: Any) -> Candidate:
        """A candidate from the service's JSON; ``ValueError`` naming the field when it is malformed."""
        if not isinstance(raw, Mapping):
            raise ValueError(f"a candidate must be an object, not {type(raw).__name__}")

        def text(key: str, *, optional: bool = False) -> str | None:
            value = raw.get(key)
            if value is None and optional:
                return None
            if not isinstance(value, str) or not value:
                raise ValueError(f"candidate {key}: expected a non-empty string, got {value!r}")
            return value

        def names(key: str) -> tuple[str, ...]:
            value = raw.get(key) or []
            if not isinstance(value, list) or not all(isinstance(n, str) and n for n in value):
                raise ValueError(f"candidate {key}: expected a list of node names, got {value!r}")
            return tuple(value)

        expires_in = raw.get("expires_in")
        if expires_in is not None and (
            not isinstance(expires_in, int | float) or isinstance(expires_in, bool) or expires_in <= 0
        ):
            raise ValueError(f"candidate expires_in: expected seconds more than 0, got {expires_in!r}")
        elastic = raw.get("elastic", False)
        if not isinstance(elastic, bool):
            raise ValueError(f"candidate elastic: expected true or false, got {elastic!r}")
        reason = raw.get("reason") or ""
        if not isinstance(reason, str):
            raise ValueError(f"candidate reason: expected a string, got {reason!r}")
        return cls(
            cluster=str(text("cluster")),
            pool=str(text("pool")),
            nodes=names("nodes"),
            preferred_node=text("preferred_node", optional=True),
            elastic=elastic,
            reason=reason,
            reservation=text("reservation", optional=True),
            avoid_nodes=names("avoid_nodes"),
            expires_in=None if expires_in is None else float(expires_in),
        )


@dataclass(frozen=True)
class PodSettings:
    """The values of the KubeSpawner settings an attempt decides, named as KubeSpawner names them.

    Lists and dicts inside are never changed in place: ``traits`` hands out copies.
    """

    namespace: str = ""
    node_affinity_required: tuple[dict[str, Any], ...] = ()
    node_affinity_preferred: tuple[dict[str, Any], ...] = ()
    tolerations: tuple[dict[str, Any], ...] = ()
    extra_resource_limits: Mapping[str, Any] = field(default_factory=dict)
    node_selector: Mapping[str, Any] = field(default_factory=dict)
    volumes: tuple[dict[str, Any], ...] = ()
    volume_mounts: tuple[dict[str, Any], ...] = ()
    storage_pvc_ensure: bool = False
    storage_capacity: str | None = None
    storage_class: str | None = None
    services_enabled: bool = False
    extra_labels: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def from_traits(cls, values: Mapping[str, Any]) -> PodSettings:
        """Settings from trait values. A list setting given as a dict (KubeSpawner takes both) becomes
        its values sorted by key, the order KubeSpawner puts them in the pod."""
        v = copy.deepcopy(dict(values))
        return cls(
            namespace=v.get("namespace") or "",
            node_affinity_required=_items(v.get("node_affinity_required")),
            node_affinity_preferred=_items(v.get("node_affinity_preferred")),
            tolerations=_items(v.get("tolerations")),
            extra_resource_limits=dict(v.get("extra_resource_limits") or {}),
            node_selector=dict(v.get("node_selector") or {}),
            volumes=_items(v.get("volumes")),
            volume_mounts=_items(v.get("volume_mounts")),
            storage_pvc_ensure=bool(v.get("storage_pvc_ensure")),
            storage_capacity=v.get("storage_capacity"),
            storage_class=v.get("storage_class"),
            services_enabled=bool(v.get("services_enabled")),
            extra_labels=dict(v.get("extra_labels") or {}),
        )

    def traits(self) -> dict[str, Any]:
        """Trait name -> a fresh copy of its value (lists and dicts), ready to set on the spawner."""
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                value = list(value)
            elif isinstance(value, Mapping):
                value = dict(value)
            out[f.name] = copy.deepcopy(value)
        return out


# The traits an attempt sets; every attempt starts again from the spawn's values of these.
ATTEMPT_TRAITS: tuple[str, ...] = tuple(f.name for f in fields(PodSettings))


def _items(value: Any) -> tuple[dict[str, Any], ...]:
    if isinstance(value, Mapping):
        return tuple(value[key] for key in sorted(value))
    return tuple(value or ())


def container_mounts(*containers: Any) -> list[dict[str, Any]]:
    """The volume mounts of init and extra containers (each setting a list, or a dict by name)."""
    return [dict(m) for group in containers for c in _items(group) for m in c.get("volumeMounts") or []]


def spawn_base(
    current: Mapping[str, Any], configured: Mapping[str, Any], applied: Mapping[str, Any]
) -> dict[str, Any]:
    """The trait values each attempt of a spawn starts from.

    ``current``: the traits now, after JupyterHub's hooks (auth_state_hook, apply_user_options,
    pre_spawn_hook) ran on them; ``configured``: the operator's values; ``applied``: what the last
    attempt set (empty before the first). A value still equal to what an attempt set is the attempt's,
    not a hook's, so the configured value comes back in its place (jupyterhub#3095: profile overrides
    mutate the spawner in place, so nothing of an earlier attempt may leak into the next one).
    """
    base = {}
    for name, value in current.items():
        ours = name in applied and value == applied[name]
        base[name] = copy.deepcopy(configured[name] if ours else value)
    return base


# Labels that pick the nodes of a Karpenter NodePool. Karpenter launches nothing for a pending pod whose
# node affinity uses matchFields, and it refuses kubernetes.io/hostname in node affinity too, so a new
# node's pod in such a pool can name no node to keep off. There a spawn that loses its node to it
# tries again (HybridSpawner places each attempt afresh) instead.
_KARPENTER_LABELS = ("karpenter.sh/", "karpenter.k8s.aws/")


def _name(operator: str, node: str) -> dict[str, Any]:
    # Kubernetes takes exactly one value in a matchFields requirement
    return {"key": "metadata.name", "operator": operator, "values": [node]}


def required_terms(
    terms: Sequence[Mapping[str, Any]], nodes: Sequence[str], avoid: Sequence[str]
) -> tuple[dict[str, Any], ...]:
    """Required nodeSelectorTerms for a pod that must match one of ``terms`` (the spawn's own; none:
    any node), run on one of ``nodes`` (none: any) and on none of ``avoid``.

    Terms are ORed and the requirements of a term ANDed, and Kubernetes takes one value per matchFields
    requirement: so each of the spawn's terms is repeated once per node, with that node's ``In`` and
    every ``NotIn`` added to it. Appending a term of node names beside the spawn's terms would let
    the pod match either.
    """
    if not nodes and not avoid:
        return tuple(copy.deepcopy(dict(t)) for t in terms)
    keep_off = [_name("NotIn", n) for n in avoid]
    picks = [[_name("In", n)] for n in nodes] or [[]]
    out = []
    for term in terms or ({},):
        for pick in picks:
            t = copy.deepcopy(dict(term))
            t["matchFields"] = [*(t.get("matchFields") or ()), *pick, *keep_off]
            out.append(t)
    return tuple(out)


def build_attempt(
    base: PodSettings,
    cluster: ClusterConfig,
    candidate: Candidate,
    opts: GpuOptions,
    *,
    home_mount_path: str,
    pvc_name: str,
    other_mounts: Sequence[Mapping[str, Any]] = (),
    hub_instance: str = "",
) -> PodSettings:
    """The settings of an attempt on ``candidate``: the spawn's ``base`` plus the GPUs, the pool's
    selector and tolerations, the candidate's nodes, the cluster's namespace, label, home and access.

    ``pvc_name``: the user's claim name as KubeSpawner expanded it; ``other_mounts``: the volume
    mounts of init and extra containers, which keep their volumes when the home replaces the mount
    at ``home_mount_path``; ``hub_instance``: this hub's name for the ``hybridhub.io/hub`` label
    (empty: no such label).
    """
    pool = cluster.pool(candidate.pool)
    limits = dict(base.extra_resource_limits)
    if opts.gpus:
        limits[GPU] = str(opts.gpus)
    selector = {**base.node_selector, **pool.node_selector}
    if opts.gpu_product:
        selector[PRODUCT_LABEL] = opts.gpu_product
    karpenter = any(key.startswith(_KARPENTER_LABELS) for key in pool.node_selector)
    avoid = candidate.avoid_nodes if candidate.elastic and not karpenter else ()
    required = required_terms(base.node_affinity_required, candidate.nodes, avoid)
    preferred = base.node_affinity_preferred
    if candidate.preferred_node:
        by_name = {"matchFields": [_name("In", candidate.preferred_node)]}
        preferred = (*preferred, {"weight": 100, "preference": by_name})
    attempt = replace(
        base,
        namespace=cluster.namespace,
        node_affinity_required=required,
        node_affinity_preferred=preferred,
        tolerations=(*base.tolerations, *(dict(t) for t in pool.tolerations)),
        extra_resource_limits=limits,
        node_selector=selector,
        # a per-user Service is how the hub reaches a server in a cluster it cannot route pod IPs to
        services_enabled=base.services_enabled or cluster.pod_access == "service",
        # marks the pods and Services it makes with their cluster and their hub: the service's leftover
        # sweep looks only at pods of its own hub. Not the home claims, which outlive servers
        # (KubeSpawner labels them with storage_extra_labels)
        extra_labels={
            **base.extra_labels,
            CLUSTER_LABEL: cluster.name,
            **({HUB_LABEL: hub_instance} if hub_instance else {}),
        },
    )
    return _with_home(
        attempt, cluster, mount_path=home_mount_path, pvc_name=pvc_name, other_mounts=other_mounts
    )


def _with_home(
    settings: PodSettings,
    cluster: ClusterConfig,
    *,
    mount_path: str,
    pvc_name: str,
    other_mounts: Sequence[Mapping[str, Any]],
) -> PodSettings:
    """``settings`` with the cluster's home storage: its volume at the home path, and its claim if any."""
    home = cluster.home_storage
    if home.kind == "none":
        return settings  # the operator's own home, or none, as configured
    volumes, mounts = with_home(
        home,
        settings.volumes,
        settings.volume_mounts,
        claim_name=CLAIM_TEMPLATE,
        mount_path=mount_path,
        other_mounts=[dict(m) for m in other_mounts],
    )
    settings = replace(settings, volumes=tuple(volumes), volume_mounts=tuple(mounts))
    if home.kind == "pvc":
        return replace(
            settings, storage_pvc_ensure=True, storage_capacity=home.size, storage_class=home.storage_class
        )
    claims = {(v.get("persistentVolumeClaim") or {}).get("claimName") for v in volumes}
    if not claims & {CLAIM_TEMPLATE, pvc_name}:
        # the configured claim was the home this one replaces: nothing mounts it any more
        return replace(settings, storage_pvc_ensure=False)
    return settings


def placement_reason(cluster: ClusterConfig, opts: GpuOptions, attempt: int) -> str:
    """Why a started server is where it is, as the ``reason`` label of the placement counter: pinned
    (the user chose the cluster), retry (an earlier attempt failed fast), on-prem or burst."""
    if attempt:
        return "retry"
    if opts.cluster != "auto":
        return "pinned"
    return "on-prem" if cluster.role is Role.ONPREM else "burst"
