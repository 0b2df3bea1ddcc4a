"""The server's host identity: an ephemeral key, and a short-lived certificate from the service, renewed."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

import asyncssh
from asyncssh.public_key import CERT_TYPE_HOST, SSHOpenSSHCertificate

from .hubapi import APIError, HubAPI
from .policy import backoff_delay, renew_delay
from .waiting import stopped_within

__all__ = ["CertificateProblem", "HostIdentity", "check_certificate"]

log = logging.getLogger(__name__)

HostKeyPair = tuple[asyncssh.SSHKey, asyncssh.SSHCertificate]


class CertificateProblem(Exception):
    """The service answered with a certificate this server must not present."""


def check_certificate(
    cert: asyncssh.SSHCertificate, key: asyncssh.SSHKey, ca: asyncssh.SSHKey, principal: str
) -> None:
    """Raise :class:`CertificateProblem` unless ``cert`` is a current host certificate of ``key`` for
    ``principal`` signed by ``ca``."""
    if not isinstance(cert, SSHOpenSSHCertificate):
        raise CertificateProblem("not an OpenSSH certificate")
    if cert.key.public_data != key.public_data:
        raise CertificateProblem("certifies another key than this server's")
    if cert.signing_key is None or cert.signing_key.public_data != ca.public_data:
        raise CertificateProblem("not signed by the service's CA")
    if principal not in cert.principals:
        raise CertificateProblem(f"names {list(cert.principals)}, not this server ({principal!r})")
    try:
        cert.validate(CERT_TYPE_HOST, principal)
    except ValueError as exc:
        raise CertificateProblem(f"{exc} (expected a host certificate for {principal!r})") from None


class HostIdentity:
    """Holds the host key pair the server presents; ``start()`` returns once a certificate is in hand.

    The private key lives only in this process's memory: a restart makes a new one, and the CA's
    signature is what clients trust. ``on_change`` is called with each renewed pair.
    """

    def __init__(
        self,
        api: HubAPI,
        principal: str,
        *,
        retry_first: float = 1.0,
        retry_cap: float = 60.0,
        key_type: str = "ssh-ed25519",
        on_change: Callable[[HostKeyPair], None] | None = None,
    ) -> None:
        self._api = api
        self.principal = principal
        self._retry_first = retry_first
        self._retry_cap = retry_cap
        self.key = asyncssh.generate_private_key(key_type)
        self.on_change = on_change
        self.pair: HostKeyPair | None = None
        self.valid_before = 0.0
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    async def _fetch(self) -> None:
        """One certificate request and its checks; raises APIError or CertificateProblem."""
        ca = asyncssh.import_public_key(await self._api.ca())
        public = self.key.export_public_key().decode().strip()
        answer = await self._api.host_certificate(public)
        try:
            cert = asyncssh.import_certificate(answer.certificate)
        except (asyncssh.KeyImportError, ValueError) as exc:
            raise CertificateProblem(f"unreadable certificate: {exc}") from None
        check_certificate(cert, self.key, ca, self.principal)
        self.pair = (self.key, cert)
        self.valid_before = answer.valid_before
        if self.on_change is not None:
            self.on_change(self.pair)

    async def _fetch_until_done(self) -> bool:
        """Fetch with backoff until it works (True) or ``stop()`` is called (False)."""
        attempt = 0
        while not self._stop.is_set():
            try:
                await self._fetch()
                return True
            except (APIError, CertificateProblem, asyncssh.KeyImportError) as exc:
                delay = backoff_delay(attempt, first=self._retry_first, cap=self._retry_cap)
                log.warning(
                    "no host certificate for %s yet: %s; retrying in %.0f s", self.principal, exc, delay
                )
                attempt += 1
                if await stopped_within(self._stop, delay):
                    return False
        return False

    async def start(self) -> bool:
        """Get the first certificate (retrying), then renew in the background; False if stopped first."""
        if not await self._fetch_until_done():
            return False
        log.info("host certificate for %s valid for %.0f s", self.principal, self.valid_before - time.time())
        self._task = asyncio.create_task(self._renew_forever(), name="ssh-host-certificate")
        return True

    async def _renew_forever(self) -> None:
        while not await stopped_within(self._stop, renew_delay(time.time(), self.valid_before)):
            if not await self._fetch_until_done():
                return
            log.info("host certificate for %s renewed", self.principal)

    async def stop(self) -> None:
        self._stop.set()
        if self._task is not None:
            await self._task
            self._task = None
