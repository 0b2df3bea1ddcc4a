"""Microseconds per SSH packet for AES-GCM: asyncssh's own shim against spawner/ssh/gcm.py's
``KeptGCMEncryption`` (one ``AESGCM`` per key), in the same run.

    .venv/bin/python bench/ssh_gcm.py            # 20,000 packets of 32 KiB per row, 5 repeats: ~15 s
    .venv/bin/python bench/ssh_gcm.py --quick    # 500 packets, 2 repeats

Each row encrypts (``encrypt_packet``) or decrypts (``decrypt_packet``) a channel-data-sized packet,
as asyncssh's packet layer calls them, and prints the best of the repeats in µs per packet and the
CPU seconds that makes per GiB of payload. Both classes get the same key, IV and packets; each
decrypting object first checks that it reads what the encrypting one of the other class sealed.
"""

from __future__ import annotations

import argparse
import os
import sys
import timeit
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script from a checkout
    sys.path.insert(0, str(REPO))

from asyncssh.crypto.cipher import GCMCipher  # noqa: E402
from asyncssh.encryption import GCMEncryption  # noqa: E402

from spawner.ssh.gcm import KeptGCMEncryption  # noqa: E402

PAYLOAD = 32 * 1024  # OpenSSH's channel packet size: what a stream moves per packet


def objects(key: bytes, iv: bytes) -> dict[str, Any]:
    return {
        "asyncssh's shim": GCMEncryption(GCMCipher("aes128-gcm", key, iv)),
        "KeptGCMEncryption": KeptGCMEncryption(key, iv),
    }


def read_all(opener: Any, parts: list[tuple[bytes, bytes, bytes]]) -> None:
    for first, rest, tag in parts:  # each result let go at once, as the packet layer does
        if opener.decrypt_packet(0, first, rest, 4, tag) is None:
            raise SystemExit("a packet did not verify")


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
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
