"""GET api/runs: the caller's workflows, sweeps and training jobs across clusters, and why each is where."""

from __future__ import annotations

from tornado import web

from ..runs.manager import RunError
from .user_runs import UserRunsHandler

__all__ = ["RunsHandler"]


class RunsHandler(UserRunsHandler):
    """Each run's kind, name, cluster, phase, GPUs, age and reason; while it waits, its place in its
    cluster's queue and the expected wait. Errors as every other endpoint of the service writes them."""

    async def get(self) -> None:
        try:
            runs = await self.runs.overview(self.user)
        except RunError as exc:
            raise web.HTTPError(exc.status, "%s", exc.message) from None
        self.write_json({"runs": runs})
