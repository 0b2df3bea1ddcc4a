"""{prefix}ssh: the page where a user, logged in through the hub, adds, lists and removes SSH keys."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

from jupyterhub.services.auth import HubOAuth, HubOAuthCallbackHandler, HubOAuthenticated
from tornado import template, web

__all__ = ["OAuthCallbackHandler", "SshPageHandler"]

# autoescaped: every value the page shows is HTML-escaped
PAGE = template.Template(
    (Path(__file__).parents[1] / "ssh" / "page.html").read_text(), name="page.html", autoescape="xhtml_escape"
)


class SshPageHandler(HubOAuthenticated, web.RequestHandler):  # type: ignore[misc]
    """Behind the hub's login (OAuth); the page's own requests carry the cookie and the xsrf token,
    which the hub's HubOAuth checks on every request a script makes."""

    def initialize(self) -> None:
        self.hub_auth: HubOAuth = self.settings["hub_oauth"]

    async def prepare(self) -> None:
        if self.hub_auth is None:
            raise web.HTTPError(
                503,
                "the SSH keys page needs the hub's OAuth client: run the service as a hub's managed service",
            )
        model = await self.hub_auth.get_user(self, sync=False)
        if model and model.get("kind", "user") == "user":
            self.current_user = model

    @web.authenticated
    def get(self) -> None:
        nonce = secrets.token_urlsafe(16)
        self.set_header(
            "Content-Security-Policy",
            f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
            "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'",
        )
        self.set_header("X-Content-Type-Options", "nosniff")
        self.set_header("Cache-Control", "no-store")
        user: dict[str, Any] = self.current_user
        prefix = self.settings["service_prefix"]
        self.finish(
            PAGE.generate(user=user["name"], api=f"{prefix}api/ssh/", xsrf=self.xsrf_token, nonce=nonce)
        )


class OAuthCallbackHandler(HubOAuthCallbackHandler):  # type: ignore[misc]
    """{prefix}oauth_callback: ends the hub's OAuth login with the app's own HubOAuth, which holds
    the pending logins' states (where each goes next), not the default instance."""

    def initialize(self) -> None:
        self.hub_auth = self.settings["hub_oauth"]

    async def get(self) -> None:
        if self.hub_auth is None:
            raise web.HTTPError(
                503, "the hub's OAuth login is off: run the service as a hub's managed service"
            )
        await super().get()
