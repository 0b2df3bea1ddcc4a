"""Listening TCP sockets that splice each accepted connection to a target picked per connection.

The listeners and their clients are on opposite sides of a site link (:mod:`simcluster.link`):
while it hangs, new connections hang in their SYNs and open ones carry nothing either way.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
import struct
from collections.abc import Callable, Hashable
from contextlib import suppress
from dataclasses import dataclass, field
from functools import partial
from typing import Generic, TypeVar

from .link import Link, Plug, Valve

__all__ = ["CONNECT_TIMEOUT", "Addr", "TcpForwarder", "bind_error"]

log = logging.getLogger(__name__)

CONNECT_TIMEOUT = 5.0  # seconds to reach a target before the client's connection is reset
_BACKLOG = 128
_CHUNK = 64 * 1024
_PAUSE = 1.0  # seconds a listener stops accepting when the process runs out of file descriptors
_OUT_OF_RESOURCES = {errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM}

Addr = tuple[str, int]
K = TypeVar("K", bound=Hashable)


def bind_error(addr: Addr) -> OSError | None:
    """Why a listener could not bind ``addr`` now; None if it could."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(addr)
        except OSError as exc:
            return exc
    return None


def _reset(sock: socket.socket) -> None:
    """Close with a RST, so the client sees a reset rather than an empty answer."""
    with suppress(OSError):
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


@dataclass(eq=False)
class _Listener(Generic[K]):
    sock: socket.socket
    key: K
    plug: Plug
    conns: set[asyncio.Task[None]] = field(default_factory=set)
    accepting: bool = False
    resume: asyncio.TimerHandle | None = None


class TcpForwarder(Generic[K]):
    """Owns listening sockets, each serving a key that ``pick(key, client_ip)`` turns into a target.

    A connection whose key picks no target, or whose target does not answer within
    ``connect_timeout``, is reset. Closing a listener (or ``stop``) breaks its open connections.
    Opening and closing are synchronous, so a closed address refuses connections at once. While
    ``link`` hangs, the listeners are plugged and what the connections carry is held.
    """

    def __init__(
        self,
        pick: Callable[[K, str], Addr | None],
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        link: Link | None = None,
    ) -> None:
        self.pick = pick
        self.connect_timeout = connect_timeout
        self.link = link or Link()
        self._listeners: dict[Addr, _Listener[K]] = {}
        self._tasks: dict[asyncio.Task[None], _Listener[K]] = {}  # connections, with their listener
        self.link.subscribe(self._on_link)

    def serving(self) -> dict[Addr, K]:
        """The addresses listened on, with their keys."""
        return {addr: listener.key for addr, listener in self._listeners.items()}

    def open(self, addr: Addr, key: K) -> OSError | None:
        """Listen on ``addr`` for ``key`` (replacing what it served); the error if it cannot."""
        if addr in self._listeners:
            self.close(addr)
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.setblocking(False)
            sock.bind(addr)
            sock.listen(_BACKLOG)
        except OSError as exc:
            sock.close()
            return exc
        listener = _Listener(sock, key, Plug(sock, _BACKLOG))
        self._listeners[addr] = listener
        if self.link.hung:
            listener.plug.insert()
        else:
            self._start_accepting(listener)
        log.info("%s: serving %s:%d", key, *addr)
        return None

    def close(self, addr: Addr) -> None:
        """Stop listening on ``addr`` and break its connections."""
        listener = self._listeners.pop(addr, None)
        if listener is None:
            return
        self._stop_accepting(listener)
        listener.plug.remove()
        listener.sock.close()
        for task in listener.conns:
            task.cancel()
        log.info("%s: no longer serving %s:%d", listener.key, *addr)

    async def stop(self) -> None:
        """Close every listener and wait for their connections to end."""
        self.link.unsubscribe(self._on_link)
        for addr in list(self._listeners):
            self.close(addr)
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    def _on_link(self, hung: bool) -> None:
        for listener in self._listeners.values():
            if hung:
                self._stop_accepting(listener)
                self._accept(listener)  # what the kernel accepted before the link hung is served
                listener.plug.insert()
            else:
                listener.plug.remove()
                self._start_accepting(listener)

    def _start_accepting(self, listener: _Listener[K]) -> None:
        if not listener.accepting:
            asyncio.get_running_loop().add_reader(listener.sock.fileno(), self._accept, listener)
            listener.accepting = True

    def _stop_accepting(self, listener: _Listener[K]) -> None:
        if listener.resume is not None:
            listener.resume.cancel()
            listener.resume = None
        if listener.accepting:
            asyncio.get_running_loop().remove_reader(listener.sock.fileno())
            listener.accepting = False

    def _accept(self, listener: _Listener[K]) -> None:
        loop = asyncio.get_running_loop()
        for _ in range(_BACKLOG):
            try:
                conn, peer = listener.sock.accept()
            except (BlockingIOError, InterruptedError):
                return
            except OSError as exc:
                if exc.errno not in _OUT_OF_RESOURCES:
                    continue  # e.g. the client gave up before we accepted
                log.warning("%s: cannot accept (%s); pausing for %.0fs", listener.key, exc, _PAUSE)
                self._stop_accepting(listener)
                listener.resume = loop.call_later(_PAUSE, self._resume, listener)
                return
            if listener.plug.is_plug(peer[:2]):
                conn.close()
                continue
            conn.setblocking(False)
            task = loop.create_task(self._serve(listener.key, conn, str(peer[0])))
            listener.conns.add(task)
            self._tasks[task] = listener
            task.add_done_callback(self._done)

    def _resume(self, listener: _Listener[K]) -> None:
        listener.resume = None
        if not self.link.hung:
            self._start_accepting(listener)

    def _done(self, task: asyncio.Task[None]) -> None:
        listener = self._tasks.pop(task, None)
        if listener is not None:
            listener.conns.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("forwarded connection failed", exc_info=task.exception())

    async def _serve(self, key: K, conn: socket.socket, client_ip: str) -> None:
        try:
            target = self.pick(key, client_ip)
        except Exception:
            log.exception("%s: choosing a target failed", key)
            target = None
        if target is None:
            log.debug("%s: no target; resetting a connection from %s", key, client_ip)
            _reset(conn)
            return
        try:
            up_reader, up_writer = await asyncio.wait_for(
                asyncio.open_connection(*target), self.connect_timeout
            )
        except (OSError, TimeoutError) as exc:
            why = str(exc) or "timed out"
            log.info("%s: cannot reach %s:%d (%s); resetting the connection", key, *target, why)
            _reset(conn)
            return
        except BaseException:
            _reset(conn)
            raise
        try:
            reader, writer = await asyncio.open_connection(sock=conn)
        except BaseException:
            up_writer.transport.abort()
            _reset(conn)
            raise
        await _splice(reader, writer, up_reader, up_writer, self.link)


async def _splice(
    a_reader: asyncio.StreamReader,
    a_writer: asyncio.StreamWriter,
    b_reader: asyncio.StreamReader,
    b_writer: asyncio.StreamWriter,
    link: Link,
) -> None:
    """Copy both ways until both sides have closed; a reset on one side aborts the other.

    ``a`` is across ``link`` from ``b``: while it hangs, what either side sends (data, the end of
    its stream, a reset) is held, and the connection ends only once both ends have gone through.
    """
    loop = asyncio.get_running_loop()
    ends = (loop.create_future(), loop.create_future())
    valves: list[Valve] = []

    def abort() -> None:
        a_writer.transport.abort()
        b_writer.transport.abort()
        for end in ends:
            if not end.done():
                end.set_result(None)

    try:
        async with asyncio.TaskGroup() as group:
            group.create_task(_pipe(a_reader, b_writer, link, valves, ends[0], abort))
            group.create_task(_pipe(b_reader, a_writer, link, valves, ends[1], abort))
        await asyncio.gather(*ends)
    except BaseException:
        a_writer.transport.abort()
        b_writer.transport.abort()
        raise
    finally:
        for valve in valves:
            valve.close()
    a_writer.close()
    b_writer.close()


async def _pipe(
    src: asyncio.StreamReader,
    dst: asyncio.StreamWriter,
    link: Link,
    valves: list[Valve],
    end: asyncio.Future[None],
    abort: Callable[[], None],
) -> None:
    """Copy ``src`` to ``dst`` through a valve of ``link``; pass on the end of the stream as a half-close."""
    room = asyncio.Event()
    room.set()
    valve = link.valve(on_full=lambda full: room.clear() if full else room.set(), on_dead=abort)
    valves.append(valve)
    try:
        while data := await src.read(_CHUNK):
            valve.send(len(data), partial(dst.write, data))
            await room.wait()
            await dst.drain()
        valve.send(0, partial(_half_close, dst, end))
    except OSError:  # a reset: the other direction ends too
        valve.send(0, abort)


def _half_close(dst: asyncio.StreamWriter, end: asyncio.Future[None]) -> None:
    if dst.can_write_eof() and not dst.is_closing():
        dst.write_eof()
    if not end.done():
        end.set_result(None)
