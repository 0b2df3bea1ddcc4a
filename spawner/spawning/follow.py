"""Following a spawn attempt: its pod's events, its Service's address, its server's answer, its progress."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any

import aiohttp
from jupyterhub.utils import exponential_backoff
from kubernetes_asyncio.client.exceptions import ApiException
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest

from spawner.core.clusters import ClusterConfig
from spawner.core.model import Pool
from spawner.spawning.events import Verdict, read_event

__all__ = [
    "NoRoom",
    "Unreachable",
    "fail_fast",
    "progress",
    "service_address",
    "until_answering",
    "until_unreachable",
]

Say = Callable[[str], None]  # tells the user (the spawn's progress) and the log


class NoRoom(Exception):
    """This candidate cannot take the pod after all: the spawn goes on to the next one."""


class Unreachable(NoRoom):
    """This candidate's cluster stopped answering: the spawn goes on to the next one, and what the
    attempt may have left there is removed once the cluster answers again, not waited for."""


async def until_unreachable(
    cluster: str,
    health: Callable[[], Awaitable[str | None]],
    created: Callable[[], bool],
    *,
    create_within: float,
    interval: float = 1.0,
) -> None:
    """Raise ``Unreachable`` once the attempt's ``cluster`` looks gone: the service calls it down
    (``health()``, asked every ``interval`` seconds; None: no answer, which says nothing), or the
    attempt's pod is not ``created()`` (seen in the pod watch) ``create_within`` seconds after the
    attempt began while the service does not call the cluster healthy. Runs until cancelled
    otherwise (the attempt's start won).

    A pod that is merely late, because the hub is busy with fifty spawns at once, say, is waited
    for as long as the service, whose probes keep being answered, calls its cluster healthy: only a
    cluster that also stopped answering the service is left after ``create_within``. Over a hung link
    the service's first unanswered probe already makes the cluster DEGRADED.

    KubeSpawner retries a create or a delete that times out for ``k8s_api_request_retry_timeout``
    (30 s) each, and a pod whose watch hangs is waited for until ``start_timeout``: over a hung site
    link an attempt would hold the spawn that long. A create takes well under a second when the API
    answers."""
    loop = asyncio.get_running_loop()
    began = loop.time()
    while True:
        await asyncio.sleep(interval)
        state = await health()
        if state == "down":
            raise Unreachable(f"{cluster} stopped answering")
        if not created() and loop.time() - began >= create_within and state != "healthy":
            raise Unreachable(f"{cluster} did not take the server's pod in {create_within:.0f} s")


async def fail_fast(
    events: Callable[[], Sequence[Mapping[str, Any]]],
    cluster: ClusterConfig,
    pool: Pool,
    *,
    elastic: bool,
    deadline: float,
    say: Say,
    interval: float = 0.5,
    changed: Callable[[], object] = lambda: None,
    read_every: float = 5.0,
) -> None:
    """Read the pod's ``events`` every ``interval`` seconds until one says the pool has no room, or
    an elastic pool brought no node in ``deadline`` seconds; raise ``NoRoom`` then. Runs until
    cancelled otherwise (the attempt's start won).

    ``changed()`` is a cheap mark of the event watch (how many events it holds): the pod's events,
    which KubeSpawner sorts out of all the events of the namespace on every read, are read again
    only when it moved, or after ``read_every`` seconds. Fifty spawns at once would otherwise each
    sort every event twice a second."""
    loop = asyncio.get_running_loop()
    give_up_at = loop.time() + deadline
    seen = 0
    mark: object = object()  # nothing read yet
    read_at = -math.inf
    while True:
        await asyncio.sleep(interval)
        now_mark = changed()
        # read only when an event came or went since the last read (or after read_every seconds)
        if now_mark is None or now_mark != mark or loop.time() - read_at >= read_every:
            mark, read_at = now_mark, loop.time()
            current = events()
            for event in current[seen:]:
                message = event.get("message") or ""
                verdict = read_event(event.get("reason") or "", message, elastic=elastic)
                if verdict is Verdict.NO_ROOM:
                    reason = message.split(". preemption")[0]
                    raise NoRoom(f"{cluster.name} had no room after all ({reason})")
                if verdict is Verdict.CANNOT_GROW:
                    raise NoRoom(f"{cluster.name} pool {pool.name} cannot grow ({message})")
                if verdict is Verdict.SCALING_UP:
                    say(f"{cluster.name} is adding a node to pool {pool.name}; this takes a few minutes")
            seen = len(current)
        if elastic and loop.time() > give_up_at:
            raise NoRoom(f"{cluster.name} pool {pool.name} brought no node in time")


async def service_address(
    api: Any,
    cluster: ClusterConfig,
    *,
    name: str,
    namespace: str,
    port: int,
    host_ip: Callable[[], str | None],
    within: float,
    request_timeout: float,
    say: Say,
    log: logging.Logger | logging.LoggerAdapter[Any],
) -> str:
    """The server's URL through its per-user Service: the load balancer's address, or its node's
    port (``host_ip``: the node address of the pod). ``NoRoom`` when the cluster gives none
    ``within`` seconds; a failed read of the Service is asked again, with each read bounded by
    ``request_timeout`` seconds."""
    said = False

    async def address() -> str | None:
        nonlocal said
        try:
            svc = await asyncio.wait_for(api.read_namespaced_service(name, namespace), request_timeout)
        except (ApiException, TimeoutError, OSError, aiohttp.ClientError) as exc:  # a blip: ask again
            log.warning("cannot read service %s/%s (%s)", namespace, name, getattr(exc, "status", exc))
            return None
        if cluster.service_type == "NodePort":
            host = host_ip()
            node_port = next((p.node_port for p in svc.spec.ports or [] if p.port == port), None)
            return f"http://{host}:{node_port}" if host and node_port else None
        ingress = svc.status.load_balancer.ingress if svc.status and svc.status.load_balancer else None
        for entry in ingress or []:
            if entry.ip or entry.hostname:
                return f"http://{entry.ip or entry.hostname}:{port}"
        if not said:
            said = True
            say(f"waiting for {cluster.name} to give the server a load-balancer address")
        return None

    try:
        url: str = await exponential_backoff(
            address, f"no address for service {namespace}/{name}", timeout=within
        )
    except TimeoutError as exc:
        raise NoRoom(f"{cluster.name} gave the server's Service no address in {within:.0f} s") from exc
    return url


async def until_answering(
    target: str, *, interval: float, within: float, log: logging.Logger | logging.LoggerAdapter[Any]
) -> None:
    """Return once ``target`` answers HTTP with anything but a 5xx, or after ``within`` seconds
    (JupyterHub's own wait decides then), asking every ``interval`` seconds; 0 asks nothing."""
    if interval <= 0:
        return
    loop = asyncio.get_running_loop()
    deadline = loop.time() + within
    client = AsyncHTTPClient()
    while loop.time() < deadline:
        req = HTTPRequest(target, connect_timeout=1.0, request_timeout=2.0, follow_redirects=False)
        try:
            resp = await client.fetch(req, raise_error=False)
        except (OSError, HTTPClientError):
            resp = None
        log.debug("%s answered %s", target, resp.code if resp else "nothing")
        if resp is not None and resp.code < 500:
            return
        await asyncio.sleep(interval)


async def progress(
    messages: Callable[[], Sequence[str]],
    cluster: Callable[[], str | None],
    events: Callable[[], Sequence[Mapping[str, Any]] | None],
    done: Callable[[], bool],
    *,
    interval: float = 0.5,
) -> AsyncIterator[dict[str, Any]]:
    """What the spawn page shows: the spawn's own ``messages`` (where and why) as they come, then the
    ``events`` of the pod in the ``cluster`` it is being tried in (None: not watched yet), until
    ``done``. Progress climbs towards 90 %; JupyterHub shows 100 % when the server is up."""
    sent, next_event, percent, watched = 0, 0, 0.0, None
    while True:
        finished = done()
        while sent < len(messages()):
            percent += (90 - percent) / 3
            yield {"progress": int(percent), "message": messages()[sent]}
            sent += 1
        current = events() if cluster() is not None else None
        if current is not None:
            if watched != cluster():
                watched, next_event = cluster(), 0  # a new attempt: its pod's events from the start
            for event in current[next_event:]:
                percent += (90 - percent) / 3
                stamp = event.get("lastTimestamp") or event.get("eventTime")
                yield {
                    "progress": int(percent),
                    "raw_event": event,
                    "message": f"{stamp} [{event['type']}] {event['message']}",
                }
            next_event = len(current)
        if finished:
            return
        await asyncio.sleep(interval)
