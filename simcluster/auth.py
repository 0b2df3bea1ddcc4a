"""Bearer-token authentication: static tokens, and short-lived tokens an exec credential plugin mints.

A user's groups come from the cluster file: a user it declares with groups has those groups (and
``system:authenticated``) only; any other user, static or minted, is in ``system:masters``, so the
tokens clusters always had stay cluster-admin.

Short-lived tokens work like ``aws eks get-token``: the plugin signs an expiry time with a key it
reads from a file (no network call), and the server checks the signature and the expiry. Tokens
look like ``sim.v1.<user>.<expiry unix seconds>.<hex hmac>``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from .authz.attributes import AUTHENTICATED, MASTERS, UserInfo

__all__ = ["Authenticator", "mint_token"]

_PREFIX = "sim.v1."


def _sign(key: bytes, user: str, expiry: int) -> str:
    return hmac.new(key, f"{user}.{expiry}".encode(), hashlib.sha256).hexdigest()


def mint_token(key: bytes, user: str, ttl_seconds: float, now: float | None = None) -> tuple[str, int]:
    """A signed token for ``user`` valid for ``ttl_seconds``; returns (token, expiry unix time)."""
    if "." in user:
        raise ValueError("a user name for a minted token may not contain '.'")
    expiry = int((time.time() if now is None else now) + ttl_seconds)
    return f"{_PREFIX}{user}.{expiry}.{_sign(key, user, expiry)}", expiry


@dataclass
class Authenticator:
    """Maps a bearer token to a user name, or None when the token is missing, wrong or expired."""

    static_tokens: Mapping[str, str] = field(default_factory=dict)  # token -> user
    signing_key: bytes | None = None
    clock: Callable[[], float] = time.time
    groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict)  # user -> groups, if not admin

    def authenticate_user(self, authorization: str | None) -> UserInfo | None:
        """The user and groups a bearer token stands for, or None (a 401)."""
        name = self.authenticate(authorization)
        if name is None:
            return None
        groups = self.groups.get(name)
        if groups is None:
            return UserInfo(name, (MASTERS, AUTHENTICATED))
        return UserInfo(name, (*dict.fromkeys(g for g in groups if g != AUTHENTICATED), AUTHENTICATED))

    def authenticate(self, authorization: str | None) -> str | None:
        if not authorization or not authorization.startswith("Bearer "):
            return None
        token = authorization[len("Bearer ") :].strip()
        user = self.static_tokens.get(token)
        if user is not None:
            return user
        if self.signing_key is None or not token.startswith(_PREFIX):
            return None
        try:
            user, expiry_text, signature = token[len(_PREFIX) :].split(".")
            expiry = int(expiry_text)
        except ValueError:
            return None
        if not hmac.compare_digest(signature, _sign(self.signing_key, user, expiry)):
            return None
        if expiry <= self.clock():
            return None
        return user
