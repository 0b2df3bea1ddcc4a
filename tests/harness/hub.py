"""A real JupyterHub (with configurable-http-proxy) in a subprocess, spawning into simcluster.

What later issues' tests stand on: a hub whose spawner creates pods in an emulated cluster whose
process runtime runs them for real, reached through the real proxy. The hub listens on all
addresses so pods reach it at the runtime's gateway (169.254.1.1); the proxy and the hub's REST API
are used from the test process on 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.error
import urllib.parse
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import psutil

from simcluster.testing import SimProcess

__all__ = ["CHP", "HubProcess", "free_port"]

REPO = Path(__file__).resolve().parents[2]
CHP = REPO / "node_modules" / ".bin" / "configurable-http-proxy"

# What the single-user pods run (the image is ignored by simcluster; the command must exist here).
SINGLEUSER = {
    "real": ["jupyterhub-singleuser"],
    "echosu": [sys.executable, "-S", str(Path(__file__).with_name("echosu.py"))],  # stdlib only: light
}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class HubProcess:
    """``jupyterhub`` with KubeSpawner (or ``spawner_class``) against a running :class:`SimProcess`."""

    def __init__(
        self,
        workdir: Path,
        sim: SimProcess,
        *,
        context: str = "onprem",
        namespace: str = "jupyterhub",
        singleuser: str = "real",
        spawner_class: str = "kubespawner.KubeSpawner",
        extra_config: str = "",
        startup_timeout: float = 60.0,
    ) -> None:
        self.workdir = Path(workdir)
        self.sim = sim
        self.context = context
        self.namespace = namespace
        self.singleuser = singleuser
        self.spawner_class = spawner_class
        self.extra_config = extra_config
        self.startup_timeout = startup_timeout
        self.token = secrets.token_hex(16)
        self.proxy_port, self.hub_port, self.api_port = free_port(), free_port(), free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_file = self.workdir / "jupyterhub.log"
        self.wiring: Any = None  # what tests.harness.hybrid.wire() added

    @property
    def public_url(self) -> str:
        return f"http://127.0.0.1:{self.proxy_port}"

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.hub_port}/hub/api"

    def config(self) -> str:
        gateway = self.sim.endpoints["clusters"][self.context]["pod_gateway"]
        return textwrap.dedent(
            f"""
            c = get_config()  # noqa
            c.JupyterHub.ip = "127.0.0.1"
            c.JupyterHub.port = {self.proxy_port}
            c.JupyterHub.hub_bind_url = "http://0.0.0.0:{self.hub_port}"
            c.JupyterHub.hub_connect_url = "http://{gateway}:{self.hub_port}"
            c.ConfigurableHTTPProxy.command = [{str(CHP)!r}]
            c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{self.api_port}"
            c.JupyterHub.db_url = "sqlite:///{self.workdir / "jupyterhub.sqlite"}"
            c.JupyterHub.cookie_secret_file = {str(self.workdir / "cookie_secret")!r}
            c.JupyterHub.authenticator_class = "dummy"  # any name logs in (tests log in as users)
            c.JupyterHub.spawner_class = {self.spawner_class!r}
            c.JupyterHub.cleanup_servers = True
            c.JupyterHub.services = [{{"name": "harness", "api_token": {self.token!r}}}]
            c.JupyterHub.load_roles = [{{
                "name": "harness",
                "scopes": ["admin:users", "admin:servers", "admin:server_state", "access:servers",
                           "read:users", "tokens", "read:metrics"],
                "services": ["harness"],
            }}]
            c.Spawner.cmd = {SINGLEUSER[self.singleuser]!r}
            c.Spawner.start_timeout = 90
            c.Spawner.http_timeout = 60
            c.Spawner.environment = {{"HOME": "/home/jovyan"}}
            c.KubeSpawner.namespace = {self.namespace!r}
            c.KubeSpawner.image = "quay.io/jupyter/base-notebook:2025-01-01"
            # The pods run this machine's Python, which lives under /root (mode 0700 here): they run
            # as root, which Jupyter Server allows only when told to.
            c.KubeSpawner.uid = 0
            c.Spawner.args = ["--allow-root"] if {self.singleuser!r} == "real" else []
            c.KubeSpawner.working_dir = "/home/jovyan"
            c.KubeSpawner.volumes = [{{"name": "home", "emptyDir": {{}}}}]
            c.KubeSpawner.volume_mounts = [{{"name": "home", "mountPath": "/home/jovyan"}}]
            c.KubeSpawner.k8s_api_request_timeout = 10
            """
        ) + textwrap.dedent(self.extra_config)

    def start(self) -> HubProcess:
        if not CHP.exists():
            raise RuntimeError(f"{CHP} is missing: run `make test` (it runs npm ci) first")
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "jupyterhub_config.py").write_text(self.config())
        self.sim.kubectl("create", "namespace", self.namespace, context=self.context, check=False)
        env = {**os.environ, "KUBECONFIG": str(self.sim.kubeconfig)}
        env.pop("JUPYTERHUB_API_TOKEN", None)
        log = self.log_file.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(self.workdir / "jupyterhub_config.py")],
            cwd=self.workdir,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(
                    f"jupyterhub exited with {self.proc.returncode}:\n{self.log_text()[-4000:]}"
                )
            try:
                self.api("GET", "/")
                self.proxy_get("/hub/api/")
                return self
            except (OSError, urllib.error.URLError):
                if time.monotonic() > deadline:
                    self.stop()
                    raise TimeoutError(f"jupyterhub did not come up:\n{self.log_text()[-4000:]}") from None
                time.sleep(0.2)

    def stop(self, timeout: float = 60.0) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)  # the hub stops its servers and its proxy
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL the hub and every process it started (its proxy, its managed services), as when
        the hub's pod dies: nothing gets to clean up."""
        if self.proc is None:
            return
        try:
            family = [psutil.Process(self.proc.pid), *psutil.Process(self.proc.pid).children(recursive=True)]
        except psutil.NoSuchProcess:
            family = []
        for proc in family:
            with contextlib.suppress(psutil.NoSuchProcess):
                proc.kill()
        psutil.wait_procs(family, timeout=10)
        self.proc.wait(10)
        self.proc = None

    def __enter__(self) -> HubProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the hub's log (its services write there too): what a failed wait shows."""
        return self.log_text()[-chars:]

    # ------------------------------------------------------------------ REST

    def api(self, method: str, path: str, body: Any = None, timeout: float = 30.0) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.api_url + path,
            data=data,
            method=method,
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            raw = resp.read()
            return json.loads(raw) if raw else None

    def proxy_get(self, path: str, token: str | None = None, timeout: float = 30.0) -> tuple[int, bytes]:
        headers = {"Authorization": f"token {token or self.token}"}
        req = urllib.request.Request(self.public_url + path, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                return resp.status, resp.read()
        except urllib.error.HTTPError as err:
            return err.code, err.read()

    def login(self, name: str) -> urllib.request.OpenerDirector:
        """A browser-like session (cookies) logged in as ``name`` through the login form."""
        jar = http.cookiejar.CookieJar()
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
        opener.open(f"{self.public_url}/hub/login", timeout=30).read()
        xsrf = next((c.value for c in jar if c.name == "_xsrf"), "")
        form = urllib.parse.urlencode({"username": name, "password": "x", "_xsrf": xsrf}).encode()
        opener.open(f"{self.public_url}/hub/login?next=", data=form, timeout=30).read()
        return opener

    def create_user(self, name: str) -> None:
        try:
            self.api("POST", f"/users/{name}")
        except urllib.error.HTTPError as err:
            if err.code != 409:
                raise

    def start_server(self, name: str, options: dict[str, Any] | None = None) -> int:
        """POST /users/NAME/server; 201 started, 202 pending."""
        req_body = options or {}
        data = json.dumps(req_body).encode()
        req = urllib.request.Request(
            f"{self.api_url}/users/{name}/server",
            data=data,
            method="POST",
            headers={"Authorization": f"token {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=30) as resp:
            return int(resp.status)

    def start_and_follow(
        self, name: str, options: dict[str, Any] | None = None, timeout: float = 120.0
    ) -> list[dict[str, Any]]:
        """Start the server and read its progress events as the spawn page does (the event stream,
        opened while the spawn is pending, until it ends). The POST itself blocks until the spawn ends
        or JupyterHub's slow_spawn_timeout passes, so it runs beside the stream."""
        req = urllib.request.Request(
            f"{self.api_url}/users/{name}/server/progress", headers={"Authorization": f"token {self.token}"}
        )
        events = []
        with ThreadPoolExecutor(1) as pool:
            started = pool.submit(self.start_server, name, options)
            deadline = time.monotonic() + timeout
            while True:
                try:
                    resp = urllib.request.urlopen(req, timeout=timeout)
                    break
                except urllib.error.HTTPError as err:  # 404, then 400, until the spawn is pending
                    if err.code not in (400, 404) or time.monotonic() > deadline or started.done():
                        raise
                    time.sleep(0.02)
            with resp:
                for raw in resp:
                    line = raw.decode().strip()
                    if line.startswith("data:"):
                        events.append(json.loads(line.removeprefix("data:")))
            started.result()
        return events

    def user(self, name: str) -> dict[str, Any]:
        return dict(self.api("GET", f"/users/{name}"))

    def wait_ready(self, name: str, timeout: float = 90.0) -> dict[str, Any]:
        """Until the default server is ready; raise with the hub's log when it fails or times out."""
        deadline = time.monotonic() + timeout
        while True:
            server = self.user(name).get("servers", {}).get("", {})
            if server.get("ready"):
                return dict(server)
            if not server and time.monotonic() > deadline - timeout + 2:
                raise RuntimeError(f"{name}'s server is gone (failed to start?):\n{self.log_text()[-4000:]}")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}'s server not ready in {timeout}s:\n{self.log_text()[-4000:]}")
            time.sleep(0.25)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def servers(self) -> dict[str, dict[str, Any]]:
        """Every user's servers that run or are starting or stopping, by user (one API call)."""
        users = self.api("GET", "/users")
        return {u["name"]: u["servers"] for u in users if u.get("servers")}

    def stop_all_servers(self, timeout: float = 60.0) -> list[str]:
        """Stop every server of every user; the names of the users who had one."""
        had = self.servers()
        for user, servers in had.items():
            for name in servers:
                with contextlib.suppress(urllib.error.HTTPError):  # already stopping
                    self.api("DELETE", f"/users/{user}/servers/{name}" if name else f"/users/{user}/server")
        deadline = time.monotonic() + timeout
        while left := self.servers():
            if time.monotonic() > deadline:
                raise TimeoutError(f"servers did not stop in {timeout}s: {left}\n{self.log_tail()}")
            time.sleep(0.25)
        return sorted(had)

    def stop_server(self, name: str, timeout: float = 60.0) -> None:
        self.api("DELETE", f"/users/{name}/server")
        deadline = time.monotonic() + timeout
        while self.user(name).get("servers", {}).get(""):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}'s server did not stop in {timeout}s")
            time.sleep(0.25)
