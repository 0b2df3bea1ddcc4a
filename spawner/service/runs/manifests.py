"""What the service writes of an accepted run, and how it shows a run that no cluster holds yet."""

from __future__ import annotations

import copy
import re
import secrets
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from typing import Any

from spawner.core.labels import CLUSTER_LABEL, HUB_LABEL
from spawner.service.runs.policy import Run

__all__ = [
    "AUTO",
    "KUEUE_QUEUE_LABEL",
    "MAX_WAIT_LABEL",
    "ON_FAILOVER_LABEL",
    "RUN_POD_LABELS",
    "Wanted",
    "generated_name",
    "placeholder",
    "prepare",
    "wanted",
]

AUTO = "auto"
# The label a user sets on a run to say how long it may wait for on-prem before it goes to the cloud:
# seconds, or a number with s, m or h ("90", "30m", "2h").
MAX_WAIT_LABEL = "hybridhub.io/max-wait"
# "restart": a run that started and whose cluster goes down is made again in the cloud (at least once);
# "stay" (the default): it stays where it started
ON_FAILOVER_LABEL = "hybridhub.io/on-failover"
ON_FAILOVER = ("stay", "restart")
# Kueue's label: the LocalQueue that admits the run, where a cluster runs Kueue.
KUEUE_QUEUE_LABEL = "kueue.x-k8s.io/queue-name"
# The label that marks each kind's pods with the run's name.
RUN_POD_LABELS: Mapping[str, str] = {
    "Workflow": "workflows.argoproj.io/workflow",
    "TrainJob": "jobset.sigs.k8s.io/jobset-name",
    "PyTorchJob": "training.kubeflow.org/job-name",
    "Job": "job-name",
    "Experiment": "katib.kubeflow.org/experiment",
}
_DURATION = re.compile(r"^(\d{1,7})([smh]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600}
# The alphabet Kubernetes draws generateName suffixes from: no vowels, so no words.
_SUFFIX_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


@dataclass(frozen=True)
class Wanted:
    """Where the user wants the run and how long it may wait for on-prem."""

    cluster: str  # "auto" or a cluster name
    max_wait: float  # seconds


def wanted(manifest: Mapping[str, Any], clusters: Collection[str], default_max_wait: float) -> Wanted | str:
    """The run's labels read: ``hybridhub.io/cluster`` pins a cluster, ``hybridhub.io/max-wait``
    overrides the default wait. A sentence naming the label when one is wrong."""
    labels = (manifest.get("metadata") or {}).get("labels") or {}
    cluster = labels.get(CLUSTER_LABEL, AUTO)
    if cluster != AUTO and cluster not in clusters:
        known = ", ".join(sorted(clusters))
        return f"metadata.labels['{CLUSTER_LABEL}']: {cluster!r} is not a cluster; use auto or one of {known}"
    max_wait = default_max_wait
    text = labels.get(MAX_WAIT_LABEL)
    if text is not None:
        match = _DURATION.match(str(text))
        if not match:
            return (
                f"metadata.labels['{MAX_WAIT_LABEL}']: {text!r} is not a duration; "
                "use seconds or a number with s, m or h, such as 30m"
            )
        max_wait = float(int(match.group(1)) * _UNITS[match.group(2)])
    failover = labels.get(ON_FAILOVER_LABEL, "stay")
    if failover not in ON_FAILOVER:
        return f"metadata.labels['{ON_FAILOVER_LABEL}']: {failover!r} is not stay or restart"
    if failover == "restart" and cluster != AUTO:
        return (
            f"metadata.labels['{ON_FAILOVER_LABEL}']: restart needs {CLUSTER_LABEL}: auto; a run pinned to"
            f" {cluster} stays there"
        )
    return Wanted(cluster, max_wait)


def generated_name(prefix: str) -> str:
    """A name made from a generateName prefix, as the API server makes one. The service makes it
    itself so that the registry holds the name before anything is sent to a cluster."""
    return prefix + "".join(secrets.choice(_SUFFIX_ALPHABET) for _ in range(5))


def _set(obj: dict[str, Any], dotted: str, value: Any) -> None:
    *parents, last = dotted.split(".")
    for key in parents:
        child = obj.get(key)
        if not isinstance(child, dict):
            child = obj[key] = {}
        obj = child
    obj[last] = value


def prepare(
    manifest: Mapping[str, Any],
    run: Run,
    name: str,
    *,
    hub_instance: str,
    runner_service_account: str,
) -> dict[str, Any]:
    """The object the service creates for an accepted run: its own name and the user's namespace,
    the hub's label, held back by its suspend field, and for a Workflow the namespace's runner
    account, which Argo's executor needs to report step results. What differs by cluster (Kueue's
    queue, images, artifacts) is applied to each create: ``moves.for_cluster``."""
    obj = copy.deepcopy(dict(manifest))
    meta = obj.setdefault("metadata", {})
    meta.pop("generateName", None)
    meta["name"] = name
    meta["namespace"] = run.namespace
    for server_set in ("uid", "resourceVersion", "creationTimestamp", "selfLink", "managedFields"):
        meta.pop(server_set, None)
    labels = meta.get("labels")
    meta["labels"] = {**(labels if isinstance(labels, dict) else {}), HUB_LABEL: hub_instance}
    obj.pop("status", None)
    if run.kind == "Workflow":
        spec = obj.setdefault("spec", {})
        if not spec.get("serviceAccountName"):
            spec["serviceAccountName"] = runner_service_account
    if run.suspend_field is not None:
        _set(obj, run.suspend_field, True)
    return obj


def placeholder(
    manifest: Mapping[str, Any], *, created: str, reason: str, refused: bool = False
) -> dict[str, Any]:
    """How a run no cluster holds yet reads in the SDKs: the object as it will be created, with a
    status that says it waits in the service's queue (or that its cluster refused it)."""
    obj = copy.deepcopy(dict(manifest))
    kind = obj.get("kind")
    meta = obj.setdefault("metadata", {})
    meta.setdefault("creationTimestamp", created)
    meta.setdefault("annotations", {})["hybridhub.io/queued"] = "true"
    if kind == "Workflow":
        # Argo shows a suspended workflow as Running; Hera's wait() keeps polling while it is.
        phase = "Failed" if refused else "Running"
        obj["status"] = {"phase": phase, "message": reason}
        return obj
    condition = "Failed" if refused else "Created"
    obj["status"] = {
        "conditions": [
            {
                "type": condition,
                "status": "True",
                "reason": "HybridhubRefused" if refused else "HybridhubQueued",
                "message": reason,
            }
        ]
    }
    return obj
