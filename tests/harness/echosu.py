"""A light single-user stand-in for load tests: answers every GET with its path, like mocksu.

JupyterHub's own ``jupyterhub.tests.mocksu`` imports JupyterHub and tornado: about a second of CPU
per server on this machine, so 20 servers starting at once measure the CPU, not the spawner. This
one uses the standard library only and runs with ``python -S`` (no site-packages): it starts in a
few tens of milliseconds. It listens where JupyterHub tells it (``$JUPYTERHUB_SERVICE_URL``).
"""

from __future__ import annotations

import os
import signal
import socketserver
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse


class Echo(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = self.path.split("?", 1)[0].encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        sys.stderr.write("echosu: " + (format % args) + "\n")


class Server(ThreadingHTTPServer):
    daemon_threads = True

    def server_bind(self) -> None:
        # HTTPServer.server_bind looks its address up in DNS (socket.getfqdn); a pod whose resolver
        # does not answer would sit there for the resolver's whole timeout before listening
        socketserver.TCPServer.server_bind(self)
        self.server_name, self.server_port = str(self.server_address[0]), int(self.server_address[1])


def main() -> None:
    url = urlparse(os.environ["JUPYTERHUB_SERVICE_URL"])
    server = Server((url.hostname or "0.0.0.0", url.port or 8888), Echo)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    print(f"echosu listening on {url.hostname}:{url.port}", file=sys.stderr, flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
