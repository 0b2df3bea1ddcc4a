"""The hybridhub service as a JupyterHub managed service: capacity, placements, server lookup, metrics."""

from __future__ import annotations

import json
import secrets
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest

from simcluster.testing import SimProcess
from tests.harness.hub import HubProcess, free_port

HUB_TOKEN = secrets.token_hex(16)  # what HybridSpawner will use to ask for placements
PROMETHEUS_TOKEN = secrets.token_hex(16)


TOLERATE_GPU = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


def clusters_config(sim: SimProcess, hub_port: int) -> str:
    gateway = sim.endpoints["clusters"]["onprem"]["pod_gateway"]
    clusters = [
        {"name": "onprem", "role": "onprem", "kubeconfig": str(sim.kubeconfig), "context": "onprem",
         "namespace": "jupyterhub", "hub_connect_url": f"http://{gateway}:{hub_port}",
         "home_storage": {"kind": "none"},
         "pools": [{"name": "gpu", "node_selector": {"nvidia.com/gpu.present": "true"}}]},
        {"name": "eks", "role": "cloud", "kubeconfig": str(sim.kubeconfig), "context": "eks",
         "namespace": "jupyterhub", "hub_connect_url": f"http://{gateway}:{hub_port}",
         "home_storage": {"kind": "none"},
         "pools": [{"name": "system", "node_selector": {"eks.amazonaws.com/nodegroup": "system"}},
                   {"name": "gpu-l40s", "node_selector": {"eks.amazonaws.com/nodegroup": "gpu-l40s"},
                    "elastic": True, "max_nodes": 4, "gpus_per_node": 4, "gpu_product": "NVIDIA-L40S",
                    "tolerations": [TOLERATE_GPU]}]},
    ]  # fmt: skip
    return f"c.ClusterSet.clusters = {clusters!r}\nc.HybridHubService.probe_interval = 1.0\n"


@pytest.fixture(scope="module")
def service_hub(hsim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    work = tmp_path_factory.mktemp("svc")
    port = free_port()
    hub = HubProcess(work / "hub", hsim, namespace="jupyterhub")
    config = work / "hybridhub_service_config.py"
    config.write_text(clusters_config(hsim, hub.hub_port))
    hub.extra_config = f"""
c.JupyterHub.custom_scopes = {{
    "custom:hybridhub:capacity": {{"description": "See GPU availability of the clusters"}},
    "custom:hybridhub:place": {{"description": "Ask the hybridhub service for placements (the hub)"}},
    "custom:hybridhub:servers": {{"description": "Look up where any user's server runs"}},
}}
c.JupyterHub.services.append({{
    "name": "hybridhub", "url": "http://127.0.0.1:{port}",
    # the hub's connect URL is the pods' gateway (169.254.1.1); the service runs on this host
    "command": [{sys.executable!r}, "-m", "spawner.cli", "service", "--config", {str(config)!r},
                "--HybridHubService.api_url=http://127.0.0.1:{hub.hub_port}/hub/api"],
}})
c.JupyterHub.services.append({{"name": "hybridhub-hub", "api_token": {HUB_TOKEN!r}}})
c.JupyterHub.services.append({{"name": "prometheus", "api_token": {PROMETHEUS_TOKEN!r}}})
c.JupyterHub.load_roles.append({{
    "name": "prometheus",
    "scopes": ["access:services!service=hybridhub", "read:metrics"],
    "services": ["prometheus"],
}})
c.JupyterHub.load_roles.append({{
    "name": "user",
    "scopes": ["self", "access:services!service=hybridhub", "custom:hybridhub:capacity"],
}})
c.JupyterHub.load_roles.append({{
    "name": "hybridhub-hub",
    "scopes": ["access:services!service=hybridhub", "custom:hybridhub:place", "custom:hybridhub:servers"],
    "services": ["hybridhub-hub"],
}})
"""
    with hub:
        wait_for_service(hub)
        yield hub


def call(hub: HubProcess, method: str, path: str, token: str, body: Any = None) -> tuple[int, Any]:
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(
        f"{hub.public_url}/services/hybridhub/{path}", data=data, method=method,
        headers={"Authorization": f"token {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            raw = resp.read()
            ctype = resp.headers.get("Content-Type", "")
            return resp.status, json.loads(raw) if "json" in ctype else raw.decode()
    except urllib.error.HTTPError as err:
        raw = err.read()
        try:
            return err.code, json.loads(raw)
        except json.JSONDecodeError:
            return err.code, raw.decode(errors="replace")


def wait_for_service(hub: HubProcess, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        status, body = call(hub, "GET", "api/capacity", HUB_TOKEN)
        if status in (200, 403) and isinstance(body, dict):
            synced = status == 403 or all(c["synced"] for c in body["clusters"])
            if synced:
                return
        if time.monotonic() > deadline:
            raise TimeoutError(f"the service did not come up: {status} {body}\n{hub.log_text()[-3000:]}")
        time.sleep(0.3)


def user_token(hub: HubProcess, name: str) -> str:
    hub.create_user(name)
    return str(hub.api("POST", f"/users/{name}/tokens", {"note": "test"})["token"])


def test_capacity_shows_gpus_per_cluster_product_and_node(service_hub: HubProcess, hsim: SimProcess) -> None:
    token = user_token(service_hub, "carol")
    status, body = call(service_hub, "GET", "api/capacity", token)
    assert status == 200, body
    clusters = {c["name"]: c for c in body["clusters"]}
    assert set(clusters) == {"onprem", "eks"} and all(c["synced"] for c in clusters.values())
    products = {p["product"]: p for p in clusters["onprem"]["products"]}
    assert products["NVIDIA-A100-SXM4-80GB"]["total"] == 16
    assert products["NVIDIA-L40S"]["total"] == 8
    eks_l40s = {p["product"]: p for p in clusters["eks"]["products"]}.get("NVIDIA-L40S")
    assert eks_l40s is not None and eks_l40s["new_node_gpus"] == 4  # a pool at zero can still grow
    before = products["NVIDIA-L40S"]["free"]
    # another tenant's pod (not a notebook) takes 3 L40S GPUs
    pod = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "tenant", "namespace": "default"},
           "spec": {"nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-L40S"},
                    "containers": [{"name": "c", "image": "x", "command": ["sleep", "600"],
                                    "resources": {"limits": {"nvidia.com/gpu": 3}}}]}}  # fmt: skip
    hsim.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(pod))
    try:
        deadline = time.monotonic() + 10
        while True:
            body = call(service_hub, "GET", "api/capacity", token)[1]
            onprem = next(c for c in body["clusters"] if c["name"] == "onprem")
            free = {p["product"]: p["free"] for p in onprem["products"]}["NVIDIA-L40S"]
            if free == before - 3:
                break
            assert time.monotonic() < deadline, f"capacity did not follow the tenant pod: {free} free"
            time.sleep(0.2)
    finally:
        hsim.kubectl("delete", "pod", "tenant", "-n", "default", "--grace-period=0", "--force", check=False)


def test_placements_are_for_the_hub_only(service_hub: HubProcess) -> None:
    token = user_token(service_hub, "dave")
    status, body = call(service_hub, "POST", "api/placements", token, {"user": "dave", "gpus": 1})
    assert status == 403 and "custom:hybridhub:place" in body["message"]


@pytest.mark.parametrize(
    ("body", "text"),
    [
        ({"gpus": 1}, "user is required"),
        ({"user": "x", "gpus": -1}, "between 0 and 64"),
        ({"user": "x", "gpus": 1000}, "between 0 and 64"),
        ({"user": "x", "gpus": "two"}, "gpus must be int"),
        ({"user": "x", "gpus": True}, "gpus must be int"),
        ({"user": "x", "gpus": 1, "cluster": "mars"}, "mars"),
        ({"user": "x", "gpus": 1, "allowed_clusters": "onprem"}, "allowed_clusters must be"),
    ],
)
def test_bad_placement_requests_get_400(service_hub: HubProcess, body: dict[str, Any], text: str) -> None:
    status, answer = call(service_hub, "POST", "api/placements", HUB_TOKEN, body)
    assert status == 400 and text in answer["message"], answer


def test_concurrent_placements_reserve_distinct_gpus(service_hub: HubProcess) -> None:
    """16 A100s free on-prem: 20 one-GPU placements put exactly 16 first choices on-prem."""

    def ask(i: int) -> dict[str, Any]:
        status, body = call(service_hub, "POST", "api/placements", HUB_TOKEN,
                            {"user": f"u{i}", "gpus": 1, "gpu_product": "NVIDIA-A100-SXM4-80GB"})  # fmt: skip
        assert status in (200, 409), body
        return body  # type: ignore[no-any-return]

    with ThreadPoolExecutor(20) as pool:
        answers = list(pool.map(ask, range(20)))
    firsts = [a["candidates"][0] if "candidates" in a else None for a in answers]
    onprem = [f for f in firsts if f and f["cluster"] == "onprem"]
    assert len(onprem) == 16
    per_node: dict[str, int] = {}
    for f in onprem:
        per_node[f["preferred_node"]] = per_node.get(f["preferred_node"], 0) + 1
    assert sorted(per_node.values()) == [8, 8]  # best fit: one node filled before the next
    refused = [a for a in answers if "candidates" not in a]
    assert len(refused) == 4  # this eks has no A100 pool: a clear "no" rather than a wait
    assert all(
        a["message"].startswith("No cluster can start 1 \u00d7 NVIDIA-A100-SXM4-80GB") for a in refused
    )
    for f in onprem:
        assert call(service_hub, "DELETE", f"api/placements/{f['reservation']}", HUB_TOKEN)[0] == 204
    assert call(service_hub, "DELETE", "api/placements/r-nosuch", HUB_TOKEN)[0] == 404


def test_where_a_server_runs(service_hub: HubProcess, hsim: SimProcess) -> None:
    erin = user_token(service_hub, "erin")
    frank = user_token(service_hub, "frank")
    service_hub.start_server("erin")
    service_hub.wait_ready("erin")
    try:
        deadline = time.monotonic() + 10
        while (status := call(service_hub, "GET", "api/servers/erin", erin))[0] != 200:
            assert time.monotonic() < deadline, status
            time.sleep(0.2)
        body = status[1]
        pod_ip = hsim.kubectl(
            "get", "pod", "-n", "jupyterhub", "jupyter-erin", "-o", "jsonpath={.status.podIP}"
        )
        assert (body["cluster"], body["pod"], body["ip"]) == ("onprem", "jupyter-erin", pod_ip.stdout)
        assert call(service_hub, "GET", "api/servers/erin", frank)[0] == 403  # not frank's to know
        assert call(service_hub, "GET", "api/servers/erin", HUB_TOKEN)[0] == 200  # the gateway's scope
        assert call(service_hub, "GET", "api/servers/frank", frank)[0] == 404
    finally:
        service_hub.stop_server("erin")


def test_metrics(service_hub: HubProcess) -> None:
    token = user_token(service_hub, "gina")
    assert call(service_hub, "GET", "metrics", token)[0] == 403  # needs read:metrics
    status, text = call(service_hub, "GET", "metrics", PROMETHEUS_TOKEN)
    assert status == 200, text
    assert 'hybridhub_gpus_total{cluster="onprem",product="NVIDIA-A100-SXM4-80GB"} 16.0' in text
    assert 'hybridhub_cluster_health{cluster="onprem",state="healthy"} 1.0' in text
    assert "hybridhub_placement_seconds_bucket" in text
    assert 'hybridhub_placements_total{cluster="onprem",outcome="placed"}' in text


def test_service_survives_a_cluster_outage(service_hub: HubProcess, hsim: SimProcess) -> None:
    token = user_token(service_hub, "hank")
    admin = hsim.admin("onprem")
    admin.set_faults(down=True)
    try:
        deadline = time.monotonic() + 20
        while True:
            body = call(service_hub, "GET", "api/capacity", token)[1]
            state = next(c for c in body["clusters"] if c["name"] == "onprem")["health"]
            if state == "down":
                break
            assert time.monotonic() < deadline, f"onprem never went down: {state}"
            time.sleep(0.3)
        status, answer = call(service_hub, "POST", "api/placements", HUB_TOKEN,
                              {"user": "hank", "gpus": 1, "gpu_product": "NVIDIA-L40S"})  # fmt: skip
        assert status == 200 and answer["candidates"][0]["cluster"] == "eks", answer
        assert "onprem is down" in answer["candidates"][0]["reason"]
        call(service_hub, "DELETE", f"api/placements/{answer['candidates'][0]['reservation']}", HUB_TOKEN)
    finally:
        admin.clear_faults()
    deadline = time.monotonic() + 30
    while True:
        body = call(service_hub, "GET", "api/capacity", token)[1]
        if next(c for c in body["clusters"] if c["name"] == "onprem")["health"] == "healthy":
            break
        assert time.monotonic() < deadline, "onprem never recovered"
        time.sleep(0.3)
    assert Path(service_hub.workdir).exists()
