"""Exec-plugin tokens that expire every few seconds: which real clients keep working, and how.

A ``role: cloud`` cluster with ``execTokenTTL: 3`` gets a kubeconfig user whose exec plugin
(``hybridhub sim token``) mints tokens valid for at most three seconds, like ``aws eks get-token``
does for 15 minutes. Findings (kubectl 1.32, kubernetes 36, kubernetes_asyncio 36):

* kubectl (client-go) re-runs the plugin once the cached credential's ``expirationTimestamp`` has
  passed, also inside one long-running process (``kubectl wait`` relisting after a 410).
* the sync ``kubernetes`` client from ``config.new_client_from_config`` refreshes through its
  ``refresh_api_key_hook``; it treats a token as expired 5 minutes early, so with a 3-second TTL
  it runs the plugin before every request.
* ``kubernetes_asyncio``'s ``new_client_from_config`` runs the plugin once and keeps the token: after
  expiry every request is 401 (refreshing needs its separate ``refresh_token`` task).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from kubernetes import client, config
from kubernetes_asyncio import client as aclient
from kubernetes_asyncio import config as aconfig
from kubernetes_asyncio.client.exceptions import ApiException

from simcluster.testing import SimProcess

pytestmark = [pytest.mark.kubectl, pytest.mark.timeout(60)]

TTL = 3


@pytest.fixture(scope="module")
def short_lived(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    """One cloud cluster, context ``cloud``, whose exec-plugin tokens live TTL seconds."""
    workdir = tmp_path_factory.mktemp("sim-ttl")
    cluster_file = workdir / "clusters.yaml"
    cluster = {
        "name": "cloud",
        "role": "cloud",
        "execTokenTTL": TTL,
        "nodeGroups": [{"name": "cpu", "count": 1, "capacity": {"cpu": "8", "memory": "32Gi"}}],
    }
    cluster_file.write_text(json.dumps({"clusters": [cluster]}))  # JSON is YAML
    with SimProcess(workdir, config=cluster_file) as proc:
        proc.kubectl("create", "namespace", "work", context="cloud")
        yield proc


def token_expiry(token: str) -> int:
    """The expiry (unix seconds) of a ``sim.v1.<user>.<expiry>.<signature>`` token."""
    return int(token.removeprefix("Bearer ").split(".")[3])


def wait_for(what: Callable[[], Any], timeout: float, message: str) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = what()
        if found:
            return found
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout}s waiting for {message}")


def test_clients_across_token_expiries(short_lived: SimProcess) -> None:
    """One timeline: each round starts once every token minted before it has expired."""
    sim = short_lived
    admin = sim.admin("cloud")
    sim.kubectl("run", "sleeper", "-n", "work", "--image=busybox:1.36", context="cloud")
    path = "/api/v1/namespaces/work/pods"

    def relists(since: float) -> list[dict[str, Any]]:
        """``kubectl wait``'s lists (its reflector's), newer than ``since``."""
        return [
            r
            for r in admin.requests()
            if r["path"] == path
            and not r["watch"]
            and r["query"].get("fieldSelector") == "metadata.name=sleeper"
            and r["time"] > since
        ]

    # the Python clients, each built once
    sync_api = config.new_client_from_config(config_file=str(sim.kubeconfig), context="cloud")
    sync_v1 = client.CoreV1Api(sync_api)
    loop = asyncio.new_event_loop()
    async_api = loop.run_until_complete(
        aconfig.new_client_from_config(config_file=str(sim.kubeconfig), context="cloud")
    )
    async_v1 = aclient.CoreV1Api(async_api)

    def sync_list() -> tuple[list[str], int]:
        names = [n.metadata.name for n in sync_v1.list_namespace().items]
        # kubernetes 36 keeps the token under "BearerToken", 35 (which the job SDKs need) "authorization"
        keys = sync_api.configuration.api_key
        return names, token_expiry(str(keys.get("BearerToken") or keys["authorization"]))

    def async_list() -> list[str]:
        namespaces = loop.run_until_complete(asyncio.wait_for(async_v1.list_namespace(), 10))
        return [n.metadata.name for n in namespaces.items]

    names, sync_expiry = sync_list()
    assert "work" in names
    assert "work" in async_list()

    # one long-running kubectl: its reflector lists and watches, and must relist after a 410
    cmd = [
        "kubectl",
        "--kubeconfig",
        str(sim.kubeconfig),
        "--context",
        "cloud",
        "-n",
        "work",
        "wait",
        "--for=delete",
        "pod/sleeper",
        "--timeout=40s",
    ]
    env = {**os.environ, "HOME": str(sim.workdir), "KUBECACHEDIR": str(sim.workdir / "kube-cache")}
    waiter = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
    try:
        first = wait_for(lambda: relists(0), 15, "kubectl wait to list")[0]
        assert first["status"] == 200 and first["user"] == "admin"
        last = first
        for _ in range(2):
            # every token minted before `last` has expired TTL seconds after it: expiry is a time on
            # the clock, so the test lets that time pass (nothing in the API marks it)
            time.sleep(max(0.0, last["time"] + TTL + 0.3 - time.time()))
            assert time.time() > sync_expiry
            # a fresh kubectl runs the plugin again
            out = sim.kubectl("get", "namespace", "work", "-o", "name", context="cloud").stdout
            assert out.strip() == "namespace/work"
            # the sync client runs the plugin again and keeps working
            names, new_expiry = sync_list()
            assert "work" in names and new_expiry > sync_expiry
            sync_expiry = new_expiry
            # kubernetes_asyncio kept its first token: 401
            with pytest.raises(ApiException) as err:
                async_list()
            assert err.value.status == 401
            # kubectl wait's watch ends with 410 ...
            assert admin.expire_watches() >= 1
            expired_at = time.time()
            # ... and it relists, after its backoff, with a new token
            last = wait_for(lambda t=expired_at: relists(t), 15, "kubectl wait to relist")[0]
            assert last["status"] == 200 and last["user"] == "admin"
        assert waiter.poll() is None  # still waiting for the pod to go
        sim.kubectl("delete", "pod", "sleeper", "-n", "work", "--wait=false", context="cloud")
        output, _ = waiter.communicate(timeout=30)
        assert waiter.returncode == 0, output
        assert "pod/sleeper condition met" in output
    finally:
        if waiter.poll() is None:
            waiter.kill()
            waiter.communicate(timeout=5)
        sync_api.close()
        loop.run_until_complete(async_api.close())
        loop.close()
    # the only requests turned away were kubernetes_asyncio's
    rejected = [r for r in admin.requests() if r["status"] == 401]
    assert [(r["method"], r["path"], r["user"]) for r in rejected] == [
        ("GET", "/api/v1/namespaces", None)
    ] * 2
