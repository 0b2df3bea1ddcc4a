"""A bare asyncssh server for the tests about SSH packets and writes (test_coalesce, test_ignores,
test_gcm), where the login is beside the point."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncssh


class Anyone(asyncssh.SSHServer):
    """Lets anyone in without authentication: the tests using it are about the packets."""

    def begin_auth(self, username: str) -> bool:
        return False


@contextlib.asynccontextmanager
async def bare_server(
    server_factory: Callable[[], asyncssh.SSHServer], process_factory: Any, **options: Any
) -> AsyncIterator[int]:
    """An asyncssh server on 127.0.0.1 with a fresh host key and bytes, not text, for its sessions;
    its port, and the server closed after."""
    server = await asyncssh.listen(
        "127.0.0.1",
        0,
        server_host_keys=[asyncssh.generate_private_key("ssh-ed25519")],
        server_factory=server_factory,
        process_factory=process_factory,
        encoding=None,
        **options,
    )
    try:
        yield server.sockets[0].getsockname()[1]
    finally:
        server.close()
        await server.wait_closed()
