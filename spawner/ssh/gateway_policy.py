"""Pure rules of the SSH gateway: which server a jump target names, who may reach it, what a refusal says."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote

__all__ = ["Target", "may_reach", "progress_url", "target_candidates", "valid_target"]

# JupyterHub's user names are at most 255 characters; a server name is a path segment. A jump target is
# a DNS-like name the client sends, so anything longer or stranger is refused before the hub is asked.
_MAX_TARGET = 512


@dataclass(frozen=True)
class Target:
    """A server as a jump target names it: ``alice`` (the default server) or ``alice.gpu``."""

    owner: str
    server: str

    @property
    def label(self) -> str:
        return f"{self.owner}.{self.server}" if self.server else self.owner


def valid_target(host: str) -> bool:
    """Whether ``host`` can name a server at all: printable, no spaces or slashes, not too long."""
    return 0 < len(host) <= _MAX_TARGET and host.isprintable() and not any(c in host for c in " /\\?#%")


def target_candidates(host: str) -> list[Target]:
    """The servers ``host`` may name, most likely first.

    User names may contain dots (``john.doe``), so ``john.doe`` is first the default server of user
    ``john.doe``, then server ``doe`` of user ``john``; the hub's answer picks the one that exists.
    """
    found = [Target(host, "")]
    at = len(host)
    while (at := host.rfind(".", 0, at)) > 0:
        if at < len(host) - 1:
            found.append(Target(host[:at], host[at + 1 :]))
    return found


def may_reach(login: Mapping[str, object], owner: str, shared_with: Iterable[str] = ()) -> bool:
    """Whether the hub user whose model is ``login`` may reach a server of ``owner``: the owner, a hub
    admin, or a user the owner shared the server with."""
    name = login.get("name")
    if not isinstance(name, str) or not name:
        return False
    return name == owner or login.get("admin") is True or name in set(shared_with)


def progress_url(hub_public_url: str, target: Target) -> str:
    """Where a person follows the server's start in a browser: the hub's spawn-pending page."""
    base = hub_public_url.rstrip("/")
    path = f"hub/spawn-pending/{quote(target.owner, safe='')}"
    if target.server:
        path += f"/{quote(target.server, safe='')}"
    return f"{base}/{path}"
