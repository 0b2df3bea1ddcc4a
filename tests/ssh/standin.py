"""A small real stand-in for the service's SSH endpoints and the hub's user and activity endpoints.

It speaks the contract of the service's ``api/ssh/*`` (a real CA key signs real host certificates) until
the service's own endpoints land, and the two hub endpoints the SSH server calls. An aiohttp server on
127.0.0.1:0, run on the event loop the test's server thread owns.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import asyncssh
from aiohttp import web

PREFIX = "/services/hybridhub/"


@dataclass
class StandIn:
    """What the service and the hub know: tokens, registered keys, who may use which server."""

    ca: asyncssh.SSHKey = field(default_factory=lambda: asyncssh.generate_private_key("ssh-ed25519"))
    # a server's hub token -> (owner, server name)
    server_tokens: dict[str, tuple[str, str]] = field(default_factory=dict)
    # a user's hub token -> the hub's model of that user
    user_tokens: dict[str, dict[str, Any]] = field(default_factory=dict)
    # hub user -> registered public key lines
    keys: dict[str, list[str]] = field(default_factory=dict)
    # server principal -> hub users allowed in (owner, admins, users it is shared with)
    allowed: dict[str, list[str]] = field(default_factory=dict)
    cert_lifetime: float = 600.0
    activity: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    key_fetches: int = 0
    url: str = ""

    def server_of(self, request: web.Request) -> tuple[str, str]:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("token ").strip()
        if token not in self.server_tokens:
            raise web.HTTPForbidden(
                text='{"status": 403, "message": "not a server\'s token"}', content_type="application/json"
            )
        return self.server_tokens[token]

    @staticmethod
    def principal(owner: str, name: str) -> str:
        return f"{owner}.{name}" if name else owner

    async def get_ca(self, request: web.Request) -> web.Response:
        line = self.ca.export_public_key().decode().strip()
        return web.json_response({"ca": line, "known_hosts": f"@cert-authority * {line}"})

    async def post_host_certificate(self, request: web.Request) -> web.Response:
        owner, name = self.server_of(request)
        body = await request.json()
        key = asyncssh.import_public_key(body["public_key"])
        principal = self.principal(owner, name)
        valid_before = int(time.time() + self.cert_lifetime)
        cert = self.ca.generate_host_certificate(
            key,
            principal,
            principals=[principal],
            valid_after=int(time.time()) - 60,
            valid_before=valid_before,
        )
        return web.json_response(
            {
                "certificate": cert.export_certificate().decode().strip(),
                "principals": [principal],
                "valid_before": valid_before,
            }
        )

    async def get_authorized_keys(self, request: web.Request) -> web.Response:
        owner, name = self.server_of(request)
        principal = self.principal(owner, name)
        self.key_fetches += 1
        keys = [{"user": u, "key": k} for u in self.allowed.get(principal, []) for k in self.keys.get(u, [])]
        return web.json_response({"server": principal, "keys": keys})

    async def get_user(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("token ").strip()
        if token not in self.user_tokens:
            return web.json_response({"status": 403, "message": "Forbidden"}, status=403)
        return web.json_response(self.user_tokens[token])

    async def post_activity(self, request: web.Request) -> web.Response:
        self.server_of(request)
        self.activity.append((request.match_info["user"], await request.json()))
        return web.Response(status=200)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(PREFIX + "api/ssh/ca", self.get_ca)
        app.router.add_post(PREFIX + "api/ssh/host-certificate", self.post_host_certificate)
        app.router.add_get(PREFIX + "api/ssh/authorized-keys", self.get_authorized_keys)
        app.router.add_get("/hub/api/user", self.get_user)
        app.router.add_post("/hub/api/users/{user}/activity", self.post_activity)
        return app

    async def start(self) -> web.AppRunner:
        runner = web.AppRunner(self.app())
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return runner

    def known_hosts(self) -> str:
        return f"@cert-authority * {self.ca.export_public_key().decode().strip()}\n"
