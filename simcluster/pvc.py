"""The emulated volume provisioner: binds claims of a known storage class, leaves the rest Pending."""

from __future__ import annotations

from .config import ClusterSpec
from .controller import Controller
from .errors import ApiError
from .events import EventRecorder
from .store import Store, WatchEvent, clone

__all__ = ["VolumeBinder"]


class VolumeBinder(Controller):
    """Dynamic provisioning: a claim of a class the cluster has is bound to a fresh volume at once."""

    name = "volume-binder"

    def __init__(self, store: Store, spec: ClusterSpec) -> None:
        super().__init__(store)
        self.spec = spec
        self.events = EventRecorder(store, "persistentvolume-controller")
        self._pvcs = store.registry.core("persistentvolumeclaims")
        self._todo: set[tuple[str, str]] = set()

    def observe(self, event: WatchEvent) -> bool:
        if event.rt is not self._pvcs or event.type == "DELETED":
            return False
        if (event.obj.get("status") or {}).get("phase") == "Pending":
            meta = event.obj["metadata"]
            self._todo.add((meta["namespace"], meta["name"]))
            return True
        return False

    def reconcile(self) -> float | None:
        while self._todo:
            key = self._todo.pop()
            pvc = self.store.find(self._pvcs, *key)
            if pvc is None or (pvc.get("status") or {}).get("phase") != "Pending":
                continue
            spec = pvc.get("spec") or {}
            cls = spec.get("storageClassName")
            if cls is None:
                cls = self.spec.default_storage_class
            if cls not in self.spec.storage_classes:
                self.events.record(
                    pvc,
                    "Warning",
                    "ProvisioningFailed",
                    f'storageclass.storage.k8s.io "{cls}" not found',
                )
                continue
            new = clone(pvc)
            storage = spec["resources"]["requests"]["storage"]
            new["spec"].update(storageClassName=cls, volumeName=f"pvc-{pvc['metadata']['uid']}")
            new["status"] = {
                "phase": "Bound",
                "accessModes": list(spec.get("accessModes") or []),
                "capacity": {"storage": storage},
            }
            annotations = new["metadata"].setdefault("annotations", {})
            annotations["pv.kubernetes.io/bind-completed"] = "yes"
            annotations["pv.kubernetes.io/bound-by-controller"] = "yes"
            try:
                stored = self.store.system_update(self._pvcs, new)
            except ApiError:
                continue
            self.events.record(
                stored,
                "Normal",
                "ProvisioningSucceeded",
                f"Successfully provisioned volume pvc-{pvc['metadata']['uid']}",
            )
        return None
