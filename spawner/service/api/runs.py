"""api/runs: the caller's workflows, sweeps and training jobs across clusters; one run, its logs, cancel."""

from __future__ import annotations

import json
from typing import Any

from tornado import web
from tornado.iostream import StreamClosedError

from ..runs.clusterio import COLLECTIONS
from ..runs.logs import run_logs
from ..runs.manager import RunError
from .user_runs import UserRunsHandler

__all__ = ["RunHandler", "RunLogsHandler", "RunsHandler"]

# The container whose log is a run's own output, per kind: Argo's main container, the Trainer's and
# the Training Operator's training containers, and Katib's collector, which repeats the trial's output.
LOG_CONTAINERS = {
    "Workflow": "main",
    "TrainJob": "node",
    "PyTorchJob": "pytorch",
    "Experiment": "metrics-logger-and-collector",
}


class RunsHandler(UserRunsHandler):
    """Each run's kind, name, cluster, phase, GPUs, age and reason; while it waits, its place in its
    cluster's queue and the expected wait. Errors as every other endpoint of the service writes them."""

    async def get(self) -> None:
        try:
            runs = await self.runs.overview(self.user)
        except RunError as exc:
            raise self.fail(exc) from None
        self.write_json({"runs": runs})


def _kind(kind: str) -> str:
    if kind not in COLLECTIONS:
        raise web.HTTPError(404, f"{kind!r} is not a kind of run; the kinds are {', '.join(COLLECTIONS)}")
    return kind


class RunHandler(UserRunsHandler):
    """api/runs/{kind}/{name}: GET the run's row (as api/runs lists it) and its object; DELETE cancels
    it: the run is deleted in its cluster, with its pods."""

    async def get(self, kind: str, name: str) -> None:
        kind = _kind(kind)
        try:
            obj = await self.runs.get(self.user, kind, name)
            rows = [r for r in await self.runs.overview(self.user) if r["kind"] == kind and r["name"] == name]
        except RunError as exc:
            raise self.fail(exc) from None
        if not rows:
            raise web.HTTPError(404, f'{kind} "{name}" not found')
        body: dict[str, Any] = {"run": rows[0], "object": obj}
        if kind == "Experiment":
            body["trials"] = await self.trials(name)
        self.write_json(body)

    async def trials(self, experiment: str) -> list[dict[str, object]]:
        """The Experiment's Katib trials (parameters, metrics, phase), read as the user from the
        cluster that holds it; none while it waits in the queue."""
        record = await self.runs.record(self.user, "Experiment", experiment)
        if record.uid is None or record.cluster is None:
            return []
        path = f"/apis/kubeflow.org/v1beta1/namespaces/{record.namespace}/trials"
        query = {"labelSelector": f"katib.kubeflow.org/experiment={experiment}"}
        try:
            found = await self.runs.read(record.cluster, path, query, user=self.user)
        except RunError:
            return []  # the experiment is shown without its trials
        return list(found.get("items") or [])

    async def delete(self, kind: str, name: str) -> None:
        try:
            self.write_json(await self.runs.delete(self.user, _kind(kind), name))
        except RunError as exc:
            raise self.fail(exc) from None


class RunLogsHandler(UserRunsHandler):
    """api/runs/{kind}/{name}/logs: the run's pods' output as newline-delimited JSON objects
    ``{"pod": ..., "line": ...}``, in the order the pods were made; with ``follow=true``, as it comes
    and until the run ends. ``container`` and ``pod`` narrow it. Without ``pod``, the run's moves
    between clusters come first, as lines of "pod" ``hybridhub``."""

    async def get(self, kind: str, name: str) -> None:
        kind = _kind(kind)
        follow = self.get_query_argument("follow", "false") == "true"
        container = self.get_query_argument("container", None) or LOG_CONTAINERS.get(kind, "")
        pod = self.get_query_argument("pod", None) or None
        try:
            record = await self.runs.record(self.user, kind, name)
            self.set_header("Content-Type", "application/x-ndjson")
            self.set_header("X-Accel-Buffering", "no")
            if pod is None:
                # where the run waited before, as lines of the service's own ("pod": "hybridhub")
                for m in await self.runs.history(record):
                    at = m.at.strftime("%Y-%m-%dT%H:%M:%SZ")
                    self.write(json.dumps({"pod": "hybridhub", "line": f"{at} {m.reason}"}) + "\n")
            async for pod_name, line in run_logs(
                self.runs, record, container=container, follow=follow, pod_name=pod
            ):
                self.write(
                    json.dumps({"pod": pod_name, "line": line.decode("utf-8", "replace").rstrip("\r\n")})
                )
                self.write("\n")
                if follow:
                    await self.flush()
        except RunError as exc:
            if not self._headers_written:
                raise self.fail(exc) from None
        except StreamClosedError:
            return
        self.finish()
