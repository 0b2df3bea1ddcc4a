"""The pod and the headless Service the operator makes for each replica of a (defaulted) PyTorchJob."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from .defaults import default_container
from .naming import (
    DEFAULT_CONTAINER,
    DEFAULT_PORT_NAME,
    GROUP,
    KIND,
    LABEL_JOB_ROLE,
    LABEL_REPLICA_INDEX,
    LABEL_REPLICA_TYPE,
    MASTER,
    VERSION,
    WORKER,
    job_labels,
    replica_name,
)

__all__ = [
    "INIT_CONTAINER_IMAGE",
    "INIT_CONTAINER_MAX_TRIES",
    "is_master_role",
    "owner_reference",
    "replica_labels",
    "replica_pod",
    "replica_service",
    "total_replicas",
]

# The operator's flags --pytorch-init-container-image and --pytorch-init-container-max-tries
INIT_CONTAINER_IMAGE = "alpine:3.10"
INIT_CONTAINER_MAX_TRIES = 100

Obj = Mapping[str, Any]


def _replica_specs(job: Obj) -> dict[str, Any]:
    return dict((job.get("spec") or {}).get("pytorchReplicaSpecs") or {})


def total_replicas(job: Obj) -> int:
    return sum(int(r.get("replicas") or 0) for r in _replica_specs(job).values())


def _nproc_int(job: Obj) -> int:
    """``nprocPerNode`` as a number; "auto", "cpu" or "gpu" count as 1, as ``getNprocPerNodeInt``."""
    value = (job.get("spec") or {}).get("nprocPerNode")
    try:
        return int(str(value))
    except ValueError:
        return 1


def _port(job: Obj, replica_type: str) -> int:
    """The port named ``pytorchjob-port`` of a replica type's ``pytorch`` container."""
    template = (_replica_specs(job).get(replica_type) or {}).get("template") or {}
    for container in (template.get("spec") or {}).get("containers") or []:
        if container.get("name") == DEFAULT_CONTAINER:
            for port in container.get("ports") or []:
                if port.get("name") == DEFAULT_PORT_NAME:
                    return int(port["containerPort"])
    raise ValueError("port not found")


def is_master_role(job: Obj, replica_type: str, index: int) -> bool:
    """The master is the Master replica, or worker 0 of a job without one."""
    if MASTER in _replica_specs(job):
        return replica_type == MASTER
    return replica_type == WORKER and index == 0


def replica_labels(job_name: str, replica_type: str, index: int) -> dict[str, str]:
    return {
        **job_labels(job_name),
        LABEL_REPLICA_TYPE: replica_type.lower(),
        LABEL_REPLICA_INDEX: str(index),
    }


def owner_reference(job: Obj) -> dict[str, Any]:
    meta = job["metadata"]
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": KIND,
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


def _env(name: str, value: object) -> dict[str, str]:
    return {"name": name, "value": str(value)}


def _elastic_env(job: Obj) -> list[dict[str, str]]:
    """The rendezvous settings torchrun reads from ``PET_*`` in an elastic job (``elastic.go``)."""
    spec = job.get("spec") or {}
    policy = spec["elasticPolicy"]
    host = policy.get("rdzvHost") or f"{job['metadata']['name']}-worker-0"
    port = policy.get("rdzvPort")
    if port is None:
        port = _port(job, WORKER)
    low, high = policy.get("minReplicas"), policy.get("maxReplicas")
    if low is None and high is None:
        nnodes = str((_replica_specs(job).get(WORKER) or {}).get("replicas"))
    else:
        nnodes = f"{low}:{high}"
    env = [
        _env("PET_RDZV_ENDPOINT", f"{host}:{port}"),
        _env("PET_RDZV_BACKEND", policy.get("rdzvBackend") or "c10d"),
        _env("PET_NNODES", nnodes),
    ]
    if policy.get("maxRestarts") is not None:
        env.append(_env("PET_MAX_RESTARTS", policy["maxRestarts"]))
    if policy.get("nProcPerNode") is not None:
        env.append(_env("PET_NPROC_PER_NODE", policy["nProcPerNode"]))
    if policy.get("rdzvId") is not None:
        env.append(_env("PET_RDZV_ID", policy["rdzvId"]))
    if policy.get("rdzvConf"):
        conf = ",".join(f"{c.get('key', '')}={c.get('value', '')}" for c in policy["rdzvConf"])
        env.append(_env("PET_RDZV_CONF", conf))
    if policy.get("standalone"):
        env.append(_env("PET_STANDALONE", ""))
    return env


def _cluster_env(job: Obj, replica_type: str, index: int) -> list[dict[str, str]]:
    """What ``setPodEnv`` appends to every container of a replica's pod."""
    spec = job.get("spec") or {}
    env = [_env("PYTHONUNBUFFERED", "1")]
    world_size = total_replicas(job) * _nproc_int(job)
    if MASTER in _replica_specs(job):
        port = _port(job, MASTER)
        address = replica_name(job["metadata"]["name"], MASTER, 0)
        rank = index + 1 if replica_type == WORKER else index
        env += [
            _env("MASTER_PORT", port),
            _env("PET_MASTER_PORT", port),
            _env("MASTER_ADDR", address),
            _env("PET_MASTER_ADDR", address),
            _env("WORLD_SIZE", world_size),
            _env("RANK", rank),
            _env("PET_NODE_RANK", rank),
        ]
    if spec.get("nprocPerNode") is not None:
        env.append(_env("PET_NPROC_PER_NODE", spec["nprocPerNode"]))
    if isinstance(spec.get("elasticPolicy"), Mapping):
        env += _elastic_env(job)
    else:
        env.append(_env("PET_NNODES", total_replicas(job)))
    return env


def _init_container(master: str) -> dict[str, Any]:
    """The operator's default ``init-pytorch``: wait until the master's name resolves."""
    script = (
        f"err=1;for i in $(seq {INIT_CONTAINER_MAX_TRIES}); do if nslookup {master}; then err=0 && break; "
        "fi;echo waiting for master; sleep 2; done; exit $err"
    )
    return {
        "name": "init-pytorch",
        "image": INIT_CONTAINER_IMAGE,
        "imagePullPolicy": "IfNotPresent",
        "resources": {
            "limits": {"cpu": "100m", "memory": "20Mi"},
            "requests": {"cpu": "50m", "memory": "10Mi"},
        },
        "command": ["sh", "-c", script],
    }


def replica_pod(job: Obj, replica_type: str, index: int) -> dict[str, Any]:
    """The pod ``createNewPod`` makes for replica ``index`` of ``replica_type`` (Master or Worker).

    Raises ValueError when the master's port cannot be found (the webhook makes that impossible).
    """
    meta = job["metadata"]
    replica = _replica_specs(job)[replica_type]
    template = copy.deepcopy(replica.get("template") or {})
    tmeta = template.get("metadata") or {}
    pod_spec = template.get("spec") or {}
    labels = {**(tmeta.get("labels") or {}), **replica_labels(meta["name"], replica_type, index)}
    if is_master_role(job, replica_type, index):
        labels[LABEL_JOB_ROLE] = "master"
    env = _cluster_env(job, replica_type, index)
    for container in pod_spec.get("containers") or []:
        container["env"] = [*(container.get("env") or []), *copy.deepcopy(env)]
    if replica_type == WORKER and MASTER in _replica_specs(job):
        master = replica_name(meta["name"], MASTER, 0)
        pod_spec["initContainers"] = [*(pod_spec.get("initContainers") or []), _init_container(master)]
    policy = replica.get("restartPolicy")
    pod_spec["restartPolicy"] = "Never" if policy == "ExitCode" else policy
    pod_meta: dict[str, Any] = {
        "name": replica_name(meta["name"], replica_type, index),
        "namespace": meta["namespace"],
        "labels": labels,
        "ownerReferences": [owner_reference(job)],
    }
    for key in ("annotations", "finalizers"):
        if tmeta.get(key):
            pod_meta[key] = copy.deepcopy(tmeta[key])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": pod_spec}


def replica_service(job: Obj, replica_type: str, index: int) -> dict[str, Any]:
    """The headless Service of one replica, named as its pod: it makes ``<job>-master-0`` resolve."""
    meta = job["metadata"]
    labels = replica_labels(meta["name"], replica_type, index)
    template = (_replica_specs(job)[replica_type].get("template") or {}).get("spec") or {}
    containers = template.get("containers") or []
    ports: list[dict[str, Any]] = []
    if containers and containers[default_container(template)].get("name") == DEFAULT_CONTAINER:
        ports = [
            {"name": p.get("name", ""), "port": p["containerPort"]}
            for p in containers[default_container(template)].get("ports") or []
        ]
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": replica_name(meta["name"], replica_type, index),
            "namespace": meta["namespace"],
            "labels": labels,
            "ownerReferences": [owner_reference(job)],
        },
        "spec": {"clusterIP": "None", "selector": dict(labels), "ports": ports},
    }
