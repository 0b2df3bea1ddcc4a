"""The user and request attributes an authorizer decides on, parsed from a request as the apiserver does."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["Attributes", "UserInfo", "request_attributes"]

AUTHENTICATED = "system:authenticated"
MASTERS = "system:masters"
# Subresources of a namespace: /api/v1/namespaces/{name}/status is the namespace's, not a resource "status".
_NAMESPACE_SUBRESOURCES = {"status", "finalize"}
_METHOD_VERBS = {"POST": "create", "GET": "get", "HEAD": "get", "PUT": "update", "PATCH": "patch"}


@dataclass(frozen=True)
class UserInfo:
    """An authenticated identity: a name, its groups, and optionally a uid and extra values."""

    name: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()


@dataclass(frozen=True)
class Attributes:
    """What a request asks to do, as ``authorizer.AttributesRecord`` holds it."""

    user: UserInfo
    verb: str
    resource_request: bool
    path: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    namespace: str = ""
    name: str = ""


def _field_name(field_selector: str | None) -> str:
    """The name a ``metadata.name=x`` field selector pins a list or watch to, as RequestInfo reads it."""
    for term in (field_selector or "").split(","):
        key, sep, value = term.partition("==") if "==" in term else term.partition("=")
        if sep and key.strip() == "metadata.name" and value and "/" not in value and value not in {".", ".."}:
            return value
    return ""


def request_attributes(user: UserInfo, method: str, path: str, query: Mapping[str, str]) -> Attributes:
    """The attributes of a request, parsed from its path alone as the apiserver's RequestInfoFactory does.

    /api and /api/v1, /apis/{group} and /apis/{group}/{version} are non-resource paths (discovery);
    a GET without a name is a list (a watch with ``watch=true``); a DELETE without one a deletecollection.
    """
    parts = [p for p in path.strip("/").split("/") if p]
    non_resource = Attributes(user=user, verb=method.lower(), resource_request=False, path=path)
    if not parts or parts[0] not in {"api", "apis"}:
        return non_resource
    rest = parts[1:]
    group = ""
    if parts[0] == "apis":
        if len(rest) < 3:
            return non_resource
        group, rest = rest[0], rest[1:]
    elif len(rest) < 2:
        return non_resource
    version, rest = rest[0], rest[1:]
    verb = _METHOD_VERBS.get(method.upper(), method.lower())
    if method.upper() == "DELETE":
        verb = "delete"
    if rest and rest[0] == "watch":
        verb, rest = "watch", rest[1:]
    namespace = ""
    if rest and rest[0] == "namespaces" and len(rest) > 1:
        namespace = rest[1]
        if len(rest) > 2 and rest[2] not in _NAMESPACE_SUBRESOURCES:
            rest = rest[2:]
    resource = rest[0] if rest else ""
    name = rest[1] if len(rest) > 1 else ""
    subresource = rest[2] if len(rest) > 2 else ""
    if not name and verb == "get":
        verb = "watch" if query.get("watch", "").lower() in {"true", "1"} else "list"
        name = _field_name(query.get("fieldSelector"))
    if not name and verb == "delete":
        verb = "deletecollection"
    return Attributes(
        user=user,
        verb=verb,
        resource_request=True,
        path=path,
        api_group=group,
        api_version=version,
        resource=resource,
        subresource=subresource,
        namespace=namespace,
        name=name,
    )
