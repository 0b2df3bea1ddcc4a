"""argo/api/v1/...: the part of the Argo Server API that Hera uses, for the caller's own workflows."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from tornado import web
from tornado.iostream import StreamClosedError

from ..runs.logs import run_logs
from ..runs.manager import RunError
from .user_runs import UserRunsHandler, error_message

__all__ = [
    "ArgoHandler",
    "ArgoLogHandler",
    "ArgoWatchHandler",
    "ArgoWorkflowHandler",
    "ArgoWorkflowsHandler",
]

log = logging.getLogger(__name__)

# gRPC status codes, as Argo Server's grpc-gateway puts them in its JSON errors
_GRPC_CODES = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 413: 8, 422: 3, 503: 14, 504: 4}
KIND = "Workflow"


class ArgoHandler(UserRunsHandler):
    """Hera sends the caller's hub token as a Bearer token. Errors as Argo Server writes them:
    ``{"code": <gRPC code>, "message": ...}``."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 401:
            self.set_header("WWW-Authenticate", "Bearer")
        self.set_header("Content-Type", "application/json")
        message = error_message(status_code, kwargs)
        self.finish(json.dumps({"code": _GRPC_CODES.get(status_code, 2), "message": message}))


class ArgoWorkflowsHandler(ArgoHandler):
    """api/v1/workflows/{namespace}: create (POST {"workflow": ...}) and list."""

    async def post(self, namespace: str) -> None:
        self.check_namespace(namespace)
        body = self.json_body()
        workflow = body.get("workflow")
        if not isinstance(workflow, dict):
            raise web.HTTPError(400, 'the body must be {"workflow": {...}} as Argo Server takes it')
        if body.get("serverDryRun"):
            raise web.HTTPError(400, "serverDryRun is not served")
        workflow.setdefault("kind", "Workflow")
        workflow.setdefault("apiVersion", "argoproj.io/v1alpha1")
        if workflow.get("kind") != KIND:
            raise web.HTTPError(400, f"kind {workflow.get('kind')!r}: this endpoint takes Workflows")
        try:
            created = await self.runs.submit(self.user, workflow)
        except RunError as exc:
            raise self.fail(exc) from None
        self.write_json(created)

    async def get(self, namespace: str) -> None:
        self.check_namespace(namespace)
        selector = self.get_query_argument("listOptions.labelSelector", None) or None
        try:
            items = await self.runs.list_runs(self.user, KIND, selector)
        except RunError as exc:
            raise self.fail(exc) from None
        self.write_json({"metadata": {}, "items": items})


class ArgoWorkflowHandler(ArgoHandler):
    """api/v1/workflows/{namespace}/{name}: get and delete."""

    async def get(self, namespace: str, name: str) -> None:
        self.check_namespace(namespace)
        try:
            self.write_json(await self.runs.get(self.user, KIND, name))
        except RunError as exc:
            raise self.fail(exc) from None

    async def delete(self, namespace: str, name: str) -> None:
        self.check_namespace(namespace)
        try:
            await self.runs.delete(self.user, KIND, name)
        except RunError as exc:
            raise self.fail(exc) from None
        self.write_json({})


class _Streaming(ArgoHandler):
    """A stream of ``{"result": ...}`` objects: newline-delimited JSON, or server-sent events when the
    client accepts text/event-stream, as Argo Server's grpc-gateway writes them."""

    def open_stream(self) -> None:
        self.sse = "text/event-stream" in self.request.headers.get("Accept", "")
        self.set_header("Content-Type", "text/event-stream" if self.sse else "application/json")
        self.set_header("Cache-Control", "no-cache")
        self.set_header("X-Accel-Buffering", "no")

    async def send(self, result: dict[str, Any]) -> None:
        data = json.dumps({"result": result})
        self.write(f"data: {data}\n\n" if self.sse else data + "\n")
        await self.flush()


class ArgoLogHandler(_Streaming):
    """api/v1/workflows/{namespace}/{name}/log: the workflow's pods' logs (container ``main``)."""

    async def get(self, namespace: str, name: str) -> None:
        self.check_namespace(namespace)
        follow = self.get_query_argument("logOptions.follow", "false") == "true"
        container = self.get_query_argument("logOptions.container", "main") or "main"
        pod_name = self.get_query_argument("podName", None) or None
        grep = self.get_query_argument("grep", None) or None
        try:
            record = await self.runs.record(self.user, KIND, name)
            self.open_stream()
            async for pod, line in run_logs(
                self.runs, record, container=container, follow=follow, pod_name=pod_name
            ):
                text = line.decode("utf-8", "replace").rstrip("\r\n")
                if grep and grep not in text:
                    continue
                await self.send({"content": text, "podName": pod})
        except RunError as exc:
            if not self._headers_written:
                raise self.fail(exc) from None
            log.info("log of workflow %s/%s ended early: %s", self.user, name, exc)
        except StreamClosedError:
            return
        self.finish()


class ArgoWatchHandler(_Streaming):
    """api/v1/workflow-events/{namespace}: changes of the caller's workflows (or of one, with
    ``listOptions.fieldSelector=metadata.name=NAME``), read every ``watch_poll`` seconds from the
    clusters the registry names, until the client goes or ``watch_timeout`` seconds pass."""

    async def get(self, namespace: str) -> None:
        self.check_namespace(namespace)
        field = self.get_query_argument("listOptions.fieldSelector", "") or ""
        only = None
        if field:
            if not field.startswith("metadata.name="):
                raise web.HTTPError(400, f"fieldSelector {field!r}: only metadata.name=NAME is served")
            only = field.split("=", 1)[1]
        selector = self.get_query_argument("listOptions.labelSelector", None) or None
        poll = float(self.settings.get("watch_poll", 1.0))
        deadline = asyncio.get_running_loop().time() + float(self.settings.get("watch_timeout", 300.0))
        seen: dict[str, str] = {}
        self.open_stream()
        try:
            while asyncio.get_running_loop().time() < deadline:
                try:
                    items = await self.runs.list_runs(self.user, KIND, selector)
                except RunError as exc:
                    log.info("watch of %s's workflows: %s", self.user, exc)
                    items = None
                if items is not None:
                    current = {}
                    for item in items:
                        meta = item.get("metadata") or {}
                        wf = str(meta.get("name"))
                        if only and wf != only:
                            continue
                        version = str(
                            meta.get("resourceVersion") or json.dumps(item.get("status"), sort_keys=True)
                        )
                        current[wf] = version
                        if wf not in seen:
                            await self.send({"type": "ADDED", "object": item})
                        elif seen[wf] != version:
                            await self.send({"type": "MODIFIED", "object": item})
                    for wf in set(seen) - set(current):
                        await self.send({"type": "DELETED", "object": {"metadata": {"name": wf}}})
                    seen = current
                await asyncio.sleep(poll)
        except StreamClosedError:
            return
        self.finish()
