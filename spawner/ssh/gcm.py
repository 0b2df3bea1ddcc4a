"""AES-GCM packets with one cipher context per key, not one per packet.

asyncssh's AES-GCM shim builds a new ``AESGCM`` object for every packet it encrypts or decrypts, and
so a new OpenSSL context, and copies each packet once more than it must around the call. With one
``AESGCM`` kept for the key's life a 32 KiB packet takes about 5.0 µs to encrypt and 6.3 µs to
decrypt, against 6.5 and 8.0 µs (``bench/ssh_gcm.py``): a fifth of the cipher's cost, about 0.05
CPU-seconds per GiB on each hop that encrypts or decrypts. The pod's server and the gateway each
do both for every byte of a session.

``use_kept_aesgcm`` makes asyncssh build ``KeptGCMEncryption`` for ``aes128-gcm@openssh.com`` and
``aes256-gcm@openssh.com`` in this process: the same packets bit for bit (same nonce sequence, same
associated data, the tag apart as asyncssh returns it), so peers see no difference. It changes
asyncssh's table of encryption classes, not its code; where that table is not as expected (an
asyncssh change of its internals) it changes nothing and says so.

``seal_in_one_pass`` goes one step further for the packets of an open session (channel data, window
adjusts: every type after user authentication): asyncssh's ``send_packet`` copies a 32 KiB packet
five times between the channel's payload and the transport (the type byte, the padding length, the
random padding, the header, the tag, each a new ``bytes``) and formats a packet log line whether or
not the packet log is on. Under ``KeptGCMEncryption`` a connection so set builds the packet in one
join, seals it in one call and hands the header and the sealed packet to the transport as they are:
the same packet on the wire, sequence number, rekey count and (where asyncssh's packet log is on) log
line as asyncssh's. Anything else, the key exchange, authentication, a rekey falling due,
compression, another cipher, goes through asyncssh's own ``send_packet``.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from typing import Any

import asyncssh.encryption
from asyncssh.constants import MSG_USERAUTH_LAST
from asyncssh.encryption import GCMEncryption
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["KeptGCMEncryption", "seal_in_one_pass", "use_kept_aesgcm"]

log = logging.getLogger(__name__)

GCM_ALGS = (b"aes128-gcm@openssh.com", b"aes256-gcm@openssh.com")
_TAG = 16
_INVOCATIONS = 1 << 64


class KeptGCMEncryption(GCMEncryption):
    """asyncssh's ``Encryption`` for AES-GCM (RFC 5647 as OpenSSH does it) with one ``AESGCM`` per key.

    The nonce is the key exchange's 12-byte IV: a fixed 4-byte field and an 8-byte invocation
    counter, incremented after every packet, encrypted or not, and wrapping as asyncssh's does. The
    4-byte packet length is the associated data. A subclass of asyncssh's, so what checks for an
    AEAD cipher by class (``ignores.py``) sees one."""

    def __init__(self, key: bytes, iv: bytes) -> None:  # asyncssh's shim object is not made
        if len(iv) != 12:
            raise ValueError(f"AES-GCM needs a 12-byte IV, not {len(iv)} bytes")
        self._aead = AESGCM(key)
        self._fixed = bytes(iv[:4])
        self._invocation = int.from_bytes(iv[4:], "big")

    @classmethod
    def new(
        cls,
        cipher_name: str,
        key: bytes,
        iv: bytes,
        mac_alg: bytes = b"",
        mac_key: bytes = b"",
        etm: bool = False,
    ) -> KeptGCMEncryption:
        return cls(key, iv)

    def _nonce(self) -> bytes:
        nonce = self._fixed + self._invocation.to_bytes(8, "big")
        self._invocation = (self._invocation + 1) % _INVOCATIONS
        return nonce

    def encrypt_packet(self, seq: int, header: bytes, packet: bytes) -> tuple[bytes, bytes]:
        """The header and the encrypted packet, and the tag apart, as asyncssh's shim returns them."""
        sealed = self.seal(header, packet)
        return header + memoryview(sealed)[:-_TAG], sealed[-_TAG:]

    def seal(self, header: bytes, packet: bytes) -> bytes:
        """The encrypted packet with its tag, as one ``bytes`` (what follows the header on the wire)."""
        return self._aead.encrypt(self._nonce(), packet, header)

    def decrypt_packet(
        self, seq: int, first: bytes, rest: bytes, header_len: int, mac: bytes
    ) -> bytes | None:
        """The packet without its header, or None where the tag does not verify."""
        nonce = self._nonce()
        try:
            return self._aead.decrypt(nonce, b"".join((first[header_len:], rest, mac)), first[:header_len])
        except InvalidTag:
            return None


def use_kept_aesgcm() -> bool:
    """Make asyncssh, in this process, encrypt AES-GCM packets with ``KeptGCMEncryption``. True where
    both algorithms use it (a second call changes nothing); False, with nothing changed, where
    asyncssh's table of encryption classes is not the one this was written against."""
    params = getattr(asyncssh.encryption, "_enc_params", None)
    if not isinstance(params, dict):
        log.debug("AES-GCM left to asyncssh's shim: no table of encryption classes")
        return False
    entries = {alg: params.get(alg) for alg in GCM_ALGS}
    for alg, entry in entries.items():
        if not (
            isinstance(entry, tuple) and len(entry) == 2 and entry[0] in (GCMEncryption, KeptGCMEncryption)
        ):
            log.debug("AES-GCM left to asyncssh's shim: %s is registered as %r", alg.decode(), entry)
            return False
    for alg, (_, cipher_name) in entries.items():  # type: ignore[misc]
        params[alg] = (KeptGCMEncryption, cipher_name)
    return True


def seal_in_one_pass(conn: Any) -> bool:
    """Make ``conn`` (an asyncssh connection) send the packets of an open session in one pass where it
    encrypts with ``KeptGCMEncryption`` (see the module's docstring). False, with nothing changed,
    where the connection lacks what this relies on, as after an asyncssh change of its internals."""
    send_packet = getattr(conn, "send_packet", None)
    if send_packet is None or not all(hasattr(conn, name) for name in _STATE):
        log.debug("SSH packets left to asyncssh: the connection is not the kind this knows (%r)", type(conn))
        return False
    if getattr(send_packet, "seals_in_one_pass", False):
        return True

    def send(pkttype: int, *args: bytes, handler: Any = None) -> None:
        enc = conn._send_encryption
        if (
            type(enc) is not KeptGCMEncryption
            or pkttype <= MSG_USERAUTH_LAST  # transport, key exchange and authentication messages
            or not (conn._kex_complete and conn._auth_complete)  # asyncssh defers, or sends a kexinit
            or conn._compressor is not None
            or conn._rekey_bytes_sent >= conn._rekey_bytes
            or (conn._rekey_seconds and time.monotonic() >= conn._rekey_time)
        ):
            send_packet(pkttype, *args, handler=handler)
            return
        size = 1 + sum(map(len, args))  # the type byte and the payload, as asyncssh pads them
        padlen = -(conn._send_enchdrlen + size) % conn._send_blocksize
        if padlen < 4:
            padlen += conn._send_blocksize
        packet = b"".join((bytes((padlen, pkttype)), *args, os.urandom(padlen)))
        header = len(packet).to_bytes(4, "big")
        seq = conn._send_seq
        sealed = enc.seal(header, packet)
        transport = conn._transport
        if transport:
            # as asyncssh's _send: the connection's loss is handled where it is read
            with contextlib.suppress(ConnectionError):
                transport.writelines((header, sealed))
        conn._send_seq = (seq + 1) & 0xFFFFFFFF
        conn._rekey_bytes_sent += len(packet)
        logger = handler or conn
        if logger.logger._debug_level >= 3:  # asyncssh's packet log, its most verbose level
            logger.log_sent_packet(pkttype, seq, bytes((pkttype,)) + b"".join(args))

    send.seals_in_one_pass = True  # type: ignore[attr-defined]
    conn.send_packet = send
    return True


# what seal_in_one_pass reads and writes of an asyncssh connection
_STATE = (
    "_send_encryption",
    "_kex_complete",
    "_auth_complete",
    "_compressor",
    "_rekey_bytes_sent",
    "_rekey_bytes",
    "_rekey_seconds",
    "_rekey_time",
    "_send_enchdrlen",
    "_send_blocksize",
    "_send_seq",
    "_transport",
    "logger",
)
