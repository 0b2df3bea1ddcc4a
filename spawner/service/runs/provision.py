"""Makes a user's run namespace in one cluster match what namespaces.build() says, and removes it."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

from spawner.core.labels import HUB_LABEL, RUNS_USER_LABEL
from spawner.service.runs.namespaces import (
    Manifest,
    RunNamespace,
    RunNamespaceSettings,
    namespace_name,
    user_slug,
)

__all__ = ["Change", "ProvisionError", "ensure", "remove"]

log = logging.getLogger(__name__)

# Where each kind the namespace holds is served: the API prefix, the plural, and whether it is namespaced.
_KINDS: dict[tuple[str, str], tuple[str, str, bool]] = {
    ("v1", "Namespace"): ("/api/v1", "namespaces", False),
    ("v1", "ResourceQuota"): ("/api/v1", "resourcequotas", True),
    ("v1", "LimitRange"): ("/api/v1", "limitranges", True),
    ("v1", "ServiceAccount"): ("/api/v1", "serviceaccounts", True),
    ("rbac.authorization.k8s.io/v1", "Role"): ("/apis/rbac.authorization.k8s.io/v1", "roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): (
        "/apis/rbac.authorization.k8s.io/v1",
        "rolebindings",
        True,
    ),
    ("networking.k8s.io/v1", "NetworkPolicy"): ("/apis/networking.k8s.io/v1", "networkpolicies", True),
}
# Fields the API server will not change on an object once it exists: a drift there is fixed by
# deleting the object and creating it again.
_IMMUTABLE = {"RoleBinding": "roleRef"}
_JSON = {200: "object", 201: "object", 202: "object"}


class ProvisionError(Exception):
    """The namespace could not be made or removed; the message names the object and says why.

    ``status`` is the HTTP status the cluster answered, or None when it did not answer in time.
    """

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class Change:
    """One write ensure() or remove() made: "created", "patched", "replaced" or "deleted"."""

    action: str
    kind: str
    name: str


async def ensure(
    api_client: ApiClient,
    namespace: RunNamespace,
    *,
    total_timeout: float = 30.0,
    request_timeout: float = 10.0,
) -> list[Change]:
    """Create what is missing of ``namespace`` and patch what drifted; the writes it made.

    Safe to call again and from two tasks at once: an object another call created meanwhile (409) is
    compared like one that was there. Gives up with ProvisionError after ``total_timeout`` seconds in all.
    """
    calls = _Calls(api_client, request_timeout)
    changes: list[Change] = []
    try:
        async with asyncio.timeout(total_timeout):
            for wanted in namespace.objects:
                change = await _ensure_one(calls, namespace, wanted)
                if change is not None:
                    log.info(
                        "run namespace %s: %s %s %s", namespace.name, change.action, change.kind, change.name
                    )
                    changes.append(change)
    except TimeoutError as exc:
        raise ProvisionError(
            f"namespace {namespace.name}: the cluster did not answer within {total_timeout:g} s; "
            f"made so far: {_listed(changes)}"
        ) from exc
    return changes


async def remove(
    api_client: ApiClient,
    settings: RunNamespaceSettings,
    user: str,
    *,
    total_timeout: float = 30.0,
    request_timeout: float = 10.0,
) -> list[Change]:
    """Delete ``user``'s run namespace, and with it every run in it; nothing when it is gone already.

    Only a namespace that carries this hub's and this user's labels is deleted, and only the one that
    was read, so a namespace someone else made under the same name is never taken.
    """
    name = namespace_name(settings, user)
    calls = _Calls(api_client, request_timeout)
    path = f"/api/v1/namespaces/{name}"
    try:
        async with asyncio.timeout(total_timeout):
            live = await calls.get(path)
            if live is None or _terminating(live):
                return []
            _check_owner(live, name, {HUB_LABEL: settings.hub_instance, RUNS_USER_LABEL: user_slug(user)})
            uid = live["metadata"].get("uid")
            body = {"kind": "DeleteOptions", "apiVersion": "v1", "preconditions": {"uid": uid}}
            await calls.send("DELETE", path, body)
    except ApiException as exc:
        if exc.status in (404, 409):  # gone already, or replaced by another namespace since it was read
            return []
        raise _refusal(exc, "delete", "Namespace", name) from exc
    except TimeoutError as exc:
        answer = f"namespace {name}: the cluster did not answer within {total_timeout:g} s"
        raise ProvisionError(answer) from exc
    log.info("run namespace %s: deleted", name)
    return [Change("deleted", "Namespace", name)]


class _Calls:
    """Plain JSON requests through the cluster's ApiClient, each with its own timeout."""

    def __init__(self, api_client: ApiClient, request_timeout: float) -> None:
        self.api_client = api_client
        self.request_timeout = request_timeout

    async def send(self, method: str, path: str, body: Any = None, content_type: str | None = None) -> Any:
        headers = {"Accept": "application/json", "Content-Type": content_type or "application/json"}
        return await self.api_client.call_api(
            path,
            method,
            header_params=headers,
            body=body,
            response_types_map=_JSON,
            auth_settings=["BearerToken"],
            _return_http_data_only=True,
            _request_timeout=self.request_timeout,
        )

    async def get(self, path: str) -> dict[str, Any] | None:
        """The object at ``path``, or None when there is none."""
        try:
            found: dict[str, Any] = await self.send("GET", path)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return found


async def _ensure_one(calls: _Calls, namespace: RunNamespace, wanted: Manifest) -> Change | None:
    kind = wanted["kind"]
    name = wanted["metadata"]["name"]
    collection = _collection(wanted)
    path = f"{collection}/{name}"
    try:
        live = await calls.get(path)
        if live is None:
            try:
                await calls.send("POST", collection, wanted)
                return Change("created", kind, name)
            except ApiException as exc:
                if exc.status != 409:
                    raise
            # another call created it since this one looked: compare with what it made
            live = await calls.get(path)
            if live is None:
                raise ProvisionError(
                    f"{kind} {name} in {namespace.name}: created and deleted again meanwhile", 409
                )
        if kind == "Namespace":
            _check_owner(live, name, wanted["metadata"]["labels"])
        if _contains(live, _comparable(wanted)):
            return None
        immutable = _IMMUTABLE.get(kind)
        if immutable is not None and live.get(immutable) != wanted[immutable]:
            await _replace(calls, collection, path, wanted)
            return Change("replaced", kind, name)
        await calls.send("PATCH", path, _comparable(wanted), "application/merge-patch+json")
        return Change("patched", kind, name)
    except ApiException as exc:
        raise _refusal(exc, "ensure", kind, name, namespace.name) from exc


async def _replace(calls: _Calls, collection: str, path: str, wanted: Manifest) -> None:
    try:
        await calls.send("DELETE", path)
    except ApiException as exc:
        if exc.status != 404:
            raise
    try:
        await calls.send("POST", collection, wanted)
    except ApiException as exc:
        if exc.status != 409:  # a concurrent call put the same object back
            raise


def _collection(wanted: Manifest) -> str:
    key = (wanted["apiVersion"], wanted["kind"])
    if key not in _KINDS:
        raise ProvisionError(f"{wanted['kind']} {wanted['metadata']['name']}: not a kind provisioning knows")
    prefix, plural, namespaced = _KINDS[key]
    if namespaced:
        return f"{prefix}/namespaces/{wanted['metadata']['namespace']}/{plural}"
    return f"{prefix}/{plural}"


def _comparable(wanted: Manifest) -> dict[str, Any]:
    """What of ``wanted`` the live object must hold: its labels, annotations and content."""
    meta = wanted["metadata"]
    body: dict[str, Any] = {
        key: value for key, value in wanted.items() if key not in ("apiVersion", "kind", "metadata")
    }
    body["metadata"] = {key: meta[key] for key in ("labels", "annotations") if key in meta}
    return body


def _contains(live: Any, wanted: Any) -> bool:
    """Whether ``live`` holds everything of ``wanted``; what the server or an operator added is fine."""
    if isinstance(wanted, Mapping):
        return isinstance(live, Mapping) and all(
            k in live and _contains(live[k], v) for k, v in wanted.items()
        )
    if isinstance(wanted, list):
        return isinstance(live, list) and len(live) == len(wanted) and all(map(_contains, live, wanted))
    return bool(live == wanted)


def _check_owner(live: dict[str, Any], name: str, labels: Mapping[str, str]) -> None:
    meta = live.get("metadata") or {}
    found = meta.get("labels") or {}
    for key in (HUB_LABEL, RUNS_USER_LABEL):
        if found.get(key) != labels[key]:
            raise ProvisionError(
                f"namespace {name}: exists with label {key}={found.get(key)!r}, not {labels[key]!r}: "
                "it is not this hub's run namespace of this user, so it is left alone",
                409,
            )
    if _terminating(live):
        raise ProvisionError(f"namespace {name}: is being deleted; try again once it is gone", 409)


def _terminating(live: dict[str, Any]) -> bool:
    meta = live.get("metadata") or {}
    return bool(meta.get("deletionTimestamp")) or (live.get("status") or {}).get("phase") == "Terminating"


def _refusal(
    exc: ApiException, verb: str, kind: str, name: str, namespace: str | None = None
) -> ProvisionError:
    where = f" in {namespace}" if namespace and namespace != name else ""
    return ProvisionError(
        f"{verb} {kind} {name}{where}: the cluster answered {exc.status}: {_message(exc)}", exc.status
    )


def _message(exc: ApiException) -> str:
    """The Status message the cluster sent, or the HTTP reason when the body is not a Status."""
    try:
        status = json.loads(exc.body or "")
    except (TypeError, ValueError):
        return str(exc.reason)
    return str(status.get("message") if isinstance(status, dict) and status.get("message") else exc.reason)


def _listed(changes: list[Change]) -> str:
    return ", ".join(f"{c.action} {c.kind} {c.name}" for c in changes) or "nothing"
