"""What installing Kubeflow Trainer puts in a cluster: the torch-distributed runtime, the public ConfigMap."""

from __future__ import annotations

from typing import Any

from .names import ANCESTOR_LABEL, ANCESTOR_TRAINER, API_VERSION, CLUSTER_RUNTIME_KIND, FRAMEWORK_LABEL, NODE

__all__ = [
    "SYSTEM_NAMESPACE",
    "TORCH_IMAGE",
    "TRAINER_VERSION",
    "public_config_map",
    "public_role",
    "public_role_binding",
    "torch_distributed",
]

SYSTEM_NAMESPACE = "kubeflow-system"
TRAINER_VERSION = "v2.3.0"  # the Helm chart writes "v" and its version
TORCH_IMAGE = "pytorch/pytorch:2.13.0-cuda13.0-cudnn9-runtime"
_PUBLIC = "kubeflow-trainer-public"
_MANAGER_LABELS = {"app.kubernetes.io/name": "trainer", "app.kubernetes.io/component": "manager"}


def torch_distributed() -> dict[str, Any]:
    """The ``torch-distributed`` ClusterTrainingRuntime as the chart ships it (files/runtimes)."""
    return {
        "apiVersion": API_VERSION,
        "kind": CLUSTER_RUNTIME_KIND,
        "metadata": {"name": "torch-distributed", "labels": {FRAMEWORK_LABEL: "torch"}},
        "spec": {
            "mlPolicy": {"numNodes": 1, "torch": {}},
            "template": {
                "spec": {
                    "replicatedJobs": [
                        {
                            "name": NODE,
                            "template": {
                                "metadata": {"labels": {ANCESTOR_LABEL: ANCESTOR_TRAINER}},
                                "spec": {
                                    "template": {
                                        "spec": {"containers": [{"name": NODE, "image": TORCH_IMAGE}]}
                                    }
                                },
                            },
                        }
                    ]
                }
            },
        },
    }


def public_config_map() -> dict[str, Any]:
    """``kubeflow-trainer-public``: the version the SDK reads when a TrainerClient starts."""
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": _PUBLIC, "namespace": SYSTEM_NAMESPACE, "labels": dict(_MANAGER_LABELS)},
        "data": {"kubeflow_trainer_version": TRAINER_VERSION},
    }


def public_role() -> dict[str, Any]:
    """Read access to that ConfigMap alone, which the chart grants every authenticated user."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "Role",
        "metadata": {"name": _PUBLIC, "namespace": SYSTEM_NAMESPACE, "labels": dict(_MANAGER_LABELS)},
        "rules": [
            {
                "apiGroups": [""],
                "resources": ["configmaps"],
                "resourceNames": [_PUBLIC],
                "verbs": ["get", "list", "watch"],
            }
        ],
    }


def public_role_binding() -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "RoleBinding",
        "metadata": {"name": _PUBLIC, "namespace": SYSTEM_NAMESPACE, "labels": dict(_MANAGER_LABELS)},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": _PUBLIC},
        "subjects": [
            {"kind": "Group", "apiGroup": "rbac.authorization.k8s.io", "name": "system:authenticated"}
        ],
    }
