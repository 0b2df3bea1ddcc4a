"""A site link that can hang: what crosses it while hung is held, then delivered when TCP would resend it.

A blackholed link drops packets: nothing arrives, nothing is refused or reset, and the senders'
kernels retransmit on a timer that doubles after each try. When the link returns, a connection that
had data in flight carries on at its sender's next retransmission, which may be many seconds after
the link is back; one that sent nothing in the meantime carries on at once. A :class:`Link` gives
each direction of each connection a :class:`Valve` that does the same in user space, and a
:class:`Plug` makes the kernel drop new connections' SYNs, so connecting hangs too.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass

__all__ = ["LINUX", "Backoff", "Link", "Plug", "Valve"]

HOLD_LIMIT = 4 * 1024 * 1024  # bytes a valve holds before it stops its sender (a full TCP window)
_PLUGS = 2  # connections that fill a listener's accept queue of length 1


@dataclass(frozen=True)
class Backoff:
    """When a TCP sender retransmits unacknowledged data, and when it gives up on the connection."""

    rto_min: float = 0.2  # seconds before the first retransmission on a short path (TCP_RTO_MIN)
    rto_max: float = 120.0  # seconds: the timeout stops doubling here (TCP_RTO_MAX)
    retries: int = 15  # retransmissions before the connection is dropped (net.ipv4.tcp_retries2)

    def retransmissions(self) -> Iterator[float]:
        """Seconds after the first send at which each retransmission goes out."""
        at, rto = 0.0, self.rto_min
        for _ in range(self.retries):
            at += rto
            yield at
            rto = min(2 * rto, self.rto_max)

    @property
    def give_up(self) -> float:
        """Seconds after the first send at which the sender drops the connection (924.6 on Linux)."""
        at, rto = 0.0, self.rto_min
        for _ in range(self.retries + 1):
            at += rto
            rto = min(2 * rto, self.rto_max)
        return at

    def delivery(self, elapsed: float) -> float | None:
        """Seconds after the first send at which data held that long gets through at last.

        That is the first retransmission at or after ``elapsed``; None when the sender gives up first.
        """
        return next((at for at in self.retransmissions() if at >= elapsed), None)


LINUX = Backoff()


class Link:
    """One part of a cluster as this machine reaches it: open, or hung so that nothing crosses."""

    def __init__(self, backoff: Backoff = LINUX) -> None:
        self.backoff = backoff
        self.hung = False
        self._holding: set[Valve] = set()
        self._listeners: list[Callable[[bool], None]] = []

    def subscribe(self, listener: Callable[[bool], None]) -> None:
        """Call ``listener(hung)`` on every change (listening sockets plug and unplug themselves)."""
        self._listeners.append(listener)
        if self.hung:
            listener(True)

    def unsubscribe(self, listener: Callable[[bool], None]) -> None:
        with contextlib.suppress(ValueError):
            self._listeners.remove(listener)

    def valve(
        self,
        on_full: Callable[[bool], None] | None = None,
        on_dead: Callable[[], None] | None = None,
    ) -> Valve:
        """A new direction of a connection across this link."""
        return Valve(self, on_full, on_dead)

    @property
    def held(self) -> int:
        """Directions of connections whose data is still held: sent while the link hung and not yet
        delivered (after a restore, they go through at their senders' next retransmission)."""
        return len(self._holding)

    def hang(self) -> None:
        if self.hung:
            return
        self.hung = True
        for listener in list(self._listeners):
            listener(True)

    def restore(self) -> None:
        """The link is back: new connections at once, held data at its sender's next retransmission."""
        if not self.hung:
            return
        self.hung = False
        for listener in list(self._listeners):
            listener(False)
        for valve in list(self._holding):
            valve.release()

    def shutdown(self) -> None:
        """The cluster stops: open the link and deliver everything held now, so every close goes out."""
        self.restore()
        for valve in list(self._holding):
            valve.flush()


class Valve:
    """One direction of one connection: passes what is sent, or holds it while the link hangs.

    What is sent is an action (write these bytes, pass on this end of stream) with its size in
    bytes. Held actions run in order at the sender's next retransmission after the link returns;
    new ones queue behind them. ``on_full(True)`` asks the owner to stop the sender while more than
    :data:`HOLD_LIMIT` bytes are held, ``on_full(False)`` lets it go on; ``on_dead()`` says that the
    sender gave up (``Backoff.give_up``), after which the valve drops everything.
    """

    def __init__(
        self,
        link: Link,
        on_full: Callable[[bool], None] | None = None,
        on_dead: Callable[[], None] | None = None,
    ) -> None:
        self.link = link
        self.on_full = on_full
        self.on_dead = on_dead
        self.dead = False
        self.full = False
        self.held_bytes = 0
        self._held: deque[Callable[[], None]] = deque()
        self._since = 0.0  # loop time of the oldest held action
        self._flush_timer: asyncio.TimerHandle | None = None
        self._give_up_timer: asyncio.TimerHandle | None = None

    @property
    def holding(self) -> bool:
        return bool(self._held)

    @property
    def passing(self) -> bool:
        """Whether what is sent now goes through at once (callers may skip building an action)."""
        return not self._held and not self.link.hung and not self.dead

    def send(self, size: int, action: Callable[[], None]) -> None:
        if self.dead:
            return
        if not self._held and not self.link.hung:
            action()
            return
        if not self._held:
            loop = asyncio.get_running_loop()
            self._since = loop.time()
            self.link._holding.add(self)
            self._give_up_timer = loop.call_at(self._since + self.link.backoff.give_up, self._give_up)
        self._held.append(action)
        self.held_bytes += size
        if not self.full and self.held_bytes > HOLD_LIMIT:
            self._set_full(True)

    def release(self) -> None:
        """The link is back: deliver at the sender's next retransmission."""
        if not self._held or self.dead:
            return
        loop = asyncio.get_running_loop()
        at = self.link.backoff.delivery(loop.time() - self._since)
        if at is None:
            self._give_up()
            return
        if self._flush_timer is not None:
            self._flush_timer.cancel()
        self._flush_timer = loop.call_at(self._since + at, self.flush)

    def flush(self) -> None:
        """Run what is held, unless the link hung again before the retransmission."""
        self._flush_timer = None
        if self.link.hung:
            return  # the next restore finds the next retransmission, counted from the same first send
        self._cancel_timers()
        self.link._holding.discard(self)
        while self._held and not self.dead:
            self._held.popleft()()
        self.held_bytes = 0
        if self.full:
            self._set_full(False)

    def close(self) -> None:
        """The connection is gone: drop what is held."""
        self._cancel_timers()
        self.link._holding.discard(self)
        self._held.clear()
        self.held_bytes = 0
        self.dead = True

    def _give_up(self) -> None:
        self.close()
        if self.on_dead is not None:
            self.on_dead()

    def _set_full(self, full: bool) -> None:
        self.full = full
        if self.on_full is not None:
            self.on_full(full)

    def _cancel_timers(self) -> None:
        for timer in (self._flush_timer, self._give_up_timer):
            if timer is not None:
                timer.cancel()
        self._flush_timer = self._give_up_timer = None


class Plug:
    """Fills a listening socket's accept queue, so the kernel drops new SYNs as a dead link would.

    The listener's backlog shrinks to one connection and two connections of our own fill it;
    Linux then drops every further SYN silently, and clients keep retransmitting them until they
    time out. The owner stops accepting first, and accepts what was queued before plugging.
    Unplugging restores the backlog; the owner drops the plug's two connections when it accepts
    them (:meth:`is_plug`).
    """

    def __init__(self, sock: socket.socket, backlog: int) -> None:
        self.sock = sock
        self.backlog = backlog
        self._plugs: list[socket.socket] = []
        self._peers: set[tuple[str, int]] = set()

    def insert(self) -> None:
        host, port = self.sock.getsockname()[:2]
        if host in ("0.0.0.0", ""):
            host = "127.0.0.1"
        self.sock.listen(_PLUGS - 1)
        for _ in range(_PLUGS):
            plug = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            plug.setblocking(False)
            plug.connect_ex((host, port))  # completes in the kernel at once: the address is local
            self._peers.add(plug.getsockname()[:2])
            self._plugs.append(plug)

    def remove(self) -> None:
        for plug in self._plugs:
            plug.close()
        self._plugs.clear()
        with contextlib.suppress(OSError):  # the listener was closed meanwhile
            self.sock.listen(self.backlog)

    def is_plug(self, peer: tuple[str, int]) -> bool:
        """Whether an accepted connection is one of ours (and forget it)."""
        if peer in self._peers:
            self._peers.discard(peer)
            return True
        return False
