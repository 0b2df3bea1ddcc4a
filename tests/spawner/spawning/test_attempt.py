"""What one spawn attempt's pod settings are, for each kind of cluster, pool and candidate."""

from __future__ import annotations

import copy
from dataclasses import replace
from typing import Any

import pytest

from spawner.core.clusters import ClusterConfig, parse_clusters
from spawner.core.labels import CLUSTER_LABEL, GPU, HUB_LABEL, PRODUCT_LABEL
from spawner.spawning.attempt import (
    ATTEMPT_TRAITS,
    Candidate,
    PodSettings,
    build_attempt,
    container_mounts,
    placement_reason,
    required_terms,
    spawn_base,
)
from spawner.spawning.home import HOME_VOLUME
from spawner.spawning.options import GpuOptions

L40S = "NVIDIA-L40S"
HOME = "/home/jovyan"
GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}
EKS_TAINT = {"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}


def cluster(name: str, role: str = "onprem", **extra: Any) -> ClusterConfig:
    raw: dict[str, Any] = {
        "name": name,
        "role": role,
        "namespace": f"ns-{name}",
        "hub_connect_url": "http://hub:8081",
        "home_storage": {"kind": "none"},
        "pools": [{"name": "l40s", "node_selector": {"pool": "l40s"}, "tolerations": [GPU_TAINT]}],
    }
    (config,) = parse_clusters([{**raw, **extra}])
    return config


ONPREM = cluster("onprem")
ELASTIC = cluster(
    "eks",
    role="cloud",
    pools=[
        {
            "name": "gpu-l40s",
            "elastic": True,
            "max_nodes": 2,
            "gpus_per_node": 4,
            "gpu_product": L40S,
            "node_selector": {"eks.amazonaws.com/nodegroup": "gpu-l40s"},
            "tolerations": [EKS_TAINT],
        }
    ],
)
SERVICE = cluster("eks-lb", role="cloud", pod_access="service", service_type="LoadBalancer")
PVC_HOME = cluster("pvc", home_storage={"kind": "pvc", "size": "50Gi", "storage_class": "gp3"})
NFS_HOME = cluster("nfs", home_storage={"kind": "nfs", "nfs_server": "nas.lab", "nfs_path": "/export/home"})

# The spawn's values: the configuration (a home claim) plus what a pre_spawn_hook added (a scratch
# volume, a label, a toleration and a node-affinity term of its own).
CONFIGURED_HOME = {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
SCRATCH = {"name": "scratch", "emptyDir": {}}
HOOK_TERM = {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a"]}]}
HOOK_PREFERENCE = {"weight": 10, "preference": {"matchExpressions": [{"key": "ssd", "operator": "Exists"}]}}
HOOK_TOLERATION = {"key": "team", "operator": "Equal", "value": "ml", "effect": "NoSchedule"}
BASE = PodSettings(
    namespace="configured",
    node_affinity_required=(HOOK_TERM,),
    node_affinity_preferred=(HOOK_PREFERENCE,),
    tolerations=(HOOK_TOLERATION,),
    extra_resource_limits={"example.com/fpga": "1"},
    node_selector={"disk": "ssd"},
    volumes=(CONFIGURED_HOME, SCRATCH),
    volume_mounts=({"name": "home", "mountPath": HOME}, {"name": "scratch", "mountPath": "/scratch"}),
    storage_pvc_ensure=True,
    storage_capacity="1Gi",
    storage_class="standard",
    services_enabled=False,
    extra_labels={"team": "ml"},
)


KARPENTER = cluster(
    "eks-k",
    role="cloud",
    pools=[
        {
            "name": "gpu-l40s",
            "elastic": True,
            "max_nodes": 2,
            "gpus_per_node": 4,
            "gpu_product": L40S,
            "node_selector": {"karpenter.sh/nodepool": "gpu-l40s"},
            "tolerations": [EKS_TAINT],
        }
    ],
)


def name_is(node: str, operator: str = "In") -> dict[str, Any]:
    return {"key": "metadata.name", "operator": operator, "values": [node]}


def by_name(node: str) -> dict[str, Any]:
    return {"matchFields": [name_is(node)]}


def hook_and(*requirements: dict[str, Any]) -> dict[str, Any]:
    """The hook's term with node requirements added to it (ANDed)."""
    return {**HOOK_TERM, "matchFields": list(requirements)}


def plain(c: ClusterConfig, pool_selector: dict[str, str], pool_toleration: dict[str, str]) -> PodSettings:
    """What every attempt on ``c`` sets whatever the candidate: namespace, label, the pool's nodes."""
    return replace(
        BASE,
        namespace=c.namespace,
        extra_labels={"team": "ml", CLUSTER_LABEL: c.name},
        node_selector={"disk": "ssd", **pool_selector},
        tolerations=(HOOK_TOLERATION, pool_toleration),
    )


ON_L40S = plain(ONPREM, {"pool": "l40s"}, GPU_TAINT)
ON_EKS = plain(ELASTIC, {"eks.amazonaws.com/nodegroup": "gpu-l40s"}, EKS_TAINT)
ON_SERVICE = plain(SERVICE, {"pool": "l40s"}, GPU_TAINT)
ON_PVC = plain(PVC_HOME, {"pool": "l40s"}, GPU_TAINT)
ON_NFS = plain(NFS_HOME, {"pool": "l40s"}, GPU_TAINT)
HOME_MOUNT = {"name": HOME_VOLUME, "mountPath": HOME}
GP3_CLAIM = {"name": HOME_VOLUME, "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
NAS = {"name": HOME_VOLUME, "nfs": {"server": "nas.lab", "path": "/export/home/{username}"}}
SCRATCH_MOUNT = {"name": "scratch", "mountPath": "/scratch"}


@pytest.mark.parametrize(
    ("c", "candidate", "opts", "other_mounts", "expected"),
    [
        pytest.param(
            ONPREM,
            Candidate("onprem", "l40s", nodes=("l40s-0", "l40s-1")),
            GpuOptions(gpus=2),
            (),
            replace(
                ON_L40S,
                node_affinity_required=(hook_and(name_is("l40s-0")), hook_and(name_is("l40s-1"))),
                extra_resource_limits={"example.com/fpga": "1", GPU: "2"},
            ),
            id="fixed pool: required to the hook's term and one of the nodes that fit, the GPUs as a limit",
        ),
        pytest.param(
            ELASTIC,
            Candidate("eks", "gpu-l40s", elastic=True),
            GpuOptions(gpus=4),
            (),
            replace(ON_EKS, extra_resource_limits={"example.com/fpga": "1", GPU: "4"}),
            id="elastic pool: no node names, the pool's selector and taint",
        ),
        pytest.param(
            ONPREM,
            Candidate("onprem", "l40s", nodes=("l40s-1",)),
            GpuOptions(gpus=1, gpu_product=L40S),
            (),
            replace(
                ON_L40S,
                node_affinity_required=(hook_and(name_is("l40s-1")),),
                extra_resource_limits={"example.com/fpga": "1", GPU: "1"},
                node_selector={"disk": "ssd", "pool": "l40s", PRODUCT_LABEL: L40S},
            ),
            id="a product: its label in the node selector",
        ),
        pytest.param(
            ONPREM,
            Candidate("onprem", "l40s", nodes=("l40s-0", "l40s-1"), preferred_node="l40s-1"),
            GpuOptions(gpus=1),
            (),
            replace(
                ON_L40S,
                node_affinity_required=(hook_and(name_is("l40s-0")), hook_and(name_is("l40s-1"))),
                node_affinity_preferred=(HOOK_PREFERENCE, {"weight": 100, "preference": by_name("l40s-1")}),
                extra_resource_limits={"example.com/fpga": "1", GPU: "1"},
            ),
            id="best-fit node: preferred, beside the hook's preference",
        ),
        pytest.param(
            ELASTIC,
            Candidate("eks", "gpu-l40s", elastic=True, avoid_nodes=("ip-1", "ip-2")),
            GpuOptions(gpus=1),
            (),
            replace(
                ON_EKS,
                node_affinity_required=(hook_and(name_is("ip-1", "NotIn"), name_is("ip-2", "NotIn")),),
                extra_resource_limits={"example.com/fpga": "1", GPU: "1"},
            ),
            id="a new node: off the nodes whose GPUs are held for others",
        ),
        pytest.param(
            KARPENTER,
            Candidate("eks-k", "gpu-l40s", elastic=True, avoid_nodes=("ip-1",)),
            GpuOptions(gpus=1),
            (),
            replace(
                plain(KARPENTER, {"karpenter.sh/nodepool": "gpu-l40s"}, EKS_TAINT),
                extra_resource_limits={"example.com/fpga": "1", GPU: "1"},
            ),
            id="a new node of a Karpenter pool: no names (Karpenter would launch nothing for the pod)",
        ),
        pytest.param(
            ONPREM,
            Candidate("onprem", "l40s", nodes=("l40s-0",), avoid_nodes=("l40s-1",)),
            GpuOptions(gpus=1),
            (),
            replace(
                ON_L40S,
                node_affinity_required=(hook_and(name_is("l40s-0")),),
                extra_resource_limits={"example.com/fpga": "1", GPU: "1"},
            ),
            id="existing nodes: their names alone (nodes to keep off are for a new node)",
        ),
        pytest.param(
            ONPREM,
            Candidate("onprem", "l40s"),
            GpuOptions(gpus=0),
            (),
            ON_L40S,
            id="CPU only: no GPU limit, no node names",
        ),
        pytest.param(
            SERVICE,
            Candidate("eks-lb", "l40s"),
            GpuOptions(),
            (),
            replace(ON_SERVICE, services_enabled=True),
            id="per-user Service cluster: the Service is made",
        ),
        pytest.param(
            PVC_HOME,
            Candidate("pvc", "l40s"),
            GpuOptions(),
            (),
            replace(
                ON_PVC,
                volumes=(SCRATCH, GP3_CLAIM),
                volume_mounts=(SCRATCH_MOUNT, HOME_MOUNT),
                storage_capacity="50Gi",
                storage_class="gp3",
            ),
            id="PVC home: its claim at the home path, its size and class",
        ),
        pytest.param(
            NFS_HOME,
            Candidate("nfs", "l40s"),
            GpuOptions(),
            (),
            replace(
                ON_NFS,
                volumes=(SCRATCH, NAS),
                volume_mounts=(SCRATCH_MOUNT, HOME_MOUNT),
                storage_pvc_ensure=False,
            ),
            id="NFS home: the configured claim nothing mounts any more is not made",
        ),
        pytest.param(
            NFS_HOME,
            Candidate("nfs", "l40s"),
            GpuOptions(),
            ({"name": "home", "mountPath": "/seed"},),
            replace(
                ON_NFS,
                volumes=(CONFIGURED_HOME, SCRATCH, NAS),
                volume_mounts=(SCRATCH_MOUNT, HOME_MOUNT),
            ),
            id="NFS home: a claim an init container still mounts is still made",
        ),
    ],
)
def test_an_attempt_sets(
    c: ClusterConfig,
    candidate: Candidate,
    opts: GpuOptions,
    other_mounts: tuple[dict[str, Any], ...],
    expected: PodSettings,
) -> None:
    got = build_attempt(
        BASE, c, candidate, opts, home_mount_path=HOME, pvc_name="claim-ann", other_mounts=other_mounts
    )
    assert got == expected


def test_a_home_of_none_keeps_the_configured_home() -> None:
    got = build_attempt(
        BASE, ONPREM, Candidate("onprem", "l40s"), GpuOptions(), home_mount_path=HOME, pvc_name="x"
    )
    assert (got.volumes, got.volume_mounts) == (BASE.volumes, BASE.volume_mounts)
    assert (got.storage_pvc_ensure, got.storage_capacity, got.storage_class) == (True, "1Gi", "standard")


def test_an_nfs_home_keeps_a_claim_named_as_kubespawner_expanded_it() -> None:
    # the hook spelled the claim out ("claim-ann") and mounts it elsewhere: it is still made
    spelled = {"name": "data", "persistentVolumeClaim": {"claimName": "claim-ann"}}
    base = replace(
        BASE,
        volumes=(*BASE.volumes, spelled),
        volume_mounts=(*BASE.volume_mounts, {"name": "data", "mountPath": "/d"}),
    )
    got = build_attempt(
        base, NFS_HOME, Candidate("nfs", "l40s"), GpuOptions(), home_mount_path=HOME, pvc_name="claim-ann"
    )
    assert got.storage_pvc_ensure is True
    assert spelled in got.volumes and CONFIGURED_HOME not in got.volumes


@pytest.mark.parametrize("c", [ONPREM, ELASTIC, SERVICE, PVC_HOME, NFS_HOME], ids=lambda c: c.name)
def test_every_attempt_labels_its_objects_with_the_cluster(c: ClusterConfig) -> None:
    base = replace(BASE, extra_labels={"team": "ml", CLUSTER_LABEL: "elsewhere"})  # an earlier one's
    got = build_attempt(
        base, c, Candidate(c.name, c.pools[0].name), GpuOptions(), home_mount_path=HOME, pvc_name="x"
    )
    assert got.extra_labels == {"team": "ml", CLUSTER_LABEL: c.name}
    assert got.namespace == c.namespace


@pytest.mark.parametrize(
    ("configured", "hub_instance", "expected"),
    [
        ({}, "research-hub", {HUB_LABEL: "research-hub"}),
        ({HUB_LABEL: "other"}, "research-hub", {HUB_LABEL: "research-hub"}),  # ours wins over a hook's
        ({}, "", {}),  # no name: no label
        ({HUB_LABEL: "set-by-hand"}, "", {HUB_LABEL: "set-by-hand"}),
    ],
)
def test_every_attempt_labels_its_objects_with_the_hub(
    configured: dict[str, str], hub_instance: str, expected: dict[str, str]
) -> None:
    base = replace(BASE, extra_labels={"team": "ml", **configured})
    got = build_attempt(
        base,
        ONPREM,
        Candidate("onprem", "l40s"),
        GpuOptions(),
        home_mount_path=HOME,
        pvc_name="x",
        hub_instance=hub_instance,
    )
    assert got.extra_labels == {"team": "ml", CLUSTER_LABEL: "onprem", **expected}


def test_the_pools_selector_wins_over_a_configured_one_with_its_key() -> None:
    base = replace(BASE, node_selector={"pool": "cpu", "disk": "ssd"})
    got = build_attempt(
        base, ONPREM, Candidate("onprem", "l40s"), GpuOptions(), home_mount_path=HOME, pvc_name="x"
    )
    assert got.node_selector == {"pool": "l40s", "disk": "ssd"}


def test_a_configured_service_is_kept_on_a_pod_ip_cluster() -> None:
    base = replace(BASE, services_enabled=True)
    got = build_attempt(
        base, ONPREM, Candidate("onprem", "l40s"), GpuOptions(), home_mount_path=HOME, pvc_name="x"
    )
    assert got.services_enabled is True


def test_the_chosen_gpu_count_wins_over_a_profile_limit() -> None:
    base = replace(BASE, extra_resource_limits={GPU: "1"})
    got = build_attempt(
        base, ONPREM, Candidate("onprem", "l40s"), GpuOptions(gpus=3), home_mount_path=HOME, pvc_name="x"
    )
    assert got.extra_resource_limits == {GPU: "3"}


def test_an_unknown_pool_is_an_error() -> None:
    with pytest.raises(KeyError, match="no pool 'gpu-a100'"):
        build_attempt(
            BASE, ONPREM, Candidate("onprem", "gpu-a100"), GpuOptions(), home_mount_path=HOME, pvc_name="x"
        )


def test_the_base_is_left_as_it_was() -> None:
    before = replace(BASE)
    build_attempt(
        BASE,
        PVC_HOME,
        Candidate("pvc", "l40s", nodes=("n",), preferred_node="n"),
        GpuOptions(gpus=1, gpu_product=L40S),
        home_mount_path=HOME,
        pvc_name="x",
    )
    assert before == BASE and BASE.volumes[0] == CONFIGURED_HOME


# --------------------------------------------------------------------------- between attempts and spawns


CONFIGURED = {"volumes": [CONFIGURED_HOME], "extra_labels": {}, "storage_pvc_ensure": True}
LAST_ATTEMPT = {"volumes": [GP3_CLAIM], "extra_labels": {CLUSTER_LABEL: "eks"}, "storage_pvc_ensure": True}


@pytest.mark.parametrize(
    ("current", "applied", "expected"),
    [
        pytest.param(CONFIGURED, {}, CONFIGURED, id="first spawn, no hooks: the configuration"),
        pytest.param(
            {**CONFIGURED, "volumes": [CONFIGURED_HOME, SCRATCH]},
            {},
            {**CONFIGURED, "volumes": [CONFIGURED_HOME, SCRATCH]},
            id="first spawn: what a hook set is kept",
        ),
        pytest.param(
            {**CONFIGURED, "storage_pvc_ensure": None},
            {},
            {**CONFIGURED, "storage_pvc_ensure": None},
            id="first spawn: a hook's None is kept too",
        ),
        pytest.param(LAST_ATTEMPT, LAST_ATTEMPT, CONFIGURED, id="an earlier attempt's values give way"),
        pytest.param(
            {**LAST_ATTEMPT, "extra_labels": {"team": "ml"}},
            LAST_ATTEMPT,
            {**CONFIGURED, "extra_labels": {"team": "ml"}},
            id="a hook changed one setting after the attempt: that one is kept, the rest reset",
        ),
    ],
)
def test_each_spawn_starts_from_the_configuration_plus_hooks(
    current: dict[str, Any], applied: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert spawn_base(current, CONFIGURED, applied) == expected


def test_the_spawn_base_is_a_copy() -> None:
    base = spawn_base(CONFIGURED, CONFIGURED, {})
    base["volumes"].append(SCRATCH)
    assert CONFIGURED["volumes"] == [CONFIGURED_HOME]


def test_settings_from_traits_take_kubespawners_dict_form_in_key_order() -> None:
    settings = PodSettings.from_traits(
        {
            "namespace": "jupyterhub",
            "volumes": {"b-scratch": SCRATCH, "a-home": CONFIGURED_HOME},
            "tolerations": [GPU_TAINT],
            "extra_labels": None,
        }
    )
    assert settings.volumes == (CONFIGURED_HOME, SCRATCH)
    assert settings.tolerations == (GPU_TAINT,)
    assert settings.extra_labels == {} and settings.node_affinity_required == ()


def test_traits_are_fresh_lists_and_dicts_for_every_setting() -> None:
    traits = BASE.traits()
    assert set(traits) == set(ATTEMPT_TRAITS)
    assert traits["volumes"] == list(BASE.volumes) and isinstance(traits["volumes"], list)
    assert isinstance(traits["extra_labels"], dict)
    traits["volumes"][0]["name"] = "changed"
    traits["extra_labels"]["x"] = "y"
    assert BASE.volumes[0]["name"] == "home" and "x" not in BASE.extra_labels
    assert PodSettings.from_traits(BASE.traits()) == BASE


def test_container_mounts_of_lists_and_dicts() -> None:
    init = [{"name": "seed", "volumeMounts": [{"name": "home", "mountPath": "/seed"}]}]
    extra = {"b": {"name": "b", "volumeMounts": [{"name": "y", "mountPath": "/y"}]}, "a": {"name": "a"}}
    assert container_mounts(init, extra, None) == [
        {"name": "home", "mountPath": "/seed"},
        {"name": "y", "mountPath": "/y"},
    ]


@pytest.mark.parametrize(
    ("terms", "nodes", "avoid", "expected"),
    [
        ((), (), (), ()),
        ((HOOK_TERM,), (), (), (HOOK_TERM,)),
        ((), ("a",), (), (by_name("a"),)),
        ((), ("a", "b"), (), (by_name("a"), by_name("b"))),
        ((), (), ("x", "y"), ({"matchFields": [name_is("x", "NotIn"), name_is("y", "NotIn")]},)),
        ((HOOK_TERM,), ("a", "b"), (), (hook_and(name_is("a")), hook_and(name_is("b")))),
        (
            (HOOK_TERM, {"matchFields": [name_is("z", "NotIn")]}),
            ("a",),
            ("x",),
            (
                hook_and(name_is("a"), name_is("x", "NotIn")),
                {"matchFields": [name_is("z", "NotIn"), name_is("a"), name_is("x", "NotIn")]},
            ),
        ),
    ],
)
def test_required_terms(
    terms: tuple[dict[str, Any], ...],
    nodes: tuple[str, ...],
    avoid: tuple[str, ...],
    expected: tuple[dict[str, Any], ...],
) -> None:
    before = copy.deepcopy(terms)
    got = required_terms(terms, nodes, avoid)
    assert got == expected
    # Kubernetes refuses a pod with more than one value in a matchFields requirement
    assert all(len(r["values"]) == 1 for t in got for r in t.get("matchFields", ()))
    assert terms == before  # the spawn's own terms are copied, never changed
    assert not shared(terms, got)


def shared(a: Any, b: Any) -> bool:
    """Whether any list or dict inside ``a`` is also inside ``b`` (the same object)."""

    def containers(x: Any) -> list[Any]:
        if isinstance(x, dict):
            return [x, *(c for v in x.values() for c in containers(v))]
        if isinstance(x, list | tuple):
            return [*([x] if isinstance(x, list) else []), *(c for v in x for c in containers(v))]
        return []

    ours = {id(c) for c in containers(a)}
    return any(id(c) in ours for c in containers(b))


# --------------------------------------------------------------------------- the service's candidates


def test_a_candidate_from_the_service_answer() -> None:
    raw = {
        "cluster": "onprem",
        "pool": "l40s",
        "elastic": False,
        "nodes": ["l40s-0"],
        "preferred_node": "l40s-0",
        "reason": "l40s-0 on onprem has 4 free NVIDIA-L40S (best fit)",
        "reservation": "r-1",
    }
    assert Candidate.from_json(raw) == Candidate(
        "onprem", "l40s", ("l40s-0",), "l40s-0", False, raw["reason"], "r-1"
    )
    assert Candidate.from_json(
        {"cluster": "eks", "pool": "p", "elastic": True, "avoid_nodes": ["ip-1"], "expires_in": 180}
    ) == Candidate("eks", "p", elastic=True, avoid_nodes=("ip-1",), expires_in=180.0)
    assert Candidate("eks", "p", elastic=True).tried() == {"cluster": "eks", "pool": "p", "elastic": True}
    assert Candidate.from_json({"cluster": "eks", "pool": "p", "expires_in": 0.5}).expires_in == 0.5
    assert Candidate.from_json(
        {"cluster": "eks", "pool": "p", "elastic": True, "nodes": [], "reservation": None}
    ) == (Candidate("eks", "p", elastic=True))


@pytest.mark.parametrize(
    ("raw", "field"),
    [
        ([], "object"),
        ({"pool": "p"}, "cluster"),
        ({"cluster": "c", "pool": ""}, "pool"),
        ({"cluster": "c", "pool": "p", "nodes": "n1"}, "nodes"),
        ({"cluster": "c", "pool": "p", "nodes": [1]}, "nodes"),
        ({"cluster": "c", "pool": "p", "elastic": "yes"}, "elastic"),
        ({"cluster": "c", "pool": "p", "reason": 3}, "reason"),
        ({"cluster": "c", "pool": "p", "preferred_node": 3}, "preferred_node"),
        ({"cluster": "c", "pool": "p", "reservation": ""}, "reservation"),
        ({"cluster": "c", "pool": "p", "avoid_nodes": "n1"}, "avoid_nodes"),
        ({"cluster": "c", "pool": "p", "avoid_nodes": [""]}, "avoid_nodes"),
        ({"cluster": "c", "pool": "p", "expires_in": "180"}, "expires_in"),
        ({"cluster": "c", "pool": "p", "expires_in": True}, "expires_in"),
        ({"cluster": "c", "pool": "p", "expires_in": 0}, "expires_in"),
    ],
)
def test_a_malformed_candidate_names_its_field(raw: Any, field: str) -> None:
    with pytest.raises(ValueError, match=field):
        Candidate.from_json(raw)


@pytest.mark.parametrize(
    ("c", "opts", "attempt", "reason"),
    [
        (ONPREM, GpuOptions(), 0, "on-prem"),
        (ELASTIC, GpuOptions(), 0, "burst"),
        (ELASTIC, GpuOptions(cluster="eks"), 0, "pinned"),
        (ONPREM, GpuOptions(cluster="onprem"), 0, "pinned"),
        (ELASTIC, GpuOptions(), 1, "retry"),
        (ONPREM, GpuOptions(cluster="onprem"), 2, "retry"),
    ],
)
def test_placement_reason(c: ClusterConfig, opts: GpuOptions, attempt: int, reason: str) -> None:
    assert placement_reason(c, opts, attempt) == reason
