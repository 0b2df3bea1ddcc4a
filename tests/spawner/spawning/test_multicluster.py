"""Which reflectors HybridSpawner starts again: those that gave up, and those that wait out a retry
once their cluster answers; not those starting or stopped."""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import AsyncIterator, Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import pytest_asyncio
from jupyterhub.objects import Hub
from traitlets.config import Config

from simcluster.testing import SimProcess
from spawner.hybrid import HybridSpawner
from spawner.spawning.multicluster import (
    _POLLING,
    PROBE_TIMEOUT,
    RESTART_EVERY,
    ClusterPodReflector,
    ClusterUnreachable,
    EventsByPod,
    MultiClusterSpawner,
    gave_up,
    stalled,
)
from tests.spawner.in_process import StandInUser


async def reflector(*, loaded: str, task: str, stopping: bool = False) -> Any:
    """A stand-in with the three attributes KubeSpawner's ResourceReflector has for this."""
    first_load: asyncio.Future[None] = asyncio.get_running_loop().create_future()
    if loaded == "ok":
        first_load.set_result(None)
    elif loaded == "failed":
        first_load.set_exception(RuntimeError("LIST failed"))
    watch = None
    if task != "none":
        watch = asyncio.ensure_future(asyncio.sleep(0 if task == "done" else 60))
        if task == "done":
            await watch
    return SimpleNamespace(_stopping=stopping, first_load_future=first_load, watch_task=watch)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("loaded", "task", "stopping", "dead"),
    [
        ("ok", "running", False, False),  # watching
        ("pending", "none", False, False),  # its first LIST is in flight: others wait for it
        ("ok", "done", False, True),  # the watch gave up after a minute of errors
        ("failed", "none", False, True),  # the first LIST failed (the cluster was down)
        ("ok", "none", False, True),
        ("ok", "done", True, False),  # stopped on purpose
    ],
)
async def test_gave_up(loaded: str, task: str, stopping: bool, dead: bool) -> None:
    r = await reflector(loaded=loaded, task=task, stopping=stopping)
    try:
        assert gave_up(r) is dead
    finally:
        if r.watch_task is not None:
            r.watch_task.cancel()
        if loaded == "failed":
            r.first_load_future.exception()  # retrieved


NOW = 5000.0


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("loaded", "task", "stopping", "failing", "listed_ago", "answered", "expected"),
    [
        ("ok", "running", False, False, 1.0, True, False),  # watching
        ("ok", "running", False, True, 1.0, True, True),  # its last LIST failed: it waits out a retry
        ("ok", "running", False, False, 20.0, True, False),  # at the limit: twice the watch's 10 s
        ("ok", "running", False, False, 20.5, True, True),  # no LIST for longer: a watch or LIST hangs
        ("ok", "running", False, False, 1.0, False, False),  # a LIST under way
        ("ok", "running", False, False, 10.0, False, False),  # at the limit: the watch's 10 s
        ("ok", "running", False, False, 10.5, False, True),  # a LIST unanswered for longer hangs
        ("ok", "running", True, True, 60.0, True, False),  # stopped on purpose
        ("pending", "none", False, True, 60.0, False, False),  # its first LIST is in flight
        ("failed", "none", False, True, 60.0, False, False),  # gave up: gave_up's
        ("ok", "done", False, True, 60.0, True, False),  # gave up: gave_up's
        ("ok", "none", False, True, 60.0, True, False),
    ],
)
async def test_stalled(
    loaded: str, task: str, stopping: bool, failing: bool, listed_ago: float, answered: bool, expected: bool
) -> None:
    r = await reflector(loaded=loaded, task=task, stopping=stopping)
    r.timeout_seconds = 10
    r.failing_since = NOW - 30 if failing else None
    r.listed_at = NOW - listed_ago
    r.answered_at = r.listed_at + 0.01 if answered else r.listed_at - 10  # the last LIST's, or the one before
    try:
        assert stalled(r, NOW) is expected
    finally:
        if r.watch_task is not None:
            r.watch_task.cancel()
        if loaded == "failed":
            r.first_load_future.exception()


@pytest.mark.asyncio
async def test_a_watch_without_a_server_side_timeout_is_never_overdue() -> None:
    r = await reflector(loaded="ok", task="running")
    r.timeout_seconds, r.failing_since, r.listed_at = 0, None, NOW - 3600
    try:
        assert not stalled(r, NOW)
    finally:
        r.watch_task.cancel()


# ---------------------------------------------------------------- against simcluster


async def until(what: str, check: Callable[[], Any], within: float = 20.0) -> Any:
    """Until ``check()`` gives a true value; fail naming ``what`` after ``within`` seconds."""
    deadline = time.monotonic() + within
    while not (value := check()):
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {within}s")
        await asyncio.sleep(0.05)
    return value


@pytest_asyncio.fixture
async def onprem(sim: SimProcess, namespace: str) -> AsyncIterator[HybridSpawner]:
    """A spawner pointed at simcluster's on-prem cluster (``namespace``); its watches stopped after."""
    config = Config()
    config.ClusterSet.clusters = [
        {
            "name": "onprem",
            "role": "onprem",
            "kubeconfig": str(sim.kubeconfig),
            "context": "onprem",
            "namespace": namespace,
            "hub_connect_url": "http://169.254.1.1:8081",
            "home_storage": {"kind": "none"},
            "pools": [{"name": "cpu"}],
        }
    ]
    spawner = HybridSpawner(config=config, user=StandInUser("rob"), hub=Hub(base_url="/hub/"))
    await spawner.use_cluster("onprem")
    yield spawner
    await asyncio.to_thread(sim.admin("onprem").clear_faults)
    for key, watch in list(MultiClusterSpawner.reflectors.items()):
        if namespace in key:
            await watch.stop()
            del MultiClusterSpawner.reflectors[key]
    await (await spawner.cluster_client("onprem")).close()
    MultiClusterSpawner._clients.clear()
    MultiClusterSpawner._unanswered.clear()  # keyed by event loop: a later test's loop may reuse the id


def notebook_pod(namespace: str, name: str) -> str:
    meta = {"name": name, "namespace": namespace, "labels": {"component": "singleuser-server"}}
    sleeper = [{"name": "notebook", "image": "x", "command": ["sleep", "600"]}]
    return json.dumps({"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": {"containers": sleeper}})


@pytest.mark.asyncio
@pytest.mark.timeout(90)
async def test_a_watch_waiting_out_a_retry_starts_again_once_its_cluster_answers(
    onprem: HybridSpawner, sim: SimProcess, namespace: str
) -> None:
    first = await onprem._start_watching_pods()
    admin = sim.admin("onprem")
    await asyncio.to_thread(admin.set_faults, down=True)
    await until("the pod watch to fail its LIST", lambda: first.failing_since is not None)
    # down: the watch stays as it is (the check that the cluster answers fails)
    assert await onprem._start_watching_pods() is first
    # KubeSpawner's retries come 0.2, 0.4, 0.8, 1.6, 3.2, 6.4, ... 25.6 s apart: once a LIST begins 6 s
    # after the first failure, and fails, the next is 6.4 s away
    await until("its retries to be 6.4 s apart", lambda: first.listed_at - first.failing_since > 6, 30)
    await asyncio.to_thread(admin.clear_faults)

    again = await onprem._start_watching_pods()
    assert again is not first and first._stopping
    assert MultiClusterSpawner.reflectors[onprem._get_reflector_key("pods")] is again
    assert again.failing_since is None and not stalled(again, time.monotonic())
    pod = notebook_pod(namespace, "nb")
    await asyncio.to_thread(sim.kubectl, "apply", "--validate=false", "-f", "-", input=pod)
    await until("the new pod in the watch", lambda: f"{namespace}/nb" in onprem.pod_reflector.pods, 5)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_poll_asks_the_cluster_at_most_once_every_few_seconds_per_watch(
    onprem: HybridSpawner,
) -> None:
    pods, events = onprem._get_reflector_key("pods"), onprem._get_reflector_key("events")
    with polling():
        assert await onprem._may_restart(pods)
        asked = time.monotonic()
        assert not await onprem._may_restart(pods)  # asked just now
        assert await onprem._may_restart(events)  # another watch: asked on its own
        while not await onprem._may_restart(pods):
            assert time.monotonic() - asked < RESTART_EVERY + 5
            await asyncio.sleep(0.1)
        assert time.monotonic() - asked >= RESTART_EVERY
    # a spawn or a stop asks whenever it needs to: the answer may have changed since
    assert await onprem._may_restart(pods)
    assert await onprem._may_restart(pods)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_replacement_that_fails_its_first_list_puts_the_old_watch_back(
    onprem: HybridSpawner, sim: SimProcess
) -> None:
    first = await onprem._start_watching_pods()
    key = onprem._get_reflector_key("pods")

    class Refused(ClusterPodReflector):
        async def _list_and_update(self, resource_version: str | None = None) -> Any:
            raise RuntimeError("LIST refused")

    with pytest.raises(RuntimeError, match="LIST refused"):
        await onprem._replace_reflector(
            key, first, "pods", Refused, labels={"component": "singleuser-server"}
        )
    assert MultiClusterSpawner.reflectors[key] is first and not first._stopping


# ---------------------------------------------------------------- a cluster that does not answer


@contextlib.contextmanager
def polling() -> Iterator[None]:
    """What runs inside, runs as part of a poll."""
    token = _POLLING.set(True)
    try:
        yield
    finally:
        _POLLING.reset(token)


async def hang_api(sim: SimProcess) -> None:
    """The on-prem API hangs (connections time out, nothing is refused), as over a site link that is down."""
    await asyncio.to_thread(sim.admin("onprem").set_faults, hung=True, hungParts=["api"])


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_poll_does_not_ask_again_for_a_while_a_cluster_that_left_a_check_unanswered(
    onprem: HybridSpawner, sim: SimProcess
) -> None:
    await hang_api(sim)
    started = time.monotonic()
    with polling():
        assert not await onprem._answers()
        assert time.monotonic() - started >= PROBE_TIMEOUT * 0.9  # it was asked, and waited for
        started = time.monotonic()
        assert not await onprem._answers()  # the next poll, right after, waits for nothing
        assert time.monotonic() - started < 0.5
    await asyncio.to_thread(sim.admin("onprem").clear_faults)
    assert await onprem._answers()  # a spawn or a stop asks at once: the link may be back


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_stop_toward_a_cluster_that_does_not_answer_ends_at_once(
    onprem: HybridSpawner, sim: SimProcess
) -> None:
    await onprem._start_watching_pods()
    await hang_api(sim)
    with pytest.raises(ClusterUnreachable, match="onprem does not answer"):
        await onprem.stop_pod(now=True)
    # for JupyterHub, the stop ends (it then marks the server stopped) instead of retrying deletes
    # for k8s_api_request_retry_timeout (30 s) and failing
    started = time.monotonic()
    await onprem.stop(now=True)
    assert time.monotonic() - started < PROBE_TIMEOUT + 1


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_failed_attempt_whose_cluster_stops_answering_leaves_its_pod_to_the_leftover_check(
    onprem: HybridSpawner, sim: SimProcess
) -> None:
    await onprem._start_watching_pods()
    await hang_api(sim)
    started = time.monotonic()
    await onprem._clean_up_attempt(onprem.cluster_config("onprem"), gone=False)
    assert time.monotonic() - started < onprem.attempt_cleanup_timeout
    assert onprem.leftovers.clusters() == ["onprem"]  # removed in the background once it answers
    await onprem.leftovers.stop()


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_watch_that_may_hang_since_a_check_went_unanswered_starts_again_once_the_cluster_answers(
    onprem: HybridSpawner, sim: SimProcess, namespace: str
) -> None:
    first = await onprem._start_watching_pods()
    await hang_api(sim)
    with polling():
        assert not await onprem._answers()  # a poll's check: unanswered, after the watch's LIST
        assert not onprem._pod_watch_current()  # the poll counts the server as active
    await asyncio.to_thread(sim.admin("onprem").clear_faults)
    # the link is back, but the watch may hang for a while (its requests wait for a retransmission),
    # though it began its LIST only seconds ago: a spawn starts it again rather than wait on it
    assert not stalled(first, time.monotonic())
    again = await onprem._start_watching_pods()
    assert again is not first and first._stopping
    pod = notebook_pod(namespace, "nb2")
    await asyncio.to_thread(sim.kubectl, "apply", "--validate=false", "-f", "-", input=pod)
    await until("the new pod in the watch", lambda: f"{namespace}/nb2" in onprem.pod_reflector.pods, 5)


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_a_watch_renews_without_an_api_client_of_its_own(
    onprem: HybridSpawner, sim: SimProcess, namespace: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """kubernetes_asyncio's Watch makes (and closes) an API client per watch, whose TLS context loads
    the system's CA certificates: about 30 ms of CPU per renewal in a hub whose default configuration
    names no CA. The reflectors' watches make none, and still see what happens after each renewal."""
    import kubernetes_asyncio.client.api_client as api_client
    import kubernetes_asyncio.watch.watch as watch_module

    made: list[object] = []
    real_init = api_client.ApiClient.__init__

    def counted(self: Any, *args: Any, **kwargs: Any) -> None:
        made.append(self)
        real_init(self, *args, **kwargs)

    monkeypatch.setattr(api_client.ApiClient, "__init__", counted)
    watching = await onprem._start_watching_pods()
    watching.timeout_seconds = 1  # read before each watch: the server ends each after a second
    listed = watching.listed_at
    await until("two renewals", lambda: watching.listed_at > listed + 1.5, 15)
    assert made == []
    assert watch_module.ApiClient is api_client.ApiClient  # put back after each watch's __init__
    pod = notebook_pod(namespace, "renewed")
    await asyncio.to_thread(sim.kubectl, "apply", "--validate=false", "-f", "-", input=pod)
    await until("the pod in the watch", lambda: f"{namespace}/renewed" in watching.pods, 5)
    await asyncio.to_thread(sim.kubectl, "delete", "pod", "-n", namespace, "renewed", "--wait=false")
    await until("its deletion in the watch", lambda: f"{namespace}/renewed" not in watching.pods, 5)
    assert made == []


@pytest.mark.asyncio
@pytest.mark.timeout(60)
async def test_the_event_watch_keeps_each_pods_events_apart_across_lists_and_watches(
    onprem: HybridSpawner, sim: SimProcess, namespace: str
) -> None:
    watching = await onprem._start_watching_events()
    assert isinstance(watching.resources, EventsByPod)  # put in place by the first LIST
    watching.timeout_seconds = 1  # LISTs again each second: each LIST replaces the dict
    for name in ("nb-a", "nb-b"):
        pod = notebook_pod(namespace, name)
        await asyncio.to_thread(sim.kubectl, "apply", "--validate=false", "-f", "-", input=pod)
    await until("both pods' events", lambda: watching.resources.of("nb-a") and watching.resources.of("nb-b"))
    listed = watching.listed_at
    await until("a LIST since", lambda: watching.listed_at > listed + 0.5, 10)
    kept = watching.resources
    assert isinstance(kept, EventsByPod)
    for name in ("nb-a", "nb-b"):
        everything = [e for e in kept.values() if e["involvedObject"]["name"] == name]
        assert kept.of(name) == everything and everything
    onprem.pod_name = "nb-a"
    onprem._last_event = None
    assert [e["involvedObject"]["name"] for e in onprem.events] == ["nb-a"] * len(kept.of("nb-a"))
