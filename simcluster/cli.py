"""``hybridhub sim``: run emulated clusters (``up``) and mint exec-plugin tokens (``token``)."""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import gc
import json
import logging
import signal
import sys
from contextlib import suppress
from pathlib import Path

__all__ = ["main"]

log = logging.getLogger("simcluster")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="hybridhub sim", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser(
        "up",
        help="start the clusters of a cluster file and serve them until interrupted",
        description="Start emulated clusters, write a kubeconfig (one context per cluster: "
        "'onprem' and 'eks' in the default file) and an endpoints file, and serve until "
        "SIGINT/SIGTERM, then stop everything that was started.",
    )
    up.add_argument("--config", type=Path, help="cluster file (YAML); default: on-prem + EKS")
    up.add_argument("--kubeconfig", type=Path, required=True, help="where to write the kubeconfig")
    up.add_argument(
        "--endpoints",
        type=Path,
        help="where to write a JSON file of endpoints (per cluster: API, admin and Argo Server URL) "
        "and the admin token; it is removed again on exit",
    )
    up.add_argument("--host", default="127.0.0.1", help="address to listen on (default: %(default)s)")
    up.add_argument(
        "--runtime",
        choices=("simulated", "process"),
        help="run every cluster's pods with this runtime instead of the cluster file's: process runs "
        "them as real processes (root; without root it falls back to process-loopback, and says so)",
    )
    up.add_argument(
        "--state-dir",
        type=Path,
        help="where process runtimes keep pod files and volumes (default: a temporary directory, "
        "removed on exit)",
    )
    up.add_argument("--log-level", default="WARNING", help="default: %(default)s")
    token = sub.add_parser(
        "token",
        help="print an ExecCredential with a short-lived token (a kubeconfig exec plugin)",
    )
    token.add_argument("--key-file", type=Path, required=True, help="the cluster's signing key (hex)")
    token.add_argument("--user", default="admin")
    token.add_argument("--ttl", type=float, default=900.0, help="token lifetime in seconds")
    return parser


def _token(args: argparse.Namespace) -> int:
    from .auth import mint_token

    try:
        key = bytes.fromhex(args.key_file.read_text().strip())
    except (OSError, ValueError) as exc:
        print(f"hybridhub sim token: cannot read the key file {args.key_file}: {exc}", file=sys.stderr)
        return 1
    token, expiry = mint_token(key, args.user, args.ttl)
    stamp = dt.datetime.fromtimestamp(expiry, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    print(
        json.dumps(
            {
                "apiVersion": "client.authentication.k8s.io/v1beta1",
                "kind": "ExecCredential",
                "status": {"token": token, "expirationTimestamp": stamp},
            }
        )
    )
    return 0


async def _up(args: argparse.Namespace) -> int:
    from .cluster import SimEnvironment
    from .config import ConfigError, load_cluster_file
    from .kubeconfig import write_files

    try:
        specs = load_cluster_file(args.config)
    except (ConfigError, OSError) as exc:
        print(f"hybridhub sim up: {exc}", file=sys.stderr)
        return 2
    if args.runtime:
        specs = tuple(dataclasses.replace(spec, runtime=args.runtime) for spec in specs)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    env = SimEnvironment(specs, host=args.host, state_dir=args.state_dir)
    try:
        await env.start()
        write_files(env, args.kubeconfig, args.endpoints)
        for name, cluster in env.clusters.items():
            print(f"cluster {name} ({cluster.spec.role}): {cluster.url}", flush=True)
            if cluster.argo_url:
                print(f"  Argo Server (Hera's host): {cluster.argo_url}", flush=True)
        print(f"kubeconfig: {args.kubeconfig} (contexts: {', '.join(env.clusters)})", flush=True)
        if args.endpoints:
            print(f"endpoints: {args.endpoints}", flush=True)
        await stop.wait()
    finally:
        await env.stop()
        if args.endpoints:
            with suppress(FileNotFoundError):
                args.endpoints.unlink()
    return 0


def main(argv: list[str]) -> int:
    args = _parser().parse_args(argv)
    if args.command == "token":
        return _token(args)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(name)s %(levelname)s %(message)s")
    gc.callbacks.append(_freeze_after_full_collection)
    return asyncio.run(_up(args))


def _freeze_after_full_collection(phase: str, info: dict[str, int]) -> None:
    """Move what survives a full collection out of the collector's sight (``gc.freeze``).

    The store holds millions of container objects (dicts and lists of stored JSON) that never form
    cycles; CPython rescans all of them in every full collection, which at 30,000 pods took 40% of
    the server's CPU and paused it for seconds (bench/simcluster_api.py). Frozen objects are still
    freed by reference counting; only a cycle among them that becomes garbage later is never freed.
    """
    if phase == "stop" and info.get("generation") == 2:
        gc.freeze()
