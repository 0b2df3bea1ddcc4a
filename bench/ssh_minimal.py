"""The baseline bench/ssh.py measures beside sshd: a minimal asyncssh server, the least any asyncssh
server does. Exec runs the command through /bin/sh with asyncssh's own redirects, SFTP is asyncssh's
in-process server, keys come from one authorized_keys file. No PTY, forwarding, limits or host
certificates: not for use, only to measure against.

    python bench/ssh_minimal.py PORT HOST_KEY AUTHORIZED_KEYS
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

import asyncssh


async def run(process: asyncssh.SSHServerProcess[bytes]) -> None:
    # the outputs through plain pipes: asyncssh 2.24.1 relaying an asyncio StreamReader, as its
    # documented example does, drops the connection after a few MB ("read() called while another
    # coroutine is already waiting for incoming data")
    r_out, w_out = os.pipe()
    r_err, w_err = os.pipe()
    child = await asyncio.create_subprocess_shell(
        process.command or "/bin/sh", stdin=asyncio.subprocess.PIPE, stdout=w_out, stderr=w_err
    )
    os.close(w_out)
    os.close(w_err)
    await process.redirect(stdin=child.stdin, stdout=r_out, stderr=r_err, send_eof=False)
    status = await child.wait()
    await process.stdout.drain()
    await process.stderr.drain()
    process.channel.write_eof()
    process.exit(status)


async def main(port: int, host_key: str, authorized: str) -> None:
    server = await asyncssh.listen(
        "127.0.0.1",
        port,
        server_host_keys=[host_key],
        authorized_client_keys=authorized,
        process_factory=run,
        sftp_factory=True,
        encoding=None,
        allow_scp=True,
    )
    stop = asyncio.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        asyncio.get_running_loop().add_signal_handler(sig, stop.set)
    await stop.wait()
    server.close()
    await server.wait_closed()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], sys.argv[3]))
