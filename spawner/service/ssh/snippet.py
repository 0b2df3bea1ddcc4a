"""The ready ``~/.ssh/config`` snippet a user copies from the service's page (pure)."""

from __future__ import annotations

__all__ = ["KNOWN_HOSTS_FILE", "config_snippet"]

KNOWN_HOSTS_FILE = "~/.ssh/hybridhub_known_hosts"


def config_snippet(user: str, gateway: str, known_hosts_line: str) -> str:
    """``ssh hub-USER`` reaches USER's default server and ``ssh USER.NAME`` a named one, through the
    gateway, trusting the hub's certificate authority for the servers' host keys.

    ``gateway`` is ``host`` or ``host:port``. OpenSSH reads ``@cert-authority`` lines only from a
    known_hosts file, so the snippet's first lines say how to write that file.
    """
    host, _, port = gateway.partition(":")
    jump = f"{user}@{host}" + (f":{port}" if port and port != "22" else "")
    return "\n".join(
        [
            f"# hybridhub: SSH into {user}'s notebook servers through the hub's SSH gateway.",
            f"# First save the hub's certificate authority as {KNOWN_HOSTS_FILE}:",
            f"#   echo '{known_hosts_line}' > {KNOWN_HOSTS_FILE}",
            f"# Then `ssh hub-{user}` (the default server) or `ssh {user}.NAME` (the server named NAME).",
            f"Host hub-{user}",
            f"    HostName {user}",
            f"Host hub-{user} {user}.*",
            f"    User {user}",
            f"    ProxyJump {jump}",
            f"    UserKnownHostsFile {KNOWN_HOSTS_FILE}",
            "    StrictHostKeyChecking yes",
            f"Host {host}",
            f"    UserKnownHostsFile ~/.ssh/known_hosts {KNOWN_HOSTS_FILE}",
            "",
        ]
    )
