"""HybridSpawner in a real hub: placement through the service, fallback to EKS, readable refusals."""

from __future__ import annotations

import json
import time
import urllib.error
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from simcluster.testing import SimProcess
from tests.harness.hub import HubProcess
from tests.harness.metrics import hub_metrics, service_metrics, value
from tests.harness.service_api import cluster_health
from tests.harness.waits import wait_for

pytestmark = pytest.mark.hubcompat  # runs again on JupyterHub 6 + KubeSpawner 7.1 (make pytest-hub6)

L40S = "NVIDIA-L40S"


def pod_of(sim: SimProcess, user: str, context: str) -> dict[str, Any] | None:
    out = sim.kubectl(
        "get", "pod", "-n", "jupyterhub", f"jupyter-{user}", "-o", "json", context=context, check=False
    )
    return json.loads(out.stdout) if out.returncode == 0 else None


def state_of(hub: HubProcess, user: str) -> dict[str, Any]:
    return dict(hub.user(user)["servers"][""].get("state") or {})


def placed(hub: HubProcess, cluster: str, reason: str) -> float:
    """HybridSpawner's count of spawns placed on ``cluster`` for ``reason`` (the hub's /hub/metrics)."""
    return value(hub_metrics(hub), "hybridhub_spawn_placements_total", cluster=cluster, reason=reason)


def fallbacks(hub: HubProcess) -> float:
    """Spawn attempts abandoned for the next candidate, on any cluster."""
    return value(hub_metrics(hub), "hybridhub_spawn_fallbacks_total")


def tenant(sim: SimProcess, name: str, gpus: int, product: str) -> None:
    """Another tenant's (non-notebook) pod on-prem taking GPUs of one product."""
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {
            "nodeSelector": {"nvidia.com/gpu.product": product},
            "containers": [
                {
                    "name": "c",
                    "image": "x",
                    "command": ["sleep", "600"],
                    "resources": {"limits": {"nvidia.com/gpu": gpus}},
                }
            ],
        },
    }
    sim.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(pod))
    sim.kubectl("wait", "--for=condition=Ready", f"pod/{name}", "-n", "default", "--timeout=30s")


def test_a_gpu_server_lands_on_prem_on_the_best_fit_node(hybrid_hub: HubProcess, hsim: SimProcess) -> None:
    hybrid_hub.create_user("ann")
    before = placed(hybrid_hub, "onprem", "on-prem")
    hybrid_hub.start_server("ann", {"gpus": 2, "gpu_product": L40S})
    hybrid_hub.wait_ready("ann")
    try:
        pod = pod_of(hsim, "ann", "onprem")
        assert pod is not None, "the server is not on-prem"
        assert pod["spec"]["nodeName"].startswith("l40s-")
        limits = pod["spec"]["containers"][0]["resources"]["limits"]
        assert limits["nvidia.com/gpu"] == "2"
        assert state_of(hybrid_hub, "ann")["hybridhub"] == {"version": 2, "cluster": "onprem"}
        assert pod["status"]["podIP"].startswith("10.240.")
        status, body = hybrid_hub.proxy_get("/user/ann/api")
        assert status == 200, body
        assert "has 4 free NVIDIA-L40S (best fit)" in hybrid_hub.log_text()
        assert placed(hybrid_hub, "onprem", "on-prem") == before + 1
    finally:
        hybrid_hub.stop_server("ann")
    assert pod_of(hsim, "ann", "onprem") is None
    # a second spawn of the same server starts from the configuration again: one hook volume, one
    # node-affinity term per node it names (Kubernetes takes one name per requirement), the same
    # home claim
    hybrid_hub.start_server("ann", {"gpus": 1, "gpu_product": L40S})
    hybrid_hub.wait_ready("ann")
    try:
        again = pod_of(hsim, "ann", "onprem")
        assert again is not None
        names = [v["name"] for v in again["spec"]["volumes"]]
        assert names.count("scratch") == 1 and names.count("hybridhub-home") == 1, names
        terms = again["spec"]["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
        nodes = [t["matchFields"][0]["values"][0] for t in terms["nodeSelectorTerms"]]
        one_each = [
            {"matchFields": [{"key": "metadata.name", "operator": "In", "values": [n]}]} for n in nodes
        ]
        assert terms["nodeSelectorTerms"] == one_each and len(set(nodes)) == len(nodes), terms
        claims = {
            v["persistentVolumeClaim"]["claimName"]
            for v in again["spec"]["volumes"]
            if "persistentVolumeClaim" in v
        }
        assert claims == {"claim-ann"}
    finally:
        hybrid_hub.stop_server("ann")


def test_with_on_prem_out_of_the_product_the_server_runs_on_eks(
    hybrid_hub: HubProcess, hsim: SimProcess
) -> None:
    tenant(hsim, "hog-1", 4, L40S)
    tenant(hsim, "hog-2", 4, L40S)
    try:
        hybrid_hub.create_user("ben")
        before = placed(hybrid_hub, "eks", "burst")
        events = hybrid_hub.start_and_follow("ben", {"gpus": 4, "gpu_product": L40S})
        messages = [e.get("message", "") for e in events]  # what the spawn page shows
        hybrid_hub.wait_ready("ben", timeout=120)
        pod = pod_of(hsim, "ben", "eks")
        assert pod is not None and pod_of(hsim, "ben", "onprem") is None
        node = pod["spec"]["nodeName"]
        assert node.startswith("ip-") and node.endswith(".ec2.internal")  # a node the pool added
        assert state_of(hybrid_hub, "ben")["hybridhub"]["cluster"] == "eks"
        assert placed(hybrid_hub, "eks", "burst") == before + 1
        why = next((m for m in messages if "starting on eks" in m), f"not in {messages}")
        assert why.startswith(
            "onprem has no node with 4 free NVIDIA-L40S (8 in total, 0 free): starting on eks"
        )
        assert why.endswith(
            "; your onprem home is not mounted on eks; you get eks's own home there "
            "(a 1Gi volume (gp3)), separate from the one on onprem"
        )
        assert "eks is adding a node to pool gpu-l40s; this takes a few minutes" in messages
        assert any("Pulling image" in m for m in messages), messages  # image pulls are progress
        # eks's own home: a gp3 claim there, mounted at the home path; the pre_spawn_hook's scratch
        # volume and label (tests/hub/conftest.py) survive the attempt's settings
        mounts = {m["name"]: m["mountPath"] for m in pod["spec"]["containers"][0]["volumeMounts"]}
        assert mounts["hybridhub-home"] == "/home/jovyan" and mounts["scratch"] == "/scratch"
        assert "home" not in mounts  # the configured home mount gave way
        assert pod["metadata"]["labels"]["team"] == "ml"
        assert pod["metadata"]["labels"]["hybridhub.io/cluster"] == "eks"
        claim = next(v for v in pod["spec"]["volumes"] if v["name"] == "hybridhub-home")
        name = claim["persistentVolumeClaim"]["claimName"]
        pvc = json.loads(
            hsim.kubectl("get", "pvc", "-n", "jupyterhub", name, "-o", "json", context="eks").stdout
        )
        assert pvc["spec"]["storageClassName"] == "gp3" and pvc["status"]["phase"] == "Bound"
        # the hub reaches the server through its LoadBalancer Service (no pod IP from outside the VPC)
        svc = json.loads(
            hsim.kubectl(
                "get", "service", "-n", "jupyterhub", "jupyter-ben", "-o", "json", context="eks"
            ).stdout
        )
        assert svc["spec"]["type"] == "LoadBalancer"
        address = svc["status"]["loadBalancer"]["ingress"][0]["ip"]
        assert f"Adding user ben to proxy /user/ben/ => http://{address}:8888" in hybrid_hub.log_text()
        assert state_of(hybrid_hub, "ben")["hybridhub"]["access_url"] == f"http://{address}:8888"
        # A poll (every 2 s, up to 10 % later) keeps the address: no "url changed" to the cluster DNS
        # name. Nothing marks a poll that changed nothing, so a poll interval and more must pass.
        time.sleep(2.5)
        assert "url changed" not in hybrid_hub.log_text()
        assert hybrid_hub.proxy_get("/user/ben/api")[0] == 200
        hybrid_hub.stop_server("ben")
        assert pod_of(hsim, "ben", "eks") is None
    finally:
        for name in ("hog-1", "hog-2"):
            hsim.kubectl("delete", "pod", name, "-n", "default", "--grace-period=0", "--force", check=False)


@pytest.mark.parametrize(
    ("options", "text"),
    [
        ({"gpus": -1}, "gpus cannot be negative"),
        ({"gpus": 99}, "at most 8"),
        ({"gpus": "two"}, "gpus must be a whole number"),
        ({"gpus": 1, "cluster": "mars"}, "Unknown cluster 'mars'"),
        ({"gpus": 1, "gpu_product": "NVIDIA-Z9000"}, "No cluster has NVIDIA-Z9000"),
        ({"colour": "red"}, "Unknown option(s) colour"),
    ],
)
def test_bad_options_are_refused_readably(
    hybrid_hub: HubProcess, hsim: SimProcess, options: dict[str, Any], text: str
) -> None:
    hybrid_hub.create_user("cid")
    with pytest.raises(urllib.error.HTTPError) as err:
        hybrid_hub.start_server("cid", options)
    message = json.loads(err.value.read())["message"]
    assert text in message, message
    for context in ("onprem", "eks"):
        assert pod_of(hsim, "cid", context) is None


def test_the_spawn_form_shows_live_availability(hybrid_hub: HubProcess) -> None:
    session = hybrid_hub.login("ida")
    with session.open(f"{hybrid_hub.public_url}/hub/spawn", timeout=30) as resp:
        html = resp.read().decode()
        assert resp.status == 200
    assert 'name="gpus"' in html and 'name="gpu_product"' in html and 'name="cluster"' in html
    assert 'value="NVIDIA-L40S"' in html and 'value="onprem"' in html and 'value="eks"' in html
    assert "availability unavailable" not in html.lower()


def test_a_pod_an_earlier_hub_left_behind_is_removed(hybrid_hub: HubProcess, hsim: SimProcess) -> None:
    """dora's pod on eks is from a start the hub never finished (it died). The service sees it there
    and says so in its placement answer; the spawn, which goes on-prem, removes it."""
    labels = {
        "component": "singleuser-server",
        "hub.jupyter.org/username": "dora",
        "hybridhub.io/cluster": "eks",
    }
    meta = {"name": "jupyter-dora", "namespace": "jupyterhub", "labels": labels}
    sleeper = [{"name": "notebook", "image": "x", "command": ["sleep", "600"]}]
    stray = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": sleeper}}
    hsim.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(stray), context="eks")
    hybrid_hub.create_user("dora")
    hybrid_hub.start_server("dora", {"gpus": 1, "gpu_product": L40S})
    hybrid_hub.wait_ready("dora")
    try:
        assert pod_of(hsim, "dora", "onprem") is not None
        hsim.kubectl(
            "wait", "--for=delete", "pod/jupyter-dora", "-n", "jupyterhub", "--timeout=20s", context="eks"
        )
    finally:
        hybrid_hub.stop_server("dora")


def test_a_hub_restart_keeps_track_of_the_cluster(hybrid_hub: HubProcess, hsim: SimProcess) -> None:
    hybrid_hub.create_user("eve")
    hybrid_hub.start_server("eve", {"gpus": 0, "cluster": "eks"})
    hybrid_hub.wait_ready("eve")
    assert pod_of(hsim, "eve", "eks") is not None
    hybrid_hub.stop()
    hybrid_hub.start()  # same database: the spawner's state says eks
    assert hybrid_hub.user("eve")["servers"][""]["ready"]
    wait_for(  # the new hub adds the proxy route again
        "the proxy to route /user/eve/ again",
        lambda: hybrid_hub.proxy_get("/user/eve/api")[0],
        20,
        until=lambda status: status == 200,
        every=0.3,
        explain=hybrid_hub.log_tail,
    )
    hybrid_hub.stop_server("eve")
    assert pod_of(hsim, "eve", "eks") is None


def test_a_hub_killed_mid_fallback_leaves_no_pod_behind_once_it_is_back(
    hybrid_hub: HubProcess, hsim: SimProcess
) -> None:
    """The hub (and its service) are SIGKILLed while ivy's server starts on eks, after on-prem could
    not take it: its pod exists there, and the first attempt's on-prem pod is still there too (the
    dead hub never deleted it). JupyterHub saved nothing of this start, so once the hub is back the
    service's sweep removes both pods; kit's server, running all along, is untouched.

    A second of eks API latency holds the start after the pod's create (the per-user Service is made
    and read next, one call at a time), so the kill lands in the middle of it. Not more: the service
    calls a cluster that slow DEGRADED, and an attempt whose pod is not seen within
    attempt_create_timeout (6 s) on a cluster the service does not call healthy is given up."""
    hybrid_hub.create_user("kit")
    hybrid_hub.start_server("kit", {"gpus": 0, "cluster": "onprem"})
    hybrid_hub.wait_ready("kit")
    kit = pod_of(hsim, "kit", "onprem")
    assert kit is not None
    hybrid_hub.create_user("ivy")
    eks = hsim.admin("eks")
    since = eks.last_request()
    eks.set_faults(latency=1.0)
    try:
        with ThreadPoolExecutor(1) as pool:
            pool.submit(hybrid_hub.start_server, "ivy", {"gpus": 1, "gpu_product": L40S, "cluster": "eks"})
            # the pod's create has been answered once KubeSpawner turns to the per-user Service
            wait_for(
                "ivy's start to reach the per-user Service on eks",
                lambda: any("/services" in r["path"] for r in eks.requests(since)),
                30,
                every=0.05,
                explain=hybrid_hub.log_tail,
            )
            ivy = hybrid_hub.user("ivy")["servers"][""]
            assert ivy["pending"] == "spawn" and not ivy["ready"], ivy
            hybrid_hub.kill()
    finally:
        eks.clear_faults()
    pod = pod_of(hsim, "ivy", "eks")
    assert pod is not None
    # the earlier attempt's pod on-prem, as HybridSpawner made it (same name, labels, annotations)
    meta = {k: pod["metadata"][k] for k in ("name", "namespace", "labels", "annotations")}
    meta["labels"] = {**meta["labels"], "hybridhub.io/cluster": "onprem"}
    sleeper = [{"name": "notebook", "image": "x", "command": ["sleep", "600"]}]
    first = {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": sleeper}}
    hsim.kubectl("apply", "--validate=false", "-f", "-", input=json.dumps(first), context="onprem")
    hybrid_hub.start()
    try:
        wait_for(
            "the service's sweep to remove ivy's pods on both clusters",
            lambda: pod_of(hsim, "ivy", "eks") is None and pod_of(hsim, "ivy", "onprem") is None,
            30,
            every=0.3,
            explain=hybrid_hub.log_tail,
        )
        # the service started with the hub: its counter holds this sweep's removals only
        removed = [line for line in hybrid_hub.log_text().splitlines() if "removed leftover pod" in line]
        assert value(service_metrics(hybrid_hub), "hybridhub_leftover_pods_removed_total") == 2, removed
        assert not hybrid_hub.user("ivy")["servers"]
        still = pod_of(hsim, "kit", "onprem")
        assert still is not None and still["metadata"]["uid"] == kit["metadata"]["uid"]
        assert hybrid_hub.user("kit")["servers"][""]["ready"]
    finally:
        hybrid_hub.stop_server("kit")


def test_on_prem_down_new_spawns_go_to_eks_and_running_servers_stay(
    hybrid_hub: HubProcess, hsim: SimProcess
) -> None:
    """On-prem's API goes down. A spawn at once ends on eks (placed on-prem, whose attempt fails,
    or on eks if the service already saw a failed probe). Once the service reports on-prem DOWN
    (three unanswered probes; one makes it only degraded), a spawn is placed on eks straight away:
    its reason says "down", no attempt goes to on-prem and no fallback is counted. The server
    running on-prem all along stays, in the hub and in the cluster. When on-prem is back and the
    service reports it healthy, spawns go there again."""
    hybrid_hub.create_user("fay")
    hybrid_hub.start_server("fay", {"gpus": 1, "gpu_product": L40S})
    hybrid_hub.wait_ready("fay")
    assert pod_of(hsim, "fay", "onprem") is not None
    admin = hsim.admin("onprem")
    for user in ("gus", "gil", "hal"):
        hybrid_hub.create_user(user)
    admin.set_faults(down=True)
    try:
        hybrid_hub.start_server("gus", {"gpus": 1, "gpu_product": L40S})
        hybrid_hub.wait_ready("gus", timeout=120)
        assert state_of(hybrid_hub, "gus")["hybridhub"]["cluster"] == "eks"
        wait_for(
            "the service to report onprem down",
            lambda: cluster_health(hybrid_hub, "onprem"),
            30,
            until=lambda state: state == "down",
            explain=hybrid_hub.log_tail,
        )
        fell_back = fallbacks(hybrid_hub)
        events = hybrid_hub.start_and_follow("gil", {"gpus": 1, "gpu_product": L40S})
        hybrid_hub.wait_ready("gil", timeout=120)
        assert state_of(hybrid_hub, "gil")["hybridhub"]["cluster"] == "eks"
        messages = [e.get("message", "") for e in events]
        why = [m for m in messages if m.startswith("onprem is ")]  # "onprem is down (...): ip-... on eks has"
        assert len(why) == 1 and why[0].startswith("onprem is down") and " on eks " in why[0], messages
        assert "onprem failed" not in " ".join(messages)
        assert fallbacks(hybrid_hub) == fell_back
        # The claim is "still there after the hub's polls": nothing marks a poll that found the pod
        # in the (stale) reflector cache, so let two poll intervals (2 s each, up to 10 % later) pass.
        time.sleep(5)
        fay = hybrid_hub.user("fay")["servers"].get("")
        assert fay and fay["ready"], "the hub forgot a server because its cluster was unreachable"
    finally:
        admin.clear_faults()
    assert pod_of(hsim, "fay", "onprem") is not None  # untouched
    for user in ("gus", "gil"):
        hybrid_hub.stop_server(user)
    wait_for(
        "the service to report onprem healthy again",
        lambda: cluster_health(hybrid_hub, "onprem"),
        30,
        until=lambda state: state == "healthy",
        explain=hybrid_hub.log_tail,
    )
    hybrid_hub.start_server("hal", {"gpus": 1, "gpu_product": L40S})  # back: new spawns go on-prem
    hybrid_hub.wait_ready("hal")
    assert state_of(hybrid_hub, "hal")["hybridhub"]["cluster"] == "onprem"
    for user in ("hal", "fay"):
        hybrid_hub.stop_server(user)
