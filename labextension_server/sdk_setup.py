"""Points Hera, kubectl and the Kubernetes client of a notebook container at the hybridhub service.

The service serves an Argo-Server-compatible API under ``<service URL>argo/`` for Hera and a
Kubernetes-compatible one under ``<service URL>k8s`` for kubectl and the Katib and Kubeflow SDKs, both
authenticated with the notebook server's hub token. Hera takes that token from a callable, and the
kubeconfig's user is an exec plugin that prints it, so the token never lands in a file.

The builders are pure; ``write_kubeconfig`` and ``configure_hera`` are the only effects.
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ._endpoints import (
    CREDENTIAL_MODULE,
    EXEC_API_VERSION,
    KUBECONFIG_VARIABLE,
    SERVICE_URL_VARIABLE,
    TOKEN_VARIABLE,
    argo_host,
    kubernetes_url,
)

__all__ = [
    "CREDENTIAL_MODULE",
    "EXEC_API_VERSION",
    "KUBECONFIG_VARIABLE",
    "NAMESPACE",
    "SERVICE_URL_VARIABLE",
    "TOKEN_VARIABLE",
    "HeraSettings",
    "argo_host",
    "configure_hera",
    "hera_settings",
    "hub_token",
    "kubeconfig",
    "kubernetes_url",
    "render_kubeconfig",
    "write_kubeconfig",
]

# The namespace the SDKs name. The service treats it as an alias of the user's own run namespace.
NAMESPACE = "default"
# The names inside the kubeconfig: one cluster, one user, one context, all called after the product.
NAME = "hybridhub"


@dataclass(frozen=True)
class HeraSettings:
    """What Hera's global_config gets in a notebook container."""

    host: str
    """The service's Argo Server endpoint."""
    namespace: str = NAMESPACE
    """The namespace Hera's services put in each request's path."""


def hera_settings(service_url: str) -> HeraSettings:
    """Hera's settings for the service at ``service_url``."""
    return HeraSettings(host=argo_host(service_url))


def hub_token(environ: Mapping[str, str] | None = None) -> str | None:
    """The notebook server's hub token, read anew each time Hera builds a service."""
    return (os.environ if environ is None else environ).get(TOKEN_VARIABLE) or None


def configure_hera(config: Any, service_url: str) -> None:
    """Set Hera's ``global_config`` (passed in, so this module never imports hera) for the service.

    The token is the ``hub_token`` function rather than its value, so a token the hub replaces while the
    server runs is the one the next service sends.
    """
    settings = hera_settings(service_url)
    config.host = settings.host
    config.namespace = settings.namespace
    config.token = hub_token


def kubeconfig(service_url: str, python: str | None = None) -> dict[str, Any]:
    """A kubeconfig for the service's Kubernetes endpoint whose user runs the credential plugin.

    ``python`` is the interpreter the plugin runs with, this one by default: it has this package.
    """
    user = {
        "exec": {
            "apiVersion": EXEC_API_VERSION,
            "command": python or sys.executable,
            "args": ["-m", CREDENTIAL_MODULE],
            "interactiveMode": "Never",
            "provideClusterInfo": False,
        }
    }
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": [{"name": NAME, "cluster": {"server": kubernetes_url(service_url)}}],
        "users": [{"name": NAME, "user": user}],
        "contexts": [{"name": NAME, "context": {"cluster": NAME, "user": NAME, "namespace": NAMESPACE}}],
        "current-context": NAME,
    }


def render_kubeconfig(config: Mapping[str, Any]) -> bytes:
    """The file's bytes. JSON is YAML, so every kubeconfig reader takes it, and needs no YAML library."""
    return (json.dumps(config, indent=2) + "\n").encode()


def write_kubeconfig(
    path: str | os.PathLike[str] | None = None,
    service_url: str | None = None,
    python: str | None = None,
) -> bool:
    """Write the kubeconfig to ``path`` ($KUBECONFIG by default) for ``service_url``
    ($HYBRIDHUB_SERVICE_URL by default); returns whether the file changed.

    The file is replaced in one rename, so a kubectl starting meanwhile reads the old file or the new one,
    never half of one. It holds no secret, so it is world-readable (0644). A file that already has these
    bytes is left alone.
    """
    target = os.fspath(path if path is not None else os.environ.get(KUBECONFIG_VARIABLE, ""))
    url = service_url if service_url is not None else os.environ.get(SERVICE_URL_VARIABLE, "")
    if not target:
        raise ValueError(f"no kubeconfig path: ${KUBECONFIG_VARIABLE} is not set")
    if not url:
        raise ValueError(f"no service URL: ${SERVICE_URL_VARIABLE} is not set")
    data = render_kubeconfig(kubeconfig(url, python))
    try:
        with open(target, "rb") as fh:
            if fh.read() == data:
                return False
    except OSError:
        pass  # missing or unreadable: written below
    directory = os.path.dirname(os.path.abspath(target))
    os.makedirs(directory, exist_ok=True)
    # The temporary file's name is unique per process, so processes starting together never share one.
    tmp = os.path.join(directory, f".{os.path.basename(target)}.{os.getpid()}.tmp")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.chmod(tmp, 0o644)  # the umask may have taken bits away
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    return True
