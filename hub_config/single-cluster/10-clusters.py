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

# `c` is the shared config object the loader runs this file with (see ../jupyterhub_config.py)
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
