"""Katib's labels, condition names, reasons and the defaults its webhook fills in, in one place."""

from __future__ import annotations

__all__ = [
    "API_VERSION",
    "COLLECTOR_INJECTION",
    "DEFAULT_CONDITIONS",
    "DEFAULT_PRIMARY_POD_LABELS",
    "GROUP",
    "LABEL_EXPERIMENT",
    "LABEL_TRIAL",
    "SUGGESTION_ALGORITHMS",
    "TRIAL_NAME_ENV",
    "TRIAL_RESOURCES",
    "UNAVAILABLE",
    "VALIDATOR",
]

GROUP = "kubeflow.org"
API_VERSION = "kubeflow.org/v1beta1"
LABEL_EXPERIMENT = "katib.kubeflow.org/experiment"
LABEL_TRIAL = "katib.kubeflow.org/trial"
TRIAL_NAME_ENV = "KATIB_TRIAL_NAME"
# Katib's webhooks act only in namespaces that carry this label, as Kubeflow profile namespaces do.
COLLECTOR_INJECTION = "katib.kubeflow.org/metrics-collector-injection"
VALIDATOR = "validator.experiment.katib.kubeflow.org"
UNAVAILABLE = "unavailable"

# The algorithms of the standalone install's katib-config; simcluster runs random and grid itself
# and the webhook accepts the others' names, as the real one does, but their Suggestion fails.
SUGGESTION_ALGORITHMS = (
    "random",
    "tpe",
    "grid",
    "hyperband",
    "bayesianoptimization",
    "cmaes",
    "sobol",
    "multivariate-tpe",
    "enas",
    "darts",
    "pbt",
)

_JOB_SUCCESS = 'status.conditions.#(type=="Complete")#|#(status=="True")#'
_FAILED = 'status.conditions.#(type=="Failed")#|#(status=="True")#'
_KUBEFLOW_SUCCESS = 'status.conditions.#(type=="Succeeded")#|#(status=="True")#'

# (successCondition, failureCondition) per trial kind, from experiment_defaults.go.
DEFAULT_CONDITIONS: dict[str, tuple[str, str]] = {
    "Job": (_JOB_SUCCESS, _FAILED),
    "TrainJob": (_JOB_SUCCESS, _FAILED),
    "TFJob": (_KUBEFLOW_SUCCESS, _FAILED),
    "PyTorchJob": (_KUBEFLOW_SUCCESS, _FAILED),
    "XGBoostJob": (_KUBEFLOW_SUCCESS, _FAILED),
    "MPIJob": (_KUBEFLOW_SUCCESS, _FAILED),
}

DEFAULT_PRIMARY_POD_LABELS: dict[str, dict[str, str]] = {
    "TrainJob": {
        "jobset.sigs.k8s.io/replicatedjob-name": "node",
        "batch.kubernetes.io/job-completion-index": "0",
    },
    "TFJob": {"training.kubeflow.org/job-role": "master"},
    "PyTorchJob": {"training.kubeflow.org/job-role": "master"},
    "XGBoostJob": {"training.kubeflow.org/job-role": "master"},
    "MPIJob": {"training.kubeflow.org/job-role": "master"},
}

# katib-config's trialResources in the standalone install, plus Argo's Workflow (its documented addition);
# a cluster offers those of them it serves.
TRIAL_RESOURCES = (
    ("trainer.kubeflow.org/v1alpha1", "TrainJob"),
    ("batch/v1", "Job"),
    ("kubeflow.org/v1", "TFJob"),
    ("kubeflow.org/v1", "PyTorchJob"),
    ("kubeflow.org/v1", "MPIJob"),
    ("kubeflow.org/v1", "XGBoostJob"),
    ("argoproj.io/v1alpha1", "Workflow"),
)
