"""Requests to one cluster on behalf of a user: JSON calls with ``Impersonate-User``, and log streams."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any
from urllib.parse import quote, urlencode

import aiohttp
from kubernetes_asyncio.client import ApiClient
from kubernetes_asyncio.client.exceptions import ApiException

__all__ = ["COLLECTIONS", "ClusterError", "UserApi", "collection_path", "object_path"]

# Where each run kind is served: API prefix and plural.
COLLECTIONS: Mapping[str, tuple[str, str]] = {
    "Workflow": ("/apis/argoproj.io/v1alpha1", "workflows"),
    "Experiment": ("/apis/kubeflow.org/v1beta1", "experiments"),
    "TrainJob": ("/apis/trainer.kubeflow.org/v1alpha1", "trainjobs"),
    "PyTorchJob": ("/apis/kubeflow.org/v1", "pytorchjobs"),
    "Job": ("/apis/batch/v1", "jobs"),
}
_JSON = {200: "object", 201: "object", 202: "object"}


class ClusterError(Exception):
    """The cluster refused a request (``status`` its HTTP status, ``body`` its Status object), or did
    not answer (``status`` None)."""

    def __init__(
        self, message: str, status: int | None = None, body: Mapping[str, Any] | None = None
    ) -> None:
        super().__init__(message)
        self.status = status
        self.body = dict(body or {})


def collection_path(kind: str, namespace: str) -> str:
    prefix, plural = COLLECTIONS[kind]
    return f"{prefix}/namespaces/{quote(namespace, safe='')}/{plural}"


def object_path(kind: str, namespace: str, name: str) -> str:
    return f"{collection_path(kind, namespace)}/{quote(name, safe='')}"


def _api_error(exc: ApiException) -> ClusterError:
    body: dict[str, Any] = {}
    try:
        parsed = json.loads(exc.body) if exc.body else {}
        if isinstance(parsed, dict):
            body = parsed
    except (TypeError, ValueError):
        pass
    message = body.get("message") or exc.reason or f"HTTP {exc.status}"
    return ClusterError(str(message), exc.status, body)


class UserApi:
    """One cluster's API as one user: every request impersonates them, so the cluster's RBAC, Pod
    Security admission and quota decide, and its audit log names them. Each request has a timeout.
    With ``impersonate`` None the requests are the service's own."""

    def __init__(self, api_client: ApiClient, impersonate: str | None, *, timeout: float) -> None:
        self.api_client = api_client
        self.impersonate = impersonate
        self.timeout = timeout

    def _headers(self, content_type: str = "application/json") -> dict[str, str]:
        headers = {"Accept": "application/json", "Content-Type": content_type}
        if self.impersonate is not None:
            headers["Impersonate-User"] = self.impersonate
        return headers

    async def send(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        query: Mapping[str, str] | None = None,
        content_type: str = "application/json",
    ) -> dict[str, Any]:
        """The JSON answer of one request; ClusterError when refused or unanswered in time."""
        try:
            answer: dict[str, Any] = await self.api_client.call_api(
                path + (f"?{urlencode(query)}" if query else ""),
                method,
                header_params=self._headers(content_type),
                body=body,
                response_types_map=_JSON,
                auth_settings=["BearerToken"],
                _return_http_data_only=True,
                _request_timeout=self.timeout,
            )
        except ApiException as exc:
            raise _api_error(exc) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise ClusterError(f"the cluster did not answer: {type(exc).__name__}: {exc}") from exc
        return answer

    async def lines(
        self, path: str, query: Mapping[str, str], *, idle_timeout: float
    ) -> AsyncIterator[bytes]:
        """The lines of a streamed answer, such as a pod's log with follow. The answer must begin
        within the request timeout; after that, the stream ends when no line came for
        ``idle_timeout`` seconds."""
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=self.timeout, sock_read=idle_timeout)
        try:
            async with asyncio.timeout(self.timeout):
                resp: aiohttp.ClientResponse = await self.api_client.call_api(
                    path + (f"?{urlencode(query)}" if query else ""),
                    "GET",
                    header_params={**self._headers(), "Accept": "*/*"},
                    auth_settings=["BearerToken"],
                    _preload_content=False,
                    _return_http_data_only=True,
                    _request_timeout=timeout,
                )
        except ApiException as exc:
            raise _api_error(exc) from exc
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise ClusterError(f"the cluster did not answer: {type(exc).__name__}: {exc}") from exc
        try:
            if resp.status != 200:
                refused = ApiException(status=resp.status, reason=resp.reason)
                refused.body = await resp.read()
                raise _api_error(refused)
            try:
                async for line in resp.content:
                    yield line
            except (aiohttp.SocketTimeoutError, TimeoutError):
                return  # quiet for idle_timeout: the stream ends
            except aiohttp.ClientError as exc:
                raise ClusterError(f"the log stream broke: {type(exc).__name__}: {exc}") from exc
        finally:
            resp.close()
