"""The notebook's SSH server driven by the real OpenSSH client (ssh, scp, sftp, rsync) and by paramiko."""

from __future__ import annotations

import http.server
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paramiko
import pytest
from asyncssh.channel import SSHChannel
from asyncssh.constants import EXTENDED_DATA_STDERR

from spawner.ssh import sessions
from tests.environment import require

from .conftest import MARKER, Keys, LoopThread, Running, client_config, make_app, needs_openssh, start_server
from .standin import StandIn

pytestmark = needs_openssh


def wait_for(condition: Callable[[], object], timeout: float = 10.0, what: str = "condition") -> None:
    """Poll ``condition`` every 20 ms until it holds; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(0.02)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def connects(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=1).close()
    except OSError:
        return False
    return True


@pytest.fixture(scope="module")
def pod_http() -> Iterator[int]:
    """An HTTP server "inside the pod" (on 127.0.0.1), as JupyterLab or TensorBoard would be."""

    class Hello(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            body = f"hello from {self.path}".encode()
            self.send_response(200)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Hello)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield int(server.server_address[1])
    server.shutdown()
    server.server_close()


# --- sessions -----------------------------------------------------------------------------------------


def test_exec_returns_exit_status_and_separate_stderr(alice: Running) -> None:
    result = alice.ssh("alice", "echo out; echo err >&2; exit 3")
    assert (result.returncode, result.stdout, result.stderr) == (3, b"out\n", b"err\n")


def test_a_command_runs_in_home_with_the_notebooks_environment(alice: Running) -> None:
    result = alice.ssh("alice", f'pwd; echo "$HOME"; echo "${MARKER}"; echo "${{SSH_CONNECTION%% *}}"')
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode().splitlines() == [
        str(alice.home),
        str(alice.home),
        "from-the-notebook",
        "127.0.0.1",
    ]


def test_binary_stdin_and_stdout_pass_unchanged(alice: Running) -> None:
    data = bytes(range(256)) * 4096
    result = alice.ssh("alice", "cat", input=data)
    assert result.returncode == 0 and result.stdout == data


def test_a_commands_output_goes_out_uncopied_and_its_stderr_apart(
    alice: Running, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Standard output reaches the channel through send_channel_data, every byte in order, most of it
    without asyncssh's channel write (only what waits for the client's window goes there); standard
    error through the channel's own write, as extended data."""
    sent: list[int] = []
    written: dict[int | None, int] = {}
    send, write = sessions.send_channel_data, SSHChannel.write

    def counted(chan: Any, data: bytes) -> None:
        sent.append(len(data))
        send(chan, data)

    def counted_write(chan: Any, data: Any, datatype: int | None = None) -> None:
        written[datatype] = written.get(datatype, 0) + len(data)
        write(chan, data, datatype)

    monkeypatch.setattr(sessions, "send_channel_data", counted)
    monkeypatch.setattr(SSHChannel, "write", counted_write)
    result = alice.ssh("alice", "seq 1 400000; echo err >&2; seq 400001 500000")
    expected = "".join(f"{n}\n" for n in range(1, 500001)).encode()
    assert result.returncode == 0 and result.stdout == expected and result.stderr == b"err\n"
    assert sum(sent) == len(expected)
    assert written.get(EXTENDED_DATA_STDERR) == 4, written
    # OpenSSH opens a 2 MiB window: at least that much of the 3.4 MB goes out uncopied
    assert written.get(None, 0) < len(expected) // 2, written


def test_a_killed_command_reports_its_signal(alice: Running) -> None:
    result = alice.ssh("alice", "kill -TERM $$")
    assert result.returncode == 255  # OpenSSH's status for a remote signal, as with sshd


def test_pty_with_tt(alice: Running) -> None:
    result = alice.ssh("-tt", "alice", "tty; echo $TERM; exit 4", input=b"")
    lines = result.stdout.decode().replace("\r", "").splitlines()
    assert result.returncode == 4
    assert lines[0].startswith("/dev/pts/"), lines


def test_an_interactive_login_gets_a_login_shell_on_a_pty(alice: Running) -> None:
    result = alice.ssh("-tt", "alice", input=b'echo "shell=$0"; tty; exit 6\n')
    out = result.stdout.decode().replace("\r", "")
    assert result.returncode == 6, result.stderr
    assert "shell=-bash" in out and "/dev/pts/" in out, out


def test_a_pty_has_the_clients_size_from_the_start(alice: Running, keys: Keys) -> None:
    """A program that asks at once sees the client's size, not 0 0 (asyncssh sets it only when it
    attaches the PTY; half of these came back "0 0" before the server set it first)."""
    client = paramiko_client(alice, keys)
    try:
        sizes = []
        for _ in range(10):
            chan = client.get_transport().open_session()  # type: ignore[union-attr]
            chan.settimeout(20)
            chan.get_pty(term="xterm", width=100, height=30)
            chan.exec_command("stty size")
            out = b""
            while chunk := chan.recv(1024):
                out += chunk
            sizes.append(out.strip())
        assert sizes == [b"30 100"] * 10
    finally:
        client.close()


def test_pty_window_resize_reaches_the_program(alice: Running, keys: Keys) -> None:
    client = paramiko_client(alice, keys)
    try:
        chan = client.get_transport().open_session()  # type: ignore[union-attr]
        chan.settimeout(20)
        chan.get_pty(term="xterm", width=100, height=30)
        chan.exec_command("stty size; read line; stty size")
        out = b""
        while b"30 100" not in out:  # the size the client asked for, from the program's first look
            chunk = chan.recv(1024)
            assert chunk, out
            out += chunk
        # the window-change request goes before the newline on the same channel, so the program sees
        # the new size when its read returns
        chan.resize_pty(width=120, height=40)
        chan.sendall(b"\n")
        while b"40 120" not in out:
            chunk = chan.recv(1024)
            assert chunk, out
            out += chunk
        assert chan.recv_exit_status() == 0
    finally:
        client.close()


# --- file transfer ------------------------------------------------------------------------------------


def test_scp_both_ways_sftp_and_legacy(alice: Running, tmp_path: Path) -> None:
    src = tmp_path / "up.bin"
    src.write_bytes(b"x" * 100_000 + b"end")
    for flag, name in (([], "scp-sftp.bin"), (["-O"], "scp-legacy.bin")):
        up = subprocess.run(
            ["scp", "-F", str(alice.config), *flag, str(src), f"alice:{name}"], capture_output=True
        )
        assert up.returncode == 0, up.stderr
        assert (alice.home / name).read_bytes() == src.read_bytes()
        back = tmp_path / f"back-{name}"
        down = subprocess.run(
            ["scp", "-F", str(alice.config), *flag, f"alice:{name}", str(back)], capture_output=True
        )
        assert down.returncode == 0, down.stderr
        assert back.read_bytes() == src.read_bytes()


def test_sftp_put_and_get(alice: Running, tmp_path: Path) -> None:
    (tmp_path / "put.txt").write_text("put through sftp\n")
    (alice.home / "get.txt").write_text("get through sftp\n")
    batch = tmp_path / "batch"
    batch.write_text(f"put {tmp_path / 'put.txt'} sub-put.txt\nget get.txt {tmp_path / 'got.txt'}\npwd\n")
    result = subprocess.run(["sftp", "-F", str(alice.config), "-b", str(batch), "alice"], capture_output=True)
    assert result.returncode == 0, result.stderr
    assert (alice.home / "sub-put.txt").read_text() == "put through sftp\n"
    assert (tmp_path / "got.txt").read_text() == "get through sftp\n"
    assert f"Remote working directory: {alice.home}" in result.stdout.decode()


def test_sftp_runs_openssh_sftp_server_where_the_image_has_it(alice: Running, tmp_path: Path) -> None:
    require(
        alice.server.options.session.sftp_server,
        "needs OpenSSH's sftp-server (make test installs openssh-server, which brings openssh-sftp-server)",
    )
    batch = tmp_path / "batch"
    batch.write_text("pwd\n")
    result = subprocess.run(
        ["sftp", "-vvv", "-F", str(alice.config), "-b", str(batch), "alice"], capture_output=True
    )
    assert result.returncode == 0, result.stderr
    # an extension only OpenSSH's sftp-server offers, not asyncssh's in-process server
    assert b'Server supports extension "expand-path@openssh.com"' in result.stderr
    assert f"Remote working directory: {alice.home}" in result.stdout.decode()


def test_rsync_over_ssh(alice: Running, tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    (tree / "a" / "b").mkdir(parents=True)
    (tree / "a" / "b" / "f.txt").write_text("rsynced\n")
    result = subprocess.run(
        ["rsync", "-a", "-e", f"ssh -F {alice.config}", f"{tree}/", "alice:rsynced/"], capture_output=True
    )
    assert result.returncode == 0, result.stderr
    assert (alice.home / "rsynced" / "a" / "b" / "f.txt").read_text() == "rsynced\n"


# --- forwarding ---------------------------------------------------------------------------------------


def test_local_forward_to_a_port_inside_the_pod(alice: Running, pod_http: int) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [
            "ssh",
            "-F",
            str(alice.config),
            "-N",
            "-o",
            "ExitOnForwardFailure=yes",
            "-L",
            f"{port}:127.0.0.1:{pod_http}",
            "alice",
        ],
        stderr=subprocess.PIPE,
    )
    try:
        wait_for(lambda: connects(port) or proc.poll() is not None, what="the -L port")
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else b""
        assert http_get(("127.0.0.1", port), "/via-L") == b"hello from /via-L"
    finally:
        proc.terminate()
        proc.wait(10)


def test_vscode_remote_ssh_emulated(alice: Running, pod_http: int) -> None:
    """What VS Code Remote-SSH does: ``ssh -T -D PORT host bash``, a script piped in, exit status read back,
    and its server reached through the SOCKS port."""
    socks = free_port()
    proc = subprocess.Popen(
        ["ssh", "-F", str(alice.config), "-T", "-D", f"127.0.0.1:{socks}", "alice", "bash"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert proc.stdin and proc.stdout
        proc.stdin.write(b"echo ready\n")
        proc.stdin.flush()
        assert proc.stdout.readline() == b"ready\n"
        wait_for(lambda: connects(socks), what="the SOCKS port")
        assert socks_http_get(socks, "127.0.0.1", pod_http, "/via-D") == b"hello from /via-D"
        proc.stdin.write(b"echo $((6 * 7)); uname -s; exit 7\n")
        proc.stdin.close()
        assert proc.wait(20) == 7
        assert proc.stdout.read() == b"42\nLinux\n"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_forward_outside_loopback_is_refused(alice: Running) -> None:
    result = alice.ssh("-W", "10.1.2.3:80", "alice")
    assert result.returncode != 0
    assert b"administratively prohibited" in result.stderr, result.stderr
    assert b"forwards only to the notebook's own loopback" in result.stderr, result.stderr


def test_remote_forward_is_refused(alice: Running) -> None:
    result = alice.ssh("-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:127.0.0.1:1", "alice", "true")
    assert result.returncode == 255
    assert b"remote port forwarding failed" in result.stderr.lower(), result.stderr


# --- who gets in --------------------------------------------------------------------------------------


def test_a_user_the_server_is_shared_with_gets_in_under_their_name(alice: Running) -> None:
    result = alice.ssh("as-carol", "echo in")
    assert (result.returncode, result.stdout) == (0, b"in\n"), result.stderr


def test_the_owners_own_authorized_keys_file_counts(alice: Running) -> None:
    result = alice.ssh("as-alice-local", "echo in")
    assert (result.returncode, result.stdout) == (0, b"in\n"), result.stderr


def test_another_users_key_is_refused(alice: Running) -> None:
    for host in ("as-bob",):  # bob's key is registered, but bob is not allowed into alice's server
        result = alice.ssh(host, "true")
        assert result.returncode == 255
        assert b"Permission denied (publickey" in result.stderr, result.stderr


def test_a_key_is_accepted_only_under_its_owners_name(alice: Running, keys: Keys, tmp_path: Path) -> None:
    # carol is allowed in, but her key does not make her alice
    result = alice.ssh("-o", "User=alice", "-i", str(keys.path("carol")), "as-carol", "true")
    assert result.returncode == 255
    assert b"Permission denied (publickey" in result.stderr, result.stderr


def test_changing_the_user_name_between_attempts_does_not_carry_keys_over(alice: Running, keys: Keys) -> None:
    """SSH lets a client change its user name between attempts: alice's keys must not log in "nobody"."""
    sock = socket.create_connection(("127.0.0.1", alice.port), timeout=10)
    transport = paramiko.Transport(sock)
    try:
        transport.start_client(timeout=10)
        with pytest.raises(paramiko.BadAuthenticationType):
            transport.auth_none("alice")  # the server now holds alice's keys for this connection
        key = paramiko.Ed25519Key.from_private_key_file(str(keys.path("alice")))
        with pytest.raises(paramiko.AuthenticationException):
            transport.auth_publickey("nobody", key)
        assert not transport.is_authenticated()
    finally:
        transport.close()


def test_a_key_registered_just_now_works_at_once(alice: Running, standin: StandIn, keys: Keys) -> None:
    """Well before the periodic refresh (300 s): unknown keys make the server fetch the registered keys,
    spaced by a fraction of a second, so the test retries for at most a few seconds."""
    assert alice.ssh("as-alice-new", "true").returncode == 255
    standin.keys["alice"].append(keys.public("alice_new"))
    try:
        results: list[subprocess.CompletedProcess[bytes]] = []
        wait_for(
            lambda: results.append(alice.ssh("as-alice-new", "echo in")) or results[-1].returncode == 0,
            timeout=5,
            what="the new key to log in",
        )
        assert results[-1].stdout == b"in\n"
    finally:
        standin.keys["alice"].remove(keys.public("alice_new"))


def test_the_attempt_limit_holds(alice: Running, standin: StandIn) -> None:
    fetches = standin.key_fetches
    result = alice.ssh("strays", "true")  # offers four unknown keys; the limit is three
    assert result.returncode == 255
    assert b"Too many authentication failures" in result.stderr, result.stderr
    assert standin.key_fetches - fetches <= 3


def test_only_aes_gcm_is_offered_and_kex_is_strict(alice: Running) -> None:
    refused = alice.ssh("-c", "chacha20-poly1305@openssh.com", "alice", "true")
    assert refused.returncode == 255 and b"no matching cipher found" in refused.stderr, refused.stderr
    verbose = alice.ssh("-vvv", "alice", "true")
    assert verbose.returncode == 0, verbose.stderr
    assert b"will use strict KEX ordering" in verbose.stderr
    assert b"cipher: aes128-gcm@openssh.com" in verbose.stderr


def test_unauthenticated_connections_are_capped(alice: Running) -> None:
    held = [socket.create_connection(("127.0.0.1", alice.port)) for _ in range(4)]
    try:
        wait_for(lambda: alice.server.unauthenticated >= 4, what="four unauthenticated connections")
        result = alice.ssh("alice", "true")
        assert result.returncode == 255
        # closed before the version exchange, as sshd's MaxStartups does: the client reads a close or a reset
        assert b"Connection closed by" in result.stderr or b"Connection reset by" in result.stderr, (
            result.stderr
        )
    finally:
        for sock in held:
            sock.close()
    wait_for(lambda: alice.server.unauthenticated == 0, what="the held connections to go")
    assert alice.ssh("alice", "true").returncode == 0


def test_ssh_activity_is_reported_to_the_hub(alice: Running, standin: StandIn) -> None:
    before = len(standin.activity)
    proc = subprocess.Popen(["ssh", "-F", str(alice.config), "alice", "read line"], stdin=subprocess.PIPE)
    try:
        wait_for(lambda: len(standin.activity) >= before + 1, what="an activity report")
        user, body = standin.activity[-1]
        assert user == "alice" and set(body) == {"servers", "last_activity"}
        assert body["servers"] == {"": {"last_activity": body["last_activity"]}}
    finally:
        proc.communicate(b"\n", timeout=10)
    assert proc.returncode == 0


# --- host identity ------------------------------------------------------------------------------------


def test_a_new_server_with_a_new_key_is_trusted_through_the_ca(
    loop_thread: LoopThread, standin: StandIn, keys: Keys, tmp_path: Path
) -> None:
    """What a client sees after a restart: a new ephemeral key, the same CA, no prompt."""
    home = tmp_path / "home"
    home.mkdir()
    server = start_server(loop_thread, make_app(standin, home))
    try:
        config = client_config(tmp_path / "config", standin, server.port, keys)
        result = subprocess.run(
            ["ssh", "-F", str(config), "alice", "echo again"], capture_output=True, timeout=30
        )
        assert (result.returncode, result.stdout) == (0, b"again\n"), result.stderr
    finally:
        loop_thread.run(server.stop())


def test_a_server_presenting_another_users_certificate_is_refused(
    loop_thread: LoopThread, standin: StandIn, keys: Keys, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    home.mkdir()
    bobs = start_server(loop_thread, make_app(standin, home, token="tok-bob-server", user="bob"))
    try:
        config = client_config(tmp_path / "config", standin, bobs.port, keys, alias="alice")
        result = subprocess.run(["ssh", "-F", str(config), "alice", "true"], capture_output=True, timeout=30)
        assert result.returncode == 255
        assert b"Host key verification failed" in result.stderr, result.stderr
    finally:
        loop_thread.run(bobs.stop())


# --- paramiko, a second client ------------------------------------------------------------------------


def paramiko_client(running: Running, keys: Keys, **connect: object) -> paramiko.SSHClient:
    """paramiko pinned to the server's current host key (it does not check host certificates)."""
    client = paramiko.SSHClient()
    key = running.server.identity.key.export_public_key().decode().split()
    client.get_host_keys().add(
        f"[127.0.0.1]:{running.port}",
        key[0],
        paramiko.Ed25519Key(data=__import__("base64").b64decode(key[1])),
    )
    client.set_missing_host_key_policy(paramiko.RejectPolicy())
    options: dict[str, object] = {"username": "alice", "key_filename": str(keys.path("alice"))}
    options.update(connect)
    client.connect("127.0.0.1", running.port, look_for_keys=False, allow_agent=False, timeout=10, **options)  # type: ignore[arg-type]
    return client


def test_paramiko_exec_and_sftp(alice: Running, keys: Keys) -> None:
    client = paramiko_client(alice, keys)
    try:
        _, stdout, stderr = client.exec_command("echo out; echo err >&2; exit 5")
        assert stdout.read() == b"out\n" and stderr.read() == b"err\n"
        assert stdout.channel.recv_exit_status() == 5
        sftp = client.open_sftp()
        with sftp.open("paramiko.txt", "w") as f:
            f.write(b"via paramiko")
        assert (alice.home / "paramiko.txt").read_bytes() == b"via paramiko"
        with sftp.open("paramiko.txt") as f:
            assert f.read() == b"via paramiko"
        assert sftp.normalize(".") == str(alice.home)
    finally:
        client.close()


@pytest.mark.parametrize(
    ("login", "token", "allowed"),
    [
        ("alice", "tok-alice-user", True),  # the owner's own token
        ("root", "tok-admin", True),  # a hub admin, under their own name
        ("alice", "tok-bob-user", False),  # another user's token
        ("bob", "tok-bob-user", False),  # a valid token of a user who does not own the server
        ("alice", "hunter2", False),  # not a token at all: no plain passwords
        ("alice", "tok-admin", False),  # an admin's token does not make them alice
    ],
)
def test_a_hub_token_as_password(alice: Running, keys: Keys, login: str, token: str, allowed: bool) -> None:
    try:
        client = paramiko_client(alice, keys, username=login, password=token, key_filename=None)
    except paramiko.AuthenticationException:
        assert not allowed
        return
    try:
        assert allowed
        _, stdout, _ = client.exec_command("echo in")
        assert stdout.read() == b"in\n"
    finally:
        client.close()


# --- helpers ------------------------------------------------------------------------------------------


def http_get(address: tuple[str, int], path: str) -> bytes:
    with socket.create_connection(address, timeout=10) as sock:
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[1]


def socks_http_get(socks_port: int, host: str, port: int, path: str) -> bytes:
    """An HTTP GET through a SOCKS5 proxy (what VS Code does through ``-D``)."""
    with socket.create_connection(("127.0.0.1", socks_port), timeout=10) as sock:
        sock.sendall(b"\x05\x01\x00")
        assert sock.recv(2) == b"\x05\x00"
        sock.sendall(b"\x05\x01\x00\x01" + socket.inet_aton(host) + struct.pack(">H", port))
        reply = sock.recv(10)
        assert reply[1] == 0, f"SOCKS connect refused: {reply!r}"
        sock.sendall(f"GET {path} HTTP/1.0\r\nHost: x\r\n\r\n".encode())
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
    return data.split(b"\r\n\r\n", 1)[1]
