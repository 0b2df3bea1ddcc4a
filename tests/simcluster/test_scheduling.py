"""Tests for simcluster.scheduling: kube-scheduler's filters, scores and failure messages."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from simcluster.scheduling import (
    NO_NODES_AVAILABLE,
    REASON_NODE_AFFINITY,
    REASON_NODE_NAME,
    REASON_TOO_MANY_PODS,
    REASON_UNSCHEDULABLE,
    Decision,
    NodeInfo,
    _parse_quantity,
    filter_node,
    node_affinity_matches,
    pod_requests,
    schedule,
    score_node,
    tolerates,
)

GPU = "nvidia.com/gpu"
D = Decimal


def container(
    requests: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
    **extra: Any,
) -> dict[str, Any]:
    resources: dict[str, Any] = {}
    if requests is not None:
        resources["requests"] = requests
    if limits is not None:
        resources["limits"] = limits
    return {"name": "c", "image": "busybox", "resources": resources, **extra}


def make_pod(
    requests: dict[str, Any] | None = None,
    limits: dict[str, Any] | None = None,
    name: str = "jupyter-alice",
    **spec: Any,
) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "jhub"},
        "spec": {"containers": [container(requests, limits)], **spec},
    }


def gpu_pod(gpus: int, **spec: Any) -> dict[str, Any]:
    """A notebook pod as a spawner writes it: cpu/memory requests, the GPU only as a limit."""
    return make_pod({"cpu": "1", "memory": "4Gi"}, {GPU: str(gpus)}, **spec)


def make_node(
    name: str = "node-a",
    cpu: str = "16",
    memory: str = "64Gi",
    gpus: int | None = None,
    pods: str = "110",
    labels: dict[str, str] | None = None,
    taints: list[dict[str, Any]] | None = None,
    unschedulable: bool = False,
    ready: bool = True,
    used: dict[str, str] | None = None,
    running: int = 0,
) -> NodeInfo:
    """A NodeInfo from Kubernetes JSON: one bound pod requests ``used``; ``running`` request 0."""
    allocatable = {"cpu": cpu, "memory": memory, "pods": pods}
    if gpus is not None:
        allocatable[GPU] = str(gpus)
    node: dict[str, Any] = {
        "metadata": {"name": name, "labels": labels or {}},
        "spec": {"taints": taints or [], "unschedulable": unschedulable},
        "status": {
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
        },
    }
    bound = [make_pod(dict(used))] if used else []
    bound += [make_pod() for _ in range(running)]
    return NodeInfo.from_node(node, bound)


# --- quantities ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("100m", D("0.1")),
        ("2", D(2)),
        (2, D(2)),
        (0.5, D("0.5")),
        ("1.5", D("1.5")),
        ("16Gi", D(16 * 2**30)),
        ("512Mi", D(512 * 2**20)),
        ("1k", D(1000)),
        ("1M", D(10**6)),
        ("1e3", D(1000)),
        ("1E", D(10**18)),
        ("250u", D("0.00025")),
        (".5", D("0.5")),
    ],
)
def test_parse_quantity(value: str | int | float, expected: Decimal) -> None:
    assert _parse_quantity(value) == expected


@pytest.mark.parametrize("value", ["", "abc", "1.2.3", "Gi", "1 Gi", "1gi", True])
def test_parse_quantity_rejects(value: Any) -> None:
    with pytest.raises(ValueError):
        _parse_quantity(value)


# --- pod_requests --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param(
            {"containers": [container({"cpu": "500m"}, {"cpu": "2", GPU: "1"})]},
            {"cpu": D("0.5"), GPU: D(1), "pods": D(1)},
            id="limits-only-gpu-defaults-request",
        ),
        pytest.param(
            {"containers": [container(limits={"cpu": "2", "memory": "1Gi"})]},
            {"cpu": D(2), "memory": D(2**30), "pods": D(1)},
            id="limits-only-everything",
        ),
        pytest.param(
            {
                "containers": [
                    container({"cpu": "1", "memory": "1Gi"}),
                    container({"cpu": "500m", "memory": "512Mi"}),
                ]
            },
            {"cpu": D("1.5"), "memory": D(1536 * 2**20), "pods": D(1)},
            id="containers-sum",
        ),
        pytest.param(
            {
                "initContainers": [container({"cpu": "4", "memory": "1Gi"})],
                "containers": [container({"cpu": "1", "memory": "2Gi"})],
            },
            {"cpu": D(4), "memory": D(2 * 2**30), "pods": D(1)},
            id="init-container-max-per-resource",
        ),
        pytest.param(
            {
                "initContainers": [container({"cpu": "1"}), container({"cpu": "3"})],
                "containers": [container({"cpu": "1"}), container({"cpu": "1"})],
            },
            {"cpu": D(3), "pods": D(1)},
            id="largest-init-container-not-their-sum",
        ),
        pytest.param(
            {
                "initContainers": [container({"cpu": "1"})],
                "containers": [container({"cpu": "2"})],
                "overhead": {"cpu": "250m", "memory": "120Mi"},
            },
            {"cpu": D("2.25"), "memory": D(120 * 2**20), "pods": D(1)},
            id="overhead-added",
        ),
        pytest.param(
            {
                "initContainers": [
                    container({"cpu": "1"}, restartPolicy="Always"),
                    container({"cpu": "2"}),
                ],
                "containers": [container({"cpu": "1"})],
            },
            {"cpu": D(3), "pods": D(1)},
            id="sidecar-adds-to-containers-and-later-inits",
        ),
        pytest.param(
            {"containers": [{"name": "c", "image": "busybox"}]},
            {"pods": D(1)},
            id="best-effort",
        ),
    ],
)
def test_pod_requests(spec: dict[str, Any], expected: dict[str, Decimal]) -> None:
    assert pod_requests({"spec": spec}) == expected


# --- NodeInfo.from_node --------------------------------------------------------------------------


def test_from_node_sums_non_terminated_pods() -> None:
    node = {
        "metadata": {"name": "gpu-1", "labels": {"gpu": "a100"}},
        "spec": {"taints": [{"key": GPU, "value": "present", "effect": "NoSchedule"}]},
        "status": {
            "capacity": {"cpu": "32", "memory": "128Gi", "pods": "110", GPU: "8"},
            "conditions": [
                {"type": "MemoryPressure", "status": "False"},
                {"type": "Ready", "status": "True"},
            ],
        },
    }
    running = gpu_pod(2)
    pending_on_node = gpu_pod(1)
    done = {**gpu_pod(4), "status": {"phase": "Succeeded"}}
    failed = {**gpu_pod(4), "status": {"phase": "Failed"}}
    running["status"] = {"phase": "Running"}
    info = NodeInfo.from_node(node, [running, pending_on_node, done, failed])
    assert info.name == "gpu-1"
    assert info.labels == {"gpu": "a100"}
    assert info.taints == ({"key": GPU, "value": "present", "effect": "NoSchedule"},)
    assert info.ready is True
    assert info.unschedulable is False
    assert info.allocatable == {"cpu": D(32), "memory": D(128 * 2**30), "pods": D(110), GPU: D(8)}
    assert info.requested == {"cpu": D(2), "memory": D(8 * 2**30), GPU: D(3), "pods": D(2)}


@pytest.mark.parametrize(
    ("conditions", "ready"),
    [
        ([{"type": "Ready", "status": "True"}], True),
        ([{"type": "Ready", "status": "False"}], False),
        ([{"type": "Ready", "status": "Unknown"}], False),
        ([], False),
    ],
)
def test_from_node_ready(conditions: list[dict[str, str]], ready: bool) -> None:
    node = {"metadata": {"name": "n"}, "status": {"conditions": conditions}}
    assert NodeInfo.from_node(node, []).ready is ready


# --- tolerations ---------------------------------------------------------------------------------

TAINT: dict[str, Any] = {"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}


@pytest.mark.parametrize(
    ("toleration", "taint", "expected"),
    [
        pytest.param({"operator": "Exists"}, TAINT, True, id="empty-key-exists-tolerates-all"),
        pytest.param(
            {"operator": "Exists"},
            {"key": "x", "effect": "NoExecute"},
            True,
            id="empty-key-exists-any-effect",
        ),
        pytest.param(
            {"operator": "Exists", "effect": "NoExecute"},
            TAINT,
            False,
            id="empty-key-exists-other-effect",
        ),
        pytest.param(
            {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoSchedule"},
            TAINT,
            True,
            id="equal",
        ),
        pytest.param({"key": "dedicated", "value": "gpu"}, TAINT, True, id="operator-defaults-equal"),
        pytest.param({"key": "dedicated", "value": "cpu"}, TAINT, False, id="equal-other-value"),
        pytest.param({"key": "dedicated", "operator": "Exists"}, TAINT, True, id="exists-any-value"),
        pytest.param({"key": "other", "operator": "Exists"}, TAINT, False, id="other-key"),
        pytest.param(
            {"key": "dedicated", "operator": "Equal", "value": "gpu", "effect": "NoExecute"},
            TAINT,
            False,
            id="other-effect",
        ),
        pytest.param(
            {"key": "node.kubernetes.io/not-ready", "operator": "Equal"},
            {"key": "node.kubernetes.io/not-ready", "effect": "NoSchedule"},
            True,
            id="equal-missing-values",
        ),
        pytest.param({"key": "dedicated", "operator": "Gibberish"}, TAINT, False, id="unknown-operator"),
    ],
)
def test_tolerates(toleration: dict[str, Any], taint: dict[str, Any], expected: bool) -> None:
    assert tolerates([toleration], taint) is expected


def test_tolerates_any_of_several() -> None:
    assert not tolerates([], TAINT)
    assert tolerates([{"key": "a", "operator": "Exists"}, {"key": "dedicated", "value": "gpu"}], TAINT)


# --- node affinity -------------------------------------------------------------------------------

LABELS: dict[str, str] = {"gpu": "a100", "zone": "onprem", "gpu-count": "8"}


def required(*terms: dict[str, Any]) -> dict[str, Any]:
    return {
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": list(terms)}
            }
        }
    }


def expr(key: str, operator: str, *values: str) -> dict[str, Any]:
    requirement: dict[str, Any] = {"key": key, "operator": operator}
    if values:
        requirement["values"] = list(values)
    return {"matchExpressions": [requirement]}


@pytest.mark.parametrize(
    ("spec", "expected"),
    [
        pytest.param({}, True, id="no-constraints"),
        pytest.param({"nodeSelector": {"gpu": "a100"}}, True, id="selector-match"),
        pytest.param({"nodeSelector": {"gpu": "a100", "zone": "eks"}}, False, id="selector-and"),
        pytest.param({"nodeSelector": {"absent": ""}}, False, id="selector-missing-label"),
        pytest.param(required(expr("gpu", "In", "h100", "a100")), True, id="in"),
        pytest.param(required(expr("gpu", "In", "h100")), False, id="in-miss"),
        pytest.param(required(expr("gpu", "NotIn", "h100")), True, id="notin"),
        pytest.param(required(expr("gpu", "NotIn", "a100")), False, id="notin-miss"),
        pytest.param(required(expr("absent", "NotIn", "x")), True, id="notin-absent-label"),
        pytest.param(required(expr("gpu", "Exists")), True, id="exists"),
        pytest.param(required(expr("absent", "Exists")), False, id="exists-miss"),
        pytest.param(required(expr("absent", "DoesNotExist")), True, id="doesnotexist"),
        pytest.param(required(expr("gpu", "DoesNotExist")), False, id="doesnotexist-miss"),
        pytest.param(required(expr("gpu-count", "Gt", "4")), True, id="gt"),
        pytest.param(required(expr("gpu-count", "Gt", "8")), False, id="gt-equal"),
        pytest.param(required(expr("gpu-count", "Lt", "9")), True, id="lt"),
        pytest.param(required(expr("gpu", "Gt", "1")), False, id="gt-non-integer-label"),
        pytest.param(required(expr("absent", "Lt", "1")), False, id="lt-absent-label"),
        pytest.param(required(expr("gpu", "In")), False, id="in-without-values"),
        pytest.param(required(expr("gpu", "In", "h100"), expr("zone", "In", "onprem")), True, id="terms-or"),
        pytest.param(
            required(
                {
                    "matchExpressions": [
                        {"key": "gpu", "operator": "In", "values": ["a100"]},
                        {"key": "zone", "operator": "In", "values": ["eks"]},
                    ]
                }
            ),
            False,
            id="expressions-and",
        ),
        pytest.param(
            required({"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["gpu-1"]}]}),
            True,
            id="matchfields-in",
        ),
        pytest.param(
            required({"matchFields": [{"key": "metadata.name", "operator": "NotIn", "values": ["gpu-1"]}]}),
            False,
            id="matchfields-notin",
        ),
        pytest.param(
            required(
                {
                    "matchExpressions": [{"key": "gpu", "operator": "Exists"}],
                    "matchFields": [{"key": "metadata.name", "operator": "In", "values": ["x"]}],
                }
            ),
            False,
            id="expressions-and-fields",
        ),
        pytest.param(required(), False, id="no-terms"),
        pytest.param(required({}), False, id="empty-term-matches-nothing"),
        pytest.param(
            {"nodeSelector": {"gpu": "h100"}, **required(expr("gpu", "Exists"))},
            False,
            id="selector-and-affinity",
        ),
    ],
)
def test_node_affinity_matches(spec: dict[str, Any], expected: bool) -> None:
    assert node_affinity_matches({"spec": spec}, LABELS, "gpu-1") is expected


# --- filter_node: one plugin at a time -----------------------------------------------------------


@pytest.mark.parametrize(
    ("pod", "node", "reasons"),
    [
        pytest.param(make_pod(), make_node(), [], id="fits"),
        pytest.param(make_pod(), make_node(unschedulable=True), [REASON_UNSCHEDULABLE], id="unschedulable"),
        pytest.param(
            make_pod(
                tolerations=[
                    {
                        "key": "node.kubernetes.io/unschedulable",
                        "operator": "Exists",
                        "effect": "NoSchedule",
                    }
                ]
            ),
            make_node(unschedulable=True),
            [],
            id="unschedulable-tolerated",
        ),
        pytest.param(make_pod(nodeName="node-b"), make_node("node-a"), [REASON_NODE_NAME], id="node-name"),
        pytest.param(make_pod(nodeName="node-a"), make_node("node-a"), [], id="node-name-match"),
        pytest.param(
            make_pod(),
            make_node(taints=[TAINT]),
            ["node(s) had untolerated taint {dedicated: gpu}"],
            id="taint",
        ),
        pytest.param(
            make_pod(),
            make_node(taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}]),
            ["node(s) had untolerated taint {node-role.kubernetes.io/control-plane: }"],
            id="taint-without-value",
        ),
        pytest.param(
            make_pod(),
            make_node(taints=[{"key": "evict", "value": "now", "effect": "NoExecute"}]),
            ["node(s) had untolerated taint {evict: now}"],
            id="taint-noexecute",
        ),
        pytest.param(
            make_pod(),
            make_node(taints=[{"key": "soft", "value": "x", "effect": "PreferNoSchedule"}]),
            [],
            id="taint-prefer-no-schedule-ignored",
        ),
        pytest.param(
            make_pod(tolerations=[{"key": "dedicated", "operator": "Exists"}]),
            make_node(taints=[TAINT]),
            [],
            id="taint-tolerated",
        ),
        pytest.param(
            make_pod(tolerations=[{"key": "dedicated", "operator": "Exists"}]),
            make_node(taints=[TAINT, {"key": "b", "value": "2", "effect": "NoSchedule"}]),
            ["node(s) had untolerated taint {b: 2}"],
            id="first-untolerated-taint",
        ),
        pytest.param(
            make_pod(),
            make_node(ready=False),
            ["node(s) had untolerated taint {node.kubernetes.io/not-ready: }"],
            id="not-ready",
        ),
        pytest.param(
            make_pod(),
            make_node(
                ready=False,
                taints=[{"key": "node.kubernetes.io/unreachable", "effect": "NoSchedule"}],
            ),
            ["node(s) had untolerated taint {node.kubernetes.io/unreachable: }"],
            id="not-ready-with-unreachable-taint",
        ),
        pytest.param(
            make_pod(tolerations=[{"operator": "Exists"}]),
            make_node(ready=False, taints=[TAINT]),
            [],
            id="tolerate-everything",
        ),
        pytest.param(
            make_pod(nodeSelector={"gpu": "a100"}),
            make_node(labels={"gpu": "t4"}),
            [REASON_NODE_AFFINITY],
            id="node-selector",
        ),
        pytest.param(
            make_pod(**required(expr("gpu", "In", "a100"))),
            make_node(labels={}),
            [REASON_NODE_AFFINITY],
            id="required-affinity",
        ),
        pytest.param(make_pod({"cpu": "17"}), make_node(cpu="16"), ["Insufficient cpu"], id="cpu"),
        pytest.param(
            make_pod({"cpu": "2"}),
            make_node(cpu="16", used={"cpu": "14500m"}),
            ["Insufficient cpu"],
            id="cpu-used",
        ),
        pytest.param(
            make_pod({"cpu": "1500m"}),
            make_node(cpu="16", used={"cpu": "14500m"}),
            [],
            id="cpu-exact",
        ),
        pytest.param(
            make_pod({"memory": "65Gi"}),
            make_node(memory="64Gi"),
            ["Insufficient memory"],
            id="mem",
        ),
        pytest.param(
            make_pod({"ephemeral-storage": "1Gi"}),
            make_node(),
            ["Insufficient ephemeral-storage"],
            id="ephemeral-storage-absent",
        ),
        pytest.param(gpu_pod(1), make_node(gpus=None), [f"Insufficient {GPU}"], id="gpu-absent"),
        pytest.param(gpu_pod(1), make_node(gpus=0), [f"Insufficient {GPU}"], id="gpu-zero"),
        pytest.param(gpu_pod(2), make_node(gpus=4, used={GPU: "3"}), [f"Insufficient {GPU}"], id="gpu-used"),
        pytest.param(gpu_pod(4), make_node(gpus=4), [], id="gpu-fits"),
        pytest.param(make_pod({"cpu": "1"}, {GPU: "0"}), make_node(gpus=None), [], id="zero-gpu-ignored"),
        pytest.param(
            make_pod({"example.com/foo": "1"}),
            make_node(),
            ["Insufficient example.com/foo"],
            id="any-extended-resource",
        ),
        pytest.param(make_pod({"foo": "1"}), make_node(), [], id="unprefixed-resource-ignored"),
        pytest.param(
            make_pod({"cpu": "1"}),
            make_node(pods="3", running=3),
            [REASON_TOO_MANY_PODS],
            id="pods",
        ),
        pytest.param(make_pod(), make_node(pods="3", running=2), [], id="pods-last-slot"),
        pytest.param(
            make_pod({"cpu": "32", "memory": "128Gi"}, {GPU: "9"}),
            make_node(cpu="16", memory="64Gi", gpus=8, pods="1", running=1),
            [
                REASON_TOO_MANY_PODS,
                "Insufficient cpu",
                "Insufficient memory",
                f"Insufficient {GPU}",
            ],
            id="all-insufficient-resources-reported",
        ),
        pytest.param(
            gpu_pod(9, nodeSelector={"gpu": "a100"}),
            make_node(gpus=8, unschedulable=True, taints=[TAINT]),
            [REASON_UNSCHEDULABLE],
            id="first-plugin-wins-unschedulable",
        ),
        pytest.param(
            gpu_pod(9, nodeSelector={"gpu": "a100"}),
            make_node(gpus=8, taints=[TAINT]),
            ["node(s) had untolerated taint {dedicated: gpu}"],
            id="taint-before-affinity",
        ),
        pytest.param(
            gpu_pod(9, nodeSelector={"gpu": "a100"}),
            make_node(gpus=8),
            [REASON_NODE_AFFINITY],
            id="affinity-before-resources",
        ),
    ],
)
def test_filter_node(pod: dict[str, Any], node: NodeInfo, reasons: list[str]) -> None:
    assert filter_node(pod, node) == reasons


# --- score_node ----------------------------------------------------------------------------------

PREFER_A100: dict[str, Any] = {
    "affinity": {
        "nodeAffinity": {
            "preferredDuringSchedulingIgnoredDuringExecution": [
                {"weight": 3, "preference": expr("gpu", "In", "a100")},
                {"weight": 1, "preference": expr("zone", "In", "onprem")},
                {"weight": 50, "preference": {}},
            ]
        }
    }
}


@pytest.mark.parametrize(
    ("pod", "node", "score"),
    [
        pytest.param(
            make_pod({"cpu": "1", "memory": "4Gi"}),
            make_node(cpu="4", memory="16Gi", used={"cpu": "1", "memory": "4Gi"}),
            50,
            id="least-allocated-half",
        ),
        pytest.param(make_pod(), make_node(cpu="4", memory="16Gi"), 100, id="empty-node"),
        pytest.param(
            make_pod({"cpu": "1", "memory": "16Gi"}),
            make_node(cpu="4", memory="16Gi"),
            37,
            id="integer-arithmetic",  # cpu 75, memory 0 -> 75 // 2
        ),
        pytest.param(make_pod({"cpu": "8"}), make_node(cpu="4", memory="16Gi"), 50, id="over-capacity-zero"),
        pytest.param(
            make_pod(**PREFER_A100),
            make_node(cpu="4", memory="16Gi", labels={"gpu": "a100", "zone": "onprem"}),
            400 + 100,
            id="preferred-weights-summed",
        ),
        pytest.param(
            make_pod(**PREFER_A100),
            make_node(cpu="4", memory="16Gi", labels={"zone": "onprem"}),
            100 + 100,
            id="preferred-partial",
        ),
        pytest.param(make_pod(), make_node(cpu="0", memory="0"), 0, id="no-allocatable"),
    ],
)
def test_score_node(pod: dict[str, Any], node: NodeInfo, score: int) -> None:
    assert score_node(pod, node) == score


# --- schedule ------------------------------------------------------------------------------------


def gpu_cluster() -> list[NodeInfo]:
    """4 GPU nodes with 8, 8, 4, 4 GPUs, each partly used."""
    return [
        make_node("gpu-a", gpus=8, used={GPU: "2", "cpu": "4", "memory": "16Gi"}),
        make_node("gpu-b", gpus=8, used={GPU: "2", "cpu": "2", "memory": "8Gi"}),
        make_node("gpu-c", gpus=4, used={GPU: "1"}),
        make_node("gpu-d", gpus=4, used={GPU: "3"}),
    ]


def test_schedule_gpu_does_not_fit() -> None:
    decision = schedule(gpu_pod(8), gpu_cluster())
    assert decision == Decision(
        node=None,
        message=(
            "0/4 nodes are available: 4 Insufficient nvidia.com/gpu. preemption: 0/4 nodes are"
            " available: 4 No preemption victims found for incoming pod."
        ),
        unschedulable_reasons={f"Insufficient {GPU}": 4},
        scores={},
    )


@pytest.mark.parametrize(
    ("gpus", "node"),
    [
        pytest.param(6, "gpu-b", id="only-8-gpu-nodes-least-allocated"),
        pytest.param(3, "gpu-c", id="emptiest-node-with-room"),
        pytest.param(1, "gpu-c", id="tie-with-gpu-d-broken-by-name"),
    ],
)
def test_schedule_gpu_fits(gpus: int, node: str) -> None:
    decision = schedule(gpu_pod(gpus), gpu_cluster())
    assert decision.node == node
    assert decision.message == f"Successfully assigned jhub/jupyter-alice to {node}"
    assert decision.unschedulable_reasons == {}


def test_schedule_scores_only_feasible_nodes() -> None:
    decision = schedule(gpu_pod(4), gpu_cluster())
    assert set(decision.scores) == {"gpu-a", "gpu-b"}
    assert decision.scores["gpu-b"] > decision.scores["gpu-a"]


@pytest.mark.parametrize(
    ("pod", "nodes", "message"),
    [
        pytest.param(
            gpu_pod(2, nodeSelector={"pool": "gpu"}),
            [
                make_node(
                    "cp",
                    taints=[{"key": "node-role.kubernetes.io/control-plane", "effect": "NoSchedule"}],
                ),
                make_node("apps", labels={"pool": "apps"}),
                make_node("gpu", gpus=1, labels={"pool": "gpu"}),
            ],
            "0/3 nodes are available: 1 Insufficient nvidia.com/gpu, 1 node(s) didn't match Pod's"
            " node affinity/selector, 1 node(s) had untolerated taint"
            " {node-role.kubernetes.io/control-plane: }. preemption: 0/3 nodes are available:"
            " 1 No preemption victims found for incoming pod, 2 Preemption is not helpful for"
            " scheduling.",
            id="mixed-plugins",
        ),
        pytest.param(
            make_pod({"cpu": "20", "memory": "100Gi"}),
            [make_node("a"), make_node("b"), make_node("c", unschedulable=True)],
            "0/3 nodes are available: 1 node(s) were unschedulable, 2 Insufficient cpu,"
            " 2 Insufficient memory. preemption: 0/3 nodes are available: 1 Preemption is not"
            " helpful for scheduling, 2 No preemption victims found for incoming pod.",
            id="several-reasons-per-node",
        ),
        pytest.param(
            make_pod({"cpu": "20"}),
            [make_node(f"n{i:02}") for i in range(10)]
            + [make_node("t1", taints=[TAINT]), make_node("t2", taints=[TAINT])],
            "0/12 nodes are available: 10 Insufficient cpu, 2 node(s) had untolerated taint"
            " {dedicated: gpu}. preemption: 0/12 nodes are available: 10 No preemption victims"
            " found for incoming pod, 2 Preemption is not helpful for scheduling.",
            id="sorted-as-strings",
        ),
        pytest.param(
            make_pod(),
            [make_node("a", ready=False), make_node("b", ready=False)],
            "0/2 nodes are available: 2 node(s) had untolerated taint"
            " {node.kubernetes.io/not-ready: }. preemption: 0/2 nodes are available: 2 Preemption"
            " is not helpful for scheduling.",
            id="all-not-ready",
        ),
        pytest.param(
            make_pod({"cpu": "20"}, preemptionPolicy="Never"),
            [make_node("a")],
            "0/1 nodes are available: 1 Insufficient cpu. preemption: not eligible due to"
            " preemptionPolicy=Never.",
            id="preemption-policy-never",
        ),
        pytest.param(make_pod(), [], NO_NODES_AVAILABLE, id="no-nodes"),
    ],
)
def test_schedule_failure_message(pod: dict[str, Any], nodes: list[NodeInfo], message: str) -> None:
    decision = schedule(pod, nodes)
    assert decision.node is None
    assert decision.message == message
    assert decision.scores == {}


def test_schedule_histogram() -> None:
    nodes = [make_node("a"), make_node("b", unschedulable=True), make_node("c", cpu="1")]
    decision = schedule(make_pod({"cpu": "20", "memory": "100Gi"}), nodes)
    assert decision.unschedulable_reasons == {
        "Insufficient cpu": 2,
        "Insufficient memory": 2,
        REASON_UNSCHEDULABLE: 1,
    }


def test_schedule_preferred_affinity_beats_free_capacity() -> None:
    nodes = [
        make_node("empty", labels={"gpu": "t4"}),
        make_node("busy", labels={"gpu": "a100"}, used={"cpu": "15", "memory": "60Gi"}),
    ]
    decision = schedule(make_pod({"cpu": "500m"}, **PREFER_A100), nodes)
    assert decision.node == "busy"
    assert decision.scores["busy"] > decision.scores["empty"]


def test_schedule_least_allocated_without_preference() -> None:
    nodes = [
        make_node("busy", used={"cpu": "8", "memory": "32Gi"}),
        make_node("empty"),
    ]
    assert schedule(make_pod({"cpu": "1"}), nodes).node == "empty"


def test_schedule_tie_broken_by_name() -> None:
    nodes = [make_node("node-c"), make_node("node-a"), make_node("node-b")]
    decision = schedule(make_pod({"cpu": "1"}), nodes)
    assert decision.node == "node-a"
    assert len(set(decision.scores.values())) == 1
    assert decision.message == "Successfully assigned jhub/jupyter-alice to node-a"


def test_schedule_skips_infeasible_higher_scoring_node() -> None:
    nodes = [
        make_node("a100", labels={"gpu": "a100"}, taints=[TAINT]),
        make_node("plain"),
    ]
    assert schedule(make_pod(**PREFER_A100), nodes).node == "plain"
