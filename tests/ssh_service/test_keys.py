"""Which public key lines a user may register, and the sentence each refusal says."""

from __future__ import annotations

import base64
import shutil
import struct
import subprocess
from pathlib import Path

import asyncssh
import pytest

from spawner.service.ssh.keys import KeyProblem, parse_key
from tests.environment import require


def line_of(key: asyncssh.SSHKey, comment: str = "") -> str:
    text = key.export_public_key().decode().strip()
    return f"{text} {comment}".strip()


ED25519 = asyncssh.generate_private_key("ssh-ed25519")
# a FIDO key as `ssh-keygen -t ed25519-sk` writes it (no authenticator here to make one)
SK_ED25519 = (
    "sk-ssh-ed25519@openssh.com AAAAGnNrLXNzaC1lZDI1NTE5QG9wZW5zc2guY29tAAAAIHXvIrHWPNcDpvUg9DzQ"
    "P9gHYVtP2Y4P6b1lT9xXbu5BAAAABHNzaDo= yubikey"
)


def blob(*parts: bytes) -> str:
    return base64.b64encode(b"".join(struct.pack(">I", len(p)) + p for p in parts)).decode()


@pytest.mark.parametrize(
    ("algorithm", "size"),
    [("ssh-ed25519", None), ("ecdsa-sha2-nistp256", None), ("ecdsa-sha2-nistp521", None), ("ssh-rsa", 2048)],
)
def test_keys_of_allowed_types_are_taken_with_ssh_keygen_s_fingerprint(
    algorithm: str, size: int | None, tmp_path: Path
) -> None:
    key = asyncssh.generate_private_key(algorithm, **({"key_size": size} if size else {}))
    parsed = parse_key("  " + line_of(key, "alice@laptop  ") + "\n")
    assert (parsed.key_type, parsed.comment) == (algorithm, "alice@laptop")
    assert parsed.line == line_of(key, "alice@laptop")
    require(shutil.which("ssh-keygen"), "needs OpenSSH's ssh-keygen (make test installs openssh-client)")
    (tmp_path / "k.pub").write_text(parsed.line + "\n")
    printed = subprocess.run(
        ["ssh-keygen", "-l", "-f", str(tmp_path / "k.pub")], capture_output=True, text=True
    )
    assert printed.stdout.split()[1] == parsed.fingerprint


def test_a_security_key_is_taken() -> None:
    parsed = parse_key(SK_ED25519)
    assert parsed.key_type == "sk-ssh-ed25519@openssh.com" and parsed.comment == "yubikey"


RSA_1024 = line_of(asyncssh.generate_private_key("ssh-rsa", key_size=1024))
CERT = ED25519.generate_user_certificate(ED25519, "alice").export_certificate().decode().strip()
GOOD = line_of(ED25519)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (None, "must be a string"),
        ("   ", "is empty"),
        (GOOD + "\n" + GOOD, "one key on one line"),
        ("x" * 5000, "at most 4096"),
        (RSA_1024, "1024 bits; at least 2048"),
        ("ssh-dss AAAAB3NzaC1kc3M=", "DSA keys are not accepted"),
        (CERT, "a certificate, not a public key"),
        ('command="rm -rf ~" ' + GOOD, "authorized_keys options are not accepted"),
        ("-----BEGIN OPENSSH PRIVATE KEY-----", "the OpenSSH public key line"),
        ("ssh-ed25519", "base64 data is missing"),
        ("ssh-ed25519 not*base64", "not valid base64"),
        ("ssh-ed25519 " + blob(b"ssh-rsa", b"\x01\x00\x01", b"\x00" * 300), "is a b'ssh-rsa' key"),
        ("ssh-ed25519 " + blob(b"ssh-ed25519", b"short"), "not a valid ssh-ed25519 key"),
        ("ssh-ed25519 AAAA", "cut short"),
        (GOOD + " " + "c" * 201, "at most 200"),
        (GOOD + " bad\x1bcomment", "control characters"),
    ],
)
def test_bad_key_lines_are_refused_with_a_reason(text: object, message: str) -> None:
    with pytest.raises(KeyProblem, match=message):
        parse_key(text)
