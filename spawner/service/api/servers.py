"""GET api/servers/{user}[/{name}]: where a server runs (cluster, pod, IP), from the pod inventory."""

from __future__ import annotations

from tornado import web

from .base import SCOPE_SERVERS, ApiHandler

__all__ = ["ServerHandler"]


class ServerHandler(ApiHandler):
    """The server's owner may ask, and so may whoever the hub lets read or reach that server: the
    gateway with the service's own scope, admins, a user the owner shared the server with.

    A scope filtered by group (``read:servers!group=lab``) does not count: JupyterHub's check needs
    the hub's database to know who is in a group, and the service has none.
    """

    required_scopes = (
        SCOPE_SERVERS,
        "read:servers!server={user}/{name}",
        "access:servers!server={user}/{name}",
    )
    owner_allowed = True

    @web.authenticated
    def get(self, user: str, name: str | None = None) -> None:
        name = name or ""
        found = [(c, s) for c, s in self.fleet.servers(user) if s.server == name]
        if not found:
            raise web.HTTPError(
                404, f"{user} has no server {name!r} running" if name else f"{user} has no server running"
            )
        running = [f for f in found if f[1].phase == "Running"] or found
        cluster, loc = running[0]
        self.write_json(
            {
                "user": loc.user,
                "server": loc.server,
                "cluster": cluster,
                "namespace": loc.namespace,
                "pod": loc.pod,
                "ip": loc.ip,
                "phase": loc.phase,
                "node": loc.node,
            }
        )
