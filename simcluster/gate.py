"""The API server's listening socket, with every connection passed through the cluster's site link.

Each accepted connection speaks TLS, and between its TLS transport and aiohttp's request handler
sits a :class:`GatedConnection`: while the link hangs, what the client sends (requests, the end of
the stream, a reset) and what the server answers (responses, watch events, a close) is held in
:class:`~simcluster.link.Valve` s, so both ends see silence, and the listener is plugged so new
connections hang in their SYNs. Refusing connections (the ``down`` fault) closes the listener.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import socket
import ssl
import struct
from collections.abc import Callable
from functools import partial
from typing import Any

from .link import Link, Plug

__all__ = ["GatedConnection", "GatedListener"]

log = logging.getLogger(__name__)

BACKLOG = 128
_PAUSE = 1.0  # seconds the listener stops accepting when the process runs out of file descriptors
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}


class GatedConnection(asyncio.Protocol):
    """The protocol the TLS transport talks to; it hands data on to ``inner`` through the link."""

    def __init__(self, inner: asyncio.Protocol, link: Link, registry: set[GatedConnection]) -> None:
        self.inner = inner
        self.registry = registry  # the listener's open connections: this one while it is open
        self.real: asyncio.Transport | None = None
        self.transport: GatedTransport | None = None
        self.link = link
        # client to server, and server to client
        self.up = link.valve(on_full=self._up_full, on_dead=self._client_gave_up)
        self.down = link.valve(on_full=self._down_full, on_dead=self._server_gave_up)
        self.lost = False  # the real connection is gone
        self.told_lost = False  # and the handler knows
        self._writing_paused = {"real": False, "held": False}
        self._reading_paused = {"inner": False, "held": False}
        self._inner_writing_paused = False

    # ------------------------------------------------------------------ from the TLS transport

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        if not isinstance(transport, asyncio.Transport):
            raise TypeError("a gated connection needs a stream transport")
        self.real = transport
        self.registry.add(self)
        self.transport = GatedTransport(self)
        self.inner.connection_made(self.transport)

    def data_received(self, data: bytes) -> None:
        if self.up.passing:
            self.inner.data_received(data)
        elif self.told_lost:  # the server gave up on this connection: its host answers with a reset
            if not self.link.hung:
                self.reset()
        else:
            self.up.send(len(data), partial(self._deliver_data, data))

    def eof_received(self) -> bool | None:
        self.up.send(0, self._deliver_eof)
        return None  # TLS closes the connection itself; the handler hears of it through the valve

    def connection_lost(self, exc: Exception | None) -> None:
        self.lost = True
        self.registry.discard(self)
        if self.up.dead:
            self._tell_lost(exc)
        else:
            # one loop turn later, as transports do: a request held with the client's close behind it
            # starts being handled first, as it would when the retransmissions came in
            self.up.send(0, partial(self._tell_lost_soon, exc))

    def pause_writing(self) -> None:
        self._set_writing_paused("real", True)

    def resume_writing(self) -> None:
        self._set_writing_paused("real", False)

    # ------------------------------------------------------------------ held actions

    def _deliver_data(self, data: bytes) -> None:
        if not self.told_lost:
            self.inner.data_received(data)

    def _deliver_eof(self) -> None:
        if not self.told_lost:
            self.inner.eof_received()

    def _tell_lost_soon(self, exc: Exception | None) -> None:
        asyncio.get_running_loop().call_soon(self._tell_lost, exc)

    def _tell_lost(self, exc: Exception | None) -> None:
        if self.told_lost:
            return
        self.told_lost = True
        self.up.close()
        self.down.close()
        self.inner.connection_lost(exc)

    def write_now(self, data: bytes | bytearray | memoryview) -> None:
        if self.real is not None and not self.lost:
            self.real.write(data)

    def close_now(self) -> None:
        if self.real is not None and not self.lost:
            self.real.close()

    def abort(self) -> None:
        """Close the connection now, link or not (the cluster goes down or stops)."""
        if self.real is not None and not self.lost:
            self.real.abort()

    def reset(self) -> None:
        """Close the connection with a RST, as a host does for a connection it no longer has."""
        if self.real is None or self.lost:
            return
        sock = self.real.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.real.abort()

    def _server_gave_up(self) -> None:
        """The server's kernel stopped retransmitting: the handler hears ETIMEDOUT, the client nothing
        until it sends again after the link is back."""
        self._tell_lost(TimeoutError("the connection timed out while the site link was hung"))

    def _client_gave_up(self) -> None:
        """The client's kernel stopped retransmitting. Its socket would fail with ETIMEDOUT; a reset is
        the nearest that can be done from here, and the handler hears of it at once too."""
        self.reset()
        self._tell_lost(ConnectionResetError("the client gave up while the site link was hung"))

    # ------------------------------------------------------------------ flow control

    def _up_full(self, full: bool) -> None:
        self.set_reading_paused("held", full)

    def _down_full(self, full: bool) -> None:
        self._set_writing_paused("held", full)

    def set_reading_paused(self, why: str, paused: bool) -> None:
        """The real transport reads while neither the handler nor a full valve holds it back."""
        before = any(self._reading_paused.values())
        self._reading_paused[why] = paused
        after = any(self._reading_paused.values())
        if before == after or self.real is None or self.lost:
            return
        if after:
            self.real.pause_reading()
        else:
            self.real.resume_reading()

    def _set_writing_paused(self, why: str, paused: bool) -> None:
        """The handler writes while neither the real transport nor a full valve holds it back."""
        self._writing_paused[why] = paused
        want = any(self._writing_paused.values())
        if want == self._inner_writing_paused or self.told_lost:
            return
        self._inner_writing_paused = want
        if want:
            self.inner.pause_writing()
        else:
            self.inner.resume_writing()


class GatedTransport(asyncio.Transport):
    """What the handler writes to: writes and closes go through the link, the rest to the real one."""

    def __init__(self, gate: GatedConnection) -> None:
        super().__init__()
        self._gate = gate
        self._closing = False

    def write(self, data: bytes | bytearray | memoryview) -> None:
        if not data or self._closing:
            return
        if self._gate.down.passing:
            self._gate.write_now(data)
        else:  # a copy: the caller may reuse its buffer
            chunk = bytes(data)
            self._gate.down.send(len(chunk), partial(self._gate.write_now, chunk))

    def writelines(self, list_of_data: Any) -> None:
        self.write(b"".join(list_of_data))

    def can_write_eof(self) -> bool:
        return False  # TLS has no half-close

    def close(self) -> None:
        if not self._closing:
            self._closing = True
            self._gate.down.send(0, self._gate.close_now)

    def abort(self) -> None:
        self._closing = True
        self._gate.abort()

    def is_closing(self) -> bool:
        # only what the handler has been told: a client that went away during a hang is still there
        return self._closing or self._gate.told_lost

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        real = self._gate.real
        return default if real is None else real.get_extra_info(name, default)

    def pause_reading(self) -> None:
        self._gate.set_reading_paused("inner", True)

    def resume_reading(self) -> None:
        self._gate.set_reading_paused("inner", False)

    def is_reading(self) -> bool:
        return not self._gate._reading_paused["inner"]

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        if self._gate.real is not None:
            self._gate.real.set_write_buffer_limits(high, low)

    def get_write_buffer_size(self) -> int:
        real = self._gate.real
        held = self._gate.down.held_bytes
        return held + (real.get_write_buffer_size() if real is not None and not self._gate.lost else 0)

    def get_write_buffer_limits(self) -> tuple[int, int]:
        real = self._gate.real
        return real.get_write_buffer_limits() if real is not None else (0, 0)

    def set_protocol(self, protocol: asyncio.BaseProtocol) -> None:
        if not isinstance(protocol, asyncio.Protocol):
            raise TypeError("a gated connection hands data to a streaming protocol")
        self._gate.inner = protocol

    def get_protocol(self) -> asyncio.BaseProtocol:
        return self._gate.inner


class GatedListener:
    """Accepts TLS connections for ``factory``'s protocols, each gated by ``link``."""

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        ssl_context: ssl.SSLContext,
        link: Link,
    ) -> None:
        self.factory = factory
        self.ssl_context = ssl_context
        self.link = link
        self.connections: set[GatedConnection] = set()
        self._sock: socket.socket | None = None
        self._plug: Plug | None = None
        self._accepting = False
        self._resume: asyncio.TimerHandle | None = None
        self._handshakes: set[asyncio.Task[None]] = set()

    @property
    def listening(self) -> bool:
        return self._sock is not None

    def open(self, host: str, port: int) -> int:
        """Listen on ``host:port`` (port 0: any); returns the port."""
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setblocking(False)
            sock.bind((host, port))
            sock.listen(BACKLOG)
        except OSError:
            sock.close()
            raise
        self._sock = sock
        self._plug = Plug(sock, BACKLOG)
        self.link.subscribe(self._on_link)
        if not self.link.hung:
            self._start_accepting()
        return int(sock.getsockname()[1])

    def close(self) -> None:
        """Stop listening: new connections are refused. Open ones stay (see :meth:`abort_all`)."""
        if self._sock is None:
            return
        self.link.unsubscribe(self._on_link)
        self._stop_accepting()
        if self._plug is not None:
            self._plug.remove()
        self._sock.close()
        self._sock = self._plug = None

    def abort_all(self) -> None:
        """Reset every open connection."""
        for conn in list(self.connections):
            conn.abort()
        for task in list(self._handshakes):
            task.cancel()

    async def stop(self) -> None:
        self.close()
        self.abort_all()
        await asyncio.gather(*self._handshakes, return_exceptions=True)

    # ------------------------------------------------------------------ the link

    def _on_link(self, hung: bool) -> None:
        if self._sock is None or self._plug is None:
            return
        if hung:
            self._stop_accepting()
            self._accept()  # what the kernel accepted before the link hung is ours
            self._plug.insert()
        else:
            self._plug.remove()
            self._start_accepting()

    # ------------------------------------------------------------------ accepting

    def _start_accepting(self) -> None:
        if self._sock is not None and not self._accepting:
            asyncio.get_running_loop().add_reader(self._sock.fileno(), self._accept)
            self._accepting = True

    def _stop_accepting(self) -> None:
        if self._resume is not None:
            self._resume.cancel()
            self._resume = None
        if self._accepting and self._sock is not None:
            asyncio.get_running_loop().remove_reader(self._sock.fileno())
        self._accepting = False

    def _accept(self) -> None:
        if self._sock is None or self._plug is None:
            return
        loop = asyncio.get_running_loop()
        for _ in range(BACKLOG):
            try:
                conn, peer = self._sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    continue  # the client gave up before we accepted
                log.warning("API listener: cannot accept (%s); pausing for %.0fs", exc, _PAUSE)
                self._stop_accepting()
                self._resume = loop.call_later(_PAUSE, self._start_accepting)
                return
            if self._plug.is_plug(peer[:2]):
                conn.close()
                continue
            conn.setblocking(False)
            task = loop.create_task(self._handshake(conn))
            self._handshakes.add(task)
            task.add_done_callback(self._handshakes.discard)

    def _protocol(self) -> GatedConnection:
        return GatedConnection(self.factory(), self.link, self.connections)

    async def _handshake(self, conn: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        try:
            await loop.connect_accepted_socket(self._protocol, conn, ssl=self.ssl_context)
        except (OSError, ssl.SSLError, TimeoutError) as exc:
            log.debug("API listener: a TLS handshake failed: %s", exc)
            with contextlib.suppress(OSError):
                conn.close()
