"""The watch-cache window and etcd's compaction, as kube-apiserver keeps them.

The policy is pure (parameter tables); then kubernetes_asyncio, unmodified, meets it over HTTPS in a
one-cluster simcluster whose window is two events per type and whose compaction is immediate.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from simcluster.config import ConfigError, parse_cluster_file
from simcluster.history import EventHistory, Revisions, WatchWindow
from simcluster.testing import SimProcess

# (seconds, min, max), the times of events at versions 1, 2, 3, ..., then (events kept, the limit a
# resume from before it gets 410 with; None: every resume is served)
HISTORIES = [
    # young events are all kept, past the lower bound
    ((75, 2, 100), [0, 1, 2, 3], 4, None),
    # old ones go, but the lower bound's newest stay however old
    ((75, 2, 100), [0, 1, 200, 201], 2, 2),
    ((75, 2, 100), [0, 1, 2, 300], 2, 2),
    # the upper bound holds even for young events
    ((75, 1, 3), [0, 0, 0, 0, 0], 3, 2),
    # nothing dropped: complete from the start
    ((0, 5, 5), [0, 10, 20], 3, None),
]


@pytest.mark.parametrize(("bounds", "times", "kept", "limit"), HISTORIES)
def test_the_window_keeps_what_kube_apiserver_keeps(
    bounds: tuple[float, int, int], times: list[float], kept: int, limit: int | None
) -> None:
    seconds, least, most = bounds
    history: EventHistory[str] = EventHistory(WatchWindow(seconds=seconds, min_events=least, max_events=most))
    for rv, when in enumerate(times, start=1):
        history.append(rv, f"e{rv}", when)
    assert len(history) == kept
    assert history.too_old(0) == limit
    if limit is not None:
        assert history.too_old(limit) is None  # from the oldest kept less one: every event is there
        assert list(history.since(limit)) == [f"e{rv}" for rv in range(limit + 1, len(times) + 1)]


def test_a_reset_history_is_complete_from_the_reset_on() -> None:
    history: EventHistory[str] = EventHistory(WatchWindow(seconds=0, min_events=1, max_events=1))
    for rv in (1, 2, 3):
        history.append(rv, f"e{rv}", 0)
    history.reset(10)
    assert history.too_old(9) == 10 and history.too_old(10) is None
    history.append(12, "e12", 0)
    history.append(14, "e14", 0)  # e12 goes: now the oldest kept decides, less one
    assert history.too_old(13) is None and history.too_old(12) == 13


@pytest.mark.parametrize(
    ("marks", "now", "compacted"),
    [
        ([], 1000.0, 0),
        ([(0.0, 5)], 100.0, 0),  # superseded by nothing: still current
        ([(0.0, 5)], 400.0, 5),  # current at the cutoff: everything before it is gone
        ([(0.0, 5), (200.0, 9)], 400.0, 5),
        ([(0.0, 5), (200.0, 9)], 600.0, 9),
        ([(0.2, 5), (0.7, 6)], 300.8, 6),  # one mark per second: the later wins
    ],
)
def test_compaction_removes_what_was_superseded_long_enough_ago(
    marks: list[tuple[float, int]], now: float, compacted: int
) -> None:
    revisions = Revisions(300.0)
    for when, rv in marks:
        revisions.note(rv, when)
    assert revisions.compacted(now) == compacted


def _cluster(extra: dict[str, Any]) -> dict[str, Any]:
    return {"clusters": [{"name": "c", **extra}]}


def test_the_cluster_file_sets_the_window() -> None:
    (default,) = parse_cluster_file(_cluster({}))
    assert default.history == WatchWindow(seconds=75, min_events=100, max_events=102_400, compaction=300)
    (spec,) = parse_cluster_file(_cluster({"watchCache": {"seconds": 5, "minEvents": 3, "compaction": 1.5}}))
    assert spec.history == WatchWindow(seconds=5, min_events=3, max_events=102_400, compaction=1.5)


@pytest.mark.parametrize(
    ("window", "text"),
    [
        ({"events": 3}, "clusters[0].watchCache: unknown keys ['events']"),
        ({"minEvents": 0}, "1 <= minEvents <= maxEvents"),
        ({"minEvents": 10, "maxEvents": 5}, "1 <= minEvents <= maxEvents"),
        ({"seconds": -1}, "clusters[0].watchCache.seconds: expected a non-negative number"),
        ({"minEvents": "many"}, "clusters[0].watchCache.minEvents: expected a non-negative integer"),
    ],
)
def test_a_wrong_window_is_refused(window: dict[str, Any], text: str) -> None:
    with pytest.raises(ConfigError, match=text.replace("[", r"\[").replace("]", r"\]")):
        parse_cluster_file(_cluster({"watchCache": window}))


# ---------------------------------------------------------------- over HTTPS, with a real client

CLUSTER_FILE = {
    "clusters": [
        {
            "name": "onprem",
            "watchCache": {"seconds": 0, "minEvents": 2, "maxEvents": 2, "compaction": 0},
            "nodeGroups": [{"name": "cpu", "count": 1, "capacity": {"cpu": "4", "memory": "16Gi"}}],
        }
    ]
}


@pytest.fixture(scope="module")
def wsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    workdir = tmp_path_factory.mktemp("sim-window")
    (workdir / "clusters.yaml").write_text(json.dumps(CLUSTER_FILE))
    with SimProcess(workdir, config=workdir / "clusters.yaml") as proc:
        yield proc


@asynccontextmanager
async def core_api(sim: SimProcess) -> AsyncIterator[tuple[client.CoreV1Api, str]]:
    """A client of the cluster, and a namespace of the test's own."""
    api = await config.new_client_from_config(config_file=str(sim.kubeconfig), context="onprem")
    async with api:
        v1 = client.CoreV1Api(api)
        ns = f"w-{uuid.uuid4().hex[:8]}"
        await v1.create_namespace({"metadata": {"name": ns}})
        yield v1, ns


async def create_maps(v1: client.CoreV1Api, ns: str, *names: str) -> list[int]:
    made = [await v1.create_namespaced_config_map(ns, {"metadata": {"name": n}}) for n in names]
    return [int(m.metadata.resource_version) for m in made]


async def raw_watch(v1: client.CoreV1Api, ns: str, since: int) -> list[dict[str, Any]]:
    """Every event line of a 1-second watch from ``since``, as the server sends them."""
    async with asyncio.timeout(10):
        resp = await v1.list_namespaced_config_map(
            ns, watch=True, resource_version=str(since), timeout_seconds=1, _preload_content=False
        )
        return [json.loads(line) for line in (await resp.read()).splitlines() if line.strip()]


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_a_watch_from_beyond_the_window_gets_410_gone(wsim: SimProcess) -> None:
    async with core_api(wsim) as (v1, ns):
        listed = await v1.list_namespaced_config_map(ns)
        start = int(listed.metadata.resource_version)
        versions = await create_maps(v1, ns, "a", "b", "c", "d")
        limit = versions[-2] - 1  # two configmap events are kept: c and d
        events = await raw_watch(v1, ns, start)
        assert events == [
            {
                "type": "ERROR",
                "object": {
                    "kind": "Status",
                    "apiVersion": "v1",
                    "metadata": {},
                    "status": "Failure",
                    "message": f"too old resource version: {start} ({limit})",
                    "reason": "Expired",
                    "code": 410,
                },
            }
        ]
        # from the oldest kept event less one, the watch is served
        served = await raw_watch(v1, ns, limit)
        assert [(e["type"], e["object"]["metadata"]["name"]) for e in served] == [
            ("ADDED", "c"),
            ("ADDED", "d"),
        ]
        # kubernetes_asyncio's Watch turns the ERROR event into ApiException(410), which informers relist on
        with pytest.raises(ApiException) as err:
            async with asyncio.timeout(10), watch.Watch() as w:
                async for _ in w.stream(
                    v1.list_namespaced_config_map, ns, resource_version=str(start), timeout_seconds=1
                ):
                    pass
        assert err.value.status == 410


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_a_list_at_an_old_resource_version_answers_with_the_current_state(wsim: SimProcess) -> None:
    async with core_api(wsim) as (v1, ns):
        listed = await v1.list_namespaced_config_map(ns)
        versions = await create_maps(v1, ns, "a", "b", "c")
        old = await v1.list_namespaced_config_map(ns, resource_version=listed.metadata.resource_version)
        assert [m.metadata.name for m in old.items] == ["a", "b", "c"]
        assert int(old.metadata.resource_version) >= versions[-1]
        # an Exact match at a compacted version is refused, as etcd's compaction makes it
        with pytest.raises(ApiException) as err:
            await v1.list_namespaced_config_map(
                ns,
                resource_version=listed.metadata.resource_version,
                resource_version_match="Exact",
            )
        assert err.value.status == 410
        assert (
            json.loads(err.value.body)["message"] == "The resourceVersion for the provided list is too old."
        )


@pytest.mark.timeout(60)
@pytest.mark.asyncio
async def test_an_expired_continue_token_is_410_with_one_that_goes_on(wsim: SimProcess) -> None:
    async with core_api(wsim) as (v1, ns):
        await create_maps(v1, ns, "a", "b", "c", "d")
        first = await v1.list_namespaced_config_map(ns, limit=2)
        token = first.metadata._continue
        assert [m.metadata.name for m in first.items] == ["a", "b"] and token
        await create_maps(v1, ns, "e")  # the first page's version is superseded: compaction takes it
        with pytest.raises(ApiException) as err:
            await v1.list_namespaced_config_map(ns, limit=2, _continue=token)
        status = json.loads(err.value.body)
        assert err.value.status == 410 and status["reason"] == "Expired" and status["code"] == 410
        assert status["message"].startswith(
            "The provided continue parameter is too old to display a consistent list result. You can start "
            "a new list without the continue parameter, or use the continue token in this response"
        )
        # the token it sends back goes on after the same key, at the current state
        rest = await v1.list_namespaced_config_map(ns, limit=10, _continue=status["metadata"]["continue"])
        assert [m.metadata.name for m in rest.items] == ["c", "d", "e"]
        assert (
            rest.metadata.resource_version
            == (await v1.list_namespaced_config_map(ns)).metadata.resource_version
        )


def test_a_continue_token_of_the_current_version_still_pages(wsim: SimProcess) -> None:
    """kubectl pages with --chunk-size; nothing was written in between, so nothing is compacted."""
    ns = f"w-{uuid.uuid4().hex[:8]}"
    wsim.kubectl("create", "namespace", ns)
    for name in ("a", "b", "c"):
        wsim.kubectl("create", "configmap", name, "-n", ns)
    out = wsim.kubectl("get", "configmaps", "-n", ns, "--chunk-size=1", "-o", "name").stdout
    assert out.split() == ["configmap/a", "configmap/b", "configmap/c"]
