"""How the hub reaches a notebook on a cluster whose pod IPs it cannot route to: a per-user NodePort
Service, at the address of the pod's node (the LoadBalancer variant runs in test_hybrid_spawner)."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest

from simcluster.testing import SimProcess
from tests.harness.hub import HubProcess
from tests.hub.conftest import run_service_hub


@pytest.fixture(scope="module")
def nodeport_hub(hsim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    yield from run_service_hub(
        hsim,
        tmp_path_factory.mktemp("nodeport"),
        spawner=True,
        eks_access={"pod_access": "service", "service_type": "NodePort"},
    )


def test_a_server_on_eks_is_reached_through_its_node_port(nodeport_hub: HubProcess, hsim: SimProcess) -> None:
    nodeport_hub.create_user("nia")
    nodeport_hub.start_server("nia", {"gpus": 0, "cluster": "eks"})
    nodeport_hub.wait_ready("nia")
    try:
        get = ("get", "-n", "jupyterhub", "-o", "json")
        pod = json.loads(hsim.kubectl(*get, "pod", "jupyter-nia", context="eks").stdout)
        svc = json.loads(hsim.kubectl(*get, "service", "jupyter-nia", context="eks").stdout)
        assert svc["spec"]["type"] == "NodePort"
        assert svc["metadata"]["labels"]["hybridhub.io/cluster"] == "eks"
        address = f"http://{pod['status']['hostIP']}:{svc['spec']['ports'][0]['nodePort']}"
        assert address.startswith("http://127.31.")  # the node's address, not the pod's
        assert f"Adding user nia to proxy /user/nia/ => {address}" in nodeport_hub.log_text()
        state = nodeport_hub.user("nia")["servers"][""]["state"]["hybridhub"]
        assert state == {"version": 2, "cluster": "eks", "access_url": address}
        assert nodeport_hub.proxy_get("/user/nia/api")[0] == 200
    finally:
        nodeport_hub.stop_server("nia")
    assert (
        hsim.kubectl(
            "get", "service", "-n", "jupyterhub", "jupyter-nia", context="eks", check=False
        ).returncode
        != 0
    )  # the Service went with its pod
