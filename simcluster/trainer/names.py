"""The names Kubeflow Trainer and JobSet put on objects: API group, labels, annotations, env, reasons."""

from __future__ import annotations

__all__ = [
    "ANCESTOR_LABEL",
    "ANCESTOR_TRAINER",
    "API_VERSION",
    "CLUSTER_RUNTIMES",
    "CLUSTER_RUNTIME_KIND",
    "DEFAULT_MANAGER",
    "FRAMEWORK_LABEL",
    "GROUP",
    "JOBSET_GLOBAL_REPLICAS",
    "JOBSET_GROUP_INDEX",
    "JOBSET_GROUP_NAME",
    "JOBSET_GROUP_REPLICAS",
    "JOBSET_JOB_GLOBAL_INDEX",
    "JOBSET_JOB_INDEX",
    "JOBSET_JOB_KEY",
    "JOBSET_NAME",
    "JOBSET_REPLICAS",
    "JOBSET_RESTARTS",
    "JOBSET_RJOB_NAME",
    "JOBSET_UID",
    "MANAGERS",
    "MASTER_PORT",
    "NODE",
    "PET_MASTER_ADDR",
    "PET_MASTER_PORT",
    "PET_NNODES",
    "PET_NODE_RANK",
    "PET_NPROC_PER_NODE",
    "RESERVED_ENV",
    "RUNTIMES",
    "RUNTIME_KIND",
    "TRAINJOBS",
    "TRAINJOB_KIND",
    "VERSION",
]

GROUP = "trainer.kubeflow.org"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
TRAINJOBS = "trainjobs"
RUNTIMES = "trainingruntimes"
CLUSTER_RUNTIMES = "clustertrainingruntimes"
TRAINJOB_KIND = "TrainJob"
RUNTIME_KIND = "TrainingRuntime"
CLUSTER_RUNTIME_KIND = "ClusterTrainingRuntime"

# The controller that runs a TrainJob; the CRD defaults spec.managedBy to it and allows only these.
DEFAULT_MANAGER = "trainer.kubeflow.org/trainjob-controller"
MANAGERS = (DEFAULT_MANAGER, "kueue.x-k8s.io/multikueue")

# The runtime's labels the SDK reads, and the replicated job that runs the trainer.
FRAMEWORK_LABEL = "trainer.kubeflow.org/framework"
ANCESTOR_LABEL = "trainer.kubeflow.org/trainjob-ancestor-step"
ANCESTOR_TRAINER = "trainer"
NODE = "node"  # the trainer's replicated job and its container

# What Trainer's torch plugin sets for torchrun, which reads each flag from PET_<FLAG>.
PET_NNODES = "PET_NNODES"
PET_NPROC_PER_NODE = "PET_NPROC_PER_NODE"
PET_NODE_RANK = "PET_NODE_RANK"
PET_MASTER_ADDR = "PET_MASTER_ADDR"
PET_MASTER_PORT = "PET_MASTER_PORT"
RESERVED_ENV = (PET_MASTER_ADDR, PET_MASTER_PORT, PET_NNODES, PET_NODE_RANK, PET_NPROC_PER_NODE)
MASTER_PORT = 29500

# JobSet's labels, set as annotations too, on each child Job and its pods.
JOBSET_NAME = "jobset.sigs.k8s.io/jobset-name"
JOBSET_UID = "jobset.sigs.k8s.io/jobset-uid"
JOBSET_RJOB_NAME = "jobset.sigs.k8s.io/replicatedjob-name"
JOBSET_REPLICAS = "jobset.sigs.k8s.io/replicatedjob-replicas"
JOBSET_GLOBAL_REPLICAS = "jobset.sigs.k8s.io/global-replicas"
JOBSET_JOB_INDEX = "jobset.sigs.k8s.io/job-index"
JOBSET_JOB_GLOBAL_INDEX = "jobset.sigs.k8s.io/job-global-index"
JOBSET_JOB_KEY = "jobset.sigs.k8s.io/job-key"
JOBSET_RESTARTS = "jobset.sigs.k8s.io/restart-attempt"
JOBSET_GROUP_NAME = "jobset.sigs.k8s.io/group-name"
JOBSET_GROUP_REPLICAS = "jobset.sigs.k8s.io/group-replicas"
JOBSET_GROUP_INDEX = "jobset.sigs.k8s.io/job-group-index"
