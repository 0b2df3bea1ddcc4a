"""The Kubernetes REST API of one emulated cluster, served by aiohttp over its Store."""

from __future__ import annotations

import asyncio
import base64
import logging
import time
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import orjson
import yaml
from aiohttp import payload, web

from . import discovery, protobuf, tables
from .auth import Authenticator
from .authz.attributes import UserInfo, request_attributes
from .authz.impersonation import EXTRA, GROUP, impersonate
from .authz.rbac import RBAC_GROUP, Authorizer
from .authz.reviews import self_subject_access_review, self_subject_review, self_subject_rules_review
from .errors import ApiError, bad_request
from .patch import PatchError, apply_patch, json_patch, merge_patch, strategic_merge_patch
from .resources import ResourceType
from .selectors import (
    FieldSelector,
    LabelSelector,
    SelectorError,
    parse_field_selector,
    parse_label_selector,
    supported_fields,
)
from .store import Entry, Store, Watcher, clone

__all__ = ["ApiServer", "RequestRecord"]

log = logging.getLogger(__name__)

JSON = "application/json"
# The apiserver ends a watch after a random 30-60 minutes; ours honours timeoutSeconds up to this.
MAX_WATCH_SECONDS = 1800
_TRUE = {"true", "1", "yes"}
_REVIEWS = {"SelfSubjectAccessReview", "SelfSubjectRulesReview", "SelfSubjectReview"}
_PATCH_TYPES = (
    "application/json-patch+json",
    "application/merge-patch+json",
    "application/strategic-merge-patch+json",
    "application/apply-patch+yaml",
)


@dataclass(frozen=True)
class RequestRecord:
    """One API request, as tests count them."""

    seq: int
    time: float
    method: str
    path: str
    query: dict[str, str]
    user: str | None
    client: str
    status: int = 0
    watch: bool = False
    user_agent: str = ""  # the client's User-Agent header: which program sent it

    def as_dict(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "method": self.method,
            "path": self.path,
            "query": self.query,
            "user": self.user,
            "client": self.client,
            "status": self.status,
            "watch": self.watch,
            "user_agent": self.user_agent,
        }


@dataclass
class Target:
    """What a request path names."""

    rt: ResourceType
    namespace: str | None
    name: str | None = None
    subresource: str | None = None


@dataclass
class ApiServer:
    """Routes requests to the store; logs them; authenticates; streams watches."""

    store: Store
    auth: Authenticator
    cluster_name: str = "cluster"
    request_log_size: int = 100_000
    bookmark_seconds: float = 60.0
    log_reader: Callable[..., Awaitable[web.StreamResponse]] | None = None
    # fault hook: awaited before each request; may raise ApiError or sleep
    before_request: Callable[[web.Request], Awaitable[None]] | None = None
    requests: deque[RequestRecord] = field(init=False)
    authorizer: Authorizer = field(init=False)
    _seq: int = field(default=0, init=False)
    _watch_tasks: set[asyncio.Task[Any]] = field(default_factory=set, init=False)

    def __post_init__(self) -> None:
        self.requests = deque(maxlen=self.request_log_size)
        self.authorizer = Authorizer(self.store)

    @property
    def last_seq(self) -> int:
        """The sequence number of the newest request recorded (0 before the first)."""
        return self._seq

    def make_app(self) -> web.Application:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self.handle)
        return app

    # ------------------------------------------------------------------ plumbing

    def _record(self, request: web.Request, user: str | None, watch: bool) -> int:
        self._seq += 1
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.requests.append(
            RequestRecord(
                seq=self._seq,
                time=time.time(),
                method=request.method,
                path=request.path,
                query=dict(request.query),
                user=user,
                client=f"{peer[0]}:{peer[1]}" if peer else "",
                watch=watch,
                status=0,
                user_agent=request.headers.get("User-Agent", ""),
            )
        )
        return self._seq

    def _set_status(self, seq: int, status: int) -> None:
        # records are frozen; the newest ones are at the right end
        for i in range(len(self.requests) - 1, max(-1, len(self.requests) - 200), -1):
            rec = self.requests[i]
            if rec.seq == seq:
                self.requests[i] = RequestRecord(**{**rec.as_dict(), "status": status})
                return

    @staticmethod
    def _json(body: Any, status: int = 200) -> web.Response:
        return web.Response(body=orjson.dumps(body), status=status, content_type=JSON)

    @staticmethod
    def _error(err: ApiError) -> web.Response:
        headers = {"Retry-After": "1"} if err.code == 429 else None
        return web.Response(
            body=orjson.dumps(err.status()), status=err.code, content_type=JSON, headers=headers
        )

    async def handle(self, request: web.Request) -> web.StreamResponse:
        watch = request.query.get("watch", "").lower() in _TRUE
        user = self.auth.authenticate_user(request.headers.get("Authorization"))
        seq = self._record(request, user.name if user else None, watch)
        try:
            if self.before_request is not None:
                await self.before_request(request)
            if user is None and request.path not in {"/readyz", "/livez", "/healthz"}:
                raise ApiError(401, "Unauthorized", reason="Unauthorized")
            if user is not None:
                request["user"] = self._authorize(request, user)
            response = await self._dispatch(request, watch)
        except ApiError as err:
            response = self._error(err)
        except (SelectorError, PatchError) as err:
            code = getattr(err, "code", 400)
            response = self._error(ApiError(code, str(err)))
        except web.HTTPException:
            raise
        except Exception:
            log.exception("%s %s failed", request.method, request.path)
            response = self._error(ApiError(500, "Internal error occurred: simcluster bug"))
        self._set_status(seq, response.status)
        return response

    def _authorize(self, request: web.Request, user: UserInfo) -> UserInfo:
        """The user the request acts as (after impersonation), once RBAC allows what it asks; else 403."""
        headers = request.headers
        extras: dict[str, list[str]] = {}
        for key, value in headers.items():
            if key.lower().startswith(EXTRA.lower()):
                extras.setdefault(key[len(EXTRA) :].lower(), []).append(value)
        acting = impersonate(self.authorizer, user, headers, headers.getall(GROUP, []), extras)
        self.authorizer.check(request_attributes(acting, request.method, request.path, request.query))
        return acting

    async def _dispatch(self, request: web.Request, watch: bool) -> web.StreamResponse:
        path = request.path.rstrip("/") or "/"
        doc = discovery.document(self.store.registry, path, request.headers.get("Accept", ""))
        if doc is not None:
            if isinstance(doc, str):
                return web.Response(text=doc, content_type="text/plain")
            return self._json(doc)
        target, collection = self._parse(path)
        method = request.method
        if target.subresource == "log":
            if method != "GET" or self.log_reader is None:
                raise ApiError(405, "the server does not allow this method on the requested resource")
            self.store.get(target.rt, target.namespace, target.name or "")
            return await self.log_reader(request, target.namespace, target.name)
        if target.subresource not in {None, "status"}:
            raise ApiError(404, "the server could not find the requested resource")
        if collection:
            if method == "GET":
                if watch:
                    return await self._watch(request, target)
                return self._list(request, target)
            if method == "POST" and target.rt.kind in _REVIEWS:
                return self._review(target.rt.kind, request["user"], await self._body(request))
            if method == "POST":
                return self._create(request, target, await self._body(request))
            if method == "DELETE":
                return self._delete_collection(request, target)
            raise ApiError(405, "the server does not allow this method on the requested resource")
        name = target.name or ""
        if method == "GET":
            obj = self.store.get(target.rt, target.namespace, name)
            return self._render_one(request, target.rt, obj)
        if method == "PUT":
            body = await self._body(request)
            obj = self.store.replace(
                target.rt,
                target.namespace,
                name,
                body,
                subresource=target.subresource,
                dry_run=self._dry_run(request),
            )
            return self._json(obj)
        if method == "PATCH":
            return await self._patch(request, target)
        if method == "DELETE":
            return await self._delete(request, target)
        raise ApiError(405, "the server does not allow this method on the requested resource")

    def _review(self, kind: str, user: UserInfo, body: Any) -> web.Response:
        """A review a user asks about itself, answered and not stored."""
        if kind == "SelfSubjectAccessReview":
            return self._json(self_subject_access_review(self.authorizer, user, body), status=201)
        if kind == "SelfSubjectRulesReview":
            return self._json(self_subject_rules_review(self.authorizer, user, body), status=201)
        return self._json(self_subject_review(user), status=201)

    def _parse(self, path: str) -> tuple[Target, bool]:
        """(target, is_collection) for a resource path; 404 for anything else."""
        parts = path.strip("/").split("/")
        reg = self.store.registry
        if parts[0] == "api" and len(parts) >= 3 and parts[1] == "v1":
            group, version, rest = "", "v1", parts[2:]
        elif parts[0] == "apis" and len(parts) >= 4:
            group, version, rest = parts[1], parts[2], parts[3:]
        else:
            raise ApiError(404, "the server could not find the requested resource")
        namespace: str | None = None
        if rest[0] == "namespaces" and len(rest) >= 3 and reg.get(group, version, rest[2]):
            namespace, rest = rest[1], rest[2:]
        rt = reg.get(group, version, rest[0])
        if rt is None or len(rest) > 3:
            raise ApiError(404, "the server could not find the requested resource")
        if namespace is not None and not rt.namespaced:
            raise ApiError(404, "the server could not find the requested resource")
        if len(rest) == 1:
            if not rt.namespaced:
                namespace = None
            return Target(rt, namespace), True
        if rt.namespaced and namespace is None:
            raise ApiError(404, "the server could not find the requested resource")
        sub = rest[2] if len(rest) == 3 else None
        if sub is not None and sub != "status" and sub not in rt.subresources:
            raise ApiError(404, "the server could not find the requested resource")
        if sub == "status" and not rt.status_subresource:
            raise ApiError(404, "the server could not find the requested resource")
        return Target(rt, namespace, rest[1], sub), False

    @staticmethod
    async def _body(request: web.Request) -> Any:
        ctype = request.content_type
        if not (ctype.endswith("json") or ctype.endswith("yaml") or ctype == protobuf.PROTOBUF):
            raise ApiError(
                415,
                f"the body of the request was in an unknown format - accepted media types include: "
                f"application/json, application/yaml, {protobuf.PROTOBUF} (got {ctype!r})",
            )
        raw = await request.read()
        if ctype == protobuf.PROTOBUF:  # client-go's typed clients (kubectl create namespace, ...)
            return protobuf.decode_object(raw)
        try:
            if ctype.endswith("yaml"):
                return yaml.safe_load(raw)
            return orjson.loads(raw)
        except (orjson.JSONDecodeError, yaml.YAMLError) as exc:
            raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from exc

    @staticmethod
    def _dry_run(request: web.Request) -> bool:
        return request.query.get("dryRun") == "All"

    @staticmethod
    def _selectors(request: web.Request, rt: ResourceType) -> tuple[LabelSelector, FieldSelector]:
        labels = parse_label_selector(request.query.get("labelSelector"))
        fields = parse_field_selector(request.query.get("fieldSelector"), supported_fields(rt.kind))
        return labels, fields

    @staticmethod
    def _wants_table(request: web.Request) -> bool:
        accept = request.headers.get("Accept", "")
        return "as=Table" in accept

    def _render_one(self, request: web.Request, rt: ResourceType, obj: dict[str, Any]) -> web.Response:
        if self._wants_table(request):
            table = tables.to_table(
                rt.kind,
                [obj],
                self.store.clock(),
                include_object=request.query.get("includeObject", "PartialObjectMetadata"),
                resource_version=obj["metadata"].get("resourceVersion", ""),
            )
            return self._json(table)
        return self._json(obj)

    # ------------------------------------------------------------------ verbs

    def _list(self, request: web.Request, target: Target) -> web.Response:
        """LIST, in key order (namespace, name) as etcd returns it, paged by ``limit``/``continue``.

        A LIST is served from the current state whatever resourceVersion it names, as from the
        apiserver's watch cache. A continued list serves the objects after the token's key as they
        are now, not a snapshot at the token's resourceVersion as the apiserver does; a token whose
        resourceVersion is compacted is 410, with a token that continues inconsistently.
        """
        labels, fields = self._selectors(request, target.rt)
        entries = sorted(self.store.entries(target.rt, target.namespace, labels, fields), key=_entry_key)
        rv = str(self.store.rv)
        asked = request.query.get("resourceVersion") or ""
        exact = request.query.get("resourceVersionMatch") == "Exact" and asked.isdigit()
        if exact and int(asked) < self.store.compacted():
            raise ApiError(410, _EXPIRED_LIST, reason="Expired")
        token = request.query.get("continue")
        if token:
            token_rv, after = _decode_continue(token)
            if token_rv != _LATEST and int(token_rv) < self.store.compacted():
                raise _ExpiredContinue(_encode_continue(_LATEST, after))
            rv = rv if token_rv == _LATEST else token_rv
            entries = [e for e in entries if _entry_key(e) > after]
        try:
            limit = int(request.query.get("limit") or 0)
        except ValueError as exc:
            raise bad_request(f"invalid limit: {request.query.get('limit')}") from exc
        meta: dict[str, Any] = {"resourceVersion": rv}
        if limit > 0 and len(entries) > limit:
            meta["remainingItemCount"] = len(entries) - limit
            entries = entries[:limit]
            meta["continue"] = _encode_continue(rv, _entry_key(entries[-1]))
        if self._wants_table(request):
            table = tables.to_table(
                target.rt.kind,
                [e.obj for e in entries],
                self.store.clock(),
                include_object=request.query.get("includeObject", "PartialObjectMetadata"),
                resource_version=rv,
                continue_token=meta.get("continue", ""),
                remaining_item_count=meta.get("remainingItemCount"),
            )
            return self._json(table)
        head = orjson.dumps(
            {"kind": target.rt.list_kind, "apiVersion": target.rt.api_version, "metadata": meta}
        )
        return web.Response(body=_list_body(head, entries))

    def _create(self, request: web.Request, target: Target, body: Any) -> web.Response:
        if target.subresource is not None:
            raise ApiError(405, "the server does not allow this method on the requested resource")
        if not isinstance(body, dict):
            raise bad_request("the body of the request was in an unknown format")
        obj = self.store.create(target.rt, target.namespace, body, dry_run=self._dry_run(request))
        return self._json(obj, status=201)

    async def _patch(self, request: web.Request, target: Target) -> web.Response:
        ctype = request.content_type
        rt, name = target.rt, target.name or ""
        if ctype not in _PATCH_TYPES:
            raise ApiError(
                415,
                "the body of the request was in an unknown format - accepted media types include: "
                + ", ".join(_PATCH_TYPES),
            )
        patch = await self._body(request)
        apply = ctype == "application/apply-patch+yaml"
        if apply and self.store.find(rt, target.namespace, name) is None:
            if not isinstance(patch, dict):
                raise bad_request("the body of the request was in an unknown format")
            patch.setdefault("metadata", {})["name"] = name
            obj = self.store.create(rt, target.namespace, patch, dry_run=self._dry_run(request))
            return self._json(obj, status=201)
        current = self.store.get(rt, target.namespace, name)  # 404 when missing
        if apply:
            new = apply_patch(current, patch, rt.kind if _strategic(rt) else None)
        elif ctype == "application/json-patch+json":
            new = json_patch(current, patch)
        elif ctype == "application/merge-patch+json":
            new = merge_patch(current, patch)
        else:  # strategic merge patch
            if not _strategic(rt):
                raise ApiError(
                    415,
                    "the body of the request was in an unknown format - accepted media types "
                    "include: application/json-patch+json, application/merge-patch+json, "
                    "application/apply-patch+yaml",
                )
            new = strategic_merge_patch(current, patch, rt.kind)
        if not isinstance(new, dict):
            raise bad_request("the patch turned the object into something that is not an object")
        # a patch that names a resourceVersion is an optimistic-concurrency update
        wanted = (patch.get("metadata") or {}).get("resourceVersion") if isinstance(patch, dict) else None
        new.setdefault("metadata", {})["resourceVersion"] = wanted or current["metadata"]["resourceVersion"]
        obj = self.store.replace(
            rt,
            target.namespace,
            name,
            clone(new),
            subresource=target.subresource,
            dry_run=self._dry_run(request),
        )
        return self._json(obj)

    async def _delete(self, request: web.Request, target: Target) -> web.Response:
        options: dict[str, Any] = {}
        if request.can_read_body:
            raw = await request.read()
            if raw.strip():
                try:
                    options = orjson.loads(raw)
                except orjson.JSONDecodeError as exc:
                    raise bad_request(f"invalid DeleteOptions: {exc}") from exc
        grace = request.query.get("gracePeriodSeconds", options.get("gracePeriodSeconds"))
        try:
            grace_period = None if grace is None else int(grace)
        except (TypeError, ValueError) as exc:
            raise bad_request(f"invalid gracePeriodSeconds: {grace}") from exc
        obj = self.store.delete(
            target.rt,
            target.namespace,
            target.name or "",
            grace_period=grace_period,
            preconditions=options.get("preconditions"),
            dry_run=self._dry_run(request) or options.get("dryRun") == ["All"],
            orphan=_orphans(request, options, target.rt),
        )
        return self._json(obj)

    def _delete_collection(self, request: web.Request, target: Target) -> web.Response:
        labels, fields = self._selectors(request, target.rt)
        names = [
            (e.obj["metadata"].get("namespace"), e.obj["metadata"]["name"])
            for e in self.store.entries(target.rt, target.namespace, labels, fields)
        ]
        items = []
        for ns, name in names:
            try:
                items.append(self.store.delete(target.rt, ns, name))
            except ApiError:
                continue
        return self._json(
            {
                "kind": target.rt.list_kind,
                "apiVersion": target.rt.api_version,
                "metadata": {"resourceVersion": str(self.store.rv)},
                "items": items,
            }
        )

    # ------------------------------------------------------------------ watch

    async def _watch(self, request: web.Request, target: Target) -> web.StreamResponse:
        rt = target.rt
        labels, fields = self._selectors(request, rt)
        query = request.query
        try:
            timeout = float(query.get("timeoutSeconds", MAX_WATCH_SECONDS))
        except ValueError as exc:
            raise bad_request(f"invalid timeoutSeconds: {query.get('timeoutSeconds')}") from exc
        timeout = max(0.0, min(timeout, MAX_WATCH_SECONDS))
        bookmarks = query.get("allowWatchBookmarks", "").lower() in _TRUE
        initial = query.get("sendInitialEvents", "").lower() in _TRUE
        rv = query.get("resourceVersion") or None
        table = self._wants_table(request)
        response = web.StreamResponse(status=200, headers={"Content-Type": JSON})
        response.enable_chunked_encoding()
        try:
            watcher = self.store.watch(rt, target.namespace, labels, fields, None if initial else rv)
        except ApiError as err:
            if err.code != 410:
                raise
            # as the apiserver does: 200, then one ERROR event carrying the 410 Status
            await response.prepare(request)
            await response.write(b'{"type":"ERROR","object":' + orjson.dumps(err.status()) + b"}\n")
            await response.write_eof()
            return response
        try:
            await response.prepare(request)
            if initial:
                # watch-list: the current state, then a bookmark that says it is complete
                end = {
                    "metadata": {
                        "resourceVersion": str(self.store.rv),
                        "annotations": {"k8s.io/initial-events-end": "true"},
                    }
                }
                watcher.queue.put_nowait(("BOOKMARK", end, None))
            await self._pump(request, response, watcher, timeout, bookmarks, table)
        except (ConnectionResetError, asyncio.CancelledError):
            pass
        finally:
            self.store.unwatch(watcher)
        return response

    async def _pump(
        self,
        request: web.Request,
        response: web.StreamResponse,
        watcher: Watcher,
        duration: float,
        bookmarks: bool,
        table: bool,
    ) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + duration
        next_bookmark = loop.time() + self.bookmark_seconds
        first_table = True
        while True:
            now = loop.time()
            if now >= deadline:
                return
            wait = min(deadline - now, 2.0)
            if bookmarks:
                wait = min(wait, max(0.0, next_bookmark - now))
            try:
                item = await asyncio.wait_for(watcher.queue.get(), timeout=wait)
            except TimeoutError:
                if request.transport is None or request.transport.is_closing():
                    return
                if bookmarks and loop.time() >= next_bookmark:
                    next_bookmark = loop.time() + self.bookmark_seconds
                    await response.write(self._bookmark(watcher.rt, None))
                continue
            if item is None:
                return
            typ, obj, raw = item
            if typ == "BOOKMARK":
                await response.write(self._bookmark(watcher.rt, obj))
                continue
            if typ == "ERROR":
                await response.write(b'{"type":"ERROR","object":' + orjson.dumps(obj) + b"}\n")
                continue
            if table:
                obj = tables.to_table(
                    watcher.rt.kind,
                    [obj],
                    self.store.clock(),
                    include_object=request.query.get("includeObject", "PartialObjectMetadata"),
                    include_columns=first_table,
                    resource_version=obj["metadata"].get("resourceVersion", ""),
                )
                first_table = False
                raw = None
            body = raw if raw is not None else orjson.dumps(obj)
            await response.write(b'{"type":"' + typ.encode() + b'","object":' + body + b"}\n")

    def _bookmark(self, rt: ResourceType, extra: dict[str, Any] | None) -> bytes:
        obj: dict[str, Any] = {
            "kind": rt.kind,
            "apiVersion": rt.api_version,
            "metadata": {"resourceVersion": str(self.store.rv)},
        }
        if extra:
            obj["metadata"].update(extra["metadata"])
        return b'{"type":"BOOKMARK","object":' + orjson.dumps(obj) + b"}\n"


def _strategic(rt: ResourceType) -> bool:
    """Whether strategic merge patch applies: Kubernetes' own kinds, not custom resources."""
    return rt.builtin or rt.group == RBAC_GROUP


_POLICIES = ("Foreground", "Background", "Orphan")


def _orphans(request: web.Request, options: dict[str, Any], rt: ResourceType) -> bool:
    """Whether a delete orphans the object's dependents: ``propagationPolicy: Orphan``, the old
    ``orphanDependents``, or neither for a batch/v1 Job (its REST default; kubectl asks for
    Background). Foreground is served as Background."""
    policy = request.query.get("propagationPolicy", options.get("propagationPolicy"))
    if policy is not None and policy not in _POLICIES:
        raise ApiError(
            422,
            f'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "{policy}": '
            'supported values: "Foreground", "Background", "Orphan"',
            reason="Invalid",
        )
    flag = request.query.get("orphanDependents", options.get("orphanDependents"))
    if policy is None and flag is not None:
        return str(flag).lower() in _TRUE
    return policy == "Orphan" or (policy is None and rt.key == ("batch", "v1", "jobs"))


def _list_body(head: bytes, entries: list[Entry]) -> payload.AsyncIterablePayload:
    """A list's JSON in chunks of 256 items: one joined body of a 30,000-pod LIST (230 MB) was copied
    several times on its way through asyncio's TLS transport (~1 GB RSS and 3x the CPU)."""

    async def chunks() -> AsyncIterator[bytes]:
        yield head[:-1] + b',"items":['
        for i in range(0, len(entries), 256):
            yield (b"," if i else b"") + b",".join(e.raw for e in entries[i : i + 256])
        yield b"]}"

    return payload.AsyncIterablePayload(chunks(), content_type=JSON)


def _entry_key(entry: Entry) -> tuple[str, str]:
    meta = entry.obj["metadata"]
    return (meta.get("namespace") or "", meta["name"])


# kube-apiserver's words (storage/etcd3) for a LIST at a compacted resourceVersion and for a continue
# token whose resourceVersion is compacted; the token it sends back continues at the latest ("-1")
_EXPIRED_LIST = "The resourceVersion for the provided list is too old."
_EXPIRED_CONTINUE = (
    "The provided continue parameter is too old to display a consistent list result. You can start a "
    "new list without the continue parameter, or use the continue token in this response to retrieve "
    "the remainder of the results. Continuing with the provided token results in an inconsistent list "
    "- objects that were created, modified, or deleted between the time the first chunk was returned "
    "and now may show up in the list."
)
_LATEST = "-1"


class _ExpiredContinue(ApiError):
    """410 for a compacted continue token; the Status carries a token that goes on at the latest."""

    def __init__(self, token: str) -> None:
        super().__init__(410, _EXPIRED_CONTINUE, reason="Expired")
        self.token = token

    def status(self) -> dict[str, Any]:
        body = super().status()
        body["metadata"] = {"continue": self.token}
        return body


def _encode_continue(rv: str, key: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(orjson.dumps({"rv": rv, "start": list(key)})).decode()


def _decode_continue(token: str) -> tuple[str, tuple[str, str]]:
    try:
        data = orjson.loads(base64.urlsafe_b64decode(token.encode()))
        rv = str(int(data["rv"]))
        return rv, (str(data["start"][0]), str(data["start"][1]))
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise bad_request(f"continue key is not valid: {exc}") from exc
