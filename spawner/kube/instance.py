"""The hub instance name that HybridSpawner and the hybridhub service share unless told otherwise.

HybridSpawner labels every pod it makes with it (``hybridhub.io/hub``), and the service's leftover
sweep judges only pods with its own hub's name, so both must arrive at the same name without being
configured twice. They run in the same pod (the service is a managed service of the hub), and the
hub hands the service every ``HYBRIDHUB_*`` variable, so both read the same sources:

1. ``HYBRIDHUB_HUB_INSTANCE``, where an operator names the hub;
2. else the namespace the hub pod runs in, from its service account, as KubeSpawner finds its own
   default namespace. The chart cannot install two hubs in one namespace under its default names
   (its Services are called ``hub`` and ``proxy-public``), so this tells apart the hubs of one
   cluster with no setting at all;
3. else ``jupyterhub``, outside Kubernetes (the demo, tests).

Hubs of different clusters that place notebooks into one shared cluster must set distinct names:
nothing either can see tells them apart.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ENVIRONMENT_VARIABLE", "FALLBACK", "default_hub_instance"]

ENVIRONMENT_VARIABLE = "HYBRIDHUB_HUB_INSTANCE"
FALLBACK = "jupyterhub"
# Where Kubernetes puts the namespace of a pod's service account (automounted with its token).
NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")


def default_hub_instance(namespace_file: Path = NAMESPACE_FILE) -> str:
    """The hub's name for ``hybridhub.io/hub`` when none is configured (see the module docstring)."""
    named = os.environ.get(ENVIRONMENT_VARIABLE, "").strip()
    if named:
        return named
    try:
        namespace = namespace_file.read_text().strip()
    except OSError:  # not in a pod, or no service account token mounted
        namespace = ""
    return namespace or FALLBACK
