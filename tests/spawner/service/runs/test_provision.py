"""Provisioning a user's run namespace in a simcluster, then acting in it as the service will: with the
service's token and ``Impersonate-User``, so the cluster's RBAC, Pod Security and quota decide.

One small cluster (simulated runtime) for the module; each test works with users of its own.
simcluster stores and serves NetworkPolicies but does not enforce them.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest
import pytest_asyncio
from kubernetes_asyncio.client import BatchV1Api, CoreV1Api
from kubernetes_asyncio.client.exceptions import ApiException

from simcluster.testing import SimProcess
from spawner.core.clusters import ClusterConfig, parse_clusters
from spawner.core.labels import POD_SECURITY_ENFORCE
from spawner.kube.client import ClusterClient
from spawner.service.runs.namespaces import RunNamespaceSettings, build, namespace_name
from spawner.service.runs.provision import Change, ProvisionError, ensure, remove

pytestmark = [pytest.mark.timeout(60), pytest.mark.asyncio(loop_scope="function")]

CLUSTER_FILE = """
clusters:
  - name: onprem
    runtime: simulated
    argo: false
    katib: false
    trainer: false
    trainingOperator: false
    timings: {pod_start: 0.05, pod_stop: 0.05}
    nodeGroups:
      - name: gpu
        count: 1
        capacity: {cpu: "16", memory: 64Gi}
        gpu: {count: 8}
"""
SETTINGS = RunNamespaceSettings(hub_instance="test-hub", gpu_quota=2, pod_quota=10)
WRITES = {"POST", "PUT", "PATCH", "DELETE"}


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    tmp = tmp_path_factory.mktemp("runs-provision")
    (tmp / "clusters.yaml").write_text(CLUSTER_FILE)
    with SimProcess(tmp / "sim", config=tmp / "clusters.yaml") as proc:
        yield proc


def cluster(sim: SimProcess) -> ClusterConfig:
    (config,) = parse_clusters(
        [
            {
                "name": "onprem",
                "role": "onprem",
                "kubeconfig": str(sim.kubeconfig),
                "context": "onprem",
                "namespace": "jupyterhub",
                "hub_connect_url": "http://hub:8081",
                "home_storage": {"kind": "none"},
                "pools": [{"name": "gpu", "node_selector": {}}],
            }
        ]
    )
    return config


@pytest_asyncio.fixture
async def service(sim: SimProcess) -> AsyncIterator[ClusterClient]:
    """The service's own client of the cluster, a new one per test: a hung link spoils pooled connections."""
    client = ClusterClient(cluster(sim), request_timeout=10.0)
    await client.start()
    try:
        yield client
    finally:
        await client.close()


@pytest_asyncio.fixture
async def impersonating(sim: SimProcess) -> AsyncIterator[Any]:
    """Clients that act as a hub user: the service's token with ``Impersonate-User``, as the service sends."""
    clients: list[ClusterClient] = []

    async def as_user(who: str) -> ClusterClient:
        client = ClusterClient(cluster(sim), request_timeout=10.0)
        await client.start()
        client.api_client.set_default_header("Impersonate-User", who)
        clients.append(client)
        return client

    try:
        yield as_user
    finally:
        for client in clients:
            await client.close()


def new_user() -> str:
    # a hub name that needs escaping, so the namespace's name and labels take the slug path
    return f"Researcher.{uuid.uuid4().hex[:6]}@example.org"


async def writes_since(sim: SimProcess, seq: int) -> list[dict[str, Any]]:
    log = await asyncio.to_thread(sim.admin("onprem").requests, seq)
    return [r for r in log if r["method"] in WRITES]


async def live(client: ClusterClient, path: str) -> dict[str, Any]:
    found: dict[str, Any] = await client.api_client.call_api(
        path,
        "GET",
        response_types_map={200: "object"},
        auth_settings=["BearerToken"],
        _return_http_data_only=True,
        _request_timeout=10,
    )
    return found


def job(name: str) -> dict[str, Any]:
    container = {"name": "main", "image": "busybox:1.36", "command": ["true"]}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": name},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [container]}}},
    }


def pod(name: str, **container: Any) -> dict[str, Any]:
    spec = {"containers": [{"name": "main", "image": "busybox:1.36", **container}]}
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name}, "spec": spec}


async def refusal(call: Any) -> tuple[int, str]:
    """The status and the server's message of a refused call."""
    with pytest.raises(ApiException) as info:
        await call
    return info.value.status, str(json.loads(info.value.body)["message"])


async def test_ensure_creates_every_object_then_writes_nothing(
    sim: SimProcess, service: ClusterClient
) -> None:
    built = build(SETTINGS, new_user())
    changes = await ensure(service.api_client, built)
    assert changes == [Change("created", o["kind"], o["metadata"]["name"]) for o in built.objects]
    versions = [await live(service, path(o)) for o in built.objects]

    seq = await asyncio.to_thread(sim.admin("onprem").last_request)
    assert await ensure(service.api_client, built) == []
    assert await writes_since(sim, seq) == []
    again = [await live(service, path(o)) for o in built.objects]
    assert [v["metadata"]["resourceVersion"] for v in again] == [
        v["metadata"]["resourceVersion"] for v in versions
    ]
    assert again[-1]["kind"] == "NetworkPolicy" and again[-1]["spec"] == built.objects[-1]["spec"]


async def test_two_ensures_at_once_make_each_object_once(service: ClusterClient) -> None:
    built = build(SETTINGS, new_user())
    first, second = await asyncio.gather(ensure(service.api_client, built), ensure(service.api_client, built))
    created = sorted((c.kind, c.name) for c in first + second if c.action == "created")
    assert created == sorted((o["kind"], o["metadata"]["name"]) for o in built.objects)
    assert [c for c in first + second if c.action != "created"] == []


async def test_drift_is_patched_and_a_changed_role_ref_replaced(service: ClusterClient) -> None:
    built = build(SETTINGS, new_user())
    await ensure(service.api_client, built)
    core = service.core()
    await core.patch_namespace(built.name, {"metadata": {"labels": {POD_SECURITY_ENFORCE: "privileged"}}})
    await core.patch_namespaced_resource_quota(
        "hybridhub-runs", built.name, {"spec": {"hard": {"requests.nvidia.com/gpu": "100"}}}
    )
    binding = f"/apis/rbac.authorization.k8s.io/v1/namespaces/{built.name}/rolebindings/hybridhub-user"
    await service.api_client.call_api(binding, "DELETE", auth_settings=["BearerToken"], _request_timeout=10)
    wrong = next(o for o in built.objects if o["metadata"]["name"] == "hybridhub-user")
    wrong = {**wrong, "roleRef": {**wrong["roleRef"], "name": "view"}}
    await service.api_client.call_api(
        binding.rsplit("/", 1)[0],
        "POST",
        body=wrong,
        auth_settings=["BearerToken"],
        _request_timeout=10,
    )

    changes = await ensure(service.api_client, built)
    assert changes == [
        Change("patched", "Namespace", built.name),
        Change("patched", "ResourceQuota", "hybridhub-runs"),
        Change("replaced", "RoleBinding", "hybridhub-user"),
    ]
    namespace = await live(service, f"/api/v1/namespaces/{built.name}")
    assert namespace["metadata"]["labels"][POD_SECURITY_ENFORCE] == "baseline"
    quota = await live(service, f"/api/v1/namespaces/{built.name}/resourcequotas/hybridhub-runs")
    assert quota["spec"]["hard"]["requests.nvidia.com/gpu"] == "2"
    assert (await live(service, binding))["roleRef"]["name"] == "edit"
    assert await ensure(service.api_client, built) == []


async def test_the_user_runs_only_in_their_namespace_and_the_cluster_enforces_its_limits(
    service: ClusterClient, impersonating: Any
) -> None:
    built = build(SETTINGS, new_user())
    await ensure(service.api_client, built)
    user = await impersonating(built.impersonate)
    batch = BatchV1Api(user.api_client)
    core = CoreV1Api(user.api_client)

    made = await batch.create_namespaced_job(built.name, job("train"), _request_timeout=10)
    assert made.metadata.namespace == built.name

    status, message = await refusal(
        batch.create_namespaced_job("default", job("elsewhere"), _request_timeout=10)
    )
    assert (status, message) == (
        403,
        f'jobs.batch is forbidden: User "{built.impersonate}" cannot create resource "jobs" '
        'in API group "batch" in the namespace "default"',
    )

    privileged = pod("root", securityContext={"privileged": True})
    status, message = await refusal(core.create_namespaced_pod(built.name, privileged, _request_timeout=10))
    assert status == 403
    assert message.startswith('pods "root" is forbidden: violates PodSecurity "baseline:latest": privileged')

    greedy = pod("greedy", resources={"limits": {"nvidia.com/gpu": "4"}})
    status, message = await refusal(core.create_namespaced_pod(built.name, greedy, _request_timeout=10))
    assert (status, message) == (
        403,
        'pods "greedy" is forbidden: exceeded quota: hybridhub-runs, requested: requests.nvidia.com/gpu=4, '
        "used: requests.nvidia.com/gpu=0, limited: requests.nvidia.com/gpu=2",
    )

    # a pod that names no requests gets the LimitRange's, so the scheduler and quotas see real numbers
    plain = await core.create_namespaced_pod(built.name, pod("plain", command=["true"]), _request_timeout=10)
    assert plain.spec.containers[0].resources.requests == {"cpu": "500m", "memory": "1Gi"}

    # the user cannot widen their own quota: edit does not write ResourceQuotas
    status, message = await refusal(
        core.patch_namespaced_resource_quota(
            "hybridhub-runs", built.name, {"spec": {"hard": {"requests.nvidia.com/gpu": "64"}}}
        )
    )
    assert status == 403, message
    assert 'cannot patch resource "resourcequotas"' in message


async def test_a_namespace_that_is_not_ours_is_left_alone(service: ClusterClient) -> None:
    user = new_user()
    name = namespace_name(SETTINGS, user)
    await service.core().create_namespace({"metadata": {"name": name, "labels": {"team": "other"}}})

    with pytest.raises(
        ProvisionError, match=re.escape("label hybridhub.io/hub=None, not 'test-hub'")
    ) as made:
        await ensure(service.api_client, build(SETTINGS, user))
    assert made.value.status == 409
    with pytest.raises(ProvisionError, match="it is not this hub's run namespace of this user"):
        await remove(service.api_client, SETTINGS, user)
    assert (await live(service, f"/api/v1/namespaces/{name}"))["metadata"]["labels"]["team"] == "other"


async def test_remove_deletes_the_namespace_and_then_has_nothing_to_do(service: ClusterClient) -> None:
    user = new_user()
    built = build(SETTINGS, user)
    await ensure(service.api_client, built)
    assert await remove(service.api_client, SETTINGS, user) == [Change("deleted", "Namespace", built.name)]
    deadline = time.monotonic() + 10
    while True:
        try:
            await live(service, f"/api/v1/namespaces/{built.name}")
        except ApiException as exc:
            assert exc.status == 404
            break
        assert time.monotonic() < deadline, "the namespace is still there"
        await asyncio.sleep(0.05)
    assert await remove(service.api_client, SETTINGS, user) == []


async def test_ensure_gives_up_on_a_hung_cluster_within_its_timeout(
    sim: SimProcess, service: ClusterClient
) -> None:
    admin = sim.admin("onprem")
    await asyncio.to_thread(admin.set_faults, hung=True, hungParts=["api"])
    try:
        started = time.monotonic()
        with pytest.raises(ProvisionError, match=re.escape("the cluster did not answer within 1.5 s")):
            await ensure(service.api_client, build(SETTINGS, new_user()), total_timeout=1.5)
        assert time.monotonic() - started < 3.0
    finally:
        await asyncio.to_thread(admin.clear_faults)


def path(obj: dict[str, Any]) -> str:
    meta = obj["metadata"]
    prefix = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
    plural = {
        "Namespace": "namespaces",
        "ResourceQuota": "resourcequotas",
        "LimitRange": "limitranges",
        "ServiceAccount": "serviceaccounts",
        "Role": "roles",
        "RoleBinding": "rolebindings",
        "NetworkPolicy": "networkpolicies",
    }[obj["kind"]]
    if "namespace" in meta:
        return f"{prefix}/namespaces/{meta['namespace']}/{plural}/{meta['name']}"
    return f"{prefix}/{plural}/{meta['name']}"
