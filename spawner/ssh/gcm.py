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

``open_in_one_pass`` is the same for what a connection receives. asyncssh appends each read to a
buffer and cuts every packet out of it, and the rest of the buffer after it, as new ``bytes``: a
256 KiB read of eight 32 KiB packets is copied about four times over, and each packet, a 36-byte
window adjust as much as channel data, goes through its generic dispatch. Under
``KeptGCMEncryption``, after user authentication, a connection so set opens each read's packets
where they lie (one decryption each, the length as associated data) and hands channel data and
window adjusts to their channel's own handler and SSH_MSG_IGNORE to the connection's, as asyncssh
does, with the same sequence numbers, checks, packet log and errors. A packet the read's end cuts
waits in asyncssh's buffer, as it would there, and is completed from the next read. At the first
packet of any other type, or anything unusual (a tag that does not verify, an unknown channel, a
length over the limit), it steps the nonce back and gives the rest of the read to asyncssh's own
receive path, which handles that packet as always (decrypting it a second time: key exchange and
requests are rare, and a packet that fails its tag ends the connection); the read after is opened
here again.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import logging
import os
import time
from typing import Any

import asyncssh.encryption
from asyncssh.constants import (
    MSG_CHANNEL_DATA,
    MSG_CHANNEL_WINDOW_ADJUST,
    MSG_IGNORE,
    MSG_UNIMPLEMENTED,
    MSG_USERAUTH_LAST,
)
from asyncssh.encryption import GCMEncryption
from asyncssh.misc import DisconnectError, ProtocolError
from asyncssh.packet import PacketDecodeError, SSHPacket, UInt32
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

__all__ = ["KeptGCMEncryption", "open_in_one_pass", "seal_in_one_pass", "use_kept_aesgcm"]

log = logging.getLogger(__name__)

GCM_ALGS = (b"aes128-gcm@openssh.com", b"aes256-gcm@openssh.com")
_TAG = 16
_BLOCK = 16  # AES's block: asyncssh reads a packet's first block before its length counts
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

    def open(self, header: Any, sealed: Any) -> bytes | None:
        """The packet (padding length, payload, padding) from the 4-byte header and what follows it
        (bytes or views), or None where the tag does not verify. Either way the nonce moves on."""
        try:
            return self._aead.decrypt(self._nonce(), sealed, header)
        except InvalidTag:
            return None

    def step_back(self) -> None:
        """Undo the last nonce's step: the packet last opened is to be opened again."""
        self._invocation = (self._invocation - 1) % _INVOCATIONS

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


class _Opened(SSHPacket):
    """The payload of an opened packet, read in place: the bytes after the padding length up to the
    padding, without cutting them out first."""

    def __init__(self, plain: bytes, end: int) -> None:
        self._packet = plain
        self._idx = 1
        self._len = end

    def get_consumed_payload(self) -> bytes:
        return self._packet[1 : self._idx]

    def get_remaining_payload(self) -> bytes:
        return self._packet[self._idx : self._len]

    def get_full_payload(self) -> bytes:
        return self._packet[1 : self._len]


# what a session's traffic is made of (asyncssh, unlike OpenSSH, sends an SSH_MSG_IGNORE before each
# packet); the first two go to their channel's handler, the last to the connection's, as in asyncssh
_OPENED_TYPES = (MSG_CHANNEL_DATA, MSG_CHANNEL_WINDOW_ADJUST, MSG_IGNORE)


def open_in_one_pass(conn: Any) -> bool:
    """Make ``conn`` (an asyncssh connection) open the channel data, window adjusts and ignores it
    receives where they lie in each read, under ``KeptGCMEncryption`` (see the module's docstring). False,
    with nothing changed, where the connection lacks what this relies on."""
    data_received = getattr(conn, "data_received", None)
    if data_received is None or not all(hasattr(conn, name) for name in _RECV_STATE):
        log.debug("SSH packets read by asyncssh: the connection is not the kind this knows (%r)", type(conn))
        return False
    if getattr(data_received, "opens_in_one_pass", False):
        return True

    def receive(data: bytes, datatype: Any = None) -> None:
        if (
            type(conn._recv_encryption) is not KeptGCMEncryption
            or conn._decompressor is not None
            or not conn._auth_complete
        ):
            data_received(data, datatype)
            return
        handler = conn._recv_handler
        if handler == conn._recv_packet:
            # asyncssh holds a packet it has the first block of: under AES-GCM its "decrypted header" is
            # that block as it came (the length is not encrypted and no nonce was used), so the packet
            # goes back to the buffer as it arrived and is read here with the rest
            conn._inpbuf = conn._packet + conn._inpbuf
            conn._packet = b""
            conn._recv_handler = conn._recv_pkthdr
        elif handler != conn._recv_pkthdr:  # the version line, or a packet's handler still running
            data_received(data, datatype)
            return
        conn._reset_keepalive_timer()
        try:
            rest = _open_read(conn, data)
        except DisconnectError as exc:  # as asyncssh's _recv_data
            conn._send_disconnect(exc.code, exc.reason, exc.lang)
            conn._force_close(exc)
            return
        except Exception:
            conn.internal_error()
            return
        if rest:
            data_received(rest, datatype)

    receive.opens_in_one_pass = True  # type: ignore[attr-defined]
    conn.data_received = receive
    return True


def _open_read(conn: Any, data: bytes) -> bytes:
    """Open and handle a read's packets, the one the last read cut first; what is left for asyncssh
    to read from the first packet this does not handle (empty where there is none). A packet the
    read's end cuts stays in the connection's buffer, where asyncssh would keep it too."""
    view = memoryview(data)
    at = 0
    pending: bytes = conn._inpbuf
    if pending:
        conn._inpbuf = b""
        pktlen = int.from_bytes(pending[:4], "big")
        if len(pending) >= 4 and (pktlen > conn._max_recv_pktlen or pktlen < _BLOCK - 4):
            return pending + data  # asyncssh refuses it
        at = 4 + pktlen + _TAG - len(pending)  # what of this read completes the packet
        if len(pending) < 4 or at <= 0:  # the length itself cut, or more than one packet: join (rare)
            view, at = memoryview(pending + data), 0
        elif at > len(view):
            conn._inpbuf = pending + data  # still cut
            return b""
        else:
            first = pending + view[:at]
            done, theirs = _open_packets(conn, memoryview(first), 0)
            if theirs:
                return first[done:] + view[at:]
            if conn._recv_handler != conn._recv_pkthdr:  # its handler went on in a task: the rest waits
                conn._inpbuf += view[at:]
                return b""
    done, theirs = _open_packets(conn, view, at)
    if theirs:
        return bytes(view[done:])
    if done < len(view):
        conn._inpbuf = bytes(view[done:])  # a packet cut by the read's end
    return b""


def _open_packets(conn: Any, view: memoryview, at: int) -> tuple[int, bool]:
    """Open and handle packets from ``at`` while they are channel data, window adjusts or ignores, as
    asyncssh's ``_recv_pkthdr`` and ``_recv_packet`` would. Where it stopped, and whether the packet
    there is asyncssh's to read (True) or cut by the end of ``view`` (False); the end, and False, where
    the connection closed or a handler went on in a task (the rest then in the connection's buffer)."""
    enc: KeptGCMEncryption = conn._recv_encryption
    size = len(view)
    while at < size:
        if conn._transport is None:  # closing: the rest of the read is dropped (asyncssh would
            return size, False  # still hand it to the channels, which are closing too)
        if size - at < 4:
            return at, False
        pktlen = int.from_bytes(view[at : at + 4], "big")
        if pktlen > conn._max_recv_pktlen or pktlen < _BLOCK - 4:
            return at, True  # asyncssh refuses it: too long, or shorter than its first block
        end = at + 4 + pktlen + _TAG
        if end > size:
            return at, False
        plain = enc.open(view[at : at + 4], view[at + 4 : end])
        if plain is None:
            enc.step_back()  # asyncssh opens it again and reports the failed tag
            return at, True
        if len(plain) < 2 or plain[1] not in _OPENED_TYPES or not 4 <= plain[0] <= len(plain) - 2:
            enc.step_back()  # another type, or malformed: asyncssh's to handle
            return at, True
        pkttype = plain[1]
        packet = _Opened(plain, len(plain) - plain[0])
        packet.get_byte()
        handler: Any = conn
        if pkttype != MSG_IGNORE:
            try:
                handler = conn._channels.get(packet.get_uint32())
            except PacketDecodeError:
                handler = None
            if handler is None:
                enc.step_back()  # asyncssh refuses a short packet or an unknown channel
                return at, True
        seq = conn._recv_seq
        if handler.logger._debug_level >= 3:  # asyncssh's packet log, its most verbose level
            handler.log_received_packet(pkttype, seq, packet)
        try:
            result = handler.process_packet(pkttype, seq, packet)
        except PacketDecodeError as exc:
            raise ProtocolError(str(exc)) from None
        at = end
        if inspect.isawaitable(result):  # as asyncssh: what follows waits for the handler's task
            conn._inpbuf = bytes(view[at:])
            conn._recv_handler = lambda: False
            task = conn.create_task(result)
            task.add_done_callback(functools.partial(conn._finish_recv_packet, pkttype, seq, is_async=True))
            return size, False
        if not result:
            conn.logger.debug1("Unknown packet type %d received", pkttype)
            conn.send_packet(MSG_UNIMPLEMENTED, UInt32(seq))
        conn._finish_recv_packet(pkttype, seq)
    return at, False


# what open_in_one_pass reads and writes of an asyncssh connection
_RECV_STATE = (
    "_inpbuf",
    "_recv_handler",
    "_recv_pkthdr",
    "_recv_packet",
    "_packet",
    "_recv_encryption",
    "_decompressor",
    "_auth_complete",
    "_reset_keepalive_timer",
    "_send_disconnect",
    "_force_close",
    "internal_error",
    "_transport",
    "_max_recv_pktlen",
    "_channels",
    "_recv_seq",
    "create_task",
    "_finish_recv_packet",
    "logger",
)
