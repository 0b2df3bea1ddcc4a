"""Shared fixtures of the SSH server tests: a loop thread, the stand-in service, keys, servers, clients.

The servers run in process on 127.0.0.1:0 (STYLE point 10), on an event loop in a thread of their own,
so that a test may run the real OpenSSH client synchronously while they serve.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import threading
from collections.abc import Coroutine, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import asyncssh
import pytest
from asyncssh.encryption import GCMEncryption

from spawner.ssh.cli import SSHServerApp
from spawner.ssh.gcm import GCM_ALGS
from spawner.ssh.server import PodSSHServer
from tests.environment import needs

from .standin import PREFIX, StandIn

T = TypeVar("T")

needs_openssh = needs(
    all(shutil.which(b) for b in ("ssh", "scp", "sftp", "rsync")),
    "needs the OpenSSH client, scp, sftp and rsync (make test installs openssh-client and rsync)",
)
# the notebook's environment, as the server passes it to sessions
MARKER = "HYBRIDHUB_SSH_TEST_MARKER"


class LoopThread:
    """An event loop in a daemon thread; ``run`` waits for a coroutine on it."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, name="ssh-test-loop", daemon=True)
        self._thread.start()

    def run(self, coro: Coroutine[Any, Any, T], timeout: float = 30) -> T:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


@dataclass
class Keys:
    """Private key files (OpenSSH format) and their public lines, by name."""

    dir: Path

    def path(self, name: str) -> Path:
        return self.dir / name

    def public(self, name: str) -> str:
        return (self.dir / f"{name}.pub").read_text().strip()


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    base = tmp_path_factory.mktemp("keys")
    for name in ("alice", "alice_local", "alice_new", "bob", "carol", "stray1", "stray2", "stray3", "stray4"):
        key = asyncssh.generate_private_key("ssh-ed25519", comment=name)
        key.write_private_key(base / name)
        os.chmod(base / name, 0o600)
        key.write_public_key(base / f"{name}.pub")
    return Keys(base)


@pytest.fixture(scope="module")
def loop_thread() -> Iterator[LoopThread]:
    thread = LoopThread()
    yield thread
    thread.close()


@pytest.fixture(scope="module")
def standin(loop_thread: LoopThread, keys: Keys) -> Iterator[StandIn]:
    hub = StandIn(
        server_tokens={"tok-alice-server": ("alice", ""), "tok-bob-server": ("bob", "")},
        user_tokens={
            "tok-alice-user": {"name": "alice", "admin": False},
            "tok-bob-user": {"name": "bob", "admin": False},
            "tok-admin": {"name": "root", "admin": True},
        },
        keys={"alice": [keys.public("alice")], "bob": [keys.public("bob")], "carol": [keys.public("carol")]},
        allowed={"alice": ["alice", "carol"], "bob": ["bob"]},
    )
    runner = loop_thread.run(hub.start())
    yield hub
    loop_thread.run(runner.cleanup())


@dataclass
class Running:
    """A started server, its home directory, and an OpenSSH client config for it."""

    server: PodSSHServer
    home: Path
    config: Path

    @property
    def port(self) -> int:
        return self.server.port

    def ssh(
        self, *args: str, input: bytes | None = None, timeout: float = 30
    ) -> subprocess.CompletedProcess[bytes]:
        """The real OpenSSH client, ``ssh -F config ARGS``."""
        return subprocess.run(
            ["ssh", "-F", str(self.config), *args],
            input=input,
            capture_output=True,
            timeout=timeout,
            check=False,
        )


def client_config(path: Path, standin: StandIn, port: int, keys: Keys, *, alias: str = "alice") -> Path:
    """An OpenSSH config: host ``alice`` (and ``as-bob``, ``as-carol``...) at the server, known hosts
    holding only the CA line, strict checking, only the named key."""
    known = path.parent / f"{path.name}.known_hosts"
    known.write_text(standin.known_hosts())
    common = f"""  HostName 127.0.0.1
  Port {port}
  HostKeyAlias {alias}
  UserKnownHostsFile {known}
  GlobalKnownHostsFile /dev/null
  StrictHostKeyChecking yes
  IdentitiesOnly yes
  BatchMode yes
  PasswordAuthentication no
  KbdInteractiveAuthentication no
  ConnectTimeout 10
"""
    stanzas = [f"Host alice\n  User alice\n  IdentityFile {keys.path('alice')}\n{common}"]
    for login, key in (
        ("bob", "bob"),
        ("carol", "carol"),
        ("alice-local", "alice_local"),
        ("alice-new", "alice_new"),
    ):
        user = "alice" if login.startswith("alice") else login
        stanzas.append(f"Host as-{login}\n  User {user}\n  IdentityFile {keys.path(key)}\n{common}")
    strays = "".join(f"  IdentityFile {keys.path(f'stray{i}')}\n" for i in range(1, 5))
    stanzas.append(f"Host strays\n  User alice\n{strays}{common}")
    path.write_text("\n".join(stanzas))
    return path


def make_app(standin: StandIn, home: Path, token: str = "tok-alice-server", **traits: Any) -> SSHServerApp:
    """The server's settings as the subcommand builds them, on 127.0.0.1:0, against the stand-in."""
    config: dict[str, Any] = {
        "ip": "127.0.0.1",
        "port": 0,
        "service_url": standin.url + PREFIX,
        "api_url": standin.url + "/hub/api",
        "activity_url": standin.url + "/hub/api/users/alice/activity",
        "api_token": token,
        "user": "alice",
        "server_name": "",
        "home": str(home),
        "shell": "/bin/bash",
        "keys_min_refresh_interval": 0.0,
        "max_auth_tries": 3,
        "max_unauthenticated": 4,
        "token_as_password": True,
    }
    config.update(traits)
    return SSHServerApp(**config)


def start_server(loop_thread: LoopThread, app: SSHServerApp) -> PodSSHServer:
    async def start() -> PodSSHServer:
        server = app.make_server()
        assert await server.start()
        return server

    return loop_thread.run(start())


@pytest.fixture(scope="module")
def alice(
    loop_thread: LoopThread, standin: StandIn, keys: Keys, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Running]:
    """Alice's server, shared by the module's tests; her home holds an authorized_keys of her own."""
    home = tmp_path_factory.mktemp("alice-home")
    (home / ".ssh").mkdir()
    (home / ".ssh" / "authorized_keys").write_text(keys.public("alice_local") + "\n")
    os.environ[MARKER] = "from-the-notebook"
    try:
        server = start_server(loop_thread, make_app(standin, home, activity_interval=1.0))
    finally:
        del os.environ[MARKER]
    config = client_config(tmp_path_factory.mktemp("client") / "config", standin, server.port, keys)
    yield Running(server, home, config)
    loop_thread.run(server.stop())


@pytest.fixture
def table(monkeypatch: pytest.MonkeyPatch) -> dict[bytes, Any]:
    """asyncssh's table of encryption classes as asyncssh makes it, whatever a server started in this
    process earlier did to it (hybridhub's use ``KeptGCMEncryption`` for AES-GCM); put back as it was
    after the test."""
    copy = dict(asyncssh.encryption._enc_params)
    for alg in GCM_ALGS:
        copy[alg] = (GCMEncryption, copy[alg][1])
    monkeypatch.setattr(asyncssh.encryption, "_enc_params", copy)
    return copy
