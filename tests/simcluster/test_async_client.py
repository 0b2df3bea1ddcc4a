"""kubernetes_asyncio, unmodified, against simcluster over HTTPS: CRUD, selectors, watches, 410, bookmarks.

Every client is built from the simcluster kubeconfig with ``new_client_from_config`` (no mocks);
every watch is bounded twice: a server-side ``timeout_seconds`` and a client-side ``asyncio.timeout``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from typing import Any

import pytest
from kubernetes_asyncio import client, config, watch
from kubernetes_asyncio.client.exceptions import ApiException

from simcluster.testing import SimProcess
from tests.harness.waits import watch_opened

pytestmark = [pytest.mark.kubectl, pytest.mark.timeout(60)]

Events = list[tuple[str, str, str]]  # (type, name, resourceVersion)


@asynccontextmanager
async def core_api(sim: SimProcess, context: str = "onprem") -> AsyncIterator[client.CoreV1Api]:
    api = await config.new_client_from_config(config_file=str(sim.kubeconfig), context=context)
    async with api:
        yield client.CoreV1Api(api)


def pod_body(name: str, **labels: str) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": labels},
        "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]},
    }


async def collect(
    func: Callable[..., Awaitable[Any]],
    *args: Any,
    until: Callable[[Events], bool] = lambda _: False,
    seconds: float = 5,
    **kwargs: Any,
) -> Events:
    """Events of a watch until ``until`` holds or the server ends it after ``seconds``."""
    events: Events = []
    async with asyncio.timeout(seconds + 5), watch.Watch() as w:
        async for ev in w.stream(func, *args, timeout_seconds=int(seconds), **kwargs):
            meta = ev["raw_object"]["metadata"]
            events.append((ev["type"], meta.get("name", ""), meta["resourceVersion"]))
            if until(events):
                break
    return events


def saw(typ: str, name: str) -> Callable[[Events], bool]:
    return lambda events: (typ, name) in {(t, n) for t, n, _ in events}


async def configmaps_watched(sim: SimProcess, since: int, namespace: str, count: int = 1) -> None:
    """Until ``count`` watches of the namespace's ConfigMaps have reached the API after request ``since``."""
    path = f"/api/v1/namespaces/{namespace}/configmaps"
    await asyncio.to_thread(watch_opened, sim.admin("onprem"), since, path, count)


async def last_request(sim: SimProcess) -> int:
    return await asyncio.to_thread(sim.admin("onprem").last_request)


@pytest.mark.asyncio
async def test_create_read_list_with_selectors(sim: SimProcess, namespace: str) -> None:
    async with core_api(sim) as v1:
        created = await v1.create_namespaced_pod(namespace, pod_body("web-1", app="web", tier="front"))
        assert isinstance(created, client.V1Pod)
        assert created.metadata.uid and created.metadata.resource_version
        assert created.metadata.namespace == namespace
        assert created.spec.restart_policy == "Always"  # defaulted by the server
        await v1.create_namespaced_pod(namespace, pod_body("web-2", app="web", tier="back"))
        await v1.create_namespaced_pod(namespace, pod_body("db-1", app="db"))

        read = await v1.read_namespaced_pod("web-1", namespace)
        assert read.metadata.uid == created.metadata.uid
        assert read.metadata.labels == {"app": "web", "tier": "front"}

        def names(pods: client.V1PodList) -> list[str]:
            return sorted(p.metadata.name for p in pods.items)

        everything = await v1.list_namespaced_pod(namespace)
        assert names(everything) == ["db-1", "web-1", "web-2"]
        assert int(everything.metadata.resource_version) >= int(created.metadata.resource_version)
        assert names(await v1.list_namespaced_pod(namespace, label_selector="app=web")) == ["web-1", "web-2"]
        assert names(await v1.list_namespaced_pod(namespace, label_selector="app in (web),tier!=front")) == [
            "web-2"
        ]
        assert names(await v1.list_namespaced_pod(namespace, label_selector="!tier")) == ["db-1"]
        assert names(await v1.list_namespaced_pod(namespace, field_selector="metadata.name=db-1")) == ["db-1"]
        assert names(
            await v1.list_namespaced_pod(
                namespace, label_selector="app=web", field_selector="metadata.name!=web-1"
            )
        ) == ["web-2"]
        # across namespaces, narrowed by the namespace field
        everywhere = await v1.list_pod_for_all_namespaces(field_selector=f"metadata.namespace={namespace}")
        assert names(everywhere) == ["db-1", "web-1", "web-2"]

        with pytest.raises(ApiException) as err:
            await v1.read_namespaced_pod("nope", namespace)
        assert err.value.status == 404


@pytest.mark.asyncio
async def test_list_then_watch_sees_added_modified_deleted(sim: SimProcess, namespace: str) -> None:
    async with core_api(sim) as v1:
        listed = await v1.list_namespaced_config_map(namespace)
        assert listed.items == []
        since = await last_request(sim)

        async def writes() -> None:
            await configmaps_watched(sim, since, namespace)
            await v1.create_namespaced_config_map(namespace, {"metadata": {"name": "cm"}, "data": {"k": "1"}})
            await v1.patch_namespaced_config_map("cm", namespace, {"data": {"k": "2"}})
            await v1.delete_namespaced_config_map("cm", namespace)

        task = asyncio.create_task(writes())
        events = await collect(
            v1.list_namespaced_config_map,
            namespace,
            resource_version=listed.metadata.resource_version,
            until=saw("DELETED", "cm"),
        )
        await task
    assert [(t, n) for t, n, _ in events] == [("ADDED", "cm"), ("MODIFIED", "cm"), ("DELETED", "cm")]
    versions = [int(rv) for _, _, rv in events]
    assert versions == sorted(versions) and len(set(versions)) == 3
    assert versions[0] > int(listed.metadata.resource_version)


@pytest.mark.asyncio
async def test_watch_pod_lifecycle_typed_objects(sim: SimProcess, namespace: str) -> None:
    """The typed pod objects a watch yields carry what the scheduler and kubelet wrote."""
    async with core_api(sim) as v1:
        rv = (await v1.list_namespaced_pod(namespace)).metadata.resource_version
        await v1.create_namespaced_pod(namespace, pod_body("p"))
        phases: list[str] = []
        async with asyncio.timeout(15), watch.Watch() as w:
            async for ev in w.stream(
                v1.list_namespaced_pod, namespace, resource_version=rv, timeout_seconds=10
            ):
                pod = ev["object"]
                assert isinstance(pod, client.V1Pod)
                phases.append(pod.status.phase)
                if pod.status.phase == "Running":
                    assert pod.spec.node_name and pod.status.pod_ip
                    break
        assert phases[0] == "Pending" and phases[-1] == "Running"
        await v1.delete_namespaced_pod("p", namespace, grace_period_seconds=0)


@pytest.mark.asyncio
async def test_resume_from_older_version_replays_missed_events(sim: SimProcess, namespace: str) -> None:
    async with core_api(sim) as v1:
        start = (await v1.list_namespaced_config_map(namespace)).metadata.resource_version
        await v1.create_namespaced_config_map(namespace, {"metadata": {"name": "a"}, "data": {"k": "1"}})
        middle = (await v1.patch_namespaced_config_map("a", namespace, {"data": {"k": "2"}})).metadata
        await v1.create_namespaced_config_map(namespace, {"metadata": {"name": "b"}})
        await v1.delete_namespaced_config_map("a", namespace)

        replay = await collect(
            v1.list_namespaced_config_map, namespace, resource_version=start, until=saw("DELETED", "a")
        )
        assert [(t, n) for t, n, _ in replay] == [
            ("ADDED", "a"),
            ("MODIFIED", "a"),
            ("ADDED", "b"),
            ("DELETED", "a"),
        ]
        # resuming later replays only what came after that version
        later = await collect(
            v1.list_namespaced_config_map,
            namespace,
            resource_version=middle.resource_version,
            until=saw("DELETED", "a"),
        )
        assert [(t, n) for t, n, _ in later] == [("ADDED", "b"), ("DELETED", "a")]
        # resourceVersion "0" (or none) starts with the current state as ADDED events
        current = await collect(
            v1.list_namespaced_config_map, namespace, resource_version="0", until=saw("ADDED", "b")
        )
        assert [(t, n) for t, n, _ in current] == [("ADDED", "b")]


@pytest.mark.asyncio
async def test_expired_watch_ends_with_410_and_relist_recovers(sim: SimProcess, namespace: str) -> None:
    async with core_api(sim) as v1:
        await v1.create_namespaced_config_map(namespace, {"metadata": {"name": "before"}})
        old = (await v1.list_namespaced_config_map(namespace)).metadata.resource_version
        seen: Events = []
        delivered = asyncio.Event()

        async def watch_until_error() -> None:
            async with asyncio.timeout(15), watch.Watch() as w:
                async for ev in w.stream(
                    v1.list_namespaced_config_map, namespace, resource_version=old, timeout_seconds=10
                ):
                    seen.append((ev["type"], ev["raw_object"]["metadata"]["name"], ""))
                    delivered.set()

        since = await last_request(sim)
        task = asyncio.create_task(watch_until_error())
        await configmaps_watched(sim, since, namespace)
        await v1.create_namespaced_config_map(namespace, {"metadata": {"name": "during"}})
        await asyncio.wait_for(delivered.wait(), 10)  # expire the watch once it has delivered "during"
        closed = await asyncio.to_thread(sim.admin("onprem").expire_watches)
        assert closed >= 1
        with pytest.raises(ApiException) as err:
            await asyncio.wait_for(task, 10)
        assert err.value.status == 410
        assert "Expired" in str(err.value.reason)
        assert [n for _, n, _ in seen] == ["during"]  # what came before the expiry was delivered

        # resuming from the old version now fails at once ...
        with pytest.raises(ApiException) as err:
            await collect(v1.list_namespaced_config_map, namespace, resource_version=old)
        assert err.value.status == 410

        # ... while a fresh list + watch works
        relisted = await v1.list_namespaced_config_map(namespace)
        assert sorted(c.metadata.name for c in relisted.items) == ["before", "during"]
        since = await last_request(sim)

        async def write_after() -> None:
            await configmaps_watched(sim, since, namespace)
            await v1.create_namespaced_config_map(namespace, {"metadata": {"name": "after"}})

        task2 = asyncio.create_task(write_after())
        fresh = await collect(
            v1.list_namespaced_config_map,
            namespace,
            resource_version=relisted.metadata.resource_version,
            until=saw("ADDED", "after"),
        )
        await task2
        assert [(t, n) for t, n, _ in fresh] == [("ADDED", "after")]


@pytest.mark.asyncio
async def test_label_selector_watch_sees_objects_enter_and_leave(sim: SimProcess, namespace: str) -> None:
    async with core_api(sim) as v1:
        await v1.create_namespaced_config_map(namespace, {"metadata": {"name": "x", "labels": {"sel": "no"}}})
        rv = (
            await v1.list_namespaced_config_map(namespace, label_selector="sel=yes")
        ).metadata.resource_version
        since = await last_request(sim)

        async def flip() -> None:
            await configmaps_watched(sim, since, namespace)
            await v1.patch_namespaced_config_map("x", namespace, {"metadata": {"labels": {"sel": "yes"}}})
            await v1.patch_namespaced_config_map("x", namespace, {"data": {"k": "v"}})
            await v1.patch_namespaced_config_map("x", namespace, {"metadata": {"labels": {"sel": "no"}}})
            await v1.patch_namespaced_config_map("x", namespace, {"data": {"k": "w"}})  # unseen

        task = asyncio.create_task(flip())
        raw: list[dict[str, Any]] = []
        async with asyncio.timeout(10), watch.Watch() as w:
            async for ev in w.stream(
                v1.list_namespaced_config_map,
                namespace,
                label_selector="sel=yes",
                resource_version=rv,
                timeout_seconds=5,
            ):
                raw.append({"type": ev["type"], **ev["raw_object"]})
                if ev["type"] == "DELETED":
                    break
        await task
        assert [e["type"] for e in raw] == ["ADDED", "MODIFIED", "DELETED"]
        # leaving the selector: DELETED carries the last object that matched, at the new version
        left = raw[-1]
        assert left["metadata"]["labels"] == {"sel": "yes"}
        assert left["data"] == {"k": "v"}
        current = await v1.read_namespaced_config_map("x", namespace)
        assert int(left["metadata"]["resourceVersion"]) > int(raw[1]["metadata"]["resourceVersion"])
        assert int(left["metadata"]["resourceVersion"]) < int(current.metadata.resource_version)


@pytest.fixture(scope="module")
def fast_bookmarks(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    """A one-cluster simcluster that sends watch bookmarks every second."""
    workdir = tmp_path_factory.mktemp("sim-bookmarks")
    cluster_file = workdir / "clusters.yaml"
    cluster = {
        "name": "onprem",
        "nodeGroups": [{"name": "cpu", "count": 1, "capacity": {"cpu": "8", "memory": "32Gi"}}],
        "timings": {"bookmark": 1},
    }
    cluster_file.write_text(json.dumps({"clusters": [cluster]}))  # JSON is YAML
    with SimProcess(workdir, config=cluster_file) as proc:
        yield proc


@pytest.mark.asyncio
async def test_watch_bookmarks(fast_bookmarks: SimProcess) -> None:
    sim = fast_bookmarks
    async with core_api(sim) as v1:
        ns = "bookmarks"
        await v1.create_namespace({"metadata": {"name": ns}})
        rv = (await v1.list_namespaced_config_map(ns)).metadata.resource_version
        since = await last_request(sim)

        async def write() -> None:  # once both watches below are there
            await configmaps_watched(sim, since, ns, count=2)
            await v1.create_namespaced_config_map(ns, {"metadata": {"name": "cm"}})

        async def with_bookmarks() -> tuple[list[dict[str, Any]], str]:
            raw: list[dict[str, Any]] = []
            async with asyncio.timeout(10), watch.Watch() as w:
                async for ev in w.stream(
                    v1.list_namespaced_config_map,
                    ns,
                    resource_version=rv,
                    allow_watch_bookmarks=True,
                    timeout_seconds=4,
                ):
                    raw.append(ev)
                    if ev["type"] == "BOOKMARK" and any(e["type"] == "ADDED" for e in raw):
                        break
                return raw, str(w.resource_version)

        # beside it, the same watch without allowWatchBookmarks: it never sees one
        raw_and_rv, plain, _ = await asyncio.gather(
            with_bookmarks(),
            collect(v1.list_namespaced_config_map, ns, resource_version=rv, seconds=2),
            write(),
        )
        raw, resumed_at = raw_and_rv
        assert [(t, n) for t, n, _ in plain] == [("ADDED", "cm")]
        types = [e["type"] for e in raw]
        assert types[types.index("ADDED") :] == ["ADDED", "BOOKMARK"]
        added, bookmark = raw[-2]["raw_object"], raw[-1]["raw_object"]
        assert bookmark["kind"] == "ConfigMap" and bookmark["apiVersion"] == "v1"
        assert set(bookmark) == {"kind", "apiVersion", "metadata"}  # no object, only a version
        assert int(bookmark["metadata"]["resourceVersion"]) >= int(added["metadata"]["resourceVersion"])
        assert resumed_at == bookmark["metadata"]["resourceVersion"]  # the client resumes from bookmarks

        # resuming from a bookmark's version replays nothing old: only further bookmarks come
        again = await collect(
            v1.list_namespaced_config_map,
            ns,
            resource_version=resumed_at,
            allow_watch_bookmarks=True,
            until=lambda events: bool(events),
            seconds=3,
        )
        assert [t for t, _, _ in again] == ["BOOKMARK"]


@pytest.mark.asyncio
async def test_eks_context_through_exec_plugin(sim: SimProcess, namespace: str) -> None:
    async with core_api(sim, context="eks") as v1:
        nodes = await v1.list_node()
        assert len(nodes.items) == 2
        assert all(n.metadata.name.endswith(".ec2.internal") for n in nodes.items)
        cm = await v1.create_namespaced_config_map(namespace, {"metadata": {"name": "on-eks"}})
        assert cm.metadata.namespace == namespace
    requests = await asyncio.to_thread(sim.admin("eks").requests)
    mine = [r for r in requests if r["path"] == f"/api/v1/namespaces/{namespace}/configmaps"]
    assert mine and mine[-1]["method"] == "POST" and mine[-1]["status"] == 201
    assert mine[-1]["user"] == "admin"  # authenticated with the exec plugin's minted token
