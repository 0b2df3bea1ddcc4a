"""The workflow controller: runs each Argo Workflow's steps as pods and keeps its status current."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import suppress
from typing import Any

from ..controller import Controller
from ..errors import ApiError
from ..events import EventRecorder
from ..logs import PodLogs
from ..selectors import parse_label_selector
from ..store import Store, WatchEvent
from .engine import DONE, advance
from .naming import ANNOTATION_NODE_ID, LABEL_COMPLETED, LABEL_PHASE, LABEL_WORKFLOW

__all__ = ["WorkflowController", "workflow_type"]

log = logging.getLogger(__name__)

WfKey = tuple[str, str]


def workflow_type(store: Store) -> Any:
    """The argoproj.io Workflow resource type of the store's registry (None when the file drops it)."""
    return store.registry.get("argoproj.io", "v1alpha1", "workflows")


class WorkflowController(Controller):
    """Every unfinished workflow is moved on whenever it or one of its pods changes."""

    name = "workflow-controller"

    def __init__(self, store: Store, logs: PodLogs, *, simulated: bool = False) -> None:
        super().__init__(store)
        self.logs = logs
        self.simulated = simulated  # pods run nothing: they are scripted to end at once
        self.events = EventRecorder(store, "workflow-controller")
        self._wfs = workflow_type(store)
        self._pods = store.registry.core("pods")
        self._dirty: set[WfKey] = set()

    def observe(self, event: WatchEvent) -> bool:
        if self._wfs is not None and event.rt.key == self._wfs.key:
            key = (event.namespace, event.obj["metadata"]["name"])
            if event.type == "DELETED" or (event.obj.get("status") or {}).get("phase") in DONE:
                self._dirty.discard(key)
                return False
            self._dirty.add(key)
            return True
        if event.rt.kind == "Pod" and event.rt.builtin:
            owner = (event.obj["metadata"].get("labels") or {}).get(LABEL_WORKFLOW)
            if owner:
                self._dirty.add((event.namespace, owner))
                return True
        return False

    def reconcile(self) -> float | None:
        while self._dirty:
            ns, name = self._dirty.pop()
            if self._wfs is None:
                return None
            wf = self.store.find(self._wfs, ns, name)
            if wf is None or (wf.get("status") or {}).get("phase") in DONE:
                continue
            self._step(wf)
        return None

    def _result(self, pod: Mapping[str, Any]) -> str | None:
        meta = pod["metadata"]
        lines = self.logs.lines(meta["namespace"], meta["name"], "main")
        return "\n".join(line for _, line in lines)

    def _step(self, wf: Mapping[str, Any]) -> None:
        meta = wf["metadata"]
        ns, name = meta["namespace"], meta["name"]
        selector = parse_label_selector(f"{LABEL_WORKFLOW}={name}")
        pods = {}
        for pod in self.store.list(self._pods, ns, labels=selector):
            nid = (pod["metadata"].get("annotations") or {}).get(ANNOTATION_NODE_ID)
            if nid and not pod["metadata"].get("deletionTimestamp"):
                pods[nid] = pod
        step = advance(wf, pods, self.store.now(), self._result, simulated=self.simulated)
        status = step.status
        for pod in step.pods:
            try:
                self.store.create(self._pods, ns, pod)
            except ApiError as err:
                nid = pod["metadata"]["annotations"][ANNOTATION_NODE_ID]
                node = status["nodes"].get(nid)
                if node is not None:
                    node.update(phase="Error", message=err.message, finishedAt=self.store.now())
                self._dirty.add((ns, name))  # the failed node ends its DAG or steps in the next pass
                log.info("workflow %s/%s: pod %s refused: %s", ns, name, pod["metadata"]["name"], err.message)
        for pod_name in step.delete:  # a stopped or terminated workflow's running pods
            with suppress(ApiError):
                self.store.delete(self._pods, ns, pod_name)
        for nid, pod in pods.items():  # Argo relabels a pod once its node has ended
            node = status.get("nodes", {}).get(nid) or {}
            if node.get("phase") in DONE and pod["metadata"]["labels"].get(LABEL_COMPLETED) != "true":
                with suppress(ApiError):
                    self.store.update(
                        self._pods,
                        ns,
                        pod["metadata"]["name"],
                        lambda p: p["metadata"]["labels"].update({LABEL_COMPLETED: "true"}),
                    )
        phase = str(status.get("phase") or "Running")

        def write(obj: dict[str, Any]) -> None:
            obj["status"] = status
            labels = obj["metadata"].setdefault("labels", {})
            labels[LABEL_PHASE] = phase
            labels[LABEL_COMPLETED] = "true" if phase in DONE else "false"

        before = (wf.get("status") or {}).get("phase")
        try:
            self.store.update(self._wfs, ns, name, write)
        except ApiError:
            return  # deleted meanwhile
        if phase != before and phase in DONE:
            kind = "Normal" if phase == "Succeeded" else "Warning"
            message = (
                "Workflow completed"
                if phase == "Succeeded"
                else f"Workflow failed: {status.get('message', '')}"
            )
            self.events.record(wf, kind, f"Workflow{phase}", message)
        elif before is None:
            self.events.record(wf, "Normal", "WorkflowRunning", "Workflow Running")
