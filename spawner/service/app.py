"""``hybridhub service``: the JupyterHub managed service that owns inventory, health and placement."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from typing import Any
from urllib.parse import urlparse

from jupyterhub.services.auth import HubAuth
from tornado import web
from tornado.httpserver import HTTPServer
from traitlets import Bool, Enum, Float, Integer, Unicode, default
from traitlets.config import Application

from spawner.core.clusters import ClusterSet
from spawner.core.health import HealthPolicy
from spawner.placement.reservations import ReservationBook

from .fleet import ClusterMember, Fleet
from .handlers import handlers
from .metrics import Metrics
from .sweeper import HubServers, LeftoverSweeper

__all__ = ["HybridHubService", "main"]


class HybridHubService(Application):
    """The brain beside the hub: the only holder, with the hub, of cluster credentials."""

    name = "hybridhub-service"
    description = __doc__
    classes = [ClusterSet]
    aliases = {"config": "HybridHubService.config_file", "log-level": "Application.log_level"}

    config_file = Unicode(
        "hybridhub_service_config.py",
        config=True,
        help="""Python config file to load (traitlets), e.g. the hub's clusters file, which sets
        ``c.ClusterSet.clusters``. A missing default file is fine; a missing named file is an error.""",
    )
    service_prefix = Unicode(
        config=True,
        help="""URL prefix the service answers under; JupyterHub passes it to a managed service
        as JUPYTERHUB_SERVICE_PREFIX (default ``/services/hybridhub/``).""",
    )
    bind_url = Unicode(
        config=True,
        help="""Where to listen, e.g. ``http://127.0.0.1:10101``; JupyterHub passes it to a managed
        service as JUPYTERHUB_SERVICE_URL.""",
    )
    api_url = Unicode(config=True, help="The hub's REST API (JUPYTERHUB_API_URL), to check callers' tokens.")
    api_token = Unicode(
        config=True, help="This service's hub API token (JUPYTERHUB_API_TOKEN). Never logged."
    )
    probe_interval = Float(
        5.0, config=True, help="Seconds between health probes (GET /readyz) of each cluster's API."
    )
    probe_timeout = Float(3.0, config=True, help="Seconds a health probe or API request may take.")
    watch_timeout = Integer(
        300, config=True, help="Seconds one node/pod watch stays open before it is resumed (timeoutSeconds)."
    )
    reservation_ttl = Float(
        180.0,
        config=True,
        help="""Seconds GPUs stay reserved for a spawn in flight, unless the hub extends or releases
        the reservation first. Long enough for an on-prem pod to be scheduled; elastic pools extend.""",
    )
    placement_policy = Enum(
        ["best-fit", "spread"],
        "best-fit",
        config=True,
        help="""``best-fit`` fills the fullest node that fits (keeps whole 8-GPU nodes free for big
        jobs); ``spread`` the emptiest.""",
    )
    authenticate_metrics = Bool(
        True, config=True, help="Whether GET metrics needs a token with the read:metrics scope."
    )
    degraded_latency = Float(
        1.0, config=True, help="Seconds: a slower /readyz answer makes a cluster DEGRADED."
    )
    down_after_failures = Integer(
        3, config=True, help="Unanswered probes in a row before a cluster is DOWN (no new placements there)."
    )
    recover_after = Integer(2, config=True, help="Good probes in a row before a cluster counts as recovered.")
    max_watch_age = Float(
        120.0, config=True, help="Seconds without a watch event or bookmark before a cluster is DEGRADED."
    )

    leftover_sweep_interval = Float(
        30.0,
        config=True,
        help="""Seconds between sweeps for leftover notebook pods: pods HybridSpawner made (in any
        cluster) for a server the hub neither runs nor is starting, as a hub that died mid-start
        leaves them. 0 turns the sweep off. The service's hub token needs the ``read:servers`` scope.""",
    )
    leftover_grace = Float(
        60.0,
        config=True,
        help="""Seconds a notebook pod must have been seen before the sweep may remove it.""",
    )

    @default("service_prefix")
    def _default_prefix(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/services/hybridhub/")

    @default("bind_url")
    def _default_bind_url(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVICE_URL", "http://127.0.0.1:10101")

    @default("api_url")
    def _default_api_url(self) -> str:
        return os.environ.get("JUPYTERHUB_API_URL", "http://127.0.0.1:8081/hub/api")

    @default("api_token")
    def _default_api_token(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    def initialize(self, argv: list[str] | None = None) -> None:
        super().initialize(argv)
        if self.config_file:
            path = self.config_file
            if os.path.exists(path):
                self.load_config_file(path)
            elif (
                "config_file" in self.config.get("HybridHubService", {})
                or path != "hybridhub_service_config.py"
            ):
                raise SystemExit(f"hybridhub service: config file {path} not found")
        self.cluster_set = ClusterSet(parent=self)

    def make_app(self, fleet: Fleet, book: ReservationBook, metrics: Metrics) -> web.Application:
        hub_auth = HubAuth(api_url=self.api_url, api_token=self.api_token, cache_max_age=60)
        settings: dict[str, Any] = {
            "fleet": fleet,
            "reservations": book,
            "metrics": metrics,
            "policy": self.placement_policy,
            "authenticate_metrics": self.authenticate_metrics,
            "hub_auth": hub_auth,
        }
        return web.Application(handlers(self.service_prefix), **settings)

    async def serve(self, stop: asyncio.Event) -> None:
        policy = HealthPolicy(
            degraded_latency=self.degraded_latency,
            down_after_failures=self.down_after_failures,
            recover_after=self.recover_after,
            max_watch_age=self.max_watch_age,
        )
        try:
            configs = self.cluster_set.configs
        except ValueError as exc:
            raise SystemExit(f"hybridhub service: {exc}") from exc
        fleet = Fleet(
            [
                ClusterMember(
                    c,
                    policy=policy,
                    probe_interval=self.probe_interval,
                    probe_timeout=self.probe_timeout,
                    watch_timeout=self.watch_timeout,
                )
                for c in configs
            ]
        )
        book = ReservationBook(ttl=self.reservation_ttl)
        metrics = Metrics(fleet.inventories, fleet.health, lambda: len(book))
        sweeper = LeftoverSweeper(
            fleet,
            HubServers(self.api_url, self.api_token, timeout=self.probe_timeout),
            interval=self.leftover_sweep_interval,
            grace=self.leftover_grace,
            request_timeout=self.probe_timeout,
            on_removed=lambda x: metrics.leftovers.labels(x.cluster).inc(),
        )
        await fleet.start()
        if self.leftover_sweep_interval > 0:
            sweeper.start()
        url = urlparse(self.bind_url)
        server = HTTPServer(self.make_app(fleet, book, metrics), xheaders=True)
        try:
            server.listen(url.port or 80, url.hostname or "127.0.0.1")
            self.log.info(
                "hybridhub service at %s%s for clusters %s",
                self.bind_url.rstrip("/"),
                self.service_prefix,
                ", ".join(c.name for c in configs),
            )
            await stop.wait()
        finally:
            server.stop()
            await sweeper.stop()
            await fleet.stop()

    def start(self) -> None:
        async def run() -> None:
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.add_signal_handler(sig, stop.set)
            await self.serve(stop)

        asyncio.run(run())


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = HybridHubService()
    app.initialize(argv)
    app.start()
    return 0
