"""The Training Operator's validating webhook for PyTorchJobs, pure, refusing in its words."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ..errors import ApiError
from .naming import DEFAULT_CONTAINER, MANAGED_BY_KUEUE, MANAGED_BY_OPERATOR, MASTER, WORKER

__all__ = ["WEBHOOK", "field_errors", "validate"]

Obj = Mapping[str, Any]

WEBHOOK = "validator.pytorchjob.training-operator.kubeflow.org"
_DNS1035 = "[a-z]([-a-z0-9]*[a-z0-9])?"
_DNS1035_RE = re.compile(f"^{_DNS1035}$")
_DNS1035_RULE = (
    "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an "
    "alphabetic character, and end with an alphanumeric character (e.g. 'my-name' or 'abc-123', "
    f"regex used for validation is '{_DNS1035}')"
)
_REPLICA_TYPES = (MASTER, WORKER)
_MANAGERS = (MANAGED_BY_KUEUE, MANAGED_BY_OPERATOR)
_SPECS = "spec.pytorchReplicaSpecs"


def _quoted(value: object) -> str:
    """A value as apimachinery's field errors print it: strings quoted, as Go's ``%q`` does."""
    return json.dumps(value) if isinstance(value, str) else str(value)


def _supported(values: tuple[str, ...]) -> str:
    return ", ".join(_quoted(v) for v in values)


def _name_errors(name: str) -> list[str]:
    problems = []
    if len(name) > 63:
        problems.append("must be no more than 63 characters")
    if not _DNS1035_RE.match(name):
        problems.append(_DNS1035_RULE)
    if not problems:
        return []
    return [f"metadata.name: Invalid value: {_quoted(name)}: should match: {','.join(problems)}"]


def _run_policy_errors(spec: Obj) -> list[str]:
    manager = (spec.get("runPolicy") or {}).get("managedBy")
    if manager is None or manager in _MANAGERS:
        return []
    return [
        f"spec.runPolicy.managedBy: Unsupported value: {_quoted(manager)}: supported values: "
        f"{_supported(_MANAGERS)}"
    ]


def _elastic_errors(spec: Obj, replicas: Obj) -> list[str]:
    policy = spec.get("elasticPolicy")
    if not isinstance(policy, Mapping):
        return []
    errors = []
    if WORKER not in replicas:
        errors.append(f"{_SPECS}[{WORKER}]: Required value: must be configured if elastic policy is used")
    if policy.get("nProcPerNode") is not None and spec.get("nprocPerNode") is not None:
        errors.append("spec.elasticPolicy.nProcPerNode: Forbidden: must not be used with spec.nprocPerNode")
    return errors


def _replica_errors(replica_type: str, replica: Obj | None) -> list[str]:
    path = f"{_SPECS}[{replica_type}]"
    containers_path = f"{path}.template.spec.containers"
    errors = []
    if replica_type not in _REPLICA_TYPES:
        errors.append(
            f"{path}: Unsupported value: {_quoted(replica_type)}: supported values: "
            f"{_supported(_REPLICA_TYPES)}"
        )
    replica = replica or {}
    containers = ((replica.get("template") or {}).get("spec") or {}).get("containers") or []
    if not containers:
        errors.append(f"{containers_path}: Required value: must be specified")
    for i, container in enumerate(containers):
        if not container.get("image"):
            errors.append(f"{containers_path}[{i}].image: Required value: must be required")
    if not any(c.get("name") == DEFAULT_CONTAINER for c in containers):
        wanted = f"must have at least one container with name {DEFAULT_CONTAINER}"
        errors.append(f"{containers_path}: Required value: {wanted}")
    count = replica.get("replicas")
    if replica_type == MASTER:
        if count != 1:
            errors.append(f"{path}.replicas: Forbidden: must be 1")
    elif count is not None and int(count) < 1:
        errors.append(f"{path}.replicas: Forbidden: must be at least 1")
    return errors


def field_errors(job: Obj) -> list[str]:
    """Every field error ``validatePyTorchJob`` finds in a PyTorchJob as the client sent it.

    The replica types are checked in name order, where the operator walks a Go map in no fixed order.
    """
    spec = job.get("spec") or {}
    replicas = spec.get("pytorchReplicaSpecs")
    errors = _name_errors(str((job.get("metadata") or {}).get("name") or ""))
    errors += _run_policy_errors(spec)
    errors += _elastic_errors(spec, replicas or {})
    if replicas is None:
        errors.append(f"{_SPECS}: Required value: must be required")
    for replica_type in sorted(replicas or {}):
        errors += _replica_errors(replica_type, (replicas or {})[replica_type])
    return errors


def _aggregate(errors: list[str]) -> str:
    """apimachinery's aggregate error: one message as it is, several in brackets, repeats dropped."""
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else f"[{', '.join(unique)}]"


def validate(job: Obj) -> None:
    """Raise what kube-apiserver answers when the webhook refuses a create or an update.

    controller-runtime turns a plain error into a denial, so the answer is 403 Forbidden, not 422.
    The operator's update check compares the new object with itself, so ``managedBy`` may change.
    """
    errors = field_errors(job)
    if errors:
        message = f'admission webhook "{WEBHOOK}" denied the request: {_aggregate(errors)}'
        raise ApiError(403, message, reason="Forbidden")
