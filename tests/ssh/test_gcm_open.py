"""A session's packets opened where they lie in each read (``open_in_one_pass``): the real OpenSSH
client and asyncssh clients get every byte through, with reads cut anywhere, across rekeys, while
nearly every channel data packet is opened in place and not by asyncssh's receive path; what is not
channel data or a window adjust, a forged packet, an unknown channel, a full window, is asyncssh's,
with asyncssh's errors; the packet log still names what was received."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import os
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import asyncssh
import pytest
from asyncssh.constants import MSG_CHANNEL_DATA, MSG_CHANNEL_WINDOW_ADJUST
from asyncssh.packet import String, UInt32

from spawner.ssh import server as pod_server
from spawner.ssh.gcm import KeptGCMEncryption, open_in_one_pass, seal_in_one_pass, use_kept_aesgcm

from .conftest import Running
from .peers import Anyone, bare_server
from .test_gcm import GCM_CIPHERS, SIZE, exchange, needs_ssh


class Opened:
    """The packet types ``KeptGCMEncryption`` opened in place (less those stepped back and left to
    asyncssh) and those asyncssh's receive path decrypted, with the key each was opened under."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened: list[tuple[int, int]] = []  # (type, id of the key's object)
        self.by_asyncssh: list[int] = []
        open_, step_back, decrypt = (
            KeptGCMEncryption.open,
            KeptGCMEncryption.step_back,
            KeptGCMEncryption.decrypt_packet,
        )

        def opening(enc: KeptGCMEncryption, header: Any, sealed: Any) -> bytes | None:
            plain = open_(enc, header, sealed)
            self.opened.append((plain[1] if plain and len(plain) > 1 else -1, id(enc)))
            return plain

        def stepping_back(enc: KeptGCMEncryption) -> None:
            self.opened.pop()
            step_back(enc)

        def decrypting(enc: KeptGCMEncryption, *args: Any) -> bytes | None:
            plain = decrypt(enc, *args)
            if plain:
                self.by_asyncssh.append(plain[1])
            return plain

        monkeypatch.setattr(KeptGCMEncryption, "open", opening)
        monkeypatch.setattr(KeptGCMEncryption, "step_back", stepping_back)
        monkeypatch.setattr(KeptGCMEncryption, "decrypt_packet", decrypting)

    def count(self, pkttype: int) -> int:
        return sum(1 for t, _ in self.opened if t == pkttype)


class Opening(Anyone):
    """An asyncssh server whose connections seal and open a session's packets in one pass, as
    hybridhub's server and gateway do; ``cut`` splits each read before it is handled."""

    def __init__(self, lost: list[Exception | None], cut: Callable[[], int] | None = None) -> None:
        self.lost = lost
        self.cut = cut

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        assert seal_in_one_pass(conn)
        assert open_in_one_pass(conn)
        assert open_in_one_pass(conn)  # once is enough: a second call changes nothing
        if self.cut is not None:
            receive, cut = conn.data_received, self.cut

            def in_pieces(data: bytes, datatype: Any = None) -> None:
                at = 0
                while at < len(data):
                    n = cut()
                    receive(data[at : at + n], datatype)
                    at += n

            conn.data_received = in_pieces  # type: ignore[method-assign]

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost.append(exc)


async def uploaded(
    cipher: str, server: Callable[[], asyncssh.SSHServer], size: int = SIZE, **client_options: Any
) -> None:
    """An asyncssh client exchanges ``size`` random bytes each way with ``server``; both arrive whole."""
    used: list[type] = []
    download, upload = os.urandom(size), os.urandom(size)
    async with (
        bare_server(server, exchange(download, used), encryption_algs=[cipher]) as port,
        asyncssh.connect(
            "127.0.0.1", port, known_hosts=None, username="u", encryption_algs=[cipher], **client_options
        ) as conn,
    ):
        result = await asyncio.wait_for(conn.run("x", input=upload, encoding=None), 60)
    assert result.exit_status == 0 and result.stdout == download
    assert result.stderr == hashlib.sha256(upload).hexdigest().encode()
    assert used == [KeptGCMEncryption, KeptGCMEncryption]


@needs_ssh
@pytest.mark.asyncio
@pytest.mark.parametrize("cipher", GCM_CIPHERS)
async def test_the_openssh_clients_upload_is_opened_in_place(
    cipher: str, table: dict[bytes, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert use_kept_aesgcm()
    seen = Opened(monkeypatch)
    used: list[type] = []
    lost: list[Exception | None] = []
    download, upload = os.urandom(SIZE), os.urandom(SIZE)
    async with bare_server(lambda: Opening(lost), exchange(download, used), encryption_algs=[cipher]) as port:
        command = ["ssh", "-F", "/dev/null", "-p", str(port), "-c", cipher, "-o", "BatchMode=yes"]
        command += ["-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={tmp_path / 'known'}"]
        pipe = asyncio.subprocess.PIPE
        proc = await asyncio.create_subprocess_exec(
            *command, "u@127.0.0.1", "x", stdin=pipe, stdout=pipe, stderr=pipe
        )
        out, err = await asyncio.wait_for(proc.communicate(upload), 60)
    assert proc.returncode == 0, err
    assert hashlib.sha256(upload).hexdigest().encode() in err and out == download
    assert used == [KeptGCMEncryption, KeptGCMEncryption]
    # the only KeptGCMEncryption receiving in this process is the server's: the client is OpenSSH
    opened, by_asyncssh = seen.count(MSG_CHANNEL_DATA), seen.by_asyncssh.count(MSG_CHANNEL_DATA)
    assert opened + by_asyncssh >= SIZE // 32768 and by_asyncssh <= opened // 10, (opened, by_asyncssh)
    assert seen.count(MSG_CHANNEL_WINDOW_ADJUST) > 0  # the client's, for the download


@pytest.mark.asyncio
@pytest.mark.parametrize("cipher", GCM_CIPHERS)
async def test_reads_cut_anywhere_lose_nothing(
    cipher: str, table: dict[bytes, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each read cut into pieces of 1 to 70,000 bytes: inside the length, the first block, the tag,
    and across several packets; every byte arrives and the data is still opened in place."""
    assert use_kept_aesgcm()
    seen = Opened(monkeypatch)
    rng = random.Random(11)
    lost: list[Exception | None] = []
    await uploaded(
        cipher, lambda: Opening(lost, lambda: rng.choice((1, 2, 3, 4, 5, 17, 36, 4096, 40000, 70000)))
    )
    assert seen.count(MSG_CHANNEL_DATA) >= SIZE // 32768 // 2, seen.count(MSG_CHANNEL_DATA)


@pytest.mark.asyncio
async def test_rekeys_in_the_middle_of_an_upload(
    table: dict[bytes, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The client starts a key exchange after every MiB it sends: the key exchange's packets are
    asyncssh's, the data before and after each opened in place under the keys then in use."""
    assert use_kept_aesgcm()
    seen = Opened(monkeypatch)
    lost: list[Exception | None] = []
    await uploaded(GCM_CIPHERS[0], lambda: Opening(lost), rekey_bytes=1 << 20)
    keys = {key for pkttype, key in seen.opened if pkttype == MSG_CHANNEL_DATA}
    assert len(keys) >= 3, keys


@pytest.mark.asyncio
async def test_a_forged_packet_closes_the_connection_with_asyncssh_s_mac_error(
    table: dict[bytes, Any],
) -> None:
    """A byte flipped in a read after half a MiB of the upload: the tag does not verify, asyncssh
    reads the packet again and closes the connection as it would without the fast path."""
    assert use_kept_aesgcm()
    lost: list[Exception | None] = []

    class Tampered(Opening):
        def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
            super().connection_made(conn)
            receive = conn.data_received
            state = {"after_auth": 0, "flipped": False}

            def tampering(data: bytes, datatype: Any = None) -> None:
                if conn._auth_complete and not state["flipped"]:
                    state["after_auth"] += len(data)
                    if state["after_auth"] > 1 << 19 and len(data) > 1000:
                        data = data[:-1] + bytes((data[-1] ^ 1,))  # inside a packet or its tag
                        state["flipped"] = True
                receive(data, datatype)

            conn.data_received = tampering  # type: ignore[method-assign]

    cipher = GCM_CIPHERS[0]
    async with (
        bare_server(lambda: Tampered(lost), exchange(b"", []), encryption_algs=[cipher]) as port,
        asyncssh.connect("127.0.0.1", port, known_hosts=None, username="u", encryption_algs=[cipher]) as conn,
    ):
        with contextlib.suppress(asyncssh.DisconnectError):  # or the session ends without a status
            result = await asyncio.wait_for(conn.run("x", input=os.urandom(SIZE), encoding=None), 60)
            assert result.exit_status is None, result
        await asyncio.wait_for(conn.wait_closed(), 20)
    assert len(lost) == 1 and isinstance(lost[0], asyncssh.MACError), lost


async def sleeping(process: asyncssh.SSHServerProcess[bytes]) -> None:
    """A session that reads nothing: its window is not adjusted."""
    await asyncio.sleep(30)


async def misbehave(
    send: Callable[[asyncssh.SSHClientConnection, asyncssh.SSHClientChannel[bytes]], None],
) -> Exception | None:
    """An asyncssh client opens a session on an opening server and sends what ``send`` sends past
    its own checks; how the server's connection ended."""
    lost: list[Exception | None] = []
    cipher = GCM_CIPHERS[0]
    async with (
        bare_server(lambda: Opening(lost), sleeping, encryption_algs=[cipher]) as port,
        asyncssh.connect("127.0.0.1", port, known_hosts=None, username="u", encryption_algs=[cipher]) as conn,
    ):
        chan, _ = await conn.create_session(asyncssh.SSHClientSession, "x", encoding=None)
        send(conn, chan)
        await asyncio.wait_for(conn.wait_closed(), 20)
    assert len(lost) == 1
    return lost[0]


@pytest.mark.asyncio
async def test_data_for_an_unknown_channel_is_asyncssh_s_protocol_error(table: dict[bytes, Any]) -> None:
    assert use_kept_aesgcm()
    exc = await misbehave(lambda conn, chan: conn.send_packet(MSG_CHANNEL_DATA, UInt32(999), String(b"x")))
    assert isinstance(exc, asyncssh.ProtocolError) and "Invalid channel number 999" in str(exc), exc


@pytest.mark.asyncio
async def test_data_past_the_window_is_refused(table: dict[bytes, Any]) -> None:
    """Data sent past the window the server opened, to a session that reads none of it: the channel's
    own check, reached through the fast path, closes the connection."""
    assert use_kept_aesgcm()

    def flood(conn: asyncssh.SSHClientConnection, chan: Any) -> None:
        recipient = UInt32(chan._send_chan)
        # 200 packets of 32,000 bytes: past the 2 MiB window, and past the one window adjust the server sends
        # before the session's reader stops taking data
        for _ in range(200):
            conn.send_packet(MSG_CHANNEL_DATA, recipient, String(bytes(32000)))

    exc = await misbehave(flood)
    assert isinstance(exc, asyncssh.ProtocolError) and "Window exceeded" in str(exc), exc


@pytest.mark.asyncio
async def test_the_packet_log_names_the_packets_opened_in_place(
    table: dict[bytes, Any], caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert use_kept_aesgcm()
    seen = Opened(monkeypatch)
    lost: list[Exception | None] = []
    asyncssh.set_debug_level(3)  # asyncssh's packet log
    try:
        with caplog.at_level(logging.DEBUG, logger="asyncssh"):
            await uploaded(GCM_CIPHERS[0], lambda: Opening(lost))
    finally:
        asyncssh.set_debug_level(1)
    assert seen.count(MSG_CHANNEL_DATA) >= SIZE // 32768
    received = [r for r in caplog.records if "Received MSG_CHANNEL_DATA (94)" in r.getMessage()]
    # both sides log theirs: each side's share alone is about 100 packets
    assert len(received) >= 2 * (SIZE // 32768), len(received)


def test_a_connection_without_what_it_relies_on_is_left_as_it_is() -> None:
    class Conn:
        def data_received(self, data: bytes, datatype: Any = None) -> None:
            pass

    conn = Conn()
    own = conn.data_received
    assert open_in_one_pass(conn) is False and conn.data_received == own


def test_the_pods_server_opens_an_upload_in_place(alice: Running, monkeypatch: pytest.MonkeyPatch) -> None:
    """hybridhub's SSH server, with the real OpenSSH client: `cat` gives back every byte of 4 MiB, and
    the upload's data was opened in place."""
    assert pod_server.open_in_one_pass is open_in_one_pass
    seen = Opened(monkeypatch)
    data = os.urandom(4 << 20)
    result = alice.ssh("alice", "cat", input=data)
    assert result.returncode == 0 and result.stdout == data
    assert seen.count(MSG_CHANNEL_DATA) >= len(data) // 32768, seen.count(MSG_CHANNEL_DATA)
