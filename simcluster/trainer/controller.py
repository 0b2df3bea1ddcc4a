"""The TrainJob controller: makes a TrainJob's Jobs and Service, follows them, and keeps its status."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import Any

from ..controller import KindController
from ..errors import ApiError
from ..events import EventRecorder
from ..resources import ResourceType
from ..selectors import parse_label_selector
from ..store import Store, WatchEvent, clone
from .jobset import build
from .manifests import (
    SYSTEM_NAMESPACE,
    public_config_map,
    public_role,
    public_role_binding,
    torch_distributed,
)
from .names import (
    API_VERSION,
    CLUSTER_RUNTIME_KIND,
    CLUSTER_RUNTIMES,
    DEFAULT_MANAGER,
    GROUP,
    JOBSET_NAME,
    JOBSET_RJOB_NAME,
    RUNTIME_KIND,
    RUNTIMES,
    TRAINJOB_KIND,
    TRAINJOBS,
    VERSION,
)
from .status import plan, set_condition
from .webhook import admit

__all__ = ["TORCHRUN_DIR", "TrainJobController", "seed"]

log = logging.getLogger(__name__)

TORCHRUN_DIR = Path(__file__).resolve().parent / "bin"


def seed(store: Store) -> None:
    """What installing Kubeflow Trainer leaves in a cluster: its namespace, the public ConfigMap the
    SDK reads and the RBAC that lets every user read it, and the torch-distributed runtime."""
    registry = store.registry
    namespaces = registry.core("namespaces")
    if store.find(namespaces, None, SYSTEM_NAMESPACE) is None:
        store.create(namespaces, None, {"metadata": {"name": SYSTEM_NAMESPACE}})
    store.create(registry.core("configmaps"), SYSTEM_NAMESPACE, public_config_map())
    for plural, obj in (("roles", public_role()), ("rolebindings", public_role_binding())):
        rbac = registry.get("rbac.authorization.k8s.io", "v1", plural)
        if rbac is not None:
            store.create(rbac, SYSTEM_NAMESPACE, obj)
    runtimes = registry.get(GROUP, VERSION, CLUSTER_RUNTIMES)
    if runtimes is not None:
        store.create(runtimes, None, torch_distributed())


class TrainJobController(KindController):
    """Every TrainJob is synced when it or one of its Jobs changes, or a runtime appears; it also
    answers for the TrainJob webhook, as an admission plugin of the store."""

    name = "trainjob-controller"

    def __init__(self, store: Store) -> None:
        registry = store.registry
        super().__init__(store, registry.get(GROUP, VERSION, TRAINJOBS))
        self.events = EventRecorder(store, "trainjob-controller")
        self._trainjobs = self.kind
        self._runtimes = registry.get(GROUP, VERSION, RUNTIMES)
        self._cluster_runtimes = registry.get(GROUP, VERSION, CLUSTER_RUNTIMES)
        self._jobs = registry.get("batch", "v1", "jobs")
        self._services = registry.core("services")
        store.admission_plugins.append(self._admit)

    # ------------------------------------------------------------------ the webhook

    def _lookup(self, namespace: str | None, plural: str, name: str) -> Mapping[str, Any] | None:
        rt = self._cluster_runtimes if plural == CLUSTER_RUNTIMES else self._runtimes
        return None if rt is None else self.store.find(rt, namespace, name)

    def _admit(self, rt: ResourceType, obj: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        if self._trainjobs is not None and rt.key == self._trainjobs.key:
            admit(obj, old, self._lookup)

    # ------------------------------------------------------------------ events

    def observe(self, event: WatchEvent) -> bool:
        own = self.observe_kind(event)
        if own is not None or self._trainjobs is None:
            return bool(own)
        key = event.rt.key
        if self._jobs is not None and key == self._jobs.key:
            return self.mark_controller(event, TRAINJOB_KIND, API_VERSION)
        if event.type == "ADDED" and any(
            r is not None and key == r.key for r in (self._runtimes, self._cluster_runtimes)
        ):
            # a TrainJob that waited for its runtime may start now
            for t in self.store.list(self._trainjobs):
                self.mark(str(t["metadata"]["namespace"]), str(t["metadata"]["name"]))
            return True
        return False

    # ------------------------------------------------------------------ one TrainJob

    def _runtime(self, trainjob: Mapping[str, Any]) -> tuple[Mapping[str, Any] | None, str]:
        """The TrainJob's runtime, and why there is none."""
        ref = (trainjob.get("spec") or {}).get("runtimeRef") or {}
        kind, name = ref.get("kind"), str(ref.get("name") or "")
        if ref.get("apiGroup") != GROUP or kind not in (CLUSTER_RUNTIME_KIND, RUNTIME_KIND):
            return None, f"unsupported runtime: {kind}.{ref.get('apiGroup')}"
        if kind == CLUSTER_RUNTIME_KIND:
            found = self._lookup(None, CLUSTER_RUNTIMES, name)
            missing = f'{CLUSTER_RUNTIMES}.{GROUP} "{name}" not found'
            return found, f"not found ClusterTrainingRuntime specified in TrainJob: {missing}"
        found = self._lookup(trainjob["metadata"]["namespace"], RUNTIMES, name)
        return (
            found,
            f'not found TrainingRuntime specified in TrainJob: {RUNTIMES}.{GROUP} "{name}" not found',
        )

    def sync(self, trainjob: Mapping[str, Any]) -> None:
        jobs_rt, trainjobs = self._jobs, self._trainjobs
        if jobs_rt is None or trainjobs is None:
            return
        meta, spec = trainjob["metadata"], trainjob.get("spec") or {}
        if spec.get("managedBy", DEFAULT_MANAGER) != DEFAULT_MANAGER:
            return  # another controller (MultiKueue) runs it
        ns, name = meta["namespace"], meta["name"]
        mine = parse_label_selector(f"{JOBSET_NAME}={name}")
        jobs = self.controlled(jobs_rt, trainjob, mine)
        runtime, why = self._runtime(trainjob)
        template = ((runtime or {}).get("spec") or {}).get("template") or {}
        rjobs = [str(r["name"]) for r in (template.get("spec") or {}).get("replicatedJobs") or []]
        if not rjobs:  # the runtime went after its Jobs were made: name them from the Jobs
            rjobs = sorted({str(j["metadata"]["labels"].get(JOBSET_RJOB_NAME)) for j in jobs})
        step = plan(trainjob, jobs, rjobs, self.store.clock(), self.store.now())
        status = step.status
        if step.create:
            if runtime is None and why.startswith("unsupported"):
                set_condition(status, "Failed", "True", "TrainingRuntimeNotSupported", why, self.store.now())
            elif runtime is None:
                self.events.record(
                    trainjob,
                    "Warning",
                    "TrainJobResourcesCreationFailed",
                    f"TrainJob resources reconciliation failed: {why}",
                )
            else:
                self._create(trainjob, runtime)
        for job_name, suspend in step.suspend:
            job = self.store.find(jobs_rt, ns, job_name)
            if job is not None:
                changed = clone(job)
                changed["spec"]["suspend"] = suspend
                with suppress(ApiError):
                    self.store.replace(jobs_rt, ns, job_name, changed)
        for job_name in step.delete:
            with suppress(ApiError):
                self.store.delete(jobs_rt, ns, job_name)
        if step.recheck_after is not None:
            self.check_again(ns, name, step.recheck_after)
        current = self.store.find(trainjobs, ns, name)
        if current is None or current.get("status") == status:
            return
        new = clone(current)
        new["status"] = status
        with suppress(ApiError):  # deleted meanwhile
            self.store.system_update(trainjobs, new)

    def _create(self, trainjob: Mapping[str, Any], runtime: Mapping[str, Any]) -> None:
        """Create the Service, then the Jobs; a refusal is recorded as Trainer records it."""
        jobs_rt = self._jobs
        if jobs_rt is None:
            return
        ns = trainjob["metadata"]["namespace"]
        children = build(trainjob, runtime, str(TORCHRUN_DIR))
        try:
            if self.store.find(self._services, ns, children.service["metadata"]["name"]) is None:
                self.store.create(self._services, ns, children.service)
            for job in children.jobs:
                self.store.create(jobs_rt, ns, job)
        except ApiError as err:
            self.events.record(
                trainjob,
                "Warning",
                "TrainJobResourcesCreationFailed",
                f"TrainJob resources reconciliation failed: {err.message}"[:1000],
            )
