"""No SSH_MSG_IGNORE before each packet under an AEAD cipher, as OpenSSH sends none; still one before
each under a cipher that is not AEAD; every byte arrives either way. Real asyncssh peers."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncssh
import pytest
from asyncssh.constants import MSG_IGNORE

from spawner.ssh.ignores import drop_aead_ignores

from .peers import Anyone, bare_server

SIZE = 1024 * 1024  # 32 packets of 32 KiB


class Dropping(Anyone):
    """An asyncssh server that drops the ignores, as hybridhub's server and gateway do."""

    def connection_made(self, conn: asyncssh.SSHServerConnection) -> None:
        assert drop_aead_ignores(conn)
        assert drop_aead_ignores(conn)  # once is enough: a second call changes nothing


async def _stream(process: asyncssh.SSHServerProcess[bytes]) -> None:
    process.stdout.write(b"x" * SIZE)
    process.exit(0)


async def received(cipher: str) -> dict[int, int]:
    """Run a stream under ``cipher`` and count the packets the client's connection handled, by type
    (channel data goes to the channel: the count is of the rest)."""
    counts: dict[int, int] = {}
    async with (
        bare_server(Dropping, _stream, encryption_algs=[cipher]) as port,
        asyncssh.connect("127.0.0.1", port, known_hosts=None, username="u", encryption_algs=[cipher]) as conn,
    ):
        logged = conn.log_received_packet

        def count(pkttype: int, *args: Any, **kwargs: Any) -> None:
            counts[pkttype] = counts.get(pkttype, 0) + 1
            logged(pkttype, *args, **kwargs)

        conn.log_received_packet = count  # type: ignore[method-assign]
        result = await asyncio.wait_for(conn.run("stream", encoding=None), 30)
    assert result.exit_status == 0 and result.stdout == b"x" * SIZE
    return counts


@pytest.mark.asyncio
@pytest.mark.parametrize("cipher", ["aes128-gcm@openssh.com", "chacha20-poly1305@openssh.com"])
async def test_no_ignore_packets_under_an_aead_cipher(cipher: str) -> None:
    assert MSG_IGNORE not in await received(cipher)


@pytest.mark.asyncio
@pytest.mark.parametrize("cipher", ["aes128-cbc", "aes128-ctr"])
async def test_one_ignore_before_each_packet_under_any_other_cipher(cipher: str) -> None:
    counts = await received(cipher)
    # one before every packet after the key exchange: at least one per 32 KiB data packet
    assert counts.get(MSG_IGNORE, 0) >= SIZE // 32768, counts


@pytest.mark.asyncio
async def test_a_connection_without_send_packet_is_left_as_it_is() -> None:
    class Conn:
        pass

    conn = Conn()
    assert drop_aead_ignores(conn) is False and not hasattr(conn, "send_packet")
