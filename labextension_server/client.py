"""The kernel's client of the hybridhub extension's REST API on its own Jupyter server, over the stdlib."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
import time
import urllib.error
import urllib.request
from collections.abc import AsyncIterator, Callable, Generator, Mapping, Sequence
from dataclasses import dataclass, field
from http.client import HTTPException, HTTPResponse
from typing import Any, TypeAlias
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

from .display import FAILED_PHASES, FINAL_PHASES, status_line

__all__ = [
    "KINDS",
    "Client",
    "HybridhubError",
    "LogLine",
    "RunFailed",
    "RunRef",
    "acancel",
    "acapacity",
    "agpus",
    "alogs",
    "arun",
    "aruns",
    "await_",
    "cancel",
    "capacity",
    "gpus",
    "logs",
    "resolve",
    "run",
    "runs",
    "server_url",
    "wait",
]

# The kinds of run the service keeps, as the service spells them in its paths.
KINDS = ("Workflow", "Experiment", "TrainJob", "PyTorchJob", "Job")

# A run as the functions take it: its name, "Kind/name", or a row of runs().
RunRef: TypeAlias = str | Mapping[str, Any]

# Longer than the extension's own timeout towards the service, so that its 504 arrives before ours.
DEFAULT_TIMEOUT = 60.0
# A followed log stream that stays silent this long is opened again, skipping the lines already seen,
# so that a quiet run never leaves a read hanging without a bound.
DEFAULT_IDLE = 120.0
# An error body is read only this far: it is a sentence, not a document.
_MAX_ERROR_BODY = 64 * 1024


class HybridhubError(Exception):
    """The extension refused a request (``status`` its HTTP status) or did not answer (``status`` None)."""

    def __init__(self, status: int | None, message: str) -> None:
        super().__init__(status, message)
        self.status = status
        self.message = message

    def __str__(self) -> str:
        return self.message if self.status is None else f"{self.status}: {self.message}"


class RunFailed(HybridhubError):
    """wait() saw the run end in failure; ``row`` is its last row as runs() lists it."""

    def __init__(self, row: Mapping[str, Any]) -> None:
        super().__init__(None, status_line(row))
        self.row = dict(row)


class LogLine(str):
    """One line of a run's output, without its line end; ``pod`` names the pod that printed it."""

    pod: str

    def __new__(cls, line: str, pod: str = "") -> LogLine:
        self = super().__new__(cls, line)
        self.pod = pod
        return self


def server_url(service_url: str) -> str:
    """The URL the kernel reaches its server at: the server's bind URL with a wildcard host made local.

    JupyterHub sets ``JUPYTERHUB_SERVICE_URL`` to where the server listens, which is often every
    interface; a client cannot connect to 0.0.0.0 on every system, so the loopback address stands in.
    """
    parts = urlsplit(service_url)
    if not parts.scheme or not parts.netloc:
        raise HybridhubError(None, f"JUPYTERHUB_SERVICE_URL={service_url!r} is not a URL")
    host = parts.hostname or ""
    if host in ("", "0.0.0.0"):
        host = "127.0.0.1"
    elif host == "::":
        host = "::1"
    if ":" in host:
        host = f"[{host}]"
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urlunsplit((parts.scheme, netloc, path, "", ""))


def _canonical_kind(kind: str) -> str:
    """The service's spelling of a kind typed in any case; the server refuses a kind it does not know."""
    return next((k for k in KINDS if k.lower() == kind.lower()), kind)


def resolve(ref: RunRef, rows: Sequence[Mapping[str, Any]] | None) -> tuple[str, str]:
    """The (kind, name) of a run named by ``ref``; ``rows`` are runs(), needed only for a bare name.

    A bare name must name exactly one kind of run, so that cancel() never picks one at random.
    """
    if isinstance(ref, Mapping):
        return str(ref["kind"]), str(ref["name"])
    if "/" in ref:
        kind, _, name = ref.partition("/")
        if not kind or not name:
            raise HybridhubError(None, f"{ref!r} is not a run: name it as NAME or KIND/NAME")
        return _canonical_kind(kind), name
    if rows is None:
        raise HybridhubError(None, f"{ref!r} needs the list of runs to find its kind")
    kinds = sorted({str(r["kind"]) for r in rows if r.get("name") == ref})
    if not kinds:
        raise HybridhubError(404, f'you have no run named "{ref}"')
    if len(kinds) > 1:
        both = ", ".join(f"{k}/{ref}" for k in kinds)
        raise HybridhubError(409, f'"{ref}" names {len(kinds)} runs ({both}): say which, as KIND/NAME')
    return kinds[0], ref


def _error_from(status: int, body: bytes, fallback: str) -> HybridhubError:
    """The extension's {"status", "message"} body as an error; a body of another shape as its text."""
    message = ""
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        data = None
    if isinstance(data, dict):
        message = str(data.get("message") or data.get("reason") or "")
    elif body:
        message = body.decode("utf-8", "replace").strip()[:500]
    return HybridhubError(status, message or fallback)


@dataclass(frozen=True)
class Client:
    """The extension's REST API at ``base_url`` (the server's URL, ending in a slash) with ``token``."""

    base_url: str
    token: str = field(repr=False)
    timeout: float = DEFAULT_TIMEOUT

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> Client:
        """The client of the server this kernel belongs to, from what JupyterHub sets in its environment."""
        env = os.environ if environ is None else environ
        url = env.get("JUPYTERHUB_SERVICE_URL", "")
        token = env.get("JUPYTERHUB_API_TOKEN", "")
        if not url or not token:
            missing = " and ".join(
                n for n, v in (("JUPYTERHUB_SERVICE_URL", url), ("JUPYTERHUB_API_TOKEN", token)) if not v
            )
            raise HybridhubError(
                None, f"{missing} not set: this process does not run in a JupyterHub notebook server"
            )
        return cls(server_url(url), token)

    # ---------------------------------------------------------------------------- transport

    def url(self, path: str, query: Mapping[str, str] | None = None) -> str:
        tail = f"?{urlencode(query)}" if query else ""
        return f"{self.base_url}hybridhub/api/{path}{tail}"

    def _open(self, method: str, path: str, query: Mapping[str, str] | None, timeout: float) -> HTTPResponse:
        request = urllib.request.Request(
            self.url(path, query),
            method=method,
            headers={"Authorization": f"token {self.token}", "Accept": "application/json"},
        )
        # No proxy: the server is this pod's own, and a proxy from the environment would not reach it.
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        try:
            response: HTTPResponse = opener.open(request, timeout=timeout)
        except urllib.error.HTTPError as exc:
            with exc:
                raise _error_from(exc.code, exc.read(_MAX_ERROR_BODY), exc.reason) from None
        except (urllib.error.URLError, OSError, HTTPException) as exc:
            reason = getattr(exc, "reason", exc)
            if isinstance(exc, TimeoutError) or isinstance(reason, TimeoutError):
                raise HybridhubError(
                    None, f"the Jupyter server at {self.base_url} did not answer within {timeout:g}s"
                ) from None
            raise HybridhubError(
                None, f"cannot reach the Jupyter server at {self.base_url}: {reason}"
            ) from None
        return response

    def request(self, method: str, path: str) -> Any:
        """One JSON request; its parsed body."""
        with self._open(method, path, None, self.timeout) as response:
            try:
                body = response.read()
            except (TimeoutError, OSError, HTTPException) as exc:
                raise HybridhubError(None, f"the answer to {method} {path} broke off: {exc}") from None
        try:
            return json.loads(body) if body else {}
        except json.JSONDecodeError:
            raise HybridhubError(response.status, f"{method} {path} answered with no JSON") from None

    # ---------------------------------------------------------------------------- the API

    def capacity(self) -> dict[str, Any]:
        """Per cluster its health and per GPU product total, free and largest free, as the service says."""
        return dict(self.request("GET", "capacity"))

    def gpus(self) -> dict[str, Any]:
        """This pod's own GPUs, from NVML on the server: ``{"nvml": bool, "gpus": [...]}``."""
        return dict(self.request("GET", "gpus"))

    def runs(self) -> list[dict[str, Any]]:
        """The user's runs in every cluster, one row each, queued ones with their place in the queue."""
        return list(self.request("GET", "runs").get("runs") or [])

    def locate(self, ref: RunRef) -> tuple[str, str]:
        """The (kind, name) of a run; a bare name is looked up in runs()."""
        return resolve(ref, None if isinstance(ref, Mapping) or "/" in ref else self.runs())

    def _path(self, ref: RunRef) -> str:
        kind, name = self.locate(ref)
        return f"runs/{quote(kind, safe='')}/{quote(name, safe='')}"

    def run(self, ref: RunRef) -> dict[str, Any]:
        """One run: ``{"run": its row, "object": its Kubernetes object}``."""
        return dict(self.request("GET", self._path(ref)))

    def cancel(self, ref: RunRef) -> dict[str, Any]:
        """Delete the run wherever it is, queued or running, with its pods; the service's Status answer."""
        return dict(self.request("DELETE", self._path(ref)))

    def logs(
        self,
        ref: RunRef,
        follow: bool = True,
        *,
        container: str | None = None,
        pod: str | None = None,
        idle: float = DEFAULT_IDLE,
    ) -> Generator[LogLine, None, None]:
        """The run's output line by line, each a LogLine naming its pod. With ``follow`` the lines come as
        the run prints them and the iterator ends when the run ends."""
        kind, name = self.locate(ref)
        path = self._path(f"{kind}/{name}") + "/logs"
        query = {"follow": "true" if follow else "false"}
        query.update({k: v for k, v in (("container", container), ("pod", pod)) if v})
        # A followed stream may stay silent while the run computes: each read waits up to ``idle``.
        timeout = idle if follow else self.timeout
        seen: dict[str, int] = {}
        while True:
            # Each pod's log starts from its beginning on every request: the lines already given are
            # counted per pod and skipped when a silent stream is opened again.
            replayed: dict[str, int] = {}
            try:
                with self._open("GET", path, query, timeout) as response:
                    for raw in response:
                        item = _log_item(raw)
                        if item is None:
                            continue
                        pod_name, line = item
                        replayed[pod_name] = replayed.get(pod_name, 0) + 1
                        if replayed[pod_name] > seen.get(pod_name, 0):
                            seen[pod_name] = replayed[pod_name]
                            yield LogLine(line, pod_name)
                return
            except TimeoutError:
                if not follow:
                    raise HybridhubError(
                        None, f"the log of {kind}/{name} stopped coming for {timeout:g}s"
                    ) from None
            except (OSError, HTTPException) as exc:
                raise HybridhubError(None, f"the log stream of {kind}/{name} broke off: {exc}") from None
            # Silent for ``timeout`` seconds: open it again unless the run has ended meanwhile.
            if self.run(f"{kind}/{name}")["run"].get("phase") in FINAL_PHASES:
                return

    def wait(
        self,
        ref: RunRef,
        poll: float = 2.0,
        timeout: float | None = None,
        *,
        echo: Callable[[str], None] | None = None,
    ) -> dict[str, Any]:
        """Until the run ends: its final row. Says, each time it changes, where the run stands and, while it
        is queued, why, its place and the expected wait. Raises RunFailed when it fails, TimeoutError
        after ``timeout`` seconds."""
        say = echo or _say
        deadline = None if timeout is None else time.monotonic() + timeout
        kind, name = self.locate(ref)
        said = ""
        while True:
            row = self.run(f"{kind}/{name}")["run"]
            said, final = _progress(row, said, say)
            if final is not None:
                return final
            if deadline is not None and time.monotonic() + poll > deadline:
                raise TimeoutError(f"{kind}/{name} did not end within {timeout:g}s: {said}")
            time.sleep(poll)


def _say(text: str) -> None:
    print(text, file=sys.stdout, flush=True)


def _progress(
    row: Mapping[str, Any], said: str, say: Callable[[str], None]
) -> tuple[str, dict[str, Any] | None]:
    """One look at a waited-for run: say where it stands if that changed; its row once it has ended."""
    line = status_line(row)
    if line != said:
        say(line)
    if row.get("phase") in FAILED_PHASES:
        raise RunFailed(row)
    return line, dict(row) if row.get("phase") in FINAL_PHASES else None


def _log_item(raw: bytes) -> tuple[str, str] | None:
    """One NDJSON line of the stream as (pod, line); a blank or foreign line as None."""
    raw = raw.strip()
    if not raw:
        return None
    try:
        data = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return "", raw.decode("utf-8", "replace")
    if not isinstance(data, dict):
        return None
    return str(data.get("pod") or ""), str(data.get("line") or "")


# -------------------------------------------------------------------------------- module functions
# Each reads the environment again, so that a kernel whose token was renewed uses the new one.


def _client() -> Client:
    return Client.from_env()


def capacity() -> dict[str, Any]:
    """Per cluster its health and per GPU product total, free and largest free."""
    return _client().capacity()


def gpus() -> dict[str, Any]:
    """This pod's own GPUs as NVML on the server sees them."""
    return _client().gpus()


def runs() -> list[dict[str, Any]]:
    """The user's runs in every cluster, one row each."""
    return _client().runs()


def run(ref: RunRef) -> dict[str, Any]:
    """One run by name or "Kind/name": ``{"run": row, "object": its Kubernetes object}``."""
    return _client().run(ref)


def cancel(ref: RunRef) -> dict[str, Any]:
    """Delete a run wherever it is, queued or running."""
    return _client().cancel(ref)


def logs(
    ref: RunRef, follow: bool = True, *, container: str | None = None, pod: str | None = None
) -> Generator[LogLine, None, None]:
    """A run's output line by line; with ``follow``, as it comes and until the run ends."""
    return _client().logs(ref, follow, container=container, pod=pod)


def wait(ref: RunRef, poll: float = 2.0, timeout: float | None = None) -> dict[str, Any]:
    """Until the run ends, saying where it stands when that changes; its final row. Raises RunFailed."""
    return _client().wait(ref, poll, timeout)


async def acapacity() -> dict[str, Any]:
    """capacity() in a thread, so that the event loop of the kernel keeps running."""
    return await asyncio.to_thread(capacity)


async def agpus() -> dict[str, Any]:
    """gpus() in a thread."""
    return await asyncio.to_thread(gpus)


async def aruns() -> list[dict[str, Any]]:
    """runs() in a thread."""
    return await asyncio.to_thread(runs)


async def arun(ref: RunRef) -> dict[str, Any]:
    """run() in a thread."""
    return await asyncio.to_thread(run, ref)


async def acancel(ref: RunRef) -> dict[str, Any]:
    """cancel() in a thread."""
    return await asyncio.to_thread(cancel, ref)


async def await_(ref: RunRef, poll: float = 2.0) -> dict[str, Any]:
    """wait() with each look in a thread and the sleeps on the event loop, so that ``asyncio.timeout``
    bounds it and cancelling it stops it. PEP 8's trailing underscore: ``await`` is a keyword."""
    client = _client()
    kind, name = await asyncio.to_thread(client.locate, ref)
    said = ""
    while True:
        row = (await asyncio.to_thread(client.run, f"{kind}/{name}"))["run"]
        said, final = _progress(row, said, _say)
        if final is not None:
            return final
        await asyncio.sleep(poll)


async def alogs(
    ref: RunRef, follow: bool = True, *, container: str | None = None, pod: str | None = None
) -> AsyncIterator[LogLine]:
    """logs() with each read in a thread; closing it closes the stream."""
    lines = logs(ref, follow, container=container, pod=pod)
    try:
        while True:
            item = await asyncio.to_thread(next, lines, None)
            if item is None:
                return
            yield item
    finally:
        # A read still running in its thread when the task was cancelled keeps the generator busy;
        # it closes the stream itself once the generator is collected.
        with contextlib.suppress(ValueError):
            await asyncio.to_thread(lines.close)
