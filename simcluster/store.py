"""The object store of one emulated cluster: CRUD, one resourceVersion counter, watches, history."""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson

from . import admission
from .errors import ApiError, already_exists, conflict, expired, not_found
from .history import DEFAULT_WINDOW, EventHistory, Revisions, WatchWindow
from .resources import Registry, ResourceType
from .selectors import FieldSelector, LabelSelector, field_set

__all__ = ["AdmissionPlugin", "Store", "WatchEvent", "Watcher", "rfc3339"]

log = logging.getLogger(__name__)

TypeKey = tuple[str, str, str]

# An admission plugin sees each created or updated object (with the stored one on update) after the
# kind's defaults and before the write: it may change it (LimitRange defaults) or raise an ApiError.
AdmissionPlugin = Callable[[ResourceType, dict[str, Any], Mapping[str, Any] | None], None]
# A watcher whose client reads slower than this many queued events is closed, as the apiserver does.
MAX_WATCH_BACKLOG = 50_000


def rfc3339(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def clone(obj: Any) -> Any:
    """A deep copy of a JSON-like value (faster than copy.deepcopy for our objects)."""
    return orjson.loads(orjson.dumps(obj))


class Entry:
    """A stored object plus caches derived from it; replaced, never mutated, on every write."""

    __slots__ = ("_fields", "_raw", "obj")

    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self._raw: bytes | None = None
        self._fields: dict[str, str] | None = None

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = orjson.dumps(self.obj)
        return self._raw

    def fields(self, kind: str) -> dict[str, str]:
        if self._fields is None:
            self._fields = field_set(kind, self.obj)
        return self._fields

    @property
    def labels(self) -> Mapping[str, str]:
        return self.obj["metadata"].get("labels") or {}


@dataclass
class WatchEvent:
    """One change: ADDED, MODIFIED or DELETED, with the object before it (for selector transitions)."""

    type: str
    rt: ResourceType
    entry: Entry
    prev: Entry | None
    rv: int

    @property
    def obj(self) -> dict[str, Any]:
        return self.entry.obj

    @property
    def namespace(self) -> str:
        return str(self.entry.obj["metadata"].get("namespace") or "")


@dataclass(eq=False)
class Watcher:
    """A client watch: its filters and the queue the store fills (None marks the end)."""

    rt: ResourceType
    namespace: str | None
    labels: LabelSelector
    fields: FieldSelector
    queue: asyncio.Queue[tuple[str, dict[str, Any], bytes | None] | None] = field(
        default_factory=asyncio.Queue
    )
    closed: bool = False

    def matches(self, entry: Entry | None) -> bool:
        if entry is None:
            return False
        if self.namespace is not None and entry.obj["metadata"].get("namespace") != self.namespace:
            return False
        if not self.labels.empty and not self.labels.matches(entry.labels):
            return False
        return self.fields.empty or self.fields.matches(entry.fields(self.rt.kind))

    def offer(self, event: WatchEvent) -> None:
        """Queue what this watcher sees of ``event`` (a selector transition turns into ADDED/DELETED)."""
        if self.closed:
            return
        now, before = self.matches(event.entry), self.matches(event.prev)
        item: tuple[str, dict[str, Any], Entry | None] | None
        if event.type == "DELETED":
            item = ("DELETED", event.obj, event.entry) if now else None
        elif now and before:
            item = ("MODIFIED", event.obj, event.entry)
        elif now:
            item = ("ADDED", event.obj, event.entry)
        elif before and event.prev is not None:
            # left the selector: DELETED with the old object at the new resourceVersion
            gone = clone(event.prev.obj)
            gone["metadata"]["resourceVersion"] = str(event.rv)
            item = ("DELETED", gone, None)
        else:
            item = None
        if item is None:
            return
        typ, obj, entry = item
        self.queue.put_nowait((typ, obj, entry.raw if entry is not None else None))
        if self.queue.qsize() > MAX_WATCH_BACKLOG:
            log.warning("closing a %s watch that fell %d events behind", self.rt.plural, MAX_WATCH_BACKLOG)
            self.close()

    def close(self, error: dict[str, Any] | None = None) -> None:
        if self.closed:
            return
        self.closed = True
        if error is not None:
            self.queue.put_nowait(("ERROR", error, None))
        self.queue.put_nowait(None)


class Store:
    """All objects of one cluster. Every method is synchronous: one event-loop step is atomic."""

    def __init__(
        self,
        registry: Registry,
        *,
        history: WatchWindow = DEFAULT_WINDOW,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
        service_cidr: str = "10.96.0.0/16",
    ) -> None:
        self.registry = registry
        self.clock = clock
        self.rv = 1
        self.window = history
        self._objects: dict[TypeKey, dict[str, dict[str, Entry]]] = {}
        self._history: dict[TypeKey, EventHistory[WatchEvent]] = {}
        self._revisions = Revisions(history.compaction)
        self._watchers: dict[TypeKey, set[Watcher]] = {}
        self._listeners: list[Callable[[WatchEvent], None]] = []
        self.admission_plugins: list[AdmissionPlugin] = []
        self._owners: dict[str, set[tuple[TypeKey, str, str]]] = {}  # owner uid -> dependents
        self._service_ips = ipaddress.ip_network(service_cidr).hosts()
        next(self._service_ips)  # .1 is the kubernetes service
        self._node_ports = iter(range(30000, 32768))

    # ------------------------------------------------------------------ reading

    def now(self) -> str:
        return rfc3339(self.clock())

    def _bucket(self, rt: ResourceType, namespace: str | None) -> dict[str, Entry]:
        return self._objects.setdefault(rt.key, {}).setdefault(namespace or "", {})

    def entry(self, rt: ResourceType, namespace: str | None, name: str) -> Entry:
        found = self._objects.get(rt.key, {}).get(namespace or "", {}).get(name)
        if found is None:
            raise not_found(rt.plural, name, rt.group)
        return found

    def get(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any]:
        """The stored object; callers must not mutate it (use ``clone``)."""
        return self.entry(rt, namespace, name).obj

    def find(self, rt: ResourceType, namespace: str | None, name: str) -> dict[str, Any] | None:
        found = self._objects.get(rt.key, {}).get(namespace or "", {}).get(name)
        return None if found is None else found.obj

    def entries(
        self,
        rt: ResourceType,
        namespace: str | None = None,
        labels: LabelSelector | None = None,
        fields: FieldSelector | None = None,
    ) -> Iterator[Entry]:
        """Matching entries; ``namespace=None`` means all namespaces."""
        by_ns = self._objects.get(rt.key, {})
        if fields is not None and rt.namespaced and namespace is None:
            namespace = fields.get("metadata.namespace")
        buckets = [by_ns.get(namespace, {})] if namespace is not None else list(by_ns.values())
        for bucket in buckets:
            for e in bucket.values():
                if labels is not None and not labels.empty and not labels.matches(e.labels):
                    continue
                if fields is not None and not fields.empty and not fields.matches(e.fields(rt.kind)):
                    continue
                yield e

    def list(self, rt: ResourceType, namespace: str | None = None, **kw: Any) -> list[dict[str, Any]]:
        return [e.obj for e in self.entries(rt, namespace, **kw)]

    def namespace_exists(self, name: str) -> bool:
        return self.find(self.registry.core("namespaces"), None, name) is not None

    # ------------------------------------------------------------------ writing

    def _allocate(self, what: str) -> str:
        if what == "clusterIP":
            return str(next(self._service_ips))
        return str(next(self._node_ports))

    def _commit(self, rt: ResourceType, typ: str, obj: dict[str, Any], prev: Entry | None) -> Entry:
        self.rv += 1
        obj["metadata"]["resourceVersion"] = str(self.rv)
        entry = Entry(obj)
        bucket = self._bucket(rt, obj["metadata"].get("namespace"))
        name = obj["metadata"]["name"]
        if typ == "DELETED":
            bucket.pop(name, None)
        else:
            bucket[name] = entry
        self._index_owners(rt, entry, prev, removed=typ == "DELETED")
        event = WatchEvent(typ, rt, entry, prev, self.rv)
        now = self.clock().timestamp()
        hist = self._history.get(rt.key)
        if hist is None:
            hist = self._history[rt.key] = EventHistory(self.window)
        hist.append(self.rv, event, now)
        self._revisions.note(self.rv, now)
        for watcher in list(self._watchers.get(rt.key, ())):
            watcher.offer(event)
        for listener in list(self._listeners):
            try:
                listener(event)
            except Exception:  # a controller bug must not break the API
                log.exception("store listener failed")
        return entry

    def create(
        self,
        rt: ResourceType,
        namespace: str | None,
        obj: dict[str, Any],
        *,
        dry_run: bool = False,
        keep_status: bool = False,
    ) -> dict[str, Any]:
        """Store a new object (``obj`` is consumed) and return it as stored."""
        if rt.namespaced:
            if not namespace:
                raise ApiError(400, "the server could not find the requested resource: namespace required")
            if not self.namespace_exists(namespace):
                raise not_found("namespaces", namespace)
        status = obj.get("status") if keep_status else None
        obj = admission.prepare_create(
            rt,
            obj,
            namespace if rt.namespaced else None,
            uid=str(uuid.uuid4()),
            now=self.now(),
            allocate=self._allocate,
        )
        if status is not None:
            obj["status"] = status
        for plugin in self.admission_plugins:
            plugin(rt, obj, None)
        name = obj["metadata"]["name"]
        if name in self._bucket(rt, namespace if rt.namespaced else None):
            raise already_exists(rt.plural, name, rt.group)
        if rt.kind == "Namespace" and rt.builtin:
            ns_meta = obj["metadata"]
            if self.find(rt, None, ns_meta["name"]) is not None:
                raise already_exists(rt.plural, ns_meta["name"])
        if dry_run:
            obj["metadata"]["resourceVersion"] = ""
            return obj
        stored = self._commit(rt, "ADDED", obj, None).obj
        if rt.kind == "Namespace" and rt.builtin:
            sa = self.registry.core("serviceaccounts")
            self.create(sa, name, {"metadata": {"name": "default"}})
        return stored

    def replace(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        obj: dict[str, Any],
        *,
        subresource: str | None = None,
        dry_run: bool = False,
        check_version: bool = True,
    ) -> dict[str, Any]:
        """PUT: a whole new object (``obj`` is consumed); 409 when its resourceVersion is stale."""
        current = self.entry(rt, namespace, name)
        wanted_rv = (obj.get("metadata") or {}).get("resourceVersion") if isinstance(obj, dict) else None
        if check_version and wanted_rv and wanted_rv != current.obj["metadata"]["resourceVersion"]:
            raise conflict(rt.plural, name, rt.group)
        new = admission.prepare_update(rt, current.obj, obj, subresource)
        for plugin in self.admission_plugins:
            plugin(rt, new, current.obj)
        if dry_run:
            return new
        return self._write(rt, new, current)

    def update(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        mutate: Callable[[dict[str, Any]], Any],
        *,
        subresource: str | None = None,
    ) -> dict[str, Any]:
        """Apply ``mutate`` to a copy of the current object and store it (no version check)."""
        current = self.entry(rt, namespace, name)
        new = clone(current.obj)
        mutate(new)
        new = admission.prepare_update(rt, current.obj, new, subresource)
        for plugin in self.admission_plugins:
            plugin(rt, new, current.obj)
        return self._write(rt, new, current)

    def system_update(self, rt: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
        """Store ``obj`` as it is, bypassing admission: for controllers (binding, kubelet status)."""
        meta = obj["metadata"]
        current = self.entry(rt, meta.get("namespace"), meta["name"])
        return self._write(rt, obj, current)

    def _write(self, rt: ResourceType, new: dict[str, Any], current: Entry) -> dict[str, Any]:
        meta = new["metadata"]
        if meta.get("deletionTimestamp") and not meta.get("finalizers") and self._may_remove(rt, new):
            return self._commit(rt, "DELETED", new, current).obj
        if new == current.obj:  # a no-op write keeps its resourceVersion, as the apiserver does
            return current.obj
        return self._commit(rt, "MODIFIED", new, current).obj

    @staticmethod
    def _may_remove(rt: ResourceType, obj: Mapping[str, Any]) -> bool:
        """Pods wait for the kubelet (grace period 0) before they go; others go with their finalizers."""
        if rt.kind == "Pod" and rt.builtin:
            return bool(obj["metadata"].get("deletionGracePeriodSeconds", 0) == 0)
        return True

    def delete(
        self,
        rt: ResourceType,
        namespace: str | None,
        name: str,
        *,
        grace_period: int | None = None,
        preconditions: Mapping[str, Any] | None = None,
        dry_run: bool = False,
        orphan: bool = False,
    ) -> dict[str, Any]:
        """DELETE: remove now, or mark with deletionTimestamp while finalizers or a pod's grace remain.

        ``orphan`` is the Orphan propagation policy: dependents lose their owner reference and stay.
        """
        current = self.entry(rt, namespace, name)
        meta = current.obj["metadata"]
        for key, have in (("uid", meta["uid"]), ("resourceVersion", meta["resourceVersion"])):
            want = (preconditions or {}).get(key)
            if want and want != have:
                raise ApiError(
                    409,
                    f"Precondition failed: {key.capitalize() if key == 'uid' else 'ResourceVersion'} "
                    f"in precondition: {want}, {key} in object meta: {have}",
                    reason="Conflict",
                )
        if dry_run:
            return current.obj
        if orphan:
            self._orphan_dependents(meta["uid"])
        obj = clone(current.obj)
        grace = self._grace_period(rt, obj, grace_period)
        finalizers = obj["metadata"].get("finalizers")
        if rt.kind == "Namespace" and rt.builtin:
            self._delete_namespace_contents(name)
        if not finalizers and grace == 0:
            if meta.get("deletionTimestamp") is None:
                obj["metadata"]["deletionTimestamp"] = self.now()
            obj["metadata"]["deletionGracePeriodSeconds"] = 0
            return self._commit(rt, "DELETED", obj, current).obj
        if meta.get("deletionTimestamp") is not None:
            if grace is not None and grace < int(meta.get("deletionGracePeriodSeconds") or 0):
                obj["metadata"]["deletionGracePeriodSeconds"] = grace  # shortening is allowed
                return self._write(rt, obj, current)
            return current.obj
        when = self.clock() + timedelta(seconds=grace or 0)
        obj["metadata"]["deletionTimestamp"] = rfc3339(when)
        obj["metadata"]["deletionGracePeriodSeconds"] = grace or 0
        if rt.kind == "Namespace" and rt.builtin:
            obj.setdefault("status", {})["phase"] = "Terminating"
        return self._commit(rt, "MODIFIED", obj, current).obj

    @staticmethod
    def _grace_period(rt: ResourceType, obj: Mapping[str, Any], asked: int | None) -> int:
        if not (rt.kind == "Pod" and rt.builtin):
            return 0
        spec, status = obj.get("spec") or {}, obj.get("status") or {}
        if not spec.get("nodeName") or status.get("phase") in {"Succeeded", "Failed"}:
            return 0  # nothing runs it: it goes at once
        if asked is None:
            asked = int(spec.get("terminationGracePeriodSeconds", 30))
        return max(0, asked)

    def _delete_namespace_contents(self, namespace: str) -> None:
        for key, by_ns in list(self._objects.items()):
            rt = self.registry.types.get(key)
            if rt is None or not rt.namespaced:
                continue
            for name in list(by_ns.get(namespace, {})):
                with contextlib.suppress(ApiError):
                    self.delete(rt, namespace, name, grace_period=0)

    # ------------------------------------------------------------------ garbage collection

    def _index_owners(self, rt: ResourceType, entry: Entry, prev: Entry | None, removed: bool) -> None:
        meta = entry.obj["metadata"]
        ref = (rt.key, meta.get("namespace") or "", meta["name"])
        for old in (prev.obj["metadata"].get("ownerReferences") or []) if prev else []:
            self._owners.get(old.get("uid", ""), set()).discard(ref)
        if not removed:
            for owner in meta.get("ownerReferences") or []:
                self._owners.setdefault(owner.get("uid", ""), set()).add(ref)
            return
        for dep_key, dep_ns, dep_name in sorted(self._owners.pop(meta["uid"], set())):
            dep_rt = self.registry.types.get(dep_key)
            if dep_rt is None:
                continue
            with contextlib.suppress(ApiError):
                self.delete(dep_rt, dep_ns or None, dep_name)

    def _orphan_dependents(self, uid: str) -> None:
        for dep_key, dep_ns, dep_name in sorted(self._owners.get(uid, set())):
            dep_rt = self.registry.types.get(dep_key)
            entry = self._objects.get(dep_key, {}).get(dep_ns, {}).get(dep_name)
            if dep_rt is None or entry is None:
                continue
            new = clone(entry.obj)
            refs = [r for r in new["metadata"].get("ownerReferences") or [] if r.get("uid") != uid]
            if refs:
                new["metadata"]["ownerReferences"] = refs
            else:
                new["metadata"].pop("ownerReferences", None)
            self._write(dep_rt, new, entry)

    # ------------------------------------------------------------------ watching

    def watch(
        self,
        rt: ResourceType,
        namespace: str | None,
        labels: LabelSelector,
        fields: FieldSelector,
        resource_version: str | None,
    ) -> Watcher:
        """Register a watch; replay history after ``resource_version`` or the current state.

        Raises 410 Expired, worded as the watch cache words it, when the window no longer reaches
        back to ``resource_version``.
        """
        watcher = Watcher(rt, namespace, labels, fields)
        if not resource_version or resource_version == "0":
            for e in self.entries(rt, namespace, labels, fields):
                watcher.queue.put_nowait(("ADDED", e.obj, e.raw))
        else:
            try:
                since = int(resource_version)
            except ValueError as exc:
                raise ApiError(400, f"invalid resource version: {resource_version}") from exc
            history = self._history.get(rt.key)
            if history is not None:
                limit = history.too_old(since)
                if limit is not None:
                    raise expired(f"too old resource version: {since} ({limit})")
                for event in history.since(since):
                    watcher.offer(event)
        self._watchers.setdefault(rt.key, set()).add(watcher)
        return watcher

    def unwatch(self, watcher: Watcher) -> None:
        self._watchers.get(watcher.rt.key, set()).discard(watcher)
        watcher.closed = True

    def expire_watches(self) -> int:
        """Close every watch with 410 Gone and forget the history: resumes must relist."""
        closed = 0
        for key, watchers in self._watchers.items():
            for watcher in list(watchers):
                oldest = self.rv
                watcher.close(expired(f"too old resource version: {oldest - 1} ({oldest})").status())
                closed += 1
            watchers.clear()
            del key
        for key in set(self._history) | set(self._objects):
            self._history.setdefault(key, EventHistory(self.window)).reset(self.rv)
        return closed

    def compacted(self) -> int:
        """Every resourceVersion below this one is compacted, as etcd's are (0: none is yet)."""
        return self._revisions.compacted(self.clock().timestamp())

    def close_watches(self) -> None:
        """End every watch cleanly (server shutdown)."""
        for watchers in self._watchers.values():
            for watcher in list(watchers):
                watcher.close()
            watchers.clear()

    def subscribe(self, listener: Callable[[WatchEvent], None]) -> Callable[[], None]:
        """Call ``listener`` synchronously after every write; returns the unsubscribe function."""
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def counts(self) -> dict[str, int]:
        return {rt_key[2]: sum(len(b) for b in by_ns.values()) for rt_key, by_ns in self._objects.items()}
