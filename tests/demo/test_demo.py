"""``hybridhub demo`` for real: log in, spawn JupyterLab, status, an outage and its end, then a clean stop."""

from __future__ import annotations

import contextlib
import http.cookiejar
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.environment import needs, require
from tests.harness.waits import wait_for

REPO = Path(__file__).resolve().parents[2]
CHP = REPO / "node_modules" / ".bin" / "configurable-http-proxy"

pytestmark = [
    needs(os.geteuid() == 0, "the demo's notebooks run in simcluster's process runtime, which needs root"),
    needs(
        shutil.which("node") and CHP.exists(), "needs Node.js and configurable-http-proxy (make test: npm ci)"
    ),
]


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [int(s.getsockname()[1]) for s in socks]
    finally:
        for s in socks:
            s.close()


class Demo:
    """``hybridhub demo`` in a subprocess with its own state directory and free ports."""

    def __init__(self, state_dir: Path, ports: list[int] | None = None) -> None:
        self.state_dir = state_dir
        self.ports = ports or free_ports(5)
        self.out = state_dir.parent / f"{state_dir.name}.out"
        self.proc: subprocess.Popen[bytes] | None = None
        self.state: dict[str, Any] = {}

    def argv(self) -> list[str]:
        public, proxy_api, hub, service, ssh = self.ports
        return [
            *(sys.executable, "-m", "spawner.cli", "demo", "--state-dir", str(self.state_dir)),
            *("--port", str(public), "--proxy-api-port", str(proxy_api)),
            *("--hub-port", str(hub), "--service-port", str(service), "--ssh-port", str(ssh)),
        ]

    def start(self, timeout: float = 90.0) -> Demo:
        with self.out.open("wb") as out:
            self.proc = subprocess.Popen(self.argv(), stdout=out, stderr=subprocess.STDOUT, cwd=REPO)

        def ready() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"the demo exited with {self.proc.returncode}:\n{self.output()}\n{self.logs()}"
                )
            return "ready" in self.output()

        wait_for("the demo's ready line", ready, timeout, every=0.1, explain=self.output)
        self.state = json.loads((self.state_dir / "demo.json").read_text())
        return self

    def output(self) -> str:
        return self.out.read_text(errors="replace") if self.out.exists() else ""

    def logs(self) -> str:
        tails = []
        for name in ("jupyterhub.log", "simcluster.log"):
            path = self.state_dir / name
            if path.exists():
                tails.append(f"--- {name}\n{path.read_text(errors='replace')[-3000:]}")
        return "\n".join(tails)

    def hybridhub(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "spawner.cli", "demo", *args, "--state-dir", str(self.state_dir)],
            capture_output=True,
            text=True,
            timeout=60,
        )

    def family(self) -> list[psutil.Process]:
        """The demo and every process below it, now."""
        assert self.proc is not None
        me = psutil.Process(self.proc.pid)
        return [me, *me.children(recursive=True)]

    def listening(self) -> set[int]:
        """Every TCP port the demo listens on: its own four and simcluster's API and admin ports."""
        endpoints = json.loads((self.state_dir / "endpoints.json").read_text())
        urls = [c[key] for c in endpoints["clusters"].values() for key in ("api", "admin")]
        return set(self.ports) | {int(urllib.parse.urlsplit(u).port or 0) for u in urls}

    def stop(self, sig: signal.Signals, timeout: float = 60.0) -> int:
        assert self.proc is not None
        self.proc.send_signal(sig)
        return self.proc.wait(timeout)

    def kill(self, family: list[psutil.Process] | None = None) -> None:
        """After a failed test: nothing of this demo may outlive it. ``family``: the processes as they
        were before the demo was asked to stop, when it did not (its children outlive it then)."""
        if family is None:
            if self.proc is None or self.proc.poll() is not None:
                return
            family = self.family()
        for proc in family:
            with contextlib.suppress(psutil.NoSuchProcess):  # it ended meanwhile
                proc.kill()
        psutil.wait_procs(family, timeout=10)


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    d = Demo(tmp_path / "demo")
    try:
        yield d.start()
    finally:
        d.kill()


def login(url: str, user: str, password: str) -> tuple[urllib.request.OpenerDirector, str]:
    """A browser-like session logged in through the login form, and its XSRF token."""
    jar = http.cookiejar.CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    opener.open(f"{url}hub/login", timeout=30).read()
    xsrf = next(c.value for c in jar if c.name == "_xsrf")
    form = urllib.parse.urlencode({"username": user, "password": password, "_xsrf": xsrf}).encode()
    with opener.open(f"{url}hub/login", data=form, timeout=30) as resp:
        assert "/hub/login" not in resp.geturl(), "the password was refused"
    opener.open(f"{url}hub/home", timeout=30).read()  # the session's own XSRF cookie
    return opener, [c.value for c in jar if c.name == "_xsrf"][-1]


def lab(opener: urllib.request.OpenerDirector, url: str) -> bool:
    try:
        with opener.open(url, timeout=30) as resp:
            return resp.status == 200 and "JupyterLab" in resp.read().decode(errors="replace")
    except urllib.error.HTTPError:
        return False  # 424 or 503 while the server starts


def assert_gone(family: list[psutil.Process], ports: set[int]) -> None:
    def running(proc: psutil.Process) -> str:
        """The process's name while it runs (is_running also tells a reused PID apart), else ""."""
        try:
            return proc.name() if proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE else ""
        except psutil.NoSuchProcess:
            return ""

    left = [f"{p.pid} {name}" for p in family if (name := running(p))]
    assert left == [], f"processes left: {left}"
    listening = {
        c.laddr.port for c in psutil.net_connections(kind="tcp") if c.status == psutil.CONN_LISTEN and c.laddr
    }
    assert listening & ports == set(), f"ports still listening: {listening & ports}"


def test_log_in_spawn_jupyterlab_status_outage_and_stop_on_sigterm(demo: Demo, tmp_path: Path) -> None:
    state = demo.state
    url, password = state["url"], state["password"]
    assert f"password: {password}" in demo.output()
    assert "hybridhub demo outage onprem" in demo.output() and "hybridhub demo status" in demo.output()
    assert state["runtime"] == "process" and state["pid"] == demo.proc.pid  # type: ignore[union-attr]

    # a person logs in with any name and the printed password, and starts a 1-GPU server
    opener, xsrf = login(url, "alice", password)
    spawn = urllib.request.Request(
        f"{url}hub/api/users/alice/server",
        data=json.dumps({"gpus": 1}).encode(),
        method="POST",
        headers={"X-XSRFToken": xsrf, "Content-Type": "application/json"},
    )
    assert opener.open(spawn, timeout=60).status in (201, 202)
    wait_for("alice's JupyterLab", lambda: lab(opener, f"{url}user/alice/lab"), 60, explain=demo.logs)

    status = demo.hybridhub("status")
    assert status.returncode == 0, status.stderr
    assert "onprem   HEALTHY" in status.stdout and "eks      HEALTHY" in status.stdout
    assert "GPUs 23/24 free" in status.stdout  # the default cluster file's 24 on-prem GPUs, one taken
    alice = next(line for line in status.stdout.splitlines() if "alice" in line)
    assert alice.split()[1:3] == ["ready", "onprem"]

    # a second demo on the same ports: one line, non-zero, nothing started
    second = Demo(tmp_path / "second", demo.ports)
    result = subprocess.run(second.argv(), capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert (
        result.stderr.count("\n") == 1 and "is in use" in result.stderr and "Traceback" not in result.stderr
    )

    # the on-prem API refuses connections: the service calls it DOWN, then HEALTHY once it is back
    outage = demo.hybridhub("outage", "onprem")
    assert outage.returncode == 0 and "refuses connections" in outage.stdout, outage.stderr
    wait_for("onprem DOWN", lambda: "onprem   DOWN" in demo.hybridhub("status").stdout, 20)
    assert lab(opener, f"{url}user/alice/lab")  # its pods run on and answer
    recover = demo.hybridhub("recover", "onprem")
    assert recover.returncode == 0 and "is back" in recover.stdout, recover.stderr
    # recover waits for the service to trust onprem again, so the next spawn goes there
    assert "the service calls onprem healthy after" in recover.stdout, recover.stdout
    assert "onprem   HEALTHY" in demo.hybridhub("status").stdout

    family, ports = demo.family(), demo.listening()
    assert len(family) >= 6  # the demo, simcluster, the hub, the proxy, the service, alice's pod
    assert demo.stop(signal.SIGTERM) == 0
    assert_gone(family, ports)
    assert not (demo.state_dir / "demo.json").exists()
    assert demo.hybridhub("status").returncode == 1


def faults(demo: Demo) -> dict[str, Any]:
    """simcluster's faults on onprem, from its admin API."""
    endpoints = json.loads((demo.state_dir / "endpoints.json").read_text())
    req = urllib.request.Request(
        endpoints["clusters"]["onprem"]["admin"] + "/faults",
        headers={"Authorization": f"Bearer {endpoints['admin_token']}"},
    )
    context = ssl.create_default_context(cafile=endpoints["ca_file"])
    with urllib.request.urlopen(req, timeout=10, context=context) as resp:
        return dict(json.loads(resp.read()))


def test_hanging_outages_then_stops_on_sigint(demo: Demo) -> None:
    require(shutil.which("nft"), "hanging pod addresses needs nft (make test installs nftables)")
    for kind, says in (("--link", "the site link is down"), ("--site", "0 pod(s) on onprem stopped")):
        outage = demo.hybridhub("outage", "onprem", kind)
        assert outage.returncode == 0 and says in outage.stdout, outage.stderr
        assert faults(demo)["hungParts"] == ["api", "pods", "services"]
        assert demo.hybridhub("recover", "onprem").returncode == 0
        assert faults(demo)["hung"] is False
    family, ports = demo.family(), demo.listening()
    assert demo.stop(signal.SIGINT) == 0
    assert_gone(family, ports)
    assert demo.output().rstrip().endswith("hybridhub demo: stopped")
