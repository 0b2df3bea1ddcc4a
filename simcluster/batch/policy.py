"""The Job controller's decisions, pure: from a Job and its pods, the pods to add or remove and the status."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from .defaults import COMPLETION_INDEX

__all__ = ["Plan", "compress_indexes", "plan", "pod_index"]

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class Plan:
    """What to do now: pods to create (their completion index, or None), pods to delete, the status."""

    status: dict[str, Any]
    create: tuple[int | None, ...] = ()
    delete: tuple[str, ...] = ()
    events: tuple[tuple[str, str, str], ...] = ()  # (type, reason, message)
    recheck_after: float | None = None  # seconds until the active deadline passes


def pod_index(pod: Obj) -> int | None:
    """The completion index an Indexed Job's pod carries in its annotation (or label)."""
    meta = pod.get("metadata") or {}
    text = (meta.get("annotations") or {}).get(COMPLETION_INDEX) or (meta.get("labels") or {}).get(
        COMPLETION_INDEX
    )
    try:
        return int(text) if text is not None else None
    except ValueError:
        return None


def compress_indexes(indexes: Sequence[int]) -> str:
    """``[0, 1, 2, 5]`` as the API writes ``status.completedIndexes``: ``"0-2,5"``."""
    out: list[str] = []
    ordered = sorted(set(indexes))
    i = 0
    while i < len(ordered):
        j = i
        while j + 1 < len(ordered) and ordered[j + 1] == ordered[j] + 1:
            j += 1
        out.append(str(ordered[i]) if i == j else f"{ordered[i]}-{ordered[j]}")
        i = j + 1
    return ",".join(out)


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _ready(pod: Obj) -> bool:
    return any(
        c.get("type") == "Ready" and c.get("status") == "True"
        for c in (pod.get("status") or {}).get("conditions") or []
    )


def _restarts(pod: Obj) -> int:
    return sum(
        int(cs.get("restartCount") or 0) for cs in (pod.get("status") or {}).get("containerStatuses") or []
    )


def _condition(status: dict[str, Any], type_: str, value: str, reason: str, message: str, now: str) -> bool:
    """Set a condition; True when it changed."""
    conditions = status.setdefault("conditions", [])
    for cond in conditions:
        if cond["type"] == type_:
            if cond["status"] == value:
                return False
            cond.update(
                status=value, reason=reason, message=message, lastProbeTime=now, lastTransitionTime=now
            )
            return True
    conditions.append(
        {
            "type": type_,
            "status": value,
            "reason": reason,
            "message": message,
            "lastProbeTime": now,
            "lastTransitionTime": now,
        }
    )
    return True


def _true(status: Mapping[str, Any], type_: str) -> bool:
    return any(c["type"] == type_ and c["status"] == "True" for c in status.get("conditions") or [])


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def plan(job: Obj, pods: Sequence[Obj], now: datetime, stamp: str) -> Plan:
    """The next step for ``job`` given ``pods`` (those it owns); ``stamp`` is ``now`` as RFC 3339."""
    spec = job.get("spec") or {}
    status: dict[str, Any] = json.loads(json.dumps(job.get("status") or {}))
    indexed = spec.get("completionMode") == "Indexed"
    completions = spec.get("completions")
    parallelism = int(spec.get("parallelism") or 0)
    on_failure = ((spec.get("template") or {}).get("spec") or {}).get("restartPolicy") == "OnFailure"
    live = [p for p in pods if _phase(p) not in {"Succeeded", "Failed"}]
    active = [p for p in live if not (p.get("metadata") or {}).get("deletionTimestamp")]
    terminating = len(live) - len(active)
    succeeded_pods = [p for p in pods if _phase(p) == "Succeeded"]
    done_indexes = sorted({i for p in succeeded_pods if (i := pod_index(p)) is not None})
    succeeded = len(done_indexes) if indexed else len(succeeded_pods)
    failed = sum(1 for p in pods if _phase(p) == "Failed") + (
        sum(_restarts(p) for p in pods) if on_failure else 0
    )
    events: list[tuple[str, str, str]] = []
    for key, value in (("active", len(active)), ("succeeded", succeeded), ("failed", failed)):
        if value:
            status[key] = value
        else:
            status.pop(key, None)
    status["ready"] = sum(1 for p in active if _ready(p))
    status["terminating"] = terminating
    status.setdefault("uncountedTerminatedPods", {})
    if indexed:
        if done_indexes:
            status["completedIndexes"] = compress_indexes(done_indexes)
        else:
            status.pop("completedIndexes", None)
    everything = tuple(str(p["metadata"]["name"]) for p in active)
    if _true(status, "Complete") or _true(status, "Failed"):
        return Plan(status, delete=everything)

    if spec.get("suspend"):
        if _condition(status, "Suspended", "True", "JobSuspended", "Job suspended", stamp):
            events.append(("Normal", "Suspended", "Job suspended"))
        return Plan(status, delete=everything, events=tuple(events))
    if _true(status, "Suspended"):
        _condition(status, "Suspended", "False", "JobResumed", "Job resumed", stamp)
        events.append(("Normal", "Resumed", "Job resumed"))
        status["startTime"] = stamp  # the active deadline counts from the resume
    status.setdefault("startTime", stamp)

    def finish(kind: str, reason: str, message: str) -> Plan:
        if kind == "Failed":
            _condition(status, "FailureTarget", "True", reason, message, stamp)
            _condition(status, "Failed", "True", reason, message, stamp)
            events.append(("Warning", reason, message))
        else:
            _condition(status, "SuccessCriteriaMet", "True", reason, message, stamp)
            _condition(status, "Complete", "True", reason, message, stamp)
            status["completionTime"] = stamp
            events.append(("Normal", "Completed", "Job completed"))
        status.pop("active", None)
        status["ready"] = 0
        return Plan(status, delete=everything, events=tuple(events))

    deadline = spec.get("activeDeadlineSeconds")
    recheck = None
    if deadline is not None:
        left = float(deadline) - (now - _parse(status["startTime"])).total_seconds()
        if left <= 0:
            return finish("Failed", "DeadlineExceeded", "Job was active longer than specified deadline")
        recheck = left
    if failed > int(spec.get("backoffLimit", 6)):
        return finish("Failed", "BackoffLimitExceeded", "Job has reached the specified backoff limit")
    if completions is None:
        if succeeded and not active:
            return finish("Complete", "CompletionsReached", "Reached expected number of succeeded pods")
    elif succeeded >= int(completions):
        return finish("Complete", "CompletionsReached", "Reached expected number of succeeded pods")

    create: list[int | None] = []
    delete: list[str] = []
    if indexed:
        running = {pod_index(p) for p in active}
        pending = [i for i in range(int(completions or 0)) if i not in done_indexes and i not in running]
        create = list(pending[: max(0, parallelism - len(active))])
    else:
        # a work queue (no completions) stops adding pods once one succeeded
        remaining = (
            (int(completions) - succeeded) if completions is not None else (0 if succeeded else parallelism)
        )
        want = min(parallelism, remaining)
        if want > len(active):
            create = [None] * (want - len(active))
        elif want < len(active):  # parallelism lowered: the newest go
            newest = sorted(
                active, key=lambda p: str(p["metadata"].get("creationTimestamp", "")), reverse=True
            )
            delete = [str(p["metadata"]["name"]) for p in newest[: len(active) - want]]
    return Plan(status, tuple(create), tuple(delete), tuple(events), recheck)
