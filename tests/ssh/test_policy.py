"""The SSH server's pure rules and settings, as tables."""

from __future__ import annotations

import asyncssh
import pytest
from traitlets import TraitError

from spawner.ssh.cli import SSHServerApp
from spawner.ssh.hostcert import CertificateProblem, check_certificate
from spawner.ssh.hubapi import AllowedKey
from spawner.ssh.keys import authorized_keys_text
from spawner.ssh.policy import (
    activity_body,
    backoff_delay,
    forward_refusal,
    is_loopback_target,
    renew_delay,
    server_principal,
    token_user_allowed,
)
from spawner.ssh.supervise import exit_code, split_command


@pytest.mark.parametrize(
    ("host", "allowed"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("10.0.0.5", False),
        ("169.254.169.254", False),  # the cloud metadata service
        ("0.0.0.0", False),
        ("::ffff:127.0.0.1", False),
        ("localhost.evil.example", False),
        ("hub", False),  # names other than localhost are not resolved
        ("", False),
    ],
)
def test_forward_targets(host: str, allowed: bool) -> None:
    assert is_loopback_target(host) is allowed
    assert (forward_refusal(host, 80) is None) is allowed


def test_a_refusal_says_where_forwarding_is_allowed() -> None:
    assert forward_refusal("10.0.0.5", 5432) == (
        "forwarding to 10.0.0.5:5432 refused: this server forwards only to the notebook's own loopback "
        "(127.0.0.0/8, ::1, localhost)"
    )


@pytest.mark.parametrize(
    ("model", "login", "allowed"),
    [
        ({"name": "alice", "admin": False}, "alice", True),
        ({"name": "root", "admin": True}, "root", True),
        ({"name": "root", "admin": True}, "alice", False),
        ({"name": "bob", "admin": False}, "bob", False),
        ({"name": "bob", "admin": False}, "alice", False),
        ({"name": "alice", "admin": "yes"}, "alice", True),  # the owner needs no admin flag
        ({"name": "carol", "admin": "yes"}, "carol", False),  # only a real True makes an admin
        ({"admin": True}, "alice", False),
    ],
)
def test_who_may_use_a_token_as_password(model: dict[str, object], login: str, allowed: bool) -> None:
    assert token_user_allowed(model, login, owner="alice") is allowed


@pytest.mark.parametrize(
    ("now", "valid_before", "delay"),
    [(0, 600, 300), (100, 700, 300), (0, 1, 1.0), (0, -5, 1.0), (0, float("inf"), 1.0)],
)
def test_renewal_at_half_the_remaining_life(now: float, valid_before: float, delay: float) -> None:
    assert renew_delay(now, valid_before) == delay


def test_backoff_doubles_up_to_its_cap() -> None:
    assert [backoff_delay(n, first=1, cap=10) for n in range(6)] == [1, 2, 4, 8, 10, 10]
    assert backoff_delay(10_000, first=1, cap=60) == 60


def test_names_and_the_activity_body() -> None:
    assert server_principal("alice", "") == "alice"
    assert server_principal("alice", "gpu") == "alice.gpu"
    assert activity_body("gpu", "T") == {"servers": {"gpu": {"last_activity": "T"}}, "last_activity": "T"}


@pytest.mark.parametrize(
    ("argv", "own", "command", "rc", "code"),
    [
        (["--port", "2222"], ["--port", "2222"], [], 0, 0),
        (
            ["--", "jupyterhub-singleuser", "--ip=0.0.0.0"],
            [],
            ["jupyterhub-singleuser", "--ip=0.0.0.0"],
            3,
            3,
        ),
        (["--port=1", "--", "a", "--", "b"], ["--port=1"], ["a", "--", "b"], -15, 143),
    ],
)
def test_the_command_after_the_double_dash(
    argv: list[str], own: list[str], command: list[str], rc: int, code: int
) -> None:
    assert split_command(argv) == (own, command)
    assert exit_code(rc) == code


def _cert(
    ca: asyncssh.SSHKey, key: asyncssh.SSHKey, principals: list[str], kind: str = "host"
) -> asyncssh.SSHCertificate:
    make = ca.generate_host_certificate if kind == "host" else ca.generate_user_certificate
    return make(key, "id", principals=principals, valid_after=0, valid_before=2**40)


def test_a_certificate_is_checked_before_it_is_presented() -> None:
    ca, other_ca = (asyncssh.generate_private_key("ssh-ed25519") for _ in range(2))
    key, other_key = (asyncssh.generate_private_key("ssh-ed25519") for _ in range(2))
    check_certificate(_cert(ca, key, ["alice"]), key, ca, "alice")
    cases = {
        "names ['bob'], not this server": _cert(ca, key, ["bob"]),
        "names [], not this server": _cert(ca, key, []),  # a certificate valid for every name is refused
        "certifies another key": _cert(ca, other_key, ["alice"]),
        "not signed by the service's CA": _cert(other_ca, key, ["alice"]),
        "Invalid certificate type": _cert(ca, key, ["alice"], kind="user"),
    }
    for words, cert in cases.items():
        with pytest.raises(CertificateProblem, match=words.replace("[", r"\[").replace("]", r"\]")):
            check_certificate(cert, key, ca, "alice")


@pytest.mark.parametrize(
    ("traits", "words"),
    [
        ({"port": 70000}, "must be 0 to 65535"),
        ({"max_auth_tries": 0}, "must be 1 or more"),
        ({"login_grace_time": 0.0}, "over 0"),
        ({"keys_min_refresh_interval": -1.0}, "0 or more"),
        ({"ciphers": ["rot13"]}, "not supported by asyncssh here: rot13"),
        ({"ciphers": []}, "at least one algorithm"),
        ({"service_url": "hub:8081"}, "expected an http(s) URL"),
    ],
)
def test_settings_are_checked(traits: dict[str, object], words: str) -> None:
    with pytest.raises(TraitError, match=words.replace("(", r"\(").replace(")", r"\)")):
        SSHServerApp(**traits)


def test_defaults_come_from_the_singleuser_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in {
        "JUPYTERHUB_USER": "alice",
        "JUPYTERHUB_SERVER_NAME": "gpu",
        "JUPYTERHUB_API_TOKEN": "secret",
        "JUPYTERHUB_API_URL": "http://hub:8081/hub/api",
        "JUPYTERHUB_ACTIVITY_URL": "http://hub:8081/hub/api/users/alice/activity",
        "HYBRIDHUB_SERVICE_URL": "http://hub:8081/services/hybridhub/",
        "HOME": "/home/jovyan",
    }.items():
        monkeypatch.setenv(name, value)
    app = SSHServerApp()
    assert (app.user, app.server_name, app.api_token) == ("alice", "gpu", "secret")
    assert app.service_url == "http://hub:8081/services/hybridhub/"
    assert app.authorized_keys_file == "/home/jovyan/.ssh/authorized_keys"
    assert app.missing() == []
    assert (app.port, app.ciphers, app.token_as_password, app.agent_forwarding) == (
        2222,
        ["aes128-gcm@openssh.com", "aes256-gcm@openssh.com"],
        False,
        False,
    )


def test_what_is_missing_is_said_in_words(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("JUPYTERHUB_USER", "JUPYTERHUB_API_TOKEN", "HYBRIDHUB_SERVICE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert SSHServerApp().missing() == [
        "the service's URL (HYBRIDHUB_SERVICE_URL)",
        "the server's hub token (JUPYTERHUB_API_TOKEN)",
        "the owner's name (JUPYTERHUB_USER)",
    ]


def test_only_plain_registered_keys_of_the_login_count() -> None:
    key = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    other = asyncssh.generate_private_key("ssh-ed25519").export_public_key().decode().strip()
    registered = (
        AllowedKey("alice", key),
        AllowedKey("carol", other),
        AllowedKey("alice", f"cert-authority {other}"),  # would trust every certificate that key signs
        AllowedKey("alice", f'command="true" {other}'),
        AllowedKey("alice", f"{other}\n{other}"),  # two lines in one
        AllowedKey("alice", "not a key"),
    )
    assert authorized_keys_text(registered, "alice") == f"{key}\n"
    assert authorized_keys_text(registered, "carol") == f"{other}\n"
    assert authorized_keys_text(registered, "bob") == ""
