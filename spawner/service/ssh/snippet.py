"""The ready ``~/.ssh/config`` snippet a user copies from the service's page (pure)."""

from __future__ import annotations

from collections.abc import Mapping

from .gateways import host_of, split_address

__all__ = ["KNOWN_HOSTS_FILE", "config_snippet"]

KNOWN_HOSTS_FILE = "~/.ssh/hybridhub_known_hosts"


def _jump(user: str, gateway: str) -> str:
    host, port = split_address(gateway)
    return f"{user}@{host}" + (f":{port}" if port and port != "22" else "")


def config_snippet(
    user: str, gateway: str, known_hosts_line: str, site: Mapping[str, tuple[str, str]] | None = None
) -> str:
    """``ssh hub-USER`` reaches USER's default server and ``ssh USER.NAME`` a named one, through the
    gateway, trusting the hub's certificate authority for the servers' host keys.

    ``gateway`` is ``host`` or ``host:port``. ``site`` maps the name of a server that runs now in a
    cluster with a gateway of its own ("" for the default server) to (that cluster, that gateway's
    address): such a server's entry jumps through its site's gateway, ahead of the catch-all entry,
    since OpenSSH keeps the first value it reads. OpenSSH reads ``@cert-authority`` lines only from
    a known_hosts file, so the snippet's first lines say how to write that file.
    """
    lines = [
        f"# hybridhub: SSH into {user}'s notebook servers through the hub's SSH gateway.",
        f"# First save the hub's certificate authority as {KNOWN_HOSTS_FILE}:",
        f"#   echo '{known_hosts_line}' > {KNOWN_HOSTS_FILE}",
        f"# Then `ssh hub-{user}` (the default server) or `ssh {user}.NAME` (the server named NAME).",
    ]
    for name, (cluster, address) in sorted((site or {}).items()):
        alias = f"{user}.{name}" if name else f"hub-{user}"
        lines += [
            f"# {alias} runs in {cluster} now: through {cluster}'s own gateway. If it moves, copy this",
            f"# snippet again; the hub's gateway ({gateway}) reaches it wherever it runs.",
            f"Host {alias}",
            f"    ProxyJump {_jump(user, address)}",
        ]
    hosts = sorted({host_of(gateway), *(host_of(address) for _, address in (site or {}).values())})
    lines += [
        f"Host hub-{user}",
        f"    HostName {user}",
        f"Host hub-{user} {user}.*",
        f"    User {user}",
        f"    ProxyJump {_jump(user, gateway)}",
        f"    UserKnownHostsFile {KNOWN_HOSTS_FILE}",
        "    StrictHostKeyChecking yes",
        f"Host {' '.join(hosts)}",
        f"    UserKnownHostsFile ~/.ssh/known_hosts {KNOWN_HOSTS_FILE}",
        "",
    ]
    return "\n".join(lines)
