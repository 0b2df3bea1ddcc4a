"""The clusters notebooks run in: the on-prem cluster first, then EKS with elastic GPU pools.

Read by the hub (z2jh's config.d loader) and by the hybridhub service (``--config`` of this file), so
both see the same clusters. How to reach each cluster and how its pods reach the hub are settings,
``HYBRIDHUB_<CLUSTER>_*`` in the environment the Helm chart gives the hub container (``hub.extraEnv``
in ../values.yaml); nothing secret is in this file.
"""

import os
from typing import Any

# `c` is the shared config object the loader runs this file with; not `c = get_config()`: z2jh's
# loader has its own get_config(key), a Helm values lookup (see ../jupyterhub_config.py)
c = c  # noqa: F821

IN_CLUSTER = "in-cluster"  # a KUBECONFIG setting's value for the hub pod's own service account
HUB_SERVICE_URL = "http://hub:8081"  # the chart's hub Service, as pods of the hub's namespace reach it


def setting(name: str, default: str = "") -> str:
    """The one place this file reads the environment: unset or empty means the default."""
    return os.environ.get(name) or default


def access(cluster: str, kubeconfig: str) -> dict[str, Any]:
    """How the hub reaches ``cluster``'s API, and its pods the hub, from HYBRIDHUB_<CLUSTER>_*.

    ``kubeconfig`` is the default of HYBRIDHUB_<CLUSTER>_KUBECONFIG: a path, or ``in-cluster``. The
    cluster the hub runs in defaults to the hub's namespace, and its pods reach the hub through the
    hub's Service; a cluster reached through a kubeconfig must be told the hub's URL.
    """
    prefix = f"HYBRIDHUB_{cluster.upper()}_"
    path = setting(f"{prefix}KUBECONFIG", kubeconfig)
    context = setting(f"{prefix}CONTEXT") or None  # None: the kubeconfig's current-context
    in_cluster = path == IN_CLUSTER
    if in_cluster and context:
        raise ValueError(
            f"10-clusters.py: {prefix}CONTEXT is set but {prefix}KUBECONFIG is {IN_CLUSTER}: "
            "a context needs a kubeconfig"
        )
    hub_url = setting(f"{prefix}HUB_URL", HUB_SERVICE_URL if in_cluster else "")
    if not hub_url:
        raise ValueError(
            f"10-clusters.py: set {prefix}HUB_URL to the hub's URL as pods in {cluster} reach it, "
            "e.g. https://hub.example.org (required for a cluster the hub reaches through a kubeconfig)"
        )
    return {
        "kubeconfig": None if in_cluster else path,
        "context": context,
        "namespace": setting(
            f"{prefix}NAMESPACE", setting("POD_NAMESPACE", "jupyterhub") if in_cluster else "jupyterhub"
        ),
        "hub_connect_url": hub_url,
    }


# EKS GPU node groups carry this taint (nodes without the toleration never get GPU pods)
GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

# The hub runs in the on-prem cluster (its service account) and reaches EKS through a kubeconfig whose
# user runs `aws eks get-token` (mounted from a Secret; its tokens last about 15 minutes and are renewed
# before they expire). For the hub in EKS, set HYBRIDHUB_EKS_KUBECONFIG to in-cluster and
# HYBRIDHUB_ONPREM_KUBECONFIG to a kubeconfig for the on-prem API (docs/operator-guide.md).
ONPREM = access("onprem", kubeconfig=IN_CLUSTER)
EKS = access("eks", kubeconfig="/usr/local/etc/hybridhub/kubeconfig")
if ONPREM["kubeconfig"] is None and EKS["kubeconfig"] is None:
    raise ValueError(
        "10-clusters.py: HYBRIDHUB_ONPREM_KUBECONFIG and HYBRIDHUB_EKS_KUBECONFIG are both in-cluster, "
        "but the hub runs in one cluster: give the other a kubeconfig"
    )

c.ClusterSet.clusters = [
    {
        "name": "onprem",
        "role": "onprem",
        **ONPREM,
        "pod_access": "pod-ip",
        # a claim per user (the default StorageClass), mounted at /home/jovyan in place of the chart's
        # singleuser.storage mount; the same claim name, so existing homes stay
        "home_storage": {"kind": "pvc", "size": "10Gi"},
        "pools": [
            # every GPU server (GPU Feature Discovery's label); fixed: its nodes say what they have
            {"name": "gpu", "node_selector": {"nvidia.com/gpu.present": "true"}, "tolerations": [GPU_TAINT]},
        ],
    },
    {
        "name": "eks",
        "role": "cloud",
        **EKS,
        # HybridSpawner connects to pod IPs: the VPC's pod IPs must be routable from the hub and proxy
        # pods (Direct Connect / VPN). Without such a route: "pod_access": "service" with
        # "service_type": "LoadBalancer" (a load balancer per server) or "NodePort"
        "pod_access": "pod-ip",
        # EKS's own home per user (gp3); users are told their on-prem home is not mounted there
        "home_storage": {"kind": "pvc", "size": "10Gi", "storage_class": "gp3"},
        "pools": [
            # p4de.24xlarge node group, scaled from zero by cluster-autoscaler or Karpenter
            {
                "name": "a100",
                "node_selector": {"eks.amazonaws.com/nodegroup": "gpu-a100"},
                "elastic": True,
                "max_nodes": 2,
                "gpus_per_node": 8,
                "gpu_product": "NVIDIA-A100-SXM4-80GB",
                "provisioning_deadline": 900,
                "tolerations": [GPU_TAINT],
            },
            # g6e.12xlarge node group
            {
                "name": "l40s",
                "node_selector": {"eks.amazonaws.com/nodegroup": "gpu-l40s"},
                "elastic": True,
                "max_nodes": 4,
                "gpus_per_node": 4,
                "gpu_product": "NVIDIA-L40S",
                "provisioning_deadline": 600,
                "tolerations": [GPU_TAINT],
            },
        ],
    },
]
