"""``hybridhub ssh-gateway``: the settings of the SSH gateway beside the hub, its host key, and running it."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import asyncssh
from traitlets import Bool, Float, Integer, List, TraitError, Unicode, default, validate
from traitlets.config import Application

from .cli import _supported
from .gateway import Gateway, GatewayOptions
from .gateway_api import GatewayAPI
from .policy import DEFAULT_CIPHERS, DEFAULT_KEX, DEFAULT_MACS
from .server import Limits

__all__ = ["GatewayApp", "load_host_key", "main"]

log = logging.getLogger(__name__)


def load_host_key(key_file: str) -> asyncssh.SSHKey:
    """The gateway's host key from ``key_file``, made there (mode 0600) on first start. The gateway is
    one stable address, so its key is kept, unlike the pods' servers' ephemeral keys."""
    path = Path(key_file)
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        key = asyncssh.generate_private_key("ssh-ed25519")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(key.export_private_key())
        log.info("made the gateway's host key %s (%s)", path, key.get_fingerprint())
    elif path.stat().st_mode & 0o077:
        raise ValueError(f"{path} may be read by others (mode {path.stat().st_mode & 0o777:o}): chmod 600 it")
    return asyncssh.read_private_key(str(path))


class GatewayApp(Application):
    """The SSH gateway: one stable address through which hub users reach their notebooks' SSH servers
    (``ssh -J``), authenticated with the keys they registered with the hybridhub service."""

    name = "hybridhub-ssh-gateway"
    description = __doc__
    aliases = {
        "ip": "GatewayApp.ip",
        "port": "GatewayApp.port",
        "config": "GatewayApp.config_file",
        "host-key": "GatewayApp.host_key_file",
        "log-level": "Application.log_level",
    }
    flags = {
        "start-servers": (
            {"GatewayApp": {"start_servers": True}},
            "start a stopped server when its owner jumps to it, waiting up to start_timeout",
        ),
    }

    config_file = Unicode(
        "",
        config=True,
        help="""Python config file to load (traitlets), setting ``c.GatewayApp.*``, e.g.
        ``/etc/hybridhub/ssh_gateway_config.py``. Empty: none.""",
    )
    ip = Unicode("0.0.0.0", config=True, help="Address to listen on, e.g. ``0.0.0.0`` or ``127.0.0.1``.")
    port = Integer(
        2222, config=True, help="Port to listen on, e.g. 2222 (the Service maps 22 to it); 0: any (tests)."
    )
    pod_ssh_port = Integer(
        2222,
        config=True,
        help="""The port of the SSH server in each notebook pod, e.g. 2222 (HybridSpawner's
        ``ssh_port``): every jump goes there, whatever port the client names.""",
    )
    api_url = Unicode(
        config=True,
        help="The hub's REST API, e.g. ``http://hub:8081/hub/api``. Default: $JUPYTERHUB_API_URL.",
    )
    service_url = Unicode(
        config=True,
        help="""The hybridhub service's base URL with its prefix, e.g.
        ``http://hub:8081/services/hybridhub/``. Default: $HYBRIDHUB_SERVICE_URL.""",
    )
    api_token = Unicode(
        config=True,
        help="""The gateway's hub API token (a hub service's): scopes read:users, read:servers,
        read:shares, custom:hybridhub:servers, and servers with start_servers. Never logged. Default:
        $JUPYTERHUB_API_TOKEN.""",
    )
    hub_public_url = Unicode(
        config=True,
        help="""The hub's address as users open it, e.g. ``https://hub.example.org``: refusals name the
        page where a server's start can be followed. Default: $JUPYTERHUB_PUBLIC_URL, else the
        origin of api_url.""",
    )
    host_key_file = Unicode(
        "/srv/hybridhub/ssh-gateway/host_key",
        config=True,
        help="""The gateway's private host key (OpenSSH format), made on first start with mode 0600, e.g.
        on a volume (a Secret in Kubernetes) so that clients see the same key after a restart.""",
    )
    certify = Bool(
        True,
        config=True,
        help="""Whether the gateway asks the hybridhub service's SSH CA to sign its host key (and renews
        the certificate at half its life), so that clients trusting the CA line of their config
        snippet accept the gateway too. The service signs for the host of its
        ``ssh_gateway_address``. Off, or while the service cannot sign: the plain key, which clients
        then pin in their known_hosts.""",
    )
    host_certificate_file = Unicode(
        "",
        config=True,
        help="""A host certificate for that key made otherwise (your own CA), e.g.
        ``/srv/hybridhub/ssh-gateway/host_key-cert.pub``; with ``certify`` off. Empty: none.""",
    )
    start_servers = Bool(
        False,
        config=True,
        help="""Whether a jump to a stopped server of the user's starts it (as opening /user/NAME in a
        browser does). Off: the jump is refused with the URL that starts it.""",
    )
    start_timeout = Float(
        120.0,
        config=True,
        help="""Seconds a jump waits for a starting server to be ready, e.g. 120; then it fails with
        the URL of the server's progress page.""",
    )
    connect_timeout = Float(
        10.0, config=True, help="Seconds to connect to a pod's SSH server, e.g. 10. More than 0."
    )
    request_timeout = Float(
        10.0, config=True, help="Seconds one request to the hub or the service may take, e.g. 10."
    )
    keys_ttl = Float(
        60.0,
        config=True,
        help="""Seconds a user's registered keys are kept before they are fetched again, e.g. 60: how
        long a removed key still works at the gateway. An unknown key is checked at once.""",
    )
    token_as_password = Bool(
        False,
        config=True,
        help="""Whether a user's JupyterHub API token is accepted as the SSH password, under the
        token owner's own name. Plain passwords are never accepted.""",
    )
    max_auth_tries = Integer(6, config=True, help="Failed attempts before a connection is closed, e.g. 6.")
    login_grace_time = Float(
        30.0, config=True, help="Seconds a client has to authenticate after connecting, e.g. 30."
    )
    max_unauthenticated = Integer(
        100,
        config=True,
        help="""Most connections not yet authenticated; more are closed at once, e.g. 100 (every
        user's connections meet here, so more than a notebook's server allows).""",
    )
    ciphers = List(
        Unicode(), list(DEFAULT_CIPHERS), config=True, help="Ciphers offered (AES-GCM by default)."
    )
    macs = List(Unicode(), list(DEFAULT_MACS), config=True, help="MACs offered with a non-GCM cipher.")
    kex_algorithms = List(
        Unicode(), list(DEFAULT_KEX), config=True, help="Key exchange algorithms offered (strict kex always)."
    )
    keepalive_interval = Float(
        60.0, config=True, help="Seconds of silence before the client is checked, e.g. 60; 0 turns it off."
    )

    @default("api_url")
    def _default_api_url(self) -> str:
        return os.environ.get("JUPYTERHUB_API_URL", "")

    @default("service_url")
    def _default_service_url(self) -> str:
        return os.environ.get("HYBRIDHUB_SERVICE_URL", "")

    @default("api_token")
    def _default_api_token(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    @default("hub_public_url")
    def _default_hub_public_url(self) -> str:
        url = urlparse(self.api_url)
        return os.environ.get("JUPYTERHUB_PUBLIC_URL") or (
            f"{url.scheme}://{url.netloc}" if url.netloc else ""
        )

    @validate("port", "pod_ssh_port")
    def _check_port(self, proposal: dict[str, Any]) -> int:
        value: int = proposal["value"]
        if not 0 <= value <= 65535:
            raise TraitError(f"GatewayApp.{proposal['trait'].name}: must be 0 to 65535, got {value}")
        return value

    @validate("max_auth_tries", "max_unauthenticated")
    def _check_count(self, proposal: dict[str, Any]) -> int:
        value: int = proposal["value"]
        if value < 1:
            raise TraitError(f"GatewayApp.{proposal['trait'].name}: must be 1 or more, got {value}")
        return value

    @validate("start_timeout", "connect_timeout", "request_timeout", "keys_ttl", "login_grace_time")
    def _check_positive(self, proposal: dict[str, Any]) -> float:
        value: float = proposal["value"]
        if not 0 < value < float("inf"):
            raise TraitError(f"GatewayApp.{proposal['trait'].name}: must be a number of seconds over 0")
        return value

    @validate("ciphers", "macs", "kex_algorithms")
    def _check_algorithms(self, proposal: dict[str, Any]) -> list[str]:
        name = proposal["trait"].name
        value: list[str] = list(proposal["value"])
        unknown = sorted(set(value) - _supported(name))
        if not value or unknown:
            raise TraitError(f"GatewayApp.{name}: name supported algorithms; not supported: {unknown}")
        return value

    def initialize(self, argv: list[str] | None = None) -> None:
        super().initialize(argv)
        if self.config_file:
            if not os.path.exists(self.config_file):
                raise SystemExit(f"hybridhub ssh-gateway: config file {self.config_file} not found")
            self.load_config_file(self.config_file)

    def missing(self) -> list[str]:
        needed = {
            "api_url": "the hub's API URL (JUPYTERHUB_API_URL)",
            "service_url": "the service's URL (HYBRIDHUB_SERVICE_URL)",
            "api_token": "the gateway's hub token (JUPYTERHUB_API_TOKEN)",
        }
        return [text for name, text in needed.items() if not getattr(self, name)]

    def make_gateway(self) -> Gateway:
        """The gateway these settings describe, not yet started (tests start it on port 0)."""
        api = GatewayAPI(
            api_url=self.api_url,
            service_url=self.service_url,
            token=self.api_token,
            timeout=self.request_timeout,
        )
        options = GatewayOptions(
            ip=self.ip,
            port=self.port,
            pod_ssh_port=self.pod_ssh_port,
            limits=Limits(
                max_auth_tries=self.max_auth_tries,
                login_grace_time=self.login_grace_time,
                max_unauthenticated=self.max_unauthenticated,
            ),
            ciphers=tuple(self.ciphers),
            macs=tuple(self.macs),
            kex=tuple(self.kex_algorithms),
            token_as_password=self.token_as_password,
            start_servers=self.start_servers,
            start_timeout=self.start_timeout,
            connect_timeout=self.connect_timeout,
            hub_public_url=self.hub_public_url,
            keys_ttl=self.keys_ttl,
            keepalive_interval=self.keepalive_interval,
        )
        certificate = (
            asyncssh.read_certificate(self.host_certificate_file) if self.host_certificate_file else None
        )
        certify = self.certify and certificate is None
        return Gateway(options, api, load_host_key(self.host_key_file), certificate, certify=certify)

    async def run(self) -> int:
        missing = self.missing()
        if missing:
            log.error("hybridhub ssh-gateway: not configured: %s", "; ".join(missing))
            return 2
        try:
            gateway = self.make_gateway()
        except (OSError, ValueError, asyncssh.KeyImportError) as exc:
            log.error("hybridhub ssh-gateway: the host key cannot be used: %s", exc)
            return 2
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        try:
            await gateway.start()
        except OSError as exc:
            log.error("hybridhub ssh-gateway: cannot listen on %s:%d: %s", self.ip, self.port, exc)
            await gateway.stop()
            return 1
        try:
            await stop.wait()
        finally:
            await gateway.stop()
        return 0


def main(argv: list[str]) -> int:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    app = GatewayApp()
    try:
        app.initialize(argv)
    except TraitError as exc:
        print(f"hybridhub ssh-gateway: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(app.run())
