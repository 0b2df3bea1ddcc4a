"""Which notebook server a token belongs to, from its scopes alone (JupyterHub 5.5's token models)."""

from __future__ import annotations

from typing import Any

import pytest

from spawner.service.ssh.access import (
    HubUnreachable,
    ServerName,
    SshAccess,
    ordered,
    server_of_token,
    shadowing_users,
)

# What GET /hub/api/user says of a server's token: c.Spawner.server_token_scopes as 30-service.py sets
# them, "!server" resolved by the hub for that server
SERVER = ["access:servers!server=alice/", "users:activity!user=alice", "access:services!service=hybridhub"]
NAMED = ["access:servers!server=alice/gpu", "users:activity!user=alice"]
SELF = [
    "access:servers!user=alice",
    "read:users!user=alice",
    "servers!user=alice",
    "users:activity!user=alice",
]


@pytest.mark.parametrize(
    ("model", "server"),
    [
        ({"kind": "user", "name": "alice", "scopes": SERVER}, ServerName("alice", "")),
        ({"kind": "user", "name": "alice", "scopes": NAMED}, ServerName("alice", "gpu")),
        # bob's server shared with alice shows in her tokens with bob as the owner: not hers
        (
            {"kind": "user", "name": "alice", "scopes": [*SERVER, "access:servers!server=bob/"]},
            ServerName("alice", ""),
        ),
        # her own tokens reach all her servers: not one server's
        ({"kind": "user", "name": "alice", "scopes": [*SELF, *SERVER]}, None),
        ({"kind": "user", "name": "alice", "scopes": SELF}, None),
        # an admin's token
        ({"kind": "user", "name": "ada", "scopes": ["access:servers", "admin:users"]}, None),
        # a token that reaches two of her servers is no single server's
        ({"kind": "user", "name": "alice", "scopes": [*SERVER, "access:servers!server=alice/gpu"]}, None),
        ({"kind": "user", "name": "alice", "scopes": ["access:servers!server=bob/"]}, None),
        ({"kind": "service", "name": "alice", "scopes": SERVER}, None),
        ({"kind": "user", "name": "alice", "scopes": ["read:users:name!user=alice"]}, None),
        ({"kind": "user", "name": "alice"}, None),
        ({"kind": "user", "scopes": SERVER}, None),
    ],
)
def test_a_token_is_a_server_s_only_when_it_reaches_exactly_one_of_its_owner_s_servers(
    model: dict[str, Any], server: ServerName | None
) -> None:
    assert server_of_token(model) == server


def test_principals_are_the_server_s_ssh_host_names() -> None:
    assert ServerName("alice", "").principal == "alice"
    assert ServerName("alice", "gpu").principal == "alice.gpu"


def test_the_owner_comes_first() -> None:
    assert ordered({"zed", "alice", "ada"}, "alice") == ["alice", "ada", "zed"]


@pytest.mark.parametrize(
    ("server", "users"),
    [
        (ServerName("alice", ""), []),
        (ServerName("john", "doe"), ["john.doe"]),
        # a.b.c: first user a.b.c's default server, then server c of user a.b, then server b.c of user a
        (ServerName("a", "b.c"), ["a.b.c", "a.b"]),
    ],
)
def test_the_users_whose_server_a_host_name_would_name_first(server: ServerName, users: list[str]) -> None:
    assert shadowing_users(server) == users


@pytest.mark.asyncio
async def test_a_hub_that_does_not_answer_is_said_so() -> None:
    # nothing listens on port 1: the handlers turn this into 503 naming the server
    access = SshAccess("http://127.0.0.1:1/hub/api", "token", timeout=2)
    with pytest.raises(HubUnreachable, match="did not answer"):
        await access.allowed(ServerName("alice", ""))
