"""The experiment and suggestion controllers: trials from the search, experiment status from the trials."""

from __future__ import annotations

import logging
import random
import zlib
from collections.abc import Mapping, Sequence
from contextlib import suppress
from typing import Any

from ..controller import Controller
from ..errors import ApiError
from ..events import EventRecorder
from ..selectors import parse_label_selector
from ..store import Store, WatchEvent, clone
from .naming import GROUP, LABEL_EXPERIMENT
from .search import SearchError, params_of, seed_of, suggest
from .status import conclude, has, mark, summarize, trial_delta
from .webhook import TemplateError, run_spec

__all__ = ["ExperimentController", "trial_name"]

log = logging.getLogger(__name__)

Key = tuple[str, str]
# k8s.io/apimachinery's rand.String alphabet: no vowels, no look-alike digits
_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_STATUS_KEYS = (
    "trials",
    "trialsPending",
    "trialsRunning",
    "trialsSucceeded",
    "trialsFailed",
    "trialsKilled",
    "trialsEarlyStopped",
    "trialMetricsUnavailable",
    "pendingTrialList",
    "runningTrialList",
    "succeededTrialList",
    "failedTrialList",
    "killedTrialList",
    "earlyStoppedTrialList",
    "metricsUnavailableTrialList",
)


def trial_name(experiment: str, rng: random.Random) -> str:
    """``<experiment>-<8 characters>``, as the suggestion client names a trial."""
    return f"{experiment}-{''.join(rng.choice(_ALPHABET) for _ in range(8))}"


def _owner(obj: Mapping[str, Any]) -> dict[str, Any]:
    meta = obj["metadata"]
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": meta["name"],
        "uid": meta["uid"],
        "controller": True,
        "blockOwnerDeletion": True,
    }


class ExperimentController(Controller):
    """Each Experiment is synced when it or one of its trials changes."""

    name = "experiment-controller"

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self.events = EventRecorder(store, "experiment-controller")
        self._experiments = store.registry.get(GROUP, "v1beta1", "experiments")
        self._trials = store.registry.get(GROUP, "v1beta1", "trials")
        self._suggestions = store.registry.get(GROUP, "v1beta1", "suggestions")
        self._rng = random.SystemRandom()
        self._dirty: set[Key] = set()

    def observe(self, event: WatchEvent) -> bool:
        if self._experiments is not None and event.rt.key == self._experiments.key:
            key = (event.namespace, event.obj["metadata"]["name"])
            if event.type == "DELETED":
                self._dirty.discard(key)
                return False
            self._dirty.add(key)
            return True
        if self._trials is not None and event.rt.key == self._trials.key:
            owner = (event.obj["metadata"].get("labels") or {}).get(LABEL_EXPERIMENT)
            if owner:
                self._dirty.add((event.namespace, owner))
                return True
        return False

    def reconcile(self) -> float | None:
        while self._dirty and self._experiments is not None:
            ns, name = self._dirty.pop()
            exp = self.store.find(self._experiments, ns, name)
            if exp is not None and not exp["metadata"].get("deletionTimestamp"):
                self._sync(exp)
        return None

    def _trials_of(self, exp: Mapping[str, Any]) -> list[dict[str, Any]]:
        if self._trials is None:
            return []
        meta = exp["metadata"]
        mine = parse_label_selector(f"{LABEL_EXPERIMENT}={meta['name']}")
        found = self.store.list(self._trials, meta["namespace"], labels=mine)
        return sorted(found, key=lambda t: (t["metadata"]["creationTimestamp"], t["metadata"]["name"]))

    def _sync(self, exp: Mapping[str, Any]) -> None:
        now = self.store.now()
        status = clone(exp.get("status") or {})
        completed = has(exp, "Succeeded") or has(exp, "Failed")
        if completed and not status.get("trialsRunning"):
            return  # Katib leaves a finished experiment alone once no trial runs
        if not has(exp, "Created"):
            status.setdefault("startTime", now)
            mark(status, "Created", "True", "ExperimentCreated", "Experiment is created", now)
        else:
            trials = self._trials_of(exp)
            if trials:
                summary, goal_reached = summarize(exp, trials)
                for key in _STATUS_KEYS:
                    status.pop(key, None)
                status.update(summary)
                if not completed:
                    conclude(exp, status, goal_reached, now)
            if not (has({"status": status}, "Succeeded") or has({"status": status}, "Failed")):
                delta = trial_delta(exp.get("spec") or {}, status)
                if delta > 0:
                    self._create_trials(exp, trials, delta, status, now)
                elif delta < 0:
                    self._delete_trials(exp, trials, -delta)
        if status != (exp.get("status") or {}):
            self._write_status(exp, status)

    def _write_status(self, exp: Mapping[str, Any], status: dict[str, Any]) -> None:
        if self._experiments is None:
            return
        current = self.store.find(self._experiments, exp["metadata"]["namespace"], exp["metadata"]["name"])
        if current is None:
            return
        new = clone(current)
        new["status"] = status
        try:
            self.store.system_update(self._experiments, new)
        except ApiError:
            return  # deleted meanwhile

    def _suggestion(self, exp: Mapping[str, Any], requests: int) -> dict[str, Any] | None:
        """GetOrCreateSuggestion, with the suggestion service's answer written into its status at once."""
        if self._suggestions is None:
            return None
        meta = exp["metadata"]
        ns, name = meta["namespace"], meta["name"]
        suggestion = self.store.find(self._suggestions, ns, name)
        if suggestion is None:
            body: dict[str, Any] = {
                "apiVersion": f"{GROUP}/v1beta1",
                "kind": "Suggestion",
                "metadata": {
                    "name": name,
                    "labels": dict(meta.get("labels") or {}),
                    "ownerReferences": [_owner(exp)],
                },
                "spec": {
                    "algorithm": clone(exp["spec"].get("algorithm") or {}),
                    "requests": requests,
                    "resumePolicy": exp["spec"].get("resumePolicy", "Never"),
                },
            }
            if exp["spec"].get("earlyStopping"):
                body["spec"]["earlyStopping"] = clone(exp["spec"]["earlyStopping"])
            try:
                suggestion = self.store.create(self._suggestions, ns, body)
            except ApiError as err:
                self.events.record(exp, "Warning", "ReconcileFailed", f"Failed to reconcile: {err.message}")
                return None
        if suggestion["spec"].get("requests") != requests:
            suggestion = clone(suggestion)
            suggestion["spec"]["requests"] = requests
            suggestion = self.store.system_update(self._suggestions, suggestion)
        return self._answer(exp, suggestion)

    def _answer(self, exp: Mapping[str, Any], suggestion: dict[str, Any]) -> dict[str, Any]:
        """The suggestion controller's step: ask the algorithm for the missing assignments."""
        if self._suggestions is None or has(suggestion, "Failed"):
            return suggestion
        now = self.store.now()
        status = clone(suggestion.get("status") or {})
        status.setdefault("startTime", now)
        mark(status, "Created", "True", "SuggestionCreated", "Suggestion is created", now)
        have: list[dict[str, Any]] = list(status.get("suggestions") or [])
        requests = int(suggestion["spec"].get("requests") or 0)
        spec = exp["spec"]
        algorithm = spec.get("algorithm") or {}
        params = params_of(spec)
        try:
            fallback = zlib.crc32(suggestion["metadata"]["uid"].encode())  # unseeded: fixed per Suggestion
            points = suggest(
                str(algorithm.get("algorithmName")),
                params,
                seed_of(algorithm, fallback),
                requests,
                spec.get("maxTrialCount"),
            )
        except SearchError as exc:
            mark(status, "Running", "False", "SuggestionRunning", "Suggestion is running", now)
            mark(status, "Failed", "True", "SuggestionFailed", str(exc), now)
            points = []
        else:
            mark(status, "DeploymentReady", "True", "DeploymentReady", "Deployment is ready", now)
            mark(status, "Running", "True", "SuggestionRunning", "Suggestion is running", now)
        for point in points[len(have) :]:
            have.append(
                {
                    "name": trial_name(exp["metadata"]["name"], self._rng),
                    "parameterAssignments": [{"name": p.name, "value": point[p.name]} for p in params],
                }
            )
        status["suggestions"] = have
        status["suggestionCount"] = len(have)
        if status == suggestion.get("status"):
            return suggestion
        new = clone(suggestion)
        new["status"] = status
        return self.store.system_update(self._suggestions, new)

    def _delete_trials(self, exp: Mapping[str, Any], trials: Sequence[Mapping[str, Any]], count: int) -> None:
        """deleteTrials: the newest trials go, whatever their state, and leave the Suggestion's list."""
        if self._trials is None or self._suggestions is None:
            return
        ns = exp["metadata"]["namespace"]
        newest = sorted(trials, key=lambda t: t["metadata"]["creationTimestamp"], reverse=True)[:count]
        gone = set()
        for trial in newest:
            with suppress(ApiError):
                self.store.delete(self._trials, ns, trial["metadata"]["name"])
                gone.add(trial["metadata"]["name"])
        suggestion = self.store.find(self._suggestions, ns, exp["metadata"]["name"])
        if suggestion is None:
            return
        new = clone(suggestion)
        kept = [s for s in (new.get("status") or {}).get("suggestions") or [] if s.get("name") not in gone]
        new["spec"]["requests"] = len(kept)
        new.setdefault("status", {}).update(suggestions=kept, suggestionCount=len(kept))
        self.store.system_update(self._suggestions, new)

    def _create_trials(
        self,
        exp: Mapping[str, Any],
        trials: Sequence[Mapping[str, Any]],
        add: int,
        status: dict[str, Any],
        now: str,
    ) -> None:
        """ReconcileSuggestions, then one Trial per new assignment."""
        suggestion = self._suggestion(exp, len(trials) + add)
        if suggestion is None or self._trials is None:
            return
        if has(suggestion, "Failed"):
            running = next((c for c in status.get("conditions") or [] if c.get("type") == "Running"), None)
            if running is not None:
                mark(status, "Running", "False", running.get("reason", ""), running.get("message", ""), now)
            mark(status, "Failed", "True", "ExperimentFailed", "Suggestion has failed", now)
            status["completionTime"] = now
            return
        taken = {t["metadata"]["name"] for t in trials}
        meta, spec = exp["metadata"], exp["spec"]
        template = spec.get("trialTemplate") or {}
        for assignment in (suggestion.get("status") or {}).get("suggestions") or []:
            if assignment["name"] in taken:
                continue
            try:
                run = run_spec(exp, assignment["name"], meta["namespace"], assignment["parameterAssignments"])
            except TemplateError as exc:
                self.events.record(exp, "Warning", "ReconcileFailed", f"Failed to reconcile: {exc}")
                continue
            labels = {**(meta.get("labels") or {}), LABEL_EXPERIMENT: meta["name"]}
            labels.update(assignment.get("labels") or {})
            trial_spec: dict[str, Any] = {
                "objective": clone(spec.get("objective")),
                "parameterAssignments": clone(assignment["parameterAssignments"]),
                "runSpec": run,
                "metricsCollector": clone(spec.get("metricsCollectorSpec") or {}),
                "primaryContainerName": template.get("primaryContainerName", ""),
                "successCondition": template.get("successCondition", ""),
                "failureCondition": template.get("failureCondition", ""),
            }
            if template.get("retain"):
                trial_spec["retainRun"] = True
            if template.get("primaryPodLabels"):
                trial_spec["primaryPodLabels"] = dict(template["primaryPodLabels"])
            body = {
                "apiVersion": f"{GROUP}/v1beta1",
                "kind": "Trial",
                "metadata": {"name": assignment["name"], "labels": labels, "ownerReferences": [_owner(exp)]},
                "spec": trial_spec,
            }
            try:
                self.store.create(self._trials, meta["namespace"], body)
            except ApiError as err:
                log.info(
                    "experiment %s/%s: trial %s refused: %s",
                    meta["namespace"],
                    meta["name"],
                    assignment["name"],
                    err.message,
                )
