"""Fleet inventory I/O: list a cluster's nodes and pods once, then watch them for as long as the service runs.

``ClusterWatcher`` runs two streams (nodes, and all pods of the cluster that are not Succeeded or
Failed), each LIST -> WATCH from the list's resourceVersion -> resume from the last version seen
(bookmarks advance it) when a watch ends -> relist only on 410 Gone. A watch that carries nothing
for ``read_timeout`` seconds is dropped and resumed the same way: behind a hung site link it would
otherwise stay open and silent. Errors back off through ``jupyterhub.utils.exponential_backoff`` and
never end the stream; ``resume()`` cuts a backoff or a silent watch short once the API answers again.
The arithmetic is in ``spawner.inventory.index``.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import json
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from typing import Any

import aiohttp
from jupyterhub.utils import exponential_backoff
from kubernetes_asyncio.client import ApiClient, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from spawner.core.model import ClusterInventory, Pool, Role
from spawner.inventory.index import NodeIndex, ServerIndex, ServerLocation

__all__ = ["POD_FIELD_SELECTOR", "ApiSource", "Caller", "ClusterWatcher", "WatchSilent", "decode_event"]

log = logging.getLogger(__name__)

POD_FIELD_SELECTOR = "status.phase!=Succeeded,status.phase!=Failed"

CoreV1Factory = Callable[[], CoreV1Api | Awaitable[CoreV1Api]]
# an ApiClient (the watcher makes its own CoreV1Api on it), a CoreV1Api, or a function that returns one
# (called before every LIST and WATCH, so it can hand out a client with fresh credentials)
ApiSource = ApiClient | CoreV1Api | CoreV1Factory
# runs one request: ``await call(fn, *args, **kwargs)`` (ClusterClient.call: new credentials and a retry
# after a 401); fn raises ApiException for a non-2xx answer
Caller = Callable[..., Awaitable[Any]]

_FOREVER = 10 * 365 * 24 * 3600.0  # exponential_backoff wants a deadline; ours restarts after it anyway
_WATCH_EVENTS = frozenset({"ADDED", "MODIFIED", "DELETED"})


def decode_event(line: bytes | str) -> tuple[str, dict[str, Any]]:
    """One line of a watch stream -> (type, object). An ERROR event raises ApiException(code)."""
    try:
        event = json.loads(line)
        typ, obj = event["type"], event["object"]
    except (ValueError, KeyError, TypeError) as exc:
        raise ApiException(status=500, reason=f"malformed watch event: {exc}") from exc
    if typ == "ERROR":
        code = obj.get("code") if isinstance(obj, dict) else None
        reason = f"{obj.get('reason')}: {obj.get('message')}" if isinstance(obj, dict) else str(obj)
        raise ApiException(status=code if isinstance(code, int) else 500, reason=reason)
    if not isinstance(obj, dict) or (typ not in _WATCH_EVENTS and typ != "BOOKMARK"):
        raise ApiException(status=500, reason=f"unexpected watch event {typ!r}")
    return typ, obj


async def _direct(fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
    return await fn(*args, **kwargs)


async def _open(method: Callable[..., Awaitable[Any]], **kwargs: Any) -> aiohttp.ClientResponse:
    """Send one request with ``_preload_content=False``; a non-2xx answer raises ApiException."""
    resp: aiohttp.ClientResponse = await method(**kwargs, _preload_content=False)
    if resp.status != 200:
        try:
            raise await _status_error(resp)
        finally:
            resp.release()
    return resp


async def _status_error(resp: aiohttp.ClientResponse) -> ApiException:
    """An ApiException for a non-2xx response, with the reason and message of its Status body."""
    reason = resp.reason or ""
    try:
        body = json.loads(await resp.read())
        reason = f"{body.get('reason') or reason}: {body.get('message', '')}"
    except (ValueError, AttributeError, aiohttp.ClientError):
        pass
    return ApiException(status=resp.status, reason=reason)


class WatchSilent(TimeoutError):
    """A watch carried nothing, not even a bookmark, for its read timeout."""


def _describe(err: BaseException) -> str:
    if isinstance(err, WatchSilent):
        return str(err)
    if isinstance(err, ApiException):
        return f"HTTP {err.status} {err.reason}"
    if isinstance(err, TimeoutError):
        return "timed out"
    return f"{type(err).__name__}: {err}"


@dataclass
class _Stream:
    """One resource's list/watch state."""

    kind: str  # "nodes" | "pods"
    method: str  # the CoreV1Api list method
    field_selector: str | None
    resource_version: str | None = None  # None: (re)list next
    synced: bool = False
    last_event: float | None = None  # the last sign of life: a list, an event or bookmark, a watch (re)opened
    resumed_at: float | None = None  # when resume() last started this stream again
    error: str | None = None
    lists: int = 0
    events: int = 0  # watch events and bookmarks
    failures: int = 0
    consecutive_failures: int = 0


class ClusterWatcher:
    """The inventory of one cluster: its nodes, the requests of its pods, and where notebooks run."""

    def __init__(
        self,
        cluster: str,
        role: Role,
        pools: Sequence[Pool],
        api: ApiSource,
        *,
        call: Caller | None = None,
        watch_timeout: int = 300,
        read_timeout: float = 90.0,
        request_timeout: float = 60.0,
        connect_timeout: float = 10.0,
        backoff_start: float = 0.5,
        backoff_max: float = 30.0,
        page_size: int = 500,
        healthy_watch: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """
        api: an ApiClient, a CoreV1Api, or a function (sync or async) that returns a CoreV1Api,
            called before every LIST and WATCH. With a ClusterClient: ``api=cc.core, call=cc.call``.
        call: runs each request, as ``await call(fn, **kwargs)``; the default just awaits it.
        watch_timeout: seconds the server keeps one watch open (``timeoutSeconds``); then we resume.
        read_timeout: seconds a watch may carry nothing before it is dropped and resumed from its last
            resourceVersion. Kubernetes sends a bookmark about once a minute on a watch that asks for
            them (ours do) and one just before ``watch_timeout``, so more than 60 unless the watch
            ends sooner.
        request_timeout: seconds for a LIST page, and the grace beyond watch_timeout for a watch.
        connect_timeout: seconds to connect.
        backoff_start, backoff_max: the first and the largest wait (s) between failed attempts.
        page_size: items per LIST page (``limit``).
        healthy_watch: a watch open this long (s), or one that delivered an event, resets the backoff.
        """
        self.cluster = cluster
        self.role = role
        self.pools = tuple(pools)
        self.watch_timeout = watch_timeout
        self.read_timeout = read_timeout
        self.request_timeout = request_timeout
        self.connect_timeout = connect_timeout
        self.backoff_start = backoff_start
        self.backoff_max = backoff_max
        self.page_size = page_size
        self.healthy_watch = healthy_watch
        self._clock = clock
        self._api_factory = self._factory(api)
        self._call: Caller = call or _direct
        self._nodes = NodeIndex(cluster, role, self.pools)
        self._servers = ServerIndex()
        self._streams = (
            _Stream("nodes", "list_node", None),
            _Stream("pods", "list_pod_for_all_namespaces", POD_FIELD_SELECTOR),
        )
        self._tasks: dict[str, asyncio.Task[None]] = {}  # by stream kind
        self._ending: set[asyncio.Task[None]] = set()  # tasks resume() cancelled, until they end
        self._news = asyncio.Event()  # set at every sign of life of a stream
        self._synced = asyncio.Event()
        self._started: float | None = None

    @staticmethod
    def _factory(api: ApiSource) -> CoreV1Factory:
        if isinstance(api, CoreV1Api):
            return lambda: api
        if isinstance(api, ApiClient):
            core_v1 = CoreV1Api(api)
            return lambda: core_v1
        if callable(api):
            return api
        raise TypeError(f"expected an ApiClient, a CoreV1Api or a factory of CoreV1Api, not {type(api)}")

    # ------------------------------------------------------------------ what the service reads

    @property
    def synced(self) -> bool:
        """Nodes and pods have both been listed at least once."""
        return all(s.synced for s in self._streams)

    @property
    def last_event(self) -> float | None:
        """Monotonic time of the last sign of life (list, event, bookmark, watch (re)opened or ended),
        of the staler of the two streams; None until both have had one."""
        times = [s.last_event for s in self._streams]
        return None if None in times else min(t for t in times if t is not None)

    @property
    def error(self) -> str | None:
        """The last error of a stream that has not recovered since, or None."""
        errors = [f"{s.kind}: {s.error}" for s in self._streams if s.error is not None]
        return "; ".join(errors) or None

    @property
    def lists(self) -> int:
        """LISTs completed (both streams; paged lists count once)."""
        return sum(s.lists for s in self._streams)

    @property
    def failures(self) -> int:
        """Failed attempts so far (both streams)."""
        return sum(s.failures for s in self._streams)

    @property
    def running(self) -> bool:
        return any(not t.done() for t in self._tasks.values())

    def age(self) -> float:
        """Seconds without news from the staler stream (since start() when never synced)."""
        last = self.last_event
        if last is None:
            last = self._started
        return 0.0 if last is None else max(0.0, self._clock() - last)

    def snapshot(self) -> ClusterInventory:
        return self._nodes.snapshot(synced=self.synced, age=self.age())

    def counts_pod(self, namespace: str, name: str) -> bool:
        """Whether the inventory counts the pod's requests on its node yet."""
        return self._nodes.counts_pod(namespace, name)

    def gpu_pods(self) -> tuple[tuple[str, str, int], ...]:
        """The pods bound to a node that hold GPUs, as (namespace, name, GPUs)."""
        return self._nodes.gpu_pods()

    def servers(self, user: str) -> tuple[ServerLocation, ...]:
        """Where the user's notebook servers run, from the pod inventory."""
        return self._servers.servers(user)

    def server(self, user: str, server: str = "") -> ServerLocation | None:
        return self._servers.server(user, server)

    def all_servers(self) -> tuple[ServerLocation, ...]:
        """Every notebook pod in the cluster."""
        return self._servers.all()

    async def wait_synced(self) -> None:
        """Return once nodes and pods have been listed (bound it with ``asyncio.timeout``)."""
        await self._synced.wait()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        """Start watching (in the running event loop)."""
        if self._tasks:
            raise RuntimeError(f"the {self.cluster} watcher is already started")
        self._started = self._clock()
        self._tasks = {stream.kind: self._task(stream) for stream in self._streams}

    def _task(self, stream: _Stream) -> asyncio.Task[None]:
        return asyncio.create_task(self._run(stream), name=f"inventory-{self.cluster}-{stream.kind}")

    async def stop(self) -> None:
        """Stop watching and wait until the tasks have ended; the inventory stays readable."""
        tasks = [*self._tasks.values(), *self._ending]
        self._tasks = {}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def resume(self, silent_since: float, within: float) -> int:
        """Start each stream again at once that has had no sign of life since ``silent_since`` (a time
        of the watcher's clock) and was not started again since; then wait up to ``within`` seconds
        for those streams to answer. Returns how many streams were started again.

        For the moment the API answers after a probe it did not: a watch that was open across a hung
        link may still be silent, and a stream whose attempts failed meanwhile may be waiting out a
        backoff of up to ``backoff_max``. Each starts over from its last resourceVersion (a LIST only
        if it has none, or on 410), with its backoff reset.
        """
        if not self._tasks:
            return 0
        silent = [
            s
            for s in self._streams
            if _silent_since(s, silent_since) and (s.resumed_at is None or s.resumed_at <= silent_since)
        ]
        for stream in silent:
            old = self._tasks[stream.kind]
            old.cancel()  # it ends at its next await; stop() waits for it if it has not ended by then
            self._ending.add(old)
            old.add_done_callback(self._ending.discard)
            stream.resumed_at = self._clock()
            self._tasks[stream.kind] = self._task(stream)
            log.info(
                "%s: %s watch silent since the API last failed; resuming from resourceVersion %s",
                self.cluster,
                stream.kind,
                stream.resource_version or "(none: listing)",
            )
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(within):
                while any(_silent_since(s, silent_since) for s in silent):
                    self._news.clear()
                    await self._news.wait()
        return len(silent)

    def _touch(self, stream: _Stream) -> None:
        stream.last_event = self._clock()
        self._news.set()

    # ------------------------------------------------------------------ the streams

    async def _run(self, stream: _Stream) -> None:
        """Forever: cycles of (re)list and watch; back off while they fail, start over once one works."""
        fail = f"{self.cluster} {stream.kind} watch still failing"
        while True:
            try:
                await exponential_backoff(
                    partial(self._cycle, stream),
                    fail,
                    start_wait=self.backoff_start,
                    max_wait=self.backoff_max,
                    timeout=_FOREVER,
                )
            except TimeoutError:
                continue

    async def _cycle(self, stream: _Stream) -> bool:
        """LIST if needed, then one WATCH. True when the watch worked for a while (go on at once),
        False when the backoff should wait. Never raises but for cancellation."""
        opened: float | None = None
        events = stream.events
        try:
            async with asyncio.timeout(self.request_timeout):
                api = await self._api()
            if stream.resource_version is None:
                await self._list(api, stream)
            opened = self._clock()
            await self._watch(api, stream)
        except ApiException as err:
            if err.status == 410:
                log.info("%s: %s watch expired (410), relisting", self.cluster, stream.kind)
                stream.resource_version = None
                self._recovered(stream)
            else:
                self._failed(stream, err)
        except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as err:
            self._failed(stream, err)
        except Exception as err:  # a bug must not end the stream: log it and back off
            log.exception("%s: %s watch failed unexpectedly", self.cluster, stream.kind)
            self._failed(stream, err, logged=True)
        if opened is None:
            return False
        return stream.events > events or self._clock() - opened >= self.healthy_watch

    async def _api(self) -> CoreV1Api:
        api = self._api_factory()
        return await api if inspect.isawaitable(api) else api

    async def _list(self, api: CoreV1Api, stream: _Stream) -> None:
        items: list[dict[str, Any]] = []
        version: str | None = None
        token: str | None = None
        while True:  # pages
            kwargs: dict[str, Any] = {"limit": self.page_size, "_request_timeout": self.request_timeout}
            if stream.field_selector:
                kwargs["field_selector"] = stream.field_selector
            if token:
                kwargs["_continue"] = token
            resp = await self._call(_open, getattr(api, stream.method), **kwargs)
            async with resp:
                body = json.loads(await resp.read())
            items.extend(body.get("items") or ())
            meta = body.get("metadata") or {}
            version = version or meta.get("resourceVersion")
            token = meta.get("continue")
            if not token:
                break
        if not version:
            raise ApiException(status=500, reason=f"{stream.kind} list without a resourceVersion")
        if stream.kind == "nodes":
            self._nodes.replace_nodes(items)
        else:
            self._nodes.replace_pods(items)
            self._servers.replace_pods(items)
        stream.resource_version = version
        stream.synced = True
        stream.lists += 1
        self._touch(stream)
        log.info("%s: listed %d %s at resourceVersion %s", self.cluster, len(items), stream.kind, version)
        if self.synced:
            self._synced.set()

    async def _watch(self, api: CoreV1Api, stream: _Stream) -> None:
        """Watch from stream.resource_version until the server ends the watch."""
        # sock_read: the longest silence between two reads of the stream, headers included
        timeout = aiohttp.ClientTimeout(
            total=self.watch_timeout + self.request_timeout,
            connect=self.connect_timeout,
            sock_connect=self.connect_timeout,
            sock_read=self.read_timeout,
        )
        kwargs: dict[str, Any] = {"field_selector": stream.field_selector} if stream.field_selector else {}
        resp = await self._call(
            _open,
            getattr(api, stream.method),
            **kwargs,
            watch=True,
            resource_version=stream.resource_version,
            allow_watch_bookmarks=True,
            timeout_seconds=self.watch_timeout,
            _request_timeout=timeout,
        )
        ended = False
        try:
            self._touch(stream)
            self._recovered(stream)
            try:
                async for line in resp.content:
                    if not line.strip():
                        continue
                    typ, obj = decode_event(line)
                    self._apply(stream, typ, obj)
            except aiohttp.SocketTimeoutError as err:  # sock_read: nothing, not even a bookmark
                raise WatchSilent(
                    f"watch silent for {self.read_timeout:g} s (read timeout); resuming from "
                    f"resourceVersion {stream.resource_version}"
                ) from err
            ended = True
            self._touch(stream)
        finally:
            if ended:
                resp.release()
            else:
                resp.close()

    def _apply(self, stream: _Stream, typ: str, obj: dict[str, Any]) -> None:
        meta = obj.get("metadata") or {}
        version = meta.get("resourceVersion")
        if typ != "BOOKMARK":
            try:
                if stream.kind == "nodes":
                    self._nodes.apply_node(typ, obj)
                else:
                    self._nodes.apply_pod(typ, obj)
                    self._servers.apply_pod(typ, obj)
            except (ValueError, KeyError, TypeError, ArithmeticError) as err:
                log.warning(
                    "%s: skipped %s event for %s %s/%s: %s",
                    self.cluster,
                    typ,
                    stream.kind,
                    meta.get("namespace", ""),
                    meta.get("name"),
                    err,
                )
        if version:
            stream.resource_version = version
        stream.events += 1
        self._touch(stream)

    def _failed(self, stream: _Stream, err: BaseException, logged: bool = False) -> None:
        text = _describe(err)
        stream.failures += 1
        stream.consecutive_failures += 1
        if not logged:
            level = logging.WARNING if text != stream.error else logging.DEBUG
            log.log(
                level,
                "%s: %s list/watch failed (%d in a row), retrying with backoff: %s",
                self.cluster,
                stream.kind,
                stream.consecutive_failures,
                text,
            )
        stream.error = text

    def _recovered(self, stream: _Stream) -> None:
        if stream.consecutive_failures:
            log.info(
                "%s: %s watch works again after %d failures",
                self.cluster,
                stream.kind,
                stream.consecutive_failures,
            )
        stream.consecutive_failures = 0
        stream.error = None


def _silent_since(stream: _Stream, since: float) -> bool:
    return stream.last_event is None or stream.last_event <= since
