"""Test helpers: run ``hybridhub sim up`` in a subprocess and talk to its admin API and kubectl.

simcluster runs in its own process (its own event loop): pytest-jupyter's and aiohttp's loops
don't mix, and a test must see what a real client sees over the network.
"""

from __future__ import annotations

import json
import os
import signal
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["AdminClient", "SimProcess"]


@dataclass
class AdminClient:
    """The admin API of one cluster (request log, watch expiry)."""

    url: str
    token: str
    ssl_context: ssl.SSLContext
    timeout: float = 10.0

    def _call(self, method: str, path: str = "", body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(
            self.url + path,
            method=method,
            data=data,
            headers={"Authorization": f"Bearer {self.token}", "Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=self.timeout, context=self.ssl_context) as resp:
            return json.loads(resp.read())

    def state(self) -> dict[str, Any]:
        return dict(self._call("GET"))

    def requests(self, since: int = 0) -> list[dict[str, Any]]:
        return list(self._call("GET", f"/requests?since={since}")["requests"])

    def last_request(self) -> int:
        return int(self._call("GET", "/requests?since=999999999999")["last"])

    def clear_requests(self) -> None:
        self._call("DELETE", "/requests")

    def expire_watches(self) -> int:
        return int(self._call("POST", "/watches/expire")["closed"])

    def faults(self) -> dict[str, Any]:
        return dict(self._call("GET", "/faults"))

    def set_faults(self, **faults: Any) -> dict[str, Any]:
        """down=bool, hung=bool, hungParts=["api", "services", "pods"], latency=seconds, errorRate=0..1,
        errorCode=429|500|503 (docs/simcluster.md, "A hung site link")."""
        return dict(self._call("POST", "/faults", faults))

    def clear_faults(self) -> dict[str, Any]:
        return dict(self._call("DELETE", "/faults"))

    def node_not_ready(self, node: str) -> None:
        self._call("POST", f"/nodes/{node}/notready")

    def node_ready(self, node: str) -> None:
        self._call("POST", f"/nodes/{node}/ready")

    def remove_node(self, node: str) -> None:
        self._call("DELETE", f"/nodes/{node}")

    def kill_pods(self) -> int:
        """Every pod on the cluster's nodes is force-deleted and its processes killed (a site's power cut)."""
        return int(self._call("POST", "/pods/kill")["killed"])


class SimProcess:
    """``hybridhub sim up`` in a subprocess, with its kubeconfig, endpoints and admin clients."""

    def __init__(
        self,
        workdir: Path,
        config: Path | None = None,
        startup_timeout: float = 30.0,
        wrapper: list[str] | None = None,
    ) -> None:
        self.workdir = Path(workdir)
        self.config = config
        self.wrapper = wrapper or []  # e.g. ["setpriv", "--reuid=65534", ...] to run without root
        self.startup_timeout = startup_timeout
        self.kubeconfig = self.workdir / "kubeconfig"
        self.endpoints_file = self.workdir / "endpoints.json"
        self.log_file = self.workdir / "simcluster.log"
        self.endpoints: dict[str, Any] = {}
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> SimProcess:
        self.workdir.mkdir(parents=True, exist_ok=True)
        cmd = [
            *self.wrapper,
            sys.executable,
            "-m",
            "spawner.cli",
            "sim",
            "up",
            "--kubeconfig",
            str(self.kubeconfig),
            "--endpoints",
            str(self.endpoints_file),
            "--log-level",
            "INFO",
        ]
        if self.config is not None:
            cmd += ["--config", str(self.config)]
        log = self.log_file.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        log.close()
        deadline = time.monotonic() + self.startup_timeout
        while not self.endpoints_file.exists():
            if self.proc.poll() is not None:
                raise RuntimeError(f"simcluster exited with {self.proc.returncode}:\n{self.log_text()}")
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"simcluster did not start in {self.startup_timeout}s:\n{self.log_text()}")
            time.sleep(0.05)
        self.endpoints = json.loads(self.endpoints_file.read_text())
        return self

    def log_text(self) -> str:
        return self.log_file.read_text(errors="replace") if self.log_file.exists() else ""

    def stop(self, timeout: float = 15.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        code = self.proc.returncode
        self.proc = None
        return code

    def __enter__(self) -> SimProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def ca_file(self) -> str:
        return str(self.endpoints["ca_file"])

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca_file)

    def api_url(self, cluster: str) -> str:
        return str(self.endpoints["clusters"][cluster]["api"])

    def argo_url(self, cluster: str) -> str:
        """The cluster's Argo Server, ending in "/" as Hera's ``host`` must."""
        return str(self.endpoints["clusters"][cluster]["argoServer"])

    def admin(self, cluster: str) -> AdminClient:
        return AdminClient(
            self.endpoints["clusters"][cluster]["admin"], self.endpoints["admin_token"], self.ssl_context()
        )

    def token(self, cluster: str) -> str:
        """A bearer token for ``cluster`` (static, or freshly minted by the exec plugin)."""
        out = self.kubectl("config", "view", "--raw", "-o", "json", context=None)
        config = json.loads(out.stdout)
        user = next(u["user"] for u in config["users"] if u["name"] == f"{cluster}-admin")
        if "token" in user:
            return str(user["token"])
        exec_ = user["exec"]
        cred = subprocess.run([exec_["command"], *exec_["args"]], capture_output=True, check=True, timeout=30)
        return str(json.loads(cred.stdout)["status"]["token"])

    def kubectl(
        self,
        *args: str,
        context: str | None = "onprem",
        check: bool = True,
        timeout: float = 60.0,
        input: str | None = None,
    ) -> subprocess.CompletedProcess[str]:
        cmd = ["kubectl", "--kubeconfig", str(self.kubeconfig), "--request-timeout=20s"]
        if context is not None:
            cmd += ["--context", context]
        env = {**os.environ, "KUBECACHEDIR": str(self.workdir / "kube-cache"), "HOME": str(self.workdir)}
        result = subprocess.run(
            [*cmd, *args], capture_output=True, text=True, timeout=timeout, env=env, input=input
        )
        if check and result.returncode != 0:
            raise AssertionError(
                f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stdout}{result.stderr}"
            )
        return result
