"""The gateway's pure rules: which servers a jump target may name, who may reach one, refusal links."""

from __future__ import annotations

import pytest

from spawner.ssh.gateway_policy import Target, may_reach, progress_url, target_candidates, valid_target


@pytest.mark.parametrize(
    ("host", "expected"),
    [
        ("alice", [Target("alice", "")]),
        ("alice.gpu", [Target("alice.gpu", ""), Target("alice", "gpu")]),
        # a user name with a dot comes first; then each split from the right
        ("john.doe.gpu", [Target("john.doe.gpu", ""), Target("john.doe", "gpu"), Target("john", "doe.gpu")]),
        ("alice.", [Target("alice.", "")]),  # no empty server name
        (".alice", [Target(".alice", "")]),  # no empty user name
    ],
)
def test_target_candidates(host: str, expected: list[Target]) -> None:
    assert target_candidates(host) == expected


@pytest.mark.parametrize(
    ("host", "ok"),
    [
        ("alice", True),
        ("alice.gpu", True),
        ("", False),
        ("a" * 513, False),
        ("alice bob", False),
        ("alice/..", False),
        ("al\x00ice", False),
        ("al\nice", False),
        ("alice%2f", False),
    ],
)
def test_valid_target(host: str, ok: bool) -> None:
    assert valid_target(host) is ok


@pytest.mark.parametrize(
    ("login", "owner", "shared", "ok"),
    [
        ({"name": "alice"}, "alice", (), True),
        ({"name": "bob"}, "alice", (), False),
        ({"name": "bob", "admin": True}, "alice", (), True),
        ({"name": "bob", "admin": "yes"}, "alice", (), False),  # only a real true is admin
        ({"name": "bob"}, "alice", ("bob",), True),
        ({"name": "carol"}, "alice", ("bob",), False),
        ({}, "alice", ("",), False),
        ({"name": ""}, "", (), False),
    ],
)
def test_may_reach(login: dict[str, object], owner: str, shared: tuple[str, ...], ok: bool) -> None:
    assert may_reach(login, owner, shared) is ok


def test_progress_url_quotes_names() -> None:
    assert progress_url("https://hub.example.org/", Target("alice", "")) == (
        "https://hub.example.org/hub/spawn-pending/alice"
    )
    assert progress_url("http://h", Target("a b", "g/1")) == "http://h/hub/spawn-pending/a%20b/g%2F1"
    assert Target("alice", "gpu").label == "alice.gpu"
