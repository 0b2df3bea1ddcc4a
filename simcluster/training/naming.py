"""The Training Operator's names for PyTorchJobs: labels, replica types, the default container and port."""

from __future__ import annotations

__all__ = [
    "CONTROLLER_NAME",
    "DEFAULT_CONTAINER",
    "DEFAULT_PORT",
    "DEFAULT_PORT_NAME",
    "GROUP",
    "KIND",
    "LABEL_JOB_NAME",
    "LABEL_JOB_ROLE",
    "LABEL_OPERATOR_NAME",
    "LABEL_REPLICA_INDEX",
    "LABEL_REPLICA_TYPE",
    "MANAGED_BY_KUEUE",
    "MANAGED_BY_OPERATOR",
    "MASTER",
    "PLURAL",
    "VERSION",
    "WORKER",
    "job_labels",
    "reason",
    "replica_name",
]

GROUP, VERSION, PLURAL, KIND = "kubeflow.org", "v1", "pytorchjobs", "PyTorchJob"
CONTROLLER_NAME = "pytorchjob-controller"  # the value of the operator-name label, and the events' source

LABEL_OPERATOR_NAME = "training.kubeflow.org/operator-name"
LABEL_JOB_NAME = "training.kubeflow.org/job-name"
LABEL_REPLICA_TYPE = "training.kubeflow.org/replica-type"
LABEL_REPLICA_INDEX = "training.kubeflow.org/replica-index"
LABEL_JOB_ROLE = "training.kubeflow.org/job-role"

MASTER, WORKER = "Master", "Worker"
DEFAULT_CONTAINER = "pytorch"
DEFAULT_PORT_NAME = "pytorchjob-port"
DEFAULT_PORT = 23456

# runPolicy.managedBy: the operator reconciles jobs with no value or its own; it leaves Kueue's alone
MANAGED_BY_OPERATOR = "kubeflow.org/training-operator"
MANAGED_BY_KUEUE = "kueue.x-k8s.io/multikueue"


def reason(what: str) -> str:
    """A condition's or event's reason: the kind, then what happened (``PyTorchJobSucceeded``)."""
    return f"{KIND}{what}"


def replica_name(job: str, replica_type: str, index: int) -> str:
    """The pod and Service of one replica: ``<job>-master-0``, ``<job>-worker-1``."""
    return f"{job}-{replica_type.lower()}-{index}".replace("/", "-")


def job_labels(job: str) -> dict[str, str]:
    """The labels every pod and Service of a job carries, and that its selectors match."""
    return {LABEL_OPERATOR_NAME: CONTROLLER_NAME, LABEL_JOB_NAME: job.replace("/", "-")}
