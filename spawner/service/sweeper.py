"""Leftover notebook pods: pods HybridSpawner made for servers the hub neither runs nor is starting.

JupyterHub saves a spawner's state only after ``start()`` returns, so a hub that dies in the middle of
a start (or of a fallback from one cluster to the next) never learns where its pods went. When it is
back, the service, which sees every cluster's pods, asks the hub about each notebook pod's server and
deletes the pods of servers the hub does not know as running or pending.

Safe against races by construction: the pods are read from the inventory *before* the hub is asked
(a server started after the question makes a pod the answer cannot be about), each deletion carries
the pod's UID as a precondition (a new pod of the same name is never hit), a pod must have been
seen for ``grace`` seconds first, and a hub answer that cannot be read deletes nothing.

Only this hub's pods are judged: those HybridSpawner labelled with this hub's name
(``hybridhub.io/hub``), in any namespace of any cluster. Another hub's pods, in a namespace or a
cluster the hubs share, carry another name; asked about them, this hub would say it runs no such
server (the same user name may well exist in both hubs) and the sweep would stop another hub's
running notebook. Pods from before the label are left alone too, and reported once: they may be
this hub's or another's, and most are running servers anyway. Removing a running server by mistake
loses work; leaving a true leftover costs only its resources until someone deletes it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import quote

from kubernetes_asyncio.client.exceptions import ApiException
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse

from spawner.core.labels import HUB_LABEL
from spawner.inventory.index import ServerLocation

__all__ = [
    "ANOTHER_HUB",
    "NOT_HYBRIDHUB",
    "OURS",
    "UNLABELLED",
    "HubServers",
    "Leftover",
    "LeftoverSweeper",
    "NotebookPods",
    "ServerAnswers",
    "find_leftovers",
    "whose",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Leftover:
    cluster: str
    namespace: str
    pod: str
    uid: str
    user: str
    server: str


# Whose a notebook pod is, as the sweep sees it (``whose``).
OURS = "this hub's"  # HybridSpawner's, labelled with this hub's name: the only pods the sweep judges
ANOTHER_HUB = "another hub's"  # HybridSpawner's, labelled with another hub's name
UNLABELLED = "unlabelled"  # HybridSpawner's, from before pods carried the hub's name
NOT_HYBRIDHUB = "not HybridSpawner's"  # no cluster label: stock KubeSpawner's, or made by hand


def whose(loc: ServerLocation, hub_instance: str) -> str:
    """Whose notebook pod ``loc`` is, for the hub named ``hub_instance``: OURS, ANOTHER_HUB,
    UNLABELLED or NOT_HYBRIDHUB."""
    if not loc.cluster_label:
        return NOT_HYBRIDHUB
    if not loc.hub_label:
        return UNLABELLED
    return OURS if loc.hub_label == hub_instance else ANOTHER_HUB


def find_leftovers(
    pods: Iterable[tuple[str, ServerLocation]],
    active: Mapping[str, frozenset[str] | None],
    hub_instance: str,
) -> list[Leftover]:
    """The pods (cluster, location) whose server is not among the user's active ones.

    ``active[user]``: the names of the user's running or pending servers; None or missing: the hub's
    answer is unknown (no such user included), so none of that user's pods is touched.
    Only pods HybridSpawner made for the hub named ``hub_instance`` are candidates (``whose``).
    """
    found = []
    for cluster, loc in pods:
        servers = active.get(loc.user)
        if whose(loc, hub_instance) != OURS or not loc.uid or servers is None or loc.server in servers:
            continue
        found.append(Leftover(cluster, loc.namespace, loc.pod, loc.uid, loc.user, loc.server))
    return sorted(found, key=lambda x: (x.cluster, x.namespace, x.pod))


class NotebookPods(Protocol):
    """The pods the sweep judges and how it deletes one (the service's Fleet)."""

    def notebook_pods(self) -> list[tuple[str, ServerLocation]]: ...

    async def delete_pod(
        self, cluster: str, namespace: str, pod: str, uid: str, *, request_timeout: float
    ) -> None: ...


class ServerAnswers(Protocol):
    """The hub's word on a user's running or pending servers; None when it cannot be known."""

    async def active(self, user: str) -> frozenset[str] | None: ...

    async def all_active(self) -> dict[str, frozenset[str]] | None:
        """Every user with a running or pending server, with those servers; None when the hub cannot
        list them. A user missing from it is not known to run nothing (see ``LeftoverSweeper.sweep``)."""
        ...


def servers_in(body: bytes) -> frozenset[str] | None:
    """The server names in the hub's user model (GET /users/{name}); None unless it plainly has them.

    Anything else (not JSON, not an object, no ``servers`` because the token lacks read:servers, a
    ``servers`` that is not an object) is an answer the sweep cannot act on, never "no servers".
    """
    try:
        model: Any = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    servers = model.get("servers") if isinstance(model, dict) else None
    if not isinstance(servers, dict):
        return None
    return frozenset(servers)


class HubServers:
    """Asks the hub's REST API which servers of a user are running or pending (scope read:servers),
    or of all users at once, a page at a time (scopes list:users and read:servers)."""

    def __init__(self, api_url: str, token: str, *, timeout: float = 10.0, page: int = 200) -> None:
        self.api_url = api_url.rstrip("/")
        self.token = token
        self.timeout = timeout
        self.page = page  # JupyterHub's default api_page_max_limit is 200

    async def _get(self, path: str, **headers: str) -> HTTPResponse | None:
        """GET ``path`` of the hub's API with the service's token; None when the hub is unreachable."""
        req = HTTPRequest(
            f"{self.api_url}/{path}",
            headers={"Authorization": f"token {self.token}", **headers},
            request_timeout=self.timeout,
            connect_timeout=self.timeout,
        )
        try:
            return await AsyncHTTPClient().fetch(req, raise_error=False)
        except (OSError, HTTPClientError) as exc:
            log.info("leftover sweep: the hub is unreachable (%s)", exc)
            return None

    async def all_active(self) -> dict[str, frozenset[str]] | None:
        found: dict[str, frozenset[str]] = {}
        offset = 0
        while True:
            resp = await self._get(
                f"users?state=active&offset={offset}&limit={self.page}",
                Accept="application/jupyterhub-pagination+json",
            )
            if resp is None:
                return None
            if resp.code != 200:  # 403: no list:users; the sweep asks user by user instead
                log.debug("leftover sweep: the hub answered %s to the list of active users", resp.code)
                return None
            page = _page_of_users(resp.body)
            if page is None:
                log.warning("leftover sweep: the hub's list of active users cannot be read")
                return None
            users, next_offset = page
            found.update(users)
            if next_offset is None or next_offset <= offset:
                return found
            offset = next_offset

    async def all_users(self) -> frozenset[str] | None:
        """The names of every user of the hub (scope list:users), a page at a time; None when the hub
        does not answer each page plainly, so that a caller never takes a failure for "no users"."""
        found: set[str] = set()
        offset = 0
        while True:
            resp = await self._get(
                f"users?offset={offset}&limit={self.page}", Accept="application/jupyterhub-pagination+json"
            )
            if resp is None or resp.code != 200:
                return None
            try:
                model: Any = json.loads(resp.body or b"")
                items = model["items"]
                found.update(str(item["name"]) for item in items)
                next_page = (model.get("_pagination") or {}).get("next")
            except (ValueError, UnicodeDecodeError, KeyError, TypeError):
                log.warning("the hub's list of users cannot be read")
                return None
            next_offset = next_page.get("offset") if isinstance(next_page, dict) else None
            if not isinstance(next_offset, int) or next_offset <= offset:
                return frozenset(found)
            offset = next_offset

    async def active(self, user: str) -> frozenset[str] | None:
        resp = await self._get(f"users/{quote(user, safe='')}")
        if resp is None:
            return None
        if resp.code == 404:
            # no such user, or none this token may see (a filtered scope, a renamed user whose pod
            # still bears the old name, a wrong API URL): the hub deletes a user's servers with the
            # user, so "unknown" is the safe reading
            return None
        if resp.code != 200:
            log.warning("leftover sweep: the hub answered %s for user %s", resp.code, user)
            return None
        servers = servers_in(resp.body)
        if servers is None:
            log.warning(
                "leftover sweep: the hub's answer for user %s names no servers; "
                "grant the service read:servers",
                user,
            )
        return servers


def _page_of_users(body: bytes) -> tuple[dict[str, frozenset[str]], int | None] | None:
    """One page of GET /users (pagination form): each user's servers, and the next page's offset
    (None on the last page); None when the page is not plainly that."""
    try:
        model: Any = json.loads(body or b"")
    except (ValueError, UnicodeDecodeError):
        return None
    items = model.get("items") if isinstance(model, dict) else None
    if not isinstance(items, list):
        return None
    users: dict[str, frozenset[str]] = {}
    for item in items:
        servers = item.get("servers") if isinstance(item, dict) else None
        name = item.get("name") if isinstance(item, dict) else None
        if not isinstance(name, str) or not isinstance(servers, dict):
            return None  # no read:servers: the list says nothing of servers
        users[name] = frozenset(servers)
    following = (model.get("_pagination") or {}).get("next") if isinstance(model, dict) else None
    offset = following.get("offset") if isinstance(following, dict) else None
    return users, offset if isinstance(offset, int) and not isinstance(offset, bool) else None


class LeftoverSweeper:
    """Every ``interval`` seconds: find notebook pods the hub does not know and delete them."""

    def __init__(
        self,
        fleet: NotebookPods,
        hub: ServerAnswers,
        *,
        hub_instance: str,
        interval: float,
        grace: float,
        request_timeout: float = 10.0,
        hub_concurrency: int = 8,
        on_removed: Callable[[Leftover], None] = lambda _: None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.fleet = fleet
        self.hub = hub
        self.hub_instance = hub_instance  # the hybridhub.io/hub label of this hub's pods
        self.interval = interval
        self.grace = grace
        self.request_timeout = request_timeout
        self.hub_concurrency = hub_concurrency  # hub requests in flight at once (the hub is one process)
        self.on_removed = on_removed
        self.clock = clock
        self._first_seen: dict[str, float] = {}  # pod UID -> when a sweep first saw it
        self._reported: set[str] = set()  # UIDs of unlabelled pods already reported
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="leftover-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                await self.sweep()
            except Exception:
                log.exception("leftover sweep failed")

    def _due(self) -> list[tuple[str, ServerLocation]]:
        """Notebook pods seen for at least ``grace`` seconds (read before the hub is asked)."""
        now = self.clock()
        every = self.fleet.notebook_pods()  # any namespace: whose() tells this hub's pods apart
        self._report_unlabelled([loc for _, loc in every if whose(loc, self.hub_instance) == UNLABELLED])
        # a pod being deleted (by the hub, or by an earlier sweep) is on its way out already: deleting
        # it again would count it twice
        pods = [
            (name, loc)
            for name, loc in every
            if whose(loc, self.hub_instance) == OURS and loc.uid and not loc.terminating
        ]
        alive = {loc.uid for _, loc in pods}
        self._first_seen = {uid: t for uid, t in self._first_seen.items() if uid in alive}
        for _, loc in pods:
            self._first_seen.setdefault(loc.uid, now)
        return [(c, loc) for c, loc in pods if now - self._first_seen[loc.uid] >= self.grace]

    def _report_unlabelled(self, unlabelled: list[ServerLocation]) -> None:
        """Say once per pod that a pod from before the hub label is left alone."""
        self._reported &= {loc.uid for loc in unlabelled}
        new = [loc for loc in unlabelled if loc.uid not in self._reported]
        if not new:
            return
        self._reported |= {loc.uid for loc in new}
        log.info(
            "leftover sweep: %d notebook pod(s) without the %s label (made before it existed), e.g. %s, "
            "are left alone whatever their server; delete any that the hub no longer runs by hand",
            len(new),
            HUB_LABEL,
            ", ".join(f"{loc.namespace}/{loc.pod}" for loc in new[:3]),
        )

    async def sweep(self) -> list[Leftover]:
        """One round; the pods it removed."""
        due = self._due()
        if not due:
            return []
        users = sorted({loc.user for _, loc in due})
        # One list of every user with an active server first: a few requests however many servers
        # run, where each hub request costs the hub a token check (milliseconds of CPU). A listed
        # user's entry is the same model GET /users/{name} gives. A user missing from the list may
        # run nothing, or the list may have missed them (a token whose list scope is filtered): each
        # of those is asked on their own, as before.
        listed = await self.hub.all_active() or {}
        answers: dict[str, frozenset[str] | None] = {u: listed[u] for u in users if u in listed}
        limit = asyncio.Semaphore(self.hub_concurrency)

        async def ask(user: str) -> frozenset[str] | None:
            async with limit:
                return await self.hub.active(user)

        unsettled = [u for u in users if u not in answers]
        answers.update(zip(unsettled, await asyncio.gather(*(ask(u) for u in unsettled)), strict=True))
        removed = []
        for leftover in find_leftovers(due, answers, self.hub_instance):
            if await self._delete(leftover):
                removed.append(leftover)
        return removed

    async def _delete(self, x: Leftover) -> bool:
        try:
            await self.fleet.delete_pod(
                x.cluster, x.namespace, x.pod, x.uid, request_timeout=self.request_timeout
            )
        except ApiException as exc:
            if exc.status not in (404, 409):  # gone already, or a new pod of that name: fine
                log.warning(
                    "leftover sweep: cannot delete pod %s/%s in %s (%s)",
                    x.namespace,
                    x.pod,
                    x.cluster,
                    exc.status,
                )
            return False
        except Exception as exc:
            log.warning(
                "leftover sweep: cannot delete pod %s/%s in %s (%s)", x.namespace, x.pod, x.cluster, exc
            )
            return False
        log.warning(
            "removed leftover pod %s/%s in %s: the hub neither runs nor starts %s's server %r",
            x.namespace,
            x.pod,
            x.cluster,
            x.user,
            x.server,
        )
        self.on_removed(x)
        return True
