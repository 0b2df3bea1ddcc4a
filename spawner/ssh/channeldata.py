"""Relayed bytes sent as SSH channel data without asyncssh's copies of them.

The gateway relays each tunnel's bytes from the pod's TCP connection to the client's SSH channel,
and the pod's server a program's output from its pipe or PTY to the session's channel.
asyncssh's ``SSHChannel.write`` copies what it is given four times before the packet layer sees
it: into a ``bytearray`` of its send buffer, a slice per packet, the slice with its length
(``String``) and that behind the recipient's channel number. ``send_channel_data`` sends what the
peer's window allows straight away as SSH_MSG_CHANNEL_DATA packets, each the channel number, the
length and a view of the bytes as they came, to the connection's own ``send_packet`` (which builds
the packet in one join under ``seal_in_one_pass``); it keeps asyncssh's window accounting. Whatever
else, what the window does not allow, data while the channel still holds some, a channel not open
or with an encoding, goes to the channel's own ``write``, so the order and the flow control are
asyncssh's. Bytes of this kind only (immutable: a packet held back during a rekey keeps its view).
"""

from __future__ import annotations

from typing import Any

from asyncssh.channel import SSHChannel
from asyncssh.constants import MSG_CHANNEL_DATA

__all__ = ["send_channel_data"]

# what send_channel_data reads and writes of an asyncssh channel
_STATE = ("_conn", "_send_state", "_send_buf", "_send_window", "_send_pktsize", "_send_chan", "_encoding")


def send_channel_data(chan: Any, data: bytes) -> None:
    """Send ``data`` on ``chan`` (an asyncssh channel) as its ``write(data)`` would, without copying
    what the peer's window lets go now (see the module's docstring)."""
    if (
        type(data) is not bytes
        or not isinstance(chan, SSHChannel)  # not a wrapper (a line editor's): its state is elsewhere
        or not all(hasattr(chan, name) for name in _STATE)
        or chan._send_state != "open"
        or chan._send_buf  # what waits for the window goes first
        or chan._encoding is not None
        or chan._send_chan is None
        or not chan._send_window
    ):
        chan.write(data)
        return
    size = len(data)
    if not size:
        return
    chan.logger.debug2("Sending %d data byte%s", size, "s" if size > 1 else "")
    conn: Any = chan._conn  # its send_packet takes views as well as bytes (it joins them)
    send_packet = conn.send_packet
    recipient = chan._send_chan.to_bytes(4, "big")
    view = memoryview(data)
    at = 0
    while at < size and chan._send_window:
        n = min(chan._send_window, chan._send_pktsize, size - at)
        send_packet(MSG_CHANNEL_DATA, recipient, n.to_bytes(4, "big"), view[at : at + n], handler=chan)
        chan._send_window -= n
        at += n
    if at < size:  # the window is closed: asyncssh's write keeps the rest until the peer adjusts it
        chan.write(view[at:])
