"""The SSH gateway's HTTP calls: the hub (users, servers, shares, starting a server) and the service
(where a server runs, a user's registered keys)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import aiohttp

from .gateway_policy import Target
from .hubapi import APIError, _message

__all__ = ["GatewayAPI", "ServerState"]


@dataclass(frozen=True)
class ServerState:
    """A server as the hub sees it: ``ready`` once it answers, ``pending`` while it starts or stops."""

    ready: bool
    pending: str | None


def _q(part: str) -> str:
    return quote(part, safe="")


class GatewayAPI:
    """One aiohttp session; every call has its own total timeout. The gateway's token is never logged.

    The token needs, in the hub: ``read:users`` (admins, groups), ``read:servers``, ``read:shares``, and
    ``servers`` when the gateway starts servers; in the service: ``custom:hybridhub:servers``.
    """

    def __init__(self, *, api_url: str, service_url: str, token: str, timeout: float) -> None:
        self.api_url = api_url.rstrip("/")
        self.service_url = service_url.rstrip("/") + "/"
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
    ) -> tuple[int, Any]:
        """(status, JSON body or None); raises APIError for no answer and for errors other than 404."""
        headers = {"Authorization": f"token {self._token if token is None else token}"}
        try:
            async with self._client().request(method, url, headers=headers, json=body) as response:
                data = await response.read()
                if response.status == 404:
                    return 404, None
                if response.status >= 400:
                    raise APIError(url, response.status, _message(data))
                return response.status, json.loads(data) if data else None
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise APIError(url, 0, f"{type(exc).__name__}: {exc}") from None

    async def user(self, name: str) -> dict[str, Any] | None:
        """The hub's model of user ``name`` (admin flag, groups, servers); None when there is none."""
        _, data = await self._request("GET", f"{self.api_url}/users/{_q(name)}")
        return data if isinstance(data, dict) else None

    async def token_owner(self, token: str) -> dict[str, Any] | None:
        """The hub's model of whoever holds ``token``; None when the hub does not know the token."""
        try:
            _, data = await self._request("GET", f"{self.api_url}/user", token=token)
        except APIError as exc:
            if exc.status in (401, 403):
                return None
            raise
        return data if isinstance(data, dict) else None

    @staticmethod
    def server_state(model: Mapping[str, Any], server: str) -> ServerState | None:
        """The state of ``model``'s server ``server``; None when it is not running or starting."""
        servers = model.get("servers")
        found = servers.get(server) if isinstance(servers, dict) else None
        if not isinstance(found, dict):
            return None
        pending = found.get("pending")
        return ServerState(
            ready=found.get("ready") is True, pending=pending if isinstance(pending, str) else None
        )

    async def shared_with(self, target: Target) -> tuple[frozenset[str], frozenset[str]]:
        """The users and the groups ``target``'s owner shared the server with."""
        url = f"{self.api_url}/shares/{_q(target.owner)}/{_q(target.server)}"
        status, data = await self._request("GET", url)
        users: set[str] = set()
        groups: set[str] = set()
        items = data.get("items") if isinstance(data, dict) else None
        for item in items if status == 200 and isinstance(items, list) else []:
            for kind, into in (("user", users), ("group", groups)):
                who = item.get(kind) if isinstance(item, dict) else None
                if isinstance(who, dict) and isinstance(who.get("name"), str):
                    into.add(who["name"])
        return frozenset(users), frozenset(groups)

    async def start_server(self, target: Target) -> None:
        """Ask the hub to start ``target`` (it answers at once; the start goes on in the hub)."""
        path = f"servers/{_q(target.server)}" if target.server else "server"
        try:
            await self._request("POST", f"{self.api_url}/users/{_q(target.owner)}/{path}")
        except APIError as exc:
            if exc.status != 400 or "already" not in exc.message:  # "... is already running/pending"
                raise

    async def where(self, target: Target) -> dict[str, Any] | None:
        """The service's answer for where ``target`` runs (cluster, pod, ip, phase); None when nowhere."""
        path = f"api/servers/{_q(target.owner)}"
        if target.server:
            path += f"/{_q(target.server)}"
        _, data = await self._request("GET", self.service_url + path)
        return data if isinstance(data, dict) else None

    async def gateway_certificate(self, public_key: str) -> tuple[str, float]:
        """The gateway's host certificate from the service's CA: (OpenSSH certificate line, valid_before)."""
        url = self.service_url + "api/ssh/gateway-certificate"
        _, data = await self._request("POST", url, body={"public_key": public_key})
        try:
            return str(data["certificate"]), float(data["valid_before"])
        except (KeyError, TypeError, ValueError) as exc:
            raise APIError(url, 200, f"unexpected answer: {exc!r}") from None

    async def registered_keys(self, user: str) -> tuple[str, ...]:
        """The public key lines ``user`` registered with the service."""
        url = f"{self.service_url}api/ssh/keys?user={_q(user)}"
        status, data = await self._request("GET", url)
        keys = data.get("keys") if isinstance(data, dict) else None
        if status != 200 or not isinstance(keys, list):
            return ()
        return tuple(str(k["key"]) for k in keys if isinstance(k, dict) and isinstance(k.get("key"), str))
