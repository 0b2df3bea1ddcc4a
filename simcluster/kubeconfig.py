"""Writes the kubeconfig and the endpoints file through which clients reach running simclusters."""

from __future__ import annotations

import base64
import os
import sys
from pathlib import Path
from typing import Any

import orjson
import yaml

from .cluster import SimEnvironment

__all__ = ["build_kubeconfig", "write_private"]


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically, readable by the owner only (it holds credentials)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def build_kubeconfig(env: SimEnvironment, kubeconfig: Path) -> dict[str, Any]:
    """A kubeconfig with one context per cluster, named after it.

    On-prem clusters get a static token, as a service-account token would be. Cloud clusters get an
    exec credential plugin (``hybridhub sim token``) minting 15-minute tokens, as ``aws eks
    get-token`` does; its signing key is written beside the kubeconfig.
    """
    clusters, users, contexts = [], [], []
    ca = base64.b64encode(env.certs.ca_pem).decode() if env.certs else None
    for name, cluster in env.clusters.items():
        clusters.append({"name": name, "cluster": {"server": cluster.url, "certificate-authority-data": ca}})
        if cluster.spec.role == "cloud":
            key_file = kubeconfig.with_name(f"{kubeconfig.name}.{name}.key")
            write_private(key_file, cluster.signing_key.hex().encode())
            user: dict[str, Any] = {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1beta1",
                    "command": sys.executable,
                    "args": [
                        "-m",
                        "spawner.cli",
                        "sim",
                        "token",
                        "--key-file",
                        str(key_file),
                        "--user",
                        "admin",
                        "--ttl",
                        str(cluster.spec.exec_token_ttl),
                    ],
                    "interactiveMode": "Never",
                    "provideClusterInfo": False,
                }
            }
        else:
            user = {"token": cluster.token_for("admin")}
        users.append({"name": f"{name}-admin", "user": user})
        contexts.append(
            {
                "name": name,
                "context": {"cluster": name, "user": f"{name}-admin", "namespace": "default"},
            }
        )
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": clusters,
        "users": users,
        "contexts": contexts,
        "current-context": contexts[0]["name"] if contexts else "",
    }


def write_files(env: SimEnvironment, kubeconfig: Path, endpoints: Path | None) -> None:
    write_private(kubeconfig, yaml.safe_dump(build_kubeconfig(env, kubeconfig), sort_keys=False).encode())
    ca_file = kubeconfig.with_name(f"{kubeconfig.name}.ca.crt")
    if env.certs is not None:
        write_private(ca_file, env.certs.ca_pem)
    if endpoints is not None:
        data = {
            **env.endpoints(),
            "kubeconfig": str(kubeconfig),
            "ca_file": str(ca_file),
            "pid": os.getpid(),
        }
        write_private(endpoints, orjson.dumps(data, option=orjson.OPT_INDENT_2))
