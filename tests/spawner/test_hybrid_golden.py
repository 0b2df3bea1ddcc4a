"""Golden manifests of HybridSpawner's pods per cluster kind, made in-process by KubeSpawner itself.

Each case applies one attempt to a real HybridSpawner (tests/spawner/in_process.py) and compares
what KubeSpawner would send to the cluster with a YAML file under tests/golden/pods/.
``HYBRIDHUB_REGEN_GOLDEN=1`` rewrites the files; review the diff before committing it.
"""

from __future__ import annotations

import inspect
import os
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes.client import ApiClient  # the sync client: no aiohttp session to leave open
from kubespawner import KubeSpawner
from kubespawner.objects import make_owner_reference

from spawner.spawning.attempt import Candidate
from spawner.spawning.compat import SpawnRefused
from spawner.spawning.options import GpuOptions
from tests.spawner.in_process import A100, L40S, make_spawner

REGEN = os.environ.get("HYBRIDHUB_REGEN_GOLDEN") == "1"
GOLDEN = Path(__file__).parents[1] / "golden" / "pods"
# KubeSpawner stamps its own and JupyterHub's versions on what it makes: not ours to pin
VERSION_ANNOTATIONS = ("hub.jupyter.org/kubespawner-version", "hub.jupyter.org/jupyterhub-version")

# What an operator configures, as zero-to-jupyterhub does: a claim per user as home, scratch space,
# resources, a label, and annotations for the per-user load balancer.
CONFIGURED: dict[str, Any] = {
    "volumes": [
        {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}},
        {"name": "scratch", "emptyDir": {}},
    ],
    "volume_mounts": [
        {"name": "home", "mountPath": "/home/jovyan"},
        {"name": "scratch", "mountPath": "/scratch"},
    ],
    "storage_pvc_ensure": True,
    "storage_capacity": "1Gi",
    "cpu_limit": 8.0,
    "cpu_guarantee": 1.0,
    "mem_limit": "64G",
    "mem_guarantee": "8G",
    "extra_labels": {"team": "ml"},
    "service_annotations": {"service.beta.kubernetes.io/aws-load-balancer-scheme": "internal"},
}

CASES = {
    "fixed-pool": (
        Candidate("onprem", "dgx", nodes=("dgx-0", "dgx-1"), preferred_node="dgx-1"),
        GpuOptions(gpus=2, gpu_product=A100),
    ),
    "elastic-pool": (Candidate("eks", "gpu-l40s", elastic=True), GpuOptions(gpus=4, gpu_product=L40S)),
    "per-user-service": (Candidate("eks-public", "cpu"), GpuOptions(gpus=0, cluster="eks-public")),
    "nfs-home": (Candidate("lab", "l40s", nodes=("lab-gpu-0",)), GpuOptions(gpus=1)),
}


def serialise(obj: Any) -> dict[str, Any]:
    data: dict[str, Any] = ApiClient().sanitize_for_serialization(obj)
    annotations = data["metadata"].get("annotations") or {}
    for key in VERSION_ANNOTATIONS:
        if key in annotations:
            annotations[key] = "<version>"
    return data


def check_golden(name: str, data: dict[str, Any]) -> None:
    path = GOLDEN / name
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump(data, sort_keys=True, default_flow_style=False))
    assert path.exists(), f"{path} is missing: run with HYBRIDHUB_REGEN_GOLDEN=1 to write it"
    assert data == yaml.safe_load(path.read_text()), (
        f"differs from {path} (HYBRIDHUB_REGEN_GOLDEN=1 rewrites it)"
    )


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", sorted(CASES))
async def test_pod_manifest(kind: str) -> None:
    spawner = make_spawner(**CONFIGURED)
    candidate, opts = CASES[kind]
    spawner.apply_attempt(candidate, opts)
    check_golden(f"{kind}.yaml", serialise(await spawner.get_pod_manifest()))


@pytest.mark.asyncio
async def test_service_manifest_of_the_per_user_service_kind() -> None:
    spawner = make_spawner(**CONFIGURED)
    spawner.apply_attempt(*CASES["per-user-service"])
    owner = make_owner_reference(spawner.pod_name, "0c5b6a4e-2f7d-4d8e-9a51-3f0e7c1d2b9a")
    assert spawner.services_enabled
    # KubeSpawner 7.1 takes the port too; 7.0 reads it from the spawner
    port = (spawner.port,) if "port" in inspect.signature(KubeSpawner.get_service_manifest).parameters else ()
    check_golden("per-user-service.service.yaml", serialise(spawner.get_service_manifest(owner, *port)))


@pytest.mark.asyncio
async def test_claim_manifest_of_the_elastic_pools_home() -> None:
    spawner = make_spawner(**CONFIGURED)
    spawner.apply_attempt(*CASES["elastic-pool"])
    assert spawner.storage_pvc_ensure
    check_golden("elastic-pool.pvc.yaml", serialise(spawner.get_pvc_manifest()))


@pytest.mark.asyncio
@pytest.mark.parametrize("kind", sorted(CASES))
async def test_an_attempt_after_another_is_as_if_it_were_the_first(kind: str) -> None:
    """Each attempt starts from the spawn's values, never from the last attempt's (jupyterhub#3095)."""
    fresh = make_spawner(**CONFIGURED)
    fresh.apply_attempt(*CASES[kind])
    tried = make_spawner(**CONFIGURED)
    for other in sorted(CASES):
        tried.apply_attempt(*CASES[other])
    tried.apply_attempt(*CASES[kind])
    assert serialise(await tried.get_pod_manifest()) == serialise(await fresh.get_pod_manifest())


# SSH on: the server wrapped around the notebook's command, its port, the service's URL for the pod
SSH: dict[str, Any] = {
    "cmd": ["jupyterhub-singleuser"],
    "ssh_enabled": True,
    "pod_service_urls": {"onprem": "https://hub.example.org/services/hybridhub/"},
}


@pytest.mark.asyncio
async def test_pod_manifest_with_ssh() -> None:
    spawner = make_spawner(**CONFIGURED, **SSH)
    spawner.apply_attempt(*CASES["fixed-pool"])
    pod = serialise(await spawner.get_pod_manifest())
    notebook = pod["spec"]["containers"][0]
    assert notebook["args"][:4] == ["hybridhub", "ssh-server", "--port=2222", "--"]
    assert notebook["args"][4:] == ["jupyterhub-singleuser"]
    assert {"name": "ssh", "containerPort": 2222, "protocol": "TCP"} in notebook["ports"]
    env = {e["name"]: e.get("value") for e in notebook["env"]}
    assert env["HYBRIDHUB_SERVICE_URL"] == "https://hub.example.org/services/hybridhub/"
    assert env["KUBECONFIG"] == "/tmp/hybridhub/onprem/kubeconfig"
    check_golden("fixed-pool.ssh.yaml", pod)
    # a second manifest of the same spawn is wrapped once
    assert (await spawner.get_pod_manifest()).spec.containers[0].args == notebook["args"]


@pytest.mark.asyncio
async def test_the_ssh_port_is_never_on_a_per_user_service() -> None:
    spawner = make_spawner(**CONFIGURED, **SSH)
    spawner.apply_attempt(*CASES["per-user-service"])
    owner = make_owner_reference(spawner.pod_name, "0c5b6a4e-2f7d-4d8e-9a51-3f0e7c1d2b9a")
    port = (spawner.port,) if "port" in inspect.signature(KubeSpawner.get_service_manifest).parameters else ()
    service = serialise(spawner.get_service_manifest(owner, *port))
    assert [p["targetPort"] for p in service["spec"]["ports"]] == [spawner.port]
    # a cluster without a URL for the service: no variable, the SSH server then stays off in the pod
    env = {e.name for e in (await spawner.get_pod_manifest()).spec.containers[0].env}
    assert "HYBRIDHUB_SERVICE_URL" not in env and "KUBECONFIG" not in env


@pytest.mark.asyncio
async def test_ssh_needs_the_notebooks_command() -> None:
    spawner = make_spawner(**CONFIGURED, **{**SSH, "cmd": None})
    spawner.apply_attempt(*CASES["fixed-pool"])
    with pytest.raises(SpawnRefused, match=r"set c\.Spawner\.cmd"):
        await spawner.get_pod_manifest()
