"""The demo's plan as data: settings for the shipped files, the hub's overlay, outages, the status table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from traitlets.config import PyFileConfigLoader

from simcluster.faults import ApiFaults
from spawner.demo.plan import (
    DEMO_SCOPES,
    OUTAGES,
    Plan,
    Ports,
    ServerRow,
    hub_bind_host,
    hub_environment,
    outage_problem,
    overlay,
    status_lines,
)

REPO = Path(__file__).resolve().parents[2]


def endpoints(gateway: str) -> dict[str, Any]:
    return {"clusters": {name: {"pod_gateway": gateway} for name in ("onprem", "eks")}}


def plan(tmp_path: Path, ip: str = "127.0.0.1") -> Plan:
    return Plan(repo=REPO, state_dir=tmp_path, ip=ip, ports=Ports(18000, 18001, 18081, 18101, 12222))


@pytest.mark.parametrize(
    ("ip", "url"),
    [
        ("127.0.0.1", "http://127.0.0.1:18000/"),
        ("0.0.0.0", "http://127.0.0.1:18000/"),  # every address: this machine browses on loopback
        ("10.1.2.3", "http://10.1.2.3:18000/"),
        ("::1", "http://[::1]:18000/"),
    ],
)
def test_url(tmp_path: Path, ip: str, url: str) -> None:
    assert plan(tmp_path, ip).url == url


@pytest.mark.parametrize(
    ("runtime", "host"),
    [("process", "0.0.0.0"), ("process-loopback", "127.0.0.1"), ("simulated", "127.0.0.1")],
)
def test_hub_bind_host(runtime: str, host: str) -> None:
    assert hub_bind_host(runtime) == host


@pytest.mark.parametrize("gateway", ["169.254.1.1", "127.0.0.1"])
def test_hub_environment_points_both_clusters_at_simcluster(tmp_path: Path, gateway: str) -> None:
    p = plan(tmp_path)
    env = hub_environment(p, endpoints(gateway))
    for cluster, context in (("ONPREM", "onprem"), ("EKS", "eks")):
        assert env[f"HYBRIDHUB_{cluster}_KUBECONFIG"] == str(tmp_path / "kubeconfig")
        assert env[f"HYBRIDHUB_{cluster}_CONTEXT"] == context
        assert env[f"HYBRIDHUB_{cluster}_NAMESPACE"] == "jupyterhub"
        assert env[f"HYBRIDHUB_{cluster}_HUB_URL"] == f"http://{gateway}:18081"
    # the service listens where the pods reach it, as the hub does (hub_bind_host)
    assert env["HYBRIDHUB_SERVICE_BIND_URL"] == "http://0.0.0.0:18101"
    assert env["HYBRIDHUB_SERVICE_PROXY_URL"] == "http://127.0.0.1:18101"
    assert hub_environment(p, endpoints(gateway), "process-loopback")["HYBRIDHUB_SERVICE_BIND_URL"] == (
        "http://127.0.0.1:18101"
    )
    assert env["HYBRIDHUB_SERVICE_URL"] == "http://127.0.0.1:18101/services/hybridhub/"
    assert env["HYBRIDHUB_HUB_TOKEN"] == p.hub_token
    assert Path(env["HYBRIDHUB_CLUSTERS_FILE"]).is_file()
    # SSH: the service's store in the state directory, the gateway's address and token
    assert env["HYBRIDHUB_SERVICE_DB_URL"] == f"sqlite:///{tmp_path / 'hybridhub.sqlite'}"
    assert env["HYBRIDHUB_SSH_GATEWAY_ADDRESS"] == "127.0.0.1:12222"
    assert env["HYBRIDHUB_SSH_GATEWAY_TOKEN"] == p.gateway_token


@pytest.mark.parametrize(
    ("runtime", "as_root", "args", "uid", "bind"),
    [
        ("process", True, ["--allow-root"], 0, "http://0.0.0.0:18081"),
        ("process-loopback", False, ["--ip=$(POD_IP)"], None, "http://127.0.0.1:18081"),
        ("process-loopback", True, ["--allow-root", "--ip=$(POD_IP)"], 0, "http://127.0.0.1:18081"),
    ],
)
def test_overlay_loads_the_shipped_files_then_the_demo_settings(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    runtime: str,
    as_root: bool,
    args: list[str],
    uid: int | None,
    bind: str,
) -> None:
    p = plan(tmp_path)
    gateway = "169.254.1.1" if runtime == "process" else "127.0.0.1"
    for name, value in hub_environment(p, endpoints(gateway), runtime).items():
        monkeypatch.setenv(name, value)
    p.hub_config.write_text(overlay(p, runtime=runtime, as_root=as_root, endpoints=endpoints(gateway)))
    c = PyFileConfigLoader(p.hub_config.name, path=str(tmp_path)).load_config()

    # the shipped files ran: HybridSpawner, the service, its roles, both clusters from the settings
    assert c.JupyterHub.spawner_class == "hybrid"
    clusters = {cl["name"]: cl for cl in c.ClusterSet.clusters}
    assert {n: (cl["kubeconfig"], cl["context"]) for n, cl in clusters.items()} == {
        "onprem": (str(p.kubeconfig), "onprem"),
        "eks": (str(p.kubeconfig), "eks"),
    }
    assert clusters["onprem"]["hub_connect_url"] == f"http://{gateway}:18081"
    services = {s["name"]: s for s in c.JupyterHub.services.get_value([])}  # appended to: lazy
    assert services["hybridhub"]["url"] == "http://127.0.0.1:18101"
    assert services["hybridhub-hub"]["api_token"] == p.hub_token
    assert services["hybridhub-demo"]["api_token"] == p.demo_token
    roles = {r["name"]: r for r in c.JupyterHub.load_roles.get_value([])}
    assert {"hybridhub-service", "hybridhub-hub", "user"} <= set(roles)
    assert roles["hybridhub-demo"]["scopes"] == list(DEMO_SCOPES)
    assert c.HybridSpawner.service_url == "http://127.0.0.1:18101/services/hybridhub/"

    # then the demo's own
    assert (c.JupyterHub.ip, c.JupyterHub.port) == ("127.0.0.1", 18000)
    assert c.JupyterHub.hub_bind_url == bind
    assert c.JupyterHub.hub_connect_url == "http://127.0.0.1:18081"
    assert c.ConfigurableHTTPProxy.command == [
        str(REPO / "node_modules" / ".bin" / "configurable-http-proxy")
    ]
    assert c.ConfigurableHTTPProxy.api_url == "http://127.0.0.1:18001"
    assert c.JupyterHub.authenticator_class == "shared-password"
    assert c.SharedPasswordAuthenticator.user_password == p.password
    assert c.Authenticator.allow_all is True
    assert c.Spawner.cmd == ["jupyterhub-singleuser"]
    assert c.Spawner.args == args
    assert c.Spawner.default_url == "/lab"
    assert c.KubeSpawner.uid == uid
    home = "/home/jovyan" if runtime == "process" else str(tmp_path / "home")  # a volume, or the state dir
    assert c.Spawner.environment["HOME"] == c.KubeSpawner.working_dir == home
    assert str(tmp_path) in c.JupyterHub.db_url
    # SSH: each pod's server beside JupyterLab, the service where the pods reach it, the gateway's token
    assert c.HybridSpawner.ssh_enabled is True
    pod_ip = [] if runtime == "process" else ["--ip=$(POD_IP)"]
    assert c.HybridSpawner.ssh_server_command == ["hybridhub", "ssh-server", *pod_ip]
    url = f"http://{gateway}:18101/services/hybridhub/"
    assert c.HybridSpawner.pod_service_urls == {"onprem": url, "eks": url}
    assert [s["api_token"] for s in services.values() if s["name"] == "ssh-gateway"] == [p.gateway_token]
    assert set(roles["ssh-gateway"]["scopes"]) >= {"read:users", "custom:hybridhub:servers"}


def test_every_run_has_fresh_secrets(tmp_path: Path) -> None:
    a, b = plan(tmp_path), plan(tmp_path)
    secrets = [
        *(a.password, a.hub_token, a.demo_token, a.gateway_token),
        *(b.password, b.hub_token, b.demo_token, b.gateway_token),
    ]
    assert len(set(secrets)) == 8
    assert all(len(s) >= 8 for s in secrets)  # SharedPasswordAuthenticator wants 8 or more


@pytest.mark.parametrize(
    ("kind", "down", "hung", "kill_pods"),
    [
        ("api", True, frozenset(), False),
        ("link", False, frozenset({"api", "pods", "services"}), False),
        ("site", False, frozenset({"api", "pods", "services"}), True),
    ],
)
def test_outages_are_faults_simcluster_accepts(
    kind: str, down: bool, hung: frozenset[str], kill_pods: bool
) -> None:
    outage = OUTAGES[kind]
    # from any earlier outage: each body sets both keys, so one outage replaces another
    for before in (ApiFaults(), ApiFaults(down=True), ApiFaults(hung=frozenset({"api"}))):
        faults = before.changed(dict(outage.faults))
        assert (faults.down, faults.hung) == (down, hung)
    assert outage.kill_pods is kill_pods


@pytest.mark.parametrize(
    ("kind", "runtime", "problem"),
    [
        ("api", "process", None),
        ("api", "process-loopback", None),
        ("link", "process", None),
        ("site", "process", None),
        ("link", "process-loopback", "needs simcluster's process runtime and so root"),
        ("site", "process-loopback", "--site hangs the on-prem pods' addresses"),
        ("flood", "process", "no outage kind 'flood'"),
    ],
)
def test_outage_problem(kind: str, runtime: str, problem: str | None) -> None:
    found = outage_problem(kind, runtime)
    if problem is None:
        assert found is None
    else:
        assert found is not None and problem in found and "\n" not in found


CAPACITY = {
    "clusters": [
        {
            "name": "onprem",
            "health": "down",
            "reason": "API unreachable",
            "pools": [{"name": "gpu", "elastic": False}],
            "products": [
                {"product": "NVIDIA-A100-SXM4-80GB", "total": 16, "free": 15},
                {"product": "NVIDIA-L40S", "total": 8, "free": 8},
            ],
        },
        {
            "name": "eks",
            "health": "healthy",
            "reason": "",
            "pools": [{"name": "a100", "elastic": True}],
            "products": [],
        },
    ]
}


@pytest.mark.parametrize(
    ("capacity", "servers", "expected"),
    [
        (None, [], ["clusters:", "  (the hybridhub service did not answer)", "servers:", "  (none)"]),
        (
            CAPACITY,
            [
                ServerRow("alice", "", "ready", "onprem", "dgx-a100-1"),
                ServerRow("bob", "gpu", "pending spawn"),
            ],
            [
                "clusters:",
                "  onprem   DOWN (API unreachable)  GPUs 23/24 free",
                "      NVIDIA-A100-SXM4-80GB: 15/16 free",
                "      NVIDIA-L40S: 8/8 free",
                "  eks      HEALTHY  GPUs 0/0 free",
                "      elastic pools (nodes added on demand): a100",
                "servers:",
                "  alice                ready          onprem on dgx-a100-1",
                "  bob/gpu              pending spawn  no pod seen",
            ],
        ),
    ],
)
def test_status_lines(capacity: dict[str, Any] | None, servers: list[ServerRow], expected: list[str]) -> None:
    assert status_lines(capacity, servers) == expected
