"""The TrainJob controller's decisions, pure: from a TrainJob and its Jobs, what to change and the status."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .names import JOBSET_RJOB_NAME

__all__ = [
    "ALL_JOBS_COMPLETED",
    "DEADLINE_EXCEEDED",
    "FAILED_JOBS",
    "Plan",
    "finished",
    "plan",
    "set_condition",
]

Obj = Mapping[str, Any]

# JobSet's reasons and messages, which Trainer copies into the TrainJob's Complete and Failed.
ALL_JOBS_COMPLETED = ("AllJobsCompleted", "jobset completed successfully")
FAILED_JOBS = ("FailedJobs", "jobset failed due to one or more job failures")
# Trainer's own.
DEADLINE_EXCEEDED = ("DeadlineExceeded", "TrainJob exceeded its active deadline")
SUSPENDED = ("Suspended", "TrainJob is suspended")
RESUMED = ("Resumed", "TrainJob is resumed")


@dataclass(frozen=True)
class Plan:
    """What to do now for one TrainJob."""

    status: dict[str, Any]
    create: bool = False  # make the child Jobs and the Service (none exist yet)
    suspend: tuple[tuple[str, bool], ...] = ()  # (Job, spec.suspend) for Jobs that must follow
    delete: tuple[str, ...] = ()  # Jobs to delete: the JobSet finished, or the deadline passed
    recheck_after: float | None = None  # seconds until the active deadline passes


def _true(conditions: Sequence[Obj], type_: str) -> Obj | None:
    for cond in conditions:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return cond
    return None


def finished(trainjob: Obj) -> bool:
    """Complete or Failed: nothing runs for it any more."""
    conditions = (trainjob.get("status") or {}).get("conditions") or []
    return bool(_true(conditions, "Complete") or _true(conditions, "Failed"))


def set_condition(
    status: dict[str, Any], type_: str, value: str, reason: str, message: str, stamp: str
) -> None:
    """``meta.SetStatusCondition``: the transition time moves only when the status changes."""
    conditions: list[dict[str, Any]] = status.setdefault("conditions", [])
    for cond in conditions:
        if cond.get("type") == type_:
            if cond.get("status") != value:
                cond["lastTransitionTime"] = stamp
            cond.update(status=value, reason=reason, message=message)
            return
    conditions.append(
        {"type": type_, "status": value, "reason": reason, "message": message, "lastTransitionTime": stamp}
    )


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def _job_state(job: Obj) -> str:
    conditions = (job.get("status") or {}).get("conditions") or []
    if _true(conditions, "Failed"):
        return "failed"
    if _true(conditions, "Complete"):
        return "succeeded"
    return "active"


def _jobs_status(jobs: Sequence[Obj], rjobs: Sequence[str]) -> list[dict[str, Any]]:
    """``status.jobsStatus``: per replicated job, how many of its Jobs are ready, active, done."""
    counts = {
        name: dict.fromkeys(("ready", "succeeded", "failed", "active", "suspended"), 0) for name in rjobs
    }
    for job in jobs:
        name = ((job.get("metadata") or {}).get("labels") or {}).get(JOBSET_RJOB_NAME)
        if name not in counts:
            continue
        state, spec, js = _job_state(job), job.get("spec") or {}, job.get("status") or {}
        if state != "active":
            counts[name][state] += 1
            continue
        pods = min(int(spec.get("parallelism") or 1), int(spec.get("completions") or 1 << 30))
        if int(js.get("succeeded") or 0) + int(js.get("ready") or 0) >= pods:
            counts[name]["ready"] += 1
        if int(js.get("active") or 0) > 0:
            counts[name]["active"] += 1
        if spec.get("suspend"):
            counts[name]["suspended"] += 1
    return [{"name": name, **c} for name, c in counts.items()]


def plan(trainjob: Obj, jobs: Sequence[Obj], rjobs: Sequence[str], now: datetime, stamp: str) -> Plan:
    """The next step for ``trainjob`` given the Jobs it owns and the replicated jobs its runtime names;
    ``stamp`` is ``now`` as RFC 3339."""
    spec = trainjob.get("spec") or {}
    status: dict[str, Any] = copy.deepcopy(dict(trainjob.get("status") or {}))
    suspended = bool(spec.get("suspend"))
    conditions = status.get("conditions") or []
    if suspended:
        set_condition(status, "Suspended", "True", *SUSPENDED, stamp)
    elif _true(conditions, "Suspended"):
        set_condition(status, "Suspended", "False", *RESUMED, stamp)
    if jobs:
        status["jobsStatus"] = _jobs_status(jobs, rjobs)
    done = finished({"status": status})
    active = tuple(str(j["metadata"]["name"]) for j in jobs if _job_state(j) == "active")
    if done:
        return Plan(status, delete=active)

    failed = [j for j in jobs if _job_state(j) == "failed"]
    if failed:
        first = min(failed, key=_failed_at)
        reason, message = FAILED_JOBS
        set_condition(
            status,
            "Failed",
            "True",
            reason,
            f"{message} (first failed job: {first['metadata']['name']})",
            stamp,
        )
        return Plan(status, delete=active)
    if jobs and rjobs and all(_job_state(j) == "succeeded" for j in jobs):
        set_condition(status, "Complete", "True", *ALL_JOBS_COMPLETED, stamp)
        return Plan(status)

    recheck = None
    deadline = spec.get("activeDeadlineSeconds")
    if deadline and not suspended:
        start = str(trainjob["metadata"].get("creationTimestamp") or stamp)
        for cond in status.get("conditions") or []:
            if cond.get("type") == "Suspended" and cond.get("status") == "False":
                start = str(cond.get("lastTransitionTime") or start)
        left = float(deadline) - (now - _parse(start)).total_seconds()
        if left <= 0:
            set_condition(status, "Failed", "True", *DEADLINE_EXCEEDED, stamp)
            return Plan(status, delete=tuple(str(j["metadata"]["name"]) for j in jobs))
        recheck = left
    follow = tuple(
        (str(j["metadata"]["name"]), suspended)
        for j in jobs
        if _job_state(j) == "active" and bool((j.get("spec") or {}).get("suspend")) != suspended
    )
    return Plan(status, create=not jobs, suspend=follow, recheck_after=recheck)


def _failed_at(job: Obj) -> str:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Failed":
            return str(cond.get("lastTransitionTime") or "")
    return ""
