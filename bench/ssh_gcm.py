"""Microseconds per SSH packet for AES-GCM: asyncssh's own shim against spawner/ssh/gcm.py's
``KeptGCMEncryption`` (one ``AESGCM`` per key), and a whole channel-data packet sent by asyncssh's
``send_packet`` against ``seal_in_one_pass``, and relayed bytes written to a channel against
``send_channel_data``, in the same run.

    .venv/bin/python bench/ssh_gcm.py            # 20,000 packets of 32 KiB per row, 5 repeats: ~25 s
    .venv/bin/python bench/ssh_gcm.py --quick    # 500 packets, 2 repeats

The first table's rows encrypt (``encrypt_packet``) or decrypt (``decrypt_packet``) a
channel-data-sized packet, as asyncssh's packet layer calls them. Both classes get the same key, IV
and packets; each decrypting object first checks that it reads what the encrypting one of the other
class sealed. The second table's rows send an SSH_MSG_CHANNEL_DATA of 32 KiB through the server side
of a real asyncssh connection under ``KeptGCMEncryption`` (logged in over loopback, then its
transport swapped for one that counts and drops the bytes): asyncssh's ``send_packet`` as it is, with
its SSH_MSG_IGNORE before each packet; with ``drop_aead_ignores`` (how the server and the gateway sent
before ``seal_in_one_pass``); and sealed in one pass (how they send now). Its last two rows relay
reads of 256 KiB (what the gateway reads from a pod's socket at a time) on that connection's session
channel, sealed in one pass: through asyncssh's ``SSHChannel.write`` (how the gateway relayed before
``send_channel_data``) and with ``send_channel_data`` (how it relays now), per 32 KiB packet. The
receive rows feed the same connection a client's packets, sealed as the client would seal them:
SSH_MSG_CHANNEL_DATA of 32 KiB in reads of 256 KiB cut anywhere (an upload), and
SSH_MSG_CHANNEL_WINDOW_ADJUST, one per read (what a client sends during a download), through
asyncssh's ``data_received`` and with ``open_in_one_pass``; each checks that every byte reached the
session and every adjust the channel. Every row prints the best of the repeats in µs per packet and,
for packets with a payload, the CPU seconds that makes per GiB of it.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import time
import timeit
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

import asyncssh  # noqa: E402
from asyncssh.constants import MSG_CHANNEL_DATA, MSG_CHANNEL_WINDOW_ADJUST  # noqa: E402
from asyncssh.crypto.cipher import GCMCipher  # noqa: E402
from asyncssh.encryption import GCMEncryption  # noqa: E402
from asyncssh.packet import String, UInt32  # noqa: E402

from spawner.ssh.channeldata import send_channel_data  # noqa: E402
from spawner.ssh.gcm import (  # noqa: E402
    KeptGCMEncryption,
    open_in_one_pass,
    seal_in_one_pass,
    use_kept_aesgcm,
)
from spawner.ssh.ignores import drop_aead_ignores  # noqa: E402
from tests.ssh.peers import Anyone, bare_server  # noqa: E402

PAYLOAD = 32 * 1024  # OpenSSH's channel packet size: what a stream moves per packet
RELAY = 256 * 1024  # asyncio's largest read from a socket: what the gateway relays at a time


def objects(key: bytes, iv: bytes) -> dict[str, Any]:
    return {
        "asyncssh's shim": GCMEncryption(GCMCipher("aes128-gcm", key, iv)),
        "KeptGCMEncryption": KeptGCMEncryption(key, iv),
    }


def read_all(opener: Any, parts: list[tuple[bytes, bytes, bytes]]) -> None:
    for first, rest, tag in parts:  # each result let go at once, as the packet layer does
        if opener.decrypt_packet(0, first, rest, 4, tag) is None:
            raise SystemExit("a packet did not verify")


class Sink:
    """A transport that counts what it is handed and drops it."""

    def __init__(self) -> None:
        self.sent = 0

    def write(self, data: bytes) -> None:
        self.sent += len(data)

    def writelines(self, parts: Any) -> None:
        self.sent += sum(map(len, parts))


class Keep(Anyone):
    """Lets anyone in and keeps its connection and its session's channel, for the timings to send on."""

    made: asyncssh.SSHServerConnection | None = None
    channel: Any = None

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        Keep.made = conn


async def hold(process: asyncssh.SSHServerProcess[bytes]) -> None:
    """A session that keeps its channel open for the relay's timings."""
    Keep.channel = process.channel
    await asyncio.sleep(3600)


async def send_timings(packets: int, repeat: int) -> dict[str, float]:
    """Seconds per packet for each way of sending one SSH_MSG_CHANNEL_DATA of PAYLOAD bytes, and per
    PAYLOAD bytes of a RELAY-byte read relayed through the channel's write or send_channel_data."""
    use_kept_aesgcm()
    cipher = "aes128-gcm@openssh.com"
    async with (
        # the session's own channel, not a line editor's wrapper; no rekey falls due over the timings
        bare_server(Keep, hold, line_editor=False, encryption_algs=[cipher], rekey_bytes=1 << 60) as port,
        asyncssh.connect(
            "127.0.0.1", port, known_hosts=None, username="u", encryption_algs=[cipher]
        ) as client,
    ):
        await client.create_session(asyncssh.SSHClientSession, "hold", encoding=None)
        for _ in range(500):
            if Keep.channel is not None:
                break
            await asyncio.sleep(0.01)
        chan = Keep.channel
        conn: Any = Keep.made  # the server said the login succeeded before the client's connect returned
        if (
            conn is None
            or not conn._auth_complete
            or type(conn._send_encryption) is not KeptGCMEncryption
            or chan is None
        ):
            raise SystemExit("the server's connection has no session under KeptGCMEncryption")
        transport, sink = conn._transport, Sink()
        conn._transport = sink
        args = (UInt32(0), String(os.urandom(PAYLOAD)))  # what a channel hands send_packet
        figures: dict[str, float] = {}
        send = type(conn).send_packet
        ways: list[tuple[str, Any]] = [
            ("asyncssh's send_packet", lambda: send(conn, MSG_CHANNEL_DATA, *args))
        ]
        ways.append(("with drop_aead_ignores", lambda: conn.send_packet(MSG_CHANNEL_DATA, *args)))
        ways.append(("seal_in_one_pass", lambda: conn.send_packet(MSG_CHANNEL_DATA, *args)))
        for name, way in ways:
            if name == "with drop_aead_ignores" and not drop_aead_ignores(conn):
                raise SystemExit("drop_aead_ignores did not take")
            if name == "seal_in_one_pass" and not seal_in_one_pass(conn):
                raise SystemExit("seal_in_one_pass did not take")
            before = sink.sent
            figures[name] = min(timeit.repeat(way, number=packets, repeat=repeat)) / packets
            if sink.sent - before < packets * repeat * PAYLOAD:
                raise SystemExit(f"{name}: fewer bytes reached the transport than were sent")
        read = os.urandom(RELAY)  # what the gateway reads from a pod's socket at a time
        reads = max(1, packets * PAYLOAD // RELAY)
        relays: list[tuple[str, Any]] = [
            ("SSHChannel.write", lambda: chan.write(read)),
            ("send_channel_data", lambda: send_channel_data(chan, read)),
        ]
        for name, way in relays:
            timings = []
            for _ in range(repeat):
                chan._send_window = 1 << 62  # the client reads none of it: its window stays open
                before = sink.sent
                timings.append(timeit.timeit(way, number=reads))
                if sink.sent - before < reads * RELAY or chan._send_buf:
                    raise SystemExit(f"{name}: fewer bytes reached the transport than were sent")
            figures[f"relay: {name}"] = min(timings) / (reads * RELAY // PAYLOAD)
        figures.update(receive_timings(conn, chan, packets, repeat))
        conn._transport = transport
        conn.abort()  # the client cannot read what went to the sink: the connection ends here
    return figures


class Drop:
    """A channel's session that takes its data and keeps none of it."""

    received = 0

    def data_received(self, data: bytes, datatype: Any) -> None:
        Drop.received += len(data)


def stream(sealer: KeptGCMEncryption, pkttype: int, payload: bytes, count: int) -> bytes:
    """``count`` packets of ``pkttype`` with ``payload`` as a client would send them, one after another."""
    packets = []
    for _ in range(count):
        body = bytes((pkttype,)) + payload
        padlen = -(len(body) + 1) % 16  # under AES-GCM the length field is outside the padded part
        padlen += 16 if padlen < 4 else 0
        packet = bytes((padlen,)) + body + os.urandom(padlen)
        header = len(packet).to_bytes(4, "big")
        packets.append(header + sealer.seal(header, packet))
    return b"".join(packets)


def receive_timings(conn: Any, chan: Any, packets: int, repeat: int) -> dict[str, float]:
    """Seconds per packet for the server's connection to take in a client's SSH_MSG_CHANNEL_DATA of
    PAYLOAD bytes, arriving in reads of RELAY bytes (cut anywhere, as a socket's are), and an
    SSH_MSG_CHANNEL_WINDOW_ADJUST arriving alone in its read (as the client's adjusts do during a
    download): through asyncssh's ``data_received``, and with ``open_in_one_pass``."""
    key, iv = os.urandom(16), os.urandom(12)
    recipient = UInt32(chan._recv_chan)  # the server's number for its channel, which the client sends to
    count = min(packets, 4_000)
    data = stream(
        KeptGCMEncryption(key, iv), MSG_CHANNEL_DATA, recipient + String(os.urandom(PAYLOAD)), count
    )
    reads = [data[at : at + RELAY] for at in range(0, len(data), RELAY)]
    adjust = stream(KeptGCMEncryption(key, iv), MSG_CHANNEL_WINDOW_ADJUST, recipient + UInt32(PAYLOAD), count)
    size = len(adjust) // count
    adjusts = [adjust[at : at + size] for at in range(0, len(adjust), size)]
    own = type(conn).data_received
    session, chan._session = chan._session, Drop()
    figures: dict[str, float] = {}
    for name in ("asyncssh's data_received", "open_in_one_pass"):
        if name == "open_in_one_pass" and not open_in_one_pass(conn):
            raise SystemExit("open_in_one_pass did not take")
        receive = own.__get__(conn) if name.startswith("asyncssh") else conn.data_received
        for kind, batch in (("channel data", reads), ("window adjust", adjusts)):
            timings = []
            for _ in range(repeat):
                conn._recv_encryption = KeptGCMEncryption(key, iv)  # the nonces start again with the batch
                chan._recv_window = 1 << 62  # the session reads it all: no window adjust falls due
                before = (Drop.received, chan._send_window)
                started = time.perf_counter()
                for read in batch:
                    receive(read)
                timings.append(time.perf_counter() - started)
                if conn._inpbuf or conn._transport is None:
                    raise SystemExit(f"{name}: the {kind} packets were not all read")
                if kind == "channel data" and Drop.received - before[0] != count * PAYLOAD:
                    raise SystemExit(
                        f"{name}: {Drop.received - before[0]} bytes of {count * PAYLOAD} reached the session"
                    )
                if kind == "window adjust" and chan._send_window - before[1] != count * PAYLOAD:
                    raise SystemExit(f"{name}: the window adjusts did not all reach the channel")
            figures[f"receive {kind}: {name}"] = min(timings) / count
    chan._session = session
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--packets", type=int, default=20_000, help="packets per timing (default 20,000)")
    parser.add_argument("--repeat", type=int, default=5, help="timings per row; the best is shown")
    parser.add_argument("--quick", action="store_true", help="500 packets, 2 repeats")
    args = parser.parse_args(argv)
    if args.quick:
        args.packets, args.repeat = 500, 2
    key, iv = os.urandom(16), os.urandom(12)
    # what send_packet hands the cipher: padding length, type, channel, length, data, padding
    body = os.urandom(1 + 1 + 4 + 4 + PAYLOAD + 6)
    header = len(body).to_bytes(4, "big")
    sealers, openers = objects(key, iv), objects(key, iv)
    for name, opener in openers.items():  # each class reads what the other sealed
        other = next(o for n, o in sealers.items() if n != name)
        sealed, tag = other.encrypt_packet(0, header, body)
        if opener.decrypt_packet(0, sealed[:16], sealed[16:], 4, tag) != body:
            raise SystemExit(f"{name} did not read a packet the other class sealed")
    # decrypting needs packets sealed in nonce order: a batch sealed once, read by a fresh object per timing
    batch = min(args.packets, 2_000)
    sealer = objects(key, iv)["asyncssh's shim"]
    sealed = [sealer.encrypt_packet(0, header, body) for _ in range(batch)]
    parts = [(s[:16], s[16:], tag) for s, tag in sealed]
    given = argv if argv is not None else sys.argv[1:]
    print(f"$ python bench/ssh_gcm.py {' '.join(given)}".rstrip())
    print(
        f"# AES-128-GCM, {PAYLOAD // 1024} KiB of payload per packet, best of {args.repeat}: "
        f"{args.packets} packets encrypted, {batch} decrypted per timing"
    )
    print(f"{'class':<20}{'operation':<10}{'µs/packet':>11}{'CPU s/GiB':>11}")
    figures: dict[tuple[str, str], float] = {}
    for name in objects(key, iv):
        encrypt = objects(key, iv)[name]
        best = min(
            timeit.repeat(
                lambda e=encrypt: e.encrypt_packet(0, header, body), number=args.packets, repeat=args.repeat
            )
        )
        figures[(name, "encrypt")] = best / args.packets
        timings = []
        for _ in range(args.repeat):
            decrypt = objects(key, iv)[name]
            timings.append(timeit.timeit(lambda d=decrypt: read_all(d, parts), number=1))
        figures[(name, "decrypt")] = min(timings) / batch
        for op in ("encrypt", "decrypt"):
            each = figures[(name, op)]
            print(f"{name:<20}{op:<10}{each * 1e6:>11.2f}{each * (1 << 30) / PAYLOAD:>11.3f}")
    for op in ("encrypt", "decrypt"):
        ratio = figures[("KeptGCMEncryption", op)] / figures[("asyncssh's shim", op)]
        print(f"{op}: KeptGCMEncryption takes {ratio:.2f} of the shim's time")
    logging.getLogger("asyncssh").setLevel(logging.CRITICAL)  # the aborted connection's complaints
    sends = asyncio.run(send_timings(args.packets, args.repeat))
    print()
    width = max(map(len, sends)) + 2
    print(f"{'KeptGCMEncryption':<{width}}{'µs/packet':>11}{'CPU s/GiB':>11}")
    for name, each in sends.items():
        # a window adjust carries no payload: its CPU per GiB depends on how often the client sends one
        per_gib = "-" if "window adjust" in name else f"{each * (1 << 30) / PAYLOAD:.3f}"
        print(f"{name:<{width}}{each * 1e6:>11.2f}{per_gib:>11}")
    ratio = sends["seal_in_one_pass"] / sends["with drop_aead_ignores"]
    print(f"send: seal_in_one_pass takes {ratio:.2f} of the time with drop_aead_ignores")
    ratio = sends["relay: send_channel_data"] / sends["relay: SSHChannel.write"]
    print(
        f"relay of {RELAY // 1024} KiB reads: send_channel_data takes {ratio:.2f} of SSHChannel.write's time"
    )
    for kind in ("channel data", "window adjust"):
        ratio = (
            sends[f"receive {kind}: open_in_one_pass"] / sends[f"receive {kind}: asyncssh's data_received"]
        )
        print(f"receive {kind}: open_in_one_pass takes {ratio:.2f} of asyncssh's data_received's time")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
