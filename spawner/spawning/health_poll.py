"""One question per interval to the service about cluster health, shared by all spawns of a hub process."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any

__all__ = ["HealthPoll"]

# What a poll gets: each cluster's health by name, or None when the service did not answer.
Fetch = Callable[[], Awaitable[Mapping[str, str] | None]]


class HealthPoll:
    """Asks the service every ``interval`` seconds how each cluster is, while at least one attempt
    holds the poll; the answer is shared. Fifty spawns starting at once then cost one small request a
    second, not fifty. An owned task: the first ``held()`` starts it, the last one out stops it.

    A poll that gets no answer within ``timeout`` seconds clears what was known: no answer says
    nothing about a cluster, and an old "healthy" must not hide a cluster that went down since.
    """

    def __init__(
        self,
        fetch: Fetch,
        *,
        interval: float,
        timeout: float,
        log: logging.Logger | logging.LoggerAdapter[Any],
    ) -> None:
        self.fetch = fetch
        self.interval = interval
        self.timeout = timeout
        self.log = log
        self.polls = 0  # questions asked so far (for tests and benchmarks)
        self._states: Mapping[str, str] | None = None
        self._holders = 0
        self._task: asyncio.Task[None] | None = None

    def state(self, cluster: str) -> str | None:
        """The health the last poll got for ``cluster``; None when it got no answer, or none yet."""
        return None if self._states is None else self._states.get(cluster)

    @contextlib.asynccontextmanager
    async def held(self) -> AsyncIterator[HealthPoll]:
        """Keep the poll running for as long as the block runs."""
        self._holders += 1
        if self._task is None or self._task.done():
            self._task = asyncio.ensure_future(self._run())
        try:
            yield self
        finally:
            self._holders -= 1
            if self._holders == 0:
                await self.stop()

    async def stop(self) -> None:
        task, self._task = self._task, None
        self._states = None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task

    async def _run(self) -> None:
        while True:
            self.polls += 1
            try:
                self._states = await asyncio.wait_for(self.fetch(), self.timeout)
            except Exception as exc:  # the service's trouble is not the spawn's: it says nothing
                self.log.debug("cluster health not known now: %s", exc or type(exc).__name__)
                self._states = None
            await asyncio.sleep(self.interval)
