"""The handler every service endpoint is made of: hub tokens, declared scopes, JSON in and out."""

from __future__ import annotations

import json
from http.client import responses
from typing import Any, ClassVar

from jupyterhub.services.auth import HubAuth, HubAuthenticated, UserNotAllowed
from tornado import web

from spawner.placement.reservations import ReservationBook

from ..capacity import CapacitySource
from ..fleet import FleetView
from ..metrics import Metrics

__all__ = ["SCOPE_CAPACITY", "SCOPE_PLACE", "SCOPE_RUNS", "SCOPE_SERVERS", "ApiHandler"]

SCOPE_CAPACITY = "custom:hybridhub:capacity"  # see cluster GPU availability (users)
SCOPE_PLACE = "custom:hybridhub:place"  # ask for, extend and release placements (the hub only)
SCOPE_SERVERS = "custom:hybridhub:servers"  # look up where anyone's server runs (gateway, admins)
SCOPE_RUNS = "custom:hybridhub:runs"  # submit, read and delete one's own runs (users, their servers)


class ApiHandler(HubAuthenticated, web.RequestHandler):  # type: ignore[misc]
    """A token-authenticated JSON endpoint; errors as ``{"status": ..., "message": ...}``.

    Each subclass declares ``required_scopes``: a caller whose token holds any one of them is let in,
    as JupyterHub's ``check_scopes`` decides, so filtered scopes such as ``read:servers!user=ann``
    match as they do in the hub. ``{user}`` and ``{name}`` in a scope are the URL's parts. A request
    without a token the hub knows gets 401; a token without the scopes gets 403.
    """

    required_scopes: ClassVar[tuple[str, ...]]
    # whether a user may ask about what the URL names as theirs ({user}) without any of the scopes
    owner_allowed: ClassVar[bool] = False

    def initialize(self) -> None:
        # the app's own HubAuth, not HubAuth.instance(), which is configured from the environment
        self.hub_auth: HubAuth = self.settings["hub_auth"]

    @property
    def fleet(self) -> FleetView:
        return self.settings["fleet"]  # type: ignore[no-any-return]

    @property
    def book(self) -> ReservationBook:
        return self.settings["reservations"]  # type: ignore[no-any-return]

    @property
    def capacity(self) -> CapacitySource:
        return self.settings["capacity"]  # type: ignore[no-any-return]

    @property
    def metrics(self) -> Metrics:
        return self.settings["metrics"]  # type: ignore[no-any-return]

    @property
    def hub_scopes(self) -> set[str]:
        """The declared scopes for this request's URL; HubAuthenticated.check_hub_user reads them."""
        parts = {key: value for key, value in self.path_kwargs.items() if value is not None}
        parts.setdefault("name", "")
        return {scope.format(**parts) for scope in self.required_scopes}

    def needs_token(self) -> bool:
        return True

    async def prepare(self) -> None:
        if not self.needs_token():
            return
        # asked without blocking: HubAuthenticated.get_current_user would wait for the hub in a thread
        model = await self.hub_auth.get_user(self, sync=False)
        if not model:
            raise web.HTTPError(401, "this needs a hub API token: send 'Authorization: token <token>'")
        try:
            self.current_user = self.check_hub_user(model)
        except UserNotAllowed:
            wanted = " or ".join(sorted(self.hub_scopes))
            who = f"{model.get('kind', 'user')} {model.get('name')}"
            raise web.HTTPError(403, f"{who} may not do this: it needs the scope {wanted}") from None

    def check_hub_user(self, model: dict[str, Any]) -> dict[str, Any]:
        owner = self.path_kwargs.get("user")
        if self.owner_allowed and model.get("kind", "user") == "user" and model.get("name") == owner:
            return model
        return super().check_hub_user(model)  # type: ignore[no-any-return]

    def write_json(self, body: Any, status: int = 200) -> None:
        self.set_status(status)
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(body))

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = responses.get(status_code, "error")
        exc = kwargs["exc_info"][1] if kwargs.get("exc_info") else None
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        if status_code == 401:
            self.set_header("WWW-Authenticate", "token")
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": message}))

    def body(self) -> dict[str, Any]:
        try:
            data = json.loads(self.request.body or b"{}")
        except json.JSONDecodeError as exc:
            raise web.HTTPError(400, f"the body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise web.HTTPError(400, "the body must be a JSON object")
        return data
