"""Katib's admission webhooks as a store plugin: Experiment defaults and checks, trial pods' collector."""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any

from ..errors import ApiError
from ..resources import ResourceType
from ..store import Store
from .collector import inject, is_primary
from .naming import API_VERSION, COLLECTOR_INJECTION, LABEL_TRIAL, TRIAL_NAME_ENV, TRIAL_RESOURCES, VALIDATOR
from .webhook import aggregate, default_experiment, namespace_refusal, validate_experiment

__all__ = ["KatibAdmission", "resource_type", "trial_kinds"]

MAX_OWNER_HOPS = 4  # pod, Job, JobSet, TrainJob, Trial: the deepest chain a trial kind makes


def resource_type(store: Store, api_version: str, kind: str) -> ResourceType | None:
    """The registered type of ``kind`` in ``api_version``, if the cluster serves it."""
    for rt in store.registry.types.values():
        if rt.api_version == api_version and rt.kind == kind:
            return rt
    return None


def trial_kinds(store: Store) -> set[tuple[str, str]]:
    """The trial kinds this cluster can run: katib-config's list, less the kinds it does not serve."""
    return {(v, k) for v, k in TRIAL_RESOURCES if resource_type(store, v, k) is not None}


def _denied(message: str) -> ApiError:
    """A webhook's refusal as kube-apiserver relays it: Katib's webhooks answer 400."""
    return ApiError(400, f'admission webhook "{VALIDATOR}" denied the request: {message}')


class KatibAdmission:
    """The Experiment defaulting and validating webhooks and the pod mutating one, in labelled namespaces."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _namespace_labels(self, namespace: str) -> Mapping[str, str]:
        ns = self.store.find(self.store.registry.core("namespaces"), None, namespace)
        return ((ns or {}).get("metadata") or {}).get("labels") or {}

    def __call__(self, rt: ResourceType, obj: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        if rt.api_version == API_VERSION and rt.kind == "Experiment":
            self._experiment(obj, old)
        elif rt.kind == "Pod" and rt.builtin and old is None:
            self._pod(obj)

    def _experiment(self, obj: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        if old is not None and old.get("spec") == obj.get("spec"):
            return  # a status or metadata write: the webhooks look at spec changes only
        meta = obj["metadata"]
        namespace = str(meta.get("namespace") or "")
        refusal = namespace_refusal(str(meta.get("name")), namespace, self._namespace_labels(namespace))
        if refusal is not None:
            raise _denied(refusal)
        default_experiment(obj)
        errors = validate_experiment(obj, copy.deepcopy(old) if old else None, trial_kinds(self.store))
        if errors:
            raise _denied(aggregate(errors))

    def _trial_of(self, pod: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The Trial at the top of the pod's controller chain (getKatibJob), if any."""
        namespace = pod["metadata"].get("namespace")
        current: Mapping[str, Any] = pod
        for _ in range(MAX_OWNER_HOPS + 1):
            ref = next(
                (r for r in current["metadata"].get("ownerReferences") or [] if r.get("controller")), None
            )
            if ref is None:
                return None
            rt = resource_type(self.store, str(ref.get("apiVersion")), str(ref.get("kind")))
            if rt is None:
                return None
            owner = self.store.find(rt, namespace, str(ref.get("name")))
            if owner is None:
                return None
            if rt.api_version == API_VERSION and rt.kind == "Trial":
                return owner
            current = owner
        return None

    def _pod(self, pod: dict[str, Any]) -> None:
        """Mutate: the trial's labels and name label, KATIB_TRIAL_NAME, and on primary pods the collector."""
        namespace = str(pod["metadata"].get("namespace") or "")
        if self._namespace_labels(namespace).get(COLLECTOR_INJECTION) != "enabled":
            return
        trial = self._trial_of(pod)
        if trial is None:
            return
        labels = pod["metadata"].setdefault("labels", {})
        labels.update(trial["metadata"].get("labels") or {})
        labels[LABEL_TRIAL] = trial["metadata"]["name"]
        ref = {"fieldRef": {"fieldPath": f"metadata.labels['{LABEL_TRIAL}']"}}
        for container in (pod.get("spec") or {}).get("containers") or []:
            env = [e for e in container.get("env") or [] if e.get("name") != TRIAL_NAME_ENV]
            container["env"] = [*env, {"name": TRIAL_NAME_ENV, "valueFrom": ref}]
        spec = trial.get("spec") or {}
        kind = ((spec.get("metricsCollector") or {}).get("collector") or {}).get("kind")
        if kind == "StdOut" and is_primary(labels, spec.get("primaryPodLabels") or {}):
            inject(pod.setdefault("spec", {}), str(spec.get("primaryContainerName") or ""))
