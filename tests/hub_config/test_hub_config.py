"""hub_config/: the config.d files load into a working hub, service and Helm values, in both topologies."""

from __future__ import annotations

import copy
import importlib.util
import os
import re
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from jupyterhub import scopes as hub_scopes
from jupyterhub.app import JupyterHub
from traitlets.config import Config

from spawner.cli import SUBCOMMANDS
from spawner.core.clusters import ClusterSet
from spawner.core.model import Role
from spawner.hybrid import HybridSpawner
from spawner.service.api import SCOPE_CAPACITY, SCOPE_PLACE, SCOPE_RUNS, SCOPE_SERVERS
from spawner.service.app import HybridHubService
from tests.environment import needs

from .configfiles import (
    CONFIG_D,
    HUB_CONFIG,
    ROOT,
    TOPOLOGIES,
    Z2JH_CONFIG_D,
    chart_environment,
    hub_dir,
    load,
    load_as_chart,
    plain,
    resolved,
    roles,
    services,
    use_environment,
)

Z2JH = ROOT.parent / "shared" / "data" / "z2jh"  # the chart's values and schema (test data, not shipped)

# the hub in EKS (the default): on-prem through a kubeconfig of its own, EKS in-cluster
ENV = {
    "POD_NAMESPACE": "hub-ns",
    "HYBRIDHUB_ONPREM_KUBECONFIG": "/etc/hh/onprem.kubeconfig",
    "HYBRIDHUB_ONPREM_CONTEXT": "onprem-admin@lab",
    "HYBRIDHUB_ONPREM_NAMESPACE": "notebooks",
    "HYBRIDHUB_ONPREM_HUB_URL": "https://hub.example.org",
    "HYBRIDHUB_HUB_TOKEN": "hub-token-not-for-files",
    "HYBRIDHUB_SSH_GATEWAY_TOKEN": "gateway-token-not-for-files",
    "KUBERNETES_SERVICE_HOST": "10.96.0.1",
    "KUBERNETES_SERVICE_PORT": "443",
    "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
}


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    use_environment(monkeypatch, ENV)
    return dict(ENV)


@pytest.fixture(params=TOPOLOGIES)
def topology(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def config(topology: str, env: dict[str, str], tmp_path: Path) -> Config:
    return load(hub_dir(topology, tmp_path))


# ---------------------------------------------------------------------------------------------- clusters


def test_two_clusters_from_the_environment(env: dict[str, str]) -> None:
    onprem, eks = ClusterSet(config=load(HUB_CONFIG)).configs
    assert (onprem.name, onprem.role, onprem.in_cluster) == ("onprem", Role.ONPREM, False)
    assert (onprem.kubeconfig, onprem.context) == (
        env["HYBRIDHUB_ONPREM_KUBECONFIG"],
        env["HYBRIDHUB_ONPREM_CONTEXT"],
    )
    assert (onprem.namespace, onprem.hub_connect_url) == (
        env["HYBRIDHUB_ONPREM_NAMESPACE"],
        env["HYBRIDHUB_ONPREM_HUB_URL"],
    )
    assert (eks.name, eks.role, eks.in_cluster) == ("eks", Role.CLOUD, True)
    assert eks.namespace == env["POD_NAMESPACE"]
    elastic = {p.name: (p.gpu_product, p.gpus_per_node) for p in eks.pools if p.elastic}
    assert elastic == {"a100": ("NVIDIA-A100-SXM4-80GB", 8), "l40s": ("NVIDIA-L40S", 4)}
    assert not any(p.elastic for p in onprem.pools)


def test_single_cluster_has_an_onprem_and_a_cloud_pool(env: dict[str, str], tmp_path: Path) -> None:
    (cluster,) = ClusterSet(config=load(hub_dir("single-cluster", tmp_path))).configs
    assert cluster.in_cluster and cluster.pod_access == "pod-ip"
    assert {p.name: cluster.pool_role(p) for p in cluster.pools} == {
        "onprem": Role.ONPREM,
        "cloud": Role.CLOUD,
    }
    assert cluster.roles == {Role.ONPREM, Role.CLOUD}
    assert cluster.pool("cloud").elastic and not cluster.pool("onprem").elastic


def test_the_onprem_hub_url_is_required(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HYBRIDHUB_ONPREM_HUB_URL")
    with pytest.raises(ValueError, match="HYBRIDHUB_ONPREM_HUB_URL"):
        load(HUB_CONFIG)


# ---------------------------------------------------------------------------------------------- spawner


def test_the_hub_uses_hybrid_spawner(config: Config) -> None:
    hub = JupyterHub(config=config)
    assert hub.spawner_class is HybridSpawner
    spawner = HybridSpawner(config=config, _mock=True)
    assert spawner.gpu_products == ["NVIDIA-A100-SXM4-80GB", "NVIDIA-L40S"]
    assert spawner.automount_service_account_token is False
    assert spawner.cluster_set.configs == ClusterSet(config=config).configs
    # the last candidate may wait for an elastic pool's node: start_timeout leaves room for that
    deadline = max(
        p.provisioning_deadline or spawner.elastic_deadline
        for c in spawner.cluster_set.configs
        for p in c.pools
        if p.elastic
    )
    assert spawner.start_timeout > deadline
    # its placement token is the hybridhub-hub service's, from the environment (HybridSpawner's default)
    assert spawner.service_token == services(config)["hybridhub-hub"]["api_token"]


def test_every_spawner_setting_is_a_trait(config: Config) -> None:
    traits = set(HybridSpawner.class_trait_names(config=True))
    assert set(config.HybridSpawner) <= traits
    assert set(config.Spawner) <= traits


# ---------------------------------------------------------------------------------------------- service


def test_the_managed_service(config: Config, env: dict[str, str]) -> None:
    service = services(config)["hybridhub"]
    command = service["command"]
    assert command[:2] == ["hybridhub", "service"] and "service" in SUBCOMMANDS
    assert command[command.index("--config") + 1] == f"{Z2JH_CONFIG_D}/10-clusters.py"
    port = re.search(r":(\d+)$", service["url"])
    assert port and f"--HybridHubService.bind_url=http://0.0.0.0:{port.group(1)}" in command
    environment = service["environment"]
    assert not {"HYBRIDHUB_HUB_TOKEN", "HYBRIDHUB_PROMETHEUS_TOKEN", "HYBRIDHUB_SSH_GATEWAY_TOKEN"} & set(
        environment
    )
    for name in ("KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "POD_NAMESPACE", "AWS_ACCESS_KEY_ID"):
        assert environment[name] == env[name]
    assert env["HYBRIDHUB_HUB_TOKEN"] not in repr(service)  # the API shows url and command to readers
    assert env["HYBRIDHUB_SSH_GATEWAY_TOKEN"] not in repr(service)


def test_the_service_reads_the_same_clusters_with_its_own_environment(
    config: Config, topology: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The service runs the clusters file itself (``--config``), with only the environment JupyterHub
    gives a managed service: what the file reads must be in the service definition's ``environment``."""
    service = services(config)["hybridhub"]
    clusters_file = hub_dir(topology, tmp_path) / "jupyterhub_config.d" / "10-clusters.py"
    argv = [
        arg.replace(f"{Z2JH_CONFIG_D}/10-clusters.py", str(clusters_file)) for arg in service["command"][2:]
    ]
    for name in list(os.environ):
        if name not in ("PATH", "LANG"):
            monkeypatch.delenv(name)
    for name, value in service["environment"].items():
        monkeypatch.setenv(name, value)
    app = HybridHubService()
    app.initialize(argv)
    assert app.cluster_set.configs == ClusterSet(config=config).configs
    assert app.bind_url.startswith("http://0.0.0.0:")


def test_the_hub_token_is_required(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HYBRIDHUB_HUB_TOKEN")
    with pytest.raises(ValueError, match="HYBRIDHUB_HUB_TOKEN"):
        load(HUB_CONFIG)


@pytest.fixture
def custom_scopes_defined(config: Config, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, Any]]:
    """JupyterHub's scope table with the config's custom scopes, as the hub defines them at startup."""
    monkeypatch.setattr(hub_scopes, "scope_definitions", copy.deepcopy(hub_scopes.scope_definitions))
    custom = resolved(config.JupyterHub, "custom_scopes", {})
    hub_scopes.define_custom_scopes(custom)  # checks names and descriptions
    yield custom


def test_scopes_and_roles_are_consistent(config: Config, custom_scopes_defined: dict[str, Any]) -> None:
    assert {SCOPE_CAPACITY, SCOPE_PLACE, SCOPE_SERVERS, SCOPE_RUNS} <= set(custom_scopes_defined)
    defined = services(config)
    names = [r["name"] for r in roles(config)]
    assert len(names) == len(set(names)), "a role defined twice stops the hub"
    for role in roles(config):
        hub_scopes._check_scopes_exist(role["scopes"], who_for=f"role {role['name']}")
        for scope in role["scopes"]:
            if scope.startswith("access:services!service="):
                assert scope.partition("=")[2] in defined
        assert set(role.get("services", [])) <= set(defined)
    by_name = {r["name"]: r for r in roles(config)}
    assert SCOPE_PLACE in by_name["hybridhub-hub"]["scopes"]
    assert SCOPE_PLACE not in by_name["user"]["scopes"] and "self" in by_name["user"]["scopes"]
    assert SCOPE_RUNS in by_name["user"]["scopes"]  # every user may submit runs (docs/runs.md)


def test_server_tokens_can_reach_the_service(config: Config, custom_scopes_defined: dict[str, Any]) -> None:
    """JupyterHub gives a server token only the requested scopes its owner holds, and the list replaces
    the default ``server`` role's: both must hold."""
    requested = list(config.Spawner.server_token_scopes)
    hub_scopes._check_scopes_exist(requested, who_for="server_token_scopes")
    assert {"users:activity!user", "access:servers!server"} <= set(requested)
    # the SDKs in a notebook send its server's token: it reaches capacity and runs
    assert {"access:services!service=hybridhub", SCOPE_CAPACITY, SCOPE_RUNS} <= set(requested)
    user_role = next(r for r in roles(config) if r["name"] == "user")
    extra = set(requested) - {"users:activity!user", "access:servers!server"}
    assert extra <= set(user_role["scopes"])


def test_prometheus_only_with_its_token(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    assert "prometheus" not in services(load(HUB_CONFIG))
    monkeypatch.setenv("HYBRIDHUB_PROMETHEUS_TOKEN", "prom-token")
    config = load(HUB_CONFIG)
    assert services(config)["prometheus"]["api_token"] == "prom-token"
    role = next(r for r in roles(config) if r["name"] == "prometheus")
    assert role["services"] == ["prometheus"] and "read:metrics" in role["scopes"]


# ---------------------------------------------------------------------------------------------- SSH

GATEWAY = "ssh-gateway"
# What the gateway's token may do (spawner/ssh/gateway_cli.py, GatewayApp.api_token): see users (admins,
# and who the owner shared a server with), their servers and shares, where a server runs (the service's
# api/servers) and the users' keys (the service itself); `servers` only to start a stopped one.
GATEWAY_SCOPES = {
    "read:users",
    "read:servers",
    "read:shares",
    SCOPE_SERVERS,
    "access:services!service=hybridhub",
}


def gateway_roles(config: Config) -> list[dict[str, Any]]:
    return [r for r in roles(config) if GATEWAY in r.get("services", [])]


@pytest.mark.parametrize(
    ("start_servers", "extra"),
    [(None, set()), ("false", set()), ("0", set()), ("true", {"servers"}), ("yes", {"servers"})],
    ids=["default", "false", "0", "true", "yes"],
)
def test_the_ssh_gateway_with_its_token_and_exactly_its_scopes(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch, start_servers: str | None, extra: set[str]
) -> None:
    if start_servers is not None:
        monkeypatch.setenv("HYBRIDHUB_SSH_GATEWAY_START_SERVERS", start_servers)
    config = load(HUB_CONFIG)
    assert services(config)[GATEWAY] == {"name": GATEWAY, "api_token": env["HYBRIDHUB_SSH_GATEWAY_TOKEN"]}
    (role,) = gateway_roles(config)
    assert sorted(role["scopes"]) == sorted(GATEWAY_SCOPES | extra)
    assert role["services"] == [GATEWAY]
    spawner = HybridSpawner(config=config, _mock=True)
    assert spawner.ssh_enabled is True
    assert set(spawner.pod_service_urls) == {c.name for c in spawner.cluster_set.configs}
    # the service signs the host certificate of a gateway by this name (HybridHubService's default)
    assert GATEWAY in HybridHubService().ssh_gateway_services


def test_without_the_gateway_token_ssh_is_off(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """No gateway to reach them: no SSH server in notebook pods, no service URL handed to them, and no
    gateway service or role in the hub."""
    monkeypatch.delenv("HYBRIDHUB_SSH_GATEWAY_TOKEN")
    config = load(HUB_CONFIG)
    assert GATEWAY not in services(config) and not gateway_roles(config)
    assert GATEWAY not in [r["name"] for r in roles(config)]
    spawner = HybridSpawner(config=config, _mock=True)
    assert (spawner.ssh_enabled, spawner.pod_service_urls) == (False, {})


def test_the_gateway_token_goes_to_the_gateway_only(config: Config, env: dict[str, str]) -> None:
    """Only the ssh-gateway service holds the token: not the managed service's environment, nor any
    other service's definition."""
    token = env["HYBRIDHUB_SSH_GATEWAY_TOKEN"]
    holders = [name for name, service in services(config).items() if token in repr(service)]
    assert holders == [GATEWAY]


def test_a_gateway_inside_a_cluster(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """HYBRIDHUB_ONPREM_SSH_GATEWAY_TOKEN and _ADDRESS: a second gateway service with the gateway's role,
    its token in no other definition, and the service told where that cluster's gateway is."""
    monkeypatch.setenv("HYBRIDHUB_ONPREM_SSH_GATEWAY_TOKEN", "onprem-gateway-token-not-for-files")
    monkeypatch.setenv("HYBRIDHUB_ONPREM_SSH_GATEWAY_ADDRESS", "ssh.onprem.example.org:2222")
    config = load(HUB_CONFIG)
    site = "ssh-gateway-onprem"
    assert services(config)[site] == {"name": site, "api_token": "onprem-gateway-token-not-for-files"}
    (role,) = gateway_roles(config)
    assert role["services"] == [GATEWAY, site] and sorted(role["scopes"]) == sorted(GATEWAY_SCOPES)
    holders = [n for n, svc in services(config).items() if "onprem-gateway-token-not-for-files" in repr(svc)]
    assert holders == [site]
    environment = services(config)["hybridhub"]["environment"]
    monkeypatch.setenv("HYBRIDHUB_SSH_SITE_GATEWAYS", environment["HYBRIDHUB_SSH_SITE_GATEWAYS"])
    assert HybridHubService().ssh_site_gateways == {
        "onprem": {"address": "ssh.onprem.example.org:2222", "service": site}
    }
    monkeypatch.delenv("HYBRIDHUB_ONPREM_SSH_GATEWAY_ADDRESS")
    with pytest.raises(
        ValueError, match=r"set both HYBRIDHUB_ONPREM_SSH_GATEWAY_TOKEN and .*_ADDRESS, or neither"
    ):
        load(HUB_CONFIG)


# ---------------------------------------------------------------------------------------------- loaders


def test_each_file_runs_under_the_chart_loader(env: dict[str, str]) -> None:
    """z2jh execs each file in its own jupyterhub_config.py's globals, where get_config is z2jh's."""
    assert plain(load_as_chart(HUB_CONFIG)) == plain(load(HUB_CONFIG))


def test_the_loader_runs_the_files_in_name_order(env: dict[str, str], tmp_path: Path) -> None:
    (tmp_path / "jupyterhub_config.d").mkdir()
    shutil.copy(HUB_CONFIG / "jupyterhub_config.py", tmp_path)
    for name, value in (("20-b.py", "b"), ("10-a.py", "a"), ("30-c.py", "c")):
        (tmp_path / "jupyterhub_config.d" / name).write_text(f"c.Test.order.append({value!r})\n")
    (tmp_path / "jupyterhub_config.d" / "notes.txt").write_text("not python\n")
    assert resolved(load(tmp_path).Test, "order", []) == ["a", "b", "c"]


@needs(importlib.util.find_spec("ruff"), "needs ruff (the dev extra, which make test installs)")
def test_hub_config_is_linted_python() -> None:
    for args in (["check"], ["format", "--check"]):
        result = subprocess.run(
            [sys.executable, "-m", "ruff", *args, "hub_config"], cwd=ROOT, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------------------------- Helm values


def merge(base: Any, override: Any) -> Any:
    """Helm's merge of values files: maps merge key by key, anything else replaces."""
    if isinstance(base, dict) and isinstance(override, dict):
        return {k: merge(base[k], v) if k in base else v for k, v in override.items()} | {
            k: v for k, v in base.items() if k not in override
        }
    return override


@pytest.fixture
def values() -> dict[str, Any]:
    return dict(yaml.safe_load((HUB_CONFIG / "values.yaml").read_text()))


def with_files(values: dict[str, Any]) -> dict[str, Any]:
    """The values as `helm upgrade --set-file hub.extraFiles.KEY.stringData=FILE` makes them."""
    result = copy.deepcopy(values)
    for entry in result["hub"]["extraFiles"].values():
        name = Path(entry["mountPath"]).name
        entry["stringData"] = (CONFIG_D / name).read_text()
    return result


def test_refused_spawns_cannot_make_the_hub_exit(values: dict[str, Any]) -> None:
    """JupyterHub counts a refused spawn as a failure and exits after consecutiveFailureLimit of them."""
    assert values["hub"]["consecutiveFailureLimit"] == 0


@needs(Z2JH.is_dir(), f"needs the chart's values and schema in {Z2JH} (shared/ beside the clone)")
def test_values_are_valid_for_the_chart(values: dict[str, Any]) -> None:
    schema = yaml.safe_load((Z2JH / "values.schema.yaml").read_text())
    jsonschema.Draft7Validator.check_schema(schema)
    validator = jsonschema.Draft7Validator(schema)
    chart = yaml.safe_load((Z2JH / "values.yaml").read_text())
    assert not list(validator.iter_errors(chart))  # the check itself works
    errors = [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}"
        for e in validator.iter_errors(merge(chart, with_files(values)))
    ]
    assert not errors
    # without the files, each extraFiles entry lacks its content: the --set-file flags are required
    assert list(validator.iter_errors(merge(chart, values)))


def test_values_mount_every_config_file(values: dict[str, Any]) -> None:
    mounted = {entry["mountPath"] for entry in values["hub"]["extraFiles"].values()}
    assert mounted == {f"{Z2JH_CONFIG_D}/{p.name}" for p in CONFIG_D.glob("*.py")}
    assert {p.name for p in (HUB_CONFIG / "single-cluster").glob("*.py")} <= {Path(m).name for m in mounted}


def test_values_set_what_the_files_read(values: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    hub_env = values["hub"]["extraEnv"]
    for name in (
        "HYBRIDHUB_ONPREM_HUB_URL",
        "HYBRIDHUB_HUB_TOKEN",
        "HYBRIDHUB_ONPREM_KUBECONFIG",
        "HYBRIDHUB_ONPREM_CONTEXT",
    ):
        assert name in hub_env
    assert "value" not in hub_env["HYBRIDHUB_HUB_TOKEN"]  # a secretKeyRef, never the token
    kubeconfig = Path(hub_env["HYBRIDHUB_ONPREM_KUBECONFIG"])
    mounts = [m["mountPath"] for m in values["hub"]["extraVolumeMounts"]]
    assert str(kubeconfig.parent) in mounts
    # The service's port, as the files make it from the chart's environment: the proxy's URL names the
    # hub Service's port; the service listens on its target port, which the hub pod admits and notebook
    # pods may reach.
    use_environment(monkeypatch, chart_environment(values))
    service = services(load(HUB_CONFIG))["hybridhub"]
    bind = next(a for a in service["command"] if a.startswith("--HybridHubService.bind_url="))
    proxy_port, bind_port = (int(url.rsplit(":", 1)[1]) for url in (service["url"], bind))
    (extra_port,) = (p for p in values["hub"]["service"]["extraPorts"] if p["name"] == "hybridhub")
    assert (extra_port["port"], extra_port["targetPort"]) == (proxy_port, bind_port)
    ingress = [p["port"] for rule in values["hub"]["networkPolicy"]["ingress"] for p in rule["ports"]]
    egress = [p["port"] for rule in values["singleuser"]["networkPolicy"]["egress"] for p in rule["ports"]]
    assert bind_port in ingress and bind_port in egress
    # a user-scheduler exists only in the chart's cluster: pods naming it would never start in EKS
    assert values["scheduling"]["userScheduler"]["enabled"] is False


def gateway_pod_labels() -> dict[str, str]:
    """The labels of the SSH gateway's pods (manifests/eks/ssh-gateway.yaml)."""
    path = HUB_CONFIG / "manifests" / "eks" / "ssh-gateway.yaml"
    (deployment,) = [d for d in yaml.safe_load_all(path.read_text()) if d and d["kind"] == "Deployment"]
    return dict(deployment["spec"]["template"]["metadata"]["labels"])


def admitted_ports(rules: list[dict[str, Any]], labels: dict[str, str]) -> set[int]:
    """The ports that ingress ``rules`` open to pods labelled ``labels`` (by a podSelector's labels)."""
    return {
        port["port"]
        for rule in rules
        for peer in rule["from"]
        if set(peer) == {"podSelector"} and peer["podSelector"]["matchLabels"].items() <= labels.items()
        for port in rule["ports"]
    }


def test_values_wire_ssh(values: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """The gateway's token and the service's database URL come from Secrets, the gateway's address is a
    placeholder to replace; the hub admits the gateway's pods to its API and the service, notebook pods
    to their SSH port; and the notebook's command stays set, for the SSH server to run it."""
    hub_env = values["hub"]["extraEnv"]
    for name, secret, key in (
        ("HYBRIDHUB_SSH_GATEWAY_TOKEN", "hybridhub", "ssh-gateway-token"),
        ("HYBRIDHUB_SERVICE_DB_URL", "hybridhub-service-db", "url"),
    ):
        assert hub_env[name] == {"valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}, name
    assert hub_env["HYBRIDHUB_SSH_GATEWAY_ADDRESS"].endswith(".example.org")
    labels = gateway_pod_labels()
    assert admitted_ports(values["hub"]["networkPolicy"]["ingress"], labels) == {8081, 10101}
    ssh_port = HybridSpawner(config=Config(), _mock=True).ssh_port
    assert admitted_ports(values["singleuser"]["networkPolicy"]["ingress"], labels) == {ssh_port}
    # the chart's proxy, hub and notebook labels do not match the gateway's selector rules
    for component in ("hub", "proxy", "singleuser-server"):
        assert not admitted_ports(
            values["singleuser"]["networkPolicy"]["ingress"], {"app": "jupyterhub", "component": component}
        )
    assert values["singleuser"]["cmd"] == "jupyterhub-singleuser"
    # with the chart's environment, SSH is on
    use_environment(monkeypatch, chart_environment(values))
    assert HybridSpawner(config=load(HUB_CONFIG), _mock=True).ssh_enabled is True
