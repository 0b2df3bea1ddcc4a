"""A HybridSpawner built in-process, as KubeSpawner's own tests build theirs: no hub, no root, no cluster.

The user and the hub are small stand-ins with the attributes JupyterHub's ``Spawner`` and KubeSpawner
read; the clusters come from ``ClusterSet.clusters`` and are never contacted, because nothing here
starts a pod, a watch or a client.
"""

from __future__ import annotations

from typing import Any

from jupyterhub.objects import Hub, Server
from traitlets.config import Config

from spawner.hybrid import HybridSpawner

__all__ = ["CLUSTERS", "StandInUser", "make_spawner"]

A100 = "NVIDIA-A100-SXM4-80GB"
L40S = "NVIDIA-L40S"
GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

# One cluster of each kind the attempt builder knows: a fixed on-prem pool with a PVC home, an
# elastic EKS pool with a gp3 home, a cloud cluster reached through a per-user LoadBalancer Service,
# and a second on-prem site whose home is an NFS export.
CLUSTERS: list[dict[str, Any]] = [
    {
        "name": "onprem",
        "role": "onprem",
        "namespace": "jupyterhub",
        "hub_connect_url": "http://hub.jupyterhub.svc:8081",
        "home_storage": {"kind": "pvc", "size": "10Gi"},
        "pools": [
            {"name": "dgx", "node_selector": {"nvidia.com/gpu.product": A100}, "tolerations": [GPU_TAINT]},
            {"name": "l40s", "node_selector": {"nvidia.com/gpu.product": L40S}},
        ],
    },
    {
        "name": "eks",
        "role": "cloud",
        "kubeconfig": "/etc/hybridhub/eks.kubeconfig",
        "namespace": "notebooks",
        "hub_connect_url": "https://hub.example.org",
        "home_storage": {"kind": "pvc", "size": "50Gi", "storage_class": "gp3"},
        "pools": [
            {
                "name": "gpu-l40s",
                "elastic": True,
                "max_nodes": 4,
                "gpus_per_node": 4,
                "gpu_product": L40S,
                "node_selector": {"eks.amazonaws.com/nodegroup": "gpu-l40s"},
                "tolerations": [{"key": "nvidia.com/gpu", "value": "true", "effect": "NoSchedule"}],
            }
        ],
    },
    {
        "name": "eks-public",
        "role": "cloud",
        "kubeconfig": "/etc/hybridhub/eks-public.kubeconfig",
        "namespace": "notebooks",
        "hub_connect_url": "https://hub.example.org",
        "pod_access": "service",
        "service_type": "LoadBalancer",
        "home_storage": {"kind": "none"},
        "pools": [{"name": "cpu"}],
    },
    {
        "name": "lab",
        "role": "onprem",
        "kubeconfig": "/etc/hybridhub/lab.kubeconfig",
        "namespace": "jupyterhub",
        "hub_connect_url": "http://10.20.0.5:8081",
        "home_storage": {"kind": "nfs", "nfs_server": "nas.lab", "nfs_path": "/export/home"},
        "pools": [{"name": "l40s"}],
    },
]


class StandInUser:
    """What JupyterHub's Spawner and KubeSpawner read of ``spawner.user``."""

    def __init__(self, name: str = "ann", uid: int = 7) -> None:
        self.name = name
        self.id = uid
        self.escaped_name = name
        self.url = f"/user/{name}/"
        self.server = Server(base_url=self.url)
        self.spawners: dict[str, Any] = {}


def make_spawner(
    user: str = "ann", user_options: dict[str, Any] | None = None, **settings: Any
) -> HybridSpawner:
    """A HybridSpawner with ``CLUSTERS`` and, as ``HybridSpawner`` configuration, ``settings``;
    ``user_options`` as JupyterHub passes the saved ones to a new spawner. Call it with an event loop
    running: KubeSpawner makes its client in ``__init__`` when the machine has a default kubeconfig."""
    config = Config()
    config.ClusterSet.clusters = CLUSTERS
    config.HybridSpawner.image = "quay.io/jupyter/base-notebook:2025-01-06"
    config.HybridSpawner.hub_instance = "research-hub"  # not the machine's default: the same everywhere
    for name, value in settings.items():
        config.HybridSpawner[name] = value
    return HybridSpawner(
        config=config,
        user=StandInUser(user),
        hub=Hub(base_url="/hub/"),
        api_token="golden-api-token",
        oauth_client_id=f"jupyterhub-user-{user}",
        user_options=user_options or {},
    )
