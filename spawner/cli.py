"""The ``hybridhub`` console script: dispatches ``hybridhub SUBCOMMAND ...`` to its module.

Subcommand modules are imported only when chosen, so ``hybridhub ssh-server`` in the notebook image
never imports the hub side, and ``hybridhub sim`` never imports JupyterHub.
"""

from __future__ import annotations

import importlib
import sys

__all__ = ["SUBCOMMANDS", "main"]

# name -> (module exposing ``main(argv: list[str]) -> int``, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "demo": (
        "spawner.demo.cli",
        "run the whole hub on this machine on simcluster (status, outage, recover from another shell)",
    ),
    "service": (
        "spawner.service.app",
        "run the hybridhub service (inventory, health, placement) beside the hub",
    ),
    "ssh-server": (
        "spawner.ssh.cli",
        "run the SSH server in the notebook container (alone, or beside the notebook: -- COMMAND...)",
    ),
    "sim": ("simcluster.cli", "run simcluster, the emulated Kubernetes + Argo API (up, token)"),
    "ssh-gateway": (
        "spawner.ssh.gateway_cli",
        "run the SSH gateway beside the hub: users' ssh -J to their notebooks' SSH servers",
    ),
}


def _usage() -> str:
    width = max(len(name) for name in SUBCOMMANDS)
    lines = ["usage: hybridhub SUBCOMMAND [ARGS...]", "", "subcommands:"]
    lines += [f"  {name:<{width}}  {text}" for name, (_, text) in sorted(SUBCOMMANDS.items())]
    lines += ["", "Run 'hybridhub SUBCOMMAND --help' for the options of one subcommand."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in {"-h", "--help", "help"}:
        print(_usage())
        return 0
    name, rest = args[0], args[1:]
    if name not in SUBCOMMANDS:
        print(f"hybridhub: unknown subcommand {name!r}\n\n{_usage()}", file=sys.stderr)
        return 2
    module = importlib.import_module(SUBCOMMANDS[name][0])
    return int(module.main(rest) or 0)


if __name__ == "__main__":
    sys.exit(main())
