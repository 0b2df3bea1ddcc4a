"""ClusterClient against simcluster: exec-plugin tokens that expire every few seconds, 401s, isolation.

The cloud cluster's exec plugin (``hybridhub sim token``) mints tokens that live at most TTL
seconds, as ``aws eks get-token`` does for 15 minutes. A client built with kubernetes_asyncio's
``new_client_from_config`` keeps its first token and gets 401 once it expires; a ClusterClient
renews it before expiry, and loads credentials again after a 401 (once per request).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio import client as kclient
from kubernetes_asyncio import config as kconfig
from kubernetes_asyncio.client.exceptions import ApiException
from kubernetes_asyncio.config import incluster_config

from simcluster.testing import AdminClient, SimProcess
from spawner.core.clusters import ClusterConfig, parse_clusters
from spawner.kube.client import ClusterClient

pytestmark = pytest.mark.timeout(90)

TTL = 3
CPU_NODES = [{"name": "cpu", "count": 1, "capacity": {"cpu": "8", "memory": "32Gi"}}]


@pytest.fixture(scope="module")
def sim2(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    """Clusters ``site`` (on-prem, static token) and ``cloud`` (exec plugin, TTL-second tokens)."""
    workdir = tmp_path_factory.mktemp("sim-kube")
    cluster_file = workdir / "clusters.yaml"
    clusters = [
        {"name": "site", "role": "onprem", "nodeGroups": CPU_NODES},
        {"name": "cloud", "role": "cloud", "execTokenTTL": TTL, "nodeGroups": CPU_NODES},
    ]
    cluster_file.write_text(json.dumps({"clusters": clusters}))  # JSON is YAML
    with SimProcess(workdir, config=cluster_file) as proc:
        yield proc


def cluster_config(name: str, kubeconfig: Path | None, context: str | None = None) -> ClusterConfig:
    (cluster,) = parse_clusters(
        [
            {
                "name": name,
                "role": "cloud" if name == "cloud" else "onprem",
                "kubeconfig": None if kubeconfig is None else str(kubeconfig),
                "context": context if kubeconfig is None else (context or name),
                "namespace": "default",
                "hub_connect_url": "http://169.254.1.1:8081",
                "home_storage": {"kind": "none"},
                "pools": [{"name": "cpu"}],
            }
        ]
    )
    return cluster


def static_token(sim: SimProcess, cluster: str) -> str:
    config = yaml.safe_load(sim.kubeconfig.read_text())
    user = next(u["user"] for u in config["users"] if u["name"] == f"{cluster}-admin")
    return str(user["token"])


def kubeconfig_with_token(sim: SimProcess, path: Path, cluster: str, token: str) -> Path:
    """A copy of the sim's kubeconfig whose ``cluster`` user has ``token``; rewritten in place."""
    config = yaml.safe_load(sim.kubeconfig.read_text())
    for user in config["users"]:
        if user["name"] == f"{cluster}-admin":
            user["user"] = {"token": token}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(yaml.safe_dump(config))
    tmp.replace(path)
    return path


async def requests(admin: AdminClient, since: int, path: str) -> list[int]:
    """The statuses of the requests to ``path`` after sequence number ``since``."""
    log = await asyncio.to_thread(admin.requests, since)
    return [r["status"] for r in log if r["path"] == path]


@pytest.mark.asyncio
async def test_exec_tokens_are_renewed_across_expiries(sim2: SimProcess) -> None:
    admin = sim2.admin("cloud")
    cluster = ClusterClient(cluster_config("cloud", sim2.kubeconfig), request_timeout=5)
    plain = await kconfig.new_client_from_config(config_file=str(sim2.kubeconfig), context="cloud")
    try:
        await cluster.start()
        assert cluster.expiry is not None and cluster.expiry - time.time() <= TTL
        plain_core = kclient.CoreV1Api(plain)
        await asyncio.wait_for(plain_core.list_namespaced_pod("default"), 5)  # works while fresh
        since = await asyncio.to_thread(admin.last_request)
        started = time.monotonic()
        calls = 0
        while time.monotonic() - started < 10:  # three or four token lifetimes
            pods = await cluster.call(cluster.core().list_namespaced_pod, "default")
            assert pods.items == []
            calls += 1
            await asyncio.sleep(0.2)
        assert cluster.refreshes >= 3, cluster.refreshes
        # renewed before expiry: the server turned nothing away
        statuses = await requests(admin, since, "/api/v1/namespaces/default/pods")
        assert statuses == [200] * calls
        # the plain client kept its first token: 401
        with pytest.raises(ApiException) as err:
            await asyncio.wait_for(plain_core.list_namespaced_pod("default"), 5)
        assert err.value.status == 401
    finally:
        await cluster.close()
        await plain.close()


@pytest.mark.asyncio
async def test_concurrent_callers_share_one_renewal(sim2: SimProcess) -> None:
    admin = sim2.admin("cloud")
    cluster = ClusterClient(cluster_config("cloud", sim2.kubeconfig), request_timeout=5)
    await cluster.start()
    try:
        assert cluster.expiry is not None
        await asyncio.sleep(max(0.0, cluster.expiry - time.time()) + 0.2)  # at most TTL seconds
        since = await asyncio.to_thread(admin.last_request)
        before = cluster.refreshes
        core = cluster.core()
        results = await asyncio.wait_for(
            asyncio.gather(*(cluster.call(core.list_namespaced_pod, "default") for _ in range(20))), 20
        )
        assert len(results) == 20
        assert cluster.refreshes == before + 1  # one plugin run for twenty callers
        assert await requests(admin, since, "/api/v1/namespaces/default/pods") == [200] * 20
    finally:
        await cluster.close()


@pytest.mark.asyncio
async def test_revoked_static_token_fails_after_one_retry(sim2: SimProcess, tmp_path: Path) -> None:
    admin = sim2.admin("site")
    kubeconfig = kubeconfig_with_token(sim2, tmp_path / "kubeconfig", "site", "revoked-token")
    cluster = ClusterClient(cluster_config("site", kubeconfig), request_timeout=5)
    await cluster.start()
    try:
        since = await asyncio.to_thread(admin.last_request)
        with pytest.raises(ApiException) as err:
            await asyncio.wait_for(cluster.call(cluster.core().list_namespaced_pod, "default"), 15)
        assert err.value.status == 401
        assert cluster.refreshes == 1
        assert await requests(admin, since, "/api/v1/namespaces/default/pods") == [401, 401]
    finally:
        await cluster.close()


@pytest.mark.asyncio
async def test_rotated_static_token_is_picked_up_after_a_401(sim2: SimProcess, tmp_path: Path) -> None:
    """Twenty callers get 401 with the old token; one reload of the kubeconfig serves them all."""
    admin = sim2.admin("site")
    kubeconfig = kubeconfig_with_token(sim2, tmp_path / "kubeconfig", "site", "old-token")
    cluster = ClusterClient(cluster_config("site", kubeconfig), request_timeout=5)
    await cluster.start()
    try:
        kubeconfig_with_token(sim2, kubeconfig, "site", static_token(sim2, "site"))  # the operator rotates it
        since = await asyncio.to_thread(admin.last_request)
        core = cluster.core()
        await asyncio.wait_for(
            asyncio.gather(*(cluster.call(core.list_namespaced_pod, "default") for _ in range(20))), 20
        )
        assert cluster.refreshes == 1
        assert (
            sorted(await requests(admin, since, "/api/v1/namespaces/default/pods")) == [200] * 20 + [401] * 20
        )
    finally:
        await cluster.close()


@pytest.mark.asyncio
async def test_in_cluster_token_file_is_read_again_after_a_401(
    sim2: SimProcess, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = sim2.api_url("site").removeprefix("https://").rsplit(":", 1)
    token_file = tmp_path / "token"
    token_file.write_text("expired-token")
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", host)
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", port)
    monkeypatch.setattr(incluster_config, "SERVICE_TOKEN_FILENAME", str(token_file))
    monkeypatch.setattr(incluster_config, "SERVICE_CERT_FILENAME", sim2.ca_file)
    cluster = ClusterClient(cluster_config("site", None), request_timeout=5)
    await cluster.start()
    try:
        token_file.write_text(static_token(sim2, "site"))  # the kubelet rotated it
        namespaces = await asyncio.wait_for(cluster.call(cluster.core().list_namespace), 15)
        assert "default" in [n.metadata.name for n in namespaces.items]
        assert cluster.refreshes == 1
    finally:
        await cluster.close()


@pytest.mark.asyncio
async def test_a_kubeconfig_token_file_is_read_again_on_a_schedule(sim2: SimProcess, tmp_path: Path) -> None:
    """KubeSpawner's own requests use core() directly, with no retry after a 401: a rotated token file
    must reach them without one."""
    token_file = tmp_path / "token"
    token_file.write_text("expired-token")
    config = yaml.safe_load(sim2.kubeconfig.read_text())
    for user in config["users"]:
        if user["name"] == "site-admin":
            user["user"] = {"tokenFile": str(token_file)}
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    cluster = ClusterClient(
        cluster_config("site", kubeconfig), request_timeout=5, in_cluster_token_period=0.5
    )
    await cluster.start()
    try:
        with pytest.raises(ApiException) as err:
            await asyncio.wait_for(cluster.core().list_namespace(), 15)
        assert err.value.status == 401
        token_file.write_text(static_token(sim2, "site"))  # rotated from outside
        deadline = time.monotonic() + 10
        while cluster.refreshes == 0 and time.monotonic() < deadline:
            await asyncio.sleep(0.1)  # polls the condition; the next request after the period re-reads
            with contextlib.suppress(ApiException):
                await asyncio.wait_for(cluster.core().list_namespace(), 15)
        namespaces = await asyncio.wait_for(cluster.core().list_namespace(), 15)
        assert "default" in [n.metadata.name for n in namespaces.items]
        assert cluster.refreshes >= 1
    finally:
        await cluster.close()


@pytest.mark.asyncio
async def test_a_token_file_ending_in_a_newline_works(sim2: SimProcess, tmp_path: Path) -> None:
    """`kubectl create token NAME > file` writes the token and a newline; kubectl reads such a file."""
    token_file = tmp_path / "token"
    token_file.write_text(static_token(sim2, "site") + "\n")
    config = yaml.safe_load(sim2.kubeconfig.read_text())
    for user in config["users"]:
        if user["name"] == "site-admin":
            user["user"] = {"tokenFile": str(token_file)}
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(yaml.safe_dump(config))
    cluster = ClusterClient(cluster_config("site", kubeconfig), request_timeout=5)
    await cluster.start()
    try:
        namespaces = await asyncio.wait_for(cluster.core().list_namespace(), 15)
        assert "default" in [n.metadata.name for n in namespaces.items]
    finally:
        await cluster.close()


@pytest.mark.asyncio
async def test_clusters_do_not_share_configuration(sim2: SimProcess) -> None:
    default_before = kclient.Configuration._default
    site = ClusterClient(cluster_config("site", sim2.kubeconfig))
    cloud = ClusterClient(cluster_config("cloud", sim2.kubeconfig))
    with pytest.raises(RuntimeError, match="not started"):
        site.core()
    await site.start()
    await cloud.start()
    try:
        assert site.configuration is not cloud.configuration
        assert site.api_client is not cloud.api_client
        assert site.configuration.host == sim2.api_url("site")
        assert cloud.configuration.host == sim2.api_url("cloud")
        site_key: dict[str, Any] = dict(site.configuration.api_key)
        assert site_key != cloud.configuration.api_key
        assert kclient.Configuration._default is default_before  # the global default is untouched
        for client_, name in ((site, "site"), (cloud, "cloud")):
            admin = sim2.admin(name)
            since = await asyncio.to_thread(admin.last_request)
            await client_.call(client_.core().list_namespace)
            await client_.call(
                client_.custom().list_namespaced_custom_object,
                "argoproj.io",
                "v1alpha1",
                "default",
                "workflows",
            )
            log = await asyncio.to_thread(admin.requests, since)
            assert [(r["path"], r["status"]) for r in log] == [
                ("/api/v1/namespaces", 200),
                ("/apis/argoproj.io/v1alpha1/namespaces/default/workflows", 200),
            ]
        # renewing the cloud's credentials leaves the site's alone
        assert cloud.expiry is not None
        await asyncio.sleep(max(0.0, cloud.expiry - time.time()) + 0.2)
        await cloud.call(cloud.core().list_namespace)
        assert cloud.refreshes >= 1 and site.configuration.api_key == site_key
    finally:
        await site.close()
        await cloud.close()


@pytest.mark.asyncio
async def test_request_timeout_default(sim2: SimProcess) -> None:
    admin = sim2.admin("site")
    cluster = ClusterClient(cluster_config("site", sim2.kubeconfig), request_timeout=0.5)
    await cluster.start()
    await asyncio.to_thread(admin.set_faults, latency=3)
    try:
        started = time.monotonic()
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(cluster.call(cluster.core().list_namespace), 10)
        assert time.monotonic() - started < 2.5
        # a caller's own timeout wins
        namespaces = await asyncio.wait_for(
            cluster.call(cluster.core().list_namespace, _request_timeout=8), 10
        )
        assert namespaces.items
    finally:
        await asyncio.to_thread(admin.clear_faults)
        await cluster.close()
