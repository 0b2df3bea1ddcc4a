"""ResourceQuota and LimitRange: the admission plugins that default, bound and count a namespace's pods.

Usage is counted from the namespace's pods at the moment of admission (the store is one event-loop
step), so two creates cannot both take the last unit; a controller writes it into ``status.used``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

from .admission import canonical_quantity, qos_class
from .controller import Controller
from .errors import ApiError
from .quantity import QuantityError, format_bytes, format_cpu, parse_quantity
from .resources import ResourceType
from .store import Store, WatchEvent, clone

__all__ = ["LimitRanger", "QuotaAdmission", "QuotaStatus", "pod_usage"]

_TERMINAL = {"Succeeded", "Failed"}
# quota names that make each container name its request or limit (the "must specify" rule)
_MUST_SPECIFY = {
    "cpu": ("requests", "cpu"),
    "requests.cpu": ("requests", "cpu"),
    "memory": ("requests", "memory"),
    "requests.memory": ("requests", "memory"),
    "limits.cpu": ("limits", "cpu"),
    "limits.memory": ("limits", "memory"),
}


def _fmt(resource: str, value: Decimal) -> str:
    binary = "memory" in resource or "storage" in resource
    return format_bytes(value) if binary else format_cpu(value)


def _forbidden(name: str, message: str) -> ApiError:
    return ApiError(403, f'pods "{name}" is forbidden: {message}', details={"name": name, "kind": "pods"})


def _pod_totals(pod: Mapping[str, Any], kind: str) -> dict[str, Decimal]:
    """The pod's effective requests or limits: the containers' sum, or an init container's if larger."""
    spec = pod.get("spec") or {}
    total: dict[str, Decimal] = {}
    for c in spec.get("containers") or []:
        for rname, qty in ((c.get("resources") or {}).get(kind) or {}).items():
            total[rname] = total.get(rname, Decimal(0)) + parse_quantity(qty)
    for c in spec.get("initContainers") or []:
        for rname, qty in ((c.get("resources") or {}).get(kind) or {}).items():
            total[rname] = max(total.get(rname, Decimal(0)), parse_quantity(qty))
    return total


def pod_usage(pod: Mapping[str, Any]) -> dict[str, Decimal]:
    """What one pod counts against quota names: pods, count/pods, requests.*, limits.*, cpu, memory."""
    if (pod.get("status") or {}).get("phase") in _TERMINAL:
        return {}
    usage = {"pods": Decimal(1), "count/pods": Decimal(1)}
    for rname, amount in _pod_totals(pod, "requests").items():
        usage[f"requests.{rname}"] = amount
        if rname in ("cpu", "memory", "ephemeral-storage"):
            usage[rname] = amount
    for rname, amount in _pod_totals(pod, "limits").items():
        if rname in ("cpu", "memory", "ephemeral-storage"):
            usage[f"limits.{rname}"] = amount
    return usage


def _hard(quota: Mapping[str, Any]) -> dict[str, Decimal]:
    out = {}
    for rname, qty in ((quota.get("spec") or {}).get("hard") or {}).items():
        try:
            out[rname] = parse_quantity(qty)
        except QuantityError:
            continue
    return out


def _used(store: Store, pods: ResourceType, namespace: str, names: Iterable[str]) -> dict[str, Decimal]:
    used = dict.fromkeys(names, Decimal(0))
    for pod in store.list(pods, namespace):
        for rname, amount in pod_usage(pod).items():
            if rname in used:
                used[rname] += amount
    return used


def _pretty(values: Mapping[str, Decimal], keys: Iterable[str]) -> str:
    return ",".join(f"{k}={_fmt(k, values.get(k, Decimal(0)))}" for k in sorted(keys))


class QuotaAdmission:
    """Refuses a pod that would take a namespace past one of its ResourceQuotas (a store admission plugin)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pods = store.registry.core("pods")
        self._quotas = store.registry.core("resourcequotas")

    def __call__(self, rt: ResourceType, obj: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        if rt is not self._pods or old is not None:
            return  # a pod's resources cannot change after it is created
        meta = obj["metadata"]
        namespace, name = meta.get("namespace") or "", meta["name"]
        quotas = sorted(self.store.list(self._quotas, namespace), key=lambda q: q["metadata"]["name"])
        if not quotas:
            return
        delta = pod_usage(obj)
        for quota in quotas:
            hard = _hard(quota)
            missing = self._missing(obj, hard)
            if missing:
                raise _forbidden(name, f"failed quota: {quota['metadata']['name']}: must specify {missing}")
            used = _used(self.store, self._pods, namespace, hard)
            exceeded = [k for k in hard if k in delta and used[k] + delta[k] > hard[k]]
            if exceeded:
                raise _forbidden(
                    name,
                    f"exceeded quota: {quota['metadata']['name']}, requested: {_pretty(delta, exceeded)}, "
                    f"used: {_pretty(used, exceeded)}, limited: {_pretty(hard, exceeded)}",
                )

    @staticmethod
    def _missing(pod: Mapping[str, Any], hard: Mapping[str, Decimal]) -> str:
        """'requests.cpu for: a,b; limits.memory for: a' for what the quota needs each container to name."""
        wanted: dict[str, list[str]] = {}
        spec = pod.get("spec") or {}
        for c in [*(spec.get("containers") or []), *(spec.get("initContainers") or [])]:
            res = c.get("resources") or {}
            for qname in hard:
                if qname in _MUST_SPECIFY:
                    kind, rname = _MUST_SPECIFY[qname]
                    if rname not in (res.get(kind) or {}):
                        wanted.setdefault(qname, []).append(str(c.get("name", "")))
        return "; ".join(f"{q} for: {','.join(sorted(set(n)))}" for q, n in sorted(wanted.items()))


def _limit_range_defaults(item: dict[str, Any]) -> None:
    """SetDefaults_LimitRangeItem: default limits from max, default requests from default or min."""
    if item.get("type") != "Container":
        return
    default = item.setdefault("default", {})
    request = item.setdefault("defaultRequest", {})
    for rname, qty in (item.get("max") or {}).items():
        default.setdefault(rname, qty)
    for rname, qty in default.items():
        request.setdefault(rname, qty)
    for rname, qty in (item.get("min") or {}).items():
        request.setdefault(rname, qty)
    for key in ("default", "defaultRequest"):
        if not item[key]:
            del item[key]


class LimitRanger:
    """LimitRange admission: container defaults first, then the min and max checks (a store plugin)."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self._pods = store.registry.core("pods")
        self._ranges = store.registry.core("limitranges")

    def __call__(self, rt: ResourceType, obj: dict[str, Any], old: Mapping[str, Any] | None) -> None:
        if rt is self._ranges:
            for item in (obj.get("spec") or {}).get("limits") or []:
                if isinstance(item, dict):
                    _limit_range_defaults(item)
            return
        if rt is not self._pods or old is not None:
            return
        items = [
            item
            for lr in sorted(self.store.list(self._ranges, obj["metadata"].get("namespace")), key=_name)
            for item in (lr.get("spec") or {}).get("limits") or []
            if item.get("type") == "Container"
        ]
        if items:
            self._default(obj, items)
            self._check(obj, items)

    @staticmethod
    def _default(pod: dict[str, Any], items: list[Mapping[str, Any]]) -> None:
        limits: dict[str, Any] = {}
        requests: dict[str, Any] = {}
        for item in items:
            requests.update(item.get("defaultRequest") or {})
            limits.update(item.get("default") or {})
        notes = []
        spec = pod["spec"]
        every = [("container", c) for c in spec.get("containers") or []]
        every += [("init container", c) for c in spec.get("initContainers") or []]
        for what, c in every:
            res = c.setdefault("resources", {})
            for kind, defaults in (("requests", requests), ("limits", limits)):
                have = res.setdefault(kind, {})
                added = sorted(r for r in defaults if r not in have)
                for rname in added:
                    have[rname] = canonical_quantity(defaults[rname])
                if not have:
                    del res[kind]
                if added:
                    notes.append(f"{', '.join(added)} {kind[:-1]} for {what} {c.get('name', '')}")
        if notes:
            annotations = pod["metadata"].setdefault("annotations", {})
            annotations["kubernetes.io/limit-ranger"] = "LimitRanger plugin set: " + "; ".join(notes)
            pod.setdefault("status", {})["qosClass"] = qos_class(spec)

    @staticmethod
    def _check(pod: Mapping[str, Any], items: list[Mapping[str, Any]]) -> None:
        errors = []
        spec = pod.get("spec") or {}
        for c in [*(spec.get("initContainers") or []), *(spec.get("containers") or [])]:
            res = c.get("resources") or {}
            req, lim = res.get("requests") or {}, res.get("limits") or {}
            for item in items:
                for rname, bound in (item.get("min") or {}).items():
                    shown = canonical_quantity(bound)
                    if rname not in req:
                        errors.append(
                            f"minimum {rname} usage per Container is {shown}.  No request is specified"
                        )
                    elif parse_quantity(req[rname]) < parse_quantity(bound):
                        errors.append(
                            f"minimum {rname} usage per Container is {shown}, but request is {req[rname]}"
                        )
                    elif rname in lim and parse_quantity(lim[rname]) < parse_quantity(bound):
                        errors.append(
                            f"minimum {rname} usage per Container is {shown}, but limit is {lim[rname]}"
                        )
                for rname, bound in (item.get("max") or {}).items():
                    shown = canonical_quantity(bound)
                    if rname not in lim:
                        errors.append(
                            f"maximum {rname} usage per Container is {shown}.  No limit is specified"
                        )
                    elif parse_quantity(lim[rname]) > parse_quantity(bound):
                        errors.append(
                            f"maximum {rname} usage per Container is {shown}, but limit is {lim[rname]}"
                        )
                    elif rname in req and parse_quantity(req[rname]) > parse_quantity(bound):
                        errors.append(
                            f"maximum {rname} usage per Container is {shown}, but request is {req[rname]}"
                        )
        if errors:
            # utilerrors.Aggregate: one error as it is, several in brackets
            text = errors[0] if len(errors) == 1 else "[" + ", ".join(errors) + "]"
            raise _forbidden(pod["metadata"]["name"], text)


def _name(obj: Mapping[str, Any]) -> str:
    return str(obj["metadata"]["name"])


class QuotaStatus(Controller):
    """The resource quota controller's part that matters: ``status.hard`` and ``status.used`` kept current."""

    name = "resourcequota-controller"

    def __init__(self, store: Store) -> None:
        super().__init__(store)
        self._pods = store.registry.core("pods")
        self._quotas = store.registry.core("resourcequotas")
        self._dirty: set[str] = set()  # namespaces whose quotas to recount

    def observe(self, event: WatchEvent) -> bool:
        if event.rt is self._quotas and event.type != "DELETED":
            self._dirty.add(event.namespace)
            return True
        if event.rt is self._pods and self.store.list(self._quotas, event.namespace):
            before = pod_usage(event.prev.obj) if event.prev is not None else {}
            after = {} if event.type == "DELETED" else pod_usage(event.obj)
            if before != after:
                self._dirty.add(event.namespace)
                return True
        return False

    def reconcile(self) -> float | None:
        while self._dirty:
            namespace = self._dirty.pop()
            for quota in self.store.list(self._quotas, namespace):
                hard = _hard(quota)
                used = _used(self.store, self._pods, namespace, hard)
                status = {
                    "hard": {
                        k: canonical_quantity(v)
                        for k, v in ((quota.get("spec") or {}).get("hard") or {}).items()
                    },
                    "used": {k: _fmt(k, v) for k, v in used.items()},
                }
                if quota.get("status") == status:
                    continue
                new = clone(quota)
                new["status"] = status
                try:
                    self.store.system_update(self._quotas, new)
                except ApiError:
                    continue
        return None
