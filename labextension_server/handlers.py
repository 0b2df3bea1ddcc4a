"""The extension's REST handlers: each forwards to the hybridhub service with the server's hub token."""

from __future__ import annotations

import json
from http.client import responses
from typing import Any, Protocol
from urllib.parse import quote, urlencode

from jupyter_server.auth.decorator import authorized
from jupyter_server.base.handlers import APIHandler
from jupyter_server.extension.handler import ExtensionHandlerMixin
from tornado import httputil, web
from tornado.httpclient import AsyncHTTPClient, HTTPClientError, HTTPRequest, HTTPResponse
from tornado.iostream import StreamClosedError
from tornado.simple_httpclient import HTTPTimeoutError

from .nvml import local_gpus


class ServiceSettings(Protocol):
    """What the handlers read of the extension app (``labextension_server.app``, which imports this
    module: the handlers name only what they read, so the two do not import each other)."""

    service_url: str
    api_token: str
    request_timeout: float
    log_follow_timeout: float


__all__ = [
    "AUTH_RESOURCE",
    "CapacityHandler",
    "GpusHandler",
    "RunHandler",
    "RunLogsHandler",
    "RunsHandler",
    "relayed_error",
]

# The resource name jupyter-server authorizers see for every route of this extension.
AUTH_RESOURCE = "hybridhub"
# The query arguments of a logs request that the service understands; nothing else is passed on.
LOG_ARGUMENTS = ("follow", "container", "pod")
# What a log stream is, here as at the service. APIHandler.finish() would write JSON's type over it.
NDJSON = "application/x-ndjson"


def relayed_error(code: int, body: bytes) -> tuple[int, str]:
    """The status and message this server answers for the service's error answer ``code`` with ``body``.

    The service writes errors as ``{"status": N, "message": "..."}`` and both are passed on. A 401
    means the service did not take this server's own token, which the caller cannot fix: it becomes 502.
    An answer that is not the service's JSON, such as a proxy's error page, keeps its status.
    """
    message = ""
    try:
        data = json.loads(body or b"null")
    except (ValueError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict) and isinstance(data.get("message"), str):
        message = data["message"]
    if not message:
        message = f"the hybridhub service answered {code} {responses.get(code, '')}".rstrip()
    if code == 401:
        return 502, f"the hybridhub service did not accept this server's hub token: {message}"
    if code < 400 or code > 599:
        return 502, f"the hybridhub service answered {code}, which this server does not pass on"
    return code, message


class _ClientGone(Exception):
    """Raised inside the upstream stream's callback to end it when the caller has gone away."""


class HybridHubHandler(ExtensionHandlerMixin, APIHandler):
    """What every route shares: the service's address and token, timeouts, errors as ``{status, message}``."""

    auth_resource = AUTH_RESOURCE

    @property
    def hybridhub(self) -> ServiceSettings:
        return self.extensionapp  # type: ignore[return-value]

    def upstream(self, path: str, query: dict[str, str] | None = None, **options: Any) -> HTTPRequest:
        """A request for ``path`` under the service's prefix, sent with this server's token."""
        app = self.hybridhub
        if not app.service_url:
            raise web.HTTPError(
                503, "the hybridhub service is not configured: $HYBRIDHUB_SERVICE_URL is empty"
            )
        if not app.api_token:
            raise web.HTTPError(503, "this server has no hub token to reach the hybridhub service")
        url = app.service_url + path + (f"?{urlencode(query)}" if query else "")
        options.setdefault("request_timeout", app.request_timeout)
        return HTTPRequest(
            url,
            headers={"Authorization": f"token {app.api_token}", "Accept": "application/json"},
            connect_timeout=app.request_timeout,
            follow_redirects=False,
            allow_nonstandard_methods=True,
            **options,
        )

    async def fetch(self, request: HTTPRequest, client: AsyncHTTPClient | None = None) -> HTTPResponse:
        """The service's answer, with a failure to reach it turned into 504 or 502."""
        try:
            return await (client or AsyncHTTPClient()).fetch(request, raise_error=False)
        except HTTPTimeoutError:
            raise web.HTTPError(
                504, "the hybridhub service did not answer within %g s", request.request_timeout
            ) from None
        except (OSError, StreamClosedError, HTTPClientError) as exc:
            raise web.HTTPError(502, "the hybridhub service could not be reached: %s", exc) from None

    async def forward(self, method: str, path: str) -> None:
        """Send the request on and write the service's JSON answer back, or its error as ours."""
        response = await self.fetch(self.upstream(path, method=method))
        if response.code != 200:
            status, message = relayed_error(response.code, response.body)
            raise web.HTTPError(status, "%s", message)
        self.set_header("Content-Type", "application/json")
        self.finish(response.body)

    def check_xsrf_cookie(self) -> None:
        # tornado asks before prepare() has identified the caller. Under jupyterhub-singleuser, JupyterHub's
        # replacement of this check then cannot yet see that a token authenticated the request, and refuses
        # a token-only DELETE. prepare() asks again once the caller is known, and that answer counts.
        if not hasattr(self, "_jupyter_current_user"):
            return
        super().check_xsrf_cookie()

    def write_error(self, status_code: int, **kwargs: Any) -> None:
        message = responses.get(status_code, "error")
        exc = kwargs["exc_info"][1] if kwargs.get("exc_info") else None
        if isinstance(exc, web.HTTPError) and exc.log_message:
            message = exc.log_message % exc.args if exc.args else exc.log_message
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps({"status": status_code, "message": message}))


def _run_path(kind: str, name: str) -> str:
    return f"api/runs/{quote(kind, safe='')}/{quote(name, safe='')}"


class CapacityHandler(HybridHubHandler):
    """GPU capacity per cluster and product, as the service's ``api/capacity`` answers it."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.forward("GET", "api/capacity")


class RunsHandler(HybridHubHandler):
    """The server owner's runs across every cluster, each with where it went and why."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        await self.forward("GET", "api/runs")


class RunHandler(HybridHubHandler):
    """One run: GET its row and object; DELETE cancels it."""

    @web.authenticated
    @authorized
    async def get(self, kind: str, name: str) -> None:
        await self.forward("GET", _run_path(kind, name))

    @web.authenticated
    @authorized
    async def delete(self, kind: str, name: str) -> None:
        await self.forward("DELETE", _run_path(kind, name))


class RunLogsHandler(HybridHubHandler):
    """A run's output as the service's newline-delimited JSON, passed on chunk by chunk as it comes.

    With ``follow=true`` the stream lasts until the run ends, bounded by ``log_follow_timeout``. When
    the caller goes away, the upstream request ends at the service's next chunk: tornado's client
    cannot be stopped from outside, so its callback stops it.
    """

    _gone = False
    _status = 0
    _streaming = False
    _error_body: bytearray

    def on_connection_close(self) -> None:
        self._gone = True
        super().on_connection_close()

    def _header_line(self, line: str) -> None:
        if not self._status:
            self._status = httputil.parse_response_start_line(line.strip()).code
        elif line in ("\r\n", "\n") and self._status == 200:
            self._streaming = True
            self.set_header("Content-Type", NDJSON)
            # nginx and other proxies in front of the hub pass a stream on only when told not to buffer
            self.set_header("X-Accel-Buffering", "no")

    def _chunk(self, chunk: bytes) -> None:
        if self._gone or self.request.connection is None or self.request.connection.stream.closed():  # type: ignore[attr-defined]
            raise _ClientGone()
        if not self._streaming:
            self._error_body.extend(chunk)
            return
        self.write(chunk)
        # A failed write surfaces as _ClientGone at the next chunk; the future's error is read here so
        # that asyncio does not report it as never retrieved.
        self.flush().add_done_callback(lambda written: written.exception())

    @web.authenticated
    @authorized
    async def get(self, kind: str, name: str) -> None:
        query = {k: v for k in LOG_ARGUMENTS if (v := self.get_query_argument(k, ""))}
        follow = query.get("follow") == "true"
        self._error_body = bytearray()
        timeout = self.hybridhub.log_follow_timeout if follow else self.hybridhub.request_timeout
        request = self.upstream(
            f"{_run_path(kind, name)}/logs",
            query,
            request_timeout=timeout,
            header_callback=self._header_line,
            streaming_callback=self._chunk,
        )
        # A client of its own, so that long followed streams never hold the slots of the shared one.
        client = AsyncHTTPClient(force_instance=True)
        try:
            response = await self.fetch(request, client)
        except web.HTTPError:
            if not self._streaming:
                raise
            # The stream had begun: the caller sees it end, since a status can no longer change.
            self.log.warning("hybridhub: the log stream of %s %s broke off", kind, name)
            self.finish(set_content_type=NDJSON)
            return
        except _ClientGone:
            self.log.debug("hybridhub: the caller left the log stream of %s %s", kind, name)
            return
        finally:
            client.close()
        if response.code != 200:
            status, message = relayed_error(response.code, bytes(self._error_body))
            raise web.HTTPError(status, "%s", message)
        self.finish(set_content_type=NDJSON)


class GpusHandler(HybridHubHandler):
    """This pod's own GPUs from NVML, or ``{"nvml": false, "reason": ...}`` where there is none."""

    @web.authenticated
    @authorized
    async def get(self) -> None:
        self.set_header("Content-Type", "application/json")
        self.finish(json.dumps(await local_gpus(self.hybridhub.request_timeout)))
