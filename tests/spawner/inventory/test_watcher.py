"""ClusterWatcher against a simcluster of its own: events, completions, 410 relists, resumes, outages.

Watches are kept short (``watch_timeout=2``) and the on-prem cluster sends a bookmark every second,
so every path (normal end, bookmark, 410, connection refused, 503) happens within a few seconds.
LISTs are counted in simcluster's request log: GET /api/v1/pods or /api/v1/nodes without ``watch``.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import yaml
from kubernetes_asyncio import client, config
from kubernetes_asyncio.client.exceptions import ApiException

from simcluster.testing import AdminClient, SimProcess
from spawner.core.model import NodeCapacity, Pool, Role
from spawner.inventory.index import build_nodes
from spawner.inventory.watcher import POD_FIELD_SELECTOR, ClusterWatcher, decode_event
from tests.spawner.inventory.hang import hang_with_changes

pytestmark = pytest.mark.timeout(90)

A100 = "NVIDIA-A100-SXM4-80GB"
L40S = "NVIDIA-L40S"
POOLS = (Pool("a100", {"nvidia.com/gpu.product": A100}), Pool("l40s", {"nvidia.com/gpu.product": L40S}))
WATCH_TIMEOUT = 2
BACKOFF_MAX = 1.0
Json = dict[str, Any]


@pytest.fixture(scope="module")
def isim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    """The default topology, with a bookmark every second on-prem; faults stay in this module."""
    workdir = tmp_path_factory.mktemp("sim-inventory")
    clusters = yaml.safe_load((Path(__file__).parents[3] / "simcluster" / "clusters.yaml").read_text())
    onprem = next(c for c in clusters["clusters"] if c["name"] == "onprem")
    onprem["timings"] = {**onprem.get("timings", {}), "bookmark": 1}
    (workdir / "clusters.yaml").write_text(json.dumps(clusters))
    with SimProcess(workdir, config=workdir / "clusters.yaml") as proc:
        yield proc


@pytest.fixture
def admin(isim: SimProcess) -> Iterator[AdminClient]:
    admin = isim.admin("onprem")
    yield admin
    admin.clear_faults()


@pytest_asyncio.fixture
async def api(isim: SimProcess) -> AsyncIterator[client.ApiClient]:
    api_client = await config.new_client_from_config(config_file=str(isim.kubeconfig), context="onprem")
    async with api_client:
        yield api_client


@pytest_asyncio.fixture
async def v1(api: client.ApiClient) -> client.CoreV1Api:
    return client.CoreV1Api(api)


@pytest_asyncio.fixture
async def ns(v1: client.CoreV1Api) -> AsyncIterator[str]:
    name = f"inv-{uuid.uuid4().hex[:8]}"
    await v1.create_namespace({"metadata": {"name": name}})
    yield name
    await v1.delete_namespace(name)


def make_watcher(api: Any, **kwargs: Any) -> ClusterWatcher:
    options = {
        "watch_timeout": WATCH_TIMEOUT,
        "request_timeout": 5.0,
        "connect_timeout": 2.0,
        "backoff_start": 0.1,
        "backoff_max": BACKOFF_MAX,
        **kwargs,
    }
    return ClusterWatcher("onprem", Role.ONPREM, POOLS, api, **options)


def inventory_tasks() -> list[asyncio.Task[Any]]:
    return [t for t in asyncio.all_tasks() if t.get_name().startswith("inventory-") and not t.done()]


@pytest_asyncio.fixture
async def watcher(api: client.ApiClient) -> AsyncIterator[ClusterWatcher]:
    w = make_watcher(api)
    w.start()
    async with asyncio.timeout(15):
        await w.wait_synced()
    yield w
    await w.stop()
    assert not w.running and inventory_tasks() == []


async def eventually(check: Callable[[], Any], seconds: float = 15, what: str = "") -> None:
    """Poll ``check`` (sync or async) until it is truthy; fail after ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        result = check()
        if isinstance(result, Awaitable):
            result = await result
        if result:
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not within {seconds}s: {what or check}")


async def raw_items(method: Callable[..., Awaitable[Any]], **kwargs: Any) -> list[Json]:
    resp = await method(_preload_content=False, _request_timeout=10, **kwargs)
    async with resp:
        return list(json.loads(await resp.read())["items"])


async def truth(v1: client.CoreV1Api) -> tuple[NodeCapacity, ...]:
    """The inventory computed from fresh LISTs (these LISTs show in the request log: count first)."""
    nodes = await raw_items(v1.list_node)
    pods = await raw_items(v1.list_pod_for_all_namespaces, field_selector=POD_FIELD_SELECTOR)
    return build_nodes(nodes, pods, POOLS)


async def matches_truth(w: ClusterWatcher, v1: client.CoreV1Api) -> bool:
    return w.snapshot().nodes == await truth(v1)


def lists_since(admin: AdminClient, seq: int) -> list[str]:
    return [
        r["path"]
        for r in admin.requests(seq)
        if r["method"] == "GET"
        and r["path"] in {"/api/v1/pods", "/api/v1/nodes"}
        and "watch" not in r["query"]
    ]


def watches_since(admin: AdminClient, seq: int, path: str) -> list[Json]:
    return [r for r in admin.requests(seq) if r["path"] == path and "watch" in r["query"]]


def expected_attempts(seconds: float) -> float:
    """Attempts of both streams in ``seconds`` of failures: full jitter waits BACKOFF_MAX/2 on average
    once it has grown (0.1, 0.2, 0.4, 0.8 s limits first)."""
    return 2 * (seconds / (BACKOFF_MAX / 2) + 3)


def gpus(w: ClusterWatcher, product: str) -> int:
    return sum(n.gpus_requested for n in w.snapshot().nodes if n.gpu_product == product)


def gpu_pod(name: str, count: int, product: str, labels: Json | None = None, **annotations: str) -> Json:
    return {
        "metadata": {"name": name, "labels": labels or {}, "annotations": annotations},
        "spec": {
            "restartPolicy": "Never" if annotations else "Always",
            "nodeSelector": {"nvidia.com/gpu.product": product},
            "containers": [
                {
                    "name": "main",
                    "image": "busybox:1.36",
                    "resources": {
                        "limits": {"nvidia.com/gpu": str(count)},
                        "requests": {"cpu": "2", "memory": "8Gi"},
                    },
                }
            ],
        },
    }


# ---------------------------------------------------------------------------- without simcluster


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b'{"type":"ADDED","object":{"metadata":{"name":"p"}}}\n', ("ADDED", {"metadata": {"name": "p"}})),
        (
            '{"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"42"}}}',
            ("BOOKMARK", {"metadata": {"resourceVersion": "42"}}),
        ),
        (b'{"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired","message":"old"}}', 410),
        (b'{"type":"ERROR","object":{"kind":"Status","code":500,"reason":"InternalError"}}', 500),
        (b'{"type":"ERROR","object":"no status"}', 500),
        (b'{"type":"SURPRISE","object":{}}', 500),
        (b'{"kind":"Status","code":403}', 500),
        (b"not json", 500),
    ],
)
def test_decode_event(line: bytes | str, expected: tuple[str, Json] | int) -> None:
    if isinstance(expected, int):
        with pytest.raises(ApiException) as err:
            decode_event(line)
        assert err.value.status == expected
    else:
        assert decode_event(line) == expected


def test_refuses_an_unknown_api_source() -> None:
    with pytest.raises(TypeError):
        ClusterWatcher("c", Role.ONPREM, (), "https://example.org")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------- against simcluster


@pytest.mark.asyncio
async def test_lists_the_cluster(watcher: ClusterWatcher, v1: client.CoreV1Api) -> None:
    snap = watcher.snapshot()
    assert (snap.cluster, snap.role, snap.synced, snap.pools) == ("onprem", Role.ONPREM, True, POOLS)
    assert [(n.name, n.pool, n.gpu_product, n.gpus_allocatable, n.usable) for n in snap.nodes] == [
        ("dgx-a100-1", "a100", A100, 8, True),
        ("dgx-a100-2", "a100", A100, 8, True),
        ("l40s-1", "l40s", L40S, 4, True),
        ("l40s-2", "l40s", L40S, 4, True),
    ]
    assert snap.nodes[0].gpu_memory_mib == 81920 and snap.nodes[0].cpu_allocatable == 128.0
    assert watcher.error is None and watcher.last_event is not None and snap.age < 5
    assert await matches_truth(watcher, v1)


@pytest.mark.asyncio
async def test_snapshot_follows_gpu_pods_of_every_kind(
    watcher: ClusterWatcher, v1: client.CoreV1Api, ns: str
) -> None:
    a100, l40s = gpus(watcher, A100), gpus(watcher, L40S)
    notebook = {
        "component": "singleuser-server",
        "app": "jupyterhub",
        "hub.jupyter.org/username": "alice",
        "hub.jupyter.org/servername": "",
    }
    await v1.create_namespaced_pod(ns, gpu_pod("jupyter-alice", 2, A100, notebook))
    await v1.create_namespaced_pod(
        ns, gpu_pod("wf-step-1", 4, L40S, {"workflows.argoproj.io/workflow": "wf"})
    )
    await v1.create_namespaced_pod(ns, gpu_pod("katib-trial", 1, A100, {"katib.kubeflow.org/trial": "t"}))
    await eventually(
        lambda: (gpus(watcher, A100), gpus(watcher, L40S)) == (a100 + 3, l40s + 4), 10, "GPUs held"
    )

    async def alice_running() -> bool:
        server = watcher.server("alice")
        return server is not None and server.phase == "Running" and server.ip is not None

    await eventually(alice_running, 10, "alice's server running")
    (server,) = watcher.servers("alice")
    pod = await v1.read_namespaced_pod("jupyter-alice", ns)
    assert (server.namespace, server.pod, server.ip, server.node) == (
        ns,
        "jupyter-alice",
        pod.status.pod_ip,
        pod.spec.node_name,
    )
    assert watcher.servers("bob") == ()
    await eventually(lambda: matches_truth(watcher, v1), 10, "snapshot == fresh LISTs")

    for name in ("jupyter-alice", "wf-step-1", "katib-trial"):
        await v1.delete_namespaced_pod(name, ns, grace_period_seconds=0)
    await eventually(lambda: (gpus(watcher, A100), gpus(watcher, L40S)) == (a100, l40s), 10, "GPUs released")
    await eventually(lambda: watcher.servers("alice") == (), 10, "alice's server gone")


@pytest.mark.asyncio
async def test_completed_pod_releases_its_gpus(
    watcher: ClusterWatcher, v1: client.CoreV1Api, ns: str
) -> None:
    before = gpus(watcher, L40S)
    body = gpu_pod("train-once", 2, L40S, **{"simcluster.hybridhub.io/exit-after": "0"})
    await v1.create_namespaced_pod(ns, body)

    async def succeeded() -> bool:
        return bool((await v1.read_namespaced_pod("train-once", ns)).status.phase == "Succeeded")

    await eventually(succeeded, 10, "the pod completes")
    await eventually(lambda: gpus(watcher, L40S) == before, 5, "its GPUs released while the pod still exists")
    assert (await v1.read_namespaced_pod("train-once", ns)).spec.node_name  # it was bound, and still is
    assert await matches_truth(watcher, v1)


@pytest.mark.asyncio
async def test_watch_that_ends_resumes_without_a_list(
    watcher: ClusterWatcher, admin: AdminClient, v1: client.CoreV1Api, ns: str
) -> None:
    lists = watcher.lists
    seq = admin.last_request()
    # a change elsewhere moves the resourceVersion; bookmarks carry it to our watches
    cm = await v1.create_namespaced_config_map(ns, {"metadata": {"name": "cm"}, "data": {"k": "v"}})
    # an interval, not a condition: what is checked is that nothing relists while watches end and resume
    await asyncio.sleep(3 * WATCH_TIMEOUT + 1)
    assert lists_since(admin, seq) == [] and watcher.lists == lists
    for path in ("/api/v1/nodes", "/api/v1/pods"):
        watches = watches_since(admin, seq, path)
        assert len(watches) >= 3, watches
        versions = [int(w["query"]["resourceVersion"]) for w in watches]
        assert versions == sorted(versions)
        assert versions[-1] >= int(cm.metadata.resource_version)  # from a bookmark: no pod/node changed
        assert all(w["query"]["allowWatchBookmarks"].lower() == "true" for w in watches)
        assert all(w["query"]["timeoutSeconds"] == str(WATCH_TIMEOUT) for w in watches)
    pods = watches_since(admin, seq, "/api/v1/pods")
    assert {w["query"]["fieldSelector"] for w in pods} == {"status.phase!=Succeeded,status.phase!=Failed"}
    assert watcher.error is None and watcher.failures == 0


@pytest.mark.asyncio
async def test_expired_watches_relist_exactly_once(
    watcher: ClusterWatcher, admin: AdminClient, v1: client.CoreV1Api, ns: str
) -> None:
    lists = watcher.lists
    seq = admin.last_request()
    assert admin.expire_watches() >= 2  # ours, at least
    await eventually(lambda: watcher.lists == lists + 2, 10, "a relist of nodes and of pods")
    # an interval, not a condition: the watches go on from the new lists and resume without listing again
    await asyncio.sleep(2 * WATCH_TIMEOUT + 1)
    assert sorted(lists_since(admin, seq)) == ["/api/v1/nodes", "/api/v1/pods"]
    assert watcher.lists == lists + 2 and watcher.synced and watcher.error is None
    # and it stays correct
    before = gpus(watcher, A100)
    await v1.create_namespaced_pod(ns, gpu_pod("after-expiry", 8, A100))
    await eventually(lambda: gpus(watcher, A100) == before + 8, 10, "a pod created after the relist")
    await eventually(lambda: matches_truth(watcher, v1), 10, "snapshot == fresh LISTs")
    await v1.delete_namespaced_pod("after-expiry", ns, grace_period_seconds=0)
    await eventually(lambda: gpus(watcher, A100) == before, 10, "released")


@pytest.mark.asyncio
async def test_a_410_status_relists_too(api: client.ApiClient, admin: AdminClient) -> None:
    """410 as the HTTP status of a watch request (not an ERROR event in a 200 stream) relists as well."""
    pod_watches = 0

    async def call(fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        nonlocal pod_watches
        if kwargs.get("watch") and kwargs.get("field_selector"):
            pod_watches += 1
            if pod_watches == 2:  # the first resume
                raise ApiException(status=410, reason="Expired: too old resource version")
        return await fn(*args, **kwargs)

    seq = admin.last_request()
    w = make_watcher(api, call=call)
    w.start()
    try:
        await eventually(lambda: w.lists == 3, 3 * WATCH_TIMEOUT + 5, "pods listed again")
        assert sorted(lists_since(admin, seq)) == ["/api/v1/nodes", "/api/v1/pods", "/api/v1/pods"]
        assert w.synced and w.error is None and w.failures == 0
    finally:
        await w.stop()


@pytest.mark.asyncio
async def test_down_backs_off_never_gives_up_and_recovers(
    isim: SimProcess, admin: AdminClient, v1: client.CoreV1Api, ns: str
) -> None:
    """Hours of outage in miniature, with an async CoreV1Api factory as a credential-renewing client has."""
    factory_calls = 0
    api_client = await config.new_client_from_config(config_file=str(isim.kubeconfig), context="onprem")

    async def core_v1() -> client.CoreV1Api:
        nonlocal factory_calls
        factory_calls += 1
        return client.CoreV1Api(api_client)

    w = make_watcher(core_v1)
    w.start()
    try:
        async with asyncio.timeout(15):
            await w.wait_synced()
        before = gpus(w, L40S)
        # a job that ends while the API is down: its GPUs must be released once the watcher is back
        await v1.create_namespaced_pod(
            ns, gpu_pod("short-job", 4, L40S, **{"simcluster.hybridhub.io/exit-after": "3"})
        )
        await eventually(lambda: gpus(w, L40S) == before + 4, 10, "the job holds its GPUs")
        lists, failures = w.lists, w.failures
        admin.set_faults(down=True)
        started = time.monotonic()
        await asyncio.sleep(6)  # an interval: the retries made over it are what is measured
        elapsed = time.monotonic() - started
        failed = w.failures - failures
        print(f"down {elapsed:.1f}s: {failed} failed attempts ({failed / elapsed:.1f}/s, both streams)")
        # backoff, and it keeps trying: a loop without backoff makes thousands of attempts here
        assert 4 <= failed <= expected_attempts(elapsed) * 2
        assert w.error is not None and "onnect" in w.error
        snap = w.snapshot()
        assert snap.synced and len(snap.nodes) == 4 and snap.age >= 4  # stale, still served
        assert all(t.get_name().startswith("inventory-") for t in inventory_tasks()) and w.running

        seq = admin.last_request()
        admin.clear_faults()
        await eventually(lambda: w.error is None, 3 * BACKOFF_MAX + 5, "the watches reopen")
        await eventually(lambda: gpus(w, L40S) == before, 10, "the job's completion seen after the outage")
        assert w.snapshot().age < 2
        assert lists_since(admin, seq) == [] and w.lists == lists  # resumed, no relist needed
        await eventually(lambda: matches_truth(w, v1), 10, "snapshot == fresh LISTs")
        assert factory_calls > failed  # asked before every attempt
    finally:
        await w.stop()
        await api_client.close()
    assert inventory_tasks() == []


@pytest.mark.asyncio
async def test_server_errors_back_off_at_a_bounded_rate(api: client.ApiClient, admin: AdminClient) -> None:
    w = make_watcher(api)
    w.start()
    try:
        async with asyncio.timeout(15):
            await w.wait_synced()
        admin.set_faults(errorRate=1.0, errorCode=503)
        await eventually(lambda: w.error is not None, 3 * WATCH_TIMEOUT, "a failed resume")
        seq = admin.last_request()
        await asyncio.sleep(6)  # an interval: the request rate over it is what is measured
        requests = admin.requests(seq)
        rate = len(requests) / 6
        print(f"503s: {len(requests)} requests in 6 s ({rate:.1f}/s, both streams)")
        assert {r["status"] for r in requests} == {503}
        assert 4 <= len(requests) <= expected_attempts(6) * 2
        assert w.error is not None and "503" in w.error
        admin.clear_faults()
        await eventually(lambda: w.error is None, 3 * BACKOFF_MAX + 5, "back")
        assert w.synced
    finally:
        await w.stop()


async def watched_pod(w: ClusterWatcher, v1: client.CoreV1Api, ns: str, name: str) -> None:
    """Create a 1-GPU L40S pod and wait until the watcher counts it."""
    before = gpus(w, L40S)
    await v1.create_namespaced_pod(ns, gpu_pod(name, 1, L40S))
    await eventually(lambda: gpus(w, L40S) == before + 1, 10, f"{name} counted")


@pytest.mark.asyncio
async def test_a_quiet_watch_lives_on_bookmarks_past_its_read_timeout(
    api: client.ApiClient, admin: AdminClient
) -> None:
    """A bookmark is data: a watch of a cluster where nothing changes is not dropped for silence."""
    seq = admin.last_request()
    w = make_watcher(api, watch_timeout=30, read_timeout=2.5)
    w.start()
    try:
        await eventually(lambda: len([r for r in admin.requests(seq) if r["watch"]]) == 2, 10, "both watches")
        seq = admin.last_request()
        await asyncio.sleep(6)  # an interval: what is checked is that no watch is dropped over it
        assert w.failures == 0 and w.error is None
        assert [r for r in admin.requests(seq) if r["watch"]] == []  # the same two watches carried on
        assert w.age() < 2  # bookmarks, every second on this cluster
    finally:
        await w.stop()


@pytest.mark.asyncio
async def test_a_watch_silent_behind_a_hung_link_is_dropped_and_resumed_from_its_version(
    api: client.ApiClient,
    admin: AdminClient,
    v1: client.CoreV1Api,
    ns: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Watches that the server would keep open for 30 s, behind a link that hangs: without a read
    timeout they stay open and silent; with one (2 s) each is dropped, retried with backoff while the
    link hangs, and resumed from its resourceVersion once it is back. Changes the API server made
    during the hang then arrive: no relist."""
    w = make_watcher(api, watch_timeout=30, read_timeout=2.0, connect_timeout=1.0)
    w.start()
    try:
        async with asyncio.timeout(15):
            await w.wait_synced()
        await watched_pod(w, v1, ns, "doomed")
        a100, l40s, lists = gpus(w, A100), gpus(w, L40S), w.lists
        with caplog.at_level(logging.WARNING, logger="spawner.inventory.watcher"):
            changes = await hang_with_changes(admin, v1, ns, gpu_pod("born", 2, A100), "doomed")
            await eventually(
                lambda: caplog.text.count("watch silent for 2 s (read timeout)") >= 2,
                2.0 + 2,
                "both watches dropped for silence",
            )
        assert (gpus(w, A100), gpus(w, L40S)) == (a100, l40s)  # stale: neither change seen
        seq = admin.last_request()
        admin.clear_faults()
        back = time.monotonic()
        await eventually(lambda: (gpus(w, A100), gpus(w, L40S)) == (a100 + 2, l40s - 1), 10, "both changes")
        print(f"inventory current {time.monotonic() - back:.1f} s after the link returned")
        assert lists_since(admin, seq) == [] and w.lists == lists  # resumed, not relisted
        await eventually(lambda: matches_truth(w, v1), 10, "snapshot == fresh LISTs")
        await changes.answered()
    finally:
        await w.stop()
    await v1.delete_namespaced_pod("born", ns, grace_period_seconds=0)


@pytest.mark.asyncio
async def test_resume_cuts_a_backoff_short_once_the_api_answers(
    api: client.ApiClient, admin: AdminClient, v1: client.CoreV1Api, ns: str
) -> None:
    """After a hang, streams wait out backoffs of up to 30 s here; resume() starts them again at once,
    from their resourceVersions, and returns when both have answered."""
    w = make_watcher(
        api, watch_timeout=30, read_timeout=1.5, connect_timeout=1.0, backoff_start=30, backoff_max=30
    )
    w.start()
    try:
        async with asyncio.timeout(15):
            await w.wait_synced()
        await watched_pod(w, v1, ns, "doomed")
        a100, l40s, lists = gpus(w, A100), gpus(w, L40S), w.lists
        changes = await hang_with_changes(admin, v1, ns, gpu_pod("born", 2, A100), "doomed")
        # dropped for silence, then a connection that times out: each stream is now in its backoff
        await eventually(lambda: w.failures >= 4, 1.5 + 1.0 + 3, "two failures per stream")
        admin.clear_faults()
        resumed_at = time.monotonic()
        assert await w.resume(changes.hung_at, within=5) == 2
        took = time.monotonic() - resumed_at
        assert took < 2, f"resume() took {took:.1f} s"
        assert w.error is None and w.age() < took + 0.5
        await eventually(lambda: (gpus(w, A100), gpus(w, L40S)) == (a100 + 2, l40s - 1), 2, "both changes")
        assert w.lists == lists  # from their resourceVersions
        assert await w.resume(changes.hung_at, within=5) == 0  # both have had news since
        await changes.answered()
    finally:
        await w.stop()
    assert inventory_tasks() == []
    await v1.delete_namespaced_pod("born", ns, grace_period_seconds=0)


@pytest.mark.asyncio
async def test_call_wrapper_sees_401_and_can_renew_credentials(isim: SimProcess) -> None:
    """A ClusterClient-style ``call`` gets ApiException(401) for a stale token and retries with a new one."""
    api_client = await config.new_client_from_config(config_file=str(isim.kubeconfig), context="onprem")
    key = next(iter(api_client.configuration.api_key))
    good = api_client.configuration.api_key[key]
    api_client.configuration.api_key[key] = "Bearer stale"
    statuses: list[int] = []

    async def call(fn: Callable[..., Awaitable[Any]], *args: Any, **kwargs: Any) -> Any:
        try:
            return await fn(*args, **kwargs)
        except ApiException as err:
            statuses.append(err.status)
            if err.status != 401:
                raise
        api_client.configuration.api_key[key] = good
        return await fn(*args, **kwargs)

    w = make_watcher(api_client, call=call)
    w.start()
    try:
        async with asyncio.timeout(15):
            await w.wait_synced()
        assert statuses in ([401], [401, 401]) and w.failures == 0  # once per stream at most
    finally:
        await w.stop()
        await api_client.close()


@pytest.mark.asyncio
async def test_not_ready_node_is_not_usable(watcher: ClusterWatcher, admin: AdminClient) -> None:
    def node(name: str) -> NodeCapacity:
        return next(n for n in watcher.snapshot().nodes if n.name == name)

    admin.node_not_ready("l40s-1")
    try:
        await eventually(lambda: not node("l40s-1").usable, 10, "l40s-1 unusable")
        lost = node("l40s-1")
        assert (lost.ready, lost.schedulable, lost.gpus_free, lost.gpus_allocatable) == (False, False, 0, 4)
        assert node("l40s-2").usable
    finally:
        admin.node_ready("l40s-1")
    await eventually(lambda: node("l40s-1").usable, 10, "l40s-1 back")


@pytest.mark.asyncio
async def test_stop_leaves_nothing_running(api: client.ApiClient, admin: AdminClient) -> None:
    seq = admin.last_request()
    w = make_watcher(api)
    w.start()
    with pytest.raises(RuntimeError):
        w.start()
    assert len(inventory_tasks()) == 2
    async with asyncio.timeout(15):
        await w.wait_synced()
    # stop() must end tasks that are inside their watch requests, not only ones between requests
    await eventually(lambda: sum(1 for r in admin.requests(seq) if r["watch"]) >= 2, 10, "both watches open")
    await w.stop()
    assert not w.running and inventory_tasks() == []
    assert len(w.snapshot().nodes) == 4  # the last inventory stays readable
    await w.stop()  # twice is fine


@pytest.mark.asyncio
async def test_removed_node_leaves_the_inventory(watcher: ClusterWatcher, admin: AdminClient) -> None:
    """Last in the module: the node does not come back."""
    admin.remove_node("dgx-a100-2")
    await eventually(lambda: [n.name for n in watcher.snapshot().nodes] == ["dgx-a100-1", "l40s-1", "l40s-2"])
