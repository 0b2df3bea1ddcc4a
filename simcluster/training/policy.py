"""The PyTorchJob controller's decisions, pure: what to create and delete, and the status, for one pass."""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from .naming import (
    DEFAULT_CONTAINER,
    KIND,
    LABEL_REPLICA_INDEX,
    LABEL_REPLICA_TYPE,
    MASTER,
    WORKER,
    job_labels,
    reason,
)

__all__ = ["Plan", "condition_true", "plan", "selector"]

Obj = Mapping[str, Any]
Event = tuple[str, str, str]  # (type, reason, message)


@dataclass(frozen=True)
class Plan:
    """What one pass does: replicas to create as (type, index), pods and Services to delete by name."""

    status: dict[str, Any]
    create: tuple[tuple[str, int], ...] = ()
    create_services: tuple[tuple[str, int], ...] = ()
    delete_pods: tuple[str, ...] = ()
    delete_services: tuple[str, ...] = ()
    events: tuple[Event, ...] = ()
    recheck_after: float | None = None  # seconds until runPolicy.activeDeadlineSeconds passes


@dataclass
class _Pass:
    """The notes one pass takes while it walks the job's replicas."""

    status: dict[str, Any]
    now: str
    create: list[tuple[str, int]] = field(default_factory=list)
    create_services: list[tuple[str, int]] = field(default_factory=list)
    delete_pods: list[str] = field(default_factory=list)
    delete_services: list[str] = field(default_factory=list)
    events: list[Event] = field(default_factory=list)

    def condition(self, type_: str, value: str, what: str, message: str) -> None:
        _set_condition(self.status, type_, value, reason(what), message, self.now)

    def plan(self, recheck_after: float | None = None) -> Plan:
        return Plan(
            status=self.status,
            create=tuple(self.create),
            create_services=tuple(self.create_services),
            delete_pods=tuple(dict.fromkeys(self.delete_pods)),
            delete_services=tuple(dict.fromkeys(self.delete_services)),
            events=tuple(self.events),
            recheck_after=recheck_after,
        )


def _rfc3339(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse(stamp: str) -> datetime:
    return datetime.fromisoformat(stamp.replace("Z", "+00:00"))


def condition_true(status: Obj, type_: str) -> bool:
    return any(c.get("type") == type_ and c.get("status") == "True" for c in status.get("conditions") or [])


def _finished(status: Obj) -> bool:
    return condition_true(status, "Succeeded") or condition_true(status, "Failed")


def _set_condition(status: dict[str, Any], type_: str, value: str, why: str, message: str, now: str) -> None:
    """``setCondition`` of the operator: nothing changes once Failed; Running and Restarting replace
    each other; Succeeded and Failed turn Running off."""
    conditions: list[dict[str, Any]] = status.get("conditions") or []
    if condition_true(status, "Failed"):
        return
    current = next((c for c in conditions if c.get("type") == type_), None)
    if current is not None and current.get("status") == value and current.get("reason") == why:
        return
    new = {
        "type": type_,
        "status": value,
        "reason": why,
        "message": message,
        "lastUpdateTime": now,
        "lastTransitionTime": now,
    }
    if current is not None and current.get("status") == value:
        new["lastTransitionTime"] = current.get("lastTransitionTime", now)
    kept = []
    for cond in conditions:
        other = cond.get("type")
        if other == type_ or {other, type_} == {"Running", "Restarting"}:
            continue
        if type_ in ("Failed", "Succeeded") and other == "Running":
            cond = {**cond, "status": "False"}
        kept.append(cond)
    status["conditions"] = [*kept, new]


def selector(job_name: str, replica_type: str) -> str:
    """``status.replicaStatuses[type].selector``: the labels of the type's pods, sorted, as
    ``metav1.FormatLabelSelector`` writes them."""
    labels = {**job_labels(job_name), LABEL_REPLICA_TYPE: replica_type.lower()}
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _phase(pod: Obj) -> str:
    return str((pod.get("status") or {}).get("phase") or "Pending")


def _deleting(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def _of_type(objs: Sequence[Obj], replica_type: str) -> dict[int, list[Obj]]:
    """Objects of one replica type by their replica-index label (those without one are skipped)."""
    out: dict[int, list[Obj]] = {}
    for obj in objs:
        labels = (obj.get("metadata") or {}).get("labels") or {}
        if labels.get(LABEL_REPLICA_TYPE) != replica_type.lower():
            continue
        try:
            index = int(labels.get(LABEL_REPLICA_INDEX, ""))
        except ValueError:
            continue
        out.setdefault(index, []).append(obj)
    return out


def _exit_code(pod: Obj) -> int | None:
    for cs in (pod.get("status") or {}).get("containerStatuses") or []:
        terminated = (cs.get("state") or {}).get("terminated")
        if cs.get("name") == DEFAULT_CONTAINER and terminated is not None:
            return int(terminated.get("exitCode", 0))
    return None


def _restart_count(pods: Sequence[Obj], specs: Obj) -> int:
    """Container restarts of running pods whose replica type restarts failed pods (``PastBackoffLimit``)."""
    total = 0
    for replica_type, spec in specs.items():
        if spec.get("restartPolicy") not in ("OnFailure", "Always", "ExitCode"):
            continue
        for group in _of_type(pods, replica_type).values():
            for pod in group:
                if _phase(pod) != "Running":
                    continue
                status = pod.get("status") or {}
                for cs in [
                    *(status.get("initContainerStatuses") or []),
                    *(status.get("containerStatuses") or []),
                ]:
                    total += int(cs.get("restartCount") or 0)
    return total


def _cleanup(p: _Pass, pods: Sequence[Obj], clean_policy: str, finished: bool) -> None:
    """``DeletePodsAndServices``: every pod and the Service of its name, or on a finished job those
    that ``cleanPodPolicy`` names (None keeps all, Running the running and pending ones)."""
    if finished and clean_policy == "None":
        return
    for pod in pods:
        if finished and clean_policy == "Running" and _phase(pod) not in ("Running", "Pending"):
            continue
        name = str(pod["metadata"]["name"])
        if not _deleting(pod):
            p.delete_pods.append(name)
        p.delete_services.append(name)


def _reconcile_replicas(p: _Pass, job: Obj, replica_type: str, spec: Obj, pods: Sequence[Obj]) -> None:
    """``ReconcilePods`` for one replica type: create the missing indexes, restart or fail on failed
    pods by the replica's restartPolicy, and count the pods into ``replicaStatuses``."""
    name = job["metadata"]["name"]
    namespace = job["metadata"]["namespace"]
    wanted = int(spec.get("replicas") or 0)
    policy = spec.get("restartPolicy")
    counts: dict[str, Any] = {}
    p.status.setdefault("replicaStatuses", {})[replica_type] = counts
    by_index = _of_type(pods, replica_type)
    for index in range(max([wanted, *(i + 1 for i in by_index)])):
        group = by_index.get(index, [])
        if not group:
            p.create.append((replica_type, index))
            continue
        if len(group) > 1:
            continue  # the operator only logs that it has too many pods for an index
        pod = group[0]
        pod_name = pod["metadata"]["name"]
        if index >= wanted and not _deleting(pod):
            p.delete_pods.append(pod_name)
        code = _exit_code(pod)
        if code is not None:
            p.events.append(
                ("Normal", "ExitedWithCode", f"Pod: {namespace}.{pod_name} exited with code {code}")
            )
        if _phase(pod) == "Failed":
            retryable = code is not None and code >= 128
            if policy in ("OnFailure", "Always") or (policy == "ExitCode" and retryable):
                if not _deleting(pod):
                    p.delete_pods.append(pod_name)
                message = f"job {name} is restarting because {replica_type} replica(s) failed."
                p.events.append(("Warning", reason("Restarting"), message))
                p.condition("Restarting", "True", "Restarting", message)
            elif policy == "ExitCode":
                message = f'job "{name}" is failing because "{replica_type}" replica(s) failed.'
                p.events.append(("Warning", reason("Failed"), message))
                p.condition("Failed", "True", "Failed", message)
        phase = _phase(pod)
        if phase == "Running":
            key = "failed" if _deleting(pod) else "active"
        else:
            key = {"Succeeded": "succeeded", "Failed": "failed"}.get(phase, "")
        if key:
            counts[key] = counts.get(key, 0) + 1


def _reconcile_services(p: _Pass, replica_type: str, spec: Obj, services: Sequence[Obj]) -> None:
    wanted = int(spec.get("replicas") or 0)
    by_index = _of_type(services, replica_type)
    for index in range(max([wanted, *(i + 1 for i in by_index)])):
        group = by_index.get(index, [])
        if not group:
            p.create_services.append((replica_type, index))
        elif len(group) == 1 and index >= wanted:
            p.delete_services.append(str(group[0]["metadata"]["name"]))


def _update_status(p: _Pass, job: Obj, specs: Obj, now: datetime) -> float | None:
    """``UpdateJobStatus``: startTime, selectors, then Running, Succeeded, Restarting or Failed from
    the counts, the Master deciding when there is one, else all the Workers."""
    name = job["metadata"]["name"]
    spec = job.get("spec") or {}
    status = p.status
    if not status.get("startTime"):
        status["startTime"] = p.now
    has_master = MASTER in specs
    for replica_type in _ordered(specs):
        replica = specs[replica_type]
        counts = status["replicaStatuses"][replica_type]
        counts["selector"] = selector(name, replica_type)
        wanted = int(replica.get("replicas") or 0)
        succeeded, running, failed = (counts.get(k, 0) for k in ("succeeded", "active", "failed"))
        expected = wanted - succeeded
        if has_master and replica_type == MASTER:
            if running > 0:
                p.condition("Running", "True", "Running", f"{KIND} {name} is running.")
            if expected == 0:
                message = f"{KIND} {name} is successfully completed."
                p.events.append(("Normal", reason("Succeeded"), message))
                status.setdefault("completionTime", p.now)
                p.condition("Succeeded", "True", "Succeeded", message)
                break
        elif not has_master and replica_type == WORKER:
            if expected == 0 or (spec.get("elasticPolicy") is not None and succeeded > 0):
                message = f"{KIND} {job['metadata']['namespace']}/{name} successfully completed."
                p.events.append(("Normal", reason("Succeeded"), message))
                status.setdefault("completionTime", p.now)
                p.condition("Succeeded", "True", "Succeeded", message)
            elif running > 0:
                message = f"{KIND} {job['metadata']['namespace']}/{name} is running."
                p.condition("Running", "True", "Running", message)
        if failed > 0 and wanted > succeeded + running:
            if replica.get("restartPolicy") != "Never":
                message = f"{KIND} {name} is restarting because {failed} {replica_type} replica(s) failed."
                p.events.append(("Warning", reason("Restarting"), message))
                p.condition("Restarting", "True", "Restarting", message)
            else:
                message = f"{KIND} {name} is failed because {failed} {replica_type} replica(s) failed."
                p.events.append(("Normal", reason("Failed"), message))
                status.setdefault("completionTime", p.now)
                p.condition("Failed", "True", "Failed", message)
    return _deadline_left(job, status, now)


def _ordered(specs: Obj) -> list[str]:
    """Master before Worker: the operator walks a Go map, in no fixed order."""
    return sorted(specs, key=lambda t: (t != MASTER, t))


def _deadline_left(job: Obj, status: Obj, now: datetime) -> float | None:
    deadline = ((job.get("spec") or {}).get("runPolicy") or {}).get("activeDeadlineSeconds")
    if deadline is None or not status.get("startTime") or _finished(status):
        return None
    return float(deadline) - (now - _parse(str(status["startTime"]))).total_seconds()


def plan(job: Obj, pods: Sequence[Obj], services: Sequence[Obj], now: datetime) -> Plan:
    """One ``ReconcileJobs`` pass over a defaulted PyTorchJob and the pods and Services it owns."""
    meta, spec = job["metadata"], job.get("spec") or {}
    name = meta["name"]
    run_policy = spec.get("runPolicy") or {}
    specs: dict[str, Any] = dict(spec.get("pytorchReplicaSpecs") or {})
    clean_policy = str(run_policy.get("cleanPodPolicy") or "None")
    p = _Pass(status=copy.deepcopy(dict(job.get("status") or {})), now=_rfc3339(now))
    if not p.status.get("conditions"):  # the create event's Created condition, written with the first status
        p.condition("Created", "True", "Created", f"{KIND} {name} is created.")

    if _finished(p.status):
        _cleanup(p, pods, clean_policy, finished=True)
        if condition_true(p.status, "Succeeded"):
            for counts in (p.status.get("replicaStatuses") or {}).values():
                if counts.get("active"):
                    counts["succeeded"] = counts.get("succeeded", 0) + counts.pop("active")
        return p.plan()

    if run_policy.get("suspend"):
        _cleanup(p, pods, clean_policy, finished=False)
        for counts in (p.status.get("replicaStatuses") or {}).values():
            counts.pop("active", None)
        message = f"{KIND} {name} is suspended."
        if condition_true(p.status, "Running"):
            p.condition("Running", "False", "Suspended", message)
        if not condition_true(p.status, "Suspended"):
            p.condition("Suspended", "True", "Suspended", message)
            p.events.append(("Normal", reason("Suspended"), message))
        return p.plan()
    if condition_true(p.status, "Suspended"):
        message = f"{KIND} {name} is resumed."
        p.condition("Suspended", "False", "Resumed", message)
        p.status["startTime"] = p.now
        p.events.append(("Normal", reason("Resumed"), message))

    failure = _limit_reached(job, pods, p.status, now)
    if failure:
        p.status.setdefault("completionTime", p.now)
        p.events.append(("Normal", reason("Failed"), failure))
        p.condition("Failed", "True", "Failed", failure)
        _cleanup(p, pods, clean_policy, finished=True)
        return p.plan()

    for replica_type in _ordered(specs):
        _reconcile_replicas(p, job, replica_type, specs[replica_type], pods)
        _reconcile_services(p, replica_type, specs[replica_type], services)
    return p.plan(_update_status(p, job, specs, now))


def _limit_reached(job: Obj, pods: Sequence[Obj], status: Obj, now: datetime) -> str:
    """The failure message when ``backoffLimit`` or ``activeDeadlineSeconds`` has run out, else ''."""
    name = job["metadata"]["name"]
    spec = job.get("spec") or {}
    run_policy = spec.get("runPolicy") or {}
    specs = spec.get("pytorchReplicaSpecs") or {}
    limit = run_policy.get("backoffLimit")
    if limit is not None:
        active = [p for p in pods if _phase(p) not in ("Succeeded", "Failed") and not _deleting(p)]
        failed = sum(1 for p in pods if _phase(p) == "Failed")
        known = sum(int(c.get("failed") or 0) for c in (status.get("replicaStatuses") or {}).values())
        total = sum(int(r.get("replicas") or 0) for r in specs.values())
        # The operator adds its work queue's retries for the job to one; they are 0 but after errors.
        new_failure = failed > known and len(active) != total and int(limit) < 1
        restarts = _restart_count(pods, specs)
        past = restarts > 0 if int(limit) == 0 else restarts >= int(limit)
        if new_failure or past:
            return f"Job {name} has failed because it has reached the specified backoff limit"
    left = _deadline_left(job, status, now)
    if left is not None and left <= 0:
        return f"Job {name} has failed because it was active longer than specified deadline"
    return ""
