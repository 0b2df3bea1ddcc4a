"""The clusters notebooks run in: the on-prem cluster first, then EKS with elastic GPU pools.

Read by the hub (z2jh's config.d loader) and by the hybridhub service (``--config`` of this file), so
both see the same clusters. How to reach each cluster and how its pods reach the hub are settings,
``HYBRIDHUB_<CLUSTER>_*`` in the environment the Helm chart gives the hub container (``hub.extraEnv``
in ../values.yaml); nothing secret is in this file. The defaults are the cloud topology: the hub runs
in EKS and reaches the on-prem cluster over the site link (docs/operator-guide.md, "What runs where").
"""

import os
from typing import Any

from spawner.spawning.cluster_access import IN_CLUSTER
from spawner.spawning.cluster_access import access as cluster_access

# `c` is the shared config object the loader runs this file with; not `c = get_config()`: z2jh's
# loader has its own get_config(key), a Helm values lookup (see ../jupyterhub_config.py)
c = c  # noqa: F821


def access(cluster: str, kubeconfig: str) -> dict[str, Any]:
    """How the hub reaches ``cluster``'s API, and its pods the hub: this file reads the environment
    here only (HYBRIDHUB_<CLUSTER>_*; see spawner.spawning.cluster_access)."""
    return cluster_access(cluster, kubeconfig, os.environ)


# EKS GPU node groups carry this taint (nodes without the toleration never get GPU pods)
GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

# The hub runs in EKS (its pod's service account), so that an on-prem outage, up to a whole site gone
# dark, leaves the hub up to route around it. It reaches the on-prem API over the site link through a
# kubeconfig of its own, mounted from a Secret, whose user reads a bound ServiceAccount token from a
# file that is replaced before the token expires (never a long-lived token); on-prem pods reach the hub
# at HYBRIDHUB_ONPREM_HUB_URL, which has no default. For the hub in the on-prem cluster instead (the
# documented alternative), set HYBRIDHUB_ONPREM_KUBECONFIG to in-cluster and HYBRIDHUB_EKS_KUBECONFIG
# to a kubeconfig for EKS, with HYBRIDHUB_EKS_HUB_URL (docs/operator-guide.md).
ONPREM_KUBECONFIG = "/usr/local/etc/hybridhub/onprem/kubeconfig"  # the `kubeconfig` key of the Secret
ONPREM = access("onprem", kubeconfig=ONPREM_KUBECONFIG)
EKS = access("eks", kubeconfig=IN_CLUSTER)
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
        # HybridSpawner and the proxy connect to pod IPs: the on-prem pod network must be routable from
        # the hub and proxy pods in the VPC over the site link (VPN / Direct Connect, the pod CIDR
        # advertised, e.g. by BGP). Without such a route: "pod_access": "service" with
        # "service_type": "LoadBalancer" (MetalLB or the like) or "NodePort"
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
        # the hub and proxy pods are in this cluster: pod IPs (VPC CNI) are routable from them
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
