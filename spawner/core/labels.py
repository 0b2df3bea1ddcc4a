"""The label, annotation and resource names hybridhub reads and writes on Kubernetes objects.

Each name has this one home. The ``nvidia.com`` names come from the NVIDIA device plugin and GPU
Feature Discovery; the ``hub.jupyter.org`` ones and ``component`` are what KubeSpawner puts on a
notebook pod; the ``hybridhub.io`` ones are ours.
"""

from __future__ import annotations

import re

__all__ = [
    "CLUSTER_LABEL",
    "COMPONENT_LABEL",
    "GPU",
    "HUB_LABEL",
    "KATIB_INJECTION_LABEL",
    "MEMORY_LABEL",
    "NAMESPACE_NAME_LABEL",
    "NOTEBOOK_COMPONENT",
    "POD_SECURITY_AUDIT",
    "POD_SECURITY_ENFORCE",
    "POD_SECURITY_WARN",
    "PRODUCT_LABEL",
    "RUNS_USER_ANNOTATION",
    "RUNS_USER_LABEL",
    "SERVERNAME_KEY",
    "USERNAME_KEY",
    "label_value_problem",
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

# Set by HybridSpawner on the pods and Services it makes: the name of the hub that made them
# (HybridSpawner.hub_instance; its service's HybridHubService.hub_instance is the same). The leftover
# sweep judges only pods with its own hub's name, in any namespace, so two hubs that share a namespace
# or a cluster never remove each other's servers. Not on home claims either.
HUB_LABEL = "hybridhub.io/hub"

# On a user's run namespace: whose it is. The label value is the user name made label-safe; the
# annotation spells the name as the hub does, since a label cannot hold every hub name.
RUNS_USER_LABEL = "hybridhub.io/user"
RUNS_USER_ANNOTATION = "hybridhub.io/username"

# Pod Security admission's namespace labels: the level it enforces, and the ones it only warns and
# audits about.
POD_SECURITY_ENFORCE = "pod-security.kubernetes.io/enforce"
POD_SECURITY_WARN = "pod-security.kubernetes.io/warn"
POD_SECURITY_AUDIT = "pod-security.kubernetes.io/audit"

# Kubernetes puts this label on every namespace, holding its name: NetworkPolicies select namespaces by it.
NAMESPACE_NAME_LABEL = "kubernetes.io/metadata.name"

# Katib's webhook injects its metrics collector only into trial pods of namespaces with this label.
KATIB_INJECTION_LABEL = "katib.kubeflow.org/metrics-collector-injection"

# Kubernetes' syntax for a label value: 63 characters at most, alphanumeric at both ends.
_LABEL_VALUE = re.compile(r"([A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?)?")


def label_value_problem(value: str) -> str | None:
    """What makes ``value`` no Kubernetes label value, or None."""
    if len(value) > 63:
        return f"must be at most 63 characters long, not {len(value)}"
    if not _LABEL_VALUE.fullmatch(value):
        return (
            "must be letters, digits, '-', '_' or '.', beginning and ending with a letter or digit, "
            f"not {value!r}"
        )
    return None
