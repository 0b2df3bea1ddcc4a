"""The hub's calls to the hybridhub service: capacity for the form, placements, their extension and
release."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import aiohttp
from jupyterhub.utils import url_path_join

from spawner.spawning.attempt import Candidate
from spawner.spawning.compat import SpawnRefused

__all__ = ["Placed", "ReservationKeeper", "ServiceClient"]

# One HTTP session per event loop, shared by every spawner of the hub: its connections to the service
# are kept alive, so a placement or a release costs the hub a quarter of the CPU that tornado's
# client, which opens a connection per request, cost it (0.2-0.3 ms against 0.7-0.9 ms).
# The session is owned by a task of its loop that closes it when the loop's tasks are cancelled at the
# loop's end: JupyterHub's shutdown cancels every task, and so do asyncio.run and asyncio.Runner.
_SESSIONS: dict[int, tuple[asyncio.AbstractEventLoop, aiohttp.ClientSession, asyncio.Task[None]]] = {}
_CLOSE_TIMEOUT = 5.0


async def _close_at_loop_end(session: aiohttp.ClientSession) -> None:
    try:
        await asyncio.get_running_loop().create_future()  # until cancelled
    finally:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(session.close(), _CLOSE_TIMEOUT)


def _session() -> aiohttp.ClientSession:
    loop = asyncio.get_running_loop()
    held = _SESSIONS.get(id(loop))
    if held is None or held[0] is not loop or held[1].closed:  # a closed loop's id may come again
        for key in [k for k, (other, *_) in _SESSIONS.items() if other.is_closed()]:
            del _SESSIONS[key]
        if held is not None and held[0] is loop:
            held[2].cancel()  # its session closed already: its owner need not wait for the loop's end
        session = aiohttp.ClientSession()
        owner = loop.create_task(_close_at_loop_end(session), name="hybridhub-service-session")
        held = _SESSIONS[id(loop)] = (loop, session, owner)
    return held[1]


@dataclass(frozen=True)
class Placed:
    """The service's answer to a placement: the candidates, best first, and the clusters it vouches
    have no pod of the spawn's name (its view of them is current and shows none)."""

    candidates: list[Candidate]
    vouched: frozenset[str] = frozenset()


def _vouched(body: Mapping[str, Any]) -> frozenset[str]:
    """The clusters the ``pods`` part of an answer vouches for; none when it is missing or malformed:
    the spawn then asks each cluster itself."""
    pods = body.get("pods")
    if not isinstance(pods, Mapping):
        return frozenset()
    checked, found = pods.get("checked"), pods.get("found")
    if not isinstance(checked, list) or not isinstance(found, list):
        return frozenset()
    seen = {f.get("cluster") for f in found if isinstance(f, Mapping)}
    return frozenset(c for c in checked if isinstance(c, str) and c not in seen)


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
        url = url_path_join(self.url, path)
        headers = {"Authorization": f"token {self.token}", "Content-Type": "application/json"}
        data = None if body is None else json.dumps(body)
        timeout = aiohttp.ClientTimeout(total=self.timeout)
        for last in (False, True):
            try:
                async with _session().request(
                    method, url, headers=headers, data=data, timeout=timeout, allow_redirects=False
                ) as resp:
                    code, raw = resp.status, await resp.read()
                break
            except aiohttp.ServerDisconnectedError as exc:
                # a kept-alive connection the service closed as this request went out (it restarted,
                # or a proxy between ends idle connections): nothing was answered, so asked once more
                # (aiohttp itself asks again only for methods that may be repeated, not for a POST)
                if last:
                    raise SpawnRefused(
                        f"The GPU placement service is unreachable ({exc}); try again shortly."
                    ) from exc
            except TimeoutError as exc:
                raise SpawnRefused(
                    "The GPU placement service did not answer in time; try again shortly."
                ) from exc
            except (OSError, aiohttp.ClientError) as exc:
                raise SpawnRefused(
                    f"The GPU placement service is unreachable ({exc}); try again shortly."
                ) from exc
        text = raw.decode(errors="replace")
        try:
            return code, json.loads(text) if text else None
        except ValueError as exc:
            raise SpawnRefused(
                f"The GPU placement service gave an answer that is not JSON (HTTP {code})."
            ) from exc

    async def capacity(self) -> Any:
        """``api/capacity``'s answer, or None when the service answers anything but 200."""
        code, body = await self.call("GET", "api/capacity")
        return body if code == 200 else None

    async def cluster_health(self) -> dict[str, tuple[str, str]]:
        """Each cluster's health and the reason for it (``""`` when none) by name, from ``api/health``;
        ``SpawnRefused`` when the service does not say."""
        code, body = await self.call("GET", "api/health")
        clusters = body.get("clusters") if code == 200 and isinstance(body, Mapping) else None
        if not isinstance(clusters, list):
            raise SpawnRefused(f"The GPU placement service did not say how the clusters are (HTTP {code}).")
        return {
            entry["name"]: (entry["health"], reason if isinstance(reason := entry.get("reason"), str) else "")
            for entry in clusters
            if isinstance(entry, Mapping)
            and isinstance(entry.get("name"), str)
            and isinstance(entry.get("health"), str)
        }

    async def place(self, request: Mapping[str, Any]) -> Placed:
        """The candidates for a server, best first (the first one's GPUs reserved for it). A spawn
        asks again for each later attempt, with the candidates it tried in ``request["tried"]``. A
        409, no room anywhere (or none left untried), is refused with the service's sentence and the
        reason ``capacity``. A request naming the server's ``pod`` and ``namespaces`` learns which
        clusters have no pod of that name (``Placed.vouched``)."""
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
            return Placed([Candidate.from_json(c) for c in raw], _vouched(body))
        except ValueError as exc:
            raise SpawnRefused(f"The GPU placement service gave a malformed candidate: {exc}") from exc

    async def extend(self, reservation: str) -> float | None:
        """Hold a reservation another ``reservation_ttl``: the seconds it lasts now, or None when the
        service no longer has it (it expired, or the service restarted)."""
        code, body = await self.call("POST", f"api/placements/{reservation}/extend")
        if code == 404:
            return None
        seconds = body.get("expires_in") if isinstance(body, Mapping) else None
        if code != 200 or isinstance(seconds, bool) or not isinstance(seconds, int | float):
            raise SpawnRefused(
                f"The GPU placement service did not extend reservation {reservation} (HTTP {code})."
            )
        return float(seconds)

    async def release(self, reservation: str) -> None:
        """Hand a reservation's GPUs back. A failure is not the user's problem: the service lets
        reservations expire."""
        with contextlib.suppress(SpawnRefused):
            await self.call("DELETE", f"api/placements/{reservation}")


class ReservationKeeper:
    """Keeps a reservation alive while an attempt waits for an elastic pool's node, which takes
    minutes: extends it when a third of its time is left, so one lost request costs nothing. An
    owned task: ``start`` with the attempt, ``stop`` with it.

    A failed extension is tried again at the next third of what is left; a reservation the service
    no longer has is left alone (the attempt goes on: its pod is already asking for the node)."""

    def __init__(
        self,
        client: ServiceClient,
        reservation: str,
        expires_in: float,
        log: logging.Logger | logging.LoggerAdapter[Any],
        *,
        min_interval: float = 1.0,
    ) -> None:
        self.client = client
        self.reservation = reservation
        self.expires_in = expires_in
        self.log = log
        self.min_interval = min_interval
        self.extensions = 0
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
        if task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        expires = loop.time() + self.expires_in
        while True:
            await asyncio.sleep(max((expires - loop.time()) / 3, self.min_interval))
            try:
                left = await self.client.extend(self.reservation)
            except SpawnRefused as exc:
                self.log.warning("reservation %s not extended, trying again: %s", self.reservation, exc)
                continue
            if left is None:
                self.log.warning("reservation %s expired before the node came", self.reservation)
                return
            self.extensions += 1
            expires = loop.time() + left
