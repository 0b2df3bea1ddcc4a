"""The hub's calls to the hybridhub service: capacity for the form, placements, and their release."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jupyterhub.utils import url_path_join
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest
from tornado.simple_httpclient import HTTPTimeoutError

from spawner.spawning.attempt import Candidate
from spawner.spawning.compat import SpawnRefused

__all__ = ["ServiceClient"]

# curl's "operation timed out": JupyterHub makes tornado use curl when pycurl is installed
_CURL_TIMED_OUT = 28


def _timed_out(exc: Exception) -> bool:
    curl_timeout = isinstance(exc, HTTPClientError) and getattr(exc, "errno", None) == _CURL_TIMED_OUT
    return isinstance(exc, HTTPTimeoutError) or curl_timeout


@dataclass(frozen=True)
class ServiceClient:
    """The hybridhub service at ``url`` (with its prefix), called with a token that has the
    ``custom:hybridhub:place`` scope. Every call gives up after ``timeout`` seconds, and every
    failure a user should read is a ``SpawnRefused``."""

    url: str
    token: str
    timeout: float

    async def call(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """The status and the decoded JSON body (None when empty) of one request."""
        req = HTTPRequest(
            url_path_join(self.url, path),
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
            body=None if body is None else json.dumps(body),
            request_timeout=self.timeout,
            connect_timeout=self.timeout,
            allow_nonstandard_methods=True,
        )
        try:
            resp = await AsyncHTTPClient().fetch(req, raise_error=False)
        except (OSError, HTTPClientError) as exc:  # timeouts are raised even with raise_error=False
            if _timed_out(exc):
                raise SpawnRefused(
                    "The GPU placement service did not answer in time; try again shortly."
                ) from exc
            raise SpawnRefused(
                f"The GPU placement service is unreachable ({exc}); try again shortly."
            ) from exc
        text = resp.body.decode(errors="replace") if resp.body else ""
        try:
            return resp.code, json.loads(text) if text else None
        except ValueError as exc:
            raise SpawnRefused(
                f"The GPU placement service gave an answer that is not JSON (HTTP {resp.code})."
            ) from exc

    async def capacity(self) -> Any:
        """``api/capacity``'s answer, or None when the service answers anything but 200."""
        code, body = await self.call("GET", "api/capacity")
        return body if code == 200 else None

    async def place(self, request: Mapping[str, Any]) -> list[Candidate]:
        """The candidates for a server, best first (the first one's GPUs reserved for it). A 409,
        no room anywhere, is refused with the service's sentence and the reason ``capacity``."""
        code, body = await self.call("POST", "api/placements", dict(request))
        message = body.get("message") if isinstance(body, Mapping) else None
        if code == 409:
            raise SpawnRefused(str(message or "No cluster has room for this server now."), reason="capacity")
        if code != 200:
            raise SpawnRefused(f"The GPU placement service refused the request: {message or f'HTTP {code}'}")
        raw = body.get("candidates") if isinstance(body, Mapping) else None
        if not isinstance(raw, list):
            raise SpawnRefused("The GPU placement service answered without candidates.")
        try:
            return [Candidate.from_json(c) for c in raw]
        except ValueError as exc:
            raise SpawnRefused(f"The GPU placement service gave a malformed candidate: {exc}") from exc

    async def release(self, reservation: str) -> None:
        """Hand a reservation's GPUs back. A failure is not the user's problem: the service lets
        reservations expire."""
        with contextlib.suppress(SpawnRefused):
            await self.call("DELETE", f"api/placements/{reservation}")
