"""Katib's status arithmetic, pure: trial conditions from the job, the experiment's counters and its end."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from .gjson import matches
from .metrics import objective_value
from .naming import UNAVAILABLE

__all__ = [
    "JobState",
    "conclude",
    "has",
    "job_state",
    "mark",
    "observation_available",
    "summarize",
    "trial_bucket",
    "trial_delta",
    "trial_outcome",
]

Obj = Mapping[str, Any]

# Experiment status counters and the trial lists behind them, in Go's field order.
_BUCKETS = (
    ("Killed", "trialsKilled", "killedTrialList"),
    ("Failed", "trialsFailed", "failedTrialList"),
    ("Succeeded", "trialsSucceeded", "succeededTrialList"),
    ("EarlyStopped", "trialsEarlyStopped", "earlyStoppedTrialList"),
    ("Running", "trialsRunning", "runningTrialList"),
    ("MetricsUnavailable", "trialMetricsUnavailable", "metricsUnavailableTrialList"),
    ("Pending", "trialsPending", "pendingTrialList"),
)


@dataclass(frozen=True)
class JobState:
    """What the trial's success and failure conditions say about its job, with the matched reason."""

    condition: str  # Succeeded, Failed or Running
    reason: str = ""
    message: str = ""


def has(obj: Obj, type_: str) -> bool:
    """Whether ``obj`` has condition ``type_`` with status True."""
    return any(
        c.get("type") == type_ and c.get("status") == "True"
        for c in (obj.get("status") or {}).get("conditions") or []
    )


def mark(status: dict[str, Any], type_: str, value: str, reason: str, message: str, now: str) -> None:
    """Katib's setCondition: unchanged when status and reason are; else moved to the end of the list."""
    conditions = list(status.get("conditions") or [])
    current = next((c for c in conditions if c.get("type") == type_), None)
    if current is not None and current.get("status") == value and current.get("reason") == reason:
        return
    new = {
        "type": type_,
        "status": value,
        "reason": reason,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    }
    if current is not None and current.get("status") == value:
        new["lastTransitionTime"] = current.get("lastTransitionTime", now)
    status["conditions"] = [c for c in conditions if c.get("type") != type_] + [new]


def _finish(status: dict[str, Any], type_: str, reason: str, message: str, now: str) -> None:
    """Turn Running to False, keeping its reason, then set the final condition, as Mark*Succeeded does."""
    running = next((c for c in status.get("conditions") or [] if c.get("type") == "Running"), None)
    if running is not None:
        mark(status, "Running", "False", running.get("reason", ""), running.get("message", ""), now)
    mark(status, type_, "True", reason, message, now)


def job_state(trial: Obj, job: Obj) -> JobState | None:
    """GetDeployedJobStatus: failure first, then success; a matched condition's reason and message."""
    spec = trial.get("spec") or {}
    for key, condition in (("failureCondition", "Failed"), ("successCondition", "Succeeded")):
        found = matches(job, str(spec.get(key) or ""))
        if found is None:
            continue
        first = found[0] if isinstance(found, list) else found
        detail = first if isinstance(first, dict) else {}
        return JobState(condition, str(detail.get("reason") or ""), str(detail.get("message") or ""))
    if not has(trial, "Running"):
        return JobState("Running")
    return None


def observation_available(trial: Obj) -> bool:
    """IsObservationAvailable: the objective metric has a latest value other than "unavailable"."""
    name = ((trial.get("spec") or {}).get("objective") or {}).get("objectiveMetricName")
    metrics = ((trial.get("status") or {}).get("observation") or {}).get("metrics") or []
    return any(m.get("name") == name and m.get("latest") != UNAVAILABLE for m in metrics)


def _completed(trial: Obj) -> bool:
    return any(has(trial, t) for t in ("Succeeded", "Failed", "Killed", "EarlyStopped", "MetricsUnavailable"))


def trial_outcome(
    trial: Obj, state: JobState, now: str
) -> tuple[dict[str, Any], tuple[str, str, str] | None]:
    """UpdateTrialStatusCondition: the trial's new status and the event (type, reason, message) to record."""
    status = json.loads(json.dumps(trial.get("status") or {}))
    job = str((trial.get("metadata") or {}).get("name"))

    def detail(reason: str, message: str) -> tuple[str, str]:
        if state.message:
            message = f"{message}. Job message: {state.message}"
        if state.reason:
            reason = f"{reason}. Job reason: {state.reason}"
        return reason, message

    if state.condition == "Succeeded":
        if observation_available(trial) and not has(trial, "Succeeded"):
            if has(trial, "EarlyStopped"):
                return status, None
            _finish(status, "Succeeded", *detail("TrialSucceeded", "Trial has succeeded"), now)
            status["completionTime"] = now
            return status, ("Normal", "JobSucceeded", f"Job {job} has succeeded")
        if not observation_available(trial) and not has(trial, "MetricsUnavailable"):
            _finish(
                status, "MetricsUnavailable", *detail("MetricsUnavailable", "Metrics are not available"), now
            )
            status["completionTime"] = now
            return status, ("Warning", "MetricsUnavailable", f"Metrics are not available for Job {job}")
        return status, None
    if state.condition == "Failed" and not has(trial, "Failed") and not has(trial, "EarlyStopped"):
        _finish(status, "Failed", *detail("TrialFailed", "Trial has failed"), now)
        status["completionTime"] = now
        message = f"Job {job} has failed"
        if state.message or state.reason:
            message = f"{message}. {state.message} {state.reason}"
        return status, ("Normal", "JobFailed", message)
    if state.condition == "Running" and not has(trial, "Running") and not _completed(trial):
        mark(status, "Running", "True", "TrialRunning", "Trial is running", now)
        return status, ("Normal", "JobRunning", f"Job {job} is running")
    return status, None


def trial_bucket(trial: Obj) -> str:
    """Which experiment counter a trial adds to, in the order updateTrialsSummary checks them."""
    for state, _, _ in _BUCKETS[:-1]:
        if has(trial, state):
            return state
    return "Pending"


def _better(value: float, best: float, kind: str) -> bool:
    return value < best if kind == "minimize" else value > best if kind == "maximize" else False


def _goal_reached(best: float, objective: Obj) -> bool:
    goal = objective.get("goal")
    if goal is None:
        return False
    kind = objective.get("type")
    return (kind == "minimize" and best <= float(goal)) or (kind == "maximize" and best >= float(goal))


def summarize(exp: Obj, trials: Sequence[Obj]) -> tuple[dict[str, Any], bool]:
    """updateTrialsSummary: counters, trial lists and currentOptimalTrial; True when the goal is reached."""
    objective = (exp.get("spec") or {}).get("objective") or {}
    lists: dict[str, list[str]] = {state: [] for state, _, _ in _BUCKETS}
    best_index, best_value, reached = -1, 0.0, False
    for index, trial in enumerate(trials):
        lists[trial_bucket(trial)].append(str(trial["metadata"]["name"]))
        text = objective_value(trial)
        if text == UNAVAILABLE:
            continue
        try:
            value = float(text)
        except ValueError:
            best_index = index  # Katib keeps a trial whose value does not parse, as it does
            continue
        if best_index == -1:
            best_index, best_value = index, value
        if _better(value, best_value, str(objective.get("type"))):
            best_index, best_value = index, value
        reached = reached or _goal_reached(best_value, objective)
    out: dict[str, Any] = {"trials": len(trials)}
    for state, counter, list_key in _BUCKETS:
        if lists[state]:
            out[counter] = len(lists[state])
            out[list_key] = lists[state]
    if best_index != -1:
        best = trials[best_index]
        out["currentOptimalTrial"] = {
            "bestTrialName": best["metadata"]["name"],
            "parameterAssignments": list((best.get("spec") or {}).get("parameterAssignments") or []),
            "observation": {
                "metrics": list((((best.get("status") or {}).get("observation") or {}).get("metrics")) or [])
            },
        }
    return out, reached


def conclude(exp: Obj, status: dict[str, Any], goal_reached: bool, now: str) -> None:
    """UpdateExperimentStatusCondition: goal, then failures, then the trial budget decide the end."""
    spec = exp.get("spec") or {}
    count = {key: int(status.get(key) or 0) for _, key, _ in _BUCKETS}
    completed = (
        count["trialsSucceeded"]
        + count["trialsFailed"]
        + count["trialsKilled"]
        + count["trialsEarlyStopped"]
        + count["trialMetricsUnavailable"]
    )
    failed = count["trialsFailed"] + count["trialMetricsUnavailable"]
    most_failed, most = spec.get("maxFailedTrialCount"), spec.get("maxTrialCount")
    if goal_reached:
        _finish(
            status,
            "Succeeded",
            "ExperimentGoalReached",
            "Experiment has succeeded because Objective goal has reached",
            now,
        )
    elif most_failed is not None and failed != 0 and failed >= most_failed:
        _finish(
            status,
            "Failed",
            "ExperimentFailed",
            "Experiment has failed because max failed count has reached",
            now,
        )
    elif most is not None and completed >= most:
        _finish(
            status,
            "Succeeded",
            "ExperimentMaxTrialsReached",
            "Experiment has succeeded because max trial count has reached",
            now,
        )
    else:
        mark(status, "Running", "True", "ExperimentRunning", "Experiment is running", now)
        return
    status["completionTime"] = now


def trial_delta(spec: Obj, status: Obj) -> int:
    """ReconcileTrials: trials to add to keep ``parallelTrialCount`` going within ``maxTrialCount``;
    negative when more are active than ``parallelTrialCount`` allows, after the user lowered it.

    A trial without metrics counts neither as active nor as completed here, so Katib replaces it.
    """
    parallel = int(spec.get("parallelTrialCount") or 3)
    active = int(status.get("trialsPending") or 0) + int(status.get("trialsRunning") or 0)
    completed = sum(
        int(status.get(key) or 0)
        for key in ("trialsSucceeded", "trialsFailed", "trialsKilled", "trialsEarlyStopped")
    )
    if active >= parallel:
        return parallel - active
    wanted = (
        parallel
        if spec.get("maxTrialCount") is None
        else min(parallel, int(spec["maxTrialCount"]) - completed)
    )
    return max(0, wanted - active)
