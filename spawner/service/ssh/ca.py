"""The SSH certificate authority: its key kept in the store or a file, and the host certificates it signs."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path

import asyncssh

__all__ = [
    "CA_COMMENT",
    "CertificateAuthority",
    "HostCertificate",
    "generate_ca_key",
    "load_or_create_key_file",
]

CA_COMMENT = "hybridhub-ssh-ca"
# a certificate is valid from a little before it is made: the pod's clock may lag the service's
CLOCK_SKEW = 300


def generate_ca_key() -> str:
    """A new CA private key in OpenSSH format."""
    key = asyncssh.generate_private_key("ssh-ed25519", comment=CA_COMMENT)
    return key.export_private_key().decode()


def load_or_create_key_file(path: Path) -> str:
    """The CA private key in ``path``, made there (mode 0600) when the file does not exist yet. A file
    others may read is refused: whoever reads it can impersonate every notebook server."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            raise PermissionError(
                f"the SSH CA key file {path} has mode {mode:03o}: others may read it; chmod 600 it"
            ) from None
        return path.read_text()
    text = generate_ca_key()
    with os.fdopen(fd, "w") as out:
        out.write(text)
    return text


@dataclass(frozen=True)
class HostCertificate:
    line: str  # the certificate as an OpenSSH ...-cert.pub line
    principals: tuple[str, ...]
    valid_before: int  # unix seconds


class CertificateAuthority:
    """Signs short-lived host certificates for the pods' SSH servers with one private key."""

    def __init__(self, private_key: str) -> None:
        self._key = asyncssh.import_private_key(private_key)

    @property
    def public_line(self) -> str:
        """The CA's public key as an OpenSSH line, with its comment."""
        line = self._key.export_public_key().decode().strip()
        return line if len(line.split()) > 2 else f"{line} {CA_COMMENT}"

    @property
    def known_hosts_line(self) -> str:
        """The known_hosts line that makes a client trust every host certificate this CA signs."""
        return f"@cert-authority * {self.public_line}"

    def sign_host(self, public_key: asyncssh.SSHKey, principal: str, validity: float) -> HostCertificate:
        """A host certificate for ``public_key`` naming ``principal``, valid for ``validity`` seconds."""
        now = int(time.time())
        valid_before = now + int(validity)
        cert = self._key.generate_host_certificate(
            public_key,
            key_id=f"hybridhub host {principal}",
            principals=[principal],
            valid_after=now - CLOCK_SKEW,
            valid_before=valid_before,
            comment=principal,
        )
        return HostCertificate(
            line=cert.export_certificate().decode().strip(),
            principals=(principal,),
            valid_before=valid_before,
        )
