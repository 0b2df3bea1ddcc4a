"""A session's packets opened where they lie in each read (``open_in_one_pass``): the real OpenSSH
client and asyncssh clients get every byte through, with reads cut anywhere and across rekeys, while
nearly every channel data packet is opened in place and not by asyncssh's receive path. Against
asyncssh's own ``data_received`` on a live connection, fed the same sealed packets: every cut of a
stream mixing what is opened here and what asyncssh keeps leaves the same data, sequence numbers,
window, nonces and buffer; each packet asyncssh refuses (a forged tag, an unknown channel, junk after a
window adjust, a packet shorter than a block, a length over the limit) ends the connection alike, as
do data past the window and a failing session; a handler going on in a task holds the rest back
alike; the packet log reads alike. Other ciphers and compression are asyncssh's."""

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
from asyncssh.constants import MSG_CHANNEL_DATA, MSG_CHANNEL_WINDOW_ADJUST, MSG_DEBUG, MSG_IGNORE
from asyncssh.packet import Byte, String, UInt32

from spawner.ssh import server as pod_server
from spawner.ssh.gcm import KeptGCMEncryption, open_in_one_pass, seal_in_one_pass, use_kept_aesgcm

from .conftest import Running
from .peers import Anyone, bare_server
from .test_gcm import GCM_CIPHERS, SIZE, exchange, needs_ssh


class Opened:
    """The packet types ``KeptGCMEncryption`` opened in place (less those stepped back and left to
    asyncssh) and those asyncssh's receive path decrypted, with the key each was opened under."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.opened: list[tuple[int, KeptGCMEncryption]] = []  # (type, the key's object, kept alive)
        self.by_asyncssh: list[int] = []
        open_, step_back, decrypt = (
            KeptGCMEncryption.open,
            KeptGCMEncryption.step_back,
            KeptGCMEncryption.decrypt_packet,
        )

        def opening(enc: KeptGCMEncryption, header: Any, sealed: Any) -> bytes | None:
            plain = open_(enc, header, sealed)
            self.opened.append((plain[1] if plain and len(plain) > 1 else -1, enc))
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
    cipher: str,
    server: Callable[[], asyncssh.SSHServer],
    size: int = SIZE,
    check_classes: bool = True,
    **client_options: Any,
) -> None:
    """An asyncssh client exchanges ``size`` random bytes each way with ``server``; both arrive whole.
    Compression asked of the client is offered by the server too."""
    used: list[type] = []
    download, upload = os.urandom(size), os.urandom(size)
    server_options = (
        {"compression_algs": client_options["compression_algs"]}
        if "compression_algs" in client_options
        else {}
    )
    async with (
        bare_server(server, exchange(download, used), encryption_algs=[cipher], **server_options) as port,
        asyncssh.connect(
            "127.0.0.1", port, known_hosts=None, username="u", encryption_algs=[cipher], **client_options
        ) as conn,
    ):
        result = await asyncio.wait_for(conn.run("x", input=upload, encoding=None), 60)
    assert result.exit_status == 0 and result.stdout == download
    assert result.stderr == hashlib.sha256(upload).hexdigest().encode()
    if check_classes:
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
    """The client starts a key exchange after every 512 KiB it sends: the key exchange's packets are
    asyncssh's, the data before and after each opened in place under the keys then in use."""
    assert use_kept_aesgcm()
    seen = Opened(monkeypatch)
    lost: list[Exception | None] = []
    await uploaded(GCM_CIPHERS[0], lambda: Opening(lost), rekey_bytes=1 << 19)
    keys = {id(key) for pkttype, key in seen.opened if pkttype == MSG_CHANNEL_DATA}
    assert len(keys) >= 4, len(keys)


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


class Sink:
    """A transport that keeps what the server sends and sends none of it."""

    def __init__(self) -> None:
        self.sent: list[bytes] = []

    def write(self, data: bytes) -> None:
        self.sent.append(bytes(data))

    def writelines(self, parts: Any) -> None:
        for part in parts:
            self.write(part)

    def abort(self) -> None:
        pass

    def close(self) -> None:
        pass

    def is_closing(self) -> bool:
        return False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return default


class Kept(Anyone):
    """Keeps the server's connection, with its own packets sealed in one pass."""

    made: list[asyncssh.SSHServerConnection]

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        Kept.made.append(conn)
        assert seal_in_one_pass(conn)


class Taken:
    """A channel's session that keeps what it is given; ``fail`` makes it raise instead."""

    def __init__(self) -> None:
        self.data: list[bytes] = []
        self.fail = False

    def data_received(self, data: bytes, datatype: Any) -> None:
        if self.fail:
            raise RuntimeError("the session failed")
        self.data.append(bytes(data))


class Live:
    """A logged-in server connection with an open session, fed a client's packets by hand: its
    transport a sink, its session's data kept, its receiving key one the test seals with. ``read``
    feeds a stream in reads cut where asked, through asyncssh's own ``data_received`` or through
    ``open_in_one_pass``'s; ``state`` is what that left."""

    def __init__(self, conn: Any, chan: Any) -> None:
        self.conn, self.chan = conn, chan
        self.session = Taken()
        chan._session = self.session
        self.key, self.iv = os.urandom(16), os.urandom(12)
        self.own = type(conn).data_received.__get__(conn)
        assert open_in_one_pass(conn)
        self.fast = conn.data_received
        self.closed: list[Exception | None] = []
        self.disconnects: list[tuple[int, str]] = []
        force_close, send_disconnect = conn._force_close, conn._send_disconnect

        # only what reaches the peer and the error the connection ends with: once closed, asyncssh goes
        # on reading what it holds (and may refuse it again, to no one); the fast path stops
        def closing(exc: Exception | None) -> None:
            if conn._transport is not None:
                self.closed.append(exc)
            force_close(exc)

        def disconnecting(code: int, reason: str, lang: str) -> None:
            if conn._transport is not None:
                self.disconnects.append((code, reason))
            send_disconnect(code, reason, lang)

        conn._force_close, conn._send_disconnect = closing, disconnecting

    def stream(self, *payloads: bytes, padlen: int | None = None, length: int | None = None) -> bytes:
        """The payloads as a client seals them, from the start of the key's nonces."""
        sealer = KeptGCMEncryption(self.key, self.iv)
        out = []
        for payload in payloads:
            pad = padlen if padlen is not None else -(len(payload) + 1) % 16  # the length is not padded
            pad += 16 if padlen is None and pad < 4 else 0
            packet = bytes((pad,)) + payload + os.urandom(pad)
            header = len(packet).to_bytes(4, "big")
            sealed = sealer.seal(header, packet)
            out.append((length if length is not None else len(packet)).to_bytes(4, "big") + sealed)
        return b"".join(out)

    def read(self, fast: bool, stream: bytes, cuts: tuple[int, ...] = ()) -> tuple[Any, ...]:
        conn, chan = self.conn, self.chan
        conn._recv_encryption = KeptGCMEncryption(self.key, self.iv)
        conn._inpbuf, conn._packet, conn._recv_handler = b"", b"", conn._recv_pkthdr
        chan._recv_window = 1 << 30
        self.session.data.clear()
        seq, window = conn._recv_seq, chan._send_window
        receive = self.fast if fast else self.own
        at = 0
        for cut in (*cuts, len(stream)):
            if cut > at:
                receive(stream[at:cut])
                at = cut
        return (
            b"".join(self.session.data),
            conn._recv_seq - seq,
            chan._send_window - window,
            conn._recv_encryption._invocation,
            conn._inpbuf,
            conn._recv_handler == conn._recv_pkthdr,
        )

    def data(self, payload: bytes, chan: int | None = None) -> bytes:
        return (
            Byte(MSG_CHANNEL_DATA) + UInt32(self.chan._recv_chan if chan is None else chan) + String(payload)
        )


@contextlib.asynccontextmanager
async def live(**options: Any) -> Any:
    """A Live on a fresh connection; the connection aborted after."""
    assert use_kept_aesgcm()
    cipher = GCM_CIPHERS[0]
    Kept.made = []
    channels: list[Any] = []

    async def hold(process: asyncssh.SSHServerProcess[bytes]) -> None:
        channels.append(process.channel)
        await asyncio.sleep(60)

    async with (
        bare_server(
            Kept, hold, line_editor=False, encryption_algs=[cipher], rekey_bytes=1 << 60, **options
        ) as port,
        asyncssh.connect(
            "127.0.0.1", port, known_hosts=None, username="u", encryption_algs=[cipher]
        ) as client,
    ):
        await client.create_session(asyncssh.SSHClientSession, "hold", encoding=None)
        for _ in range(500):
            if channels:
                break
            await asyncio.sleep(0.01)
        conn = Kept.made[0]
        transport, conn._transport = conn._transport, Sink()
        try:
            yield Live(conn, channels[0])
        finally:
            conn._transport = transport
            client.abort()


def mixed(box: Live) -> tuple[bytes, bytes]:
    """A session's traffic with the packets asyncssh keeps (debug messages) between those opened in
    place; the stream and the channel data it carries."""
    debug = Byte(MSG_DEBUG) + Byte(0) + String(b"note") + String(b"")
    stream = box.stream(
        box.data(b"A" * 20),
        debug,
        box.data(b"B" * 5),
        Byte(MSG_IGNORE) + String(b"zz"),
        Byte(MSG_CHANNEL_WINDOW_ADJUST) + UInt32(box.chan._recv_chan) + UInt32(7),
        box.data(b"C" * 40),
        debug,
        box.data(b"D" * 3),
    )
    return stream, b"A" * 20 + b"B" * 5 + b"C" * 40 + b"D" * 3


@pytest.mark.asyncio
async def test_every_cut_of_a_mixed_stream_reads_as_asyncssh_reads_it(table: dict[bytes, Any]) -> None:
    """Every single cut of the stream, 300 pairs and 300 sets of 3 to 30 cuts: the fast path leaves
    what asyncssh leaves: the same data, sequence numbers, window, nonce counter and buffer, whether
    asyncssh or the fast path held the cut packet; and each fast read re-arms the keepalive timer."""
    async with live(keepalive_interval=60) as box:
        stream, data = mixed(box)
        whole = box.read(False, stream)
        assert whole[:3] == (data, 8, 7) and whole[4:] == (b"", True), whole
        rng = random.Random(3)
        n = len(stream)
        cuts: list[tuple[int, ...]] = [(i,) for i in range(1, n)]
        cuts += [tuple(sorted(rng.sample(range(1, n), 2))) for _ in range(300)]
        cuts += [tuple(sorted(rng.sample(range(1, n), rng.randint(3, 30)))) for _ in range(300)]
        differ = [
            c for c in cuts if box.read(True, stream, c) != whole or box.read(False, stream, c) != whole
        ]
        assert not differ, differ[:5]
        timer = box.conn._keepalive_timer
        box.read(True, box.stream(box.data(b"x")))  # nothing in it for asyncssh, which would re-arm it too
        assert box.conn._keepalive_timer is not timer and box.conn._keepalive_timer is not None


REFUSALS = {
    "a forged tag": lambda box: bytes(_flip(box.stream(box.data(b"a"), box.data(b"b")))),
    "an unknown channel": lambda box: box.stream(box.data(b"a"), box.data(b"x", chan=999)),
    "junk after a window adjust": lambda box: box.stream(
        Byte(MSG_CHANNEL_WINDOW_ADJUST) + UInt32(box.chan._recv_chan) + UInt32(5) + b"z"
    ),
    # 10 bytes: the padding length, the type, an empty string, 4 bytes of padding; sealed as such
    "a packet shorter than a block": lambda box: box.stream(
        box.data(b"before"), Byte(MSG_IGNORE) + String(b""), box.data(b"after"), padlen=4
    ),
    "a length over the limit": lambda box: box.stream(box.data(b"a"), length=1 << 20),
    # asyncssh takes this one (RFC 4253 asks for 4 bytes at least): so does the fast path, by handing it over
    "padding shorter than 4 bytes": lambda box: box.stream(box.data(b"a" * 8), padlen=3),
}


def _flip(stream: bytes) -> bytearray:
    out = bytearray(stream)
    out[-1] ^= 1
    return out


@pytest.mark.asyncio
@pytest.mark.parametrize("case", sorted(REFUSALS))
async def test_what_asyncssh_refuses_the_fast_path_refuses_alike(case: str, table: dict[bytes, Any]) -> None:
    """Each packet asyncssh refuses, in one read and in a read cut in two: the same data delivered
    before it, the same disconnect sent and the same error closing the connection, on both paths."""
    for halves in (False, True):
        ends = []
        for fast in (False, True):
            async with live() as box:
                stream = REFUSALS[case](box)
                delivered = box.read(fast, stream, (len(stream) // 2,) if halves else ())[0]
                ends.append((delivered, box.disconnects, [repr(e) for e in box.closed]))
        assert ends[0] == ends[1], (halves, ends)
        if case == "padding shorter than 4 bytes":
            assert ends[1] == (b"a" * 8, [], []), ends
        else:
            assert ends[1][2], ends  # the connection was closed


@pytest.mark.asyncio
async def test_the_packet_log_reads_as_asyncssh_s(
    table: dict[bytes, Any], caplog: pytest.LogCaptureFixture
) -> None:
    """The same lines, packet ids included, for the mixed stream read by either path."""
    logs = []
    asyncssh.set_debug_level(3)
    try:
        for fast in (False, True):
            async with live() as box:
                stream, _ = mixed(box)
                caplog.clear()
                with caplog.at_level(logging.DEBUG, logger="asyncssh"):
                    box.read(fast, stream)
                lines = [r.getMessage() for r in caplog.records]
                # the line without its connection's number, which differs: "[conn=N, chan=0, pktid=8] ..."
                logs.append([line.split(", ", 1)[1] for line in lines if "Received MSG_" in line])
    finally:
        asyncssh.set_debug_level(1)
    assert len(logs[0]) == 8 and logs[0] == logs[1], logs


@pytest.mark.asyncio
async def test_after_the_connection_closes_mid_read_no_session_gets_more(table: dict[bytes, Any]) -> None:
    """A session that closes the connection on its first data: the fast path hands it nothing more of
    that read (asyncssh would go on handing the closing channels the rest)."""
    async with live() as box:
        taken = box.session.data_received

        def closing(data: bytes, datatype: Any) -> None:
            taken(data, datatype)
            box.conn._force_close(None)

        box.session.data_received = closing  # type: ignore[method-assign]
        data = box.read(True, box.stream(box.data(b"first"), box.data(b"second"), box.data(b"third")))[0]
    assert data == b"first" and box.closed == [None], (data, box.closed)


@pytest.mark.asyncio
async def test_data_past_the_window_and_a_failing_session_end_as_with_asyncssh(
    table: dict[bytes, Any],
) -> None:
    ends = []
    for fast in (False, True):
        async with live() as box:
            stream = box.stream(box.data(b"toolong"))
            box.read(fast, stream)
            box.chan._recv_window = 3  # after read() opened it wide
            box.conn._recv_encryption = KeptGCMEncryption(box.key, box.iv)
            (box.fast if fast else box.own)(stream)
            window = (box.disconnects, [repr(e) for e in box.closed])
        async with live() as box:
            box.session.fail = True
            box.read(fast, box.stream(box.data(b"x")))
            failed = (box.disconnects, [type(e).__name__ for e in box.closed])
        ends.append((window, failed))
    assert ends[0] == ends[1], ends
    window, failed = ends[1]
    assert window[0] and "Window exceeded" in window[0][0][1], window
    assert failed == ([], ["RuntimeError"]), failed  # asyncssh's internal error: no disconnect message


@pytest.mark.asyncio
async def test_a_handler_that_goes_on_in_a_task_holds_the_rest_back_as_asyncssh_does(
    table: dict[bytes, Any],
) -> None:
    """A channel handler returning an awaitable (asyncssh runs it in a task and reads nothing more
    until it is done), at every cut: the same data, sequence numbers and nonces as asyncssh's."""
    async with live() as box:
        chan = box.chan
        handle = type(chan).process_packet.__get__(chan)

        def later(pkttype: int, seq: int, packet: Any) -> Any:
            if pkttype == MSG_CHANNEL_DATA and packet.get_remaining_payload()[4:5] == b"A":

                async def task() -> None:
                    await asyncio.sleep(0)
                    handle(pkttype, seq, packet)

                return task()
            return handle(pkttype, seq, packet)

        chan.process_packet = later
        stream = box.stream(
            box.data(b"A" * 20), box.data(b"B" * 5), Byte(MSG_IGNORE) + String(b""), box.data(b"C")
        )

        async def read(fast: bool, cuts: tuple[int, ...]) -> tuple[Any, ...]:
            conn = box.conn
            seq = conn._recv_seq
            box.read(fast, stream[: cuts[0]] if cuts else stream)  # from the key's first nonce
            if cuts:
                (box.fast if fast else box.own)(stream[cuts[0] :])
            for _ in range(10):  # the handler's task, and what it lets go on
                await asyncio.sleep(0)
            return (
                b"".join(box.session.data),
                conn._recv_seq - seq,
                conn._recv_encryption._invocation,
                conn._inpbuf,
            )

        for cut in [(), *((i,) for i in range(1, len(stream)))]:
            theirs, ours = await read(False, cut), await read(True, cut)
            assert theirs == ours and ours[0] == b"A" * 20 + b"B" * 5 + b"C", (cut, theirs, ours)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    "options",
    [{"encryption_algs": ["chacha20-poly1305@openssh.com"]}, {"compression_algs": ["zlib@openssh.com"]}],
    ids=["chacha20-poly1305", "zlib after auth"],
)
async def test_other_ciphers_and_compression_are_left_to_asyncssh(
    options: dict[str, Any], table: dict[bytes, Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert use_kept_aesgcm()
    seen = Opened(monkeypatch)
    lost: list[Exception | None] = []
    cipher = options.get("encryption_algs", GCM_CIPHERS)[0]
    extra = {k: v for k, v in options.items() if k != "encryption_algs"}
    await uploaded(cipher, lambda: Opening(lost), check_classes=cipher in GCM_CIPHERS, **extra)
    assert not seen.opened, len(seen.opened)


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
