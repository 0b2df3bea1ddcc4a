"""What Trainer and JobSet make of a TrainJob, pure: the child indexed Jobs and the headless Service."""

from __future__ import annotations

import copy
import hashlib
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ..admission import canonical_quantity
from ..batch.defaults import COMPLETION_INDEX
from ..quantity import QuantityError, parse_quantity
from .names import (
    ANCESTOR_LABEL,
    ANCESTOR_TRAINER,
    API_VERSION,
    JOBSET_GLOBAL_REPLICAS,
    JOBSET_GROUP_INDEX,
    JOBSET_GROUP_NAME,
    JOBSET_GROUP_REPLICAS,
    JOBSET_JOB_GLOBAL_INDEX,
    JOBSET_JOB_INDEX,
    JOBSET_JOB_KEY,
    JOBSET_NAME,
    JOBSET_REPLICAS,
    JOBSET_RESTARTS,
    JOBSET_RJOB_NAME,
    JOBSET_UID,
    MASTER_PORT,
    NODE,
    PET_MASTER_ADDR,
    PET_MASTER_PORT,
    PET_NNODES,
    PET_NODE_RANK,
    PET_NPROC_PER_NODE,
    TRAINJOB_KIND,
)

__all__ = ["Children", "build", "job_name", "master_address", "num_proc_per_node"]

Obj = Mapping[str, Any]

_INDEX_FIELD = f"metadata.annotations['{COMPLETION_INDEX}']"  # the node rank, as the Job sets it


@dataclass(frozen=True)
class Children:
    """The objects a TrainJob's JobSet would own: one Job per replica of each replicated job, and
    the headless Service that gives the pods their DNS names."""

    jobs: tuple[dict[str, Any], ...]
    service: dict[str, Any]


def job_name(trainjob: str, replicated_job: str, index: int) -> str:
    """JobSet's child Job name: ``<jobset>-<replicatedJob>-<index>``."""
    return f"{trainjob}-{replicated_job}-{index}"


def master_address(trainjob: str) -> str:
    """Where node 0 answers: its pod hostname under the JobSet's subdomain, as Trainer's torch plugin
    writes it."""
    return f"{job_name(trainjob, NODE, 0)}-0.{trainjob}"


def _count(value: Any) -> int:
    """A Quantity's ``Value()``: the whole number it rounds up to, as Trainer reads cpu and GPUs."""
    try:
        return math.ceil(parse_quantity(value))
    except (QuantityError, ValueError, TypeError, ArithmeticError):
        return 0


def _gpus(resources: Obj) -> int:
    """GPUs per node as Trainer counts them: any resource whose name holds "gpu", requests first."""
    for kind in ("requests", "limits"):
        for name, qty in (resources.get(kind) or {}).items():
            if "gpu" in str(name).lower():
                found = _count(qty)
                if found:
                    return found
    return 0


def num_proc_per_node(trainer: Obj, resources: Obj) -> str:
    """``PET_NPROC_PER_NODE``: ``numProcPerNode`` if set, "auto" when GPUs are asked for, else the
    cpu request (or limit), at least 1 (torch.go ``getNumCPUPerNode``)."""
    if trainer.get("numProcPerNode") is not None:
        return str(int(trainer["numProcPerNode"]))
    if _gpus(resources):
        return "auto"
    requests, limits = resources.get("requests") or {}, resources.get("limits") or {}
    cpu = _count(requests.get("cpu", 0)) or _count(limits.get("cpu", 0))
    return str(max(1, cpu))


def _canonical(resources: Obj) -> dict[str, Any]:
    """Resources with each quantity as the API writes it: the SDK sends ``4.0``, a Quantity says "4"."""
    out: dict[str, Any] = {}
    for kind in ("limits", "requests"):
        values = resources.get(kind)
        if values:
            out[kind] = {name: canonical_quantity(qty) for name, qty in values.items()}
    return out


def _merge_resources(base: Obj, override: Obj) -> dict[str, Any]:
    """The runtime's container resources with the TrainJob's ``resourcesPerNode`` laid over them."""
    merged: dict[str, Any] = {}
    for kind in ("limits", "requests"):
        values = {**(base.get(kind) or {}), **(override.get(kind) or {})}
        if values:
            merged[kind] = values
    return _canonical(merged)


def _upsert_env(env: list[dict[str, Any]], values: Sequence[Obj]) -> list[dict[str, Any]]:
    """Trainer's ``UpsertEnvVars``: a variable of the same name is replaced in place, others appended."""
    out = [dict(e) for e in env]
    for var in values:
        for i, have in enumerate(out):
            if have.get("name") == var.get("name"):
                out[i] = dict(var)
                break
        else:
            out.append(dict(var))
    return out


def _job_labels(trainjob: Obj, rjobs: Sequence[Obj], rjob: Obj, index: int, namespace: str) -> dict[str, str]:
    """The labels JobSet's ``labelAndAnnotateObject`` sets on a child Job and on its pod template."""
    name = str(trainjob["metadata"]["name"])
    rjob_name = str(rjob["name"])
    group = str(rjob.get("groupName") or "default")
    replicas = [int(r.get("replicas", 1)) for r in rjobs]
    mine = rjobs.index(rjob)
    in_group = [int(r.get("replicas", 1)) for r in rjobs if str(r.get("groupName") or "default") == group]
    before_in_group = sum(
        int(r.get("replicas", 1)) for r in rjobs[:mine] if str(r.get("groupName") or "default") == group
    )
    child = job_name(name, rjob_name, index)
    return {
        JOBSET_NAME: name,
        # no JobSet object exists here: its uid is the TrainJob's
        JOBSET_UID: str(trainjob["metadata"]["uid"]),
        JOBSET_RJOB_NAME: rjob_name,
        JOBSET_RESTARTS: "0",
        JOBSET_REPLICAS: str(replicas[mine]),
        JOBSET_GLOBAL_REPLICAS: str(sum(replicas)),
        JOBSET_JOB_INDEX: str(index),
        JOBSET_JOB_KEY: hashlib.sha1(f"{namespace}/{child}".encode()).hexdigest(),
        JOBSET_JOB_GLOBAL_INDEX: str(sum(replicas[:mine]) + index),
        JOBSET_GROUP_NAME: group,
        JOBSET_GROUP_REPLICAS: str(sum(in_group)),
        JOBSET_GROUP_INDEX: str(before_in_group + index),
    }


def _trainer_container(
    container: Obj,
    trainjob: Obj,
    runtime: Obj,
    nodes: int,
    torchrun_dir: str | None,
) -> dict[str, Any]:
    """The ``node`` container with what the TrainJob sets, and, under ``mlPolicy.torch``, the
    variables torchrun reads and the port it listens on."""
    out = copy.deepcopy(dict(container))
    trainer: Obj = (trainjob.get("spec") or {}).get("trainer") or {}
    for key in ("image", "command", "args"):
        if trainer.get(key) is not None:
            out[key] = copy.deepcopy(trainer[key])
    base = out.get("resources") or {}
    per_node = trainer.get("resourcesPerNode")
    out["resources"] = _merge_resources(base, per_node) if per_node else _canonical(base)
    if not out["resources"]:
        del out["resources"]
    env = _upsert_env(list(out.get("env") or []), list(trainer.get("env") or []))
    if ((runtime.get("spec") or {}).get("mlPolicy") or {}).get("torch") is not None:
        name = str(trainjob["metadata"]["name"])
        env = _upsert_env(
            env,
            [
                {"name": PET_NNODES, "value": str(nodes)},
                {"name": PET_NPROC_PER_NODE, "value": num_proc_per_node(trainer, per_node or base)},
                {"name": PET_NODE_RANK, "valueFrom": {"fieldRef": {"fieldPath": _INDEX_FIELD}}},
                {"name": PET_MASTER_ADDR, "value": master_address(name)},
                {"name": PET_MASTER_PORT, "value": str(MASTER_PORT)},
            ],
        )
        ports = list(out.get("ports") or [])
        if not any(p.get("containerPort") == MASTER_PORT for p in ports):
            ports.append({"containerPort": MASTER_PORT, "protocol": "TCP"})
        out["ports"] = ports
        if torchrun_dir:
            # the image is ignored, so the torchrun the image would hold comes first on the PATH
            env = _upsert_env(env, [{"name": "PATH", "value": f"{torchrun_dir}:$(PATH)"}])
    if env:
        out["env"] = env
    return out


def _nodes(trainjob: Obj, runtime: Obj) -> int:
    """The trainer's node count: the TrainJob's ``numNodes``, else the runtime's ``mlPolicy.numNodes``."""
    trainer = (trainjob.get("spec") or {}).get("trainer") or {}
    if trainer.get("numNodes"):
        return int(trainer["numNodes"])
    return int(((runtime.get("spec") or {}).get("mlPolicy") or {}).get("numNodes") or 1)


def build(trainjob: Obj, runtime: Obj, torchrun_dir: str | None = None) -> Children:
    """The child Jobs and Service of ``trainjob`` run with ``runtime`` (a (Cluster)TrainingRuntime).

    The Jobs are indexed, their pods restart ``OnFailure`` (JobSet's webhook defaults), suspended
    with the TrainJob, and owned by the TrainJob; ``torchrun_dir`` goes first on the trainer's PATH.
    """
    meta = trainjob["metadata"]
    name, namespace = str(meta["name"]), str(meta["namespace"])
    spec = trainjob.get("spec") or {}
    template = (runtime.get("spec") or {}).get("template") or {}
    rjobs: list[Obj] = list((template.get("spec") or {}).get("replicatedJobs") or [])
    owner = {
        "apiVersion": API_VERSION,
        "kind": TRAINJOB_KIND,
        "name": name,
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }
    jobs: list[dict[str, Any]] = []
    for rjob in rjobs:
        job_template = copy.deepcopy(rjob.get("template") or {})
        tmeta = job_template.get("metadata") or {}
        job_spec: dict[str, Any] = job_template.get("spec") or {}
        pod_template = job_spec.setdefault("template", {})
        pod_spec = pod_template.setdefault("spec", {})
        job_spec.setdefault("completionMode", "Indexed")
        pod_spec.setdefault("restartPolicy", "OnFailure")
        pod_spec["subdomain"] = name
        trainer_job = (tmeta.get("labels") or {}).get(ANCESTOR_LABEL) == ANCESTOR_TRAINER
        if trainer_job:
            nodes = _nodes(trainjob, runtime)
            job_spec["parallelism"] = job_spec["completions"] = nodes
            pod_spec["containers"] = [
                _trainer_container(c, trainjob, runtime, nodes, torchrun_dir) if c.get("name") == NODE else c
                for c in pod_spec.get("containers") or []
            ]
        job_spec["suspend"] = bool(spec.get("suspend"))
        for index in range(int(rjob.get("replicas", 1))):
            child = copy.deepcopy(job_spec)
            labels = _job_labels(trainjob, rjobs, rjob, index, namespace)
            pmeta = child["template"].setdefault("metadata", {})
            pmeta["labels"] = {**(pmeta.get("labels") or {}), **labels}
            pmeta["annotations"] = {**(pmeta.get("annotations") or {}), **labels}
            jobs.append(
                {
                    "apiVersion": "batch/v1",
                    "kind": "Job",
                    "metadata": {
                        "name": job_name(name, str(rjob["name"]), index),
                        "namespace": namespace,
                        "labels": {**(tmeta.get("labels") or {}), **labels},
                        "annotations": {**(tmeta.get("annotations") or {}), **labels},
                        "ownerReferences": [dict(owner)],
                    },
                    "spec": child,
                }
            )
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": name, "namespace": namespace, "ownerReferences": [dict(owner)]},
        "spec": {
            "clusterIP": "None",
            "selector": {JOBSET_NAME: name},
            "publishNotReadyAddresses": True,
        },
    }
    return Children(tuple(jobs), service)
