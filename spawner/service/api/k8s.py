"""k8s/...: the part of the Kubernetes API the Katib and Kubeflow SDKs call, for the caller's own runs."""

from __future__ import annotations

import json
import logging
from typing import Any

from tornado import web
from tornado.iostream import StreamClosedError

from ..runs.kubeapi import TRAINER_PUBLIC_CONFIGMAP, NotServed, Route, route
from ..runs.manager import RunError
from .user_runs import UserRunsHandler, error_message

__all__ = ["KubeHandler"]

log = logging.getLogger(__name__)

_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "AlreadyExists",
    413: "RequestEntityTooLarge",
    414: "RequestURITooLong",
    422: "Invalid",
    503: "ServiceUnavailable",
    504: "Timeout",
}
# What /version answers: the clients read only that it parses.
VERSION = {"major": "1", "minor": "31", "gitVersion": "v1.31.0+hybridhub", "platform": "linux/amd64"}
_LIST_KINDS = {"pods": "PodList", "events": "EventList"}


def _prefix(r: Route) -> str:
    return f"/api/{r.version}" if not r.group else f"/apis/{r.group}/{r.version}"


class KubeHandler(UserRunsHandler):
    """One route for every path under k8s/: ``spawner.service.runs.kubeapi.route`` says whether it is
    served. Runs are submitted, read and deleted through the service's run registry, so they are
    checked, held back and admitted as through the Argo endpoint; what belongs to a run (its pods, their
    logs, Katib's trials, events) is read as the user from the clusters that hold the user's runs;
    what every user may read (the Trainer's runtimes and its public ConfigMap) is read as the service.
    Errors are Kubernetes Status objects."""

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        if status_code == 401:
            self.set_header("WWW-Authenticate", "Bearer")
        self.set_header("Content-Type", "application/json")
        status = {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": error_message(status_code, kwargs),
            "reason": _REASONS.get(status_code, "InternalError"),
            "code": status_code,
        }
        self.finish(json.dumps(status))

    async def get(self, path: str | None = None) -> None:
        await self.serve("GET")

    async def post(self, path: str | None = None) -> None:
        await self.serve("POST")

    async def delete(self, path: str | None = None) -> None:
        await self.serve("DELETE")

    async def patch(self, path: str | None = None) -> None:
        await self.serve("PATCH")

    async def put(self, path: str | None = None) -> None:
        await self.serve("PUT")

    async def serve(self, method: str) -> None:
        # the path as sent, still percent-encoded: route() refuses encoded slashes and dots itself
        path = self.request.path[len(self.settings["service_prefix"].rstrip("/") + "/k8s") :] or "/"
        query = {
            k: [v.decode("utf-8", "replace") for v in vs] for k, vs in self.request.query_arguments.items()
        }
        found = route(method, path, query)
        if isinstance(found, NotServed):
            raise web.HTTPError(found.status, "%s", found.message)
        try:
            await self.answer(found)
        except RunError as exc:
            if self._headers_written:
                log.info("k8s %s %s of %s ended early: %s", method, path, self.user, exc)
                self.finish()
                return
            raise self.fail(exc) from None

    def namespace_of(self, r: Route) -> str:
        """The user's run namespace, for the names the path may give it."""
        self.check_namespace(r.namespace or "")
        return self.runs.namespace(self.user)

    async def answer(self, r: Route) -> None:
        if r.resource in ("api", "apis", "version") and not r.group and not r.version:
            self.write_json(self.discovery(r.resource))
            return
        if r.resource == "configmaps":
            namespace, name = TRAINER_PUBLIC_CONFIGMAP
            self.write_json(await self.everyones(f"/api/v1/namespaces/{namespace}/configmaps/{name}"))
            return
        if r.resource == "clustertrainingruntimes":
            tail = f"/{r.name}" if r.name else ""
            self.write_json(await self.everyones(f"{_prefix(r)}/clustertrainingruntimes{tail}"))
            return
        namespace = self.namespace_of(r)
        if r.kind is not None and r.resource != "trials":
            await self.run(r, namespace)
        elif r.verb == "log":
            await self.pod_log(r, namespace)
        elif r.verb == "list":
            await self.merged_list(r, namespace)
        else:
            _, obj = await self.first_found(r, namespace)
            self.write_json(obj)

    def discovery(self, what: str) -> dict[str, Any]:
        if what == "version":
            return VERSION
        if what == "api":
            return {"kind": "APIVersions", "versions": ["v1"], "serverAddressByClientCIDRs": []}
        groups = [
            ("argoproj.io", "v1alpha1"),
            ("kubeflow.org", "v1beta1"),
            ("kubeflow.org", "v1"),
            ("trainer.kubeflow.org", "v1alpha1"),
            ("batch", "v1"),
        ]
        by_group: dict[str, list[str]] = {}
        for group, version in groups:
            by_group.setdefault(group, []).append(version)
        return {
            "kind": "APIGroupList",
            "apiVersion": "v1",
            "groups": [
                {
                    "name": group,
                    "versions": [{"groupVersion": f"{group}/{v}", "version": v} for v in versions],
                    "preferredVersion": {"groupVersion": f"{group}/{versions[0]}", "version": versions[0]},
                }
                for group, versions in by_group.items()
            ],
        }

    async def everyones(self, path: str) -> dict[str, Any]:
        """What every user may read, the same in every cluster: read as the service from the first
        cluster that answers, on-prem first."""
        last: RunError | None = None
        for cluster in self.runs.reachable_clusters():
            try:
                return await self.runs.read(cluster, path, user=None)
            except RunError as exc:
                if exc.status == 404:
                    raise
                last = exc
        raise last or RunError(503, "no cluster answers", "ServiceUnavailable")

    async def run(self, r: Route, namespace: str) -> None:
        """A run kind: create, get (and its status), list and delete through the registry."""
        user, kind = self.user, r.kind or ""
        if r.verb == "create":
            body = self.json_body()
            body.setdefault("metadata", {})
            if body.get("kind") != kind:
                raise web.HTTPError(
                    400, f"the body's kind {body.get('kind')!r} does not match the path's {r.resource}"
                )
            self.write_json(await self.runs.submit(user, body), status=201)
        elif r.verb == "list":
            items = await self.runs.list_runs(user, kind, r.label_selector)
            self.write_json(
                {
                    "apiVersion": f"{r.group}/{r.version}",
                    "kind": f"{kind}List",
                    "metadata": {"resourceVersion": ""},
                    "items": items,
                }
            )
        elif r.verb == "delete":
            self.write_json(await self.runs.delete(user, kind, r.name or ""))
        else:
            self.write_json(await self.runs.get(user, kind, r.name or ""))

    def _path(self, r: Route, namespace: str) -> str:
        tail = f"/{r.name}" if r.name else ""
        return f"{_prefix(r)}/namespaces/{namespace}/{r.resource}{tail}"

    async def merged_list(self, r: Route, namespace: str) -> None:
        """A list of what belongs to the user's runs (pods, events, trials, namespaced runtimes), one
        LIST in each cluster that holds some of them, merged."""
        query = {"labelSelector": r.label_selector} if r.label_selector else None
        items: list[dict[str, Any]] = []
        kind = None
        for cluster in await self.runs.user_clusters(self.user):
            answer = await self.runs.read(cluster, self._path(r, namespace), query, user=self.user)
            items += answer.get("items") or []
            kind = answer.get("kind")
        group_version = f"{r.group}/{r.version}" if r.group else r.version
        default_kind = _LIST_KINDS.get(r.resource) or f"{r.resource.rstrip('s').capitalize()}List"
        self.write_json(
            {
                "apiVersion": group_version,
                "kind": kind or default_kind,
                "metadata": {"resourceVersion": ""},
                "items": items,
            }
        )

    async def first_found(self, r: Route, namespace: str) -> tuple[str, dict[str, Any]]:
        """A named object of the user's (a pod, a trial, a runtime): from the first cluster of theirs
        that has it; 404 when none does."""
        for cluster in await self.runs.user_clusters(self.user):
            try:
                obj = await self.runs.read(cluster, self._path(r, namespace), user=self.user)
            except RunError as exc:
                if exc.status == 404:
                    continue
                raise
            return cluster, obj
        raise RunError(404, f'{r.resource} "{r.name}" not found', "NotFound")

    async def pod_log(self, r: Route, namespace: str) -> None:
        """A pod's log, streamed as the cluster sends it; with follow, until the pod ends."""
        pod_route = Route("get", "", "v1", "pods", namespace=r.namespace, name=r.name)
        cluster, _ = await self.first_found(pod_route, namespace)
        self.set_header("Content-Type", "text/plain")
        try:
            async for line in self.runs.pod_log(
                self.user,
                cluster,
                namespace,
                r.name or "",
                r.container,
                follow=r.follow,
                tail_lines=r.tail_lines,
            ):
                self.write(line)
                if r.follow:
                    await self.flush()
        except StreamClosedError:
            return
        self.finish()
