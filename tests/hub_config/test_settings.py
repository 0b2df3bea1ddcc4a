"""Every address and credential in hub_config/ is a setting: the chart's defaults, overrides, and errors.

The files read ``HYBRIDHUB_*`` variables the chart sets (``hub.extraEnv`` in values.yaml). With the
chart's environment they make the shipped topology (the hub in EKS, on-prem over the site link);
other values, such as the hub in the on-prem cluster with a kubeconfig for EKS, or another address
for the service, take effect without editing the files; a missing or malformed value stops the hub
with the variable's name.
"""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes_asyncio.client import Configuration
from kubernetes_asyncio.config import kube_config
from kubespawner import clients
from traitlets.config import Config

from spawner.core.clusters import ClusterSet
from spawner.hybrid import HybridSpawner
from spawner.kube.client import ClusterClient
from spawner.service.app import HybridHubService

from .configfiles import (
    CLUSTER_FIELDS,
    HUB_CONFIG,
    SETTINGS,
    Z2JH_CONFIG_D,
    chart_environment,
    hub_dir,
    load,
    load_as_chart,
    services,
    use_environment,
    wiring,
)

# What the shipped files configure with the chart's environment (values.yaml as shipped, the
# chart's namespace "hub-ns"): the hub in EKS, on-prem through the mounted kubeconfig.
CHART_WIRING = {
    "onprem.kubeconfig": "/usr/local/etc/hybridhub/onprem/kubeconfig",
    "onprem.context": "onprem",
    "onprem.namespace": "jupyterhub",
    "onprem.hub_connect_url": "https://hub.example.org",  # over the site link
    "eks.kubeconfig": None,  # in-cluster: the hub pod's service account
    "eks.context": None,
    "eks.namespace": "hub-ns",  # the hub's own
    "eks.hub_connect_url": "http://hub:8081",  # the hub's Service
    "service.url": "http://hub:10101",  # the proxy pod reaches the service through the hub's Service
    "service.bind_url": "http://0.0.0.0:10101",
    "service.config": f"{Z2JH_CONFIG_D}/10-clusters.py",
    "spawner.service_url": "http://127.0.0.1:10101/services/hybridhub/",  # the hub, in the same pod
    # SSH is on with the gateway's token, which the chart's environment has; pods reach the service
    # through the public proxy from on-prem, through the hub's Service in the hub's cluster
    "spawner.ssh_enabled": True,
    "spawner.pod_service_urls": {
        "onprem": "https://hub.example.org/services/hybridhub/",
        "eks": "http://hub:10101/services/hybridhub/",
    },
}

# The hub in the on-prem cluster, the documented alternative: the two kubeconfig settings flipped, EKS
# through a kubeconfig whose user runs `aws eks get-token`. Empty values clear what values.yaml sets,
# back to the defaults.
HUB_ON_PREM = {
    "HYBRIDHUB_ONPREM_KUBECONFIG": "in-cluster",
    "HYBRIDHUB_ONPREM_CONTEXT": "",
    "HYBRIDHUB_ONPREM_NAMESPACE": "",
    "HYBRIDHUB_ONPREM_HUB_URL": "",
    "HYBRIDHUB_EKS_KUBECONFIG": "/usr/local/etc/hybridhub/eks/kubeconfig",
    "HYBRIDHUB_EKS_CONTEXT": "eks",
    "HYBRIDHUB_EKS_HUB_URL": "https://hub.example.org",
}

OVERRIDES: list[tuple[str, dict[str, str], dict[str, Any]]] = [
    (
        "hub on-prem",
        HUB_ON_PREM,
        {
            "onprem.kubeconfig": None,
            "onprem.context": None,
            "onprem.namespace": "hub-ns",
            "onprem.hub_connect_url": "http://hub:8081",
            "eks.kubeconfig": "/usr/local/etc/hybridhub/eks/kubeconfig",
            "eks.context": "eks",
            "eks.namespace": "jupyterhub",  # a remote cluster's default, not the hub's namespace
            "eks.hub_connect_url": "https://hub.example.org",
            "spawner.pod_service_urls": {
                "onprem": "http://hub:10101/services/hybridhub/",
                "eks": "https://hub.example.org/services/hybridhub/",
            },
        },
    ),
    (
        "hub outside both clusters",  # as the demo runs it: a kubeconfig each, the hub on the host
        {
            "HYBRIDHUB_ONPREM_KUBECONFIG": "/tmp/sim/kubeconfig",
            "HYBRIDHUB_ONPREM_CONTEXT": "onprem",
            "HYBRIDHUB_ONPREM_NAMESPACE": "default",
            "HYBRIDHUB_ONPREM_HUB_URL": "http://10.0.0.1:8081",
            "HYBRIDHUB_EKS_KUBECONFIG": "/tmp/sim/kubeconfig",
            "HYBRIDHUB_EKS_CONTEXT": "eks",
            "HYBRIDHUB_EKS_NAMESPACE": "default",
            "HYBRIDHUB_EKS_HUB_URL": "http://10.0.0.1:8081",
        },
        {
            "onprem.kubeconfig": "/tmp/sim/kubeconfig",
            "onprem.context": "onprem",
            "onprem.namespace": "default",
            "onprem.hub_connect_url": "http://10.0.0.1:8081",
            "eks.kubeconfig": "/tmp/sim/kubeconfig",
            "eks.context": "eks",
            "eks.namespace": "default",
            "eks.hub_connect_url": "http://10.0.0.1:8081",
            # the hub URL's origin: pods reach the service there only if a proxy routes its prefix;
            # otherwise set HYBRIDHUB_<CLUSTER>_SERVICE_URL (below)
            "spawner.pod_service_urls": {
                "onprem": "http://10.0.0.1:8081/services/hybridhub/",
                "eks": "http://10.0.0.1:8081/services/hybridhub/",
            },
        },
    ),
    (
        "another service port",
        {"HYBRIDHUB_SERVICE_PORT": "10202"},
        {
            "service.url": "http://hub:10202",
            "service.bind_url": "http://0.0.0.0:10202",
            "spawner.service_url": "http://127.0.0.1:10202/services/hybridhub/",
            "spawner.pod_service_urls": {
                "onprem": "https://hub.example.org/services/hybridhub/",
                "eks": "http://hub:10202/services/hybridhub/",
            },
        },
    ),
    (
        "the service on loopback",  # hub, proxy and service on one host
        {
            "HYBRIDHUB_SERVICE_PROXY_URL": "http://127.0.0.1:18000",
            "HYBRIDHUB_SERVICE_BIND_URL": "http://127.0.0.1:18000",
        },
        {
            "service.url": "http://127.0.0.1:18000",
            "service.bind_url": "http://127.0.0.1:18000",
            "spawner.service_url": "http://127.0.0.1:18000/services/hybridhub/",
        },
    ),
    (
        "bound to one IPv6 address",
        {"HYBRIDHUB_SERVICE_BIND_URL": "http://[fd00::5]:10101"},
        {
            "service.bind_url": "http://[fd00::5]:10101",
            "spawner.service_url": "http://[fd00::5]:10101/services/hybridhub/",
        },
    ),
    (
        "bound to every IPv6 address",
        {"HYBRIDHUB_SERVICE_BIND_URL": "http://[::]:10101"},
        {"service.bind_url": "http://[::]:10101"},
    ),
    (
        "the hub's own URL of the service",
        {"HYBRIDHUB_SERVICE_URL": "http://hybridhub.internal:9000/services/hybridhub/"},
        {"spawner.service_url": "http://hybridhub.internal:9000/services/hybridhub/"},
    ),
    (
        "a cluster's own URL of the service",  # e.g. on-prem pods through an internal load balancer
        {"HYBRIDHUB_ONPREM_SERVICE_URL": "https://hub-internal.example.org/services/hybridhub/"},
        {
            "spawner.pod_service_urls": {
                "onprem": "https://hub-internal.example.org/services/hybridhub/",
                "eks": "http://hub:10101/services/hybridhub/",
            },
        },
    ),
    (
        "no SSH gateway",  # its token left out: SSH off, and pods get no service URL
        {"HYBRIDHUB_SSH_GATEWAY_TOKEN": ""},
        {"spawner.ssh_enabled": False, "spawner.pod_service_urls": {}},
    ),
    (
        "the clusters file elsewhere",
        {"HYBRIDHUB_CLUSTERS_FILE": "/etc/hybridhub/10-clusters.py"},
        {"service.config": "/etc/hybridhub/10-clusters.py"},
    ),
]

ERRORS: list[tuple[str, dict[str, str], str]] = [
    (
        "no hub URL for on-prem",
        {"HYBRIDHUB_ONPREM_HUB_URL": ""},
        "set HYBRIDHUB_ONPREM_HUB_URL to the hub's URL as pods in onprem reach it",
    ),
    (
        "no hub URL for an EKS kubeconfig",
        {"HYBRIDHUB_EKS_KUBECONFIG": "/k/eks"},
        "set HYBRIDHUB_EKS_HUB_URL to the hub's URL as pods in eks reach it",
    ),
    (
        "no hub URL for an on-prem kubeconfig, with the hub on-prem",
        {**HUB_ON_PREM, "HYBRIDHUB_ONPREM_KUBECONFIG": "/k/onprem"},
        "set HYBRIDHUB_ONPREM_HUB_URL",
    ),
    (
        "both in-cluster",
        {"HYBRIDHUB_ONPREM_KUBECONFIG": "in-cluster", "HYBRIDHUB_ONPREM_CONTEXT": ""},
        "HYBRIDHUB_ONPREM_KUBECONFIG and HYBRIDHUB_EKS_KUBECONFIG are both in-cluster",
    ),
    (
        "a context without a kubeconfig",
        {"HYBRIDHUB_EKS_CONTEXT": "eks"},
        "HYBRIDHUB_EKS_CONTEXT is set but HYBRIDHUB_EKS_KUBECONFIG is in-cluster",
    ),
    ("no port", {"HYBRIDHUB_SERVICE_PORT": "http"}, "HYBRIDHUB_SERVICE_PORT must be a TCP port"),
    ("port 0", {"HYBRIDHUB_SERVICE_PORT": "0"}, "HYBRIDHUB_SERVICE_PORT must be a TCP port"),
    ("port too high", {"HYBRIDHUB_SERVICE_PORT": "65536"}, "HYBRIDHUB_SERVICE_PORT must be a TCP port"),
    (
        "a bind address without a port",
        {"HYBRIDHUB_SERVICE_BIND_URL": "http://0.0.0.0"},
        "HYBRIDHUB_SERVICE_BIND_URL must be a URL such as http://0.0.0.0:10101",
    ),
    (
        "a bind address with TLS",  # the service serves plain HTTP
        {"HYBRIDHUB_SERVICE_BIND_URL": "https://0.0.0.0:10101"},
        "HYBRIDHUB_SERVICE_BIND_URL must be a URL",
    ),
    (
        "a bind address with a bad port",
        {"HYBRIDHUB_SERVICE_BIND_URL": "http://0.0.0.0:99999"},
        "HYBRIDHUB_SERVICE_BIND_URL must be a URL",
    ),
    (
        "a proxy URL without a scheme",
        {"HYBRIDHUB_SERVICE_PROXY_URL": "hub:10101"},
        "HYBRIDHUB_SERVICE_PROXY_URL must be a URL such as http://hub:10101",
    ),
    (
        "a service URL without a scheme",
        {"HYBRIDHUB_SERVICE_URL": "127.0.0.1:10101/services/hybridhub/"},
        "HYBRIDHUB_SERVICE_URL must be a URL",
    ),
    ("no hub token", {"HYBRIDHUB_HUB_TOKEN": ""}, "set HYBRIDHUB_HUB_TOKEN"),
    (
        "a pod service URL without a scheme",
        {"HYBRIDHUB_EKS_SERVICE_URL": "hub:10101/services/hybridhub/"},
        "HYBRIDHUB_EKS_SERVICE_URL must be a URL",
    ),
    (
        "start servers neither true nor false",
        {"HYBRIDHUB_SSH_GATEWAY_START_SERVERS": "sometimes"},
        "HYBRIDHUB_SSH_GATEWAY_START_SERVERS must be true or false",
    ),
]


@pytest.fixture
def chart_env(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The hub container's settings as the chart makes them from the shipped values.yaml."""
    env = chart_environment(yaml.safe_load((HUB_CONFIG / "values.yaml").read_text()))
    use_environment(monkeypatch, env)
    return env


def test_the_chart_environment_makes_the_shipped_topology(chart_env: dict[str, str]) -> None:
    assert wiring(load(HUB_CONFIG)) == CHART_WIRING


@pytest.mark.parametrize(("overrides", "changes"), [c[1:] for c in OVERRIDES], ids=[c[0] for c in OVERRIDES])
def test_overrides_take_effect_and_change_nothing_else(
    chart_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    overrides: dict[str, str],
    changes: dict[str, Any],
) -> None:
    for name, value in overrides.items():
        monkeypatch.setenv(name, value)
    assert wiring(load(HUB_CONFIG)) == {**CHART_WIRING, **changes}


@pytest.mark.parametrize(("overrides", "message"), [c[1:] for c in ERRORS], ids=[c[0] for c in ERRORS])
def test_a_missing_or_malformed_setting_is_named(
    chart_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, overrides: dict[str, str], message: str
) -> None:
    for name, value in overrides.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        load(HUB_CONFIG)


def test_the_hubs_url_of_the_service_follows_the_base_url(chart_env: dict[str, str]) -> None:
    """The chart sets ``c.JupyterHub.base_url`` (hub.baseUrl) before it runs the files, and the service
    answers under it (JupyterHub passes the prefix to the service)."""
    chart = Config()
    chart.JupyterHub.base_url = "/jupyter/"
    wired = wiring(load_as_chart(HUB_CONFIG, chart))
    assert wired["spawner.service_url"] == "http://127.0.0.1:10101/jupyter/services/hybridhub/"
    # and so do the pods' URLs of it: the proxy routes the prefix under the base URL too
    assert wired["spawner.pod_service_urls"] == {
        "onprem": "https://hub.example.org/jupyter/services/hybridhub/",
        "eks": "http://hub:10101/jupyter/services/hybridhub/",
    }


@pytest.mark.parametrize(
    ("overrides", "changes"),
    [
        ({}, {"eks.kubeconfig": None, "eks.namespace": "hub-ns"}),
        (
            {"HYBRIDHUB_EKS_KUBECONFIG": "/k/eks", "HYBRIDHUB_EKS_HUB_URL": "https://hub.example.org"},
            {
                "eks.kubeconfig": "/k/eks",
                "eks.namespace": "jupyterhub",
                "eks.hub_connect_url": "https://hub.example.org",
            },
        ),
    ],
)
def test_the_single_cluster_file_reads_the_same_settings(
    chart_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    overrides: dict[str, str],
    changes: dict[str, Any],
) -> None:
    """Its one cluster is named eks, so HYBRIDHUB_EKS_* configure it; its defaults are in-cluster, and
    the two-cluster file's on-prem settings that values.yaml sets are ignored."""
    assert any(name.startswith("HYBRIDHUB_ONPREM_") for name in chart_env)
    for name, value in overrides.items():
        monkeypatch.setenv(name, value)
    got = wiring(load(hub_dir("single-cluster", tmp_path)))
    expected = {
        "eks.context": None,
        "eks.hub_connect_url": "http://hub:8081",
        **changes,
    }
    assert {k: v for k, v in got.items() if k.startswith("eks.")} == expected


@pytest.mark.parametrize("overrides", [{}, HUB_ON_PREM], ids=["chart", "hub on-prem"])
def test_the_service_gets_the_same_clusters_and_its_bind_address(
    chart_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, overrides: dict[str, str]
) -> None:
    """The service runs the clusters file itself, with only the environment JupyterHub gives a managed
    service (its definition's ``environment``): the settings must reach it, its database's URL and the
    SSH gateway's address among them, but not the gateway's token."""
    for name, value in {**overrides, "HYBRIDHUB_SERVICE_BIND_URL": "http://127.0.0.1:18000"}.items():
        monkeypatch.setenv(name, value)
    config = load(HUB_CONFIG)
    service = services(config)["hybridhub"]
    argv = [
        str(HUB_CONFIG / "jupyterhub_config.d" / "10-clusters.py") if arg.startswith(Z2JH_CONFIG_D) else arg
        for arg in service["command"][2:]
    ]
    for name in list(os.environ):
        if name not in ("PATH", "LANG"):
            monkeypatch.delenv(name)
    for name, value in service["environment"].items():
        monkeypatch.setenv(name, value)
    app = HybridHubService()
    app.initialize(argv)
    assert app.cluster_set.configs == ClusterSet(config=config).configs
    assert app.bind_url == "http://127.0.0.1:18000"
    assert app.db_url == chart_env["HYBRIDHUB_SERVICE_DB_URL"]
    assert app.ssh_gateway_address == chart_env["HYBRIDHUB_SSH_GATEWAY_ADDRESS"] == "ssh.hub.example.org"
    assert "HYBRIDHUB_SSH_GATEWAY_TOKEN" in chart_env
    assert chart_env["HYBRIDHUB_SSH_GATEWAY_TOKEN"] not in service["environment"].values()


def kubeconfig(path: Path, server: str, user: dict[str, Any]) -> str:
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
                "users": [{"name": "u", "user": user}],
                "contexts": [{"name": "ctx", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "ctx",
            }
        )
    )
    return str(path)


@pytest.mark.asyncio
async def test_each_cluster_client_reaches_its_own_api(
    chart_env: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """With a kubeconfig for each cluster, each cluster's client talks to that cluster's API with that
    cluster's credentials: on-prem a ServiceAccount token read from a file (as the shipped kubeconfig's
    rotating bound token is), EKS a static token here (in-cluster in production, or an exec plugin)."""
    token_file = tmp_path / "onprem-token"
    token_file.write_text("onprem-bound-token")
    onprem = kubeconfig(tmp_path / "onprem", "https://onprem.example:6443", {"tokenFile": str(token_file)})
    eks = kubeconfig(tmp_path / "eks", "https://eks.example", {"token": "eks-token"})
    for name, value in {
        "HYBRIDHUB_ONPREM_KUBECONFIG": onprem,
        "HYBRIDHUB_ONPREM_CONTEXT": "ctx",
        "HYBRIDHUB_EKS_KUBECONFIG": eks,
        "HYBRIDHUB_EKS_CONTEXT": "ctx",
        "HYBRIDHUB_EKS_HUB_URL": "https://hub.example.org",
    }.items():
        monkeypatch.setenv(name, value)
    reached = {}
    for cluster in ClusterSet(config=load(HUB_CONFIG)).configs:
        client = ClusterClient(cluster)
        await client.start()
        try:
            reached[cluster.name] = (client.configuration.host, client.configuration.api_key["BearerToken"])
        finally:
            await client.close()
    assert reached == {
        "onprem": ("https://onprem.example:6443", "Bearer onprem-bound-token"),
        "eks": ("https://eks.example", "Bearer eks-token"),
    }


def test_the_spawner_loads_no_default_kubeconfig(
    chart_env: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """Every cluster comes from ClusterSet, so a hub without a default kubeconfig or in-cluster config
    (the demo, a hub on a plain host) starts each spawner quietly: KubeSpawner would load the
    process-wide default for each one and warn "Config not found" each time."""
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setattr(kube_config, "KUBE_CONFIG_DEFAULT_LOCATION", str(tmp_path / "no-kubeconfig"))
    monkeypatch.setattr(Configuration, "_default", None)
    clients.load_config.cache_clear()  # a default loaded by an earlier test would hide the warning
    config = load(HUB_CONFIG)
    with caplog.at_level(logging.DEBUG):
        for _ in range(2):
            HybridSpawner(config=config, _mock=True)
    clients.load_config.cache_clear()
    assert [r.getMessage() for r in caplog.records if r.name.startswith("kubernetes_asyncio")] == []
    assert Configuration._default is None  # nor is a default configuration set


def test_the_operator_guide_lists_every_setting() -> None:
    """Each variable the files read is in the guide's settings tables, and the list this module
    clears between tests has every one the files name."""
    guide = (HUB_CONFIG.parent / "docs" / "operator-guide.md").read_text()
    sources = "".join(p.read_text() for p in HUB_CONFIG.rglob("*.py"))
    named = set(re.findall(r"\b(HYBRIDHUB_[A-Z_]*[A-Z])\b", sources)) - {"HYBRIDHUB_CLUSTER"}
    assert named <= set(SETTINGS), named - set(SETTINGS)
    generic = {
        f"HYBRIDHUB_{c}_{f}": f"HYBRIDHUB_<CLUSTER>_{f}" for c in ("ONPREM", "EKS") for f in CLUSTER_FIELDS
    }
    missing = {name for name in SETTINGS if f"`{generic.get(name, name)}`" not in guide}
    assert not missing
