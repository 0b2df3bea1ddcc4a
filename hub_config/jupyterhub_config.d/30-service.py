"""The hybridhub service as a JupyterHub managed service, its custom scopes, and who holds them.

Mirrors the wiring the tests run (tests/harness/hybrid.py): the service answers at
/services/hybridhub/; HybridSpawner asks it for placements with the token of the ``hybridhub-hub``
service; users, and their notebook servers' tokens, may read GPU capacity and submit runs
(custom:hybridhub:runs, docs/runs.md). The service's addresses are settings (HYBRIDHUB_SERVICE_*), and
tokens come from the hub's environment (a Kubernetes Secret, see ../values.yaml), never from this file.

With the SSH gateway's token (HYBRIDHUB_SSH_GATEWAY_TOKEN) it also registers the gateway
(`hybridhub ssh-gateway`, manifests/eks/ssh-gateway.yaml) as the hub service ``ssh-gateway``, turns on
the SSH server in notebook pods, and tells each cluster's pods where the service is.
"""

import json
import os
from typing import Any
from urllib.parse import urlsplit

from spawner.spawning.cluster_access import HUB_SERVICE_URL

# `c` is the shared config object the loader runs this file with (see ../jupyterhub_config.py)
c = c  # noqa: F821

SERVICE = "hybridhub"


def setting(name: str, default: str = "") -> str:
    """The one place this file reads the environment: unset or empty means the default."""
    return os.environ.get(name) or default


def url_setting(name: str, default: str, *, bind: bool = False) -> str:
    """An http URL setting, checked here so that a mistake stops the hub with the variable's name
    rather than the service later; a bind address must also name its port."""
    value = setting(name, default)
    parts = urlsplit(value)
    try:
        port = parts.port
    except ValueError:
        port = None
    schemes = ("http",) if bind else ("http", "https")
    if parts.scheme not in schemes or not parts.hostname or (bind and port is None):
        example = "http://0.0.0.0:10101" if bind else "http://hub:10101"
        raise ValueError(f"30-service.py: {name} must be a URL such as {example}, not {value!r}")
    return value


PORT = setting("HYBRIDHUB_SERVICE_PORT", "10101")
if not PORT.isdigit() or not 0 < int(PORT) < 65536:
    raise ValueError(f"30-service.py: HYBRIDHUB_SERVICE_PORT must be a TCP port (1-65535), not {PORT!r}")
# How the proxy pod reaches the service (JupyterHub's service `url`, which the proxy routes
# /services/hybridhub/ to): the hub's Kubernetes Service, which ../values.yaml extends with this port
# (hub.service.extraPorts).
PROXY_URL = url_setting("HYBRIDHUB_SERVICE_PROXY_URL", f"http://hub:{PORT}")
# Where the service listens; by default every address of the pod, for the proxy pod to reach it, not
# the Service name JupyterHub would otherwise pass it.
BIND_URL = url_setting("HYBRIDHUB_SERVICE_BIND_URL", f"http://0.0.0.0:{PORT}", bind=True)
# How the hub (HybridSpawner) reaches the service: in the same pod, at the address it listens on, under
# the hub's base URL, which the chart sets (hub.baseUrl) before this file runs.
_bind = urlsplit(BIND_URL)
_host = "127.0.0.1" if _bind.hostname in ("0.0.0.0", "::") else str(_bind.hostname)
_host = f"[{_host}]" if ":" in _host else _host
_base = str(c.JupyterHub.get("base_url") or "").strip("/")
_prefix = f"/{_base}/services/{SERVICE}/" if _base else f"/services/{SERVICE}/"
c.HybridSpawner.service_url = url_setting("HYBRIDHUB_SERVICE_URL", f"http://{_host}:{_bind.port}{_prefix}")

# the file that sets c.ClusterSet.clusters, as the chart mounts it (hub.extraFiles)
CLUSTERS_FILE = setting(
    "HYBRIDHUB_CLUSTERS_FILE", "/usr/local/etc/jupyterhub/jupyterhub_config.d/10-clusters.py"
)
# A managed service inherits little of the hub's environment (PATH, LANG, ...): hand it what the
# clusters file and the cluster clients read (in-cluster config needs KUBERNETES_SERVICE_*; the
# `aws eks get-token` plugin the AWS_* variables and HOME) and the service's own settings (its
# database, HYBRIDHUB_SERVICE_DB_URL, and the gateway's address for users' SSH config,
# HYBRIDHUB_SSH_GATEWAY_ADDRESS), but not the hub's tokens.
_PASSED = ("HOME", "KUBERNETES_SERVICE_HOST", "KUBERNETES_SERVICE_PORT", "POD_NAMESPACE")
_NOT_PASSED = ("HYBRIDHUB_HUB_TOKEN", "HYBRIDHUB_PROMETHEUS_TOKEN", "HYBRIDHUB_SSH_GATEWAY_TOKEN")
SERVICE_ENVIRONMENT = {
    name: value
    for name, value in os.environ.items()
    if (name in _PASSED or name.startswith(("HYBRIDHUB_", "AWS_")))
    and name not in _NOT_PASSED
    and not name.endswith("_SSH_GATEWAY_TOKEN")  # a site's gateway's token (below)
}

HUB_TOKEN = setting("HYBRIDHUB_HUB_TOKEN")
if not HUB_TOKEN:
    raise ValueError(
        "30-service.py: set HYBRIDHUB_HUB_TOKEN (from a Secret): HybridSpawner's token for "
        "the hybridhub service's placement API"
    )

c.JupyterHub.custom_scopes.update(
    {
        "custom:hybridhub:capacity": {"description": "See the GPU availability of the clusters"},
        "custom:hybridhub:place": {"description": "Ask the hybridhub service for placements (the hub only)"},
        "custom:hybridhub:servers": {"description": "Look up where any user's server runs"},
        "custom:hybridhub:runs": {
            "description": "Submit, read and delete one's own runs through the hybridhub service"
        },
    }
)

c.JupyterHub.services.append(
    {
        "name": SERVICE,
        "url": PROXY_URL,
        "display": False,  # an API, no page to link from the hub's menu
        # JupyterHub passes JUPYTERHUB_SERVICE_URL = url; the service listens on BIND_URL instead
        "command": [
            "hybridhub",
            "service",
            "--config",
            CLUSTERS_FILE,
            f"--HybridHubService.bind_url={BIND_URL}",
        ],
        "environment": SERVICE_ENVIRONMENT,
        # the SSH keys page (/services/hybridhub/ssh) logs users in through the hub without asking
        # them to authorize the hub's own service
        "oauth_no_confirm": True,
    }
)
# the service's own token (JUPYTERHUB_API_TOKEN): its leftover-pod sweep asks which servers run or start,
# for all users at once (list:users) rather than one request per running server; its SSH part asks who
# may reach a server: the hub's admins (read:users), and who the owner shared it with (read:shares,
# read:groups for shares with a group)
c.JupyterHub.load_roles.append(
    {
        "name": "hybridhub-service",
        "description": "The hybridhub service: which servers run or start, who may reach them over SSH",
        "scopes": ["list:users", "read:servers", "read:users", "read:shares", "read:groups"],
        "services": [SERVICE],
    }
)
# the hub's own client of the service: HybridSpawner reads this token from HYBRIDHUB_HUB_TOKEN
c.JupyterHub.services.append({"name": "hybridhub-hub", "api_token": HUB_TOKEN})

c.JupyterHub.load_roles.append(
    {
        "name": "hybridhub-hub",
        "description": "HybridSpawner: placements, server locations, GPU availability (spawn form)",
        "scopes": [
            f"access:services!service={SERVICE}",
            "custom:hybridhub:place",
            "custom:hybridhub:servers",
            "custom:hybridhub:capacity",
        ],
        "services": ["hybridhub-hub"],
    }
)
# Every user may see GPU capacity and submit runs (docs/runs.md). The SDKs in a notebook send the
# notebook server's token, so that token carries these scopes too (below). JupyterHub 5.5 has no way
# to add scopes to the default `user` role but to redefine it here (keep "self"; define no other
# `user` role, e.g. in hub.loadRoles: a role defined twice stops the hub). On JupyterHub 6, drop this
# role and set instead
#   c.JupyterHub.extra_user_scopes = set(USER_SCOPES)
# which adds to the default role (JupyterHub 6 ignores extra_user_scopes, with a warning, while the
# `user` role is redefined).
USER_SCOPES = [f"access:services!service={SERVICE}", "custom:hybridhub:capacity", "custom:hybridhub:runs"]
c.JupyterHub.load_roles.append({"name": "user", "scopes": ["self", *USER_SCOPES]})

# The token JupyterHub gives each notebook server (JUPYTERHUB_API_TOKEN). Setting this replaces the
# default `server` role's scopes, so those two come first; JupyterHub grants only the part of this list
# the server's owner holds (hence the user role above), and "!server" means this server.
c.Spawner.server_token_scopes = ["users:activity!user", "access:servers!server", *USER_SCOPES]

# Prometheus scraping the service's /services/hybridhub/metrics (and the hub's /hub/metrics), when a
# token is configured for it
PROMETHEUS_TOKEN = setting("HYBRIDHUB_PROMETHEUS_TOKEN")
if PROMETHEUS_TOKEN:
    c.JupyterHub.services.append({"name": "prometheus", "api_token": PROMETHEUS_TOKEN})
    c.JupyterHub.load_roles.append(
        {
            "name": "prometheus",
            "scopes": [f"access:services!service={SERVICE}", "read:metrics"],
            "services": ["prometheus"],
        }
    )

# ---------------------------------------------------------------------------------------------- SSH
# The SSH gateway runs beside the hub (its own Deployment, manifests/eks/ssh-gateway.yaml) and asks the
# hub who may reach which server, and the service where it runs, with this token. Without it there is no
# gateway to reach the pods' SSH servers, so SSH stays off. To turn SSH off, drop
# HYBRIDHUB_SSH_GATEWAY_TOKEN from hub.extraEnv (and leave ssh-gateway.yaml out): notebook pods then run
# the notebook's command alone.
GATEWAY = "ssh-gateway"
GATEWAY_TOKEN = setting("HYBRIDHUB_SSH_GATEWAY_TOKEN")
# Whether the gateway may start a user's stopped server when they jump to it (its --start-servers flag,
# which the shipped Deployment leaves off): only then does its token get the `servers` scope.
_start = setting("HYBRIDHUB_SSH_GATEWAY_START_SERVERS", "false").lower()
if _start not in ("true", "false", "1", "0", "yes", "no"):
    raise ValueError(
        f"30-service.py: HYBRIDHUB_SSH_GATEWAY_START_SERVERS must be true or false, not {_start!r}"
    )
GATEWAY_STARTS_SERVERS = _start in ("true", "1", "yes")
# what the gateway calls: the users and servers it lets in (the owner, admins, who the owner shared the
# server with), where a server runs (the service's api/servers), and the users' registered keys
GATEWAY_SCOPES = [
    "read:users",
    "read:servers",
    "read:shares",
    *(["servers"] if GATEWAY_STARTS_SERVERS else []),
    "custom:hybridhub:servers",
    f"access:services!service={SERVICE}",
]


def pod_service_url(cluster: dict[str, Any]) -> str:
    """The service's URL with its prefix as ``cluster``'s pods reach it (their SSH servers ask it for
    their host certificates and the keys allowed in): HYBRIDHUB_<CLUSTER>_SERVICE_URL if set; pods that
    reach the hub through the hub's Service (the hub's own cluster) reach the service through the same
    Service's extra port; others through the cluster's hub URL, the public proxy, which routes the
    service's prefix."""
    name = str(cluster["name"])
    hub = urlsplit(str(cluster.get("hub_connect_url") or HUB_SERVICE_URL))
    if hub.hostname == urlsplit(HUB_SERVICE_URL).hostname:
        default = f"http://{hub.hostname}:{PORT}{_prefix}"
    else:
        default = f"{hub.scheme}://{hub.netloc}{_prefix}"
    return url_setting(f"HYBRIDHUB_{name.upper()}_SERVICE_URL", default)


def site_gateways(clusters: list[dict[str, Any]]) -> dict[str, dict[str, str]]:
    """Gateways running inside a cluster (optional), so that SSH to that cluster's servers need not
    cross the site link: HYBRIDHUB_<CLUSTER>_SSH_GATEWAY_TOKEN (the hub token that gateway holds) and
    HYBRIDHUB_<CLUSTER>_SSH_GATEWAY_ADDRESS (host:port as users reach it), both or neither."""
    found = {}
    for cluster in clusters:
        name = str(cluster["name"])
        key = f"HYBRIDHUB_{name.upper().replace('-', '_')}_SSH_GATEWAY"
        token, address = setting(f"{key}_TOKEN"), setting(f"{key}_ADDRESS")
        if bool(token) != bool(address):
            raise ValueError(f"30-service.py: set both {key}_TOKEN and {key}_ADDRESS, or neither")
        if token:
            found[name] = {"service": f"{GATEWAY}-{name}", "address": address, "token": token}
    return found


if GATEWAY_TOKEN:
    c.HybridSpawner.ssh_enabled = True  # the notebook image has the ssh extra; off: see above
    # the clusters 10-clusters.py set before this file runs
    c.HybridSpawner.pod_service_urls = {
        str(cluster["name"]): pod_service_url(cluster) for cluster in c.ClusterSet.get("clusters", [])
    }
    c.JupyterHub.services.append({"name": GATEWAY, "api_token": GATEWAY_TOKEN})
    SITE_GATEWAYS = site_gateways(c.ClusterSet.get("clusters", []))
    for site in SITE_GATEWAYS.values():
        c.JupyterHub.services.append({"name": site["service"], "api_token": site["token"]})
    c.JupyterHub.load_roles.append(
        {
            "name": GATEWAY,
            "description": "The SSH gateways: who may reach which server, where it runs, users' keys",
            "scopes": GATEWAY_SCOPES,
            "services": [GATEWAY, *(site["service"] for site in SITE_GATEWAYS.values())],
        }
    )
    if SITE_GATEWAYS:  # HybridHubService.ssh_site_gateways, in the service's definition's environment
        SERVICE_ENVIRONMENT["HYBRIDHUB_SSH_SITE_GATEWAYS"] = json.dumps(
            {
                name: {"address": site["address"], "service": site["service"]}
                for name, site in SITE_GATEWAYS.items()
            }
        )
