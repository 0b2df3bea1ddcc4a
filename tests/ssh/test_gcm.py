"""AES-GCM with one cipher context per key: the same bytes as asyncssh's own shim, packet after packet
and across the nonce counter's wrap; a forged packet refused; the real OpenSSH client talks to an
asyncssh server that uses it, both ways, under both key sizes. A session's packets sealed in one pass
(``seal_in_one_pass``): OpenSSH and asyncssh clients read every byte both ways, across rekeys, while
no channel data goes through asyncssh's own ``send_packet``; other ciphers and the key exchange do;
the packet log still names what was sent."""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import shutil
from pathlib import Path
from typing import Any

import asyncssh
import asyncssh.encryption
import pytest
from asyncssh.constants import MSG_CHANNEL_DATA, MSG_KEXINIT, MSG_NEWKEYS, MSG_USERAUTH_SUCCESS
from asyncssh.crypto.cipher import GCMCipher
from asyncssh.encryption import GCMEncryption, get_encryption

from spawner.ssh.gcm import GCM_ALGS, KeptGCMEncryption, seal_in_one_pass, use_kept_aesgcm
from tests.environment import needs

from .conftest import LoopThread, make_app, start_server
from .peers import Anyone, bare_server
from .standin import StandIn

KEY_SIZES = {"aes128-gcm": 16, "aes256-gcm": 32}
needs_ssh = needs(
    shutil.which("ssh") is not None, "needs the OpenSSH client (make test installs openssh-client)"
)


def pair(cipher_name: str, iv: bytes | None = None) -> tuple[GCMEncryption, KeptGCMEncryption, bytes, bytes]:
    key, iv = os.urandom(KEY_SIZES[cipher_name]), iv or os.urandom(12)
    return (
        GCMEncryption(GCMCipher(cipher_name, key, iv)),
        KeptGCMEncryption.new(cipher_name, key, iv),
        key,
        iv,
    )


@pytest.mark.parametrize("cipher_name", sorted(KEY_SIZES))
def test_packets_are_the_bytes_asyncssh_makes_and_each_side_reads_the_others(
    cipher_name: str,
) -> None:
    theirs, ours, key, iv = pair(cipher_name)
    their_reader, our_reader = GCMEncryption(GCMCipher(cipher_name, key, iv)), KeptGCMEncryption(key, iv)
    for seq, size in enumerate([16, 48, 1024, 32768 + 16, 3, 65536]):
        header, body = size.to_bytes(4, "big"), os.urandom(size)
        sealed_theirs, tag_theirs = theirs.encrypt_packet(seq, header, body)
        sealed_ours, tag_ours = ours.encrypt_packet(seq, header, body)
        assert (sealed_ours, tag_ours) == (sealed_theirs, tag_theirs)
        assert isinstance(sealed_ours, bytes) and len(tag_ours) == 16
        # the receiving side: asyncssh hands the first block and the rest apart, the header in front
        first, rest = sealed_ours[:16], sealed_ours[16:]
        assert their_reader.decrypt_packet(seq, first, rest, 4, tag_ours) == body
        assert our_reader.decrypt_packet(seq, first, rest, 4, tag_theirs) == body


def test_the_nonce_counter_wraps_as_asyncssh_s_does() -> None:
    theirs, ours, _, _ = pair("aes128-gcm", iv=os.urandom(4) + b"\xff" * 8)
    for seq in range(3):  # ...ff, then 00...00, then 00...01
        header, body = (32).to_bytes(4, "big"), os.urandom(32)
        assert ours.encrypt_packet(seq, header, body) == theirs.encrypt_packet(seq, header, body)


def test_a_forged_packet_is_refused_and_the_next_one_still_reads() -> None:
    writer, _, key, iv = pair("aes256-gcm")
    reader = KeptGCMEncryption(key, iv)
    header = (64).to_bytes(4, "big")
    sealed, tag = writer.encrypt_packet(0, header, b"a" * 64)
    forged = bytearray(sealed)
    forged[20] ^= 1
    assert reader.decrypt_packet(0, bytes(forged[:16]), bytes(forged[16:]), 4, tag) is None
    # the nonce moved on, as asyncssh's does: the writer's second packet reads
    sealed, tag = writer.encrypt_packet(1, header, b"b" * 64)
    assert reader.decrypt_packet(1, sealed[:16], sealed[16:], 4, tag) == b"b" * 64
    with pytest.raises(ValueError, match="12-byte IV"):
        KeptGCMEncryption(os.urandom(16), os.urandom(8))


def test_use_kept_aesgcm_swaps_both_gcm_algorithms_once_and_nothing_else(table: dict[bytes, Any]) -> None:
    before = dict(table)
    assert use_kept_aesgcm() and use_kept_aesgcm()  # a second call changes nothing
    for alg in GCM_ALGS:
        assert table[alg] == (KeptGCMEncryption, before[alg][1])
        assert isinstance(
            get_encryption(alg, os.urandom(32 if b"256" in alg else 16), os.urandom(12)), KeptGCMEncryption
        )
    assert {alg: v for alg, v in table.items() if alg not in GCM_ALGS} == {
        alg: v for alg, v in before.items() if alg not in GCM_ALGS
    }


def test_an_unexpected_table_is_left_as_it_is(
    table: dict[bytes, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Other(GCMEncryption):
        pass

    table[GCM_ALGS[1]] = (Other, "aes256-gcm")
    before = dict(table)
    assert use_kept_aesgcm() is False and table == before
    monkeypatch.delattr(asyncssh.encryption, "_enc_params")
    assert use_kept_aesgcm() is False


def test_a_private_key_sealed_with_aes256_gcm_reads_back(table: dict[bytes, Any], tmp_path: Path) -> None:
    """asyncssh also seals OpenSSH private key files with the same class (header empty, tag apart)."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    sealed_before = key.export_private_key("openssh", "pw", cipher_name="aes256-gcm@openssh.com", rounds=2)
    assert use_kept_aesgcm()
    sealed_after = key.export_private_key("openssh", "pw", cipher_name="aes256-gcm@openssh.com", rounds=2)
    for sealed in (sealed_before, sealed_after):
        assert asyncssh.import_private_key(sealed, "pw").public_data == key.public_data
        with pytest.raises(asyncssh.KeyEncryptionError):
            asyncssh.import_private_key(sealed, "wrong")


SIZE = 3 * 1024 * 1024 + 5  # about 100 packets of 32 KiB each way
GCM_CIPHERS = [alg.decode() for alg in GCM_ALGS]


class Sealing(Anyone):
    """An asyncssh server whose connections seal a session's packets in one pass, as hybridhub's server
    and gateway do. ``reached`` gets the type of every packet that still goes through asyncssh's own
    ``send_packet``."""

    def __init__(self, reached: list[int]) -> None:
        self.reached = reached

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        own = conn.send_packet

        def noted(pkttype: int, *args: bytes, handler: Any = None) -> None:
            self.reached.append(pkttype)
            own(pkttype, *args, handler=handler)

        conn.send_packet = noted  # type: ignore[method-assign]
        assert seal_in_one_pass(conn)
        assert seal_in_one_pass(conn)  # once is enough: a second call changes nothing


def exchange(download: bytes, used: list[type]) -> Any:
    """A session that reads the whole upload, writes its SHA-256 to stderr and ``download`` to stdout;
    it notes the connection's encryption classes, sending then receiving."""

    async def session(process: asyncssh.SSHServerProcess[bytes]) -> None:
        conn = process.channel.get_connection()
        used.extend([type(conn._send_encryption), type(conn._recv_encryption)])
        upload = await process.stdin.read()
        process.stderr.write(hashlib.sha256(upload).hexdigest().encode())
        process.stdout.write(download)
        process.exit(0)

    return session


@needs_ssh
@pytest.mark.asyncio
@pytest.mark.parametrize("sealed", [False, True], ids=["asyncssh's send", "sealed in one pass"])
@pytest.mark.parametrize("cipher", GCM_CIPHERS)
async def test_the_openssh_client_and_an_asyncssh_server_using_it_talk_both_ways(
    cipher: str, sealed: bool, table: dict[bytes, Any], tmp_path: Path
) -> None:
    assert use_kept_aesgcm()
    used: list[type] = []
    reached: list[int] = []
    download, upload = os.urandom(SIZE), os.urandom(SIZE)
    server = (lambda: Sealing(reached)) if sealed else Anyone
    async with bare_server(server, exchange(download, used), encryption_algs=[cipher]) as port:
        options = {
            "StrictHostKeyChecking": "no",
            "UserKnownHostsFile": str(tmp_path / "known"),
            "BatchMode": "yes",
            "ConnectTimeout": "10",
        }
        command = ["ssh", "-F", "/dev/null", "-p", str(port), "-c", cipher]
        command += [arg for key, value in options.items() for arg in ("-o", f"{key}={value}")]
        command += ["u@127.0.0.1", "x"]
        pipe = asyncio.subprocess.PIPE
        proc = await asyncio.create_subprocess_exec(*command, stdin=pipe, stdout=pipe, stderr=pipe)
        out, err = await asyncio.wait_for(proc.communicate(upload), 60)
    assert proc.returncode == 0, err
    assert hashlib.sha256(upload).hexdigest().encode() in err
    assert out == download
    assert used == [KeptGCMEncryption, KeptGCMEncryption]
    if sealed:
        assert MSG_CHANNEL_DATA not in reached and MSG_USERAUTH_SUCCESS in reached, reached


async def exchanged(cipher: str, reached: list[int], **options: Any) -> list[type]:
    """A sealing server and an asyncssh client exchange SIZE random bytes each way under ``cipher``;
    the server's encryption classes."""
    used: list[type] = []
    download, upload = os.urandom(SIZE), os.urandom(SIZE)
    server = bare_server(
        lambda: Sealing(reached), exchange(download, used), encryption_algs=[cipher], **options
    )
    async with (
        server as port,
        asyncssh.connect("127.0.0.1", port, known_hosts=None, username="u", encryption_algs=[cipher]) as conn,
    ):
        result = await asyncio.wait_for(conn.run("x", input=upload, encoding=None), 60)
    assert result.exit_status == 0 and result.stdout == download
    assert result.stderr == hashlib.sha256(upload).hexdigest().encode()
    return used


@pytest.mark.asyncio
@pytest.mark.parametrize("cipher", GCM_CIPHERS)
async def test_sealed_in_one_pass_an_asyncssh_client_reads_every_byte(
    cipher: str, table: dict[bytes, Any]
) -> None:
    assert use_kept_aesgcm()
    reached: list[int] = []
    assert await exchanged(cipher, reached) == [KeptGCMEncryption, KeptGCMEncryption]
    assert MSG_CHANNEL_DATA not in reached and MSG_NEWKEYS in reached, reached


@pytest.mark.asyncio
async def test_rekeys_in_the_middle_of_a_sealed_stream(
    table: dict[bytes, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rekey falling due goes to asyncssh, which holds a session's packets back until the new keys
    are in use (those reach its send_packet); the packets before and after are sealed in one pass.
    Both kinds in one stream, every byte read."""
    assert use_kept_aesgcm()
    seal = KeptGCMEncryption.seal
    sealed: list[int] = []

    def counted(self: KeptGCMEncryption, header: bytes, packet: bytes) -> bytes:
        sealed.append(packet[1])  # the packet type, after the padding length
        return seal(self, header, packet)

    monkeypatch.setattr(KeptGCMEncryption, "seal", counted)
    reached: list[int] = []
    # the server starts a key exchange after every MiB it sends: three or more in the stream
    await exchanged(GCM_CIPHERS[0], reached, rekey_bytes=1 << 20)
    assert reached.count(MSG_KEXINIT) >= 3 and reached.count(MSG_NEWKEYS) >= 3, reached
    assert MSG_CHANNEL_DATA in reached and MSG_CHANNEL_DATA in sealed


@pytest.mark.asyncio
@pytest.mark.parametrize("cipher", ["chacha20-poly1305@openssh.com", "aes128-ctr", "aes128-gcm@openssh.com"])
async def test_any_other_cipher_is_left_to_asyncssh(cipher: str, table: dict[bytes, Any]) -> None:
    """ChaCha20 and CTR, and AES-GCM where asyncssh's own shim encrypts it (use_kept_aesgcm not called)."""
    reached: list[int] = []
    used = await exchanged(cipher, reached)
    assert KeptGCMEncryption not in used
    assert reached.count(MSG_CHANNEL_DATA) >= SIZE // 32768, reached


@pytest.mark.asyncio
async def test_the_packet_log_names_the_packets_sealed_in_one_pass(
    table: dict[bytes, Any], caplog: pytest.LogCaptureFixture
) -> None:
    assert use_kept_aesgcm()
    reached: list[int] = []
    asyncssh.set_debug_level(3)  # asyncssh's packet log
    try:
        with caplog.at_level(logging.DEBUG, logger="asyncssh"):
            await exchanged(GCM_CIPHERS[0], reached)
    finally:
        asyncssh.set_debug_level(1)
    assert MSG_CHANNEL_DATA not in reached
    sent = [r.getMessage() for r in caplog.records if "Sent MSG_CHANNEL_DATA (94)" in r.getMessage()]
    # both sides log theirs: the server's download alone is about 100 packets
    assert len(sent) >= 2 * (SIZE // 32768), len(sent)


def test_a_connection_without_what_it_relies_on_is_left_as_it_is() -> None:
    class Conn:
        def send_packet(self, pkttype: int, *args: bytes, handler: Any = None) -> None:
            pass

    conn = Conn()
    own = conn.send_packet
    assert seal_in_one_pass(conn) is False and conn.send_packet == own


def test_the_pods_server_uses_it_once_started(
    table: dict[bytes, Any], loop_thread: LoopThread, standin: StandIn, tmp_path: Path
) -> None:
    """hybridhub's SSH server swaps the classes as it starts (asyncssh's own until then)."""
    assert all(table[alg][0] is GCMEncryption for alg in GCM_ALGS), table
    server = start_server(loop_thread, make_app(standin, tmp_path))
    try:
        assert all(table[alg][0] is KeptGCMEncryption for alg in GCM_ALGS), table
    finally:
        loop_thread.run(server.stop())
