"""The trial controller: runs each Trial's job, reads its metrics when it ends, keeps the Trial's status."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from ..controller import KindController
from ..errors import ApiError
from ..events import EventRecorder
from ..logs import PodLogs
from ..resources import ResourceType
from ..selectors import parse_label_selector
from ..store import Store, WatchEvent, clone
from .admission import resource_type
from .collector import SIDECAR
from .metrics import observation, parse_text
from .naming import API_VERSION, GROUP, LABEL_TRIAL
from .status import has, job_state, mark, trial_outcome

__all__ = ["TrialController"]

log = logging.getLogger(__name__)

LOG_WAIT = 0.2  # seconds between looks at a finished job's pod logs that are still being written
_DONE = ("Succeeded", "Failed", "Killed", "EarlyStopped", "MetricsUnavailable")


def _completed(trial: Mapping[str, Any]) -> bool:
    return any(has(trial, t) for t in _DONE)


class TrialController(KindController):
    """Each Trial is synced when it, its job or one of its pods changes."""

    name = "trial-controller"

    def __init__(self, store: Store, logs: PodLogs) -> None:
        super().__init__(store, store.registry.get(GROUP, "v1beta1", "trials"))
        self.logs = logs
        self.events = EventRecorder(store, "trial-controller")
        self._trials = self.kind
        self._pods = store.registry.core("pods")

    def observe(self, event: WatchEvent) -> bool:
        own = self.observe_kind(event)
        if own is not None or self._trials is None:
            return bool(own)
        if event.rt.kind == "Pod" and event.rt.builtin:
            trial = (event.obj["metadata"].get("labels") or {}).get(LABEL_TRIAL)
            if trial:
                self.mark(event.namespace, trial)
                return True
            return False
        return self.mark_controller(event, "Trial", API_VERSION)

    def sync(self, trial: Mapping[str, Any]) -> None:
        if not trial["metadata"].get("deletionTimestamp"):
            self._sync(trial)

    def _write(self, trial: Mapping[str, Any], status: dict[str, Any]) -> dict[str, Any] | None:
        if self._trials is None:
            return None
        current = self.store.find(self._trials, trial["metadata"]["namespace"], trial["metadata"]["name"])
        if current is None:
            return None
        new = clone(current)
        new["status"] = status
        try:
            return self.store.system_update(self._trials, new)
        except ApiError:
            return None  # deleted meanwhile

    def _sync(self, trial: Mapping[str, Any]) -> None:
        now = self.store.now()
        if not has(trial, "Created"):
            status = clone(trial.get("status") or {})
            status.setdefault("startTime", now)
            mark(status, "Created", "True", "TrialCreated", "Trial is created", now)
            self._write(trial, status)
            return
        run = trial["spec"]["runSpec"]
        rt = resource_type(self.store, str(run.get("apiVersion")), str(run.get("kind")))
        if rt is None:
            return  # the webhook admits only served kinds; the type went away with the cluster file
        ns = trial["metadata"]["namespace"]
        job = self.store.find(rt, ns, run["metadata"]["name"])
        if job is None:
            if not _completed(trial):
                self._create_job(trial, rt, run)
            return
        if _completed(trial):
            self._cleanup(trial, rt, job)
            return
        state = job_state(trial, job)
        if state is None:
            return
        if state.condition == "Succeeded":
            found = self._observation(trial)
            if found is None:
                self.check_again(ns, trial["metadata"]["name"], LOG_WAIT)
                return
            trial = {**trial, "status": {**(trial.get("status") or {}), "observation": found}}
        status, event = trial_outcome(trial, state, now)
        written = self._write(trial, status) if status != (trial.get("status") or {}) else None
        if event is not None:
            self.events.record(trial, *event)
        if written is not None and _completed(written):
            self._cleanup(written, rt, job)

    def _create_job(self, trial: Mapping[str, Any], rt: ResourceType, run: Mapping[str, Any]) -> None:
        body = clone(run)
        meta = trial["metadata"]
        body["metadata"]["ownerReferences"] = [
            {
                "apiVersion": API_VERSION,
                "kind": "Trial",
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ]
        try:
            self.store.create(rt, meta["namespace"], body)
        except ApiError as err:
            # Katib retries a refused job with backoff; the event is what a user sees of it
            self.events.record(trial, "Warning", "ReconcileFailed", f"Failed to reconcile: {err.message}")
            return
        self.events.record(trial, "Normal", "JobCreated", f"Job {body['metadata']['name']} has been created")

    def _cleanup(self, trial: Mapping[str, Any], rt: ResourceType, job: Mapping[str, Any]) -> None:
        """``retain: false``: a finished trial's job goes, and its pods with it."""
        if trial["spec"].get("retainRun"):
            return
        with suppress(ApiError):
            self.store.delete(rt, job["metadata"]["namespace"], job["metadata"]["name"])
            self.events.record(
                trial, "Normal", "JobDeleted", f"Job {job['metadata']['name']} has been deleted"
            )

    def _observation(self, trial: Mapping[str, Any]) -> dict[str, Any] | None:
        """The StdOut collector's report from the primary pods' sidecars; None while one still runs."""
        spec = trial["spec"]
        meta = trial["metadata"]
        ns = meta["namespace"]
        wanted = {**(spec.get("primaryPodLabels") or {}), LABEL_TRIAL: meta["name"]}
        selector = parse_label_selector(",".join(f"{k}={v}" for k, v in sorted(wanted.items())))
        pods = sorted(
            self.store.list(self._pods, ns, labels=selector),
            key=lambda p: (p["metadata"]["creationTimestamp"], p["metadata"]["name"]),
        )
        container = SIDECAR  # it prints what the wrapped primary container wrote into the metrics file
        lines: list[str] = []
        for pod in pods:
            name = pod["metadata"]["name"]
            if not self.logs.closed(ns, name, container):
                return None
            lines += [line for _, line in self.logs.lines(ns, name, container)]
        objective = spec.get("objective") or {}
        names = [objective.get("objectiveMetricName"), *(objective.get("additionalMetricNames") or [])]
        source = (spec.get("metricsCollector") or {}).get("source") or {}
        filters = (source.get("filter") or {}).get("metricsFormat") or []
        logs = parse_text(lines, [str(n) for n in names], [str(f) for f in filters])
        strategies = [str(s.get("name")) for s in objective.get("metricStrategies") or []]
        return observation(logs, strategies or [str(n) for n in names])
