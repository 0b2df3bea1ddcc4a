"""The Job controller: creates and removes a Job's pods and keeps its status, as kube-controller-manager's."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..controller import KindController
from ..errors import ApiError
from ..events import EventRecorder
from ..selectors import parse_label_selector
from ..store import Store, WatchEvent, clone
from .defaults import BATCH_CONTROLLER_UID, COMPLETION_INDEX
from .policy import plan, pod_index

__all__ = ["JobController", "job_pod"]

log = logging.getLogger(__name__)


def job_pod(job: Mapping[str, Any], index: int | None) -> dict[str, Any]:
    """A new pod of ``job`` from its template; an Indexed Job's pod carries its completion index."""
    meta, spec = job["metadata"], job["spec"]
    template = clone(spec.get("template") or {})
    tmeta = template.get("metadata") or {}
    labels = dict(tmeta.get("labels") or {})
    annotations = dict(tmeta.get("annotations") or {})
    pod_spec = template.get("spec") or {}
    prefix = f"{meta['name']}-"
    if index is not None:
        labels[COMPLETION_INDEX] = annotations[COMPLETION_INDEX] = str(index)
        prefix = f"{meta['name']}-{index}-"
        pod_spec.setdefault("hostname", f"{meta['name']}-{index}")
        ref = {"fieldRef": {"fieldPath": f"metadata.annotations['{COMPLETION_INDEX}']"}}
        for container in [*(pod_spec.get("initContainers") or []), *(pod_spec.get("containers") or [])]:
            container["env"] = [
                *(container.get("env") or []),
                {"name": "JOB_COMPLETION_INDEX", "valueFrom": ref},
            ]
    pod_meta: dict[str, Any] = {
        "generateName": prefix,
        "namespace": meta["namespace"],
        "labels": labels,
        "ownerReferences": [
            {
                "apiVersion": "batch/v1",
                "kind": "Job",
                "name": meta["name"],
                "uid": meta["uid"],
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }
    if annotations:
        pod_meta["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": pod_meta, "spec": pod_spec}


class JobController(KindController):
    """Every Job is synced when it or one of its pods changes, and again when its deadline is due."""

    name = "job-controller"

    def __init__(self, store: Store) -> None:
        super().__init__(store, store.registry.get("batch", "v1", "jobs"))
        self.events = EventRecorder(store, "job-controller")
        self._pods = store.registry.core("pods")

    def observe(self, event: WatchEvent) -> bool:
        own = self.observe_kind(event)
        if own is not None:
            return own
        return event.rt.kind == "Pod" and event.rt.builtin and self.mark_controller(event, "Job", "batch/v1")

    def sync(self, job: Mapping[str, Any]) -> None:
        jobs = self.kind
        if jobs is None:
            return
        meta = job["metadata"]
        ns, name, uid = meta["namespace"], meta["name"], meta["uid"]
        mine = parse_label_selector(f"{BATCH_CONTROLLER_UID}={uid}")
        pods = self.controlled(self._pods, job, mine)
        step = plan(job, pods, self.store.clock(), self.store.now())
        for pod_name in step.delete:
            try:
                self.store.delete(self._pods, ns, pod_name)
            except ApiError:
                continue
            self.events.record(job, "Normal", "SuccessfulDelete", f"Deleted pod: {pod_name}")
        for index in step.create:
            try:
                pod = self.store.create(self._pods, ns, job_pod(job, index))
            except ApiError as err:  # quota, Pod Security: the real controller records the refusal
                self.events.record(job, "Warning", "FailedCreate", f"Error creating: {err.message}")
                continue
            self.events.record(job, "Normal", "SuccessfulCreate", f"Created pod: {pod['metadata']['name']}")
            if pod_index(pod) != index:
                log.error("job %s/%s: pod %s lost its index", ns, name, pod["metadata"]["name"])
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
