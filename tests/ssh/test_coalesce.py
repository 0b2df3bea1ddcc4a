"""An SSH connection's writes coalesced per turn of the event loop: the same bytes, in order, in fewer
send() calls; close and write_eof send what is gathered, abort drops it; with real asyncssh peers."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncssh
import pytest

from spawner.ssh.coalesce import CoalescingTransport, coalesce_writes

from .peers import Anyone, bare_server


class Recorder(asyncio.Transport):
    """A transport that records its calls (it is an asyncio.Transport, as a socket's is)."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, bytes]] = []
        self.closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.calls.append(("write", bytes(data)))

    def write_eof(self) -> None:
        self.calls.append(("eof", b""))

    def close(self) -> None:
        self.calls.append(("close", b""))
        self.closing = True

    def abort(self) -> None:
        self.calls.append(("abort", b""))
        self.closing = True

    def is_closing(self) -> bool:
        return self.closing

    def get_write_buffer_size(self) -> int:
        return 7

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return {"peername": ("10.0.0.1", 22)}.get(name, default)


async def turn() -> None:
    """Let the loop run the callbacks scheduled so far (the flush is one of them)."""
    await asyncio.sleep(0)


@pytest.mark.asyncio
async def test_one_turn_of_writes_is_one_write_in_order() -> None:
    inner = Recorder()
    t = CoalescingTransport(inner, asyncio.get_running_loop())
    for chunk in (b"ignore", b"data-1", b"data-2"):
        t.write(chunk)
    assert inner.calls == [] and t.get_write_buffer_size() == 7 + 18
    await turn()
    assert inner.calls == [("write", b"ignoredata-1data-2")]
    t.write(b"next")
    await turn()
    await turn()  # nothing gathered: no empty write
    assert inner.calls[1:] == [("write", b"next")]
    t.writelines((b"header", b"sealed"))  # a packet handed over in its two parts
    t.write(b"more")
    assert t.get_write_buffer_size() == 7 + 16
    await turn()
    assert inner.calls[2:] == [("write", b"headersealedmore")]
    # everything else is the wrapped transport's
    assert t.get_extra_info("peername") == ("10.0.0.1", 22) and t.is_closing() is False


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("end", "expected"),
    [
        (CoalescingTransport.close, [("write", b"ab"), ("close", b"")]),
        (CoalescingTransport.write_eof, [("write", b"ab"), ("eof", b"")]),
        (CoalescingTransport.abort, [("abort", b"")]),
    ],
)
async def test_close_and_eof_send_what_is_gathered_abort_drops_it(
    end: Callable[[CoalescingTransport], None], expected: list[tuple[str, bytes]]
) -> None:
    inner = Recorder()
    t = CoalescingTransport(inner, asyncio.get_running_loop())
    t.write(b"a")
    t.write(b"b")
    end(t)
    await turn()  # the flush already scheduled finds nothing left
    assert inner.calls == expected


@pytest.mark.asyncio
async def test_nothing_is_written_to_a_transport_that_is_closing() -> None:
    inner = Recorder()
    t = CoalescingTransport(inner, asyncio.get_running_loop())
    t.write(b"late")
    inner.closing = True  # the peer went away meanwhile: asyncio would warn on every write
    await turn()
    assert inner.calls == []


@pytest.mark.asyncio
async def test_only_a_transport_is_wrapped_and_only_once() -> None:
    class Conn:
        _transport: Any = None

    conn = Conn()
    assert coalesce_writes(conn) is False and conn._transport is None
    conn._transport = Recorder()
    assert coalesce_writes(conn) is True and isinstance(conn._transport, CoalescingTransport)
    wrapped = conn._transport
    assert coalesce_writes(conn) is True and conn._transport is wrapped


class Counting(Anyone):
    """An asyncssh server that coalesces its writes, as hybridhub's server and gateway do."""

    instances: list[Counting] = []

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        assert coalesce_writes(conn)
        self.transport = conn._transport  # type: ignore[attr-defined]
        Counting.instances.append(self)


async def _stream(process: asyncssh.SSHServerProcess[bytes]) -> None:
    for _ in range(64):  # 64 x 64 KiB, written faster than one packet at a time
        process.stdout.write(b"x" * 65536)
    process.exit(0)


@pytest.mark.asyncio
async def test_a_real_asyncssh_session_gets_every_byte_in_fewer_sends(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    sends: list[int] = []

    Counting.instances = []
    async with (
        bare_server(Counting, _stream) as port,
        asyncssh.connect("127.0.0.1", port, known_hosts=None, username="u") as conn,
    ):
        inner = Counting.instances[0].transport._transport
        sock = inner._sock  # get_extra_info("socket") is a wrapper without send()

        class Sock:  # count the server socket's send() calls (asyncio calls sock.send)
            def __getattr__(self, name: str) -> Any:
                return getattr(sock, name)

            def send(self, data: Any, *args: Any) -> int:
                sends.append(len(data))
                return int(sock.send(data, *args))

        monkeypatch.setattr(inner, "_sock", Sock())
        result = await asyncio.wait_for(conn.run("stream", encoding=None), 30)
    assert result.exit_status == 0
    assert result.stdout == b"x" * (64 * 65536)
    # 4 MiB in 32 KiB packets, each after an SSH_MSG_IGNORE: 256 writes uncoalesced; the window
    # adjustments of the client set the pace, and each turn sends what it gathered in one call
    packets = 64 * 65536 // 32768
    assert 0 < len(sends) < packets, (len(sends), sends[:20])
