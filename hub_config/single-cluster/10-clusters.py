"""The clusters notebooks run in, single-cluster topology: one EKS cluster with on-prem hybrid nodes.

With EKS Hybrid Nodes the on-prem GPU servers join the EKS cluster: the hub runs in that cluster and
places notebooks on the on-prem pool first, then on an elastic cloud pool. Use this file instead of
jupyterhub_config.d/10-clusters.py (mount it at the same path). It needs no credentials of its own:
the hub pod's service account reaches the API, and pods on either kind of node reach each other
(hybrid nodes need routable remote pod networks). The cluster's API access and how its pods reach the
hub are settings, ``HYBRIDHUB_EKS_*`` in the hub's environment, as in the two-cluster file.
"""

import os
from typing import Any

from spawner.spawning.cluster_access import IN_CLUSTER
from spawner.spawning.cluster_access import access as cluster_access

# `c` is the shared config object the loader runs this file with (see ../jupyterhub_config.py)
c = c  # noqa: F821


def access(cluster: str, kubeconfig: str) -> dict[str, Any]:
    """How the hub reaches ``cluster``'s API, and its pods the hub: this file reads the environment
    here only (HYBRIDHUB_<CLUSTER>_*; see spawner.spawning.cluster_access)."""
    return cluster_access(cluster, kubeconfig, os.environ)


GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

c.ClusterSet.clusters = [
    {
        "name": "eks",
        "role": "cloud",  # the cluster's; each pool below says what its nodes are
        # the hub pod's service account by default (the hub runs in this cluster)
        **access("eks", kubeconfig=IN_CLUSTER),
        "pod_access": "pod-ip",  # one cluster network
        # a claim per user, the same on either pool: its StorageClass must be one both kinds of node
        # can mount (NFS or EFS; an EBS volume does not attach to a hybrid node)
        "home_storage": {"kind": "pvc", "size": "10Gi"},
        "pools": [
            # the on-prem servers, as EKS labels hybrid nodes; fixed: the nodes say what GPUs they have
            {
                "name": "onprem",
                "role": "onprem",
                "node_selector": {"eks.amazonaws.com/compute-type": "hybrid"},
                "tolerations": [GPU_TAINT],
            },
            # an EC2 GPU node group scaled from zero (cluster-autoscaler or Karpenter)
            {
                "name": "cloud",
                "role": "cloud",
                "node_selector": {"eks.amazonaws.com/nodegroup": "gpu-a100"},
                "elastic": True,
                "max_nodes": 2,
                "gpus_per_node": 8,
                "gpu_product": "NVIDIA-A100-SXM4-80GB",
                "provisioning_deadline": 900,
                "tolerations": [GPU_TAINT],
            },
        ],
    },
]
