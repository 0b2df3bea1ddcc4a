"""Who a token speaks for (a notebook server, a user) and who may reach a server, asked of the hub."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

__all__ = ["HubUnreachable", "ServerName", "SshAccess", "server_of_token", "shadowing_users"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ServerName:
    user: str
    name: str  # "" for the default server

    @property
    def principal(self) -> str:
        """The server's SSH host name: ``alice`` or ``alice.name``."""
        return f"{self.user}.{self.name}" if self.name else self.user


def server_of_token(model: Mapping[str, Any]) -> ServerName | None:
    """The notebook server whose own token (JUPYTERHUB_API_TOKEN) ``model`` describes, or None.

    The hub gives a server's token ``access:servers!server=OWNER/NAME`` for that server only, where a
    user's own tokens hold ``access:servers!user=OWNER`` (the ``self`` role) or more. A token that
    reaches other users' servers too, through sharing, names them with another owner: only the
    token owner's own server counts. Nothing in a request body is trusted for this.
    """
    if model.get("kind", "user") != "user":
        return None
    owner = model.get("name")
    scopes = model.get("scopes") or []
    if not isinstance(owner, str) or not isinstance(scopes, list):
        return None
    if "access:servers" in scopes or f"access:servers!user={owner}" in scopes:
        return None  # a user's or an admin's token, not one server's
    own = [
        s.removeprefix("access:servers!server=")
        for s in scopes
        if isinstance(s, str) and s.startswith(f"access:servers!server={owner}/")
    ]
    if len(own) != 1:
        return None
    _, _, name = own[0].partition("/")
    return ServerName(owner, name)


def shadowing_users(server: ServerName) -> list[str]:
    """The users whose servers would answer to this server's host name first.

    User names may contain dots, so ``john.doe`` names the default server of user ``john.doe`` before
    server ``doe`` of user ``john`` (the gateway tries the longest user name first). Were such a user
    to exist, a certificate for ``john.doe`` would let this server pass for theirs.
    """
    if not server.name:
        return []
    parts = server.name.split(".")
    return [f"{server.user}.{'.'.join(parts[:i])}" for i in range(len(parts), 0, -1)]


class HubUnreachable(Exception):
    """The hub did not answer a question about users or shares in time."""


class SshAccess:
    """Asks the hub who may reach a server: its owner, the hub's admins (kept for ``admin_ttl``
    seconds), and the users and groups the owner shared it with. Needs the service's token to hold
    ``list:users``, ``read:users``, ``read:shares`` and ``read:groups``."""

    def __init__(self, api_url: str, token: str, *, timeout: float, admin_ttl: float = 30.0, page: int = 200):
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.admin_ttl = admin_ttl
        self.page = page
        self._admins: tuple[float, frozenset[str]] | None = None

    async def _get(self, path: str) -> Any:
        req = HTTPRequest(
            f"{self.api_url}/{path}",
            headers={
                "Authorization": f"token {self.token}",
                "Accept": "application/jupyterhub-pagination+json",
            },
            request_timeout=self.timeout,
            connect_timeout=self.timeout,
        )
        try:
            resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        except (OSError, HTTPClientError) as exc:
            raise HubUnreachable(f"the hub did not answer ({exc})") from exc
        if resp.code == 404:
            return None
        if resp.code != 200:
            log.warning("ssh access: the hub answered %s to GET %s", resp.code, path.split("?")[0])
            raise HubUnreachable(
                f"the hub answered {resp.code} to the service's question about {path.split('?')[0]}"
            )
        return json.loads(resp.body)

    async def _paged(self, path: str) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        offset = 0
        sep = "&" if "?" in path else "?"
        while True:
            body = await self._get(f"{path}{sep}offset={offset}&limit={self.page}")
            if body is None:
                return items
            if isinstance(body, list):  # an old hub without pagination
                return items + body
            items.extend(body.get("items", []))
            next_page = (body.get("_pagination") or {}).get("next") or {}
            next_offset = next_page.get("offset")
            if not isinstance(next_offset, int) or next_offset <= offset:
                return items
            offset = next_offset

    async def admins(self) -> frozenset[str]:
        now = time.monotonic()
        if self._admins and now - self._admins[0] < self.admin_ttl:
            return self._admins[1]
        users = await self._paged("users")
        found = frozenset(u["name"] for u in users if u.get("admin") and isinstance(u.get("name"), str))
        self._admins = (now, found)
        return found

    async def shared_with(self, server: ServerName) -> frozenset[str]:
        """The users the server is shared with, directly or through a group."""
        shares = await self._paged(f"shares/{quote(server.user, safe='')}/{quote(server.name, safe='')}")
        users = {s["user"]["name"] for s in shares if s.get("kind") == "user" and s.get("user")}
        for group in {s["group"]["name"] for s in shares if s.get("kind") == "group" and s.get("group")}:
            model = await self._get(f"groups/{quote(group, safe='')}")
            users.update(model.get("users", []) if model else [])
        return frozenset(users)

    async def existing_users(self, names: Iterable[str]) -> list[str]:
        """Those of ``names`` that are hub users."""
        return [name for name in names if await self._get(f"users/{quote(name, safe='')}") is not None]

    async def allowed(self, server: ServerName) -> frozenset[str]:
        """Everyone who may reach ``server`` over SSH."""
        return frozenset({server.user}) | await self.admins() | await self.shared_with(server)


def ordered(users: Iterable[str], owner: str) -> list[str]:
    """The owner first, then the others by name."""
    rest = sorted(set(users) - {owner})
    return [owner, *rest]
