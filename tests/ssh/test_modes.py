"""The subcommand beside the notebook's command, the sidecar mode, and the host certificate's life."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from spawner.ssh.hostcert import HostIdentity
from spawner.ssh.hubapi import HubAPI

from .conftest import Keys, LoopThread, client_config, make_app, needs_openssh, start_server
from .standin import PREFIX, StandIn
from .test_openssh import connects, free_port, wait_for

REPO = Path(__file__).resolve().parents[2]


@needs_openssh
def test_the_subcommand_beside_the_notebook_across_a_restart(
    standin: StandIn, keys: Keys, tmp_path: Path
) -> None:
    """``hybridhub ssh-server -- CMD``: serves while CMD runs, passes SIGTERM to it and ends with its
    status; after the restart (a new ephemeral key) the client, holding only the CA, still connects."""
    home = tmp_path / "home"
    home.mkdir()
    port = free_port()
    env = {
        **os.environ,
        "HOME": str(home),
        "JUPYTERHUB_USER": "alice",
        "JUPYTERHUB_API_TOKEN": "tok-alice-server",
        "JUPYTERHUB_API_URL": standin.url + "/hub/api",
        "JUPYTERHUB_ACTIVITY_URL": standin.url + "/hub/api/users/alice/activity",
        "HYBRIDHUB_SERVICE_URL": standin.url + PREFIX,
    }
    config = client_config(tmp_path / "config", standin, port, keys)
    stop_file = tmp_path / "notebook-may-stop"
    notebook = f"while [ ! -e {stop_file} ]; do sleep 0.05; done; exit 7"
    argv = [sys.executable, "-m", "spawner.cli", "ssh-server", "--ip=127.0.0.1", f"--port={port}", "--"]

    def start(command: list[str]) -> subprocess.Popen[bytes]:
        proc = subprocess.Popen([*argv, *command], env=env, cwd=REPO, stderr=subprocess.PIPE)
        wait_for(lambda: connects(port) or proc.poll() is not None, timeout=20, what="the subcommand's port")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        return proc

    def ssh_exit_3() -> None:
        result = subprocess.run(
            ["ssh", "-F", str(config), "alice", "exit 3"], capture_output=True, timeout=30
        )
        assert result.returncode == 3, result.stderr

    first = start(["sleep", "60"])
    try:
        ssh_exit_3()
        first.send_signal(signal.SIGTERM)  # what Kubernetes sends the container
        assert first.wait(20) == 128 + signal.SIGTERM  # the notebook's status, passed on
    finally:
        if first.poll() is None:
            first.kill()
            first.wait()
    second = start(["sh", "-c", notebook])
    try:
        ssh_exit_3()
        stop_file.touch()  # the notebook ends by itself: so does the wrapper, with its status
        assert second.wait(20) == 7
    finally:
        if second.poll() is None:
            second.kill()
            second.wait()


def test_without_its_settings_the_server_says_what_is_missing(tmp_path: Path) -> None:
    """Alone it refuses to start; beside the notebook it lets the notebook run without SSH."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("JUPYTERHUB_", "HYBRIDHUB_"))}
    argv = [sys.executable, "-m", "spawner.cli", "ssh-server", "--ip=127.0.0.1", "--port=0"]
    alone = subprocess.run(argv, env=env, cwd=REPO, capture_output=True, timeout=60)
    assert alone.returncode == 2
    assert b"not configured: the service's URL (HYBRIDHUB_SERVICE_URL)" in alone.stderr, alone.stderr
    beside = subprocess.run(
        [*argv, "--", "sh", "-c", "echo notebook ran; exit 5"],
        env=env,
        cwd=REPO,
        capture_output=True,
        timeout=60,
    )
    assert (beside.returncode, beside.stdout) == (5, b"notebook ran\n"), beside.stderr
    assert b"SSH server not started, the notebook runs without it" in beside.stderr


@needs_openssh
def test_sidecar_mode_serves_the_home_volume(
    loop_thread: LoopThread, standin: StandIn, keys: Keys, tmp_path: Path
) -> None:
    """A separate container sees the notebook's home only as a volume: sessions and SFTP start there.

    Its image may lack OpenSSH's sftp-server: SFTP is asyncssh's own here (alice's module server runs
    the binary where the machine has it).
    """
    volume = tmp_path / "volume-home"
    volume.mkdir()
    server = start_server(loop_thread, make_app(standin, volume, sftp_server=""))
    try:
        config = client_config(tmp_path / "config", standin, server.port, keys)
        exec_ = subprocess.run(["ssh", "-F", str(config), "alice", 'pwd; echo "$HOME"'], capture_output=True)
        assert exec_.stdout.decode().splitlines() == [str(volume), str(volume)], exec_.stderr
        (tmp_path / "up.txt").write_text("to the volume\n")
        batch = tmp_path / "batch"
        batch.write_text(f"put {tmp_path / 'up.txt'} up.txt\n")
        sftp = subprocess.run(["sftp", "-F", str(config), "-b", str(batch), "alice"], capture_output=True)
        assert sftp.returncode == 0, sftp.stderr
        assert (volume / "up.txt").read_text() == "to the volume\n"
        # forwarding reaches the pod's loopback, shared by every container of the pod
        forward = subprocess.run(
            ["ssh", "-F", str(config), "-W", f"127.0.0.1:{server.port}", "alice"],
            input=b"",
            capture_output=True,
            timeout=30,
        )
        assert forward.stdout.startswith(b"SSH-2.0-AsyncSSH"), forward
        refused = subprocess.run(
            ["ssh", "-F", str(config), "-W", "192.0.2.1:22", "alice"], capture_output=True
        )
        assert b"administratively prohibited" in refused.stderr, refused.stderr
    finally:
        loop_thread.run(server.stop())


def test_no_certificate_no_listening_then_renewed(loop_thread: LoopThread) -> None:
    """Without a certificate the server waits and retries; once it has one it renews it before expiry."""
    hub = StandIn(cert_lifetime=2.0)
    runner = loop_thread.run(hub.start())
    api = HubAPI(service_url=hub.url + PREFIX, api_url="", activity_url="", token="tok-new", timeout=5)
    identity = HostIdentity(api, "dave", retry_first=0.2)
    started = asyncio.run_coroutine_threadsafe(identity.start(), loop_thread.loop)
    try:
        # the service does not know the token yet (403): no certificate, start() keeps waiting
        assert not started.done() and identity.pair is None
        hub.server_tokens["tok-new"] = ("dave", "")
        assert started.result(10) is True
        first = identity.pair
        assert first is not None and first[1].principals == ["dave"]
        wait_for(lambda: identity.pair is not first, timeout=5, what="the renewed certificate")
        assert identity.pair is not None and identity.pair[0] is first[0]  # same key, new certificate
    finally:
        loop_thread.run(identity.stop())
        loop_thread.run(api.close())
        loop_thread.run(runner.cleanup())


def test_a_client_that_does_not_log_in_is_dropped_after_the_grace_time(
    loop_thread: LoopThread, standin: StandIn, tmp_path: Path
) -> None:
    server = start_server(loop_thread, make_app(standin, tmp_path, login_grace_time=0.3))
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=10) as sock:
            sock.sendall(b"SSH-2.0-OpenSSH_9.2p1 silent\r\n")
            started = time.monotonic()
            received = b""
            while chunk := sock.recv(65536):  # the server's banner and KEXINIT, then its close
                received += chunk
            assert received.startswith(b"SSH-2.0-")
            assert 0.2 < time.monotonic() - started < 5
        wait_for(lambda: server.unauthenticated == 0, what="the dropped connection to be forgotten")
    finally:
        loop_thread.run(server.stop())
