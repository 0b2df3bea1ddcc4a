"""The service's REST API in this process: capacity, placements, reservations, server lookup, metrics,
and who may call what (401 without a token the hub knows, 403 without the declared scope)."""

# the expected messages use the multiplication sign (U+00D7)
# ruff: noqa: RUF001

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from typing import Any

import pytest
import pytest_asyncio
from prometheus_client.parser import text_string_to_metric_families

from spawner.core.model import ClusterHealth, ClusterInventory, Health, Pool, Role
from spawner.inventory.index import ServerLocation
from tests.spawner.placement.test_rank import A100, L40S, elastic, node
from tests.spawner.service.inprocess import Service, StaticFleet, running_service, service, user

pytestmark = [pytest.mark.asyncio(loop_scope="function"), pytest.mark.timeout(30)]

PLACE, SERVERS, CAPACITY = "custom:hybridhub:place", "custom:hybridhub:servers", "custom:hybridhub:capacity"
TOKENS = {
    # HybridSpawner's client (the hybridhub-hub service of hub_config/jupyterhub_config.d/30-service.py)
    "hub": service("hybridhub-hub", "access:services!service=hybridhub", PLACE, SERVERS, CAPACITY),
    # a user's own token: the "self" role, expanded as the hub returns it, plus capacity
    "ann": user("ann", "read:servers!user=ann", "access:servers!user=ann", CAPACITY),
    # ann's default server's token (c.Spawner.server_token_scopes)
    "ann-server": user("ann", "users:activity!user=ann", "access:servers!server=ann/", CAPACITY),
    "bob": user("bob", "read:servers!user=bob", "access:servers!user=bob", CAPACITY),
    "nobody": user("carl", "access:services!service=hybridhub"),  # no scope of ours
    "admin": user("root", "read:servers", "admin:users"),
    "shared": user("dan", "access:servers!server=ann/gpu"),  # ann shared her server "gpu" with dan
    "prometheus": service("prometheus", "access:services!service=hybridhub", "read:metrics"),
}


def location(user_: str, server: str = "", *, phase: str = "Running", ip: str = "10.1.0.7") -> ServerLocation:
    pod = f"jupyter-{user_}" + (f"--{server}" if server else "")
    return ServerLocation(user_, server, "jupyterhub", pod, ip, phase, "dgx-1", "uid-" + pod, "onprem")


def fleet() -> StaticFleet:
    """On-prem: two A100 nodes, 3 of 16 GPUs free (at most 2 on one node). EKS: an elastic L40S pool at
    zero nodes that may grow to two 4-GPU nodes."""
    onprem = ClusterInventory(
        "onprem", Role.ONPREM, (Pool("gpu"),), (node("dgx-1", used=6), node("dgx-2", used=7)), True
    )
    eks = ClusterInventory("eks", Role.CLOUD, (elastic("gpu-l40s", L40S, 4, 2),), (), True)
    return StaticFleet(
        inventory=[onprem, eks],
        states={
            "onprem": ClusterHealth("onprem", Health.HEALTHY),
            "eks": ClusterHealth("eks", Health.HEALTHY),
        },
        pods=[("onprem", location("ann")), ("onprem", location("ann", "gpu", ip="10.1.0.8"))],
    )


@pytest_asyncio.fixture
async def api() -> AsyncIterator[Service]:
    async for running in running_service(fleet(), TOKENS):
        yield running


LAG = ("queued_gpus", "expected_wait")


def products(body: dict[str, Any]) -> dict[tuple[str, str], dict[str, int]]:
    return {
        (c["name"], p["product"]): {k: v for k, v in p.items() if k != "product" and k not in LAG}
        for c in body["clusters"]
        for p in c["products"]
    }


def lag(body: dict[str, Any]) -> dict[tuple[str, str], tuple[int, dict[int, float | None]]]:
    """Per cluster and product: GPUs queued there, and the expected wait by run size."""
    return {
        (c["name"], p["product"]): (p["queued_gpus"], {w["gpus"]: w["seconds"] for w in p["expected_wait"]})
        for c in body["clusters"]
        for p in c["products"]
    }


def place_body(gpus: int = 1, product: str | None = A100, **more: Any) -> dict[str, Any]:
    return {"user": "ann", "gpus": gpus, "gpu_product": product, **more}


# ---------------------------------------------------------------------------------------- capacity


async def test_capacity(api: Service) -> None:
    answer = await api.call("GET", "api/capacity", "ann")
    assert answer.status == 200, answer.text
    body = answer.json
    assert products(body) == {
        ("onprem", A100): {"total": 16, "free": 3, "largest_free": 2, "new_node_gpus": 0},
        ("eks", L40S): {"total": 0, "free": 0, "largest_free": 0, "new_node_gpus": 4},
    }
    # the lag: 2 GPUs free on one node start now, 4 wait for a typical run (30 min) to end; eks's new
    # L40S nodes start up to 4 now, and 8 never fit one
    assert lag(body) == {
        ("onprem", A100): (0, {1: 0.0, 2: 0.0, 4: 1800.0, 8: 1800.0}),
        ("eks", L40S): (0, {1: 0.0, 2: 0.0, 4: 0.0, 8: None}),
    }
    onprem, eks = body["clusters"]
    assert (onprem["name"], onprem["role"], onprem["health"], onprem["synced"]) == (
        "onprem",
        "onprem",
        "healthy",
        True,
    )
    assert onprem["pools"] == [{"name": "gpu", "role": "onprem", "elastic": False, "health": "healthy"}]
    assert [(n["name"], n["gpus"], n["allocated"], n["free"]) for n in onprem["nodes"]] == [
        ("dgx-1", 8, 6, 2),
        ("dgx-2", 8, 7, 1),
    ]
    assert eks["pools"] == [{"name": "gpu-l40s", "role": "cloud", "elastic": True, "health": "healthy"}]


async def test_capacity_shows_the_health_of_a_down_cluster(api: Service) -> None:
    api.fleet.states["onprem"] = ClusterHealth("onprem", Health.DOWN, "API unreachable for 3 probes")
    onprem = (await api.call("GET", "api/capacity", "ann")).json["clusters"][0]
    assert (onprem["health"], onprem["reason"]) == ("down", "API unreachable for 3 probes")
    assert onprem["pools"][0]["health"] == "down"


async def test_health_names_each_cluster_state_and_reason_only(api: Service) -> None:
    api.fleet.states["onprem"] = ClusterHealth("onprem", Health.DOWN, "API unreachable for 3 probes")
    answer = await api.call("GET", "api/health", "ann")
    assert answer.status == 200, answer.text
    assert answer.json == {
        "clusters": [
            {"name": "eks", "health": "healthy", "reason": ""},
            {"name": "onprem", "health": "down", "reason": "API unreachable for 3 probes"},
        ]
    }


async def test_capacity_deducts_live_reservations(api: Service) -> None:
    placed = await api.call("POST", "api/placements", "hub", place_body(2))
    assert placed.status == 200, placed.text
    body = (await api.call("GET", "api/capacity", "ann")).json
    after = products(body)
    assert after[("onprem", A100)] == {"total": 16, "free": 1, "largest_free": 1, "new_node_gpus": 0}
    # and the expected waits: 2 GPUs no longer start now
    assert lag(body)[("onprem", A100)] == (0, {1: 0.0, 2: 1800.0, 4: 1800.0, 8: 1800.0})


# -------------------------------------------------------------------------------------- placements


NAMESPACES = {"onprem": "jupyterhub", "eks": "jupyterhub"}


@pytest.mark.parametrize(
    ("pod", "onprem", "onprem_synced", "checked", "found"),
    [
        # ann's default server runs on-prem (fleet()): the service says so, and that eks has none
        ("jupyter-ann", Health.HEALTHY, True, ["eks", "onprem"], [("onprem", "uid-jupyter-ann")]),
        ("jupyter-bob", Health.HEALTHY, True, ["eks", "onprem"], []),
        # a cluster whose view is not current is not vouched for: the hub asks it itself
        ("jupyter-ann", Health.DEGRADED, True, ["eks"], []),
        ("jupyter-ann", Health.DOWN, True, ["eks"], []),
        ("jupyter-ann", Health.HEALTHY, False, ["eks"], []),
    ],
)
async def test_placement_says_where_a_pod_of_that_name_is(
    pod: str, onprem: Health, onprem_synced: bool, checked: list[str], found: list[tuple[str, str]]
) -> None:
    seen = fleet()
    seen.states["onprem"] = ClusterHealth("onprem", onprem, "")
    if not onprem_synced:
        inv = seen.inventory[0]
        seen.inventory[0] = ClusterInventory(inv.cluster, inv.role, inv.pools, inv.nodes, False)
    async for api in running_service(seen, TOKENS):
        answer = await api.call(
            "POST", "api/placements", "hub", place_body(1, L40S, pod=pod, namespaces=NAMESPACES)
        )
        assert answer.status == 200, answer.text
        pods = answer.json["pods"]
        assert pods["checked"] == checked
        assert [(f["cluster"], f["uid"]) for f in pods["found"]] == found


async def test_placement_without_a_pod_name_says_nothing_of_pods(api: Service) -> None:
    answer = await api.call("POST", "api/placements", "hub", place_body(0, None))
    assert answer.status == 200, answer.text
    assert "pods" not in answer.json


@pytest.mark.parametrize(
    ("more", "message"),
    [
        ({"pod": "", "namespaces": NAMESPACES}, "pod must be the server's pod name"),
        ({"pod": 3, "namespaces": NAMESPACES}, "pod must be the server's pod name"),
        ({"namespaces": NAMESPACES}, "pod must be the server's pod name"),
        ({"pod": "jupyter-ann"}, "namespaces must map cluster names to namespaces"),
        (
            {"pod": "jupyter-ann", "namespaces": {"onprem": 1}},
            "namespaces must map cluster names to namespaces",
        ),
    ],
)
async def test_placement_with_a_malformed_pod_is_400(
    api: Service, more: dict[str, Any], message: str
) -> None:
    answer = await api.call("POST", "api/placements", "hub", place_body(0, None, **more))
    assert answer.status == 400
    assert answer.json["message"] == message


async def test_placement_reserves_the_first_candidate(api: Service) -> None:
    answer = await api.call("POST", "api/placements", "hub", place_body(2))
    assert answer.status == 200, answer.text
    (first,) = answer.json["candidates"]  # eks has no A100 pool: one candidate
    assert (first["cluster"], first["pool"], first["preferred_node"], first["elastic"]) == (
        "onprem",
        "gpu",
        "dgx-1",
        False,
    )
    assert first["nodes"] == ["dgx-1"] and first["reservation"].startswith("r-")
    (held,) = api.book.active()
    assert (held.id, held.cluster, held.node, held.gpus) == (first["reservation"], "onprem", "dgx-1", 2)
    assert held.expires == api.clock() + 180.0


async def test_null_fields_are_their_defaults(api: Service) -> None:
    nulls = dict.fromkeys(["gpu_product", "cpu", "memory", "cluster", "allowed_clusters", "gpu_quota"])
    answer = await api.call(
        "POST", "api/placements", "hub", {**place_body(1, None), **nulls, "gpus_in_use": None}
    )
    assert answer.status == 200, answer.text
    assert answer.json["candidates"][0]["cluster"] == "onprem"


async def test_a_placement_without_gpus_reserves_nothing(api: Service) -> None:
    answer = await api.call("POST", "api/placements", "hub", {"user": "ann", "gpus": 0})
    assert answer.status == 200, answer.text
    assert all(c["reservation"] is None for c in answer.json["candidates"])
    assert api.book.active() == ()


async def test_concurrent_placements_never_hand_out_a_gpu_twice(api: Service) -> None:
    """Three A100s are free: three one-GPU placements get them, the fourth is told why not."""
    answers = [await api.call("POST", "api/placements", "hub", place_body(1)) for _ in range(4)]
    assert [a.status for a in answers] == [200, 200, 200, 409]
    nodes = sorted(a.json["candidates"][0]["preferred_node"] for a in answers[:3])
    assert nodes == ["dgx-1", "dgx-1", "dgx-2"]  # best fit: dgx-2 (1 free) first, then dgx-1 (2 free)
    assert len({a.json["candidates"][0]["reservation"] for a in answers[:3]}) == 3


async def test_no_capacity_is_409_with_why(api: Service) -> None:
    answer = await api.call("POST", "api/placements", "hub", place_body(3))
    assert answer.status == 409, answer.text
    assert answer.json["message"] == (
        "No cluster can start 3 × NVIDIA-A100-SXM4-80GB now: onprem has 16 (3 free, at most 2 on one node); "
        "eks has none"
    )
    assert answer.json["available"] == {
        "onprem": [{"product": A100, "total": 16, "free": 3}],
        "eks": [{"product": L40S, "total": 0, "free": 0}],
    }
    assert api.book.active() == ()


async def test_a_down_on_prem_falls_back_to_the_elastic_pool(api: Service) -> None:
    api.fleet.states["onprem"] = ClusterHealth("onprem", Health.DOWN, "API unreachable")
    answer = await api.call("POST", "api/placements", "hub", place_body(1, L40S))
    assert answer.status == 200, answer.text
    first = answer.json["candidates"][0]
    assert (first["cluster"], first["pool"], first["elastic"], first["nodes"]) == (
        "eks",
        "gpu-l40s",
        True,
        [],
    )
    assert "onprem is down" in first["reason"]
    (held,) = api.book.active()
    assert (held.cluster, held.node, held.pool) == ("eks", None, "gpu-l40s")
    assert 'hybridhub_placements_total{cluster="eks",outcome="fallback"} 1.0' in api.metrics.render().decode()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "the body is not JSON"),
        ([1, 2], "the body must be a JSON object"),
        ({"gpus": 1}, "user is required"),
        ({"user": "", "gpus": 1}, "user is required"),
        ({"user": 7, "gpus": 1}, "user must be str"),
        ({"user": "ann", "gpus": "two"}, "gpus must be int"),
        ({"user": "ann", "gpus": True}, "gpus must be int"),
        ({"user": "ann", "gpus": -1}, "gpus must be between 0 and 64"),
        ({"user": "ann", "gpus": 65}, "gpus must be between 0 and 64"),
        ({"user": "ann", "gpus": 1, "gpu_product": 100}, "gpu_product must be str"),
        ({"user": "ann", "gpus": 1, "cpu": "2"}, "cpu must be int or float"),
        ({"user": "ann", "gpus": 1, "cpu": -2}, "The CPU request must be 0 or more, not -2"),
        ({"user": "ann", "gpus": 1, "memory": 1.5}, "memory must be int"),
        ({"user": "ann", "gpus": 1, "cluster": "mars"}, "There is no cluster named 'mars'"),
        ({"user": "ann", "gpus": 1, "allowed_clusters": "onprem"}, "allowed_clusters must be list"),
        ({"user": "ann", "gpus": 1, "allowed_clusters": [1]}, "allowed_clusters must be a list of cluster"),
        ({"user": "ann", "gpus": 1, "allowed_clusters": []}, "You may not use any cluster"),
        ({"user": "ann", "gpus": 1, "gpu_quota": "8"}, "gpu_quota must be int"),
        ({"user": "ann", "gpus": 1, "gpu_quota": -1}, "The GPU limit must be 0 or more"),
        ({"user": None, "gpus": 1}, "user is required"),
    ],
)
async def test_bad_placement_requests_are_400_naming_the_field(
    api: Service, body: dict[str, Any] | bytes, message: str
) -> None:
    answer = await api.call("POST", "api/placements", "hub", body)
    assert answer.status == 400, answer.text
    assert answer.json["status"] == 400 and answer.json["message"].startswith(message), answer.json
    assert api.book.active() == ()


async def test_a_placement_answers_how_long_its_reservation_lasts(api: Service) -> None:
    answer = await api.call("POST", "api/placements", "hub", place_body(1))
    first = answer.json["candidates"][0]
    assert (first["expires_in"], first["avoid_nodes"]) == (180.0, [])


async def test_a_cpu_only_placement_holds_its_cpus_on_its_node(api: Service) -> None:
    """Concurrent CPU-only spawns see each other: each is named nodes with room left for it."""
    answer = await api.call("POST", "api/placements", "hub", {"user": "ann", "gpus": 0, "cpu": 60})
    assert answer.status == 200, answer.text
    first = answer.json["candidates"][0]
    (held,) = api.book.active()
    assert (held.id, held.node, held.gpus, held.cpu) == (
        first["reservation"],
        first["preferred_node"],
        0,
        60.0,
    )
    again = await api.call("POST", "api/placements", "hub", {"user": "bob", "gpus": 0, "cpu": 60})
    assert again.json["candidates"][0]["nodes"] == [n for n in ("dgx-2", "dgx-1") if n != held.node]


def warm_fleet(api: Service) -> None:
    """eks's L40S pool is warm: one idle node of 4 GPUs, room for one more node."""
    eks = ClusterInventory(
        "eks",
        Role.CLOUD,
        (elastic("gpu-l40s", L40S, 4, 2),),
        (node("ip-1", "gpu-l40s", product=L40S, gpus=4),),
        True,
    )
    api.fleet.inventory[1] = eks


async def test_each_attempt_is_placed_afresh_without_what_it_tried(api: Service) -> None:
    """A spawn's fallback is placed and reserved when it is tried, on what is free then: the warm
    node's four GPUs go to four spawns; the fifth's first choice is a new node, which keeps off the
    warm node while its GPUs are held; a spawn whose warm node was taken tries a new node next."""
    warm_fleet(api)
    answers = [
        await api.call("POST", "api/placements", "hub", place_body(1, L40S, user=f"u{i}")) for i in range(5)
    ]
    firsts = [a.json["candidates"][0] for a in answers]
    assert [(c["preferred_node"], c["elastic"], c["avoid_nodes"]) for c in firsts] == [
        *[("ip-1", False, [])] * 4,
        (None, True, ["ip-1"]),
    ]
    # the warm node's spawns have a new node as their next candidate
    assert [(c["elastic"], c["reservation"]) for c in answers[0].json["candidates"][1:]] == [(True, None)]
    # a pod placement did not know of took a GPU of ip-1, so u0's pod found it full: u0 releases its
    # reservation and asks again, naming what it tried
    api.fleet.inventory[1] = replace(
        api.fleet.inventory[1], nodes=(node("ip-1", "gpu-l40s", product=L40S, gpus=4, used=1),)
    )
    assert (await api.call("DELETE", f"api/placements/{firsts[0]['reservation']}", "hub")).status == 204
    tried = [{"cluster": "eks", "pool": "gpu-l40s", "elastic": False}]
    again = await api.call("POST", "api/placements", "hub", place_body(1, L40S, user="u0", tried=tried))
    assert again.status == 200, again.text
    (fallback,) = again.json["candidates"]
    assert (fallback["cluster"], fallback["elastic"], fallback["avoid_nodes"]) == ("eks", True, ["ip-1"])
    held = {r.id: r for r in api.book.active()}
    assert (held[fallback["reservation"]].node, held[fallback["reservation"]].pool) == (None, "gpu-l40s")
    assert len(held) == 5  # three on ip-1, two for the new node: u0's first one is gone
    # with the new node tried too, nothing is left: 409, and nothing more is held
    tried.append({"cluster": "eks", "pool": "gpu-l40s", "elastic": True})
    assert (await api.call("DELETE", f"api/placements/{fallback['reservation']}", "hub")).status == 204
    last = await api.call("POST", "api/placements", "hub", place_body(1, L40S, user="u0", tried=tried))
    assert last.status == 409, last.text
    assert last.json["message"] == (
        "Every place with room for this server now was tried already: "
        "eks pool gpu-l40s, eks pool gpu-l40s (a new node)"
    )
    assert len(api.book.active()) == 4


async def test_a_tried_candidate_elsewhere_leaves_the_rest_in_order(api: Service) -> None:
    tried = [{"cluster": "onprem", "pool": "gpu", "elastic": False}]
    answer = await api.call("POST", "api/placements", "hub", place_body(1, None, tried=tried))
    assert answer.status == 200, answer.text
    assert [(c["cluster"], c["elastic"]) for c in answer.json["candidates"]] == [("eks", True)]
    (held,) = api.book.active()
    assert (held.cluster, held.node) == ("eks", None)


@pytest.mark.parametrize(
    "tried",
    [
        "onprem",
        [["onprem", "gpu", False]],
        [{"cluster": "onprem"}],
        [{"cluster": "onprem", "pool": "gpu", "elastic": "no"}],
        [{"cluster": "onprem", "pool": "gpu"}] * 33,
    ],
)
async def test_a_malformed_tried_list_is_400(api: Service, tried: Any) -> None:
    answer = await api.call("POST", "api/placements", "hub", place_body(1, tried=tried))
    assert answer.status == 400, answer.text
    assert answer.json["message"].startswith("tried must be a list of {cluster, pool, elastic} objects")
    assert api.book.active() == ()


# ------------------------------------------------------------------------------------ reservations


async def test_releasing_a_reservation_frees_its_gpus(api: Service) -> None:
    rid = (await api.call("POST", "api/placements", "hub", place_body(2))).json["candidates"][0][
        "reservation"
    ]
    assert (await api.call("DELETE", f"api/placements/{rid}", "hub")).status == 204
    assert api.book.active() == ()
    again = await api.call("DELETE", f"api/placements/{rid}", "hub")
    assert (again.status, again.json["message"]) == (404, f"no reservation {rid}")
    after = products((await api.call("GET", "api/capacity", "ann")).json)
    assert after[("onprem", A100)]["free"] == 3


async def test_extending_a_reservation_holds_it_another_ttl(api: Service) -> None:
    rid = (await api.call("POST", "api/placements", "hub", place_body(1))).json["candidates"][0][
        "reservation"
    ]
    api.clock.advance(170)
    extended = await api.call("POST", f"api/placements/{rid}/extend", "hub")
    assert extended.status == 200, extended.text
    assert extended.json == {"id": rid, "expires_in": 180.0}
    api.clock.advance(170)  # 340 s after the placement: alive only because it was extended
    assert [r.id for r in api.book.active()] == [rid]
    api.clock.advance(10)
    gone = await api.call("POST", f"api/placements/{rid}/extend", "hub")
    assert (gone.status, gone.json["message"]) == (404, f"no reservation {rid} (expired or released)")
    assert api.book.active() == ()


# ----------------------------------------------------------------------------------------- servers


@pytest.mark.parametrize(
    ("path", "token", "status"),
    [
        ("api/servers/ann", "ann", 200),  # the owner
        ("api/servers/ann/gpu", "ann", 200),
        ("api/servers/ann", "ann-server", 200),  # her default server's token
        ("api/servers/ann/gpu", "ann-server", 200),  # the owner, though that token has no scope for it
        ("api/servers/ann", "hub", 200),  # the gateway's scope
        ("api/servers/ann", "admin", 200),  # read:servers on everyone
        ("api/servers/ann/gpu", "shared", 200),  # shared with dan: that server only
        ("api/servers/ann", "shared", 403),
        ("api/servers/ann", "bob", 403),  # not bob's to know
        ("api/servers/ann", "nobody", 403),
        ("api/servers/ann", None, 401),
        ("api/servers/bob", "bob", 404),  # may ask; nothing runs
        ("api/servers/ann/nope", "ann", 404),
    ],
)
async def test_who_may_look_up_a_server(api: Service, path: str, token: str | None, status: int) -> None:
    answer = await api.call("GET", path, token)
    assert answer.status == status, answer.text
    assert "message" in answer.json if status != 200 else "pod" in answer.json


async def test_a_server_lookup_says_where_it_runs(api: Service) -> None:
    api.fleet.pods.append(("eks", location("ann", "gpu", phase="Pending", ip="")))  # a second pod, leaving
    answer = await api.call("GET", "api/servers/ann/gpu", "ann")
    assert answer.json == {
        "user": "ann",
        "server": "gpu",
        "cluster": "onprem",  # the Running pod, not the Pending one
        "namespace": "jupyterhub",
        "pod": "jupyter-ann--gpu",
        "ip": "10.1.0.8",
        "phase": "Running",
        "node": "dgx-1",
    }
    missing = await api.call("GET", "api/servers/bob", "hub")
    assert missing.json["message"] == "bob has no server running"


# -------------------------------------------------------------------------------- who may call what

ROUTES = [
    ("GET", "api/capacity", None, CAPACITY),
    ("GET", "api/health", None, CAPACITY),
    ("POST", "api/placements", {"user": "ann", "gpus": 1}, PLACE),
    ("DELETE", "api/placements/r-1", None, PLACE),
    ("POST", "api/placements/r-1/extend", None, PLACE),
    ("GET", "api/servers/ann", None, SERVERS),
    ("GET", "metrics", None, "read:metrics"),
]


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES)
async def test_without_a_known_token_every_endpoint_is_401(
    api: Service, method: str, path: str, body: Any, scope: str
) -> None:
    for token in (None, "not-a-token"):
        answer = await api.call(method, path, token, body)
        assert answer.status == 401, (token, answer.text)
        assert answer.json == {
            "status": 401,
            "message": "this needs a hub API token: send 'Authorization: token <token>'",
        }
        assert answer.headers["Www-Authenticate"] == "token"


@pytest.mark.parametrize(("method", "path", "body", "scope"), ROUTES)
async def test_without_the_scope_every_endpoint_is_403_naming_it(
    api: Service, method: str, path: str, body: Any, scope: str
) -> None:
    answer = await api.call(method, path, "nobody", body)
    assert answer.status == 403, answer.text
    assert answer.json["message"].startswith("user carl may not do this: it needs the scope ")
    assert scope in answer.json["message"]


async def test_placements_are_for_the_hub_only(api: Service) -> None:
    for method, path, body in [
        ("POST", "api/placements", place_body(1)),
        ("DELETE", "api/placements/r-1", None),
        ("POST", "api/placements/r-1/extend", None),
    ]:
        for token in ("ann", "admin", "prometheus"):
            answer = await api.call(method, path, token, body)
            assert answer.status == 403 and PLACE in answer.json["message"], (token, path)
    assert api.book.active() == ()


async def test_users_see_capacity_the_prometheus_token_does_not(api: Service) -> None:
    assert (await api.call("GET", "api/capacity", "ann-server")).status == 200
    assert (await api.call("GET", "api/capacity", "hub")).status == 200
    assert (await api.call("GET", "api/capacity", "prometheus")).status == 403


# ----------------------------------------------------------------------------------------- metrics


def gauges(text: str, name: str) -> dict[tuple[str, str], float]:
    (family,) = [f for f in text_string_to_metric_families(text) if f.name == name]
    return {(s.labels["cluster"], s.labels["product"]): s.value for s in family.samples}


async def test_metrics(api: Service) -> None:
    answer = await api.call("GET", "metrics", "prometheus")
    assert answer.status == 200 and answer.headers["Content-Type"].startswith("text/plain"), answer.text
    assert 'hybridhub_cluster_health{cluster="onprem",state="healthy"} 1.0' in answer.text
    assert "hybridhub_reservations 0.0" in answer.text
    await api.call("POST", "api/placements", "hub", place_body(1))
    await api.call("POST", "api/placements", "hub", place_body(8))
    text = (await api.call("GET", "metrics", "prometheus")).text
    assert 'hybridhub_placements_total{cluster="onprem",outcome="placed"} 1.0' in text
    assert 'hybridhub_placements_total{cluster="",outcome="no-capacity"} 1.0' in text
    assert "hybridhub_placement_seconds_count 2.0" in text
    assert "hybridhub_reservations 1.0" in text


async def test_metrics_without_authentication() -> None:
    async for api in running_service(fleet(), TOKENS, authenticate_metrics=False):
        answer = await api.call("GET", "metrics")
        assert answer.status == 200 and "hybridhub_gpus_total" in answer.text
        assert api.auth.asked == []  # no token looked up at all
        assert (await api.call("GET", "api/capacity")).status == 401  # only metrics are open


async def test_gpus_free_is_what_capacity_reports(api: Service) -> None:
    """Before and after reservations, on every cluster and product (the elastic pool's zeros too)."""
    for body in (None, place_body(2), place_body(1, L40S)):
        if body is not None:
            assert (await api.call("POST", "api/placements", "hub", body)).status == 200
        capacity = products((await api.call("GET", "api/capacity", "ann")).json)
        text = (await api.call("GET", "metrics", "prometheus")).text
        assert gauges(text, "hybridhub_gpus_free") == {k: float(v["free"]) for k, v in capacity.items()}
        assert gauges(text, "hybridhub_gpus_total") == {k: float(v["total"]) for k, v in capacity.items()}
    assert gauges(text, "hybridhub_gpus_free")[("onprem", A100)] == 1.0  # 3 free, 2 reserved
