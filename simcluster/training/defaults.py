"""The defaults the operator fills into its own copy of a PyTorchJob before it reconciles it.

They are the scheme defaults of ``SetDefaults_PyTorchJob``: the operator applies them in memory and
never writes the spec back, so the stored object keeps what the user sent.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .naming import DEFAULT_CONTAINER, DEFAULT_PORT, DEFAULT_PORT_NAME, MASTER, WORKER

__all__ = ["default_container", "with_defaults"]


def default_container(pod_spec: Mapping[str, Any]) -> int:
    """The index of the container named ``pytorch``, else 0, as ``getDefaultContainerIndex``."""
    for i, container in enumerate(pod_spec.get("containers") or []):
        if isinstance(container, Mapping) and container.get("name") == DEFAULT_CONTAINER:
            return i
    return 0


def _camel_case_types(replicas: dict[str, Any]) -> None:
    """``master`` or ``WORKER`` become ``Master`` and ``Worker`` (the first match of each)."""
    for canonical in (MASTER, WORKER):
        for key in list(replicas):
            if key.lower() == canonical.lower() and key != canonical:
                replicas[canonical] = replicas.pop(key)
                break


def _default_port(pod_spec: dict[str, Any]) -> None:
    containers = pod_spec.get("containers") or []
    if not containers:
        return
    container = containers[default_container(pod_spec)]
    ports = container.setdefault("ports", [])
    if not any(p.get("name") == DEFAULT_PORT_NAME for p in ports):
        ports.append({"name": DEFAULT_PORT_NAME, "containerPort": DEFAULT_PORT})


def _elastic(spec: dict[str, Any]) -> None:
    policy = spec.get("elasticPolicy")
    if not isinstance(policy, dict):
        return
    low, high = policy.get("minReplicas"), policy.get("maxReplicas")
    if low is not None and high is not None:
        return
    if high is not None:
        policy["minReplicas"] = high
    elif low is not None:
        policy["maxReplicas"] = low
    else:
        workers = (spec.get("pytorchReplicaSpecs") or {}).get(WORKER) or {}
        policy["minReplicas"] = policy["maxReplicas"] = workers.get("replicas")


def with_defaults(job: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of ``job`` with the operator's defaults filled in."""
    out: dict[str, Any] = copy.deepcopy(dict(job))
    spec = out.setdefault("spec", {})
    run_policy = spec.get("runPolicy")
    if not isinstance(run_policy, dict):
        run_policy = spec["runPolicy"] = {}
    if run_policy.get("cleanPodPolicy") is None:
        run_policy["cleanPodPolicy"] = "None"
    replicas = spec.get("pytorchReplicaSpecs")
    if isinstance(replicas, dict):
        _camel_case_types(replicas)
        for replica in replicas.values():
            if not isinstance(replica, dict):
                continue
            if replica.get("replicas") is None:
                replica["replicas"] = 1
            if not replica.get("restartPolicy"):
                replica["restartPolicy"] = "OnFailure"
            template = replica.setdefault("template", {})
            _default_port(template.setdefault("spec", {}))
    _elastic(spec)
    elastic = spec.get("elasticPolicy")
    if (not isinstance(elastic, dict) or elastic.get("nProcPerNode") is None) and spec.get(
        "nprocPerNode"
    ) is None:
        spec["nprocPerNode"] = "auto"
    return out
