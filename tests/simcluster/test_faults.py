"""Each fault, as a client sees it, and the cluster's recovery once it is cleared."""

from __future__ import annotations

import http.client
import json
import ssl
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simcluster.testing import SimProcess


@pytest.fixture(scope="module")
def faulty(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    """A simcluster of its own: faults must not disturb the session's."""
    with SimProcess(tmp_path_factory.mktemp("faults")) as proc:
        yield proc


@pytest.fixture(autouse=True)
def _cleared(faulty: SimProcess) -> Iterator[None]:
    yield
    faulty.admin("onprem").clear_faults()


def get(sim: SimProcess, path: str, timeout: float = 5.0) -> tuple[int, dict[str, Any], dict[str, str]]:
    req = urllib.request.Request(
        sim.api_url("onprem") + path, headers={"Authorization": f"Bearer {sim.token('onprem')}"}
    )
    try:
        with urllib.request.urlopen(req, timeout=timeout, context=sim.ssl_context()) as resp:
            return resp.status, json.loads(resp.read()), dict(resp.headers)
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read()), dict(err.headers)


def test_down_refuses_connections_and_recovers(faulty: SimProcess) -> None:
    admin = faulty.admin("onprem")
    assert admin.set_faults(down=True)["down"] is True
    result = faulty.kubectl("get", "nodes", check=False)
    assert result.returncode != 0 and "connection refused" in result.stderr
    with pytest.raises(urllib.error.URLError):
        get(faulty, "/api/v1/nodes")
    assert faulty.kubectl("get", "nodes", context="eks").returncode == 0  # the other cluster is fine
    admin.clear_faults()
    assert get(faulty, "/api/v1/nodes")[0] == 200  # same address as before


def test_down_breaks_open_watches(faulty: SimProcess, tmp_path: Path) -> None:
    token = faulty.token("onprem")
    url = faulty.api_url("onprem") + "/api/v1/namespaces/default/pods?watch=true&timeoutSeconds=30"
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"})
    resp = urllib.request.urlopen(req, timeout=10, context=faulty.ssl_context())
    faulty.admin("onprem").set_faults(down=True)
    started = time.monotonic()
    with pytest.raises((OSError, ssl.SSLError, http.client.HTTPException)):
        data = resp.read()  # a clean end would return bytes; a dropped connection raises
        if not data:
            raise OSError("stream ended")
    assert time.monotonic() - started < 10


def test_latency_delays_every_request(faulty: SimProcess) -> None:
    faulty.admin("onprem").set_faults(latency=0.4)
    started = time.monotonic()
    assert get(faulty, "/api/v1/namespaces")[0] == 200
    assert time.monotonic() - started >= 0.4


@pytest.mark.parametrize(
    ("code", "reason"), [(503, "ServiceUnavailable"), (500, "InternalError"), (429, "TooManyRequests")]
)
def test_error_rate(faulty: SimProcess, code: int, reason: str) -> None:
    faulty.admin("onprem").set_faults(errorRate=1.0, errorCode=code)
    status, body, headers = get(faulty, "/api/v1/pods")
    assert (status, body["kind"], body["reason"], body["code"]) == (code, "Status", reason, code)
    if code == 429:
        assert headers.get("Retry-After") == "1"
    faulty.admin("onprem").clear_faults()
    assert get(faulty, "/api/v1/pods")[0] == 200


@pytest.mark.parametrize(
    "bad",
    [
        {"errorRate": 2},
        {"errorCode": 404},
        {"latency": -1},
        {"down": "yes"},
        {"flood": True},
        {"hung": "yes"},
        {"hung": True, "hungParts": ["api", "disks"]},
        {"hung": True, "hungParts": []},
        {"hung": False, "hungParts": ["api"]},
        {"hungParts": "api"},
        {"down": True, "hung": True},
    ],
)
def test_bad_fault_requests_are_refused(faulty: SimProcess, bad: dict[str, Any]) -> None:
    with pytest.raises(urllib.error.HTTPError) as err:
        faulty.admin("onprem").set_faults(**bad)
    assert err.value.code == 400
    assert faulty.admin("onprem").faults() == {
        "down": False,
        "hung": False,
        "hungParts": [],
        "latency": 0.0,
        "errorRate": 0.0,
        "errorCode": 503,
        "held": {"api": 0, "services": 0},
    }


def node_status(sim: SimProcess, node: str) -> str:
    return sim.kubectl("get", "node", node, "--no-headers").stdout.split()[1]


def test_node_not_ready_is_avoided_then_back(faulty: SimProcess) -> None:
    admin = faulty.admin("onprem")
    admin.node_not_ready("l40s-1")
    assert node_status(faulty, "l40s-1") == "NotReady"
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "l40s-pod"},
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-L40S"},
            "containers": [
                {"name": "c", "image": "busybox:1", "resources": {"limits": {"nvidia.com/gpu": 4}}}
            ],
        },
    }
    faulty.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(pod))
    faulty.kubectl("wait", "--for=condition=Ready", "pod/l40s-pod", "--timeout=20s")
    node = faulty.kubectl("get", "pod", "l40s-pod", "-o", "jsonpath={.spec.nodeName}").stdout
    assert node == "l40s-2"
    admin.node_ready("l40s-1")
    assert node_status(faulty, "l40s-1") == "Ready"
    faulty.kubectl("delete", "pod", "l40s-pod", "--wait=true", "--timeout=20s")


def test_node_removed_takes_its_pods(faulty: SimProcess) -> None:
    containers = [{"name": "c", "image": "busybox:1"}]
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "doomed"},
        "spec": {"nodeName": "dgx-a100-2", "containers": containers},
    }
    faulty.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(pod))
    faulty.kubectl("wait", "--for=condition=Ready", "pod/doomed", "--timeout=20s")
    faulty.admin("onprem").remove_node("dgx-a100-2")
    faulty.kubectl("wait", "--for=delete", "pod/doomed", "--timeout=20s")
    assert "dgx-a100-2" not in faulty.kubectl("get", "nodes", "-o", "name").stdout
    with pytest.raises(urllib.error.HTTPError) as err:
        faulty.admin("onprem").remove_node("dgx-a100-2")
    assert err.value.code == 404


def test_kill_pods_stops_every_pod_on_a_node_and_keeps_the_nodes(faulty: SimProcess) -> None:
    containers = [{"name": "c", "image": "busybox:1"}]
    for name, node in (("lit-1", "dgx-a100-1"), ("lit-2", "l40s-2")):
        pod = {
            "apiVersion": "v1",
            "kind": "Pod",
            "metadata": {"name": name},
            "spec": {"nodeName": node, "containers": containers},
        }
        faulty.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(pod))
    unscheduled = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "waiting"},
        "spec": {"nodeSelector": {"no-such": "node"}, "containers": containers},
    }
    faulty.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(unscheduled))
    faulty.kubectl("wait", "--for=condition=Ready", "pod/lit-1", "pod/lit-2", "--timeout=20s")
    nodes = faulty.kubectl("get", "nodes", "-o", "name").stdout
    assert faulty.admin("onprem").kill_pods() == 2
    faulty.kubectl("wait", "--for=delete", "pod/lit-1", "pod/lit-2", "--timeout=20s")
    assert faulty.kubectl("get", "pods", "-o", "name").stdout.split() == ["pod/waiting"]
    assert faulty.kubectl("get", "nodes", "-o", "name").stdout == nodes
    faulty.kubectl("delete", "pod", "waiting", "--wait=true", "--timeout=20s")
