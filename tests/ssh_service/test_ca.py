"""The SSH CA: host certificates that OpenSSH and asyncssh accept for the right name only; its key file."""

from __future__ import annotations

import base64
import os
import shutil
import subprocess
import time
from pathlib import Path

import asyncssh
import pytest
from asyncssh.public_key import CERT_TYPE_HOST, CERT_TYPE_USER

from spawner.service.ssh.ca import CertificateAuthority, generate_ca_key, load_or_create_key_file
from spawner.service.ssh.keys import fingerprint
from tests.environment import require

CA = CertificateAuthority(generate_ca_key())


def test_a_host_certificate_names_the_server_and_expires() -> None:
    host = asyncssh.generate_private_key("ssh-ed25519")
    signed = CA.sign_host(host.convert_to_public(), "alice.gpu", 3600)
    assert signed.principals == ("alice.gpu",) and abs(signed.valid_before - (time.time() + 3600)) < 5
    cert = asyncssh.import_certificate(signed.line)
    assert cert.principals == ["alice.gpu"]
    assert cert.signing_key.public_data == asyncssh.import_public_key(CA.public_line).public_data
    # what a client checks: a host certificate, for the name it connected to
    cert.validate(CERT_TYPE_HOST, "alice.gpu")
    with pytest.raises(ValueError, match="principal"):
        cert.validate(CERT_TYPE_HOST, "alice")
    with pytest.raises(ValueError, match="type"):
        cert.validate(CERT_TYPE_USER, "alice.gpu")


def test_openssh_reads_the_certificate_as_a_host_certificate(tmp_path: Path) -> None:
    require(shutil.which("ssh-keygen"), "needs OpenSSH's ssh-keygen (make test installs openssh-client)")
    host = asyncssh.generate_private_key("ssh-ed25519")
    (tmp_path / "host-cert.pub").write_text(CA.sign_host(host.convert_to_public(), "alice", 3600).line + "\n")
    shown = subprocess.run(
        ["ssh-keygen", "-L", "-f", str(tmp_path / "host-cert.pub")],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "host certificate" in shown and "Principals: \n                alice\n" in shown
    ca_blob = base64.b64decode(CA.public_line.split()[1])
    assert f"Signing CA: ED25519 {fingerprint(ca_blob)} " in shown
    assert CA.known_hosts_line.startswith("@cert-authority * ssh-ed25519 ")


def test_the_key_file_is_made_private_once_and_a_readable_one_refused(tmp_path: Path) -> None:
    path = tmp_path / "ssh_ca"
    made = load_or_create_key_file(path)
    assert path.stat().st_mode & 0o777 == 0o600
    assert load_or_create_key_file(path) == made
    CertificateAuthority(made)  # a key the CA loads
    os.chmod(path, 0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        load_or_create_key_file(path)
