"""Loading hub_config/ as the hub and the chart do, and reading back what it configured (test helpers)."""

from __future__ import annotations

import copy
import shutil
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from traitlets.config import Config, LazyConfigValue
from traitlets.config.loader import PyFileConfigLoader

from spawner.core.clusters import ClusterSet
from spawner.hybrid import HybridSpawner

ROOT = Path(__file__).resolve().parents[2]
HUB_CONFIG = ROOT / "hub_config"
CONFIG_D = HUB_CONFIG / "jupyterhub_config.d"
Z2JH_CONFIG_D = "/usr/local/etc/jupyterhub/jupyterhub_config.d"  # where the chart mounts the files
TOPOLOGIES = ["two-cluster", "single-cluster"]

CLUSTER_FIELDS = (
    "KUBECONFIG",
    "CONTEXT",
    "NAMESPACE",
    "HUB_URL",
    "SERVICE_URL",
    # a gateway inside the cluster (optional)
    "SSH_GATEWAY_TOKEN",
    "SSH_GATEWAY_ADDRESS",
)
# Every variable the files read. A test starts with none of them set, so the machine's own
# environment never leaks in, and sets those it means.
SETTINGS = (
    "POD_NAMESPACE",
    "HYBRIDHUB_HUB_TOKEN",
    "HYBRIDHUB_PROMETHEUS_TOKEN",
    "HYBRIDHUB_CLUSTERS_FILE",
    *(f"HYBRIDHUB_{cluster}_{field}" for cluster in ("ONPREM", "EKS") for field in CLUSTER_FIELDS),
    *(f"HYBRIDHUB_SERVICE_{field}" for field in ("PORT", "PROXY_URL", "BIND_URL", "URL")),
    # SSH: the gateway's hub token and whether it may start servers (30-service.py), and the
    # service's own settings, which reach it through the service's environment
    "HYBRIDHUB_SSH_GATEWAY_TOKEN",
    "HYBRIDHUB_SSH_GATEWAY_START_SERVERS",
    "HYBRIDHUB_SERVICE_DB_URL",
    "HYBRIDHUB_SSH_GATEWAY_ADDRESS",
    # a gateway inside a cluster (optional)
    *(
        f"HYBRIDHUB_{cluster}_SSH_GATEWAY_{field}"
        for cluster in ("ONPREM", "EKS")
        for field in ("TOKEN", "ADDRESS")
    ),
    "HYBRIDHUB_SSH_SITE_GATEWAYS",
)


def use_environment(monkeypatch: pytest.MonkeyPatch, env: Mapping[str, str]) -> None:
    """The hub's environment is exactly ``env`` as far as the files' settings go."""
    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)


def hub_dir(topology: str, tmp_path: Path) -> Path:
    """hub_config/ itself, or a copy whose 10-clusters.py is the single-cluster one (as the chart would
    mount it at the same path)."""
    if topology == "two-cluster":
        return HUB_CONFIG
    target = tmp_path / "hub_config"
    if target.is_dir():
        return target
    shutil.copytree(HUB_CONFIG, target, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(
        HUB_CONFIG / "single-cluster" / "10-clusters.py", target / "jupyterhub_config.d" / "10-clusters.py"
    )
    return target


def load(directory: Path) -> Config:
    """What ``jupyterhub -f DIR/jupyterhub_config.py`` loads (the same traitlets loader)."""
    return PyFileConfigLoader("jupyterhub_config.py", path=str(directory)).load_config()


def load_as_chart(directory: Path, config: Config | None = None) -> Config:
    """What z2jh's loader makes of the files: each exec'd in one namespace, after the chart's own
    settings (``config``), with z2jh's ``get_config``, a Helm values lookup that needs a key."""

    def z2jh_get_config(key: str, default: Any = None) -> Any:
        return default

    config = Config() if config is None else config
    namespace = {"c": config, "get_config": z2jh_get_config, "__file__": f"{Z2JH_CONFIG_D}/x.py"}
    for path in sorted((directory / "jupyterhub_config.d").glob("*.py")):
        exec(compile(path.read_text(), path.name, "exec"), namespace)
    return config


def resolved(section: Config, name: str, initial: Any) -> Any:
    """A setting as the configured class sees it: ``.append``/``.update`` on a fresh Config are lazy."""
    value = section[name]
    return value.get_value(copy.deepcopy(initial)) if isinstance(value, LazyConfigValue) else value


def plain(value: Any) -> Any:
    """A Config as comparable dicts (lazy values as their pending operations)."""
    if isinstance(value, LazyConfigValue):
        return value.to_dict()
    if isinstance(value, dict):
        return {k: plain(v) for k, v in value.items()}
    return value


def services(config: Config) -> dict[str, dict[str, Any]]:
    return {s["name"]: s for s in resolved(config.JupyterHub, "services", [])}


def roles(config: Config) -> list[dict[str, Any]]:
    return list(resolved(config.JupyterHub, "load_roles", []))


def wiring(config: Config) -> dict[str, Any]:
    """Every address and credential the files configure, by where it is used: ``CLUSTER.FIELD`` for
    each cluster's API access and hub URL, ``service.*`` for the managed service's definition, and
    ``spawner.*`` as HybridSpawner sees it (the service's URL for the hub, and for each cluster's pods,
    and whether SSH is on)."""
    result: dict[str, Any] = {}
    for cluster in ClusterSet(config=config).configs:
        for field in ("kubeconfig", "context", "namespace", "hub_connect_url"):
            result[f"{cluster.name}.{field}"] = getattr(cluster, field)
    service = services(config)["hybridhub"]
    command = service["command"]
    binds = [arg.partition("=")[2] for arg in command if arg.startswith("--HybridHubService.bind_url=")]
    result["service.url"] = service["url"]
    result["service.bind_url"] = binds[0] if len(binds) == 1 else binds
    result["service.config"] = command[command.index("--config") + 1]
    spawner = HybridSpawner(config=config, _mock=True)
    result["spawner.service_url"] = spawner.service_url
    result["spawner.ssh_enabled"] = spawner.ssh_enabled
    result["spawner.pod_service_urls"] = dict(spawner.pod_service_urls)
    return result


def chart_environment(values: Mapping[str, Any]) -> dict[str, str]:
    """The settings in the hub container's environment as the chart makes it from ``values``:
    ``hub.extraEnv``'s values, a stand-in for each required Secret key (optional ones left out), and
    the namespace, which the chart sets itself."""
    env = {"POD_NAMESPACE": "hub-ns"}
    for name, value in values["hub"]["extraEnv"].items():
        if isinstance(value, str):
            env[name] = value
        elif not value["valueFrom"]["secretKeyRef"].get("optional", False):
            env[name] = f"secret-{name.lower()}"
    return env
