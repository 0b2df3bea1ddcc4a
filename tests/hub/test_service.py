"""The hybridhub service as a JupyterHub managed service: capacity, placements, server lookup, metrics."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from simcluster.testing import SimProcess
from tests.harness.hub import HubProcess
from tests.harness.metrics import service_metrics, value
from tests.harness.service_api import call, cluster_health, user_token
from tests.harness.waits import wait_for


def token_of(hub: HubProcess) -> str:
    return str(hub.wiring.hub_token)


@pytest.fixture
def reservations(service_hub: HubProcess) -> Iterator[list[str]]:
    """Reservations a test makes, released afterwards whether it passed or not: a failed test must
    not leave GPUs held (until their TTL) that the module's later tests count as free."""
    made: list[str] = []
    yield made
    for reservation in made:  # a test that released its own gets 404 here
        status, body = call(service_hub, "DELETE", f"api/placements/{reservation}", token_of(service_hub))
        assert status in (204, 404), body


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
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "tenant", "namespace": "default"},
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": "NVIDIA-L40S"},
            "containers": [
                {
                    "name": "c",
                    "image": "x",
                    "command": ["sleep", "600"],
                    "resources": {"limits": {"nvidia.com/gpu": 3}},
                }
            ],
        },
    }
    hsim.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(pod))
    try:

        def l40s_free() -> int:
            body = call(service_hub, "GET", "api/capacity", token)[1]
            onprem = next(c for c in body["clusters"] if c["name"] == "onprem")
            return int({p["product"]: p["free"] for p in onprem["products"]}["NVIDIA-L40S"])

        wait_for("free L40S on-prem to follow the tenant pod", l40s_free, 10, until=lambda n: n == before - 3)
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
    hub_token = token_of(service_hub)
    status, answer = call(service_hub, "POST", "api/placements", hub_token, body)
    assert status == 400 and text in answer["message"], answer


def test_concurrent_placements_reserve_distinct_gpus(
    service_hub: HubProcess, reservations: list[str]
) -> None:
    """16 A100s free on-prem: 20 one-GPU placements put exactly 16 first choices on-prem."""
    hub_token = token_of(service_hub)

    def ask(i: int) -> dict[str, Any]:
        status, body = call(
            service_hub,
            "POST",
            "api/placements",
            hub_token,
            {"user": f"u{i}", "gpus": 1, "gpu_product": "NVIDIA-A100-SXM4-80GB"},
        )
        reservations.extend(c["reservation"] for c in body.get("candidates", []) if c.get("reservation"))
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
        assert call(service_hub, "DELETE", f"api/placements/{f['reservation']}", hub_token)[0] == 204
    assert call(service_hub, "DELETE", "api/placements/r-nosuch", hub_token)[0] == 404


def test_where_a_server_runs(service_hub: HubProcess, hsim: SimProcess) -> None:
    hub_token = token_of(service_hub)
    erin = user_token(service_hub, "erin")
    frank = user_token(service_hub, "frank")
    service_hub.start_server("erin")
    service_hub.wait_ready("erin")
    try:
        _, body = wait_for(
            "the service to know where erin's server runs",
            lambda: call(service_hub, "GET", "api/servers/erin", erin),
            10,
            until=lambda answer: answer[0] == 200,
        )
        pod_ip = hsim.kubectl(
            "get", "pod", "-n", "jupyterhub", "jupyter-erin", "-o", "jsonpath={.status.podIP}"
        )
        assert (body["cluster"], body["pod"], body["ip"]) == ("onprem", "jupyter-erin", pod_ip.stdout)
        assert call(service_hub, "GET", "api/servers/erin", frank)[0] == 403  # not frank's to know
        assert call(service_hub, "GET", "api/servers/erin", hub_token)[0] == 200  # the gateway's scope
        assert call(service_hub, "GET", "api/servers/frank", frank)[0] == 404
    finally:
        service_hub.stop_server("erin")


def test_metrics(service_hub: HubProcess, reservations: list[str]) -> None:
    token = user_token(service_hub, "gina")
    assert call(service_hub, "GET", "metrics", token)[0] == 403  # needs read:metrics
    status, text = call(service_hub, "GET", "metrics", service_hub.wiring.prometheus_token)
    assert status == 200, text
    assert value(text, "hybridhub_gpus_total", cluster="onprem", product="NVIDIA-A100-SXM4-80GB") == 16
    assert value(text, "hybridhub_cluster_health", cluster="onprem", state="healthy") == 1
    placed = {"cluster": "onprem", "outcome": "placed"}
    before = value(text, "hybridhub_placements_total", **placed)
    timed = value(text, "hybridhub_placement_seconds_count")
    status, answer = call(
        service_hub, "POST", "api/placements", token_of(service_hub), {"user": "gina", "gpus": 1}
    )
    assert status == 200 and answer["candidates"][0]["cluster"] == "onprem", answer
    reservations.extend(c["reservation"] for c in answer["candidates"] if c.get("reservation"))
    after = service_metrics(service_hub)
    assert value(after, "hybridhub_placements_total", **placed) == before + 1
    assert value(after, "hybridhub_placement_seconds_count") == timed + 1


def test_service_survives_a_cluster_outage(
    service_hub: HubProcess, hsim: SimProcess, reservations: list[str]
) -> None:
    """With on-prem's API down, the service goes on: it reports on-prem DOWN and places on eks; once
    on-prem answers again, it reports it healthy. The hub never had to restart it."""
    hub_token = token_of(service_hub)
    admin = hsim.admin("onprem")
    admin.set_faults(down=True)
    try:
        wait_for(
            "the service to report onprem down",
            lambda: cluster_health(service_hub, "onprem"),
            20,
            until=lambda state: state == "down",
        )
        status, answer = call(
            service_hub,
            "POST",
            "api/placements",
            hub_token,
            {"user": "hank", "gpus": 1, "gpu_product": "NVIDIA-L40S"},
        )
        assert status == 200, answer
        reservations.extend(c["reservation"] for c in answer["candidates"] if c.get("reservation"))
        assert answer["candidates"][0]["cluster"] == "eks", answer
        assert "onprem is down" in answer["candidates"][0]["reason"]
    finally:
        admin.clear_faults()
    wait_for(
        "the service to report onprem healthy again",
        lambda: cluster_health(service_hub, "onprem"),
        30,
        until=lambda state: state == "healthy",
    )
    assert "Service hybridhub exited" not in service_hub.log_text()  # JupyterHub restarts one that dies
