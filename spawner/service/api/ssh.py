"""api/ssh/...: the SSH CA, host certificates and authorized keys for the pods' servers, users' keys."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import asyncssh
from tornado import web

from ..ssh.access import HubUnreachable, ServerName, SshAccess, ordered, server_of_token, shadowing_users
from ..ssh.ca import CertificateAuthority
from ..ssh.gateways import host_of
from ..ssh.keys import MAX_COMMENT, MAX_LINE, KeyProblem, parse_key
from ..ssh.snippet import config_snippet
from ..store import DuplicateKey, KeyRecord, Store
from .base import SCOPE_SERVERS, ApiHandler

__all__ = [
    "AuthorizedKeysHandler",
    "CaHandler",
    "ConfigHandler",
    "GatewayCertificateHandler",
    "HostCertificateHandler",
    "KeyHandler",
    "KeysHandler",
    "SshApiHandler",
]

log = logging.getLogger(__name__)

# a body larger than this is no single key
MAX_BODY = 16 * 1024
HOST_KEY_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
)


def key_model(key: KeyRecord) -> dict[str, Any]:
    return {
        "id": key.id,
        "user": key.user,
        "type": key.key_type,
        "fingerprint": key.fingerprint,
        "comment": key.comment,
        "key": key.line,
        "created": key.created.isoformat(),
    }


class SshApiHandler(ApiHandler):
    """A token (or, for the page, the hub's OAuth cookie with its xsrf token) names the caller; each
    endpoint decides what that caller may do, since a notebook server's token and its owner's token
    hold the same user name."""

    required_scopes: ClassVar[tuple[str, ...]] = ()

    def initialize(self) -> None:
        # HubOAuth: tokens as HubAuth, plus the page's cookie (refused on writes without xsrf)
        self.hub_auth = self.settings["hub_oauth"] or self.settings["hub_auth"]

    async def prepare(self) -> None:
        if self.settings.get("store") is None or self.settings.get("ssh_ca") is None:
            raise web.HTTPError(
                503, "the service's store is not open: SSH keys and certificates are unavailable"
            )
        await super().prepare()

    def check_hub_user(self, model: dict[str, Any]) -> dict[str, Any]:
        return model

    @property
    def store(self) -> Store:
        return self.settings["store"]  # type: ignore[no-any-return]

    @property
    def ca(self) -> CertificateAuthority:
        return self.settings["ssh_ca"]  # type: ignore[no-any-return]

    @property
    def access(self) -> SshAccess:
        return self.settings["ssh_access"]  # type: ignore[no-any-return]

    def has_scope(self, scope: str) -> bool:
        return bool(self.hub_auth.check_scopes({scope}, self.current_user))

    def caller(self) -> str:
        return f"{self.current_user.get('kind', 'user')} {self.current_user.get('name')}"

    def own_server(self) -> ServerName:
        """The notebook server whose own token made this request; 403 for any other token."""
        server = server_of_token(self.current_user)
        if server is None:
            raise web.HTTPError(
                403,
                f"{self.caller()} may not do this: it needs a notebook server's own token "
                "(the server's JUPYTERHUB_API_TOKEN), not a user's or a service's",
            )
        return server

    def key_user(self, wanted: str | None = None, *, write: bool = False) -> str:
        """Whose keys this request is about: the caller's own, or for admins (and, reading, the SSH
        gateway with the service's servers scope) the ``user`` asked for."""
        model = self.current_user
        access = self.settings["service_access_scope"]
        name = model.get("name")
        own = name if isinstance(name, str) and model.get("kind", "user") == "user" else None
        if write:
            self.refuse_server_token()
        if wanted is None or wanted == own:
            if not own:
                raise web.HTTPError(400, "say whose keys: ?user=NAME")
            if not self.has_scope(access):
                raise web.HTTPError(403, f"{self.caller()} may not do this: it needs the scope {access}")
            return own
        if self.has_scope(f"admin:users!user={wanted}") or (not write and self.has_scope(SCOPE_SERVERS)):
            return wanted
        raise web.HTTPError(403, f"{self.caller()} may not manage the SSH keys of {wanted}")

    def refuse_server_token(self) -> None:
        if server_of_token(self.current_user) is not None:
            # whoever uses a shared server can read its token: it must not change the owner's keys
            raise web.HTTPError(
                403, f"{self.caller()} may not do this: a notebook server's token cannot change SSH keys"
            )

    def json_body(self) -> dict[str, Any]:
        if len(self.request.body) > MAX_BODY:
            raise web.HTTPError(
                413, f"the body is {len(self.request.body)} bytes; at most {MAX_BODY} are accepted"
            )
        return self.body()


def host_key_of(text: Any) -> asyncssh.SSHKey:
    """The public host key a request's ``public_key`` holds; a 400 saying what is wrong otherwise."""
    if not isinstance(text, str) or not text.strip():
        raise web.HTTPError(400, "public_key is required: the OpenSSH public host key line")
    if len(text) > MAX_LINE:
        raise web.HTTPError(
            400, f"public_key is {len(text)} characters long; at most {MAX_LINE} are accepted"
        )
    try:
        key = asyncssh.import_public_key(text.strip())
    except (asyncssh.KeyImportError, ValueError):
        raise web.HTTPError(400, "public_key is not an OpenSSH public key line") from None
    if key.algorithm.decode() not in HOST_KEY_TYPES:
        kind = key.algorithm.decode()
        raise web.HTTPError(400, f"host keys of type {kind} are not signed; use ssh-ed25519")
    return key


class CaHandler(SshApiHandler):
    """GET api/ssh/ca: the CA's public key and the known_hosts line that trusts it (no token needed)."""

    def needs_token(self) -> bool:
        return False

    def get(self) -> None:
        self.write_json({"ca": self.ca.public_line, "known_hosts": self.ca.known_hosts_line})


class HostCertificateHandler(SshApiHandler):
    """POST api/ssh/host-certificate: a notebook server's SSH server gets its host key signed for the
    server's name, which comes from the server's token, never from the body."""

    @web.authenticated
    async def post(self) -> None:
        server = self.own_server()
        key = host_key_of(self.json_body().get("public_key"))
        try:
            taken = await self.access.existing_users(shadowing_users(server))
        except HubUnreachable as exc:
            raise web.HTTPError(
                503, f"whether {server.principal} is another user's name is unknown now: {exc}"
            ) from None
        if taken:
            raise web.HTTPError(
                409,
                f"the host name {server.principal} belongs to user {taken[0]}'s server: "
                f"SSH into server {server.name!r} needs another server name",
            )
        cert = self.ca.sign_host(key, server.principal, self.settings["ssh_host_certificate_validity"])
        log.info("signed a host certificate for %s until %s", server.principal, cert.valid_before)
        self.write_json(
            {"certificate": cert.line, "principals": list(cert.principals), "valid_before": cert.valid_before}
        )


class GatewayCertificateHandler(SshApiHandler):
    """POST api/ssh/gateway-certificate: an SSH gateway gets its host key signed for the host users
    reach it at, so the CA line users trust covers the gateways too. The gateway beside the hub (a
    hub service named in ssh_gateway_services) gets the host of ssh_gateway_address; a site's gateway
    (ssh_site_gateways) the host of its own address; any other token 403."""

    @web.authenticated
    def post(self) -> None:
        model = self.current_user
        name = model.get("name") if model.get("kind") == "service" else None
        site = next((g for g in self.settings["ssh_site_gateways"].values() if g.service == name), None)
        if site is not None:
            address, setting = site.address, f"HybridHubService.ssh_site_gateways[{site.cluster!r}]"
        elif name in self.settings["ssh_gateway_services"]:
            address, setting = self.settings["ssh_gateway"], "HybridHubService.ssh_gateway_address"
        else:
            raise web.HTTPError(403, f"{self.caller()} may not do this: only an SSH gateway's own token may")
        host = host_of(address)
        if not host:
            raise web.HTTPError(503, f"the gateway's address is not configured ({setting})")
        key = host_key_of(self.json_body().get("public_key"))
        cert = self.ca.sign_host(key, host, self.settings["ssh_host_certificate_validity"])
        log.info(
            "signed the SSH gateway %s's host certificate for %s until %s", name, host, cert.valid_before
        )
        self.write_json(
            {"certificate": cert.line, "principals": list(cert.principals), "valid_before": cert.valid_before}
        )


class AuthorizedKeysHandler(SshApiHandler):
    """GET api/ssh/authorized-keys: the registered keys of everyone allowed into the calling server."""

    @web.authenticated
    async def get(self) -> None:
        server = self.own_server()
        try:
            allowed = await self.access.allowed(server)
        except HubUnreachable as exc:
            raise web.HTTPError(503, f"who may reach {server.principal} is unknown now: {exc}") from None
        keys = await self.store.keys(allowed)
        order = {user: i for i, user in enumerate(ordered(allowed, server.user))}
        keys.sort(key=lambda k: (order[k.user], k.id))
        self.write_json({"server": server.principal, "keys": [{"user": k.user, "key": k.line} for k in keys]})


class KeysHandler(SshApiHandler):
    """GET api/ssh/keys: the caller's registered keys (admins: ``?user=``); POST registers one."""

    @web.authenticated
    async def get(self) -> None:
        user = self.key_user(self.get_query_argument("user", None))
        self.write_json({"user": user, "keys": [key_model(k) for k in await self.store.keys([user])]})

    @web.authenticated
    async def post(self) -> None:
        user = self.key_user(write=True)
        body = self.json_body()
        try:
            key = parse_key(body.get("public_key"))
        except KeyProblem as exc:
            raise web.HTTPError(400, str(exc)) from None
        comment = body.get("comment", key.comment)
        if not isinstance(comment, str) or len(comment) > MAX_COMMENT or not comment.isprintable():
            raise web.HTTPError(400, f"comment must be printable text of at most {MAX_COMMENT} characters")
        limit = self.settings["ssh_max_keys"]
        if len(await self.store.keys([user])) >= limit:
            raise web.HTTPError(
                400, f"{user} has {limit} SSH keys already, the most allowed: remove one first"
            )
        try:
            record = await self.store.add_key(user, key.key_type, key.blob, key.fingerprint, comment.strip())
        except DuplicateKey:
            raise web.HTTPError(409, f"the key {key.fingerprint} is registered already") from None
        log.info("%s registered SSH key %s", user, key.fingerprint)
        self.write_json(key_model(record), status=201)


class KeyHandler(SshApiHandler):
    """GET or DELETE api/ssh/keys/{id}: one of the caller's keys (admins: anyone's)."""

    async def _find(self, key_id: str) -> KeyRecord:
        found = await self.store.key(int(key_id)) if key_id.isdigit() and len(key_id) < 12 else None
        if found is not None:
            try:
                self.key_user(found.user, write=self.request.method != "GET")
            except web.HTTPError:
                found = None  # another user's key is not there for this caller
        if found is None:
            raise web.HTTPError(404, f"no SSH key {key_id} of yours")
        return found

    @web.authenticated
    async def get(self, key_id: str) -> None:
        self.write_json(key_model(await self._find(key_id)))

    @web.authenticated
    async def delete(self, key_id: str) -> None:
        self.refuse_server_token()
        key = await self._find(key_id)
        if not await self.store.delete_key(key.id, key.user):
            raise web.HTTPError(404, f"no SSH key {key_id} of yours")
        log.info("SSH key %s of %s removed by %s", key.fingerprint, key.user, self.caller())
        self.set_status(204)
        self.finish()


class ConfigHandler(SshApiHandler):
    """GET api/ssh/config: the caller's ready ``~/.ssh/config`` snippet, as text. A server that runs now
    in a cluster with a gateway of its own (ssh_site_gateways) jumps through that one."""

    @web.authenticated
    def get(self) -> None:
        user = self.key_user()
        gateway = self.settings["ssh_gateway"]
        if not gateway:
            raise web.HTTPError(
                503, "the SSH gateway's address is not configured (HybridHubService.ssh_gateway_address)"
            )
        sites = self.settings["ssh_site_gateways"]
        # where each server runs, as api/servers answers it: a running pod before one that is not
        found = sorted(self.fleet.servers(user), key=lambda f: f[1].phase == "Running")
        runs_in = {where.server: cluster for cluster, where in found}
        site = {
            name: (cluster, sites[cluster].address) for name, cluster in runs_in.items() if cluster in sites
        }
        self.set_header("Content-Type", "text/plain; charset=utf-8")
        self.finish(config_snippet(user, gateway, self.ca.known_hosts_line, site))
