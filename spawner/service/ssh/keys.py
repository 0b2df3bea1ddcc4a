"""Checks a public key a user registers: one OpenSSH line of an allowed type and size (pure)."""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
from dataclasses import dataclass

import asyncssh

__all__ = ["ALLOWED_TYPES", "MAX_COMMENT", "MAX_LINE", "MIN_RSA_BITS", "KeyProblem", "PublicKey", "parse_key"]

# the types OpenSSH 9 offers by default, less DSA; sk-* are FIDO security keys
ALLOWED_TYPES = (
    "ssh-ed25519",
    "ecdsa-sha2-nistp256",
    "ecdsa-sha2-nistp384",
    "ecdsa-sha2-nistp521",
    "ssh-rsa",
    "sk-ssh-ed25519@openssh.com",
    "sk-ecdsa-sha2-nistp256@openssh.com",
)
MIN_RSA_BITS = 2048
MAX_RSA_BITS = 16384
# a 16384-bit RSA key line is about 2.8 KB
MAX_LINE = 4096
MAX_COMMENT = 200


class KeyProblem(ValueError):
    """Why a public key line is refused, in a sentence for the user."""


@dataclass(frozen=True)
class PublicKey:
    key_type: str
    blob: str  # base64, as in the line
    comment: str
    fingerprint: str  # SHA256:..., as ssh-keygen -l prints it

    @property
    def line(self) -> str:
        return " ".join(part for part in (self.key_type, self.blob, self.comment) if part)


def _read_string(data: bytes, offset: int) -> tuple[bytes, int]:
    if offset + 4 > len(data):
        raise KeyProblem("the key's data is cut short")
    (length,) = struct.unpack(">I", data[offset : offset + 4])
    end = offset + 4 + length
    if end > len(data):
        raise KeyProblem("the key's data is cut short")
    return data[offset + 4 : end], end


def _rsa_bits(blob: bytes) -> int:
    _, offset = _read_string(blob, 0)  # the type name
    _, offset = _read_string(blob, offset)  # e
    n, _ = _read_string(blob, offset)
    return int.from_bytes(n, "big").bit_length()


def fingerprint(blob: bytes) -> str:
    return "SHA256:" + base64.b64encode(hashlib.sha256(blob).digest()).decode().rstrip("=")


def parse_key(text: object) -> PublicKey:
    """The key in ``text``, or KeyProblem saying what is wrong with it."""
    if not isinstance(text, str):
        raise KeyProblem("public_key must be a string: one line of ~/.ssh/id_ed25519.pub or similar")
    line = text.strip()
    if not line:
        raise KeyProblem("public_key is empty: paste one line of ~/.ssh/id_ed25519.pub or similar")
    if len(line) > MAX_LINE:
        raise KeyProblem(
            f"public_key is {len(line)} characters long; a public key line has at most {MAX_LINE}"
        )
    if "\n" in line or "\r" in line:
        raise KeyProblem("public_key must be one key on one line; add several keys one at a time")
    if line.startswith("-----BEGIN") or line.startswith("---- BEGIN"):
        raise KeyProblem(
            "this is a PEM or RFC 4716 key, or a private key: paste the OpenSSH public key line "
            "(the .pub file, or `ssh-keygen -y -f KEY`)"
        )
    fields = line.split(None, 2)
    key_type = fields[0]
    if "-cert-v01@openssh.com" in key_type:
        raise KeyProblem("this is a certificate, not a public key: paste the key itself")
    if key_type not in ALLOWED_TYPES:
        if key_type == "ssh-dss":
            raise KeyProblem("DSA keys are not accepted (OpenSSH dropped them): use ssh-ed25519")
        allowed = ", ".join(ALLOWED_TYPES)
        shown = key_type if len(key_type) <= 40 and key_type.isprintable() else key_type[:40] + "..."
        raise KeyProblem(
            f"the line must start with a key type ({allowed}), not {shown!r}; authorized_keys "
            "options are not accepted"
        )
    if len(fields) < 2:
        raise KeyProblem(f"the {key_type} key's base64 data is missing")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError):
        raise KeyProblem("the key's data is not valid base64") from None
    inner, _ = _read_string(blob, 0)
    if inner != key_type.encode():
        raise KeyProblem(f"the key's data is a {inner[:40]!r} key, but the line says {key_type}")
    if key_type == "ssh-rsa":
        bits = _rsa_bits(blob)
        if bits < MIN_RSA_BITS:
            raise KeyProblem(
                f"this RSA key has {bits} bits; at least {MIN_RSA_BITS} are needed (or use ssh-ed25519)"
            )
        if bits > MAX_RSA_BITS:
            raise KeyProblem(f"this RSA key has {bits} bits; at most {MAX_RSA_BITS} are accepted")
    try:
        asyncssh.import_public_key(f"{key_type} {fields[1]}")
    except (asyncssh.KeyImportError, ValueError):
        raise KeyProblem(f"the key's data is not a valid {key_type} key") from None
    comment = fields[2].strip() if len(fields) > 2 else ""
    if len(comment) > MAX_COMMENT:
        raise KeyProblem(
            f"the key's comment is {len(comment)} characters long; at most {MAX_COMMENT} are kept"
        )
    if not comment.isprintable():
        raise KeyProblem("the key's comment holds control characters")
    return PublicKey(key_type=key_type, blob=fields[1], comment=comment, fingerprint=fingerprint(blob))
