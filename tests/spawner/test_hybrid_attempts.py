"""HybridSpawner's attempt loop in-process, against a stand-in service: each attempt placed afresh and
reserved when it is tried, its reservation released after it, extended while an elastic pool brings
a node, and what the user reads when nothing is left."""

# the expected messages use the multiplication sign (U+00D7)
# ruff: noqa: RUF001

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import pytest
import pytest_asyncio
from tornado import httpserver, netutil, web

from spawner.hybrid import HybridSpawner
from spawner.spawning.attempt import Candidate
from spawner.spawning.compat import SpawnRefused
from spawner.spawning.follow import NoRoom
from spawner.spawning.leftovers import LeftoverPods
from spawner.spawning.multicluster import MultiClusterSpawner
from tests.spawner.in_process import make_spawner
from tests.spawner.spawning.test_service_client import TOKEN, Handler, Service

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.timeout(30)]

PLACE = ("POST", "/services/hybridhub/api/placements")
ON_L40S = {
    "cluster": "onprem",
    "pool": "l40s",
    "elastic": False,
    "nodes": ["l40s-1"],
    "preferred_node": "l40s-1",
    "reason": "l40s-1 on onprem has 1 free NVIDIA-L40S (best fit)",
}
EKS_NODE = {**ON_L40S, "cluster": "eks", "pool": "gpu-l40s", "nodes": ["ip-1"], "preferred_node": "ip-1"}
EKS_NEW = {
    "cluster": "eks",
    "pool": "gpu-l40s",
    "elastic": True,
    "nodes": [],
    "avoid_nodes": ["ip-1"],
    "reason": "starting on eks, pool gpu-l40s (a new node is added, which takes a few minutes)",
}


def answer(
    first: dict[str, Any], *rest: dict[str, Any], rid: str = "r-1", ttl: float = 180.0
) -> dict[str, Any]:
    return {"candidates": [{**first, "reservation": rid, "expires_in": ttl}, *rest]}


@pytest_asyncio.fixture
async def service() -> AsyncIterator[tuple[Service, str]]:
    state = Service()
    state.body = None
    state.status = 204  # releases
    app = web.Application([(r"/services/hybridhub/.*", Handler, {"service": state})])
    sockets = netutil.bind_sockets(0, "127.0.0.1")
    server = httpserver.HTTPServer(app)
    server.add_sockets(sockets)
    yield state, f"http://127.0.0.1:{sockets[0].getsockname()[1]}/services/hybridhub/"
    state.hang.set()
    server.stop()
    await server.close_all_connections()


Outcome = Callable[[Candidate], Any]


@pytest.fixture
def spawner(
    service: tuple[Service, str], monkeypatch: pytest.MonkeyPatch
) -> tuple[HybridSpawner, list[Candidate], dict[str, Outcome]]:
    """A spawner whose attempts end as ``outcomes[cluster/pool(+new)]`` says: a URL, or an exception
    raised. Nothing talks to a cluster: leftovers, the cluster switch and the failed pod's removal
    are stood in for."""
    _, url = service
    s = make_spawner(user_options={"gpus": 1}, service_url=url, service_token=TOKEN, service_timeout=5.0)
    attempts: list[Candidate] = []
    outcomes: dict[str, Outcome] = {}

    async def attempt(cluster: Any, candidate: Candidate) -> str:
        attempts.append(candidate)
        result = outcomes[f"{candidate.cluster}/{candidate.pool}" + ("+new" if candidate.elastic else "")]
        return result(candidate)  # type: ignore[no-any-return]

    async def nothing(*args: Any, **kwargs: Any) -> None:
        return None

    async def use_cluster(name: str) -> Any:
        return s.cluster_config(name)

    monkeypatch.setattr(LeftoverPods, "begin", nothing)
    monkeypatch.setattr(LeftoverPods, "settle", nothing)
    monkeypatch.setattr(LeftoverPods, "watch", lambda *args: None)
    monkeypatch.setattr(MultiClusterSpawner, "stop", nothing)
    monkeypatch.setattr(s, "use_cluster", use_cluster)
    monkeypatch.setattr(s, "_attempt", attempt)
    return s, attempts, outcomes


def no_room(why: str) -> Outcome:
    def fail(candidate: Candidate) -> Any:
        raise NoRoom(why)

    return fail


def started(candidate: Candidate) -> str:
    return f"http://{candidate.cluster}.example:8888"


async def test_a_displaced_spawn_is_placed_again_without_what_it_tried(
    service: tuple[Service, str], spawner: tuple[HybridSpawner, list[Candidate], dict[str, Outcome]]
) -> None:
    """The warm node was taken before the pod was bound: the spawn releases that reservation, asks
    the service again naming what it tried, and starts on the new node the answer reserved."""
    state, _ = service
    s, attempts, outcomes = spawner
    outcomes["eks/gpu-l40s"] = no_room("eks had no room after all (0/3 nodes are available)")
    outcomes["eks/gpu-l40s+new"] = started
    state.script = [
        (200, answer(EKS_NODE, EKS_NEW)),  # the first placement
        (204, None),  # r-1 released
        (200, answer(EKS_NEW, rid="r-2")),  # the second
        (204, None),  # r-2 released
    ]
    assert await s._start() == "http://eks.example:8888"
    calls = [(method, path, body) for method, path, _, body in state.requests]
    assert [c[:2] for c in calls] == [
        PLACE,
        ("DELETE", "/services/hybridhub/api/placements/r-1"),
        PLACE,
        ("DELETE", "/services/hybridhub/api/placements/r-2"),
    ]
    assert "tried" not in calls[0][2]
    assert calls[2][2]["tried"] == [{"cluster": "eks", "pool": "gpu-l40s", "elastic": False}]
    assert (calls[0][2]["cpu"], calls[0][2]["memory"]) == (0.0, 0)
    assert [(a.elastic, a.reservation, a.avoid_nodes) for a in attempts] == [
        (False, "r-1", ()),
        (True, "r-2", ("ip-1",)),
    ]
    assert s._messages[-1].startswith(
        "eks had no room after all (0/3 nodes are available); now: starting on eks, pool gpu-l40s "
        "(a new node is added, which takes a few minutes); "
    )


async def test_the_pods_cpu_and_memory_are_asked_for(
    service: tuple[Service, str], spawner: tuple[HybridSpawner, list[Candidate], dict[str, Outcome]]
) -> None:
    """The scheduler counts a guarantee, or the limit when only that is set: so does placement."""
    state, _ = service
    s, _, outcomes = spawner
    s.cpu_limit, s.mem_guarantee, s.mem_limit = 2.0, 2**30, 2**31
    outcomes["onprem/l40s"] = started
    state.script = [(200, answer(ON_L40S)), (204, None)]
    await s._start()
    assert (state.requests[0][3]["cpu"], state.requests[0][3]["memory"]) == (2.0, 2**30)


async def test_nothing_left_untried_ends_with_the_services_sentence(
    service: tuple[Service, str], spawner: tuple[HybridSpawner, list[Candidate], dict[str, Outcome]]
) -> None:
    state, _ = service
    s, attempts, outcomes = spawner
    outcomes["onprem/l40s"] = no_room("onprem had no room after all (Insufficient nvidia.com/gpu)")
    state.script = [
        (200, answer(ON_L40S, EKS_NEW)),
        (204, None),
        (409, {"message": "No cluster can start 1 × NVIDIA-L40S now: eks pool gpu-l40s is at its maximum"}),
    ]
    with pytest.raises(SpawnRefused) as err:
        await s._start()
    assert err.value.jupyterhub_message == (
        "No cluster could start your server now (onprem had no room after all (Insufficient "
        "nvidia.com/gpu); no cluster can start 1 × NVIDIA-L40S now: eks pool gpu-l40s is at its "
        "maximum). Try fewer GPUs or later."
    )
    assert len(attempts) == 1  # the first answer's eks candidate is not tried: it has no room now


async def test_a_service_that_cannot_be_asked_again_leaves_the_first_answers_next(
    service: tuple[Service, str], spawner: tuple[HybridSpawner, list[Candidate], dict[str, Outcome]]
) -> None:
    """The fallback then holds nothing, as before reservations covered fallbacks."""
    state, _ = service
    s, attempts, outcomes = spawner
    outcomes["onprem/l40s"] = no_room("onprem had no room after all")
    outcomes["eks/gpu-l40s+new"] = started
    state.script = [(200, answer(ON_L40S, EKS_NEW)), (204, None), (502, None)]
    assert await s._start() == "http://eks.example:8888"
    assert [(a.cluster, a.elastic, a.reservation) for a in attempts] == [
        ("onprem", False, "r-1"),
        ("eks", True, None),
    ]


async def test_attempts_stop_at_max_attempts(
    service: tuple[Service, str], spawner: tuple[HybridSpawner, list[Candidate], dict[str, Outcome]]
) -> None:
    state, _ = service
    s, attempts, outcomes = spawner
    s.max_attempts = 2
    outcomes["onprem/l40s"] = no_room("onprem had no room after all")
    outcomes["eks/gpu-l40s"] = no_room("eks had no room after all")
    state.script = [(200, answer(ON_L40S)), (204, None), (200, answer(EKS_NODE, EKS_NEW, rid="r-2"))]
    with pytest.raises(SpawnRefused, match="onprem had no room after all; eks had no room after all"):
        await s._start()
    assert len(attempts) == 2
    assert [r[:2] for r in state.requests[-1:]] == [("DELETE", "/services/hybridhub/api/placements/r-2")]


async def test_an_elastic_attempt_extends_its_reservation_until_its_pod_starts(
    service: tuple[Service, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """While the pool brings a node the reservation is extended; once the pod starts, it is not."""
    state, url = service
    s = make_spawner(
        service_url=url, service_token=TOKEN, answer_poll_interval=0.0, attempt_create_timeout=60.0
    )
    node_came = asyncio.Event()

    async def start(self: Any) -> str:
        await node_came.wait()
        return "http://10.0.0.9:8888"

    monkeypatch.setattr(MultiClusterSpawner, "_start", start)
    state.status, state.body = 200, {"id": "r-9", "expires_in": 3.0}  # every third of it: 1 s
    candidate = Candidate("eks", "gpu-l40s", elastic=True, reservation="r-9", expires_in=3.0)
    attempt = asyncio.ensure_future(s._attempt(s.cluster_config("eks"), candidate))
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 10
    extensions = lambda: [r for r in state.requests if r[1].endswith("/extend")]  # noqa: E731
    while len(extensions()) < 2:  # two extensions while the node comes
        assert loop.time() < deadline and not attempt.done()
        await asyncio.sleep(0.05)
    node_came.set()
    assert await attempt == "http://10.0.0.9:8888"
    # beside them, only the questions whether eks is down (api/health, once a second)
    assert {r[1] for r in state.requests} <= {
        "/services/hybridhub/api/placements/r-9/extend",
        "/services/hybridhub/api/health",
    }
    # the keeper is stopped with the attempt, not left to run out: no task of it is left to ask with
    assert not [t for t in asyncio.all_tasks() if "ReservationKeeper" in repr(t.get_coro())]
