"""The base of every endpoint about the caller's own runs: the runs scope, the user, their namespace."""

from __future__ import annotations

import json
from typing import Any, ClassVar

from tornado import web

from ..runs.manager import RunError, RunManager
from ..runs.policy import resolve_namespace
from .base import SCOPE_RUNS, ApiHandler

__all__ = ["MAX_RUN_BODY", "UserRunsHandler", "error_message"]

# The largest run the service takes: Kubernetes keeps no object over 1.5 MiB.
MAX_RUN_BODY = 3 * 1024 * 1024 // 2


def error_message(status_code: int, kwargs: dict[str, Any]) -> str:
    """The sentence of an HTTPError that write_error got, never the text of another exception."""
    exc = kwargs["exc_info"][1] if kwargs.get("exc_info") else None
    if isinstance(exc, web.HTTPError) and exc.log_message:
        return exc.log_message % exc.args if exc.args else exc.log_message
    return "internal error" if status_code >= 500 else "error"


class UserRunsHandler(ApiHandler):
    """Authenticated with the caller's hub token, which must hold the runs scope; a user acts only on
    their own runs, in their run namespace or its alias ``default``."""

    required_scopes: ClassVar[tuple[str, ...]] = (SCOPE_RUNS,)

    @property
    def runs(self) -> RunManager:
        manager = self.settings.get("runs")
        if manager is None:
            raise web.HTTPError(503, "the service's store is not open: runs are unavailable")
        return manager  # type: ignore[no-any-return]

    @property
    def user(self) -> str:
        if (self.current_user or {}).get("kind", "user") != "user":
            raise web.HTTPError(403, "runs belong to users: use a user's token, not a service's")
        return str(self.current_user["name"])

    def check_namespace(self, namespace: str) -> None:
        mine = self.runs.namespace(self.user)
        if resolve_namespace(namespace, mine) is None:
            raise web.HTTPError(
                403, f"namespace {namespace!r} is not yours; your runs are in {mine!r} (or 'default')"
            )

    def fail(self, exc: RunError) -> web.HTTPError:
        return web.HTTPError(exc.status, "%s", exc.message)

    def json_body(self) -> dict[str, Any]:
        if len(self.request.body) > MAX_RUN_BODY:
            raise web.HTTPError(
                413, f"the body has {len(self.request.body)} bytes; a run has at most {MAX_RUN_BODY}"
            )
        try:
            data = json.loads(self.request.body or b"null")
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise web.HTTPError(400, f"the body is not JSON: {exc}") from exc
        if not isinstance(data, dict):
            raise web.HTTPError(400, "the body must be a JSON object")
        return data
