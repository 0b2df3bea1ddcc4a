"""send_channel_data: what the peer's window allows goes out without asyncssh's channel buffer, the
rest through it, in order, under any cipher and across a rekey. Real asyncssh peers."""

from __future__ import annotations

import asyncio
import hashlib
import os
from typing import Any

import asyncssh
import pytest
from asyncssh.channel import SSHServerChannel
from asyncssh.constants import MSG_CHANNEL_DATA

from spawner.ssh.channeldata import send_channel_data
from spawner.ssh.gcm import seal_in_one_pass, use_kept_aesgcm
from spawner.ssh.ignores import drop_aead_ignores

from .peers import Anyone, bare_server

GCM = "aes128-gcm@openssh.com"


@pytest.fixture(autouse=True)
def kept(table: dict[bytes, Any]) -> None:
    """AES-GCM as the gateway has it, for this module's tests only."""
    assert use_kept_aesgcm()


class Relaying(Anyone):
    """Sends as the gateway does: AEAD ignores dropped, packets sealed in one pass."""

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        drop_aead_ignores(conn)
        seal_in_one_pass(conn)


def sender(chunks: list[bytes], buffered: list[int]) -> Any:
    """A session that sends ``chunks`` with send_channel_data, counting the bytes that went through
    asyncssh's own write (its buffer) into ``buffered``."""

    async def handle(process: asyncssh.SSHServerProcess[bytes]) -> None:
        chan = process.channel
        write = chan.write

        def counted(data: Any, datatype: Any = None) -> None:
            buffered.append(len(data))
            write(data, datatype)

        chan.write = counted  # type: ignore[method-assign]
        for chunk in chunks:
            send_channel_data(chan, chunk)
            await asyncio.sleep(0)
        await process.stdout.drain()
        process.exit(0)

    return handle


async def received(
    chunks: list[bytes], cipher: str = GCM, line_editor: bool = False, **client: Any
) -> tuple[bytes, list[int]]:
    """What an asyncssh client reads of a session that sends ``chunks``, and the sizes asyncssh's own
    write took."""
    buffered: list[int] = []
    handle = sender(chunks, buffered)
    async with (
        bare_server(Relaying, handle, encryption_algs=[cipher], line_editor=line_editor, **client) as port,
        asyncssh.connect(
            "127.0.0.1", port, known_hosts=None, username="u", encryption_algs=[cipher], **client
        ) as conn,
    ):
        result = await asyncio.wait_for(conn.run("x", encoding=None), 60)
    assert result.exit_status == 0
    return result.stdout, buffered


@pytest.mark.asyncio
async def test_what_the_window_allows_goes_out_without_the_channels_buffer() -> None:
    chunks = [os.urandom(256 * 1024), os.urandom(100_001), os.urandom(1)]
    out, buffered = await received(chunks)  # asyncssh's window: 2 MiB, more than is sent
    assert out == b"".join(chunks)
    assert buffered == []


@pytest.mark.asyncio
async def test_past_the_window_the_rest_waits_in_the_channel_and_the_order_holds() -> None:
    chunks = [os.urandom(n) for n in (300_000, 77, 1 << 20, 5, 65_536)]
    out, buffered = await received(chunks, window=100_000, max_pktsize=16_384)
    assert hashlib.sha256(out).hexdigest() == hashlib.sha256(b"".join(chunks)).hexdigest()
    assert len(out) == sum(map(len, chunks))
    assert buffered, "the window never closed: the test does not test the rest"
    assert sum(buffered) < len(out), "nothing went out without the channel's buffer"


@pytest.mark.asyncio
@pytest.mark.parametrize("cipher", ["chacha20-poly1305@openssh.com", "aes128-ctr"])
async def test_other_ciphers_get_the_same_bytes(cipher: str) -> None:
    chunks = [os.urandom(200_000), os.urandom(3)]
    out, buffered = await received(chunks, cipher=cipher)
    assert out == b"".join(chunks) and buffered == []


@pytest.mark.asyncio
async def test_bytes_sent_across_a_rekey_arrive_whole() -> None:
    """A rekey falling due holds the packets back (asyncssh keeps their views) and sends them after."""
    chunks = [os.urandom(256 * 1024) for _ in range(12)]
    out, _ = await received(chunks, rekey_bytes=1 << 20)
    assert out == b"".join(chunks)


@pytest.mark.asyncio
async def test_a_channel_behind_a_line_editor_gets_its_own_write() -> None:
    """asyncssh's line editor wraps the channel; its state is the channel's, not the wrapper's."""
    chunks = [os.urandom(150_000), os.urandom(9)]
    out, buffered = await received(chunks, line_editor=True, window=100_000)
    assert out == b"".join(chunks) and buffered == [150_000, 9]


class Connection:
    def __init__(self) -> None:
        self.sent: list[tuple[int, bytes, Any]] = []

    def send_packet(self, pkttype: int, *args: Any, handler: Any = None) -> None:
        self.sent.append((pkttype, b"".join(args), handler))


class Channel(SSHServerChannel):  # type: ignore[type-arg]
    """An asyncssh channel's state, set by hand, and a write that records what reaches it."""

    def __init__(self, **state: Any) -> None:  # asyncssh's own __init__ wants a connection and a loop
        self._conn, self._send_buf, self._send_window, self._send_pktsize = Connection(), [], 40, 16
        self._send_state, self._send_chan, self._encoding = "open", 7, None
        self.__dict__.update(state)
        self.written: list[Any] = []

    @property
    def logger(self) -> Any:
        return asyncssh.logging.logger

    def write(self, data: Any, datatype: Any = None) -> None:
        self.written.append(bytes(data))


def test_a_channel_gets_packets_of_its_peers_size_until_the_window_closes() -> None:
    chan = Channel()
    send_channel_data(chan, bytes(range(50)))
    sent = chan._conn.sent
    lengths = [16, 16, 8]
    assert [(t, h) for t, _, h in sent] == [(MSG_CHANNEL_DATA, chan)] * 3
    at = 0
    for (_, payload, _), n in zip(sent, lengths, strict=True):
        assert payload == (7).to_bytes(4, "big") + n.to_bytes(4, "big") + bytes(range(at, at + n))
        at += n
    assert chan._send_window == 0 and chan.written == [bytes(range(40, 50))]


@pytest.mark.parametrize(
    "data, state",
    [
        (bytearray(b"abc"), {}),  # not immutable: a held-back packet's view could change
        (b"abc", {"_send_state": "close_pending"}),  # asyncssh's write says why (BrokenPipeError)
        (b"abc", {"_send_buf": [(bytearray(b"x"), None)]}),  # what waits goes first
        (b"abc", {"_encoding": "utf-8"}),
        (b"abc", {"_send_chan": None}),
        (b"abc", {"_send_window": 0}),
    ],
)
def test_the_rest_goes_to_the_channels_own_write(data: Any, state: dict[str, Any]) -> None:
    chan = Channel(**state)
    send_channel_data(chan, data)
    assert chan.written == [data] and chan._conn.sent == []


def test_an_object_without_a_channels_state_gets_write() -> None:
    written: list[bytes] = []

    class Other:
        def write(self, data: bytes) -> None:
            written.append(data)

    send_channel_data(Other(), b"abc")
    assert written == [b"abc"]
