"""Writes of an SSH connection coalesced per turn of the event loop: fewer send() calls for bulk data.

asyncssh writes every packet to its transport on its own (and, where ``ignores.py`` does not drop
it, an empty SSH_MSG_IGNORE before each), so relaying one 256 KiB read (asyncio's largest) as 32 KiB
packets (OpenSSH's channel maximum) costs 8 to 16 ``send()`` calls. A profile of the gateway
relaying a stream spent 41 % of its samples in those calls. ``coalesce_writes`` puts a transport in
front of the connection's that collects what one turn of the loop writes and hands it on as one
write at the start of the next turn: the bytes and their order are the same, the calls are one.
OpenSSH does the same: its packet layer fills an output buffer and writes it once per turn of its
poll loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

__all__ = ["CoalescingTransport", "coalesce_writes"]

log = logging.getLogger(__name__)


class CoalescingTransport:
    """A transport that gathers the writes of one turn of the event loop and sends them as one.

    ``abort`` drops what is gathered (as the transport's own ``abort`` drops its buffer); ``close`` and
    ``write_eof`` send it first. Everything else is the wrapped transport's."""

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._pending: list[bytes] = []
        self._scheduled = False

    def write(self, data: bytes) -> None:
        self._pending.append(data)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def writelines(self, parts: Iterable[bytes]) -> None:
        """The parts, in order, in the same one write as the rest of this turn's (not joined first)."""
        self._pending.extend(parts)
        if not self._scheduled:
            self._scheduled = True
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        """Hand what is gathered to the transport now (nothing where it is closing)."""
        self._scheduled = False
        if not self._pending:
            return
        data = self._pending[0] if len(self._pending) == 1 else b"".join(self._pending)
        self._pending.clear()
        if not self._transport.is_closing():
            self._transport.write(data)

    def write_eof(self) -> None:
        self.flush()
        self._transport.write_eof()

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def abort(self) -> None:
        self._pending.clear()
        self._transport.abort()

    def get_write_buffer_size(self) -> int:
        return self._transport.get_write_buffer_size() + sum(map(len, self._pending))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


def coalesce_writes(conn: Any) -> bool:
    """Put a ``CoalescingTransport`` in front of an asyncssh connection's transport; call it from the
    server's ``connection_made``, before the version exchange. False (and nothing changed) where the
    connection has no socket transport to wrap, as after an asyncssh change of its internals."""
    transport = getattr(conn, "_transport", None)
    if isinstance(transport, CoalescingTransport):
        return True
    if not isinstance(transport, asyncio.Transport):
        log.debug("SSH writes not coalesced: the connection has no transport to wrap (%r)", type(transport))
        return False
    conn._transport = CoalescingTransport(transport, asyncio.get_running_loop())
    return True
