"""What the demo runs, as data: its addresses, the hub's settings and overlay, outages, the status table."""

from __future__ import annotations

import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "CLUSTERS",
    "DEMO_SERVICE",
    "GATEWAY_SERVICE",
    "NAMESPACE",
    "OUTAGES",
    "Outage",
    "Plan",
    "Ports",
    "ServerRow",
    "commands_text",
    "gateway_environment",
    "hub_bind_host",
    "hub_environment",
    "outage_problem",
    "overlay",
    "pod_service_urls",
    "status_lines",
]

CLUSTERS = ("onprem", "eks")  # the contexts of simcluster's default cluster file, and of 10-clusters.py
NAMESPACE = "jupyterhub"  # where notebook pods go in each cluster, as a deployment's manifests make it
DEMO_SERVICE = "hybridhub-demo"  # the demo's own hub API client, for `hybridhub demo status`
# What the demo's token may do: read who runs what, ask the service for capacity and server places.
DEMO_SCOPES = (
    "list:users",
    "read:users",
    "read:servers",
    "access:services!service=hybridhub",
    "custom:hybridhub:capacity",
    "custom:hybridhub:servers",
)


@dataclass(frozen=True)
class Ports:
    """The TCP ports the demo listens on; JupyterHub's own defaults, and the shipped service port."""

    public: int = 8000  # the proxy: where people browse
    proxy_api: int = 8001  # the proxy's REST API, for the hub
    hub: int = 8081  # the hub itself: the proxy, the service and the pods reach it here
    service: int = 10101  # the hybridhub service
    ssh: int = 2222  # the SSH gateway (ssh -J USER@HOST:PORT USER)

    def as_dict(self) -> dict[str, int]:
        return {
            "public": self.public,
            "proxy_api": self.proxy_api,
            "hub": self.hub,
            "service": self.service,
            "ssh": self.ssh,
        }


def _secret() -> str:
    return secrets.token_urlsafe(18)


@dataclass(frozen=True)
class Plan:
    """One demo run: where its files go, where it listens, and its secrets (made fresh per run)."""

    repo: Path  # the checkout: hub_config/ and node_modules/
    state_dir: Path  # absolute
    ip: str = "127.0.0.1"
    ports: Ports = field(default_factory=Ports)
    password: str = field(default_factory=_secret)  # the shared password people log in with
    hub_token: str = field(default_factory=_secret)  # HybridSpawner's token for the service
    demo_token: str = field(default_factory=_secret)  # `hybridhub demo status`'s token for the hub API
    gateway_token: str = field(default_factory=_secret)  # the SSH gateway's token for the hub and service

    @property
    def local_host(self) -> str:
        """Where this machine reaches the proxy: the ip, or loopback when it listens on every address."""
        return "127.0.0.1" if self.ip in ("", "0.0.0.0", "::") else self.ip

    @property
    def url(self) -> str:
        host = self.local_host
        return (
            f"http://[{host}]:{self.ports.public}/" if ":" in host else f"http://{host}:{self.ports.public}/"
        )

    @property
    def kubeconfig(self) -> Path:
        return self.state_dir / "kubeconfig"

    @property
    def endpoints(self) -> Path:
        return self.state_dir / "endpoints.json"

    @property
    def gateway_key(self) -> Path:
        """The SSH gateway's host key, kept across demo runs (users' known_hosts trust the CA anyway)."""
        return self.state_dir / "ssh_gateway_host_key"

    @property
    def ssh_address(self) -> str:
        """Where users' SSH clients reach the gateway, host:port."""
        host = self.local_host
        return f"[{host}]:{self.ports.ssh}" if ":" in host else f"{host}:{self.ports.ssh}"

    @property
    def hub_config(self) -> Path:
        return self.state_dir / "jupyterhub_config.py"

    @property
    def loopback_home(self) -> Path:
        """The notebook servers' home when pods run without root (simcluster's loopback fallback)."""
        return self.state_dir / "home"

    @property
    def proxy(self) -> Path:
        return self.repo / "node_modules" / ".bin" / "configurable-http-proxy"

    @property
    def shipped_loader(self) -> Path:
        return self.repo / "hub_config" / "jupyterhub_config.py"

    @property
    def clusters_file(self) -> Path:
        return self.repo / "hub_config" / "jupyterhub_config.d" / "10-clusters.py"


def hub_bind_host(runtime: str) -> str:
    """Where the hub listens. Pods of the process runtime reach this machine at 169.254.1.1, an address
    that exists only while some pod's veth pair does, so the hub must listen on every address then; the
    loopback runtime's pods are plain processes here and reach it on loopback."""
    return "0.0.0.0" if runtime == "process" else "127.0.0.1"


def hub_environment(plan: Plan, endpoints: Mapping[str, Any], runtime: str = "process") -> dict[str, str]:
    """The HYBRIDHUB_* settings the shipped config.d files read, pointed at the simclusters. Both clusters
    get a kubeconfig, whatever the shipped defaults say about which cluster the hub runs in. The service
    listens where the pods reach it (as the hub does: hub_bind_host)."""
    env = {}
    for cluster in CLUSTERS:
        gateway = endpoints["clusters"][cluster]["pod_gateway"]
        prefix = f"HYBRIDHUB_{cluster.upper()}_"
        env[f"{prefix}KUBECONFIG"] = str(plan.kubeconfig)
        env[f"{prefix}CONTEXT"] = cluster
        env[f"{prefix}NAMESPACE"] = NAMESPACE
        env[f"{prefix}HUB_URL"] = f"http://{gateway}:{plan.ports.hub}"
    service = f"http://127.0.0.1:{plan.ports.service}"
    env.update(
        {
            "HYBRIDHUB_SERVICE_PORT": str(plan.ports.service),
            "HYBRIDHUB_SERVICE_PROXY_URL": service,
            "HYBRIDHUB_SERVICE_BIND_URL": f"http://{hub_bind_host(runtime)}:{plan.ports.service}",
            "HYBRIDHUB_SERVICE_URL": f"{service}/services/hybridhub/",
            "HYBRIDHUB_CLUSTERS_FILE": str(plan.clusters_file),
            "HYBRIDHUB_HUB_TOKEN": plan.hub_token,
            # the service's store (SSH keys, its CA) in the state directory
            "HYBRIDHUB_SERVICE_DB_URL": f"sqlite:///{plan.state_dir / 'hybridhub.sqlite'}",
            "HYBRIDHUB_SSH_GATEWAY_ADDRESS": plan.ssh_address,
            "HYBRIDHUB_SSH_GATEWAY_TOKEN": plan.gateway_token,
        }
    )
    return env


def gateway_environment(plan: Plan) -> dict[str, str]:
    """What ``hybridhub ssh-gateway`` reads: the hub's API and the service on this machine, its token."""
    return {
        "JUPYTERHUB_API_URL": f"http://127.0.0.1:{plan.ports.hub}/hub/api",
        "HYBRIDHUB_SERVICE_URL": f"http://127.0.0.1:{plan.ports.service}/services/hybridhub/",
        "JUPYTERHUB_API_TOKEN": plan.gateway_token,
        "JUPYTERHUB_PUBLIC_URL": plan.url,
    }


def pod_service_urls(plan: Plan, endpoints: Mapping[str, Any], runtime: str) -> dict[str, str]:
    """The service's URL as each cluster's pods reach it: at their gateway address (process runtime),
    or on loopback (the loopback runtime's pods are processes of this machine)."""
    urls = {}
    for cluster in CLUSTERS:
        host = endpoints["clusters"][cluster]["pod_gateway"] if runtime == "process" else "127.0.0.1"
        urls[cluster] = f"http://{host}:{plan.ports.service}/services/hybridhub/"
    return urls


GATEWAY_SERVICE = "ssh-gateway"
# What the SSH gateway's token may do (GatewayApp.api_token's help): read users, servers and shares in
# the hub, and where servers run in the service.
GATEWAY_SCOPES = (
    "read:users",
    "read:servers",
    "read:shares",
    "access:services!service=hybridhub",
    "custom:hybridhub:servers",
)


def overlay(plan: Plan, *, runtime: str, as_root: bool, endpoints: Mapping[str, Any] | None = None) -> str:
    """The hub's config file: the shipped files through their own loader, then the demo's addresses,
    login and notebook command. It holds the password, so it is written readable by its owner only."""
    state = plan.state_dir
    # The pods run this machine's Python and jupyterhub-singleuser: as root in the process runtime
    # (Jupyter Server then wants --allow-root); without root they are plain processes that must bind
    # their own 127.x.y.z address.
    args = ["--allow-root"] if as_root else []
    spawner_lines = []
    if runtime == "process":
        spawner_lines += [
            'c.Spawner.environment = {"HOME": "/home/jovyan"}  # the home volume',
            'c.KubeSpawner.working_dir = "/home/jovyan"',
        ]
    else:
        # No namespaces: each pod binds its own loopback address, and mounts no volume, so every
        # server shares one home in the state directory (they all run as this user anyway).
        args.append("--ip=$(POD_IP)")
        spawner_lines += [
            f"c.Spawner.environment = {{'HOME': {str(plan.loopback_home)!r}}}",
            f"c.KubeSpawner.working_dir = {str(plan.loopback_home)!r}",
        ]
    uid = 0 if as_root else None
    scopes = list(DEMO_SCOPES)
    # SSH: each pod's server beside JupyterLab (its own network namespace, or its own 127.x address)
    ssh_server = ["hybridhub", "ssh-server"] + ([] if runtime == "process" else ["--ip=$(POD_IP)"])
    urls = pod_service_urls(plan, endpoints, runtime) if endpoints is not None else {}
    gateway_scopes = list(GATEWAY_SCOPES)
    return f'''"""hybridhub demo: the shipped hub configuration, then the demo's addresses and login.

Written by `hybridhub demo` at each start (edits are lost); the HYBRIDHUB_* settings the shipped files
read come from the demo's environment.
"""

c = get_config()  # noqa: F821

# The shipped configuration, through its own loader: hub_config/jupyterhub_config.d/*.py in name order.
_loader = {str(plan.shipped_loader)!r}
with open(_loader, encoding="utf-8") as _file:
    _code = compile(_file.read(), _loader, "exec")
exec(_code, {{"get_config": get_config, "__file__": _loader}})  # noqa: F821

# Where people browse, and where the proxy, the service and this machine reach the hub; pods reach it
# at their cluster's HYBRIDHUB_<CLUSTER>_HUB_URL.
c.JupyterHub.ip = {plan.ip!r}
c.JupyterHub.port = {plan.ports.public}
c.JupyterHub.hub_bind_url = "http://{hub_bind_host(runtime)}:{plan.ports.hub}"
c.JupyterHub.hub_connect_url = "http://127.0.0.1:{plan.ports.hub}"
c.ConfigurableHTTPProxy.command = [{str(plan.proxy)!r}]
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{plan.ports.proxy_api}"
c.ConfigurableHTTPProxy.pid_file = {str(state / "jupyterhub-proxy.pid")!r}
c.JupyterHub.db_url = "sqlite:///{state / "jupyterhub.sqlite"}"
c.JupyterHub.cookie_secret_file = {str(state / "jupyterhub_cookie_secret")!r}
# simcluster stops every pod when the demo stops; the next demo starts with empty clusters and database
c.JupyterHub.cleanup_servers = False

# Any user name logs in with the demo's password.
c.JupyterHub.authenticator_class = "shared-password"
c.SharedPasswordAuthenticator.user_password = {plan.password!r}
c.Authenticator.allow_all = True

# Notebook servers: JupyterLab in jupyterhub-singleuser, run from this machine.
c.Spawner.cmd = ["jupyterhub-singleuser"]
c.Spawner.args = {args!r}
c.Spawner.default_url = "/lab"
c.Spawner.http_timeout = 60
c.KubeSpawner.uid = {uid!r}
c.KubeSpawner.gid = {uid!r}
{chr(10).join(spawner_lines)}

# SSH into the notebooks through the demo's gateway (hybridhub ssh-gateway, which the demo starts).
c.HybridSpawner.ssh_enabled = True
c.HybridSpawner.ssh_server_command = {ssh_server!r}
c.HybridSpawner.pod_service_urls = {urls!r}
# registered by the shipped 30-service.py from HYBRIDHUB_SSH_GATEWAY_TOKEN; here only if it did not
# (an appended setting is a lazy value until the hub reads it: its to_dict() shows what was appended)
_services = c.JupyterHub.services
_services = _services if isinstance(_services, list) else _services.to_dict().get("extend", [])
if not any(s.get("name") == {GATEWAY_SERVICE!r} for s in _services):
    c.JupyterHub.services.append({{"name": {GATEWAY_SERVICE!r}, "api_token": {plan.gateway_token!r}}})
    c.JupyterHub.load_roles.append(
        {{"name": {GATEWAY_SERVICE!r}, "scopes": {gateway_scopes!r}, "services": [{GATEWAY_SERVICE!r}]}}
    )

# `hybridhub demo status` reads who runs what, and the service's capacity, with this token.
c.JupyterHub.services.append({{"name": {DEMO_SERVICE!r}, "api_token": {plan.demo_token!r}}})
c.JupyterHub.load_roles.append(
    {{"name": {DEMO_SERVICE!r}, "scopes": {scopes!r}, "services": [{DEMO_SERVICE!r}]}}
)
'''


@dataclass(frozen=True)
class Outage:
    """One kind of on-prem outage, as simcluster's admin API makes it."""

    faults: Mapping[str, Any]  # the body of POST clusters/NAME/faults
    kill_pods: bool  # the site's pods stop too (POST clusters/NAME/pods/kill)
    hangs: bool  # hangs the pods' addresses: simcluster's process runtime only (root)
    says: str


OUTAGES: dict[str, Outage] = {
    "api": Outage(
        {"down": True, "hung": False},
        kill_pods=False,
        hangs=False,
        says="the API refuses connections; its pods run on and answer",
    ),
    "link": Outage(
        {"down": False, "hung": True},
        kill_pods=False,
        hangs=True,
        says="the site link is down: its API and pod addresses hang, the site runs on",
    ),
    "site": Outage(
        {"down": False, "hung": True},
        kill_pods=True,
        hangs=True,
        says="the site is dark: its link hangs and every pod there has stopped",
    ),
}


def outage_problem(kind: str, runtime: str) -> str | None:
    """Why this demo cannot have the outage ``kind``, or None."""
    if kind not in OUTAGES:
        return f"no outage kind {kind!r}; the kinds are {', '.join(OUTAGES)}"
    if OUTAGES[kind].hangs and runtime != "process":
        return (
            f"--{kind} hangs the on-prem pods' addresses, which needs simcluster's process runtime and so "
            f"root, but this demo runs the {runtime} runtime (started without root): start `hybridhub demo` "
            "as root, or use --api"
        )
    return None


def commands_text(program: str, state_dir_option: str) -> str:
    """The commands a person runs from another shell: ``program`` is how they reach the hybridhub script,
    and the demo's --state-dir is named unless it is the default."""
    opt = f" {state_dir_option}" if state_dir_option else ""
    return "\n".join(
        [
            f"  {program} demo status{opt}     clusters, GPUs free/total, whose server runs where",
            f"  {program} demo outage onprem{opt} [--api | --link | --site]",
            "      --api: the on-prem API refuses connections (default); --link: the site link hangs, the",
            "      site runs on; --site: as --link, and the on-prem pods stop",
            f"  {program} demo recover onprem{opt}     end the outage",
        ]
    )


@dataclass(frozen=True)
class ServerRow:
    """One server the hub knows, and where the service sees its pod."""

    user: str
    server: str  # "" for the default server
    state: str  # ready, pending spawn, pending stop, ...
    cluster: str = ""  # "" when the service sees no pod (a cluster it cannot reach, or not yet made)
    node: str = ""


def _gpus(products: Sequence[Mapping[str, Any]]) -> tuple[int, int]:
    return sum(int(p.get("free", 0)) for p in products), sum(int(p.get("total", 0)) for p in products)


def status_lines(capacity: Mapping[str, Any] | None, servers: Sequence[ServerRow]) -> list[str]:
    """``hybridhub demo status``: per cluster its health and GPUs free/total, then every server's place.
    ``capacity`` is the service's api/capacity answer, None when the service did not answer."""
    lines = ["clusters:"]
    if capacity is None:
        lines.append("  (the hybridhub service did not answer)")
    for c in (capacity or {}).get("clusters", []):
        products = c.get("products") or []
        free, total = _gpus(products)
        health = str(c.get("health", "unknown")).upper()
        reason = f" ({c['reason']})" if c.get("reason") else ""
        elastic = [p["name"] for p in c.get("pools") or [] if p.get("elastic")]
        lines.append(f"  {c.get('name', '?'):<8} {health}{reason}  GPUs {free}/{total} free")
        for p in products:
            lines.append(f"      {p.get('product', '?')}: {p.get('free', 0)}/{p.get('total', 0)} free")
        if elastic:
            lines.append(f"      elastic pools (nodes added on demand): {', '.join(elastic)}")
    lines.append("servers:")
    if not servers:
        lines.append("  (none)")
    for s in servers:
        name = f"{s.user}/{s.server}" if s.server else s.user
        where = f"{s.cluster} on {s.node}" if s.cluster and s.node else s.cluster or "no pod seen"
        lines.append(f"  {name:<20} {s.state:<14} {where}")
    return lines
