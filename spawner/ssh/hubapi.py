"""The SSH server's HTTP calls: the service's CA, host certificate and keys, the hub's user and activity."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp

__all__ = ["APIError", "AllowedKey", "HostCertificate", "HubAPI"]


class APIError(Exception):
    """A request to the hub or the service failed; ``status`` is 0 when no HTTP answer came."""

    def __init__(self, url: str, status: int, message: str) -> None:
        super().__init__(f"{url}: {status or 'no answer'}: {message}")
        self.url = url
        self.status = status
        self.message = message


@dataclass(frozen=True)
class HostCertificate:
    """The service's answer to a host certificate request."""

    certificate: str
    principals: tuple[str, ...]
    valid_before: float


@dataclass(frozen=True)
class AllowedKey:
    """One registered public key of a hub user allowed into this server."""

    user: str
    key: str


def _message(body: bytes) -> str:
    """The ``message`` of a JSON error body (JupyterHub's and the service's shape), else the text."""
    try:
        data = json.loads(body)
    except ValueError:
        return body[:200].decode("utf-8", "replace")
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        return str(data["message"])
    return body[:200].decode("utf-8", "replace")


class HubAPI:
    """One aiohttp session for every call; each call has its own total timeout.

    ``service_url`` is the service's base URL with its prefix (``http://host:port/services/hybridhub/``).
    The server's own token never appears in a log line or an error.
    """

    def __init__(
        self,
        *,
        service_url: str,
        api_url: str,
        activity_url: str,
        token: str,
        timeout: float,
    ) -> None:
        self.service_url = service_url.rstrip("/") + "/"
        self.api_url = api_url.rstrip("/")
        self.activity_url = activity_url
        self._token = token
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        return self._session

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    async def _request(
        self, method: str, url: str, *, token: str | None = None, body: Mapping[str, Any] | None = None
    ) -> Any:
        headers = {"Authorization": f"token {token if token is not None else self._token}"}
        try:
            async with self._client().request(method, url, headers=headers, json=body) as response:
                data = await response.read()
                if response.status >= 400:
                    raise APIError(url, response.status, _message(data))
                if not data:
                    return None
                return json.loads(data)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise APIError(url, 0, f"{type(exc).__name__}: {exc}") from None

    async def host_certificate(self, public_key: str) -> HostCertificate:
        """A host certificate for ``public_key``, signed by the service's CA for this server's name."""
        url = self.service_url + "api/ssh/host-certificate"
        data = await self._request("POST", url, body={"public_key": public_key})
        try:
            return HostCertificate(
                certificate=str(data["certificate"]),
                principals=tuple(str(p) for p in data["principals"]),
                valid_before=float(data["valid_before"]),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise APIError(url, 200, f"unexpected answer: {exc!r}") from None

    async def ca(self) -> str:
        """The service's CA public key line, to check the certificates it signs."""
        url = self.service_url + "api/ssh/ca"
        data = await self._request("GET", url)
        if not isinstance(data, dict) or not isinstance(data.get("ca"), str):
            raise APIError(url, 200, "unexpected answer: no 'ca'")
        return str(data["ca"])

    async def authorized_keys(self) -> tuple[AllowedKey, ...]:
        """The registered keys of every hub user allowed into this server."""
        url = self.service_url + "api/ssh/authorized-keys"
        data = await self._request("GET", url)
        try:
            return tuple(AllowedKey(user=str(k["user"]), key=str(k["key"])) for k in data["keys"])
        except (KeyError, TypeError) as exc:
            raise APIError(url, 200, f"unexpected answer: {exc!r}") from None

    async def token_owner(self, token: str) -> dict[str, Any]:
        """The hub's model of whoever holds ``token`` (``GET {api_url}/user`` with that token)."""
        url = self.api_url + "/user"
        data = await self._request("GET", url, token=token)
        if not isinstance(data, dict):
            raise APIError(url, 200, "unexpected answer: not an object")
        return data

    async def post_activity(self, body: Mapping[str, Any]) -> None:
        """Tell the hub this server was used, as jupyterhub-singleuser does."""
        await self._request("POST", self.activity_url, body=body)
