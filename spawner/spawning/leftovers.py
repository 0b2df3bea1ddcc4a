"""A spawner's pods left where its server is not: found by the server's pod name in each cluster, deleted."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

from kubernetes_asyncio.client import V1DeleteOptions, V1Preconditions
from kubernetes_asyncio.client.exceptions import ApiException

from spawner.kube.client import ClusterClient

__all__ = ["LeftoverPods"]

# Seconds one request to a cluster may take: a cluster that takes longer is not answering, and its
# check is tried again later, never in a spawn's way.
REQUEST_TIMEOUT = 2.0
# Seconds a cluster must have answered, after a request to it went unanswered, before its check ends.
# A request sent while a site link hung reaches the API server when the link returns, at the sender's
# next TCP retransmission (up to 2 minutes apart), even if its client gave up: a pod create that
# timed out may still be carried out then.
LINGER = 150.0
# Seconds after which a check gives up on a cluster that never answers; the next spawn checks again.
GIVE_UP = 1800.0


class LeftoverPods:
    """Keeps one spawner's pod name free in the clusters its server is not in. An owned set of tasks,
    one per cluster: ``begin`` with a spawn, ``settle`` before an attempt in a cluster, ``watch`` after
    an attempt whose pod may outlive it, ``stop`` to end them all.

    Two things leave such pods. A hub that died mid-start never saved where the pod went (JupyterHub
    saves a spawner's state only after ``start()`` returns), so each spawn looks in every cluster.
    And an attempt abandoned because its cluster stopped answering may leave a pod there, made even
    after the attempt gave up. A cluster that does not answer is checked again, with backoff, until it
    does: a spawn elsewhere never waits for it.

    Each pod found is deleted with its UID as a precondition, so a request that arrives late, over a
    link that hung, never deletes a newer pod of the same name. ``keep(cluster)`` says whether the
    spawner uses that cluster now; its pod there is then left alone.
    """

    def __init__(
        self,
        client: Callable[[str], Awaitable[ClusterClient]],
        keep: Callable[[str], bool],
        log: logging.Logger | logging.LoggerAdapter[Any],
        *,
        request_timeout: float = REQUEST_TIMEOUT,
        linger: float = LINGER,
        give_up: float = GIVE_UP,
        min_interval: float = 1.0,
        max_interval: float = 5.0,
    ) -> None:
        self.client = client
        self.keep = keep
        self.log = log
        self.request_timeout = request_timeout
        self.linger = linger
        self.give_up = give_up
        self.min_interval = min_interval
        self.max_interval = max_interval
        self.removed: list[tuple[str, str]] = []  # (cluster, pod) of each pod deleted
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._checked: dict[str, asyncio.Event] = {}

    def clusters(self) -> list[str]:
        """The clusters still being checked."""
        return sorted(name for name, task in self._tasks.items() if not task.done())

    async def begin(self, clusters: Sequence[tuple[str, str]], pod: str) -> None:
        """Check every (cluster, namespace) of ``clusters`` for ``pod``, each in the background."""
        await self.stop()
        for cluster, namespace in clusters:
            self._run(cluster, namespace, pod, unanswered=False)

    def watch(self, cluster: str, namespace: str, pod: str) -> None:
        """Check ``cluster`` for ``pod`` until it has answered for a while: an attempt there was
        abandoned and its requests went unanswered, so its pod may appear there later."""
        old = self._tasks.pop(cluster, None)
        if old is not None:
            old.cancel()
        self._run(cluster, namespace, pod, unanswered=True)

    async def settle(self, cluster: str, within: float) -> None:
        """Before an attempt in ``cluster``: wait up to ``within`` seconds for its first check, then end
        it, since the attempt makes a pod of that name there now. A cluster that does not answer in
        time would not take the attempt's pod either; the attempt finds that out itself."""
        task = self._tasks.pop(cluster, None)
        checked = self._checked.pop(cluster, None)
        if task is None or checked is None:
            return
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(checked.wait(), within)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    async def stop(self) -> None:
        tasks, self._tasks = list(self._tasks.values()), {}
        self._checked = {}
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task

    def _run(self, cluster: str, namespace: str, pod: str, *, unanswered: bool) -> None:
        checked = self._checked[cluster] = asyncio.Event()
        self._tasks[cluster] = asyncio.ensure_future(
            self._check(cluster, namespace, pod, checked, unanswered)
        )

    async def _check(
        self, cluster: str, namespace: str, pod: str, checked: asyncio.Event, unanswered: bool
    ) -> None:
        """Delete ``pod`` in ``cluster`` once it answers; once a request went unanswered, keep looking
        until the cluster has answered for ``linger`` seconds."""
        loop = asyncio.get_running_loop()
        began = loop.time()
        answering_since: float | None = None
        delay = self.min_interval
        while True:
            try:
                await self._remove(cluster, namespace, pod)
            except Exception as exc:
                unanswered, answering_since = True, None
                self.log.debug("cannot check %s for a leftover pod %s yet (%s)", cluster, pod, exc)
            else:
                checked.set()
                now = loop.time()
                answering_since = now if answering_since is None else answering_since
                if not unanswered or now - answering_since >= self.linger:
                    return
            if loop.time() - began > self.give_up:
                self.log.warning("gave up checking %s for a leftover pod %s", cluster, pod)
                return
            await asyncio.sleep(delay)
            delay = min(2 * delay, self.max_interval)

    async def _remove(self, cluster: str, namespace: str, pod: str) -> None:
        """One check: read the pod; if it is there and not the spawner's now, delete that very pod."""
        api = await self.client(cluster)
        core = api.core()
        try:
            found = await api.call(
                core.read_namespaced_pod, pod, namespace, _request_timeout=self.request_timeout
            )
        except ApiException as exc:
            if exc.status == 404:
                return
            raise
        uid = found.metadata.uid
        if self.keep(cluster) or not uid:
            return
        body = V1DeleteOptions(grace_period_seconds=0, preconditions=V1Preconditions(uid=uid))
        try:
            await api.call(
                core.delete_namespaced_pod, pod, namespace, body=body, _request_timeout=self.request_timeout
            )
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone, or replaced by a newer pod: nothing of ours to delete
                raise
            return
        self.removed.append((cluster, pod))
        self.log.warning("removed pod %s that an earlier start left in %s", pod, cluster)
