"""The ~/.ssh/config snippet, as OpenSSH itself reads it (`ssh -G`)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

from spawner.service.ssh.snippet import config_snippet
from tests.environment import require

KNOWN = (
    "@cert-authority * ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIJ2ZsG0kpVrp4rjXgB0QTc8Y7QsH2gq8ZlqGv8mQ0000 ca"
)


def resolved(config: Path, host: str) -> dict[str, str]:
    out = subprocess.run(
        ["ssh", "-G", "-F", str(config), host], capture_output=True, text=True, check=True
    ).stdout
    return dict(line.split(" ", 1) for line in out.splitlines() if " " in line)


def test_ssh_reads_the_snippet_for_the_default_and_a_named_server(tmp_path: Path) -> None:
    require(shutil.which("ssh"), "needs OpenSSH's ssh client (make test installs openssh-client)")
    text = config_snippet("alice", "ssh.hub.example.org:2222", KNOWN)
    assert f"echo '{KNOWN}'" in text
    config = tmp_path / "config"
    config.write_text(text)
    default = resolved(config, "hub-alice")
    assert default["hostname"] == "alice" and default["user"] == "alice"
    assert default["proxyjump"] == "alice@ssh.hub.example.org:2222"
    assert default["stricthostkeychecking"] == "true"
    assert default["userknownhostsfile"].endswith("/.ssh/hybridhub_known_hosts")
    named = resolved(config, "alice.gpu")
    assert named["hostname"] == "alice.gpu" and named["proxyjump"] == "alice@ssh.hub.example.org:2222"
    # the gateway's own host key may be certified by the same CA
    assert "hybridhub_known_hosts" in resolved(config, "ssh.hub.example.org")["userknownhostsfile"]


def test_the_default_port_is_not_written() -> None:
    assert "ProxyJump alice@gw.example.org\n" in config_snippet("alice", "gw.example.org", KNOWN)


def test_a_server_running_in_a_cluster_with_its_own_gateway_jumps_through_it(tmp_path: Path) -> None:
    require(shutil.which("ssh"), "needs OpenSSH's ssh client (make test installs openssh-client)")
    site = {"": ("onprem", "ssh.onprem.example.org:2200"), "big": ("lab", "[fd00::7]:2222")}
    text = config_snippet("alice", "ssh.hub.example.org:2222", KNOWN, site)
    assert "# hub-alice runs in onprem now: through onprem's own gateway." in text
    config = tmp_path / "config"
    config.write_text(text)
    default = resolved(config, "hub-alice")
    assert default["hostname"] == "alice" and default["user"] == "alice"
    assert default["proxyjump"] == "alice@ssh.onprem.example.org:2200"
    assert default["stricthostkeychecking"] == "true"
    big = resolved(config, "alice.big")
    assert big["hostname"] == "alice.big" and big["proxyjump"] == "alice@[fd00::7]:2222"
    # a server elsewhere, or not running, goes through the hub's gateway
    assert resolved(config, "alice.gpu")["proxyjump"] == "alice@ssh.hub.example.org:2222"
    # every gateway's own host key may be certified by the CA
    for gateway in ("ssh.hub.example.org", "ssh.onprem.example.org", "fd00::7"):
        assert "hybridhub_known_hosts" in resolved(config, gateway)["userknownhostsfile"], gateway
