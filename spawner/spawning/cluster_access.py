"""How the hub reaches a cluster's API, and that cluster's pods the hub, from HYBRIDHUB_<CLUSTER>_* settings.

The shipped cluster files (hub_config/jupyterhub_config.d/10-clusters.py and its single-cluster
alternative) call :func:`access` with the environment the Helm chart gives the hub container.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["HUB_SERVICE_URL", "IN_CLUSTER", "access"]

IN_CLUSTER = "in-cluster"  # a KUBECONFIG setting's value for the hub pod's own service account
HUB_SERVICE_URL = "http://hub:8081"  # the chart's hub Service, as pods of the hub's namespace reach it


def access(cluster: str, kubeconfig: str, env: Mapping[str, str]) -> dict[str, Any]:
    """The cluster entry's access keys for ``cluster``, from ``env``'s HYBRIDHUB_<CLUSTER>_* settings.

    ``kubeconfig`` is the default of HYBRIDHUB_<CLUSTER>_KUBECONFIG: a path, or ``in-cluster``. The
    cluster the hub runs in defaults to the hub's namespace, and its pods reach the hub through the
    hub's Service; a cluster reached through a kubeconfig must be told the hub's URL. An unset or
    empty setting means its default. Raises ValueError naming the setting to fix.
    """

    def setting(name: str, default: str = "") -> str:
        return env.get(name) or default

    prefix = f"HYBRIDHUB_{cluster.upper()}_"
    path = setting(f"{prefix}KUBECONFIG", kubeconfig)
    context = setting(f"{prefix}CONTEXT") or None  # None: the kubeconfig's current-context
    in_cluster = path == IN_CLUSTER
    if in_cluster and context:
        raise ValueError(
            f"10-clusters.py: {prefix}CONTEXT is set but {prefix}KUBECONFIG is {IN_CLUSTER}: "
            "a context needs a kubeconfig"
        )
    hub_url = setting(f"{prefix}HUB_URL", HUB_SERVICE_URL if in_cluster else "")
    if not hub_url:
        raise ValueError(
            f"10-clusters.py: set {prefix}HUB_URL to the hub's URL as pods in {cluster} reach it, "
            "e.g. https://hub.example.org (required for a cluster the hub reaches through a kubeconfig)"
        )
    return {
        "kubeconfig": None if in_cluster else path,
        "context": context,
        "namespace": setting(
            f"{prefix}NAMESPACE", setting("POD_NAMESPACE", "jupyterhub") if in_cluster else "jupyterhub"
        ),
        "hub_connect_url": hub_url,
    }
