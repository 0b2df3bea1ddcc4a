"""The SSH gateway beside the hub: authenticates hub users and opens their ProxyJump channels to the SSH
server in the pod of a notebook they may reach, starting it first when so configured.

Encryption stays end to end: the gateway only carries the bytes of the client's second SSH connection
(``ssh -J``) to the pod's server, which authenticates the user again and proves its own name with a
host certificate. The gateway holds no key of the pods and sees nothing of the sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections.abc import Awaitable
from dataclasses import dataclass

import asyncssh
from asyncssh.forward import SSHForwarder

from .channeldata import send_channel_data
from .coalesce import coalesce_writes
from .gateway_api import GatewayAPI, ServerState
from .gateway_policy import Target, may_reach, progress_url, target_candidates, valid_target
from .gcm import open_in_one_pass, seal_in_one_pass, use_kept_aesgcm
from .hubapi import APIError
from .ignores import drop_aead_ignores
from .policy import backoff_delay, renew_delay
from .server import Limits

__all__ = ["Gateway", "GatewayOptions", "KeyCache"]

log = logging.getLogger(__name__)

# Longest user name the gateway looks up: JupyterHub's column holds 255 characters.
_MAX_LOGIN = 255
_HELP = (
    "This is the hub's SSH gateway: it opens no shell of its own. Use it as a jump host to reach your\n"
    "notebook, e.g.  ssh -J {login}@{gateway} {login}  (the hybridhub SSH keys page gives a ready\n"
    "~/.ssh/config snippet).\n"
)


@dataclass(frozen=True)
class GatewayOptions:
    """Everything the gateway needs besides its collaborators; built from the settings in one place."""

    ip: str
    port: int
    pod_ssh_port: int
    limits: Limits
    ciphers: tuple[str, ...]
    macs: tuple[str, ...]
    kex: tuple[str, ...]
    token_as_password: bool
    start_servers: bool
    start_timeout: float
    connect_timeout: float
    hub_public_url: str
    keys_ttl: float
    keepalive_interval: float


class KeyCache:
    """Each user's registered public keys, fetched from the service at most every ``ttl`` seconds, so
    a removed key stops working within ``ttl``; a key the copy lacks makes a fetch at once, so that a
    key just registered works. Each unknown key does so at most once every ``per_key_interval``
    seconds, and unknown keys together at most ``unknown_per_second`` times a second, so a client
    offering made-up keys cannot make the gateway hammer the service."""

    def __init__(
        self,
        api: GatewayAPI,
        *,
        ttl: float,
        per_key_interval: float = 10.0,
        unknown_per_second: float = 5.0,
    ) -> None:
        self._api = api
        self.ttl = ttl
        self.per_key_interval = per_key_interval
        self.unknown_spacing = 1.0 / unknown_per_second
        self._keys: dict[str, tuple[float, tuple[asyncssh.SSHKey, ...]]] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._unknown: dict[bytes, float] = {}  # public key data -> when it last made a fetch
        self._last_unknown = float("-inf")

    async def _fetch(self, user: str) -> tuple[asyncssh.SSHKey, ...]:
        lines = await self._api.registered_keys(user)
        keys = []
        for line in lines:
            try:
                keys.append(asyncssh.import_public_key(line))
            except (asyncssh.KeyImportError, ValueError):
                log.warning("a registered key of %s cannot be read; skipped", user)
        if len(self._keys) > 10_000:  # bounded: a scan of made-up user names cannot fill memory
            self._keys.clear()
        self._keys[user] = (time.monotonic(), tuple(keys))
        return tuple(keys)

    def _may_fetch_for(self, key: asyncssh.SSHKey) -> bool:
        """Whether an unknown ``key`` may make a fetch now (and count it when so)."""
        now = time.monotonic()
        if len(self._unknown) > 10_000:
            self._unknown.clear()
        if now - self._unknown.get(key.public_data, float("-inf")) < self.per_key_interval:
            return False
        if now - self._last_unknown < self.unknown_spacing:
            return False
        self._unknown[key.public_data] = self._last_unknown = now
        return True

    async def matches(self, user: str, key: asyncssh.SSHKey) -> bool:
        """Whether ``key`` is one ``user`` registered; False when the service cannot say."""
        if len(self._locks) > 10_000:
            self._locks.clear()  # a lock dropped while held only lets a second fetch run beside it
        async with self._locks.setdefault(user, asyncio.Lock()):
            fetched, keys = self._keys.get(user, (float("-inf"), ()))
            stale = time.monotonic() - fetched >= self.ttl
            try:
                if stale or (not _holds(keys, key) and self._may_fetch_for(key)):
                    keys = await self._fetch(user)
            except APIError as exc:
                # the last copy stays, however old: a service restart does not lock everyone out
                log.warning("cannot read the registered keys of %s: %s", user, exc.message)
        return _holds(keys, key)


def _holds(keys: tuple[asyncssh.SSHKey, ...], key: asyncssh.SSHKey) -> bool:
    return any(k.public_data == key.public_data for k in keys)


class _ChannelSide(SSHForwarder):
    """The client's channel end of a tunnel. asyncssh's own forwarder drops what the pod's server
    sends before the channel is confirmed open (its write() has no transport yet), and an SSH server
    speaks first: its version banner was lost now and then. This end keeps it until it can send.
    What it relays goes out without asyncssh's copies (``send_channel_data``)."""

    def __init__(self, peer: SSHForwarder) -> None:
        self._pending = b""
        self._pending_eof = False
        super().__init__(peer)

    def write(self, data: bytes) -> None:
        if self._transport is None:
            self._pending += data
        else:
            with contextlib.suppress(OSError):  # as asyncssh's forwarder: a channel closing drops it
                send_channel_data(self._transport, data)

    def write_eof(self) -> None:
        if self._transport is None:
            self._pending_eof = True
        else:
            super().write_eof()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        pending, self._pending = self._pending, b""
        if pending:
            super().write(pending)
        if self._pending_eof:
            super().write_eof()


async def _connect(ip: str, port: int) -> _ChannelSide:
    """A TCP connection to the pod's SSH server, as the far end of a channel's forwarder."""
    try:
        _, pod = await asyncio.get_running_loop().create_connection(SSHForwarder, ip, port)
    except OSError as exc:
        raise asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, str(exc)) from None
    return _ChannelSide(pod)


def _refused(message: str) -> asyncssh.ChannelOpenError:
    return asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, message)


def _failed(message: str) -> asyncssh.ChannelOpenError:
    return asyncssh.ChannelOpenError(asyncssh.OPEN_CONNECT_FAILED, message)


class _Connection(asyncssh.SSHServer):
    """One client: counts its failed attempts, holds its slot among the unauthenticated, and turns
    each jump request into a tunnel to the pod's SSH server."""

    def __init__(self, gateway: Gateway) -> None:
        self._gateway = gateway
        self._conn: asyncssh.SSHServerConnection | None = None
        self._failures = 0
        self._counted = False
        self.login = ""

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        if self._gateway.unauthenticated >= self._gateway.options.limits.max_unauthenticated:
            log.warning(
                "refused a connection: %d unauthenticated connections already", self._gateway.unauthenticated
            )
            conn.abort()  # before the version exchange no message can be sent, as sshd's MaxStartups
            return
        self._gateway.unauthenticated += 1
        self._counted = True
        coalesce_writes(conn)  # one send() per turn of the loop, not one per packet
        drop_aead_ignores(conn)  # no SSH_MSG_IGNORE before each packet: AES-GCM needs none
        seal_in_one_pass(conn)  # a session's packets built, sealed and sent without copies
        open_in_one_pass(conn)  # and its channel data and window adjusts opened where they lie

    def _release(self) -> None:
        if self._counted:
            self._counted = False
            self._gateway.unauthenticated -= 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()

    def begin_auth(self, username: str) -> bool:
        return True

    def auth_completed(self) -> None:
        assert self._conn is not None
        self.login = self._conn.get_extra_info("username") or ""
        self._release()
        peer = self._conn.get_extra_info("peername")
        log.info("%s logged in to the gateway from %s", self.login, peer[0] if peer else "?")

    def _failed_attempt(self) -> None:
        self._failures += 1
        if self._failures >= self._gateway.options.limits.max_auth_tries and self._conn is not None:
            self._conn.disconnect(
                asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, "Too many authentication failures"
            )

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        if _login_ok(username) and await self._gateway.keys.matches(username, key):
            return True
        self._failed_attempt()
        return False

    def password_auth_supported(self) -> bool:
        return self._gateway.options.token_as_password

    def kbdint_auth_supported(self) -> bool:
        return False

    async def validate_password(self, username: str, password: str) -> bool:
        if self._gateway.options.token_as_password and _login_ok(username) and 0 < len(password) <= 1024:
            try:
                model = await self._gateway.api.token_owner(password)
            except APIError as exc:
                log.warning("could not check a token with the hub: %s", exc.message)
                model = None
            if model is not None and model.get("kind", "user") == "user" and model.get("name") == username:
                return True
        self._failed_attempt()
        return False

    def session_requested(self) -> asyncssh.SSHServerProcess[str]:
        gateway = self._gateway
        return asyncssh.SSHServerProcess(functools.partial(_explain, gateway, self.login), None, 3, False)

    def connection_requested(
        self, dest_host: str, dest_port: int, orig_host: str, orig_port: int
    ) -> Awaitable[asyncssh.SSHTCPSession[bytes]]:
        return self._gateway.tunnel(self.login, dest_host)

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False  # nothing listens on a user's behalf at the gateway


def _login_ok(username: str) -> bool:
    return 0 < len(username) <= _MAX_LOGIN and username.isprintable()


def _explain(gateway: Gateway, login: str, process: asyncssh.SSHServerProcess[str]) -> None:
    """A shell or command asked of the gateway itself: say how to use it, exit 1."""
    where = gateway.options.ip if gateway.options.ip not in ("", "0.0.0.0", "::") else "this-gateway"
    process.stderr.write(_HELP.format(login=login or "you", gateway=where))
    process.exit(1)


class Gateway:
    """Owns the listener; ``start()`` listens, ``stop()`` closes it and the API session."""

    def __init__(
        self,
        options: GatewayOptions,
        api: GatewayAPI,
        host_key: asyncssh.SSHKey,
        certificate: asyncssh.SSHCertificate | None = None,
        *,
        certify: bool = False,
    ) -> None:
        self.options = options
        self.api = api
        self.host_key = host_key
        self.certificate = certificate
        self.certify = certify  # ask the service's CA for a host certificate, and renew it
        self.keys = KeyCache(api, ttl=options.keys_ttl)
        self.unauthenticated = 0
        self._acceptor: asyncssh.SSHAcceptor | None = None
        self._renewing: asyncio.Task[None] | None = None

    @property
    def host_keys(self) -> list[asyncssh.SSHKey | tuple[asyncssh.SSHKey, asyncssh.SSHCertificate]]:
        return [(self.host_key, self.certificate)] if self.certificate is not None else [self.host_key]

    async def _get_certificate(self) -> float | None:
        """A fresh host certificate from the service; when it is valid until, or None on failure."""
        public = self.host_key.export_public_key().decode().strip()
        try:
            line, valid_before = await self.api.gateway_certificate(public)
            self.certificate = asyncssh.import_certificate(line)
        except (APIError, asyncssh.KeyImportError, ValueError) as exc:
            log.warning("no host certificate from the service's CA: %s", getattr(exc, "message", exc))
            return None
        if self._acceptor is not None:
            self._acceptor.update(server_host_keys=self.host_keys)
        log.info("host certificate from the service's CA, valid for %.0f s", valid_before - time.time())
        return valid_before

    async def _renew(self, valid_before: float | None) -> None:
        """Renew the certificate at half its remaining life; after a failure, retry with backoff."""
        failures = 0
        while True:
            if valid_before is None:
                delay = backoff_delay(failures, first=1.0, cap=60.0)
                failures += 1
            else:
                delay, failures = renew_delay(time.time(), valid_before), 0
            await asyncio.sleep(delay)
            valid_before = await self._get_certificate()

    @property
    def port(self) -> int:
        assert self._acceptor is not None
        return int(self._acceptor.get_port())

    async def start(self) -> None:
        valid_before = await self._get_certificate() if self.certify else None
        use_kept_aesgcm()  # one AES-GCM context per key, not one per packet
        limits = self.options.limits
        self._acceptor = await asyncssh.listen(
            self.options.ip or None,
            self.options.port,
            server_factory=functools.partial(_Connection, self),
            server_host_keys=self.host_keys,
            encryption_algs=list(self.options.ciphers),
            mac_algs=list(self.options.macs),
            kex_algs=list(self.options.kex),
            compression_algs=["none"],
            allow_scp=False,
            agent_forwarding=False,
            x11_forwarding=False,
            login_timeout=limits.login_grace_time,
            keepalive_interval=self.options.keepalive_interval,
            line_editor=False,
            window=2 * 1024 * 1024,
            max_pktsize=32768,
        )
        log.info("SSH gateway listening on %s:%d", self.options.ip or "*", self.port)
        if self.certify:
            self._renewing = asyncio.create_task(self._renew(valid_before), name="gateway-certificate")

    async def stop(self) -> None:
        if self._renewing is not None:
            self._renewing.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewing
            self._renewing = None
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None
        await self.api.close()

    # ------------------------------------------------------------------ tunnels

    async def tunnel(self, login: str, host: str) -> asyncssh.SSHTCPSession[bytes]:
        """The channel to ``host``'s SSH server, or ChannelOpenError with what the client should read."""
        try:
            target = await self._reachable(login, host)
            ip = await self._running(target)
        except APIError as exc:
            log.warning("%s -> %s: the hub or the service did not answer: %s", login, host[:80], exc.message)
            raise _failed("the hub cannot say where that server runs now; try again shortly") from None
        except asyncssh.ChannelOpenError as exc:
            log.info("%s -> %s: %s", login, host[:80], exc.reason)
            raise
        except Exception:
            log.exception("%s -> %s: the jump failed", login, host[:80])
            raise _failed("the gateway failed to open this jump; its log says why") from None
        try:
            session = await asyncio.wait_for(
                _connect(ip, self.options.pod_ssh_port), self.options.connect_timeout
            )
        except TimeoutError:
            raise _failed(
                f"{target.label}'s SSH server did not answer within {self.options.connect_timeout:g} s"
            ) from None
        log.info("%s -> %s: tunnel to %s:%d", login, target.label, ip, self.options.pod_ssh_port)
        return session  # type: ignore[return-value]

    async def _reachable(self, login: str, host: str) -> Target:
        """The server ``host`` names, if ``login`` may reach it; one refusal for "none" and "not
        yours", so that the gateway tells no one which users and servers exist."""
        nowhere = _refused(f"no server {host[:80]!r} that you may reach")
        if not valid_target(host):
            raise nowhere
        login_model = await self.api.user(login)
        if login_model is None:
            raise nowhere
        for target in target_candidates(host)[:8]:
            if target.owner == login:
                return target
            owner = await self.api.user(target.owner)
            if owner is None:
                continue
            if may_reach(login_model, target.owner):
                return target
            users, groups = await self.api.shared_with(target)
            in_groups = set(login_model.get("groups") or []) & groups
            if may_reach(login_model, target.owner, users) or in_groups:
                return target
            raise nowhere
        raise nowhere

    async def _running(self, target: Target) -> str:
        """The pod IP of ``target``'s server once the hub calls it ready, starting it when allowed."""
        owner = await self.api.user(target.owner)
        state = GatewayAPI.server_state(owner or {}, target.server)
        if state is None or not state.ready:
            if state is None or state.pending == "stop":
                if not self.options.start_servers:
                    raise _refused(
                        f"{target.label}'s server is not running; start it at "
                        f"{progress_url(self.options.hub_public_url, target)}"
                    )
                await self.api.start_server(target)
                log.info("starting %s's server for an SSH client", target.label)
            await self._until_ready(target)
        where = await self.api.where(target)
        ip = where.get("ip") if where else None
        if not isinstance(ip, str) or not ip:
            raise _failed(f"{target.label}'s server runs, but its pod has no address yet; try again shortly")
        return ip

    async def _until_ready(self, target: Target) -> None:
        deadline = time.monotonic() + self.options.start_timeout
        delay = 0.25
        while True:
            owner = await self.api.user(target.owner)
            state: ServerState | None = GatewayAPI.server_state(owner or {}, target.server)
            if state is not None and state.ready:
                return
            if state is None or time.monotonic() + delay > deadline:
                url = progress_url(self.options.hub_public_url, target)
                why = "did not start" if state is None else "is still starting"
                limit = self.options.start_timeout
                raise _failed(f"{target.label}'s server {why} within {limit:g} s; follow it at {url}")
            await asyncio.sleep(delay)
            delay = min(2 * delay, 2.0)
