"""A cluster as a security boundary: built-in RBAC roles, the admission plugins, the quota controller."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .authz.bootstrap import seed
from .controller import Controller
from .podsecurity import PodSecurityAdmission
from .quota import LimitRanger, QuotaAdmission, QuotaStatus
from .resources import ResourceType
from .store import Store

__all__ = ["install"]


def install(store: Store, *, extended_resource_toleration: bool = False) -> list[Controller]:
    """Seed the built-in roles, add the admission plugins in the apiserver's order (the mutating
    ExtendedResourceToleration, where enabled, and LimitRanger, then PodSecurity and ResourceQuota
    validate), and return the controllers to run."""
    seed(store)
    if extended_resource_toleration:
        store.admission_plugins.append(ExtendedResourceToleration(store))
    store.admission_plugins += [LimitRanger(store), PodSecurityAdmission(store), QuotaAdmission(store)]
    return [QuotaStatus(store)]


class ExtendedResourceToleration:
    """Kubernetes' ExtendedResourceToleration admission plugin: a new pod that asks for an extended
    resource (``nvidia.com/gpu``) gets a toleration of the taint of that name (key = the resource,
    operator Exists, effect NoSchedule), as nodes dedicated to it are tainted (a store plugin)."""

    def __init__(self, store: Store) -> None:
        self._pods = store.registry.core("pods")

    def __call__(self, rt: ResourceType, obj: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        if rt is not self._pods or old is not None:
            return
        spec = obj.get("spec") or {}
        wanted: set[str] = set()
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            res = c.get("resources") or {}
            for values in (res.get("requests") or {}, res.get("limits") or {}):
                wanted.update(
                    r for r in values if "/" in r and not r.startswith(("kubernetes.io/", "hugepages-"))
                )
        tolerations = spec.setdefault("tolerations", []) if wanted else []
        for resource in sorted(wanted):
            toleration = {"key": resource, "operator": "Exists", "effect": "NoSchedule"}
            if toleration not in tolerations:
                tolerations.append(toleration)
