"""Which notebook pods the service's sweep removes: those of servers the hub neither runs nor starts.

The safety rules: an answer of the hub that is not plainly "these servers" (a 404, an error, an
unreadable or malformed body, a model without ``servers``) deletes nothing; a pod must have been seen
for the grace period; each deletion names the UID that was read, so a new pod of the same name lives.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio.client.exceptions import ApiException
from tornado import web
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from spawner.inventory.index import ServerLocation
from spawner.service.sweeper import (
    ANOTHER_HUB,
    NOT_HYBRIDHUB,
    OURS,
    UNLABELLED,
    HubServers,
    Leftover,
    LeftoverSweeper,
    find_leftovers,
    servers_in,
    whose,
)

HUB = "research-hub"  # this hub's name


def loc(
    user: str,
    server: str = "",
    *,
    uid: str = "u1",
    ours: bool = True,
    hub: str = HUB,
    namespace: str = "jupyterhub",
) -> ServerLocation:
    """A notebook pod; ``ours``: HybridSpawner made it (its cluster label), for the hub named ``hub``."""
    pod = f"jupyter-{user}" + (f"--{server}" if server else "")
    return ServerLocation(
        user,
        server,
        namespace,
        pod,
        "10.0.0.1",
        "Running",
        "n1",
        uid,
        "onprem" if ours else "",
        hub_label=hub if ours else "",
    )


def gone(user: str, server: str = "", cluster: str = "onprem", uid: str = "u1") -> Leftover:
    pod = f"jupyter-{user}" + (f"--{server}" if server else "")
    return Leftover(cluster, "jupyterhub", pod, uid, user, server)


@pytest.mark.parametrize(
    ("pods", "active", "expected"),
    [
        ([("onprem", loc("ann"))], {"ann": frozenset({""})}, []),  # running or pending: kept
        ([("onprem", loc("ann"))], {"ann": frozenset()}, [gone("ann")]),  # the hub does not run it
        ([("onprem", loc("ann", "gpu"))], {"ann": frozenset({""})}, [gone("ann", "gpu")]),  # another server
        ([("onprem", loc("ann"))], {"ann": None}, []),  # the hub's answer is unknown: touch nothing
        ([("onprem", loc("ann"))], {}, []),  # never asked
        ([("onprem", loc("ann", ours=False))], {"ann": frozenset()}, []),  # not HybridSpawner's pod
        ([("onprem", loc("ann", uid=""))], {"ann": frozenset()}, []),  # no UID: cannot delete safely
        ([("onprem", loc("ann", hub="other-hub"))], {"ann": frozenset()}, []),  # another hub's pod
        ([("onprem", loc("ann", hub=""))], {"ann": frozenset()}, []),  # from before the hub label
        (  # this hub's pod in another namespace than the cluster's: judged all the same
            [("onprem", loc("ann", namespace="elsewhere"))],
            {"ann": frozenset()},
            [Leftover("onprem", "elsewhere", "jupyter-ann", "u1", "ann", "")],
        ),
        (  # a dead hub's start left pods in both clusters
            [("onprem", loc("ann", uid="a")), ("eks", loc("ann", uid="b")), ("eks", loc("bob", uid="c"))],
            {"ann": frozenset(), "bob": frozenset({""})},
            [gone("ann", cluster="eks", uid="b"), gone("ann", uid="a")],
        ),
    ],
)
def test_find_leftovers(
    pods: list[tuple[str, ServerLocation]],
    active: dict[str, frozenset[str] | None],
    expected: list[Leftover],
) -> None:
    assert find_leftovers(pods, active, HUB) == expected


@pytest.mark.parametrize(
    ("cluster_label", "hub_label", "expected"),
    [
        ("onprem", HUB, OURS),
        ("eks", HUB, OURS),
        ("onprem", "other-hub", ANOTHER_HUB),
        ("onprem", HUB.upper(), ANOTHER_HUB),  # label values are case-sensitive
        ("onprem", HUB + "-2", ANOTHER_HUB),
        ("onprem", "", UNLABELLED),  # made before HybridSpawner set the hub label
        ("", HUB, NOT_HYBRIDHUB),  # no cluster label: not HybridSpawner's, whatever else it carries
        ("", "", NOT_HYBRIDHUB),  # stock KubeSpawner's, or made by hand
    ],
)
def test_whose(cluster_label: str, hub_label: str, expected: str) -> None:
    pod = replace(loc("ann"), cluster_label=cluster_label, hub_label=hub_label)
    assert whose(pod, HUB) == expected


# ------------------------------------------------------------------------------ the hub's answers


class FakeHub(web.RequestHandler):
    """GET /hub/api/users/{name}: what ``ANSWERS`` says for that user (status, body)."""

    async def get(self, name: str) -> None:
        if self.request.headers.get("Authorization") != "token service-token":
            raise web.HTTPError(403)
        status, body = self.settings["answers"][name]
        if status == "hang":
            await self.settings["never"].wait()  # a hub that accepted the request and never answers
        self.set_status(status)
        self.finish(body)


ANSWERS: dict[str, tuple[Any, bytes]] = {
    "running": (200, json.dumps({"name": "running", "servers": {"": {}, "gpu": {}}}).encode()),
    "none": (200, json.dumps({"name": "none", "servers": {}}).encode()),
    "unknown": (404, b'{"status": 404, "message": "Not Found"}'),
    "failing": (500, b"oops"),
    "garbage": (200, b"<html>proxy error</html>"),
    "no-servers-key": (200, json.dumps({"name": "no-servers-key", "kind": "user"}).encode()),
    "null-servers": (200, json.dumps({"name": "null-servers", "servers": None}).encode()),
    "list-servers": (200, json.dumps({"name": "list-servers", "servers": []}).encode()),
    "not-an-object": (200, b"[]"),
    "hung": ("hang", b""),
}


class FakeList(web.RequestHandler):
    """GET /hub/api/users?state=active: ``settings["listing"]``, a page of ``limit`` users at a time."""

    async def get(self) -> None:
        if self.request.headers.get("Authorization") != "token service-token":
            raise web.HTTPError(403)
        listing = self.settings["listing"]
        if listing == "hang":
            await self.settings["never"].wait()
        if isinstance(listing, int):
            raise web.HTTPError(listing)
        assert self.get_argument("state", "active") == "active"  # all_users() asks for every user
        assert self.request.headers["Accept"] == "application/jupyterhub-pagination+json"
        offset, limit = int(self.get_argument("offset")), int(self.get_argument("limit"))
        items = listing[offset : offset + limit]
        more = offset + limit < len(listing)
        self.finish({"items": items, "_pagination": {"next": {"offset": offset + limit} if more else None}})


LISTING = [
    {"name": "ann", "servers": {"": {}}},
    {"name": "bob", "servers": {"gpu": {}}},
    {"name": "cat", "servers": {"": {}, "x": {}}},
]


@pytest_asyncio.fixture
async def hub_api(request: pytest.FixtureRequest) -> AsyncIterator[str]:
    never = asyncio.Event()
    listing = getattr(request, "param", LISTING)
    app = web.Application(
        [(r"/hub/api/users", FakeList), (r"/hub/api/users/([^/]+)", FakeHub)],
        answers=ANSWERS,
        never=never,
        listing=listing,
    )
    sock, port = bind_unused_port()
    server = HTTPServer(app)
    server.add_sockets([sock])
    try:
        yield f"http://127.0.0.1:{port}/hub/api/"
    finally:
        never.set()
        server.stop()
        await server.close_all_connections()


@pytest.mark.asyncio(loop_scope="function")
@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("running", frozenset({"", "gpu"})),
        ("none", frozenset()),  # the one answer that lets the sweep delete: the hub runs nothing
        ("unknown", None),  # a 404: a renamed user, a filtered token, a wrong URL
        ("failing", None),
        ("garbage", None),
        ("no-servers-key", None),  # a token without read:servers
        ("null-servers", None),
        ("list-servers", None),
        ("not-an-object", None),
        ("hung", None),  # timed out
    ],
)
async def test_what_the_hub_said(hub_api: str, user: str, expected: frozenset[str] | None) -> None:
    hub = HubServers(hub_api, "service-token", timeout=0.5)
    assert await hub.active(user) == expected


@pytest.mark.asyncio(loop_scope="function")
async def test_an_unreachable_hub_or_a_wrong_token_says_nothing(hub_api: str) -> None:
    sock, port = bind_unused_port()
    sock.close()  # nothing listens there now
    assert (
        await HubServers(f"http://127.0.0.1:{port}/hub/api", "service-token", timeout=2).active("none")
        is None
    )
    assert await HubServers(hub_api, "wrong-token", timeout=2).active("none") is None  # 403


@pytest.mark.asyncio(loop_scope="function")
async def test_all_active_users_are_read_a_page_at_a_time(hub_api: str) -> None:
    hub = HubServers(hub_api, "service-token", timeout=2, page=2)
    assert await hub.all_active() == {
        "ann": frozenset({""}),
        "bob": frozenset({"gpu"}),
        "cat": frozenset({"", "x"}),
    }


@pytest.mark.asyncio(loop_scope="function")
async def test_every_user_is_read_a_page_at_a_time(hub_api: str) -> None:
    hub = HubServers(hub_api, "service-token", timeout=2, page=2)
    assert await hub.all_users() == frozenset({"ann", "bob", "cat"})


@pytest.mark.asyncio(loop_scope="function")
@pytest.mark.parametrize("hub_api", [403, 500, "hang", [{"servers": {}}], [["ann"]]], indirect=True)
async def test_a_list_of_users_that_cannot_be_read_says_nothing(hub_api: str) -> None:
    # never "no users": the run namespaces of every user would go
    assert await HubServers(hub_api, "service-token", timeout=0.5).all_users() is None


@pytest.mark.asyncio(loop_scope="function")
@pytest.mark.parametrize(
    "hub_api",
    [403, 500, "hang", [{"name": "ann"}], [{"name": "ann", "servers": None}], [{"servers": {}}]],
    indirect=True,
)
async def test_a_list_that_cannot_be_read_says_nothing(hub_api: str) -> None:
    # 403: a token without list:users; a user without "servers": a token without read:servers
    assert await HubServers(hub_api, "service-token", timeout=0.5).all_active() is None


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (b'{"servers": {"": {"ready": true}}}', frozenset({""})),
        (b'{"servers": {}}', frozenset()),
        (b"", None),
        (b"\xff\xfe", None),
        (b'{"servers": null}', None),
        (b'{"servers": ["a"]}', None),
        (b'"servers"', None),
    ],
)
def test_servers_in(body: bytes, expected: frozenset[str] | None) -> None:
    assert servers_in(body) == expected


# ----------------------------------------------------------------------------------------- sweeps


class Pods:
    """Notebook pods of one in-memory cluster, deleted as Kubernetes does: 404 when gone, 409 when the
    UID precondition names another pod of that name."""

    def __init__(self, *pods: ServerLocation) -> None:
        self.pods = {p.pod: p for p in pods}
        self.deleted: list[tuple[str, str, str, str]] = []

    def notebook_pods(self) -> list[tuple[str, ServerLocation]]:
        return [("onprem", p) for p in self.pods.values()]

    async def delete_pod(
        self, cluster: str, namespace: str, pod: str, uid: str, *, request_timeout: float
    ) -> None:
        found = self.pods.get(pod)
        if found is None:
            raise ApiException(status=404, reason="Not Found")
        if found.uid != uid:
            raise ApiException(status=409, reason="Conflict")
        del self.pods[pod]
        self.deleted.append((cluster, namespace, pod, uid))


class Answers:
    """The hub's word per user; ``before_answer`` runs while the hub is being asked."""

    def __init__(
        self,
        answers: dict[str, frozenset[str] | None],
        before_answer: Any = None,
        listed: dict[str, frozenset[str]] | None = None,
    ) -> None:
        self.answers = answers
        self.before_answer = before_answer
        self.listed = listed  # what all_active() says; None: the hub cannot list
        self.asked: list[str] = []
        self.in_flight = self.most_in_flight = 0

    async def all_active(self) -> dict[str, frozenset[str]] | None:
        return None if self.listed is None else dict(self.listed)

    async def active(self, user: str) -> frozenset[str] | None:
        self.asked.append(user)
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0)  # let the other questions of the sweep start
            if self.before_answer is not None:
                self.before_answer()
            return self.answers.get(user)
        finally:
            self.in_flight -= 1


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def sweeper(pods: Pods, hub: Answers, clock: Clock, removed: list[Leftover], **kw: Any) -> LeftoverSweeper:
    kw.setdefault("grace", 60)
    return LeftoverSweeper(
        pods, hub, hub_instance=HUB, interval=30, on_removed=removed.append, clock=clock, **kw
    )


@pytest.mark.asyncio(loop_scope="function")
async def test_a_pod_is_removed_only_after_its_grace_period() -> None:
    pods, clock, removed = Pods(loc("ann", uid="a")), Clock(), []
    sweep = sweeper(pods, Answers({"ann": frozenset()}), clock, removed)
    assert await sweep.sweep() == []  # first seen now
    clock.now = 59.9
    assert await sweep.sweep() == [] and pods.deleted == []
    clock.now = 60.0
    assert await sweep.sweep() == [gone("ann", uid="a")]
    assert pods.deleted == [("onprem", "jupyterhub", "jupyter-ann", "a")] and removed == [
        gone("ann", uid="a")
    ]


@pytest.mark.asyncio(loop_scope="function")
async def test_a_new_pod_of_the_same_name_starts_its_own_grace() -> None:
    pods, clock = Pods(loc("ann", uid="a")), Clock()
    sweep = sweeper(pods, Answers({"ann": frozenset()}), clock, [])
    await sweep.sweep()
    pods.pods["jupyter-ann"] = loc("ann", uid="b")  # the old pod went, a new one came
    clock.now = 60.0
    assert await sweep.sweep() == []
    clock.now = 120.0
    assert await sweep.sweep() == [gone("ann", uid="b")]


@pytest.mark.asyncio(loop_scope="function")
@pytest.mark.parametrize("answer", [None, frozenset({""})], ids=["unknown", "running"])
async def test_nothing_is_removed_unless_the_hub_plainly_runs_nothing(answer: frozenset[str] | None) -> None:
    pods, clock = Pods(loc("ann", uid="a"), loc("bob", uid="b")), Clock()
    hub = Answers({"ann": answer, "bob": answer})
    sweep = sweeper(pods, hub, clock, [], grace=0)
    assert await sweep.sweep() == []
    assert sorted(hub.asked) == ["ann", "bob"] and pods.deleted == []


@pytest.mark.asyncio(loop_scope="function")
async def test_one_list_settles_listed_users_and_only_the_others_are_asked() -> None:
    """ann runs "" (listed): her pod stays, unasked. bob is listed with "gpu" only: his "" pod is a
    leftover, removed without asking him again. cat is not listed: asked on her own (the list may have
    missed her), and she runs nothing: removed."""
    pods, clock = Pods(loc("ann", uid="a"), loc("bob", uid="b"), loc("cat", uid="c")), Clock()
    hub = Answers({"cat": frozenset()}, listed={"ann": frozenset({""}), "bob": frozenset({"gpu"})})
    sweep = sweeper(pods, hub, clock, [], grace=0)
    removed = await sweep.sweep()
    assert sorted(x.user for x in removed) == ["bob", "cat"]
    assert hub.asked == ["cat"]


@pytest.mark.asyncio(loop_scope="function")
async def test_a_user_missing_from_the_list_is_not_taken_to_run_nothing() -> None:
    """The list says nothing of dan (a filtered list scope, say); the hub asked alone says he runs his
    server: his pod stays."""
    pods, clock = Pods(loc("dan", uid="d")), Clock()
    hub = Answers({"dan": frozenset({""})}, listed={})
    assert await sweeper(pods, hub, clock, [], grace=0).sweep() == []
    assert hub.asked == ["dan"] and pods.deleted == []


@pytest.mark.asyncio(loop_scope="function")
async def test_the_uid_precondition_spares_a_pod_that_replaced_the_leftover() -> None:
    """The pods are read before the hub is asked; if the user starts again meanwhile, the new pod (same
    name, new UID) is not deleted, and the sweep does not count it."""
    pods, removed = Pods(loc("ann", uid="old")), []

    def restart() -> None:
        pods.pods["jupyter-ann"] = loc("ann", uid="new")

    sweep = sweeper(pods, Answers({"ann": frozenset()}, before_answer=restart), Clock(), removed, grace=0)
    assert await sweep.sweep() == []
    assert pods.pods["jupyter-ann"].uid == "new" and pods.deleted == [] and removed == []


@pytest.mark.asyncio(loop_scope="function")
async def test_a_pod_gone_already_is_not_counted() -> None:
    pods = Pods(loc("ann", uid="a"))

    def gone_meanwhile() -> None:
        pods.pods.clear()

    sweep = sweeper(pods, Answers({"ann": frozenset()}, before_answer=gone_meanwhile), Clock(), [], grace=0)
    assert await sweep.sweep() == []


@pytest.mark.asyncio(loop_scope="function")
async def test_the_hub_is_asked_a_few_users_at_a_time() -> None:
    users = [f"u{i}" for i in range(20)]
    pods = Pods(*(loc(u, uid=u) for u in users))
    hub = Answers(dict.fromkeys(users, frozenset({""})))
    await sweeper(pods, hub, Clock(), [], grace=0, hub_concurrency=3).sweep()
    assert sorted(hub.asked) == sorted(users) and hub.most_in_flight == 3


@pytest.mark.asyncio(loop_scope="function")
async def test_pods_without_our_label_or_a_uid_are_not_even_asked_about() -> None:
    pods = Pods(loc("ann", uid="a", ours=False), replace(loc("bob"), uid=""))
    hub = Answers({"ann": frozenset(), "bob": frozenset()})
    assert await sweeper(pods, hub, Clock(), [], grace=0).sweep() == []
    assert hub.asked == []


@pytest.mark.asyncio(loop_scope="function")
async def test_a_pod_being_deleted_is_neither_asked_about_nor_deleted_again() -> None:
    """Kubernetes answers a DELETE of a terminating pod with 200 again: a second sweep during its grace
    period would delete it twice and count it twice."""
    pods, removed = Pods(replace(loc("ann", uid="a"), terminating=True)), []
    hub = Answers({"ann": frozenset()})
    assert await sweeper(pods, hub, Clock(), removed, grace=0).sweep() == []
    assert hub.asked == [] and pods.deleted == [] and removed == []


@pytest.mark.asyncio(loop_scope="function")
async def test_only_this_hubs_pods_are_asked_about_and_removed_in_any_namespace() -> None:
    """Two hubs share a namespace and a user name: the other hub's pod of that user lives."""
    pods = Pods(
        loc("ann", uid="mine"),
        replace(loc("ann", hub="other-hub", uid="theirs"), pod="jupyter-ann-other"),
        replace(loc("bob", namespace="team-b", uid="mine-too"), pod="jupyter-bob"),
    )
    hub, removed = Answers({"ann": frozenset(), "bob": frozenset()}), []
    got = await sweeper(pods, hub, Clock(), removed, grace=0).sweep()
    assert [x.uid for x in got] == ["mine", "mine-too"] and list(pods.pods) == ["jupyter-ann-other"]
    assert sorted(hub.asked) == ["ann", "bob"]


@pytest.mark.asyncio(loop_scope="function")
async def test_pods_from_before_the_hub_label_are_left_alone_and_reported_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    pods = Pods(loc("ann", hub="", uid="old-a"), replace(loc("bob", hub="", uid="old-b"), pod="jupyter-bob"))
    hub, clock = Answers({"ann": frozenset(), "bob": frozenset()}), Clock()
    sweep = sweeper(pods, hub, clock, [], grace=0)
    with caplog.at_level("INFO", logger="spawner.service.sweeper"):
        for _ in range(3):
            assert await sweep.sweep() == []
            clock.now += 30
        reports = [r.getMessage() for r in caplog.records if "hybridhub.io/hub" in r.getMessage()]
        assert len(reports) == 1 and "2 notebook pod(s)" in reports[0], reports
        assert "jupyterhub/jupyter-ann" in reports[0] and "jupyterhub/jupyter-bob" in reports[0]
        assert hub.asked == [] and pods.deleted == []
        pods.pods["jupyter-cid"] = replace(loc("cid", hub="", uid="old-c"), pod="jupyter-cid")  # one more
        await sweep.sweep()
        reports = [r.getMessage() for r in caplog.records if "hybridhub.io/hub" in r.getMessage()]
        assert len(reports) == 2 and "1 notebook pod(s)" in reports[1] and "jupyter-cid" in reports[1]
