"""The hub harness: a real JupyterHub + configurable-http-proxy spawning real single-user servers
with stock KubeSpawner into simcluster's process runtime."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from simcluster.testing import SimProcess
from tests.harness.cleanup import leave_clean, pod_count
from tests.harness.hub import HubProcess


def test_ten_users_get_real_servers_through_the_proxy(hub: HubProcess, hsim: SimProcess) -> None:
    users = [f"user{i}" for i in range(10)]
    for name in users:
        hub.create_user(name)
    with ThreadPoolExecutor(10) as pool:
        assert all(code in (201, 202) for code in pool.map(hub.start_server, users))
        servers = list(pool.map(hub.wait_ready, users))
    assert all(s["ready"] for s in servers)
    pods = json.loads(hsim.kubectl("get", "pods", "-n", "jupyterhub", "-o", "json").stdout)["items"]
    assert sorted(p["metadata"]["name"] for p in pods) == sorted(f"jupyter-{u}" for u in users)
    assert {p["status"]["phase"] for p in pods} == {"Running"}
    assert len({p["status"]["podIP"] for p in pods}) == 10
    for name in users:
        status, body = hub.proxy_get(f"/user/{name}/api")
        assert status == 200, body
        assert "version" in json.loads(body)
    with ThreadPoolExecutor(10) as pool:
        list(pool.map(hub.stop_server, users))
    hsim.kubectl("wait", "--for=delete", "pod", "--all", "-n", "jupyterhub", "--timeout=60s")
    assert hsim.kubectl("get", "pods", "-n", "jupyterhub", "-o", "name").stdout == ""


def test_a_server_runs_where_its_pod_is(hub: HubProcess, hsim: SimProcess) -> None:
    """The notebook really runs in the pod: its kernel-visible hostname is the pod's."""
    hub.create_user("alice")
    hub.start_server("alice")
    hub.wait_ready("alice")
    status, body = hub.proxy_get("/user/alice/api/status")
    assert status == 200, body
    log = hsim.kubectl("logs", "-n", "jupyterhub", "jupyter-alice").stdout
    assert "Jupyter Server" in log and "/user/alice/" in log
    hub.stop_server("alice")


def test_what_a_test_leaves_behind_is_undone(
    hub: HubProcess, hsim: SimProcess, pods_at_start: dict[str, int]
) -> None:
    """tests/hub/conftest.py undoes this after every hub test: a latency fault, a killed hub, a
    running server, a stray pod."""
    hub.create_user("lee")
    hub.start_server("lee")
    hub.wait_ready("lee")
    stray = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "stray", "namespace": "default"},
        "spec": {"containers": [{"name": "c", "image": "x", "command": ["sleep", "600"]}]},
    }
    hsim.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(stray), context="eks")
    hsim.admin("eks").set_faults(latency=0.05)
    hub.kill()
    undone = leave_clean(hsim, [hub], pods_at_start, ["default", "jupyterhub"])
    assert undone == [
        "faults on eks",
        f"hub {hub.workdir.name} started again",
        "servers of ['lee'] stopped",
        "pods ['pod/stray'] in eks/default deleted",
    ]
    assert hub.running and hub.servers() == {}
    assert pod_count(hsim) == pods_at_start
    assert not hsim.admin("eks").faults()["latency"]
    assert leave_clean(hsim, [hub], pods_at_start, ["default", "jupyterhub"]) == []  # nothing left
