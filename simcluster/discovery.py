"""API discovery documents (/version, /api, /apis, group/version resource lists) and health paths."""

from __future__ import annotations

from typing import Any

from .resources import Registry

__all__ = ["KUBERNETES_VERSION", "document"]

KUBERNETES_VERSION = {"major": "1", "minor": "32", "gitVersion": "v1.32.0-simcluster"}


def _version() -> dict[str, Any]:
    return {
        **KUBERNETES_VERSION,
        "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean",
        "buildDate": "2026-01-01T00:00:00Z",
        "goVersion": "go1.23.0",
        "compiler": "gc",
        "platform": "linux/amd64",
    }


def _resource_list(registry: Registry, group: str, version: str) -> dict[str, Any] | None:
    types = registry.in_group_version(group, version)
    if not types:
        return None
    return {
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": f"{group}/{version}" if group else version,
        "resources": [entry for rt in types for entry in rt.discovery()],
    }


def _group(name: str, versions: list[str]) -> dict[str, Any]:
    gvs = [{"groupVersion": f"{name}/{v}", "version": v} for v in versions]
    return {"name": name, "versions": gvs, "preferredVersion": gvs[0]}


def document(registry: Registry, path: str, accept: str = "") -> dict[str, Any] | str | None:
    """The discovery document at ``path`` (no trailing slash), "ok" for health paths, else None.

    Aggregated discovery (``as=APIGroupDiscoveryList`` in Accept) is not served: we answer the legacy
    documents with ``application/json`` and kubectl falls back to them, as it does with older servers.
    """
    del accept  # legacy documents whatever is asked; see above
    if path in {"/readyz", "/livez", "/healthz"}:
        return "ok"
    if path == "/version":
        return _version()
    if path == "/api":
        return {
            "kind": "APIVersions",
            "versions": ["v1"],
            "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": ""}],
        }
    if path == "/api/v1":
        return _resource_list(registry, "", "v1")
    groups = registry.groups()
    if path == "/apis":
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [_group(name, versions) for name, versions in groups.items()],
        }
    parts = path.strip("/").split("/")
    if parts[0] == "apis" and len(parts) == 2 and parts[1] in groups:
        return {"kind": "APIGroup", "apiVersion": "v1", **_group(parts[1], groups[parts[1]])}
    if parts[0] == "apis" and len(parts) == 3:
        return _resource_list(registry, parts[1], parts[2])
    return None
