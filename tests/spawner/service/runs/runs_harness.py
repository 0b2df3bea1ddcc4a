"""The service's runs, in this process, against two simclusters: the real fleet (clients, watchers,
probes), a sqlite store, the run manager, and the tornado app with a token table for the hub."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tornado.httpclient import AsyncHTTPClient
from tornado.httpserver import HTTPServer
from tornado.testing import bind_unused_port

from simcluster.testing import SimProcess
from spawner.core.clusters import parse_clusters
from spawner.core.health import HealthPolicy
from spawner.placement.reservations import ReservationBook
from spawner.service.app import HybridHubService
from spawner.service.capacity import fleet_capacity
from spawner.service.fleet import ClusterMember, Fleet
from spawner.service.metrics import Metrics
from spawner.service.runs.manager import RunManager, RunSettings
from spawner.service.runs.metering import CloudMeter
from spawner.service.runs.namespaces import RunNamespaceSettings
from spawner.service.store import Store
from spawner.service.store.runs import RunRegistry, UsageLedger
from tests.spawner.service.inprocess import PREFIX, TokenTable, user

__all__ = ["PREFIX", "RunsService", "running_runs_service", "tokens_for"]

SCOPES = ("custom:hybridhub:runs", "custom:hybridhub:capacity", "access:services!service=hybridhub")


def tokens_for(*names: str) -> dict[str, dict[str, Any]]:
    """A token per user, ``<name>-token``, holding the runs scope; ``<name>-noscope`` without it."""
    table = {f"{n}-token": user(n, *SCOPES) for n in names}
    table.update({f"{n}-noscope": user(n, "access:services!service=hybridhub") for n in names})
    return table


def clusters(sim: SimProcess, pools: dict[str, list[dict[str, Any]]] | None = None) -> list[Any]:
    """``onprem`` and ``eks`` as the service knows them; ``pools`` replaces a cluster's pools (one
    pool of every node by default)."""

    def one(name: str, role: str) -> dict[str, Any]:
        return {
            "name": name,
            "role": role,
            "kubeconfig": str(sim.kubeconfig),
            "context": name,
            "namespace": "jupyterhub",
            "hub_connect_url": "http://hub:8081",
            "home_storage": {"kind": "none"},
            "pools": (pools or {}).get(name, [{"name": "gpu", "node_selector": {}}]),
        }

    return parse_clusters([one("onprem", "onprem"), one("eks", "cloud")])


@dataclass
class RunsService:
    sim: SimProcess
    fleet: Fleet
    manager: RunManager
    store: Store
    port: int
    metrics: Metrics

    @property
    def argo_host(self) -> str:
        return f"http://127.0.0.1:{self.port}{PREFIX}argo/"

    async def call(
        self,
        method: str,
        path: str,
        token: str | None,
        body: Any = None,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, Any]:
        sent = {"Authorization": f"Bearer {token}"} if token else {}
        sent.update(headers or {})
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
        resp = await AsyncHTTPClient().fetch(
            f"http://127.0.0.1:{self.port}{PREFIX}{path}",
            method=method,
            headers=sent,
            body=data,
            raise_error=False,
            allow_nonstandard_methods=True,
            request_timeout=60,
            connect_timeout=10,
        )
        text = resp.body.decode() if resp.body else ""
        try:
            return resp.code, json.loads(text)
        except ValueError:
            return resp.code, text


@contextlib.asynccontextmanager
async def running_runs_service(
    sim: SimProcess,
    work: Path,
    tokens: dict[str, dict[str, Any]],
    *,
    pools: dict[str, list[dict[str, Any]]] | None = None,
    **settings: Any,
) -> AsyncIterator[RunsService]:
    members = [
        ClusterMember(
            c,
            policy=HealthPolicy(),
            probe_interval=1.0,
            probe_retry_interval=0.5,
            probe_timeout=2.0,
            watch_timeout=60,
            watch_read_timeout=30.0,
        )
        for c in clusters(sim, pools)
    ]
    fleet = Fleet(members)
    book = ReservationBook(ttl=60)
    store = Store(f"sqlite:///{work / 'store.sqlite'}")
    await store.upgrade()
    run_settings = RunSettings(
        namespaces=RunNamespaceSettings(hub_instance="test-hub", gpu_quota=8),
        request_timeout=3.0,
        admission_interval=0.2,
        **settings,
    )
    capacity = fleet_capacity(fleet, book)
    metrics = Metrics(capacity, fleet.health, lambda: len(book))
    meter = CloudMeter(UsageLedger(store), run_settings.cloud_budget)
    manager = RunManager(RunRegistry(store), fleet, book, run_settings, meter=meter, on_move=metrics.moved)
    teams = {name: team.members for name, team in run_settings.cloud_budget.teams.items()}
    metrics.watch_runs(lambda: manager.lag, meter.used, teams)
    await fleet.start()
    try:
        async with asyncio.timeout(30):
            while not all(i.synced for i in fleet.inventories()):  # noqa: ASYNC110 - polled snapshots
                await asyncio.sleep(0.05)
        manager.start()
        app = HybridHubService(service_prefix=PREFIX)
        sock, port = bind_unused_port()
        server = HTTPServer(
            app.make_app(fleet, book, metrics, capacity, hub_auth=TokenTable(tokens), runs=manager)
        )
        server.add_sockets([sock])
        try:
            yield RunsService(sim, fleet, manager, store, port, metrics)
        finally:
            server.stop()
            await server.close_all_connections()
            await manager.stop()
    finally:
        await fleet.stop()
        await store.close()
