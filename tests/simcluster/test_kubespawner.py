"""Unmodified KubeSpawner against simcluster's on-prem cluster: start, progress, poll, stop.

KubeSpawner loads the default kubeconfig (current context ``onprem``: a static token and the
simcluster CA) and talks to the emulated API over HTTPS like it talks to a real cluster. The pods
run in the ``simulated`` runtime: they go Running with a pod IP, which is all KubeSpawner reads.

These tests are marked ``hubcompat``: ``make test`` runs them a second time against the other
JupyterHub/KubeSpawner version pair (``.venv-hub6``).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.config import kube_config
from kubespawner import KubeSpawner, clients
from traitlets.config import Config

from simcluster.testing import SimProcess

pytestmark = [pytest.mark.hubcompat, pytest.mark.kubectl, pytest.mark.timeout(60)]

MakeSpawner = Callable[..., KubeSpawner]


@pytest_asyncio.fixture
async def make_spawner(
    sim: SimProcess, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[MakeSpawner]:
    """Builds KubeSpawners (``_mock=True``: a mock user and hub) in the test's namespace."""
    # kubernetes_asyncio reads $KUBECONFIG when it is imported, and kubespawner caches the loaded
    # configuration process-wide: point both at the simcluster kubeconfig and restore them after.
    monkeypatch.setenv("KUBECONFIG", str(sim.kubeconfig))
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(sim.kubeconfig))
    monkeypatch.setattr(Configuration, "_default", Configuration._default)
    clients.load_config.cache_clear()
    spawners: list[KubeSpawner] = []

    def make(**traits: Any) -> KubeSpawner:
        c = Config()
        c.KubeSpawner.namespace = namespace
        c.KubeSpawner.start_timeout = 30
        c.KubeSpawner.http_timeout = 30
        c.KubeSpawner.k8s_api_request_timeout = 5
        c.KubeSpawner.k8s_api_request_retry_timeout = 15
        for name, value in traits.items():
            setattr(c.KubeSpawner, name, value)
        spawner = KubeSpawner(config=c, _mock=True, api_token="abc123", oauth_client_id="unused")
        spawners.append(spawner)
        return spawner

    try:
        yield make
    finally:
        for spawner in spawners:
            try:
                if spawner.pod_reflector is not None and await spawner.poll() is None:
                    await spawner.stop(now=True)
            except Exception:  # the test already failed; leave the namespace to the fixture
                pass
        await KubeSpawner._stop_all_reflectors()
        clients.load_config.cache_clear()


def kubectl_json(sim: SimProcess, *args: str) -> dict[str, Any]:
    return dict(json.loads(sim.kubectl(*args, "-o", "json").stdout))


def pod_json(sim: SimProcess, spawner: KubeSpawner) -> dict[str, Any]:
    return kubectl_json(sim, "get", "pod", spawner.pod_name, "-n", spawner.namespace)


async def gone(sim: SimProcess, kind: str, name: str, namespace: str, within: float = 10.0) -> bool:
    """Whether ``kind/name`` disappears from the API in ``within`` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        out = await asyncio.to_thread(
            sim.kubectl, "get", kind, name, "-n", namespace, "--ignore-not-found", "-o", "name"
        )
        if not out.stdout.strip():
            return True
        await asyncio.sleep(0.2)
    return False


async def start_with_progress(spawner: KubeSpawner) -> tuple[str, list[dict[str, Any]]]:
    """Start the spawner the way JupyterHub does: ``start()``, then follow ``progress()`` until it ends."""
    start_future = spawner.start()
    events = [event async for event in spawner.progress()]
    url = await asyncio.wait_for(start_future, 40)
    return url, events


@pytest.mark.asyncio
async def test_start_progress_poll_stop(sim: SimProcess, make_spawner: MakeSpawner) -> None:
    spawner = make_spawner()
    url, events = await start_with_progress(spawner)

    pod = pod_json(sim, spawner)
    assert pod["status"]["phase"] == "Running"
    assert url == f"http://{pod['status']['podIP']}:8888"
    assert pod["metadata"]["labels"]["component"] == "singleuser-server"

    reasons = [e["raw_event"]["reason"] for e in events]
    for reason in ("Scheduled", "Pulled", "Started"):
        assert reason in reasons, reasons
    assert reasons.index("Scheduled") < reasons.index("Started")
    assert all(e["raw_event"]["involvedObject"]["name"] == spawner.pod_name for e in events)
    scheduled = next(e for e in events if e["raw_event"]["reason"] == "Scheduled")
    assert f"{spawner.namespace}/{spawner.pod_name}" in scheduled["message"]
    assert scheduled["message"].startswith(scheduled["raw_event"]["lastTimestamp"])
    assert [e["progress"] for e in events] == sorted(e["progress"] for e in events)

    assert await spawner.poll() is None
    await spawner.stop()
    assert await spawner.poll() is not None
    assert await gone(sim, "pod", spawner.pod_name, spawner.namespace, within=1)


@pytest.mark.asyncio
async def test_services_and_pvc(sim: SimProcess, make_spawner: MakeSpawner) -> None:
    spawner = make_spawner(services_enabled=True, storage_pvc_ensure=True, storage_capacity="1Gi")
    url = await asyncio.wait_for(spawner.start(), 40)
    ns = spawner.namespace
    assert url == f"http://{spawner.pod_name}.{ns}.svc.cluster.local:8888"

    pvc = kubectl_json(sim, "get", "pvc", spawner.pvc_name, "-n", ns)
    assert pvc["status"]["phase"] == "Bound"
    assert pvc["status"]["capacity"]["storage"] == "1Gi"
    assert pvc["spec"]["storageClassName"] == "standard"

    pod = pod_json(sim, spawner)
    svc = kubectl_json(sim, "get", "service", spawner.pod_name, "-n", ns)
    assert svc["spec"]["selector"] == spawner._build_pod_labels(spawner._expand_all(spawner.extra_labels))
    assert svc["spec"]["ports"][0]["port"] == 8888
    owners = svc["metadata"]["ownerReferences"]
    assert [(o["kind"], o["name"], o["uid"]) for o in owners] == [
        ("Pod", spawner.pod_name, pod["metadata"]["uid"])
    ]

    assert await spawner.poll() is None
    await spawner.stop()
    assert await spawner.poll() is not None
    # the Service goes with its owner, the pod; the claim outlives the server
    assert await gone(sim, "service", spawner.pod_name, ns)
    assert kubectl_json(sim, "get", "pvc", spawner.pvc_name, "-n", ns)["status"]["phase"] == "Bound"
    await spawner.delete_forever()
    assert await gone(sim, "pvc", spawner.pvc_name, ns)


@pytest.mark.asyncio
async def test_survives_watch_expiry(sim: SimProcess, make_spawner: MakeSpawner) -> None:
    admin = sim.admin("onprem")
    spawner = make_spawner()
    start_future = spawner.start()
    # once the pod reflector holds the (still Pending) pod, expire every watch: the kubelet's
    # Running update must reach KubeSpawner through the relist that follows the 410
    deadline = time.monotonic() + 10
    while not (spawner.pod_reflector and spawner.pod_reflector.pods):
        assert time.monotonic() < deadline, "the pod never reached the reflector"
        await asyncio.sleep(0.02)
    before = await asyncio.to_thread(admin.last_request)
    assert await asyncio.to_thread(admin.expire_watches) >= 2  # at least the pod and event watches
    await asyncio.wait_for(start_future, 40)
    assert await spawner.poll() is None

    # and again between start and stop: stop waits for the pod to leave the reflector
    assert await asyncio.to_thread(admin.expire_watches) >= 2
    await spawner.stop()
    assert await spawner.poll() is not None
    assert await gone(sim, "pod", spawner.pod_name, spawner.namespace, within=1)

    pods_path = f"/api/v1/namespaces/{spawner.namespace}/pods"
    pod_requests = [r for r in await asyncio.to_thread(admin.requests, before) if r["path"] == pods_path]
    relists = [r for r in pod_requests if r["method"] == "GET" and not r["watch"]]
    watches = [r for r in pod_requests if r["watch"]]
    assert relists, pod_requests  # the reflector listed again after the 410s ...
    assert all(r["query"].get("resourceVersion") for r in watches)  # ... and resumed from the list
    assert len(watches) >= 2


@pytest.mark.asyncio
async def test_gpu_request_lands_on_gpu_node(sim: SimProcess, make_spawner: MakeSpawner) -> None:
    spawner = make_spawner(
        extra_resource_limits={"nvidia.com/gpu": "1"},
        node_selector={"nvidia.com/gpu.product": "NVIDIA-L40S"},
    )
    await asyncio.wait_for(spawner.start(), 40)
    pod = pod_json(sim, spawner)
    limits = pod["spec"]["containers"][0]["resources"]["limits"]
    assert limits["nvidia.com/gpu"] == "1"
    node = kubectl_json(sim, "get", "node", pod["spec"]["nodeName"])
    assert node["metadata"]["labels"]["nvidia.com/gpu.product"] == "NVIDIA-L40S"
    assert int(node["status"]["allocatable"]["nvidia.com/gpu"]) >= 1
    assert await spawner.poll() is None
    await spawner.stop()
    assert await spawner.poll() is not None
