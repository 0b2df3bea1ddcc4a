"""The label, annotation and resource names hybridhub reads and writes on Kubernetes objects.

Each name has this one home. The ``nvidia.com`` names come from the NVIDIA device plugin and GPU
Feature Discovery; the ``hub.jupyter.org`` ones and ``component`` are what KubeSpawner puts on a
notebook pod; the ``hybridhub.io`` ones are ours.
"""

from __future__ import annotations

__all__ = [
    "CLUSTER_LABEL",
    "COMPONENT_LABEL",
    "GPU",
    "MEMORY_LABEL",
    "NOTEBOOK_COMPONENT",
    "PRODUCT_LABEL",
    "SERVERNAME_KEY",
    "USERNAME_KEY",
]

# The extended resource the NVIDIA device plugin advertises and pods request.
GPU = "nvidia.com/gpu"
# GPU Feature Discovery's node labels: the product name and the memory of one GPU in MiB.
PRODUCT_LABEL = "nvidia.com/gpu.product"
MEMORY_LABEL = "nvidia.com/gpu.memory"

# KubeSpawner's labels on a notebook pod. The user and server names are also annotations, spelled
# as the hub spells them, while the label values are escaped.
USERNAME_KEY = "hub.jupyter.org/username"
SERVERNAME_KEY = "hub.jupyter.org/servername"
COMPONENT_LABEL = "component"
NOTEBOOK_COMPONENT = "singleuser-server"

# Set by HybridSpawner on the pods and Services it makes. The leftover sweep looks only at pods that
# carry it. Home claims do not carry it, on purpose: they outlive servers, so no sweep should reach them.
CLUSTER_LABEL = "hybridhub.io/cluster"
