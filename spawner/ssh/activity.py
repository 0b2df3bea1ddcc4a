"""Tells the hub the server is in use while SSH sessions are open, so the idle culler leaves it alone."""

from __future__ import annotations

import asyncio
import datetime
import logging

from .hubapi import APIError, HubAPI
from .policy import activity_body
from .waiting import stopped_within

__all__ = ["ActivityReporter"]

log = logging.getLogger(__name__)


class ActivityReporter:
    """Posts ``last_activity`` when the first session opens and then every ``interval`` seconds while
    any is open: at most one post per interval, whatever the number of sessions."""

    def __init__(self, api: HubAPI, *, server_name: str, interval: float) -> None:
        self._api = api
        self._server_name = server_name
        self._interval = interval
        self._open = 0
        self._wanted = asyncio.Event()
        self._stop = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self.posted = 0

    def session_opened(self) -> None:
        self._open += 1
        self._wanted.set()

    def session_closed(self) -> None:
        self._open = max(0, self._open - 1)

    def start(self) -> None:
        if self._api.activity_url:
            self._task = asyncio.create_task(self._report_forever(), name="ssh-activity")

    async def _post(self) -> None:
        now = datetime.datetime.now(datetime.UTC).isoformat().replace("+00:00", "Z")
        try:
            await self._api.post_activity(activity_body(self._server_name, now))
            self.posted += 1
        except APIError as exc:
            log.warning("SSH activity not reported to the hub: %s", exc)

    async def _report_forever(self) -> None:
        while True:
            await self._wanted.wait()  # stop() sets it too
            if self._stop.is_set():
                return
            await self._post()
            if await stopped_within(self._stop, self._interval):
                return
            if self._open == 0:
                self._wanted.clear()

    async def stop(self) -> None:
        self._stop.set()
        self._wanted.set()
        if self._task is not None:
            await self._task
            self._task = None
