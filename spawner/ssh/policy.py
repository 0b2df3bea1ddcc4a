"""Pure rules of the notebook's SSH server: forward targets, algorithms, who may log in, when to renew."""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Mapping

__all__ = [
    "DEFAULT_CIPHERS",
    "DEFAULT_KEX",
    "DEFAULT_MACS",
    "activity_body",
    "backoff_delay",
    "forward_refusal",
    "is_loopback_target",
    "renew_delay",
    "server_principal",
    "token_user_allowed",
]

# Only AES-GCM: a client picks the first cipher of its own list that the server offers, and OpenSSH
# lists ChaCha20 first, which asyncssh runs at half the speed of AES-GCM.
DEFAULT_CIPHERS: tuple[str, ...] = ("aes128-gcm@openssh.com", "aes256-gcm@openssh.com")
# With AES-GCM no MAC is used; these are what is offered should an operator allow another cipher.
DEFAULT_MACS: tuple[str, ...] = ("hmac-sha2-256-etm@openssh.com", "hmac-sha2-512-etm@openssh.com")
# Modern key exchanges only: no SHA-1, no 1024/2048-bit RSA kex, no group exchange (asyncssh offers them all).
DEFAULT_KEX: tuple[str, ...] = (
    "mlkem768x25519-sha256",
    "curve25519-sha256",
    "curve25519-sha256@libssh.org",
    "ecdh-sha2-nistp256",
    "ecdh-sha2-nistp384",
    "ecdh-sha2-nistp521",
    "diffie-hellman-group16-sha512",
    "diffie-hellman-group18-sha512",
    "diffie-hellman-group14-sha256",
)


def server_principal(user: str, server_name: str) -> str:
    """The name a server's host certificate carries: ``alice`` or ``alice.name`` for a named server."""
    return f"{user}.{server_name}" if server_name else user


def is_loopback_target(host: str) -> bool:
    """Whether a forward to ``host`` stays inside the pod: a loopback address or ``localhost``.

    Other names are not resolved: a name that resolves to loopback today may not tomorrow.
    """
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def forward_refusal(host: str, port: int) -> str | None:
    """Why a forward to ``host:port`` is refused, in the words the client shows, or None when allowed."""
    if is_loopback_target(host):
        return None
    return (
        f"forwarding to {host}:{port} refused: this server forwards only to the notebook's own loopback "
        "(127.0.0.0/8, ::1, localhost)"
    )


def token_user_allowed(model: Mapping[str, object], login: str, owner: str) -> bool:
    """Whether a hub token whose ``GET /user`` answer is ``model`` may log in as ``login``.

    Only the server's owner and hub admins, each under their own name: a token is not a way to
    become someone else.
    """
    name = model.get("name")
    if not isinstance(name, str) or name != login:
        return False
    return name == owner or model.get("admin") is True


def renew_delay(now: float, valid_before: float, *, minimum: float = 1.0) -> float:
    """Seconds to wait before renewing a certificate valid until ``valid_before``: half its remaining life.

    Half leaves the second half for retries when the service is briefly away.
    """
    remaining = valid_before - now
    if not math.isfinite(remaining):
        return minimum
    return max(minimum, remaining / 2)


def backoff_delay(attempt: int, *, first: float, cap: float) -> float:
    """Seconds before retry number ``attempt`` (0 for the first): doubling from ``first``, at most ``cap``."""
    return float(min(cap, first * (2 ** min(attempt, 30))))


def activity_body(server_name: str, when_iso: str) -> dict[str, object]:
    """The body jupyterhub-singleuser posts to the hub's activity URL, for one server."""
    return {"servers": {server_name: {"last_activity": when_iso}}, "last_activity": when_iso}
