"""Tests for simcluster.tables: kube-apiserver's Table printers for kubectl get."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from simcluster.tables import age, columns, human_duration, pod_status, row_cells, to_table

NOW = datetime(2024, 6, 1, 12, 0, 0, tzinfo=UTC)


def ts(seconds_ago: float) -> str:
    """An RFC 3339 timestamp ``seconds_ago`` before NOW."""
    return (NOW - timedelta(seconds=seconds_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --------------------------------------------------------------------------------------------
# human_duration / age

MIN = 60
HOUR = 3600
DAY = 24 * HOUR
YEAR = 365 * DAY


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (-3, "<invalid>"),
        (-2, "<invalid>"),
        (-1.5, "0s"),  # within the 2s skew tolerance
        (-1, "0s"),
        (0, "0s"),
        (0.9, "0s"),
        (59, "59s"),
        (119, "119s"),
        (2 * MIN, "2m"),
        (2 * MIN + 5, "2m5s"),
        (9 * MIN + 59, "9m59s"),
        (10 * MIN, "10m"),
        (10 * MIN + 59, "10m"),
        (3 * HOUR - 1, "179m"),
        (3 * HOUR, "3h"),
        (3 * HOUR + 5 * MIN, "3h5m"),
        (7 * HOUR + 59 * MIN + 59, "7h59m"),
        (8 * HOUR + 30 * MIN, "8h"),
        (47 * HOUR + 59 * MIN, "47h"),
        (2 * DAY, "2d"),
        (2 * DAY + 5 * HOUR, "2d5h"),
        (7 * DAY + 23 * HOUR, "7d23h"),
        (8 * DAY + 5 * HOUR, "8d"),
        (729 * DAY, "729d"),
        (2 * YEAR, "2y"),
        (2 * YEAR + 3 * DAY, "2y3d"),
        (8 * YEAR + 3 * DAY, "8y"),
        (12 * YEAR, "12y"),
    ],
)
def test_human_duration(seconds: float, expected: str) -> None:
    assert human_duration(seconds) == expected


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_human_duration_rejects_non_finite(bad: float) -> None:
    with pytest.raises(ValueError):
        human_duration(bad)


@pytest.mark.parametrize(
    ("timestamp", "expected"),
    [
        (None, "<unknown>"),
        ("", "<unknown>"),
        ("0001-01-01T00:00:00Z", "<unknown>"),  # Go's zero time
        (ts(5 * MIN), "5m"),
        ("2024-06-01T11:59:30.123456Z", "29s"),  # MicroTime
        ("2024-06-01T13:00:00+02:00", "60m"),  # <3h stays in minutes
        ("2024-06-01T12:00:10Z", "<invalid>"),  # in the future
    ],
)
def test_age(timestamp: str | None, expected: str) -> None:
    assert age(timestamp, NOW) == expected


@pytest.mark.parametrize(
    ("timestamp", "now"),
    [
        ("yesterday", NOW),
        (ts(1), datetime(2024, 6, 1)),  # naive now
    ],
)
def test_age_rejects(timestamp: str, now: datetime) -> None:
    with pytest.raises(ValueError):
        age(timestamp, now)


# --------------------------------------------------------------------------------------------
# pod STATUS


def running(ready: bool = True, restarts: int = 0, **extra: Any) -> dict[str, Any]:
    return {
        "name": extra.pop("name", "main"),
        "ready": ready,
        "restartCount": restarts,
        "state": {"running": {"startedAt": ts(60)}},
        **extra,
    }


def waiting(reason: str, name: str = "main", **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "ready": False,
        "restartCount": 0,
        "state": {"waiting": {"reason": reason}},
        **extra,
    }


def terminated(name: str = "main", **state: Any) -> dict[str, Any]:
    return {"name": name, "ready": False, "restartCount": 0, "state": {"terminated": state}}


def pod(
    phase: str | None = "Running",
    statuses: list[dict[str, Any]] | None = None,
    *,
    containers: tuple[str, ...] = ("main",),
    init: list[dict[str, Any]] | None = None,
    init_statuses: list[dict[str, Any]] | None = None,
    conditions: list[dict[str, Any]] | None = None,
    deleted: bool = False,
    reason: str | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {}
    if phase is not None:
        status["phase"] = phase
    if reason is not None:
        status["reason"] = reason
    if statuses is not None:
        status["containerStatuses"] = statuses
    if init_statuses is not None:
        status["initContainerStatuses"] = init_statuses
    if conditions is not None:
        status["conditions"] = conditions
    metadata: dict[str, Any] = {"name": "p", "namespace": "default", "creationTimestamp": ts(300)}
    if deleted:
        metadata["deletionTimestamp"] = ts(0)
    spec: dict[str, Any] = {"containers": [{"name": c, "image": "img"} for c in containers]}
    if init is not None:
        spec["initContainers"] = init
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec, "status": status}


READY = {"type": "Ready", "status": "True"}
INITIALIZED = {"type": "Initialized", "status": "True"}


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(
            pod("Pending", conditions=[{"type": "PodScheduled", "status": "False"}]),
            "Pending",
            id="unscheduled",
        ),
        pytest.param(pod(None), "Pending", id="no-status-yet"),
        pytest.param(
            pod(
                "Pending",
                conditions=[{"type": "PodScheduled", "status": "False", "reason": "SchedulingGated"}],
            ),
            "SchedulingGated",
            id="scheduling-gated",
        ),
        pytest.param(pod("Pending", [waiting("ContainerCreating")]), "ContainerCreating", id="creating"),
        pytest.param(pod("Pending", [waiting("ErrImagePull")]), "ErrImagePull", id="err-image"),
        pytest.param(pod("Pending", [waiting("ImagePullBackOff")]), "ImagePullBackOff", id="backoff"),
        pytest.param(pod("Running", [running()], conditions=[READY]), "Running", id="ready"),
        pytest.param(pod("Running", [running(ready=False)]), "Running", id="running-not-ready"),
        pytest.param(pod("Running", [waiting("CrashLoopBackOff")]), "CrashLoopBackOff", id="crashloop"),
        pytest.param(
            pod("Succeeded", [terminated(reason="Completed", exitCode=0)]),
            "Completed",
            id="completed",
        ),
        pytest.param(pod("Failed", [terminated(reason="Error", exitCode=1)]), "Error", id="error"),
        pytest.param(
            pod("Failed", [terminated(reason="OOMKilled", exitCode=137)]),
            "OOMKilled",
            id="oom",
        ),
        pytest.param(pod("Failed", [terminated(exitCode=3)]), "ExitCode:3", id="exit-no-reason"),
        pytest.param(pod("Failed", [terminated(exitCode=137, signal=9)]), "Signal:9", id="signal"),
        pytest.param(pod("Failed", [], reason="Evicted"), "Evicted", id="evicted"),
        pytest.param(
            pod(
                "Running",
                [terminated("a", reason="Completed", exitCode=0), running(name="b")],
                containers=("a", "b"),
                conditions=[READY],
            ),
            "Running",
            id="completed-but-one-running-ready",
        ),
        pytest.param(
            pod(
                "Running",
                [terminated("a", reason="Completed", exitCode=0), running(name="b")],
                containers=("a", "b"),
            ),
            "NotReady",
            id="completed-but-one-running-not-ready",
        ),
        pytest.param(pod("Running", [running()], deleted=True), "Terminating", id="terminating"),
        pytest.param(
            pod("Succeeded", [terminated(reason="Completed", exitCode=0)], deleted=True),
            "Completed",
            id="deleted-after-success",
        ),
        pytest.param(
            pod("Running", [running()], deleted=True, reason="NodeLost"),
            "Unknown",
            id="node-lost",
        ),
        pytest.param(
            pod(
                "Pending",
                [waiting("PodInitializing")],
                init=[{"name": "init"}],
                init_statuses=[waiting("PodInitializing", "init")],
            ),
            "Init:0/1",
            id="init-0-of-1",
        ),
        pytest.param(
            pod(
                "Pending",
                [waiting("PodInitializing")],
                init=[{"name": "i1"}, {"name": "i2"}],
                init_statuses=[
                    terminated("i1", reason="Completed", exitCode=0),
                    running(name="i2", ready=False),
                ],
            ),
            "Init:1/2",
            id="init-1-of-2",
        ),
        pytest.param(
            pod(
                "Pending",
                [waiting("PodInitializing")],
                init=[{"name": "init"}],
                init_statuses=[waiting("CrashLoopBackOff", "init")],
            ),
            "Init:CrashLoopBackOff",
            id="init-crashloop",
        ),
        pytest.param(
            pod(
                "Pending",
                [],
                init=[{"name": "init"}],
                init_statuses=[terminated("init", reason="Error", exitCode=1)],
            ),
            "Init:Error",
            id="init-error",
        ),
        pytest.param(
            pod(
                "Pending",
                [],
                init=[{"name": "init"}],
                init_statuses=[terminated("init", exitCode=2)],
            ),
            "Init:ExitCode:2",
            id="init-exit-code",
        ),
        pytest.param(
            pod(
                "Pending",
                [],
                init=[{"name": "init"}],
                init_statuses=[terminated("init", exitCode=0, signal=15)],
            ),
            "Pending",
            id="init-done-exit-0",
        ),
        pytest.param(
            pod(
                "Running",
                [running()],
                init=[{"name": "sidecar", "restartPolicy": "Always"}],
                init_statuses=[running(name="sidecar", started=True)],
                conditions=[INITIALIZED, READY],
            ),
            "Running",
            id="sidecar-running",
        ),
    ],
)
def test_pod_status(obj: dict[str, Any], expected: str) -> None:
    assert pod_status(obj) == expected


@pytest.mark.parametrize(
    ("obj", "ready", "restarts"),
    [
        pytest.param(pod("Pending"), "0/1", "0", id="no-statuses"),
        pytest.param(pod("Running", [running()]), "1/1", "0", id="one-ready"),
        pytest.param(
            pod("Running", [running(), running(name="b", ready=False)], containers=("main", "b")),
            "1/2",
            "0",
            id="one-of-two",
        ),
        pytest.param(pod("Running", [running(restarts=2)]), "1/1", "2", id="restarts-no-time"),
        pytest.param(
            pod(
                "Running",
                [running(restarts=3, lastState={"terminated": {"finishedAt": ts(90)}})],
            ),
            "1/1",
            "3 (90s ago)",
            id="restarts-with-time",
        ),
        pytest.param(
            pod(
                "Running",
                [
                    running(restarts=1, lastState={"terminated": {"finishedAt": ts(4 * HOUR)}}),
                    running(
                        name="b",
                        restarts=4,
                        lastState={"terminated": {"finishedAt": ts(125)}},
                    ),
                ],
                containers=("main", "b"),
            ),
            "2/2",
            "5 (2m5s ago)",
            id="restarts-latest-wins",
        ),
        pytest.param(
            pod(
                "Running",
                [running()],
                init=[{"name": "sidecar", "restartPolicy": "Always"}, {"name": "once"}],
                init_statuses=[
                    running(name="sidecar", started=True, restarts=1),
                    terminated("once", reason="Completed", exitCode=0),
                ],
                conditions=[INITIALIZED],
            ),
            "2/2",
            "1",
            id="sidecar-counts",
        ),
        pytest.param(
            pod(
                "Pending",
                [],
                init=[{"name": "init"}],
                init_statuses=[
                    {**waiting("CrashLoopBackOff", "init"), "restartCount": 4},
                ],
            ),
            "0/1",
            "4",
            id="init-restarts-while-initializing",
        ),
    ],
)
def test_pod_ready_and_restarts(obj: dict[str, Any], ready: str, restarts: str) -> None:
    cells = row_cells("Pod", obj, NOW)
    assert (cells[1], cells[3]) == (ready, restarts)


@pytest.mark.parametrize(
    ("spec", "status", "wide"),
    [
        pytest.param({}, {}, ["<none>", "<none>", "<none>", "<none>"], id="unscheduled"),
        pytest.param(
            {"nodeName": "gpu-1"},
            {"podIP": "10.0.0.5", "podIPs": [{"ip": "10.0.0.5"}]},
            ["10.0.0.5", "gpu-1", "<none>", "<none>"],
            id="scheduled",
        ),
        pytest.param(
            {},
            {"podIPs": [{"ip": "fd00::5"}, {"ip": "10.0.0.6"}], "nominatedNodeName": "n2"},
            ["fd00::5", "<none>", "n2", "<none>"],
            id="podips-only",
        ),
        pytest.param(
            {"readinessGates": [{"conditionType": "a"}, {"conditionType": "b"}]},
            {"conditions": [{"type": "a", "status": "True"}, {"type": "b", "status": "False"}]},
            ["<none>", "<none>", "<none>", "1/2"],
            id="readiness-gates",
        ),
    ],
)
def test_pod_wide_cells(spec: dict[str, Any], status: dict[str, Any], wide: list[str]) -> None:
    obj = {
        "metadata": {"name": "p", "creationTimestamp": ts(300)},
        "spec": {"containers": [{"name": "main"}], **spec},
        "status": {"phase": "Running", **status},
    }
    cells = row_cells("Pod", obj, NOW)
    assert cells[0] == "p"
    assert cells[4] == "5m"
    assert cells[5:] == wide


# --------------------------------------------------------------------------------------------
# Node


def node(
    labels: dict[str, str] | None = None,
    ready: str | None = "True",
    unschedulable: bool = False,
) -> dict[str, Any]:
    conditions = [{"type": "MemoryPressure", "status": "False"}]
    if ready is not None:
        conditions.append({"type": "Ready", "status": ready})
    spec = {"unschedulable": True} if unschedulable else {}
    return {
        "metadata": {"name": "n1", "labels": labels or {}, "creationTimestamp": ts(3 * DAY)},
        "spec": spec,
        "status": {"conditions": conditions, "nodeInfo": {"kubeletVersion": "v1.30.2"}},
    }


@pytest.mark.parametrize(
    ("obj", "status", "roles"),
    [
        pytest.param(node(), "Ready", "<none>", id="ready"),
        pytest.param(node(ready="False"), "NotReady", "<none>", id="not-ready"),
        pytest.param(node(ready="Unknown"), "NotReady", "<none>", id="unknown-condition"),
        pytest.param(node(ready=None), "Unknown", "<none>", id="no-ready-condition"),
        pytest.param(node(unschedulable=True), "Ready,SchedulingDisabled", "<none>", id="cordon"),
        pytest.param(
            node(ready="False", unschedulable=True),
            "NotReady,SchedulingDisabled",
            "<none>",
            id="cordon-not-ready",
        ),
        pytest.param(
            node(
                {
                    "node-role.kubernetes.io/worker": "",
                    "node-role.kubernetes.io/control-plane": "",
                    "nvidia.com/gpu.product": "A100",
                }
            ),
            "Ready",
            "control-plane,worker",
            id="roles-sorted",
        ),
        pytest.param(node({"kubernetes.io/role": "gpu"}), "Ready", "gpu", id="legacy-role"),
        pytest.param(
            node({"kubernetes.io/role": "", "node-role.kubernetes.io/": "x"}),
            "Ready",
            "<none>",
            id="empty-roles-ignored",
        ),
    ],
)
def test_node_status_and_roles(obj: dict[str, Any], status: str, roles: str) -> None:
    assert row_cells("Node", obj, NOW)[:5] == ["n1", status, roles, "3d", "v1.30.2"]


@pytest.mark.parametrize(
    ("status", "wide"),
    [
        pytest.param(
            {},
            ["<none>", "<none>", "<unknown>", "<unknown>", "<unknown>"],
            id="bare",
        ),
        pytest.param(
            {
                "addresses": [
                    {"type": "Hostname", "address": "gpu-1"},
                    {"type": "InternalIP", "address": "10.1.0.4"},
                    {"type": "ExternalIP", "address": "3.3.3.3"},
                    {"type": "InternalIP", "address": "10.1.0.5"},
                ],
                "nodeInfo": {
                    "osImage": "Ubuntu 22.04.4 LTS",
                    "kernelVersion": "5.15.0-105-generic",
                    "containerRuntimeVersion": "containerd://1.7.13",
                },
            },
            [
                "10.1.0.4",
                "3.3.3.3",
                "Ubuntu 22.04.4 LTS",
                "5.15.0-105-generic",
                "containerd://1.7.13",
            ],
            id="full",
        ),
    ],
)
def test_node_wide_cells(status: dict[str, Any], wide: list[str]) -> None:
    obj = {"metadata": {"name": "n1"}, "status": status}
    cells = row_cells("Node", obj, NOW)
    assert cells[:5] == ["n1", "Unknown", "<none>", "<unknown>", ""]
    assert cells[5:] == wide


# --------------------------------------------------------------------------------------------
# Service


@pytest.mark.parametrize(
    ("spec", "status", "expected"),
    [
        pytest.param(
            {
                "type": "ClusterIP",
                "clusterIP": "10.96.0.10",
                "ports": [{"port": 53, "protocol": "UDP"}],
            },
            {},
            ["ClusterIP", "10.96.0.10", "<none>", "53/UDP"],
            id="cluster-ip",
        ),
        pytest.param(
            {"clusterIPs": ["10.96.0.11"], "ports": [{"port": 80}, {"port": 443}]},
            {},
            ["ClusterIP", "10.96.0.11", "<none>", "80/TCP,443/TCP"],
            id="defaults",
        ),
        pytest.param(
            {"type": "ClusterIP", "clusterIP": "None", "ports": []},
            {},
            ["ClusterIP", "None", "<none>", "<none>"],
            id="headless",
        ),
        pytest.param(
            {
                "type": "ClusterIP",
                "clusterIP": "10.96.0.12",
                "externalIPs": ["1.1.1.1", "2.2.2.2"],
                "ports": [{"port": 80, "protocol": "TCP"}],
            },
            {},
            ["ClusterIP", "10.96.0.12", "1.1.1.1,2.2.2.2", "80/TCP"],
            id="external-ips",
        ),
        pytest.param(
            {
                "type": "NodePort",
                "clusterIP": "10.96.0.13",
                "ports": [
                    {"port": 22, "nodePort": 30022, "protocol": "TCP"},
                    {"port": 8080, "protocol": "TCP"},
                ],
            },
            {},
            ["NodePort", "10.96.0.13", "<none>", "22:30022/TCP,8080/TCP"],
            id="node-port",
        ),
        pytest.param(
            {
                "type": "LoadBalancer",
                "clusterIP": "10.96.0.14",
                "ports": [{"port": 443, "nodePort": 31443}],
            },
            {},
            ["LoadBalancer", "10.96.0.14", "<pending>", "443:31443/TCP"],
            id="lb-pending",
        ),
        pytest.param(
            {"type": "LoadBalancer", "clusterIP": "10.96.0.15", "ports": []},
            {
                "loadBalancer": {
                    "ingress": [
                        {"ip": "5.6.7.8"},
                        {"hostname": "a-very-long-hostname.elb.amazonaws.com"},
                        {"ip": "1.2.3.4"},
                        {"ip": "1.2.3.4"},
                    ]
                }
            },
            [
                "LoadBalancer",
                "10.96.0.15",
                "1.2.3.4,5.6.7.8,a-very-long-hostname.elb.amazonaws.com",
                "<none>",
            ],
            id="lb-ingress-sorted-unclipped",
        ),
        pytest.param(
            {"type": "LoadBalancer", "clusterIP": "10.96.0.16", "externalIPs": ["9.9.9.9"]},
            {"loadBalancer": {"ingress": [{"ip": "5.6.7.8"}]}},
            ["LoadBalancer", "10.96.0.16", "5.6.7.8,9.9.9.9", "<none>"],
            id="lb-plus-external",
        ),
        pytest.param(
            {"type": "ExternalName", "externalName": "db.example.com"},
            {},
            ["ExternalName", "<none>", "db.example.com", "<none>"],
            id="external-name",
        ),
    ],
)
def test_service_cells(spec: dict[str, Any], status: dict[str, Any], expected: list[str]) -> None:
    obj = {"metadata": {"name": "svc", "creationTimestamp": ts(45)}, "spec": spec, "status": status}
    cells = row_cells("Service", obj, NOW)
    assert cells == ["svc", *expected, "45s", "<none>"]


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ({}, "<none>"),
        ({"app": "hub"}, "app=hub"),
        ({"b": "2", "a": "1", "a.b": "3"}, "a.b=3,a=1,b=2"),  # Go sorts the k=v strings
    ],
)
def test_service_selector(selector: dict[str, str], expected: str) -> None:
    obj = {"metadata": {"name": "svc"}, "spec": {"selector": selector}}
    assert row_cells("Service", obj, NOW)[-1] == expected


# --------------------------------------------------------------------------------------------
# Event


def event(**fields: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "p.17d3", "namespace": "default", "creationTimestamp": ts(600)},
        "involvedObject": {"kind": "Pod", "name": "p", "fieldPath": "spec.containers{main}"},
        "type": "Normal",
        "reason": "Pulled",
        "message": "Successfully pulled image\n",
        "source": {"component": "kubelet", "host": "gpu-1"},
        **fields,
    }


@pytest.mark.parametrize(
    ("obj", "expected"),
    [
        pytest.param(
            event(firstTimestamp=ts(600), lastTimestamp=ts(30), count=4),
            [
                "30s",
                "Normal",
                "Pulled",
                "pod/p",
                "spec.containers{main}",
                "kubelet, gpu-1",
                "Successfully pulled image",
                "10m",
                4,
                "p.17d3",
            ],
            id="classic",
        ),
        pytest.param(
            event(firstTimestamp=ts(90), lastTimestamp=None),
            [
                "90s",
                "Normal",
                "Pulled",
                "pod/p",
                "spec.containers{main}",
                "kubelet, gpu-1",
                "Successfully pulled image",
                "90s",
                1,
                "p.17d3",
            ],
            id="no-last-no-count",
        ),
        pytest.param(
            event(
                firstTimestamp=None,
                eventTime="2024-06-01T11:50:00.000000Z",
                series={"count": 7, "lastObservedTime": "2024-06-01T11:59:00.000000Z"},
                source={},
                reportingComponent="default-scheduler",
                reportingInstance="sched-1",
                involvedObject={"kind": "Node"},
            ),
            [
                "60s",
                "Normal",
                "Pulled",
                "node",
                "",
                "default-scheduler, sched-1",
                "Successfully pulled image",
                "10m",
                7,
                "p.17d3",
            ],
            id="series-event-time-reporting",
        ),
        pytest.param(
            event(source={"component": "kubelet"}, count=2),
            [
                "<unknown>",
                "Normal",
                "Pulled",
                "pod/p",
                "spec.containers{main}",
                "kubelet",
                "Successfully pulled image",
                "<unknown>",
                2,
                "p.17d3",
            ],
            id="no-timestamps-no-host",
        ),
    ],
)
def test_event_cells(obj: dict[str, Any], expected: list[Any]) -> None:
    assert row_cells("Event", obj, NOW) == expected


def test_event_columns_order() -> None:
    names = [(c["name"], c["priority"]) for c in columns("Event")]
    assert names == [
        ("Last Seen", 0),
        ("Type", 0),
        ("Reason", 0),
        ("Object", 0),
        ("Subobject", 1),
        ("Source", 1),
        ("Message", 0),
        ("First Seen", 1),
        ("Count", 1),
        ("Name", 1),
    ]


# --------------------------------------------------------------------------------------------
# the simple kinds and the generic fallback


@pytest.mark.parametrize(
    ("kind", "obj", "expected"),
    [
        pytest.param(
            "Namespace",
            {
                "metadata": {"name": "hub", "creationTimestamp": ts(DAY)},
                "status": {"phase": "Active"},
            },
            ["hub", "Active", "24h"],
            id="namespace",
        ),
        pytest.param(
            "Namespace",
            {
                "metadata": {"name": "old", "deletionTimestamp": ts(0)},
                "status": {"phase": "Terminating"},
            },
            ["old", "Terminating", "<unknown>"],
            id="namespace-terminating",
        ),
        pytest.param(
            "Secret",
            {
                "metadata": {"name": "s"},
                "type": "kubernetes.io/tls",
                "data": {"tls.crt": "", "tls.key": ""},
            },
            ["s", "kubernetes.io/tls", 2, "<unknown>"],
            id="secret",
        ),
        pytest.param(
            "Secret",
            {"metadata": {"name": "s"}, "data": {"a": ""}, "stringData": {"a": "x", "b": "y"}},
            ["s", "Opaque", 2, "<unknown>"],
            id="secret-default-type-string-data",
        ),
        pytest.param(
            "ConfigMap",
            {
                "metadata": {"name": "c", "creationTimestamp": ts(5)},
                "data": {"a": "1"},
                "binaryData": {"b": ""},
            },
            ["c", 2, "5s"],
            id="configmap",
        ),
        pytest.param("ConfigMap", {"metadata": {"name": "c"}}, ["c", 0, "<unknown>"], id="configmap-empty"),
        pytest.param(
            "ServiceAccount",
            {"metadata": {"name": "default"}, "secrets": [{"name": "tok"}]},
            ["default", 1, "<unknown>"],
            id="serviceaccount",
        ),
        pytest.param(
            "PersistentVolumeClaim",
            {
                "metadata": {"name": "home", "creationTimestamp": ts(2 * HOUR)},
                "spec": {
                    "storageClassName": "standard",
                    "resources": {"requests": {"storage": "10Gi"}},
                },
                "status": {"phase": "Pending"},
            },
            ["home", "Pending", "", "", "", "standard", "<unset>", "120m", "Filesystem"],
            id="pvc-pending",
        ),
        pytest.param(
            "PersistentVolumeClaim",
            {
                "metadata": {
                    "name": "home",
                    "annotations": {"volume.beta.kubernetes.io/storage-class": "beta"},
                },
                "spec": {
                    "volumeName": "pv-1",
                    "storageClassName": "standard",
                    "volumeMode": "Block",
                    "volumeAttributesClassName": "gold",
                },
                "status": {
                    "phase": "Bound",
                    "capacity": {"storage": "10Gi"},
                    "accessModes": ["ReadWriteMany", "ReadWriteOnce", "ReadWriteOnce"],
                },
            },
            ["home", "Bound", "pv-1", "10Gi", "RWO,RWX", "beta", "gold", "<unknown>", "Block"],
            id="pvc-bound",
        ),
        pytest.param(
            "PersistentVolumeClaim",
            {"metadata": {"name": "x", "deletionTimestamp": ts(0)}, "status": {"phase": "Bound"}},
            ["x", "Terminating", "", "", "", "", "<unset>", "<unknown>", "Filesystem"],
            id="pvc-terminating",
        ),
        pytest.param(
            "Workflow",
            {"metadata": {"name": "wf", "creationTimestamp": ts(3 * HOUR + 60)}},
            ["wf", "3h1m"],
            id="custom-resource",
        ),
        pytest.param("Experiment", {"metadata": {"name": "e"}}, ["e", None], id="cr-no-timestamp"),
        pytest.param(
            "Experiment",
            {"metadata": {"name": "e", "creationTimestamp": "garbage"}},
            ["e", "<invalid>"],
            id="cr-bad-timestamp",
        ),
    ],
)
def test_simple_cells(kind: str, obj: dict[str, Any], expected: list[Any]) -> None:
    assert row_cells(kind, obj, NOW) == expected


@pytest.mark.parametrize(
    ("kind", "headers"),
    [
        ("Pod", ["Name", "Ready", "Status", "Restarts", "Age"]),
        ("Node", ["Name", "Status", "Roles", "Age", "Version"]),
        ("Namespace", ["Name", "Status", "Age"]),
        ("Service", ["Name", "Type", "Cluster-IP", "External-IP", "Port(s)", "Age"]),
        ("Secret", ["Name", "Type", "Data", "Age"]),
        ("ConfigMap", ["Name", "Data", "Age"]),
        ("ServiceAccount", ["Name", "Secrets", "Age"]),
        (
            "PersistentVolumeClaim",
            [
                "Name",
                "Status",
                "Volume",
                "Capacity",
                "Access Modes",
                "StorageClass",
                "VolumeAttributesClass",
                "Age",
            ],
        ),
        ("Event", ["Last Seen", "Type", "Reason", "Object", "Message"]),
        ("Notebook", ["Name", "Age"]),
    ],
)
def test_columns_and_cells_line_up(kind: str, headers: list[str]) -> None:
    defs = columns(kind)
    assert [c["name"] for c in defs if c["priority"] == 0] == headers
    for c in defs:
        assert set(c) == {"name", "type", "format", "description", "priority"}
        assert c["priority"] in (0, 1)
    assert sum(1 for c in defs if c["format"] == "name") == 1
    assert len(row_cells(kind, {"metadata": {"name": "x"}}, NOW)) == len(defs)


@pytest.mark.parametrize(
    ("kind", "wide"),
    [
        ("Pod", ["IP", "Node", "Nominated Node", "Readiness Gates"]),
        ("Node", ["Internal-IP", "External-IP", "OS-Image", "Kernel-Version", "Container-Runtime"]),
        ("Service", ["Selector"]),
        ("PersistentVolumeClaim", ["VolumeMode"]),
        ("Secret", []),
    ],
)
def test_wide_columns(kind: str, wide: list[str]) -> None:
    assert [c["name"] for c in columns(kind) if c["priority"] == 1] == wide


@pytest.mark.parametrize(
    ("kind", "column", "type_"),
    [
        ("Pod", "Restarts", "string"),
        ("Secret", "Data", "string"),
        ("Event", "Count", "string"),
        ("Workflow", "Age", "date"),
        ("Pod", "Age", "string"),
    ],
)
def test_column_types(kind: str, column: str, type_: str) -> None:
    assert {c["name"]: c["type"] for c in columns(kind)}[column] == type_


def test_columns_returns_copies() -> None:
    columns("Pod")[0]["name"] = "mangled"
    assert columns("Pod")[0]["name"] == "Name"


# --------------------------------------------------------------------------------------------
# to_table


PODS = [
    pod("Running", [running()], conditions=[READY]),
    pod("Succeeded", [terminated(reason="Completed", exitCode=0)]),
]


@pytest.mark.parametrize(
    ("include_object", "expected_object"),
    [
        pytest.param(
            "PartialObjectMetadata",
            {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": PODS[0]["metadata"],
            },
            id="partial-alias",
        ),
        pytest.param(
            "Metadata",
            {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": PODS[0]["metadata"],
            },
            id="metadata",
        ),
        pytest.param(
            "",
            {
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": PODS[0]["metadata"],
            },
            id="empty-is-metadata",
        ),
        pytest.param("Object", PODS[0], id="object"),
        pytest.param("None", None, id="none"),
    ],
)
def test_to_table_include_object(include_object: str, expected_object: Any) -> None:
    table = to_table("Pod", PODS, NOW, include_object=include_object)
    row = table["rows"][0]
    if expected_object is None:
        assert "object" not in row
    else:
        assert row["object"] == expected_object


def test_to_table_shape() -> None:
    table = to_table("Pod", PODS, NOW, resource_version="42")
    assert table["kind"] == "Table"
    assert table["apiVersion"] == "meta.k8s.io/v1"
    assert table["metadata"] == {"resourceVersion": "42"}
    assert table["columnDefinitions"] == columns("Pod")
    assert [r["cells"][:5] for r in table["rows"]] == [
        ["p", "1/1", "Running", "0", "5m"],
        ["p", "0/1", "Completed", "0", "5m"],
    ]
    assert "conditions" not in table["rows"][0]
    assert table["rows"][1]["conditions"] == [
        {
            "type": "Completed",
            "status": "True",
            "reason": "Succeeded",
            "message": "The pod has completed successfully.",
        }
    ]


@pytest.mark.parametrize(
    ("kwargs", "metadata", "n_columns"),
    [
        pytest.param({}, {}, 9, id="defaults"),
        pytest.param({"include_columns": False}, {}, 0, id="no-headers"),
        pytest.param(
            {"resource_version": "7", "continue_token": "abc", "remaining_item_count": 3},
            {"resourceVersion": "7", "continue": "abc", "remainingItemCount": 3},
            9,
            id="list-meta",
        ),
    ],
)
def test_to_table_options(kwargs: dict[str, Any], metadata: dict[str, Any], n_columns: int) -> None:
    table = to_table("Pod", PODS[:1], NOW, **kwargs)
    assert table["metadata"] == metadata
    assert len(table["columnDefinitions"]) == n_columns
    assert len(table["rows"]) == 1


def test_to_table_empty() -> None:
    table = to_table("Node", [], NOW, resource_version="1")
    assert table["rows"] == []
    assert [c["name"] for c in table["columnDefinitions"]][:2] == ["Name", "Status"]


@pytest.mark.parametrize(
    ("obj", "api_version_of", "expected"),
    [
        pytest.param(
            {"metadata": {"name": "w"}},
            lambda kind: "argoproj.io/v1alpha1",
            {"metadata": {"name": "w"}, "kind": "Workflow", "apiVersion": "argoproj.io/v1alpha1"},
            id="filled-in",
        ),
        pytest.param(
            {"metadata": {"name": "w"}},
            None,
            {"metadata": {"name": "w"}, "kind": "Workflow"},
            id="kind-only",
        ),
        pytest.param(
            {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"}},
            lambda kind: "ignored/v1",
            {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"}},
            id="kept",
        ),
    ],
)
def test_to_table_object_type_meta(
    obj: dict[str, Any], api_version_of: Any, expected: dict[str, Any]
) -> None:
    table = to_table("Workflow", [obj], NOW, include_object="Object", api_version_of=api_version_of)
    assert table["rows"][0]["object"] == expected
    assert "kind" not in obj or obj.get("kind") == "Workflow"  # input untouched


def test_to_table_v1beta1() -> None:
    table = to_table("Pod", PODS[:1], NOW, group_version="meta.k8s.io/v1beta1")
    assert table["apiVersion"] == "meta.k8s.io/v1beta1"
    assert table["rows"][0]["object"]["apiVersion"] == "meta.k8s.io/v1beta1"


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({"include_object": "Everything"}, id="include-object"),
        pytest.param({"group_version": "meta.k8s.io/v2"}, id="group-version"),
    ],
)
def test_to_table_rejects(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        to_table("Pod", PODS, NOW, **kwargs)


def test_to_table_rejects_naive_now() -> None:
    with pytest.raises(ValueError):
        to_table("Pod", PODS, datetime(2024, 6, 1))
