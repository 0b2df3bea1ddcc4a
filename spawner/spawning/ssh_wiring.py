"""What HybridSpawner adds to a notebook pod when SSH is on: the SSH server wrapped around the
notebook's command in the notebook container, and its port (never on a per-user Service)."""

from __future__ import annotations

from collections.abc import Sequence

__all__ = ["SSH_PORT_NAME", "with_ssh_server"]

SSH_PORT_NAME = "ssh"  # the container port's name; NetworkPolicies and the gateway mean this port


def with_ssh_server(args: Sequence[str], server_command: Sequence[str], port: int) -> list[str]:
    """The notebook container's arguments with the SSH server started beside the notebook's command:
    ``hybridhub ssh-server --port=P -- <the notebook's command>``. The server forwards signals to the
    notebook and ends with it, so the pod lives and dies with the notebook, as before. Already
    wrapped arguments (a hook that ran twice) are left as they are."""
    wrapper = [*server_command, f"--port={port}", "--"]
    if list(args[: len(wrapper)]) == wrapper:
        return list(args)
    return [*wrapper, *args]
