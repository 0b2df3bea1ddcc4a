"""A stand-in for the extension's REST API (nb_common's contract) on a thread, for the kernel-side tests."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["PREFIX", "TOKEN", "FakeExtension", "LogStep", "serve"]

PREFIX = "/user/alice/hybridhub/api/"
TOKEN = "alice-server"


@dataclass(frozen=True)
class LogStep:
    """One step of a log stream: wait ``delay`` seconds, then send the line of ``pod`` (None: nothing)."""

    delay: float
    pod: str | None = None
    line: str = ""


@dataclass
class FakeExtension:
    """What the fake answers. Tests set the bodies; ``requests`` records (method, path, query, auth)."""

    capacity: dict[str, Any] = field(default_factory=lambda: {"clusters": []})
    gpus: dict[str, Any] = field(default_factory=lambda: {"nvml": False, "reason": "no NVML", "gpus": []})
    rows: list[dict[str, Any]] = field(default_factory=list)
    objects: dict[tuple[str, str], dict[str, Any]] = field(default_factory=dict)
    trials: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    # Successive rows that GET runs/{kind}/{name} answers for a run, the last one repeated.
    timeline: dict[tuple[str, str], list[dict[str, Any]]] = field(default_factory=dict)
    # One script per request of the run's logs, in order; the last one repeated.
    log_scripts: dict[tuple[str, str], list[list[LogStep]]] = field(default_factory=dict)
    # Forced answers by path (after the prefix): (status, content type, body).
    forced: dict[str, tuple[int, str, bytes]] = field(default_factory=dict)
    delay: float = 0.0
    requests: list[tuple[str, str, dict[str, list[str]], str]] = field(default_factory=list)
    _served: dict[str, int] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def served(self, key: str) -> int:
        """How many times ``key`` was asked before this time."""
        with self.lock:
            count = self._served.get(key, 0)
            self._served[key] = count + 1
            return count

    def row(self, kind: str, name: str) -> dict[str, Any] | None:
        steps = self.timeline.get((kind, name))
        if steps:
            return steps[min(self.served(f"row {kind}/{name}"), len(steps) - 1)]
        return next((r for r in self.rows if r["kind"] == kind and r["name"] == name), None)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, message: str) -> None:
        self._json(status, {"status": status, "message": message})

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
        self.wfile.flush()

    def _serve(self, method: str) -> None:
        fake = self.server.fake
        url = urlsplit(self.path)
        auth = self.headers.get("Authorization", "")
        fake.requests.append((method, url.path, parse_qs(url.query), auth))
        if fake.delay:
            time.sleep(fake.delay)
        if not url.path.startswith(PREFIX):
            return self._error(404, "not found")
        path = url.path[len(PREFIX) :]
        if path in fake.forced:
            status, content_type, forced = fake.forced[path]
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(forced)))
            self.end_headers()
            self.wfile.write(forced)
            return None
        if auth != f"token {TOKEN}":
            return self._error(403, "Forbidden: this token may not use alice's server")
        parts = [unquote(p) for p in path.split("/")]
        if method == "GET" and parts == ["capacity"]:
            return self._json(200, fake.capacity)
        if method == "GET" and parts == ["gpus"]:
            return self._json(200, fake.gpus)
        if method == "GET" and parts == ["runs"]:
            return self._json(200, {"runs": fake.rows})
        if len(parts) >= 3 and parts[0] == "runs":
            kind, name = parts[1], parts[2]
            row = fake.row(kind, name)
            if row is None:
                return self._error(404, f'{kind} "{name}" not found')
            if len(parts) == 3 and method == "GET":
                body: dict[str, Any] = {"run": row, "object": fake.objects.get((kind, name), {})}
                if (kind, name) in fake.trials:
                    body["trials"] = fake.trials[(kind, name)]
                return self._json(200, body)
            if len(parts) == 3 and method == "DELETE":
                return self._json(200, {"kind": "Status", "status": "Success", "details": {"name": name}})
            if parts[3:] == ["logs"] and method == "GET":
                return self._logs(kind, name)
        return self._error(404, "not found")

    def _logs(self, kind: str, name: str) -> None:
        scripts = self.server.fake.log_scripts.get((kind, name)) or [[]]
        script = scripts[min(self.server.fake.served(f"logs {kind}/{name}"), len(scripts) - 1)]
        self.send_response(200)
        self.send_header("Content-Type", "application/x-ndjson")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        try:
            for step in script:
                time.sleep(step.delay)
                if step.pod is not None:
                    self._chunk(json.dumps({"pod": step.pod, "line": step.line}).encode() + b"\n")
            self.wfile.write(b"0\r\n\r\n")
            self.wfile.flush()
        except OSError:
            # the client gave up on a silent stream and went away
            self.close_connection = True

    def do_GET(self) -> None:
        self._serve("GET")

    def do_DELETE(self) -> None:
        self._serve("DELETE")


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeExtension


def serve(fake: FakeExtension) -> Iterator[str]:
    """Serve ``fake`` on 127.0.0.1 until the generator is closed; yields the server's bind URL with the
    wildcard host JupyterHub puts in $JUPYTERHUB_SERVICE_URL, so that the client must make it local."""
    server = _Server(("127.0.0.1", 0), _Handler)
    server.fake = fake
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield f"http://0.0.0.0:{server.server_address[1]}/user/alice/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
