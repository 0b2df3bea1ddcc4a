"""The hub harness: a real JupyterHub + configurable-http-proxy spawning real single-user servers
with stock KubeSpawner into simcluster's process runtime."""

from __future__ import annotations

import json
from concurrent.futures import ThreadPoolExecutor

from simcluster.testing import SimProcess
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


def test_mocksu_servers_for_load(mocksu_hub: HubProcess, hsim: SimProcess) -> None:
    mocksu_hub.create_user("bob")
    mocksu_hub.start_server("bob")
    mocksu_hub.wait_ready("bob")
    status, body = mocksu_hub.proxy_get("/user/bob/some/path")
    assert (status, body) == (200, b"/user/bob/some/path")  # mocksu echoes the path
    assert hsim.kubectl("get", "pod", "-n", "mocksu", "jupyter-bob", "-o", "name").stdout.strip()
    mocksu_hub.stop_server("bob")
