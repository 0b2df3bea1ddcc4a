"""The PyTorchJob controller: makes each replica's pod and Service and keeps the job's status."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..controller import KindController
from ..errors import ApiError
from ..events import EventRecorder
from ..resources import ResourceType
from ..selectors import label_selector_from_dict
from ..store import Store, WatchEvent, clone
from .defaults import with_defaults
from .naming import CONTROLLER_NAME, GROUP, KIND, MANAGED_BY_OPERATOR, PLURAL, VERSION, job_labels
from .policy import plan
from .replicas import replica_pod, replica_service
from .webhook import validate

__all__ = ["PyTorchJobController"]

log = logging.getLogger(__name__)


class PyTorchJobController(KindController):
    """Every PyTorchJob is synced when it or one of its pods changes, and again when its deadline is
    due; it also answers for the operator's validating webhook, as an admission plugin of the store."""

    name = CONTROLLER_NAME

    def __init__(self, store: Store) -> None:
        super().__init__(store, store.registry.get(GROUP, VERSION, PLURAL))
        self.events = EventRecorder(store, CONTROLLER_NAME)
        self._pods = store.registry.core("pods")
        self._services = store.registry.core("services")
        store.admission_plugins.append(self._admit)

    def _admit(self, rt: ResourceType, obj: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        if self.kind is not None and rt.key == self.kind.key:
            validate(obj)

    def observe(self, event: WatchEvent) -> bool:
        own = self.observe_kind(event)
        if own is not None:
            return own
        return (
            event.rt.builtin
            and event.rt.kind in ("Pod", "Service")
            and self.mark_controller(event, KIND, f"{GROUP}/{VERSION}")
        )

    def sync(self, job: Mapping[str, Any]) -> None:
        if self.kind is not None and not job["metadata"].get("deletionTimestamp"):
            self._sync(self.kind, job)

    def _owned(self, rt: ResourceType, job: Mapping[str, Any]) -> list[dict[str, Any]]:
        selector = label_selector_from_dict({"matchLabels": job_labels(job["metadata"]["name"])})
        return self.controlled(rt, job, selector)

    def _sync(self, jobs: ResourceType, stored: Mapping[str, Any]) -> None:
        manager = ((stored.get("spec") or {}).get("runPolicy") or {}).get("managedBy")
        if manager is not None and manager != MANAGED_BY_OPERATOR:
            return  # another controller (Kueue's MultiKueue) runs this job
        job = with_defaults(stored)
        ns, name = job["metadata"]["namespace"], job["metadata"]["name"]
        step = plan(job, self._owned(self._pods, job), self._owned(self._services, job), self.store.clock())
        for pod_name in step.delete_pods:
            self._delete(job, self._pods, pod_name, "SuccessfulDeletePod", "pod")
        for svc_name in step.delete_services:
            self._delete(job, self._services, svc_name, "SuccessfulDeleteService", "service")
        for replica_type, index in step.create:
            self._create(job, self._pods, replica_pod(job, replica_type, index), "Pod")
        for replica_type, index in step.create_services:
            self._create(job, self._services, replica_service(job, replica_type, index), "Service")
        for type_, reason, message in step.events:
            self.events.record(job, type_, reason, message)
        if step.recheck_after is not None:
            self.check_again(ns, name, step.recheck_after)
        current = self.store.find(jobs, ns, name)
        if current is None or current.get("status") == step.status:
            return
        new = clone(current)
        new["status"] = step.status
        try:
            self.store.system_update(jobs, new)
        except ApiError:
            return  # deleted meanwhile

    def _create(self, job: Mapping[str, Any], rt: ResourceType, obj: dict[str, Any], kind: str) -> None:
        name = obj["metadata"]["name"]
        try:
            self.store.create(rt, job["metadata"]["namespace"], obj)
        except ApiError as err:  # quota, Pod Security, a name taken: the operator records the refusal
            self.events.record(job, "Warning", f"FailedCreate{kind}", f"Error creating: {err.message}")
            return
        self.events.record(job, "Normal", f"SuccessfulCreate{kind}", f"Created {kind.lower()}: {name}")

    def _delete(self, job: Mapping[str, Any], rt: ResourceType, name: str, reason: str, what: str) -> None:
        try:
            self.store.delete(rt, job["metadata"]["namespace"], name)
        except ApiError:
            return  # gone already
        self.events.record(job, "Normal", reason, f"Deleted {what}: {name}")
