"""The Argo Server REST subset Hera drives, served over the same store as the argoproj.io Workflows.

Argo's HTTP API is grpc-gateway in front of gRPC: successes answer 200, errors
``{"code": <grpc code>, "message": ...}`` with the HTTP status grpc-gateway maps that code to, and
streams (logs, workflow events) are newline-delimited ``{"result": ...}`` objects, or server-sent
events when the client asks for ``text/event-stream``.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass
from typing import Any

import orjson
from aiohttp import web

from ..auth import Authenticator
from ..authz.attributes import Attributes, UserInfo
from ..authz.rbac import Authorizer
from ..errors import ApiError
from ..logs import PodLogs
from ..selectors import SelectorError, parse_field_selector, parse_label_selector
from ..store import Store, clone
from .controller import workflow_type
from .engine import DONE
from .naming import LABEL_WORKFLOW

__all__ = ["ArgoServer", "grpc_code"]

log = logging.getLogger(__name__)

JSON = "application/json"
SSE = "text/event-stream"
FOLLOW_POLL = 0.2  # seconds between looks for new log lines while following
VERSION = {"version": "v3.6.0+simcluster", "platform": "linux/amd64"}

# grpc status codes (google.golang.org/grpc/codes) for the HTTP statuses of Kubernetes errors, and
# back to HTTP the way grpc-gateway's HTTPStatusFromCode maps them
_GRPC_BY_HTTP = {400: 3, 401: 16, 403: 7, 404: 5, 409: 6, 410: 9, 422: 3, 429: 8, 500: 13, 503: 14, 504: 4}
_HTTP_BY_GRPC = {3: 400, 16: 401, 7: 403, 5: 404, 6: 409, 9: 400, 8: 429, 13: 500, 14: 503, 4: 504, 2: 500}


def grpc_code(http_status: int) -> int:
    """The grpc code Argo's server answers for a Kubernetes error of ``http_status`` (2: Unknown)."""
    return _GRPC_BY_HTTP.get(http_status, 2)


class ArgoError(Exception):
    """An error as Argo's server words it: a grpc code and a message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    def response(self) -> web.Response:
        body = orjson.dumps({"code": self.code, "message": self.message})
        return web.Response(body=body, status=_HTTP_BY_GRPC.get(self.code, 500), content_type=JSON)


@dataclass
class ArgoServer:
    """Routes Argo's workflow service to the store; the same bearer tokens as the cluster's API.

    Argo's server in ``client`` auth mode makes its Kubernetes calls with the caller's token, so
    the cluster's RBAC decides: each request is checked as the calls it would make.
    """

    store: Store
    auth: Authenticator
    logs: PodLogs
    authorizer: Authorizer | None = None

    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._errors], client_max_size=64 * 1024**2)
        r = app.router
        r.add_get("/api/v1/version", self._version)
        r.add_get("/api/v1/workflows/{ns}", self._list)
        r.add_post("/api/v1/workflows/{ns}", self._create)
        r.add_post("/api/v1/workflows/{ns}/lint", self._lint)
        r.add_get("/api/v1/workflows/{ns}/{name}", self._get)
        r.add_delete("/api/v1/workflows/{ns}/{name}", self._delete)
        r.add_get("/api/v1/workflows/{ns}/{name}/log", self._log)
        r.add_put("/api/v1/workflows/{ns}/{name}/resume", self._resume)
        r.add_put("/api/v1/workflows/{ns}/{name}/suspend", self._suspend)
        r.add_put("/api/v1/workflows/{ns}/{name}/stop", self._stop)
        r.add_put("/api/v1/workflows/{ns}/{name}/terminate", self._terminate)
        r.add_get("/api/v1/workflow-events/{ns}", self._watch)
        r.add_route("*", "/{tail:.*}", self._unknown)
        return app

    # ------------------------------------------------------------------ plumbing

    @web.middleware
    async def _errors(
        self, request: web.Request, handler: Callable[[web.Request], Any]
    ) -> web.StreamResponse:
        try:
            if request.path != "/api/v1/version":
                user = self.auth.authenticate_user(request.headers.get("Authorization"))
                if user is None:
                    raise ArgoError(16, "token not valid")
                request["user"] = user
            response: web.StreamResponse = await handler(request)
            return response
        except ArgoError as err:
            return err.response()
        except ApiError as err:
            return ArgoError(grpc_code(err.code), err.message).response()
        except SelectorError as err:
            return ArgoError(3, str(err)).response()
        except web.HTTPException:
            raise
        except Exception:
            log.exception("argo server: %s %s failed", request.method, request.path)
            return ArgoError(13, "simcluster bug: see its log").response()

    @property
    def _rt(self) -> Any:
        rt = workflow_type(self.store)
        if rt is None:
            raise ArgoError(12, "this cluster serves no argoproj.io/v1alpha1 workflows")
        return rt

    def _check(
        self, request: web.Request, verb: str, resource: str = "workflows", subresource: str = ""
    ) -> str:
        """The request's namespace, once RBAC allows ``verb`` on ``resource`` there (else 403)."""
        namespace = request.match_info["ns"]
        if self.authorizer is not None:
            user: UserInfo = request["user"]
            group = "" if resource == "pods" else "argoproj.io"
            self.authorizer.check(
                Attributes(
                    user,
                    verb,
                    True,
                    path=request.path,
                    api_group=group,
                    api_version="v1" if resource == "pods" else "v1alpha1",
                    resource=resource,
                    subresource=subresource,
                    namespace=namespace,
                    name=request.match_info.get("name", ""),
                )
            )
        return namespace

    @staticmethod
    def _json(body: Any) -> web.Response:
        return web.Response(body=orjson.dumps(body), content_type=JSON)

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any]:
        raw = await request.read()
        try:
            body = orjson.loads(raw) if raw.strip() else {}
        except orjson.JSONDecodeError as exc:
            raise ArgoError(3, f"invalid character in the request body: {exc}") from exc
        if not isinstance(body, dict):
            raise ArgoError(3, "the request body is not a JSON object")
        return body

    async def _unknown(self, request: web.Request) -> web.Response:
        raise ArgoError(12, f"simcluster's Argo Server does not serve {request.method} {request.path}")

    async def _version(self, request: web.Request) -> web.Response:
        return self._json(VERSION)

    # ------------------------------------------------------------------ workflows

    async def _create(self, request: web.Request) -> web.Response:
        namespace = self._check(request, "create")
        body = await self._body(request)
        wf = body.get("workflow")
        if not isinstance(wf, dict):
            raise ArgoError(3, "workflow is required")
        spec = wf.get("spec") or {}
        _validate(spec)
        wf.pop("status", None)
        dry_run = bool(body.get("serverDryRun"))
        created = self.store.create(self._rt, namespace, wf, dry_run=dry_run)
        return self._json(created)

    async def _lint(self, request: web.Request) -> web.Response:
        self._check(request, "create")
        body = await self._body(request)
        wf = body.get("workflow")
        if not isinstance(wf, dict):
            raise ArgoError(3, "workflow is required")
        _validate(wf.get("spec") or {})
        return self._json(wf)

    async def _get(self, request: web.Request) -> web.Response:
        namespace = self._check(request, "get")
        return self._json(self.store.get(self._rt, namespace, request.match_info["name"]))

    async def _list(self, request: web.Request) -> web.Response:
        namespace = self._check(request, "list")
        q = request.query
        labels = parse_label_selector(q.get("listOptions.labelSelector"))
        fields = parse_field_selector(
            q.get("listOptions.fieldSelector"), {"metadata.name", "metadata.namespace"}
        )
        items = self.store.list(self._rt, namespace, labels=labels, fields=fields)
        prefix = q.get("namePrefix") or q.get("nameFilter") or ""
        if prefix:
            items = [i for i in items if i["metadata"]["name"].startswith(prefix)]
        items.sort(
            key=lambda i: (i["metadata"].get("creationTimestamp", ""), i["metadata"]["name"]), reverse=True
        )
        return self._json({"metadata": {"resourceVersion": str(self.store.rv)}, "items": items or None})

    async def _delete(self, request: web.Request) -> web.Response:
        namespace = self._check(request, "delete")
        self.store.delete(self._rt, namespace, request.match_info["name"])
        return self._json({})

    async def _resume(self, request: web.Request) -> web.Response:
        namespace = self._check(request, "update")
        name = request.match_info["name"]

        def resume(wf: dict[str, Any]) -> None:
            (wf.get("spec") or {}).pop("suspend", None)

        return self._json(self.store.update(self._rt, namespace, name, resume))

    async def _suspend(self, request: web.Request) -> web.Response:
        namespace = self._check(request, "update")
        name = request.match_info["name"]
        if (self.store.get(self._rt, namespace, name).get("status") or {}).get("phase") in DONE:
            raise ArgoError(3, "cannot suspend completed workflows")

        def suspend(wf: dict[str, Any]) -> None:
            wf.setdefault("spec", {})["suspend"] = True

        return self._json(self.store.update(self._rt, namespace, name, suspend))

    async def _stop(self, request: web.Request) -> web.Response:
        return self._shutdown(request, "Stop")

    async def _terminate(self, request: web.Request) -> web.Response:
        return self._shutdown(request, "Terminate")

    def _shutdown(self, request: web.Request, strategy: str) -> web.Response:
        namespace = self._check(request, "update")
        name = request.match_info["name"]
        if (self.store.get(self._rt, namespace, name).get("status") or {}).get("phase") in DONE:
            raise ArgoError(3, "cannot shutdown a completed workflow")

        def shut(wf: dict[str, Any]) -> None:
            wf.setdefault("spec", {})["shutdown"] = strategy

        return self._json(self.store.update(self._rt, namespace, name, shut))

    # ------------------------------------------------------------------ streams

    @staticmethod
    async def _open_stream(request: web.Request) -> tuple[web.StreamResponse, Callable[[Any], bytes]]:
        sse = SSE in request.headers.get("Accept", "")
        response = web.StreamResponse(headers={"Content-Type": SSE if sse else JSON})
        if sse:
            response.headers["Cache-Control"] = "no-cache"
        response.enable_chunked_encoding()
        await response.prepare(request)

        def frame(result: Any) -> bytes:
            body = orjson.dumps({"result": result})
            return b"data: " + body + b"\n\n" if sse else body + b"\n"

        return response, frame

    async def _log(self, request: web.Request) -> web.StreamResponse:
        namespace = self._check(request, "get")
        self._check(request, "list", "pods")
        self._check(request, "get", "pods", "log")
        name = request.match_info["name"]
        self.store.get(self._rt, namespace, name)  # 404 for a workflow that does not exist
        q = request.query
        container = q.get("logOptions.container") or "main"
        follow = q.get("logOptions.follow", "").lower() == "true"
        pod_name = q.get("podName") or ""
        try:
            tail = int(q["logOptions.tailLines"]) if q.get("logOptions.tailLines") else None
            grep = re.compile(q["grep"]) if q.get("grep") else None
        except (ValueError, re.error) as exc:
            raise ArgoError(3, f"invalid log options: {exc}") from exc
        selector = f"{LABEL_WORKFLOW}={name}"
        if q.get("selector"):
            selector += "," + q["selector"]
        labels = parse_label_selector(selector)
        pods_rt = self.store.registry.core("pods")
        sent: dict[str, int] = {}

        def fresh() -> list[tuple[str, str, str]]:
            """Lines not sent yet, of every pod of the workflow, in time order."""
            out: list[tuple[str, str, str]] = []
            for pod in self.store.list(pods_rt, namespace, labels=labels):
                pname = pod["metadata"]["name"]
                if pod_name and pname != pod_name:
                    continue
                lines = self.logs.lines(namespace, pname, container)
                start = sent.get(pname)
                if start is None and tail is not None:
                    start = max(0, len(lines) - tail)
                sent[pname] = len(lines)
                out.extend((ts, pname, line) for ts, line in lines[start or 0 :])
            out.sort(key=lambda item: item[0])
            return [item for item in out if grep is None or grep.search(item[2])]

        def finished() -> bool:
            wf = self.store.find(self._rt, namespace, name)
            if wf is None or (wf.get("status") or {}).get("phase") not in DONE:
                return wf is None
            return all(self.logs.closed(namespace, p, container) for p in sent)

        response, frame = await self._open_stream(request)
        for _, pname, line in fresh():
            await response.write(frame({"content": line, "podName": pname}))
        while follow and request.transport is not None and not request.transport.is_closing():
            done = finished()
            for _, pname, line in fresh():
                await response.write(frame({"content": line, "podName": pname}))
            if done:
                break
            await asyncio.sleep(FOLLOW_POLL)
        await response.write_eof()
        return response

    async def _watch(self, request: web.Request) -> web.StreamResponse:
        namespace = self._check(request, "watch")
        q = request.query
        labels = parse_label_selector(q.get("listOptions.labelSelector"))
        fields = parse_field_selector(
            q.get("listOptions.fieldSelector"), {"metadata.name", "metadata.namespace"}
        )
        watcher = self.store.watch(
            self._rt, namespace, labels, fields, q.get("listOptions.resourceVersion") or None
        )
        response, frame = await self._open_stream(request)
        try:
            async for typ, obj in _events(request, watcher.queue):
                await response.write(frame({"type": typ, "object": obj}))
            await response.write_eof()
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.unwatch(watcher)
        return response


async def _events(
    request: web.Request, queue: asyncio.Queue[tuple[str, dict[str, Any], bytes | None] | None]
) -> AsyncIterator[tuple[str, Mapping[str, Any]]]:
    """The watch's events until it ends or the client goes away."""
    while request.transport is not None and not request.transport.is_closing():
        try:
            item = await asyncio.wait_for(queue.get(), timeout=2.0)
        except TimeoutError:
            continue
        if item is None:
            return
        typ, obj, _ = item
        if typ in {"ADDED", "MODIFIED", "DELETED"}:
            yield typ, clone(obj)


def _validate(spec: Mapping[str, Any]) -> None:
    """What Argo's validation refuses before a workflow is stored, in its words (a subset)."""
    if spec.get("workflowTemplateRef"):
        raise ArgoError(3, "simcluster runs no workflowTemplateRef: submit the workflow's templates")
    entry = spec.get("entrypoint")
    if not entry:
        raise ArgoError(3, "spec.entrypoint is required")
    names = {t.get("name") for t in spec.get("templates") or []}
    if entry not in names:
        raise ArgoError(3, f"spec.entrypoint template name '{entry}' undefined")
