"""The clusters notebooks run in: the on-prem cluster the hub runs in, then EKS with elastic GPU pools.

Read by the hub (z2jh's config.d loader) and by the hybridhub service (``--config`` of this file), so
both see the same clusters. Where to find the EKS credentials comes from the environment the Helm
chart gives the hub container (``hub.extraEnv`` in ../values.yaml); nothing secret is in this file.
"""

import os

# `c` is the shared config object the loader runs this file with; not `c = get_config()`: z2jh's
# loader has its own get_config(key), a Helm values lookup (see ../jupyterhub_config.py)
c = c  # noqa: F821

# EKS GPU node groups carry this taint (nodes without the toleration never get GPU pods)
GPU_TAINT = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}

# the hub as EKS pods reach it: its public address, through the proxy (no default can be right)
EKS_HUB_URL = os.environ.get("HYBRIDHUB_EKS_HUB_URL", "")
if not EKS_HUB_URL:
    raise ValueError(
        "10-clusters.py: set HYBRIDHUB_EKS_HUB_URL to the hub's URL as EKS pods reach it, "
        "e.g. https://hub.example.org"
    )

c.ClusterSet.clusters = [
    {
        "name": "onprem",
        "role": "onprem",
        # no kubeconfig: the hub pod's service account (in-cluster config)
        "namespace": os.environ.get("POD_NAMESPACE", "jupyterhub"),
        # the hub's Service, as pods in this cluster reach it
        "hub_connect_url": os.environ.get("HYBRIDHUB_ONPREM_HUB_URL", "http://hub:8081"),
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
        # a kubeconfig whose user runs `aws eks get-token` (mounted from a Secret); its tokens last
        # about 15 minutes and are renewed before they expire
        "kubeconfig": os.environ.get("HYBRIDHUB_KUBECONFIG", "/usr/local/etc/hybridhub/kubeconfig"),
        "context": os.environ.get("HYBRIDHUB_EKS_CONTEXT", "eks"),
        "namespace": os.environ.get("HYBRIDHUB_EKS_NAMESPACE", "jupyterhub"),
        "hub_connect_url": EKS_HUB_URL,
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
