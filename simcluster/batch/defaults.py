"""What the API server fills into and checks on a new batch/v1 Job, and the labels its pods carry."""

from __future__ import annotations

from typing import Any

from ..errors import invalid

__all__ = [
    "BATCH_CONTROLLER_UID",
    "BATCH_JOB_NAME",
    "COMPLETION_INDEX",
    "CONTROLLER_UID",
    "JOB_NAME",
    "default_job",
]

JOB_NAME = "job-name"
BATCH_JOB_NAME = "batch.kubernetes.io/job-name"
CONTROLLER_UID = "controller-uid"
BATCH_CONTROLLER_UID = "batch.kubernetes.io/controller-uid"
COMPLETION_INDEX = "batch.kubernetes.io/job-completion-index"


def default_job(job: dict[str, Any]) -> None:
    """Validate and default ``job`` in place, as kube-apiserver does on create (uid and name set)."""
    meta = job["metadata"]
    name, uid = str(meta["name"]), str(meta["uid"])
    spec = job.setdefault("spec", {})
    template = spec.get("template")
    if not isinstance(template, dict):
        template = spec["template"] = {}
    pod_spec = template.setdefault("spec", {})
    causes: list[tuple[str, str]] = []
    policy = pod_spec.get("restartPolicy")
    if policy is None:
        causes.append(
            ("spec.template.spec.restartPolicy", 'Required value: valid values: "OnFailure", "Never"')
        )
    elif policy not in {"OnFailure", "Never"}:
        causes.append(
            (
                "spec.template.spec.restartPolicy",
                f'Unsupported value: "{policy}": supported values: "OnFailure", "Never"',
            )
        )
    if not pod_spec.get("containers"):
        causes.append(("spec.template.spec.containers", "Required value"))
    mode = spec.setdefault("completionMode", "NonIndexed")
    if mode not in {"NonIndexed", "Indexed"}:
        causes.append(
            ("spec.completionMode", f'Unsupported value: "{mode}": supported values: "NonIndexed", "Indexed"')
        )
    if mode == "Indexed" and spec.get("completions") is None:
        causes.append(("spec.completions", "Required value: when completion mode is Indexed"))
    for key in ("completions", "parallelism", "backoffLimit", "activeDeadlineSeconds"):
        value = spec.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            causes.append((f"spec.{key}", f"Invalid value: {value!r}: must be greater than or equal to 0"))
    if causes:
        err = invalid("Job", name, causes, group="batch")
        err.message = f'Job.batch "{name}" is invalid: ' + "; ".join(f"{f}: {m}" for f, m in causes)
        raise err
    if spec.get("completions") is None and spec.get("parallelism") is None:
        spec["completions"] = 1
    spec.setdefault("parallelism", 1)
    spec.setdefault("backoffLimit", 6)
    spec.setdefault("suspend", False)
    spec.setdefault("podReplacementPolicy", "TerminatingOrFailed")
    generated = {CONTROLLER_UID: uid, BATCH_CONTROLLER_UID: uid, JOB_NAME: name, BATCH_JOB_NAME: name}
    if not spec.get("manualSelector"):
        spec["selector"] = {"matchLabels": {BATCH_CONTROLLER_UID: uid}}
    tmeta = template.setdefault("metadata", {})
    tmeta["labels"] = {**(tmeta.get("labels") or {}), **generated}
    if not meta.get("labels"):
        meta["labels"] = dict(tmeta["labels"])
