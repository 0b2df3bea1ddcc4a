"""Writes core/v1 Events the way client-go's recorder does, folding repeats into a count."""

from __future__ import annotations

import time
from collections.abc import Mapping
from typing import Any

from .errors import ApiError
from .store import Store

__all__ = ["EventRecorder"]


class EventRecorder:
    """Records events about objects for one component (``default-scheduler``, ``kubelet``, ...)."""

    def __init__(self, store: Store, component: str, host: str = "") -> None:
        self.store = store
        self.component = component
        self.host = host
        self._rt = store.registry.core("events")
        # (involved uid, type, reason, message) -> event name, for folding repeats
        self._seen: dict[tuple[str, str, str, str], tuple[str, str]] = {}

    def record(
        self,
        obj: Mapping[str, Any],
        type_: str,
        reason: str,
        message: str,
        *,
        host: str | None = None,
        field_path: str = "",
    ) -> None:
        meta = obj["metadata"]
        namespace = meta.get("namespace") or "default"
        key = (meta["uid"], type_, reason, message)
        now = self.store.now()
        seen = self._seen.get(key)
        if seen is not None:
            ns, name = seen
            try:
                self.store.update(
                    self._rt,
                    ns,
                    name,
                    lambda ev: ev.update(count=int(ev.get("count", 1)) + 1, lastTimestamp=now),
                )
                return
            except ApiError:
                del self._seen[key]  # the event was deleted: write a new one
        involved = {
            "kind": obj.get("kind", ""),
            "namespace": meta.get("namespace", ""),
            "name": meta["name"],
            "uid": meta["uid"],
            "apiVersion": obj.get("apiVersion", ""),
            "resourceVersion": meta.get("resourceVersion", ""),
        }
        if field_path:
            involved["fieldPath"] = field_path
        if not involved["namespace"]:
            del involved["namespace"]
        source = {"component": self.component}
        if host or self.host:
            source["host"] = host or self.host
        event = {
            "metadata": {"name": f"{meta['name']}.{time.time_ns():x}", "namespace": namespace},
            "involvedObject": involved,
            "reason": reason,
            "message": message,
            "type": type_,
            "source": source,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
            "reportingComponent": self.component,
            "reportingInstance": host or self.host,
        }
        try:
            created = self.store.create(self._rt, namespace, event)
        except ApiError:
            return  # e.g. the namespace is being deleted: events are best effort
        self._seen[key] = (namespace, created["metadata"]["name"])
        if len(self._seen) > 50_000:
            self._seen.clear()
