"""OpenSSH's client through the gateway to the SSH server in a notebook pod HybridSpawner started:
``ssh -J`` as users run it, with only the service's CA in known hosts (StrictHostKeyChecking=yes)."""

from __future__ import annotations

import asyncio
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import asyncssh
import pytest

from simcluster.testing import SimProcess
from spawner.service.ssh.snippet import KNOWN_HOSTS_FILE
from tests.environment import needs
from tests.harness.hub import HubProcess, free_port
from tests.harness.hybrid import wire
from tests.harness.service_api import call, user_token, wait_for_service
from tests.harness.waits import wait_for

pytestmark = [
    pytest.mark.timeout(300),
    needs(shutil.which("ssh") and shutil.which("scp") and shutil.which("sftp"), "needs the OpenSSH client"),
    needs(shutil.which("rsync"), "needs rsync (make test installs it)"),
]

ONPREM = {"gpus": 0, "cluster": "onprem"}
POD_SSH_PORT = 2222


@dataclass
class Setup:
    hub: HubProcess
    gateway_port: int
    tokens: dict[str, str]
    known_hosts: Path
    keys: dict[str, Path]  # user -> private key file
    work: Path
    gateway: subprocess.Popen[bytes]
    site_gateway_port: int  # on-prem's own gateway (HybridHubService.ssh_site_gateways), as "localhost"

    def config(self, user: str, key_user: str | None = None) -> Path:
        """An ssh_config for ``user`` with ``key_user``'s key (by default their own)."""
        path = self.work / f"ssh_config_{user}_{key_user or user}"
        path.write_text(
            # ssh takes each option's first value: the gateway's own entry comes before the catch-all
            "Host 127.0.0.1\n"
            "  ProxyJump none\n"
            "Host *\n"
            f"  User {user}\n"
            f"  IdentityFile {self.keys[key_user or user]}\n"
            "  IdentitiesOnly yes\n"
            "  BatchMode yes\n"
            "  StrictHostKeyChecking yes\n"
            f"  UserKnownHostsFile {self.known_hosts}\n"
            "  ConnectTimeout 20\n"
            f"  ProxyJump {user}@127.0.0.1:{self.gateway_port}\n"
        )
        path.chmod(0o600)
        return path

    def ssh(
        self,
        user: str,
        host: str,
        command: str,
        *options: str,
        key_user: str | None = None,
        stdin: bytes | None = None,
    ) -> subprocess.CompletedProcess[bytes]:
        return subprocess.run(
            ["ssh", "-F", str(self.config(user, key_user)), *options, host, command],
            input=stdin,
            capture_output=True,
            timeout=60,
        )


def run(*cmd: str) -> None:
    """Run an OpenSSH tool; fail with what it said."""
    done = subprocess.run(cmd, capture_output=True, timeout=60)
    said = done.stderr.decode(errors="replace")
    assert done.returncode == 0, f"{cmd[0]} exited with {done.returncode}: {said}"


def public_line(key: asyncssh.SSHKey) -> str:
    return key.export_public_key().decode().strip()


@pytest.fixture(scope="module")
def ssh_setup(hsim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    work = tmp_path_factory.mktemp("sshgw")
    hub = HubProcess(work / "hub", hsim, singleuser="echosu")
    hub.wiring = wiring = wire(hub, hsim, work, spawner=True)
    pod_gateway = hsim.endpoints["clusters"]["onprem"]["pod_gateway"]
    gateway_port, site_gateway_port = free_port(), free_port()
    gateway_token, site_gateway_token = os.urandom(16).hex(), os.urandom(16).hex()
    service = f"http://127.0.0.1:{wiring.service_port}/services/hybridhub/"
    with (work / "hybridhub_service_config.py").open("a") as config:
        # pods reach the service at the clusters' gateway address, as pods reach it in-cluster
        config.write(
            f"c.HybridHubService.bind_url = 'http://0.0.0.0:{wiring.service_port}/services/hybridhub/'\n"
        )
        config.write(f"c.HybridHubService.db_url = 'sqlite:///{work / 'hybridhub.sqlite'}'\n")
        config.write(f"c.HybridHubService.ssh_gateway_address = '127.0.0.1:{gateway_port}'\n")
        # on-prem's own gateway: users reach it by another name, which its certificate holds
        site = {"onprem": {"address": f"localhost:{site_gateway_port}", "service": "ssh-gateway-onprem"}}
        config.write(f"c.HybridHubService.ssh_site_gateways = {site!r}\n")
    pod_service = f"http://{pod_gateway}:{wiring.service_port}/services/hybridhub/"
    # HybridSpawner runs the SSH server beside the notebook's command; this machine's Python runs the pods
    # SSH activity reported at most every second here (a minute by default), so that a test sees it
    ssh_server = [sys.executable, "-m", "spawner.cli", "ssh-server", "--SSHServerApp.activity_interval=1"]
    hub.extra_config += f"""
c.HybridSpawner.ssh_enabled = True
c.HybridSpawner.ssh_port = {POD_SSH_PORT}
c.HybridSpawner.ssh_server_command = {ssh_server!r}
c.HybridSpawner.pod_service_urls = {{"onprem": {pod_service!r}, "eks": {pod_service!r}}}
c.Spawner.server_token_scopes = [
    "users:activity!user", "access:servers!server", "access:services!service=hybridhub",
]
for _role in c.JupyterHub.load_roles:
    if _role["name"] == "hybridhub-service":
        _role["scopes"] = [*_role["scopes"], "read:users", "read:shares", "read:groups"]
c.JupyterHub.services.append({{"name": "ssh-gateway", "api_token": {gateway_token!r}}})
c.JupyterHub.services.append({{"name": "ssh-gateway-onprem", "api_token": {site_gateway_token!r}}})
c.JupyterHub.load_roles.append({{
    "name": "ssh-gateway",
    "scopes": ["read:users", "read:servers", "read:shares", "servers", "custom:hybridhub:servers",
               "access:services!service=hybridhub"],
    "services": ["ssh-gateway", "ssh-gateway-onprem"],
}})
"""
    with hub:
        wait_for_service(hub)
        gateways: list[tuple[subprocess.Popen[bytes], IO[bytes]]] = []
        for name, port, token in (
            ("gateway", gateway_port, gateway_token),
            ("site-gateway", site_gateway_port, site_gateway_token),
        ):
            env = {
                **os.environ,
                "JUPYTERHUB_API_URL": hub.api_url,
                "HYBRIDHUB_SERVICE_URL": service,
                "JUPYTERHUB_API_TOKEN": token,
            }
            log = (work / f"{name}.log").open("wb")
            command = [
                *(sys.executable, "-m", "spawner.cli", "ssh-gateway", "--ip=127.0.0.1", f"--port={port}"),
                *(f"--host-key={work / name}_host_key", f"--GatewayApp.pod_ssh_port={POD_SSH_PORT}"),
            ]
            gateways.append((subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT), log))
        gateway = gateways[0][0]
        try:
            for port in (gateway_port, site_gateway_port):
                wait_for("the gateways to listen", lambda port=port: _listens(port), 30, every=0.1)
            ca = call(hub, "GET", "api/ssh/ca", hub.wiring.hub_token)[1]["known_hosts"]
            # only the CA: the gateway's host key is certified by it as well
            known = work / "known_hosts"
            known.write_text(f"{ca}\n")
            tokens, keys = {}, {}
            for user in ("alice", "bob", "carol"):
                tokens[user] = user_token(hub, user)
                key = asyncssh.generate_private_key("ssh-ed25519")
                keys[user] = work / f"id_{user}"
                keys[user].write_bytes(key.export_private_key())
                keys[user].chmod(0o600)
                status, body = call(
                    hub, "POST", "api/ssh/keys", tokens[user], {"public_key": public_line(key)}
                )
                assert status == 201, body
            yield Setup(hub, gateway_port, tokens, known, keys, work, gateway, site_gateway_port)
        finally:
            for proc, log in gateways:
                proc.terminate()
                proc.wait(10)
                log.close()


def _http_status(url: str) -> int | None:
    try:
        with urllib.request.urlopen(url, timeout=5) as resp:
            return int(resp.status)
    except (OSError, urllib.error.URLError):
        return None


def _listens(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def start(setup: Setup, user: str, options: dict[str, object] = ONPREM) -> None:
    """Start ``user``'s server and wait until its SSH server answers through the gateway (it listens
    once it has its host certificate)."""
    setup.hub.start_server(user, options)
    setup.hub.wait_ready(user)
    last: list[bytes] = [b""]

    def answers() -> bool:
        done = setup.ssh(user, user, "true")
        last[0] = done.stderr
        return done.returncode == 0

    wait_for(
        f"{user}'s SSH server through the gateway",
        answers,
        60,
        every=0.5,
        explain=lambda: f"ssh: {last[0]!r}\n{gateway_log(setup)}\npod log:\n{pod_log(setup, user)}",
    )


def pod_log(setup: Setup, user: str) -> str:
    out = setup.hub.sim.kubectl("logs", f"jupyter-{user}", "-n", "jupyterhub", context="onprem", check=False)
    return out.stdout[-3000:] + out.stderr[-1000:]


def gateway_log(setup: Setup) -> str:
    return (setup.work / "gateway.log").read_text(errors="replace")[-3000:]


def test_openssh_through_the_gateway(ssh_setup: Setup, tmp_path: Path) -> None:
    s = ssh_setup
    start(s, "alice")
    done = s.ssh("alice", "alice", "echo out; echo err >&2; exit 3")
    assert (done.returncode, done.stdout, done.stderr) == (3, b"out\n", b"err\n"), done.stderr.decode()

    # a PTY, and a local forward to a port inside the pod (the notebook's own, on its loopback)
    tty = s.ssh("alice", "alice", "tty", "-tt")
    assert tty.returncode == 0 and tty.stdout.startswith(b"/dev/pts/"), tty
    local_port = free_port()
    forward = subprocess.Popen(
        ["ssh", "-F", str(s.config("alice")), "-N", "-L", f"127.0.0.1:{local_port}:127.0.0.1:8888", "alice"]
    )
    try:
        status = wait_for(
            "the notebook through ssh -L",
            lambda: _http_status(f"http://127.0.0.1:{local_port}/user/alice/api"),
            30,
            every=0.2,
        )
        assert status == 200
    finally:
        forward.terminate()
        forward.wait(10)
    # SSH sessions count as activity: the hub's last_activity of the server moves on
    before = s.hub.user("alice")["servers"][""]["last_activity"]
    time.sleep(1.1)  # the hub keeps activity to the second or so
    assert s.ssh("alice", "alice", "true").returncode == 0
    wait_for(
        "alice's last_activity to advance",
        lambda: s.hub.user("alice")["servers"][""]["last_activity"] > before or None,
        20,
        every=0.5,
    )

    # scp both ways, sftp, rsync
    config = s.config("alice")
    local = tmp_path / "up.bin"
    local.write_bytes(os.urandom(300_000))
    run(*["scp", "-F", str(config), str(local), "alice:up.bin"])
    back = tmp_path / "back.bin"
    run(*["scp", "-F", str(config), "alice:up.bin", str(back)])
    assert back.read_bytes() == local.read_bytes()
    got = tmp_path / "sftp.bin"
    batch = tmp_path / "batch"
    batch.write_text(f"get up.bin {got}\n")
    run(*["sftp", "-F", str(config), "-b", str(batch), "alice"])
    assert got.read_bytes() == local.read_bytes()
    tree = tmp_path / "tree"
    (tree / "sub").mkdir(parents=True)
    (tree / "sub" / "f.txt").write_text("rsynced\n")
    ssh_cmd = f"ssh -F {config}"
    run(*["rsync", "-a", "-e", ssh_cmd, f"{tree}/", "alice:tree/"])
    assert s.ssh("alice", "alice", "cat tree/sub/f.txt").stdout == b"rsynced\n"

    # bob may not reach alice's server: the same words as for a server that does not exist
    refused = s.ssh("bob", "alice", "true")
    assert refused.returncode == 255
    assert b"no server 'alice' that you may reach" in refused.stderr, refused.stderr
    nobody = s.ssh("bob", "nobody-here", "true")
    assert b"no server 'nobody-here' that you may reach" in nobody.stderr, nobody.stderr
    # bob's key does not log in as alice at the gateway
    wrong_key = s.ssh("alice", "alice", "true", key_user="bob")
    assert wrong_key.returncode == 255 and b"Permission denied" in wrong_key.stderr, wrong_key.stderr

    # a stopped server, the gateway not starting servers: refused with the page that starts it
    stopped = s.ssh("carol", "carol", "true")
    assert stopped.returncode == 255
    assert b"carol's server is not running; start it at http://127.0.0.1:" in stopped.stderr, stopped.stderr
    assert b"/hub/spawn-pending/carol" in stopped.stderr

    # only the gateway's own token gets the gateway's host certificate
    key = public_line(asyncssh.generate_private_key("ssh-ed25519"))
    status, body = call(s.hub, "POST", "api/ssh/gateway-certificate", s.tokens["alice"], {"public_key": key})
    assert status == 403 and "only an SSH gateway's own token may" in body["message"], body

    # the gateway itself opens no shell: it says how to use it
    direct = subprocess.run(
        ["ssh", "-F", str(config), "-o", "ProxyJump=none", "-p", str(s.gateway_port), "127.0.0.1", "true"],
        capture_output=True,
        timeout=60,
    )
    assert direct.returncode == 1 and b"jump host" in direct.stderr, direct.stderr


def test_bad_input_leaves_the_gateway_serving(ssh_setup: Setup) -> None:
    s = ssh_setup
    start(s, "alice")
    # a 100 KB user name, and one that is not UTF-8, each refused
    with pytest.raises((asyncssh.Error, OSError)):
        asyncio.run(_login(s, "x" * 100_000))
    raw = subprocess.run(
        [
            *(b"ssh", b"-F", str(s.config("alice")).encode(), b"-o", b"ProxyJump=none"),
            *(b"-p", str(s.gateway_port).encode(), b"-l", b"\xff\xfe-user", b"127.0.0.1", b"true"),
        ],
        capture_output=True,
        timeout=60,
    )
    assert raw.returncode == 255, raw.stderr
    # 200 connections that never log in: beyond the cap (100) the gateway closes new ones at once, as
    # sshd's MaxStartups does; it stays up, and serves others again as they go
    held = [socket.create_connection(("127.0.0.1", s.gateway_port), timeout=5) for _ in range(200)]
    try:
        assert s.gateway.poll() is None
        busy = s.ssh("alice", "alice", "echo still")
        assert busy.returncode == 255, busy.stderr  # closed before the version exchange
    finally:
        for conn in held:
            conn.close()
    assert s.gateway.poll() is None, gateway_log(s)
    wait_for(
        "the gateway to serve again",
        lambda: s.ssh("alice", "alice", "echo still").stdout == b"still\n" or None,
        30,
        every=0.5,
        explain=lambda: gateway_log(s),
    )


async def _login(s: Setup, login: str) -> None:
    key = asyncssh.read_private_key(str(s.keys["alice"]))
    async with asyncssh.connect(
        "127.0.0.1",
        s.gateway_port,
        username=login,
        client_keys=[key],
        known_hosts=None,
        connect_timeout=20,
    ):
        pass


def test_a_server_that_moved_and_an_on_prem_outage(ssh_setup: Setup) -> None:
    """Only the CA in known hosts: the server on EKS after on-prem is accepted as it was, and with the
    on-prem API down, SSH into it through the gateway goes on (the hub, the service and its store of
    keys run in the cloud)."""
    s = ssh_setup
    start(s, "alice")
    # on-prem: her snippet jumps through on-prem's own gateway, whose certificate names it "localhost"
    site = f"localhost:{s.site_gateway_port}"
    assert f"ProxyJump alice@{site}" in snippet(s, "alice")
    done = subprocess.run(
        ["ssh", "-F", str(snippet_config(s, "alice")), "hub-alice", "echo $HYBRIDHUB_CLUSTER"],
        capture_output=True,
        timeout=60,
    )
    assert (done.returncode, done.stdout) == (0, b"onprem\n"), done.stderr
    assert "alice -> alice: tunnel to" in (s.work / "site-gateway.log").read_text(errors="replace")
    # the same gateway under a name its certificate does not hold is refused
    done = s.ssh("alice", "alice", "true", "-J", f"alice@127.0.0.1:{s.site_gateway_port}")
    assert done.returncode == 255 and b"Host key verification failed" in done.stderr, done.stderr
    s.hub.stop_server("alice")
    start(s, "alice", {"gpus": 0, "cluster": "eks"})
    # on EKS, which has no gateway of its own: the hub's gateway
    assert f"ProxyJump alice@127.0.0.1:{s.gateway_port}" in snippet(s, "alice")
    admin = s.hub.sim.admin("onprem")
    admin.set_faults(down=True)
    try:
        done = s.ssh("alice", "alice", "echo $HYBRIDHUB_CLUSTER")
        assert (done.returncode, done.stdout) == (0, b"eks\n"), done.stderr
    finally:
        admin.clear_faults()


def snippet(setup: Setup, user: str) -> str:
    status, text = call(setup.hub, "GET", "api/ssh/config", setup.tokens[user])
    assert status == 200, text
    return str(text)


def snippet_config(setup: Setup, user: str) -> Path:
    """The user's snippet as they would save it, with this test's known hosts file and key."""
    path = setup.work / f"snippet_{user}"
    text = snippet(setup, user).replace(KNOWN_HOSTS_FILE, str(setup.known_hosts))
    # after the snippet's entries, as a user's own defaults would be
    text += f"Host *\n  IdentityFile {setup.keys[user]}\n  IdentitiesOnly yes\n  BatchMode yes\n"
    path.write_text(text)
    path.chmod(0o600)
    return path


def test_a_key_registered_now_works_at_once(ssh_setup: Setup) -> None:
    """At the gateway and at the pod's server, both of which hold a copy of the registered keys."""
    s = ssh_setup
    start(s, "alice")
    key = asyncssh.generate_private_key("ssh-ed25519")
    s.keys["alice-new"] = s.work / "id_alice_new"
    s.keys["alice-new"].write_bytes(key.export_private_key())
    s.keys["alice-new"].chmod(0o600)
    status, body = call(s.hub, "POST", "api/ssh/keys", s.tokens["alice"], {"public_key": public_line(key)})
    assert status == 201, body
    done = s.ssh("alice", "alice", "echo new", key_user="alice-new")
    assert (done.returncode, done.stdout) == (0, b"new\n"), done.stderr
