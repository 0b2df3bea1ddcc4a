"""No SSH_MSG_IGNORE before every packet where the cipher is an AEAD one.

asyncssh sends an empty SSH_MSG_IGNORE before every packet after the key exchange, whatever the
cipher. It is the countermeasure against the chosen-plaintext attack on SSH's CBC mode, where each
packet's IV is the previous packet's last cipher block (RFC 4251 section 9.3.1). AES-GCM and
ChaCha20-Poly1305 take a fresh nonce per packet and have no such weakness, and OpenSSH sends no
such packets with them. For bulk data each one costs a second encryption, a random padding and a
packet's Python work per 32 KiB: about a tenth of the gateway's CPU relaying a stream (bench/README.md).
``drop_aead_ignores`` makes a connection skip them while its sending cipher is AES-GCM or
ChaCha20-Poly1305, and keeps them under any other cipher an operator allows.
"""

from __future__ import annotations

import logging
from typing import Any

from asyncssh.constants import MSG_IGNORE
from asyncssh.encryption import ChachaEncryption, GCMEncryption

__all__ = ["drop_aead_ignores"]

log = logging.getLogger(__name__)

_AEAD = (GCMEncryption, ChachaEncryption)
_EMPTY = b"\0\0\0\0"  # String(b""): the payload of the ignore asyncssh inserts


def drop_aead_ignores(conn: Any) -> bool:
    """Make ``conn`` (an asyncssh connection) skip the empty SSH_MSG_IGNORE it puts before each packet
    while it encrypts with an AEAD cipher. False (and nothing changed) where the connection lacks
    what this relies on, as after an asyncssh change of its internals."""
    send_packet = getattr(conn, "send_packet", None)
    if send_packet is None or not hasattr(conn, "_send_encryption"):
        log.debug("SSH ignore packets kept: the connection has no send_packet to wrap (%r)", type(conn))
        return False
    if getattr(send_packet, "drops_aead_ignores", False):
        return True

    def send(pkttype: int, *args: bytes, handler: Any = None) -> None:
        if pkttype == MSG_IGNORE and args == (_EMPTY,) and isinstance(conn._send_encryption, _AEAD):
            return
        send_packet(pkttype, *args, handler=handler)

    send.drops_aead_ignores = True  # type: ignore[attr-defined]
    conn.send_packet = send
    return True
