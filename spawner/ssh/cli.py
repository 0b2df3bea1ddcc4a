"""``hybridhub ssh-server``: the settings of the notebook's SSH server, and running it (alone or beside
the notebook's command)."""

from __future__ import annotations

import asyncio
import logging
import os
import pwd
import signal
import sys
from typing import Any
from urllib.parse import urlparse

from traitlets import Bool, Float, Integer, List, TraitError, Unicode, default, validate
from traitlets.config import Application

from .activity import ActivityReporter
from .hostcert import HostIdentity
from .hubapi import HubAPI
from .keys import ClientKeys
from .policy import DEFAULT_CIPHERS, DEFAULT_KEX, DEFAULT_MACS, server_principal
from .server import Limits, PodSSHServer, ServerOptions
from .sessions import SessionSettings
from .supervise import run_child, split_command

__all__ = ["SSHServerApp", "main"]

log = logging.getLogger(__name__)

# Where Debian/Ubuntu, Fedora/RHEL and Alpine/Arch put OpenSSH's sftp-server.
_SFTP_SERVERS = (
    "/usr/lib/openssh/sftp-server",
    "/usr/libexec/openssh/sftp-server",
    "/usr/lib/ssh/sftp-server",
)


def _supported(kind: str) -> set[str]:
    """The algorithm names asyncssh can run, of one kind."""
    from asyncssh.encryption import get_encryption_algs
    from asyncssh.kex import get_kex_algs
    from asyncssh.mac import get_mac_algs

    found = {"ciphers": get_encryption_algs, "macs": get_mac_algs, "kex_algorithms": get_kex_algs}[kind]()
    return {name.decode() for name in found}


def _passwd() -> pwd.struct_passwd | None:
    try:
        return pwd.getpwuid(os.getuid())
    except KeyError:  # an arbitrary uid without a passwd entry, as OpenShift runs containers
        return None


class SSHServerApp(Application):
    """The SSH server in the notebook container: `ssh`, scp, sftp, rsync, -L/-D and VS Code into the
    notebook, as the notebook's user."""

    name = "hybridhub-ssh-server"
    description = __doc__
    aliases = {
        "ip": "SSHServerApp.ip",
        "port": "SSHServerApp.port",
        "home": "SSHServerApp.home",
        "config": "SSHServerApp.config_file",
        "log-level": "Application.log_level",
    }
    flags = {
        "token-as-password": (
            {"SSHServerApp": {"token_as_password": True}},
            "accept the owner's or an admin's JupyterHub API token as the SSH password",
        ),
    }

    config_file = Unicode(
        "",
        config=True,
        help="""Python config file to load (traitlets), setting ``c.SSHServerApp.*``, e.g.
        ``/etc/hybridhub/ssh_server_config.py``. Empty: none.""",
    )
    ip = Unicode(
        "0.0.0.0",
        config=True,
        help="""Address to listen on, e.g. ``0.0.0.0`` (every address of the pod: the gateway reaches
        the server by the pod's IP, and the singleuser NetworkPolicy admits only the gateway to the port)
        or ``127.0.0.1``.""",
    )
    port = Integer(
        2222,
        config=True,
        help="Port to listen on, e.g. 2222 (HybridSpawner's default); 0 lets the OS choose (tests).",
    )
    service_url = Unicode(
        config=True,
        help="""The hybridhub service's base URL with its prefix, e.g.
        ``http://hub:8081/services/hybridhub/``: where the host certificate, the CA and the registered
        keys come from. Default: $HYBRIDHUB_SERVICE_URL, which HybridSpawner sets.""",
    )
    api_url = Unicode(
        config=True,
        help="""The hub's REST API, e.g. ``http://hub:8081/hub/api``, to check a token given as the
        password. Default: $JUPYTERHUB_API_URL.""",
    )
    activity_url = Unicode(
        config=True,
        help="""Where SSH activity is reported, e.g. ``http://hub:8081/hub/api/users/alice/activity``.
        Empty: not reported. Default: $JUPYTERHUB_ACTIVITY_URL.""",
    )
    api_token = Unicode(
        config=True,
        help="""This server's own hub API token, sent to the service for the host certificate and the
        keys, and to the hub with activity. Never logged. Default: $JUPYTERHUB_API_TOKEN.""",
    )
    user = Unicode(
        config=True,
        help="The hub user who owns this server, e.g. ``alice``. Default: $JUPYTERHUB_USER.",
    )
    server_name = Unicode(
        config=True,
        help="""The server's name, empty for the default server, e.g. ``gpu``: the host certificate
        names ``alice`` or ``alice.gpu``. Default: $JUPYTERHUB_SERVER_NAME.""",
    )
    home = Unicode(
        config=True,
        help="""The directory sessions and SFTP start in, and $HOME in sessions, e.g. ``/home/jovyan``.
        In sidecar mode, the mount of the notebook's home volume. Default: $HOME of this process.""",
    )
    shell = Unicode(
        config=True,
        help="""The shell that runs commands (``shell -c CMD``) and interactive logins, e.g.
        ``/bin/bash``. Default: the user's login shell from the passwd entry, else /bin/sh.""",
    )
    sftp_server = Unicode(
        config=True,
        help="""OpenSSH's sftp-server program, run as the notebook's user for each SFTP session (and
        so for scp), e.g. ``/usr/lib/openssh/sftp-server``: its file I/O stays off the server's event
        loop and it offers OpenSSH's extensions. Empty: asyncssh's SFTP server, in the server process.
        Default: the first of the usual paths that exists in the image, else empty.""",
    )
    authorized_keys_file = Unicode(
        config=True,
        help="""The owner's own authorized_keys file, read at each login and honoured beside the keys
        registered with the service, e.g. ``/home/jovyan/.ssh/authorized_keys``; its options
        (``from=``, ``command=``, ``permitopen=``...) apply. Empty: only registered keys. Default:
        ``.ssh/authorized_keys`` in ``home``.""",
    )
    request_timeout = Float(
        10.0,
        config=True,
        help="Seconds one request to the hub or the service may take, e.g. 10. More than 0.",
    )
    certificate_retry_max = Float(
        60.0,
        config=True,
        help="""Most seconds between two tries to get a host certificate, e.g. 60: retries start at
        1 s and double up to this. The server does not listen until it has its first certificate.""",
    )
    keys_refresh_interval = Float(
        300.0,
        config=True,
        help="""Seconds between two fetches of the registered keys of the users allowed in, e.g. 300.
        A key the copy does not hold also triggers a fetch (see keys_min_refresh_interval), so this
        bounds how long a removed key or an ended share still works. At least 1.""",
    )
    keys_min_refresh_interval = Float(
        10.0,
        config=True,
        help="""Fewest seconds between two fetches of the registered keys caused by the same unknown
        key, e.g. 10 (unknown keys together cause at most five a second): a client offering keys that
        are not registered cannot make the server hammer the service, while a key just registered
        works at once. 0 or more.""",
    )
    activity_interval = Float(
        60.0,
        config=True,
        help="""Seconds between two SSH activity reports to the hub while a session is open, e.g. 60;
        the first goes when a session opens. At least 1 in production.""",
    )
    max_auth_tries = Integer(
        6,
        config=True,
        help="""Failed authentication attempts (keys not allowed, wrong tokens) after which a connection
        is closed, e.g. 6 (OpenSSH's MaxAuthTries). At least 1.""",
    )
    login_grace_time = Float(
        30.0,
        config=True,
        help="""Seconds a client has to authenticate after connecting, e.g. 30 (OpenSSH's
        LoginGraceTime). More than 0.""",
    )
    max_unauthenticated = Integer(
        10,
        config=True,
        help="""Most connections that have not yet authenticated; more are closed at once, e.g. 10
        (OpenSSH's MaxStartups). At least 1.""",
    )
    ciphers = List(
        Unicode(),
        list(DEFAULT_CIPHERS),
        config=True,
        help="""Ciphers offered, e.g. ``["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"]`` (the
        default). Clients pick the first of their own list the server offers and OpenSSH lists
        chacha20-poly1305 first, which this server runs at half the speed of AES-GCM.""",
    )
    macs = List(
        Unicode(),
        list(DEFAULT_MACS),
        config=True,
        help='MACs offered, used only with a non-GCM cipher, e.g. ``["hmac-sha2-256-etm@openssh.com"]``.',
    )
    kex_algorithms = List(
        Unicode(),
        list(DEFAULT_KEX),
        config=True,
        help="""Key exchange algorithms offered, e.g. ``["curve25519-sha256"]``. Strict key exchange
        (the Terrapin fix) is always on.""",
    )
    token_as_password = Bool(
        False,
        config=True,
        help="""Whether a JupyterHub API token is accepted as the SSH password: only the owner's or a
        hub admin's, logging in under their own hub name, checked with the hub at each login. Plain
        passwords are never accepted.""",
    )
    agent_forwarding = Bool(
        False,
        config=True,
        help="""Whether clients may forward their SSH agent into the notebook (``ssh -A``). Off: anyone
        who can run code in the notebook could use a forwarded agent.""",
    )
    keepalive_interval = Float(
        60.0,
        config=True,
        help="""Seconds of silence before the server checks the client is still there, e.g. 60; a
        client that misses three checks is dropped. 0 turns it off.""",
    )

    @default("service_url")
    def _default_service_url(self) -> str:
        return os.environ.get("HYBRIDHUB_SERVICE_URL", "")

    @default("api_url")
    def _default_api_url(self) -> str:
        return os.environ.get("JUPYTERHUB_API_URL", "")

    @default("activity_url")
    def _default_activity_url(self) -> str:
        return os.environ.get("JUPYTERHUB_ACTIVITY_URL", "")

    @default("api_token")
    def _default_api_token(self) -> str:
        return os.environ.get("JUPYTERHUB_API_TOKEN", "")

    @default("user")
    def _default_user(self) -> str:
        return os.environ.get("JUPYTERHUB_USER", "")

    @default("server_name")
    def _default_server_name(self) -> str:
        return os.environ.get("JUPYTERHUB_SERVER_NAME", "")

    @default("home")
    def _default_home(self) -> str:
        entry = _passwd()
        return os.environ.get("HOME") or (entry.pw_dir if entry else "/")

    @default("shell")
    def _default_shell(self) -> str:
        entry = _passwd()
        shell = entry.pw_shell if entry else ""
        return shell if shell and os.path.exists(shell) else "/bin/sh"

    @default("sftp_server")
    def _default_sftp_server(self) -> str:
        return next((path for path in _SFTP_SERVERS if os.access(path, os.X_OK)), "")

    @default("authorized_keys_file")
    def _default_authorized_keys_file(self) -> str:
        return os.path.join(self.home, ".ssh", "authorized_keys")

    @validate("port")
    def _check_port(self, proposal: dict[str, Any]) -> int:
        value: int = proposal["value"]
        if not 0 <= value <= 65535:
            raise TraitError(f"SSHServerApp.port: must be 0 to 65535, got {value}")
        return value

    @validate("max_auth_tries", "max_unauthenticated")
    def _check_count(self, proposal: dict[str, Any]) -> int:
        value: int = proposal["value"]
        if value < 1:
            raise TraitError(f"SSHServerApp.{proposal['trait'].name}: must be 1 or more, got {value}")
        return value

    @validate(
        "request_timeout",
        "certificate_retry_max",
        "login_grace_time",
        "keys_refresh_interval",
        "activity_interval",
    )
    def _check_positive(self, proposal: dict[str, Any]) -> float:
        value: float = proposal["value"]
        if not 0 < value < float("inf"):
            raise TraitError(f"SSHServerApp.{proposal['trait'].name}: must be a number of seconds over 0")
        return value

    @validate("keys_min_refresh_interval", "keepalive_interval")
    def _check_not_negative(self, proposal: dict[str, Any]) -> float:
        value: float = proposal["value"]
        if not 0 <= value < float("inf"):
            raise TraitError(f"SSHServerApp.{proposal['trait'].name}: must be 0 or more seconds")
        return value

    @validate("ciphers", "macs", "kex_algorithms")
    def _check_algorithms(self, proposal: dict[str, Any]) -> list[str]:
        name = proposal["trait"].name
        value: list[str] = list(proposal["value"])
        if not value:
            raise TraitError(f"SSHServerApp.{name}: must name at least one algorithm")
        unknown = sorted(set(value) - _supported(name))
        if unknown:
            raise TraitError(f"SSHServerApp.{name}: not supported by asyncssh here: {', '.join(unknown)}")
        return value

    @validate("service_url", "api_url")
    def _check_url(self, proposal: dict[str, Any]) -> str:
        value: str = proposal["value"]
        url = urlparse(value)
        if value and (url.scheme not in ("http", "https") or not url.hostname):
            raise TraitError(f"SSHServerApp.{proposal['trait'].name}: expected an http(s) URL, got {value!r}")
        return value

    def initialize(self, argv: list[str] | None = None) -> None:
        super().initialize(argv)
        if self.config_file:
            if not os.path.exists(self.config_file):
                raise SystemExit(f"hybridhub ssh-server: config file {self.config_file} not found")
            self.load_config_file(self.config_file)

    def missing(self) -> list[str]:
        """The settings without which the server cannot get a certificate, in words."""
        needed = {
            "service_url": "the service's URL (HYBRIDHUB_SERVICE_URL)",
            "api_token": "the server's hub token (JUPYTERHUB_API_TOKEN)",
            "user": "the owner's name (JUPYTERHUB_USER)",
        }
        if self.token_as_password:
            needed["api_url"] = "the hub's API URL (JUPYTERHUB_API_URL), for token_as_password"
        return [text for name, text in needed.items() if not getattr(self, name)]

    def make_server(self) -> PodSSHServer:
        """The server these settings describe, not yet started (tests start it on port 0)."""
        entry = _passwd()
        api = HubAPI(
            service_url=self.service_url,
            api_url=self.api_url,
            activity_url=self.activity_url,
            token=self.api_token,
            timeout=self.request_timeout,
        )
        options = ServerOptions(
            ip=self.ip,
            port=self.port,
            owner=self.user,
            limits=Limits(
                max_auth_tries=self.max_auth_tries,
                login_grace_time=self.login_grace_time,
                max_unauthenticated=self.max_unauthenticated,
            ),
            session=SessionSettings(
                shell=self.shell,
                home=self.home,
                login_name=entry.pw_name if entry else self.user,
                # the notebook's own environment, as its terminals get it
                environment=dict(os.environ),
                port=self.port,
                sftp_server=self.sftp_server,
            ),
            ciphers=tuple(self.ciphers),
            macs=tuple(self.macs),
            kex=tuple(self.kex_algorithms),
            token_as_password=self.token_as_password,
            agent_forwarding=self.agent_forwarding,
            keepalive_interval=self.keepalive_interval,
        )
        identity = HostIdentity(
            api, server_principal(self.user, self.server_name), retry_cap=self.certificate_retry_max
        )
        keys = ClientKeys(
            api,
            owner=self.user,
            authorized_keys_file=self.authorized_keys_file,
            refresh_interval=self.keys_refresh_interval,
            min_refresh_interval=self.keys_min_refresh_interval,
        )
        activity = ActivityReporter(api, server_name=self.server_name, interval=self.activity_interval)
        return PodSSHServer(options, api, identity, keys, activity)

    async def run(self, command: list[str]) -> int:
        """Serve until a signal (alone) or until ``command`` ends (beside the notebook); its exit code."""
        missing = self.missing()
        if missing and not command:
            log.error("hybridhub ssh-server: not configured: %s", "; ".join(missing))
            return 2
        server = None if missing else self.make_server()
        if missing:
            log.error("SSH server not started, the notebook runs without it: missing %s", "; ".join(missing))
        serving = asyncio.create_task(server.start()) if server else None
        try:
            if command:
                return await run_child(command)
            stop = asyncio.Event()
            loop = asyncio.get_running_loop()
            for sig in (signal.SIGTERM, signal.SIGINT):
                loop.add_signal_handler(sig, stop.set)
            if serving is None:  # not reached: alone, a missing setting returned above
                return 2
            stopped = asyncio.ensure_future(stop.wait())
            await asyncio.wait({serving, stopped}, return_when=asyncio.FIRST_COMPLETED)
            stopped.cancel()
            if serving.done() and serving.exception() is not None:
                log.error("SSH server failed: %s", serving.exception())
                return 1
            await stop.wait()
            return 0
        finally:
            if server is not None:
                await server.stop()
            if serving is not None:
                try:
                    await serving
                except OSError as exc:  # the port was taken: the notebook was served regardless
                    log.error("SSH server failed: %s", exc)


def main(argv: list[str]) -> int:
    own, command = split_command(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    logging.getLogger("asyncssh").setLevel(logging.WARNING)
    app = SSHServerApp()
    try:
        app.initialize(own)
    except TraitError as exc:
        print(f"hybridhub ssh-server: {exc}", file=sys.stderr)
        return 2
    return asyncio.run(app.run(command))
