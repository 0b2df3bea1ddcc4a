"""``hybridhub demo``: run the demo; from another shell ``status``, ``outage onprem``, ``recover onprem``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from .state import DemoError

__all__ = ["main"]

ACTIONS = ("status", "outage", "recover")


def _state_dir(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--state-dir",
        default=".demo",
        help="the demo's files: kubeconfig, logs, the hub's database and the state file (demo.json) by which "
        "`hybridhub demo status|outage|recover` find it (default: %(default)s, under the current directory)",
    )


def _run_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridhub demo",
        description="Run the whole hub on this machine: simcluster's on-prem and EKS clusters, the hybridhub "
        "service, JupyterHub with HybridSpawner and configurable-http-proxy, loading the shipped "
        "hub_config/jupyterhub_config.d files. Log in with any user name and the printed password. Runs "
        "until Ctrl-C or SIGTERM, then stops every process it started. From another shell: "
        "`hybridhub demo status`, `hybridhub demo outage onprem [--api|--link|--site]`, "
        "`hybridhub demo recover onprem`.",
    )
    parser.add_argument(
        "--ip",
        default="127.0.0.1",
        help="the address people browse to (default: %(default)s; a login is a shell on this machine, so "
        "think before 0.0.0.0)",
    )
    parser.add_argument(
        "--port", type=int, default=8000, help="the proxy's public port (default: %(default)s)"
    )
    parser.add_argument(
        "--proxy-api-port",
        type=int,
        default=8001,
        help="the proxy's REST API, on 127.0.0.1 (default: %(default)s)",
    )
    parser.add_argument(
        "--hub-port",
        type=int,
        default=8081,
        help="the hub's own port, which the proxy, the service and the pods reach; as root it listens on "
        "every address, since pods reach this machine at 169.254.1.1, which exists only while a pod does "
        "(the password still guards it) (default: %(default)s)",
    )
    parser.add_argument(
        "--service-port",
        type=int,
        default=10101,
        help="the hybridhub service, on 127.0.0.1 (as root on every address, for the pods) "
        "(default: %(default)s)",
    )
    parser.add_argument(
        "--ssh-port",
        type=int,
        default=2222,
        help="the SSH gateway, on --ip: ssh -J USER@HOST:PORT USER (default: %(default)s)",
    )
    parser.add_argument(
        "--startup-timeout",
        type=float,
        default=120.0,
        help="seconds to wait for the hub and the service to answer (default: %(default)s)",
    )
    _state_dir(parser)
    return parser


def _action_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hybridhub demo", description="Drive a running demo from another shell."
    )
    sub = parser.add_subparsers(dest="action", required=True)
    status = sub.add_parser(
        "status", help="per cluster its health and GPUs free/total, and whose server runs where"
    )
    _state_dir(status)
    outage = sub.add_parser("outage", help="make an on-prem outage")
    outage.add_argument("cluster", choices=["onprem"], help="the cluster that fails")
    kind = outage.add_mutually_exclusive_group()
    kind.add_argument(
        "--api",
        dest="kind",
        action="store_const",
        const="api",
        help="the on-prem API refuses connections; its pods run on (the default)",
    )
    kind.add_argument(
        "--link",
        dest="kind",
        action="store_const",
        const="link",
        help="the site link drops: the on-prem API and pod addresses hang, the site runs on (needs root)",
    )
    kind.add_argument(
        "--site",
        dest="kind",
        action="store_const",
        const="site",
        help="the site goes dark: as --link, and every on-prem pod stops (needs root)",
    )
    outage.set_defaults(kind="api")
    _state_dir(outage)
    recover = sub.add_parser("recover", help="end an outage")
    recover.add_argument("cluster", choices=["onprem"], help="the cluster that comes back")
    recover.add_argument(
        "--wait",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="then wait up to this long for the service to call the cluster healthy again, so that the "
        "next spawn goes there (default: %(default)s; 0: do not wait)",
    )
    _state_dir(recover)
    return parser


def _act(args: argparse.Namespace) -> int:
    from . import control
    from .plan import OUTAGES, outage_problem, status_lines
    from .state import read_state

    if args.action == "recover" and not args.wait >= 0:  # nan too
        raise DemoError("--wait must be 0 or more seconds")
    state = read_state(Path(args.state_dir))
    if args.action == "status":
        rows = control.servers(state)
        print("\n".join(status_lines(control.capacity(state), rows)))
        return 0
    if args.action == "recover":
        control.clear_faults(control.read_endpoints(Path(state.endpoints)), args.cluster)
        print(f"hybridhub demo: {args.cluster} is back (every fault cleared)", flush=True)
        if args.wait:
            print(f"hybridhub demo: {control.wait_healthy(state, args.cluster, args.wait)}")
        return 0
    problem = outage_problem(args.kind, state.runtime)
    if problem:
        raise DemoError(problem)
    endpoints = control.read_endpoints(Path(state.endpoints))
    outage = OUTAGES[args.kind]
    control.set_faults(endpoints, args.cluster, outage.faults)
    if outage.kill_pods:
        killed = control.kill_pods(endpoints, args.cluster)
        print(f"hybridhub demo: {killed} pod(s) on {args.cluster} stopped")
    print(
        f"hybridhub demo: {args.cluster}: {outage.says}; end it with `hybridhub demo recover {args.cluster}`"
    )
    return 0


def _run(args: argparse.Namespace) -> int:
    from .plan import Plan, Ports
    from .run import run

    for option in ("port", "proxy_api_port", "hub_port", "service_port", "ssh_port"):
        if not 0 < getattr(args, option) < 65536:
            raise DemoError(f"--{option.replace('_', '-')} must be a TCP port (1-65535)")
    plan = Plan(
        repo=Path(__file__).resolve().parents[2],
        state_dir=Path(args.state_dir).resolve(),
        ip=args.ip,
        ports=Ports(args.port, args.proxy_api_port, args.hub_port, args.service_port, args.ssh_port),
    )
    return run(plan, shown_dir=args.state_dir, startup_timeout=args.startup_timeout)


def main(argv: list[str]) -> int:
    acting = bool(argv) and argv[0] in ACTIONS
    args = (_action_parser() if acting else _run_parser()).parse_args(argv)
    try:
        return _act(args) if acting else _run(args)
    except DemoError as exc:
        print(f"hybridhub demo: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # `hybridhub demo status | head`: the reader is gone; say nothing more on the closed pipe
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
