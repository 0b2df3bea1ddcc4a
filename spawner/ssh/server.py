"""The SSH server of one notebook: listens, authenticates, applies the limits, and serves sessions,
SFTP and loopback forwarding."""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass
from typing import cast

import asyncssh
from asyncssh.channel import SSHChannel

from .activity import ActivityReporter
from .coalesce import coalesce_writes
from .gcm import open_in_one_pass, seal_in_one_pass, use_kept_aesgcm
from .hostcert import HostIdentity, HostKeyPair
from .hubapi import APIError, HubAPI
from .ignores import drop_aead_ignores
from .keys import ClientKeys
from .policy import forward_refusal, token_user_allowed
from .sessions import HomeSFTPServer, SessionProcess, SessionSettings

__all__ = ["Limits", "PodSSHServer", "ServerOptions"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Limits:
    """What one client may cost the server before it has logged in."""

    max_auth_tries: int
    login_grace_time: float
    max_unauthenticated: int


@dataclass(frozen=True)
class ServerOptions:
    """Everything the server needs besides its collaborators; built from the settings in one place."""

    ip: str
    port: int
    owner: str
    limits: Limits
    session: SessionSettings
    ciphers: tuple[str, ...]
    macs: tuple[str, ...]
    kex: tuple[str, ...]
    token_as_password: bool
    agent_forwarding: bool
    keepalive_interval: float


class _Connection(asyncssh.SSHServer):
    """One client connection: counts its failures and holds its slot among the unauthenticated."""

    def __init__(self, server: PodSSHServer) -> None:
        self._server = server
        self._conn: asyncssh.SSHServerConnection | None = None
        self._failures = 0
        self._counted = False
        self._login = ""

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        self._conn = conn
        if self._server.unauthenticated >= self._server.options.limits.max_unauthenticated:
            log.warning(
                "refused a connection: %d unauthenticated connections already", self._server.unauthenticated
            )
            # before the version exchange no disconnect message can be sent: close, as sshd's MaxStartups does
            conn.abort()
            return
        self._server.unauthenticated += 1
        self._counted = True
        coalesce_writes(conn)  # one send() per turn of the loop, not one per packet
        drop_aead_ignores(conn)  # no SSH_MSG_IGNORE before each packet: AES-GCM needs none
        seal_in_one_pass(conn)  # a session's packets built, sealed and sent without copies
        open_in_one_pass(conn)  # and its channel data and window adjusts opened where they lie

    def _release(self) -> None:
        if self._counted:
            self._counted = False
            self._server.unauthenticated -= 1

    def connection_lost(self, exc: Exception | None) -> None:
        self._release()
        if self._login:
            self._server.activity.session_closed()

    async def begin_auth(self, username: str) -> bool:
        self._login = ""
        keys = await self._server.client_keys.for_login(username)
        if self._conn is not None:
            # set even when None: a client may change its user name between attempts, and the keys of
            # the name it tried first must not log it in under the next (asyncssh 2.24 resets them too)
            self._conn.set_authorized_keys(keys)
        return True

    def auth_completed(self) -> None:
        if self._conn is None:
            return
        self._login = self._conn.get_extra_info("username") or "?"
        self._release()
        self._server.activity.session_opened()
        peer = self._conn.get_extra_info("peername")
        log.info("%s logged in from %s", self._login, peer[0] if peer else "?")

    def _failed(self) -> None:
        self._failures += 1
        if self._failures >= self._server.options.limits.max_auth_tries and self._conn is not None:
            self._conn.disconnect(
                asyncssh.DISC_NO_MORE_AUTH_METHODS_AVAILABLE, "Too many authentication failures"
            )

    def public_key_auth_supported(self) -> bool:
        return True

    async def validate_public_key(self, username: str, key: asyncssh.SSHKey) -> bool:
        # asyncssh asks here only for a key that is in neither the registered copy nor authorized_keys
        keys = self._server.client_keys
        await keys.refresh_for_unknown_key(key)
        if keys.registered_key_matches(username, key):
            return True
        self._failed()
        return False

    def password_auth_supported(self) -> bool:
        return self._server.options.token_as_password

    def kbdint_auth_supported(self) -> bool:
        return False

    async def validate_password(self, username: str, password: str) -> bool:
        if not self._server.options.token_as_password:
            return False
        try:
            model = await self._server.api.token_owner(password)
        except APIError as exc:
            if exc.status not in (401, 403):
                log.warning("could not check a token with the hub: %s", exc.message)
            self._failed()
            return False
        if token_user_allowed(model, username, self._server.options.owner):
            return True
        self._failed()
        return False

    def session_requested(self) -> SessionProcess:
        return SessionProcess(self._server.options.session, self._server.sftp_factory)

    def connection_requested(self, dest_host: str, dest_port: int, orig_host: str, orig_port: int) -> bool:
        refusal = forward_refusal(dest_host, dest_port)
        if refusal:
            log.info("%s: %s", self._login, refusal)
            raise asyncssh.ChannelOpenError(asyncssh.OPEN_ADMINISTRATIVELY_PROHIBITED, refusal)
        return True

    def server_requested(self, listen_host: str, listen_port: int) -> bool:
        return False  # no -R: nothing listens on the notebook's behalf


class PodSSHServer:
    """Owns the listener and the background tasks (host certificate, keys, activity): ``start()`` listens
    once a host certificate is in hand, ``stop()`` closes everything."""

    def __init__(
        self,
        options: ServerOptions,
        api: HubAPI,
        identity: HostIdentity,
        client_keys: ClientKeys,
        activity: ActivityReporter,
    ) -> None:
        self.options = options
        self.api = api
        self.identity = identity
        self.client_keys = client_keys
        self.activity = activity
        self.unauthenticated = 0
        self._acceptor: asyncssh.SSHAcceptor | None = None

    def sftp_factory(self, chan: SSHChannel[bytes]) -> asyncssh.SFTPServer:
        # asyncssh calls this only with the server channel of an SFTP session
        server = HomeSFTPServer(cast("asyncssh.SSHServerChannel[bytes]", chan))
        server.home = self.options.session.home.encode()
        return server

    @property
    def port(self) -> int:
        """The port listened on (the one the OS chose when configured as 0)."""
        if self._acceptor is None:
            raise RuntimeError("the SSH server is not listening")
        return int(self._acceptor.get_port())

    def _host_key_changed(self, pair: HostKeyPair) -> None:
        if self._acceptor is not None:
            self._acceptor.update(server_host_keys=[pair])

    async def start(self) -> bool:
        """Start listening once the first host certificate is in hand; False if stopped before that."""
        self.client_keys.start()
        self.activity.start()
        if not await self.identity.start() or self.identity.pair is None:
            return False
        use_kept_aesgcm()  # one AES-GCM context per key, not one per packet
        limits = self.options.limits
        self._acceptor = await asyncssh.listen(
            self.options.ip or None,
            self.options.port,
            server_factory=functools.partial(_Connection, self),
            server_host_keys=[self.identity.pair],
            encryption_algs=list(self.options.ciphers),
            mac_algs=list(self.options.macs),
            kex_algs=list(self.options.kex),
            compression_algs=["none"],
            allow_scp=False,
            agent_forwarding=self.options.agent_forwarding,
            x11_forwarding=False,
            login_timeout=limits.login_grace_time,
            keepalive_interval=self.options.keepalive_interval,
            line_editor=False,
            encoding=None,
            window=2 * 1024 * 1024,
            max_pktsize=32768,
        )
        self.identity.on_change = self._host_key_changed
        log.info(
            "SSH server for %s listening on %s:%d", self.identity.principal, self.options.ip or "*", self.port
        )
        return True

    async def stop(self) -> None:
        if self._acceptor is not None:
            self._acceptor.close()
            await self._acceptor.wait_closed()
            self._acceptor = None
        await self.identity.stop()
        await self.client_keys.stop()
        await self.activity.stop()
        await self.api.close()
