"""The hybridhub wiring of a harness hub: the service as a managed service, scopes, roles, tokens."""

from __future__ import annotations

import secrets
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from simcluster.testing import SimProcess
from tests.harness.hub import HubProcess, free_port

__all__ = ["HybridWiring", "clusters_value", "wire"]

TOLERATE_GPU = {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}


@dataclass
class HybridWiring:
    hub_token: str = field(default_factory=lambda: secrets.token_hex(16))  # HybridSpawner's
    prometheus_token: str = field(default_factory=lambda: secrets.token_hex(16))
    service_port: int = field(default_factory=free_port)

    @property
    def service_url(self) -> str:
        return f"http://127.0.0.1:{self.service_port}/services/hybridhub/"


NO_HOME = {"kind": "none"}


def clusters_value(
    sim: SimProcess,
    hub_port: int,
    *,
    homes: tuple[dict[str, str], dict[str, str]] = (NO_HOME, NO_HOME),
    eks_access: dict[str, str] | None = None,
) -> list[dict[str, object]]:
    """``c.ClusterSet.clusters`` for the harness topology (tests/harness/clusters.yaml): ``homes`` are
    the home storage of onprem and eks, ``eks_access`` how the hub reaches pods on eks (pod IPs)."""
    gateway = sim.endpoints["clusters"]["onprem"]["pod_gateway"]
    onprem_home, eks_home = homes
    return [
        {
            "name": "onprem",
            "role": "onprem",
            "kubeconfig": str(sim.kubeconfig),
            "context": "onprem",
            "namespace": "jupyterhub",
            "hub_connect_url": f"http://{gateway}:{hub_port}",
            "home_storage": onprem_home,
            "pools": [{"name": "gpu", "node_selector": {"nvidia.com/gpu.present": "true"}}],
        },
        {
            "name": "eks",
            "role": "cloud",
            "kubeconfig": str(sim.kubeconfig),
            "context": "eks",
            "namespace": "jupyterhub",
            "hub_connect_url": f"http://{gateway}:{hub_port}",
            "home_storage": eks_home,
            **(eks_access or {}),
            "pools": [
                {"name": "system", "node_selector": {"eks.amazonaws.com/nodegroup": "system"}},
                {
                    "name": "gpu-l40s",
                    "node_selector": {"eks.amazonaws.com/nodegroup": "gpu-l40s"},
                    "elastic": True,
                    "max_nodes": 4,
                    "gpus_per_node": 4,
                    "gpu_product": "NVIDIA-L40S",
                    "provisioning_deadline": 60,
                    "tolerations": [TOLERATE_GPU],
                },
            ],
        },
    ]


# The service's schedule in tests: probes every second, sweeps every second after 2 s of grace, so
# that outages and leftovers show within a test's patience. Benchmarks keep the shipped defaults.
QUICK_SERVICE = (
    "c.HybridHubService.probe_interval = 1.0\n"
    "c.HybridHubService.leftover_sweep_interval = 1.0\nc.HybridHubService.leftover_grace = 2.0\n"
)


def wire(
    hub: HubProcess, sim: SimProcess, work: Path, *, spawner: bool, quick: bool = True, **clusters_kw: Any
) -> HybridWiring:
    """Add the service (and, with ``spawner``, HybridSpawner) to ``hub``'s configuration; ``clusters_kw``
    go to :func:`clusters_value`. ``quick``: the service probes and sweeps on the tests' short
    schedule (QUICK_SERVICE); otherwise on its defaults."""
    w = HybridWiring()
    clusters = clusters_value(sim, hub.hub_port, **clusters_kw)
    config = work / "hybridhub_service_config.py"
    config.write_text(f"c.ClusterSet.clusters = {clusters!r}\n" + (QUICK_SERVICE if quick else ""))
    extra = f"""
c.JupyterHub.custom_scopes = {{
    "custom:hybridhub:capacity": {{"description": "See GPU availability of the clusters"}},
    "custom:hybridhub:place": {{"description": "Ask the hybridhub service for placements (the hub)"}},
    "custom:hybridhub:servers": {{"description": "Look up where any user's server runs"}},
    "custom:hybridhub:runs": {{"description": "Submit, read and delete one's own runs"}},
}}
c.JupyterHub.services.append({{
    "name": "hybridhub", "url": "http://127.0.0.1:{w.service_port}",
    # the hub's connect URL is the pods' gateway (169.254.1.1); the service runs on this host
    "command": [{sys.executable!r}, "-m", "spawner.cli", "service", "--config", {str(config)!r},
                "--HybridHubService.api_url=http://127.0.0.1:{hub.hub_port}/hub/api"],
}})
c.JupyterHub.load_roles.append({{  # the leftover sweep asks which servers run or start
    "name": "hybridhub-service", "scopes": ["list:users", "read:servers"], "services": ["hybridhub"],
}})
c.JupyterHub.services.append({{"name": "hybridhub-hub", "api_token": {w.hub_token!r}}})
c.JupyterHub.services.append({{"name": "prometheus", "api_token": {w.prometheus_token!r}}})
c.JupyterHub.load_roles.append({{
    "name": "prometheus",
    "scopes": ["access:services!service=hybridhub", "read:metrics"],
    "services": ["prometheus"],
}})
c.JupyterHub.load_roles.append({{
    "name": "user",
    "scopes": ["self", "access:services!service=hybridhub", "custom:hybridhub:capacity",
               "custom:hybridhub:runs"],
}})
c.JupyterHub.load_roles.append({{
    "name": "hybridhub-hub",
    "scopes": ["access:services!service=hybridhub", "custom:hybridhub:place", "custom:hybridhub:servers",
               "custom:hybridhub:capacity"],
    "services": ["hybridhub-hub"],
}})
"""
    if spawner:
        extra += f"""
c.JupyterHub.spawner_class = "hybrid"
# the proxy and the service reach the hub here; pods use their cluster's hub_connect_url (the gateway)
c.JupyterHub.hub_connect_url = "http://127.0.0.1:{hub.hub_port}"
c.ClusterSet.clusters = {clusters!r}
c.HybridSpawner.service_url = {w.service_url!r}
c.HybridSpawner.service_token = {w.hub_token!r}
c.HybridSpawner.start_timeout = 120
c.Spawner.poll_interval = 2
c.JupyterHub.cleanup_servers = False  # servers outlive a hub restart, as in production
"""
    hub.extra_config = extra
    return w
