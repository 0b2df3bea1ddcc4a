"""The shipped default is the cloud topology: which cluster each credential and address points at.

The hub, the proxy and the hybridhub service run in EKS (in-cluster); the on-prem API is reached over
the site link through a kubeconfig whose token is a rotating bound ServiceAccount token read from a
file; on-prem pods reach the hub at the required HYBRIDHUB_ONPREM_HUB_URL. The hub in the on-prem
cluster is the alternative: the two KUBECONFIG settings flipped. Every row below fails if the files'
defaults go back to the hub on-prem.
"""

from __future__ import annotations

import ipaddress
import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from spawner.core.clusters import ClusterSet
from spawner.kube.client import ClusterClient

from .configfiles import HUB_CONFIG, chart_environment, hub_dir, load, services, use_environment, wiring

MANIFESTS = HUB_CONFIG / "manifests"
VALUES = HUB_CONFIG / "values.yaml"
KUBECONFIG_TEMPLATE = HUB_CONFIG / "onprem-kubeconfig.yaml"
ONPREM_KUBECONFIG = "/usr/local/etc/hybridhub/onprem/kubeconfig"  # 10-clusters.py's default
HUB_SERVICE = "http://hub:8081"  # the chart's hub Service, inside the hub's cluster
ONPREM_HUB_URL = "https://hub.site-link.example"  # what the operator sets; no default

# Only what the files require: everything else is their own defaults.
DEFAULT_ENV = {
    "POD_NAMESPACE": "hub-ns",
    "HYBRIDHUB_HUB_TOKEN": "hub-token",
    "HYBRIDHUB_ONPREM_HUB_URL": ONPREM_HUB_URL,
}
# The hub-on-prem alternative: the two KUBECONFIG settings flipped, the hub's URL for the cluster now
# reached from outside, and the on-prem hub URL dropped (empty: back to the in-cluster default).
FLIP = {
    "HYBRIDHUB_ONPREM_KUBECONFIG": "in-cluster",
    "HYBRIDHUB_ONPREM_HUB_URL": "",
    "HYBRIDHUB_EKS_KUBECONFIG": "/usr/local/etc/hybridhub/eks/kubeconfig",
    "HYBRIDHUB_EKS_HUB_URL": "https://hub.example.org",
}

# (what, its value with the defaults, its value with FLIP, where it points)
WIRING: list[tuple[str, Any, Any, str]] = [
    (
        "eks.kubeconfig",
        None,
        "/usr/local/etc/hybridhub/eks/kubeconfig",
        "EKS in-cluster: the hub pod's account",
    ),
    ("eks.context", None, None, "in-cluster has no context; the flip leaves the kubeconfig's own"),
    ("eks.namespace", "hub-ns", "jupyterhub", "EKS notebooks in the hub's namespace"),
    ("eks.hub_connect_url", HUB_SERVICE, "https://hub.example.org", "EKS pods reach the hub's Service"),
    ("onprem.kubeconfig", ONPREM_KUBECONFIG, None, "on-prem over the link, through the mounted Secret"),
    ("onprem.context", None, None, "the kubeconfig's current-context"),
    ("onprem.namespace", "jupyterhub", "hub-ns", "a remote cluster's default namespace"),
    ("onprem.hub_connect_url", ONPREM_HUB_URL, HUB_SERVICE, "on-prem pods reach the hub over the link"),
]
# The service runs in the hub pod: its addresses are inside the hub's cluster whichever that is.
SERVICE_WIRING: list[tuple[str, str]] = [
    ("service.url", "http://hub:10101"),  # the proxy pod, through the hub's Service
    ("service.bind_url", "http://0.0.0.0:10101"),
    ("spawner.service_url", "http://127.0.0.1:10101/services/hybridhub/"),  # the hub, in the same pod
]


def hub_cluster(wired: dict[str, Any]) -> str:
    """The cluster the hub runs in: the one reached in-cluster (kubeconfig None)."""
    (name,) = [
        key.split(".")[0] for key, value in wired.items() if key.endswith(".kubeconfig") and value is None
    ]
    return name


@pytest.fixture
def defaults(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    use_environment(monkeypatch, DEFAULT_ENV)
    return dict(DEFAULT_ENV)


@pytest.mark.parametrize(("key", "default", "flipped", "where"), WIRING, ids=[row[0] for row in WIRING])
def test_each_cluster_is_reached_as_the_cloud_topology_says(
    defaults: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    key: str,
    default: Any,
    flipped: Any,
    where: str,
) -> None:
    """With the files' own defaults the value points where the cloud topology says; with the two
    KUBECONFIG settings flipped it points where the hub-on-prem alternative says."""
    assert wiring(load(HUB_CONFIG))[key] == default, where
    for name, value in FLIP.items():
        monkeypatch.setenv(name, value)
    assert wiring(load(HUB_CONFIG))[key] == flipped


@pytest.mark.parametrize(("key", "expected"), SERVICE_WIRING, ids=[row[0] for row in SERVICE_WIRING])
def test_the_service_is_where_the_hub_is(
    defaults: dict[str, str], monkeypatch: pytest.MonkeyPatch, key: str, expected: str
) -> None:
    """The service's addresses are the hub pod's and its Service's: in EKS by default, and they move
    with the hub under the flip."""
    wired = wiring(load(HUB_CONFIG))
    assert (wired[key], hub_cluster(wired)) == (expected, "eks")
    for name, value in FLIP.items():
        monkeypatch.setenv(name, value)
    wired = wiring(load(HUB_CONFIG))
    assert (wired[key], hub_cluster(wired)) == (expected, "onprem")


@pytest.mark.parametrize(
    ("unset", "message"),
    [
        (
            {"HYBRIDHUB_ONPREM_HUB_URL"},
            "set HYBRIDHUB_ONPREM_HUB_URL to the hub's URL as pods in onprem reach it",
        ),
        (set(), None),  # the defaults need nothing else
    ],
    ids=["no on-prem hub URL", "nothing missing"],
)
def test_the_onprem_hub_url_is_required(
    defaults: dict[str, str], monkeypatch: pytest.MonkeyPatch, unset: set[str], message: str | None
) -> None:
    """No default can say how on-prem pods reach a hub in another cluster: without it the hub stops
    at startup with the variable's name."""
    for name in unset:
        monkeypatch.delenv(name)
    if message is None:
        assert load(HUB_CONFIG)
    else:
        with pytest.raises(ValueError, match=re.escape(message)):
            load(HUB_CONFIG)


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        ("eks.kubeconfig", None),
        ("eks.hub_connect_url", HUB_SERVICE),
        ("onprem.kubeconfig", ONPREM_KUBECONFIG),
        ("onprem.context", "onprem"),
        ("onprem.hub_connect_url", "https://hub.example.org"),
    ],
)
def test_the_chart_values_keep_the_default(monkeypatch: pytest.MonkeyPatch, key: str, expected: Any) -> None:
    """values.yaml as shipped sets the on-prem kubeconfig (its default path, repeated for the flip)
    and leaves EKS in-cluster."""
    values = yaml.safe_load(VALUES.read_text())
    use_environment(monkeypatch, chart_environment(values))
    assert not [name for name in values["hub"]["extraEnv"] if name.startswith("HYBRIDHUB_EKS_")]
    assert wiring(load(HUB_CONFIG))[key] == expected


# ---------------------------------------------------------------------------------------------- SSH

# The service as each cluster's pods reach it (their SSH servers ask it for host certificates and keys):
# in the hub's cluster through the hub's Service on the service's port (values.yaml's extra port, which
# notebook pods there may reach), elsewhere through the hub's public address, whose proxy routes the
# service's prefix.
IN_HUB_CLUSTER = "http://hub:10101/services/hybridhub/"
POD_SERVICE_URLS: list[tuple[str, dict[str, str], dict[str, str]]] = [
    (
        "two-cluster",
        {},
        {"onprem": "https://hub.site-link.example/services/hybridhub/", "eks": IN_HUB_CLUSTER},
    ),
    ("hub on-prem", FLIP, {"onprem": IN_HUB_CLUSTER, "eks": "https://hub.example.org/services/hybridhub/"}),
    ("single-cluster", {}, {"eks": IN_HUB_CLUSTER}),
]


@pytest.mark.parametrize(
    ("topology", "overrides", "expected"), POD_SERVICE_URLS, ids=[row[0] for row in POD_SERVICE_URLS]
)
def test_pods_reach_the_service_as_their_cluster_reaches_the_hub(
    defaults: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    topology: str,
    overrides: dict[str, str],
    expected: dict[str, str],
) -> None:
    """With the SSH gateway's token SSH is on, and every cluster's pods get the service's URL: the one
    of the hub's cluster follows the hub when it moves."""
    monkeypatch.setenv("HYBRIDHUB_SSH_GATEWAY_TOKEN", "gateway-token")
    for name, value in overrides.items():
        monkeypatch.setenv(name, value)
    wired = wiring(
        load(hub_dir("single-cluster" if topology == "single-cluster" else "two-cluster", tmp_path))
    )
    assert wired["spawner.ssh_enabled"] is True
    assert wired["spawner.pod_service_urls"] == expected
    # the hub's own cluster is the one whose pods go through the hub's Service
    inside = [name for name, url in expected.items() if url == IN_HUB_CLUSTER]
    assert inside == [name for name in expected if wired[f"{name}.hub_connect_url"] == HUB_SERVICE]


# ---------------------------------------------------------------------------------------------- credentials


def yaml_docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d is not None]


def refresh_job() -> dict[str, Any]:
    (job,) = [d for d in yaml_docs(MANIFESTS / "eks" / "onprem-token-refresh.yaml") if d["kind"] == "CronJob"]
    return job


def test_the_onprem_kubeconfig_reads_a_token_file_from_the_mounted_secret() -> None:
    """The kubeconfig holds no credential of its own: its user reads a token file beside it, in the
    Secret values.yaml mounts, and its context and namespace are the ones values.yaml names."""
    config = yaml.safe_load(KUBECONFIG_TEMPLATE.read_text())
    (user,) = config["users"]
    assert set(user["user"]) == {"tokenFile"}  # no token, client key, password or exec plugin
    values = yaml.safe_load(VALUES.read_text())
    env = values["hub"]["extraEnv"]
    mount_dir = str(Path(env["HYBRIDHUB_ONPREM_KUBECONFIG"]).parent)
    assert str(Path(user["user"]["tokenFile"]).parent) == mount_dir
    (mount,) = [m for m in values["hub"]["extraVolumeMounts"] if m["mountPath"] == mount_dir]
    assert "subPath" not in mount  # a subPath mount would never see the refreshed token
    (volume,) = [v for v in values["hub"]["extraVolumes"] if v["name"] == mount["name"]]
    contexts = {c["name"]: c["context"] for c in config["contexts"]}
    assert config["current-context"] == env["HYBRIDHUB_ONPREM_CONTEXT"] in contexts
    assert contexts[env["HYBRIDHUB_ONPREM_CONTEXT"]]["namespace"] == env["HYBRIDHUB_ONPREM_NAMESPACE"]
    # the refresh job writes that Secret's token key, mounted at the same place
    job = refresh_job()["spec"]["jobTemplate"]["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in job["volumes"]}
    (container,) = job["containers"]
    mounted = {m["mountPath"]: volumes[m["name"]] for m in container["volumeMounts"]}
    assert mounted[mount_dir]["secret"]["secretName"] == volume["secret"]["secretName"]
    script = container["args"][0]
    assert f"patch secret {volume['secret']['secretName']} " in script
    assert '"stringData":{"' + Path(user["user"]["tokenFile"]).name + '"' in script
    assert f"--kubeconfig {env['HYBRIDHUB_ONPREM_KUBECONFIG']} " in script


def duration_seconds(text: str) -> int:
    match = re.fullmatch(r"(\d+)([hm])", text)
    assert match, text
    return int(match.group(1)) * (3600 if match.group(2) == "h" else 60)


def test_the_onprem_token_is_bound_short_lived_and_renewed_in_time() -> None:
    """The token is a bound token of the on-prem identity, tied to the anchor Secret that revokes it,
    lives at most a day, and is renewed hourly, well before it expires; nowhere is a long-lived
    ServiceAccount token Secret."""
    identity = yaml_docs(MANIFESTS / "onprem" / "identity.yaml")
    (account,) = [d for d in identity if d["kind"] == "ServiceAccount"]
    (anchor,) = [d for d in identity if d["kind"] == "Secret"]
    assert account["automountServiceAccountToken"] is False  # no pod runs as it
    job = refresh_job()
    (container,) = job["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    assert env["ONPREM_NAMESPACE"] == account["metadata"]["namespace"] == anchor["metadata"]["namespace"]
    words = " ".join(container["args"][0].replace("\\\n", " ").split())
    match = re.search(
        r"create token (\S+) --namespace \"\$ONPREM_NAMESPACE\" --duration (\S+) "
        r"--bound-object-kind Secret --bound-object-name (\S+) ",
        words,
    )
    assert match, words
    assert (match.group(1), match.group(3)) == (account["metadata"]["name"], anchor["metadata"]["name"])
    lifetime = duration_seconds(match.group(2))
    assert lifetime <= 24 * 3600
    assert job["spec"]["schedule"].split()[1:] == ["*", "*", "*", "*"]  # hourly
    assert lifetime >= 4 * 3600  # several renewals before a token expires: a failed one is retried
    for path in MANIFESTS.rglob("*.yaml"):
        for doc in yaml_docs(path):
            assert doc.get("type") != "kubernetes.io/service-account-token", path


def test_the_refresh_job_fits_the_restricted_pod_security_profile() -> None:
    """It runs in the hub's namespace, whose Pod Security labels warn on `restricted`: it meets it,
    holds its token files in memory only, and gives up rather than run on."""
    spec = refresh_job()["spec"]
    assert spec["concurrencyPolicy"] == "Forbid"
    job = spec["jobTemplate"]["spec"]
    assert job["activeDeadlineSeconds"] > 0
    pod = job["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    context = container["securityContext"]
    assert context["allowPrivilegeEscalation"] is False and context["capabilities"] == {"drop": ["ALL"]}
    assert context["readOnlyRootFilesystem"] is True
    (work,) = [v for v in pod["volumes"] if "emptyDir" in v]
    assert work["emptyDir"]["medium"] == "Memory"


@pytest.mark.asyncio
async def test_the_shipped_kubeconfig_gives_the_client_the_current_token(
    defaults: dict[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """The on-prem client built from the shipped kubeconfig (its mount moved to tmp_path, the CA
    placeholder dropped) sends the token in the file, and the next one once the file changes, without
    a restart."""
    config = yaml.safe_load(KUBECONFIG_TEMPLATE.read_text())
    token = tmp_path / "token"
    # no newline at the end: the client sends the file as it is (the refresh job's $(cat) strips it)
    token.write_text("first-bound-token")
    (user,) = config["users"]
    user["user"]["tokenFile"] = str(token)
    (cluster,) = config["clusters"]
    cluster["cluster"] = {"server": cluster["cluster"]["server"], "insecure-skip-tls-verify": True}
    path = tmp_path / "kubeconfig"
    path.write_text(yaml.safe_dump(config))
    monkeypatch.setenv("HYBRIDHUB_ONPREM_KUBECONFIG", str(path))
    (onprem,) = [c for c in ClusterSet(config=load(HUB_CONFIG)).configs if c.name == "onprem"]
    client = ClusterClient(onprem, in_cluster_token_period=0)  # re-read before every request
    await client.start()
    try:
        configuration = client.configuration
        assert configuration.host == "https://192.0.2.10:6443"
        assert configuration.api_key["BearerToken"] == "Bearer first-bound-token"
        token.write_text("renewed-bound-token")
        await configuration.refresh_api_key_hook(configuration)  # what runs before each request
        assert configuration.api_key["BearerToken"] == "Bearer renewed-bound-token"
    finally:
        await client.close()


# ---------------------------------------------------------------------------------------------- the rest


def test_the_hub_database_is_a_managed_postgres_without_its_password() -> None:
    """hub.db points at PostgreSQL with TLS; the password comes from a Secret, not the values, and the
    hybridhub service is not handed it."""
    values = yaml.safe_load(VALUES.read_text())
    db = values["hub"]["db"]
    assert db["type"] == "postgres"
    url = db["url"]
    assert url.startswith("postgresql+psycopg2://") and "sslmode=require" in url
    assert not re.match(r"postgresql\+psycopg2://[^@/]*:[^@/]*@", url), "a password in the URL"
    assert db.get("password") is None
    assert set(values["hub"]["extraEnv"]["PGPASSWORD"]["valueFrom"]) == {"secretKeyRef"}


def test_the_service_is_not_given_the_database_password(monkeypatch: pytest.MonkeyPatch) -> None:
    env = chart_environment(yaml.safe_load(VALUES.read_text()))
    assert "PGPASSWORD" in env
    use_environment(monkeypatch, env)
    monkeypatch.setenv("PGPASSWORD", env["PGPASSWORD"])
    assert "PGPASSWORD" not in services(load(HUB_CONFIG))["hybridhub"]["environment"]


DOCUMENTATION_RANGES = [
    ipaddress.ip_network(n) for n in ("192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24")
]


# the files that carry site addresses; every other YAML file in hub_config/ carries none
ADDRESSED = {
    VALUES,
    KUBECONFIG_TEMPLATE,
    MANIFESTS / "onprem" / "networkpolicy.yaml",
    MANIFESTS / "eks" / "ssh-gateway.yaml",  # the on-prem pod range the gateway reaches
}
NOT_SITE = {"0.0.0.0/0", "169.254.169.254/32"}  # anywhere; the metadata address, the same everywhere


def test_site_addresses_are_labelled_placeholders() -> None:
    """Every site-specific address is a documentation address with REPLACE just above it, so nothing
    ships that looks like a real network."""
    addressed = set()
    for path in HUB_CONFIG.rglob("*.yaml"):
        lines = path.read_text().splitlines()
        for number, line in enumerate(lines):
            if line.lstrip().startswith("#"):
                continue
            for address in re.findall(r"\b\d+\.\d+\.\d+\.\d+(?:/\d+)?", line):
                if address in NOT_SITE:
                    continue
                addressed.add(path)
                network = ipaddress.ip_network(address)
                assert any(network.subnet_of(r) for r in DOCUMENTATION_RANGES), (path, line)  # type: ignore[arg-type]
                assert any("REPLACE" in above for above in lines[max(0, number - 8) : number]), (path, line)
    assert addressed == ADDRESSED


def test_the_hub_and_proxy_may_reach_the_onprem_site() -> None:
    """The hub's egress admits the on-prem API the kubeconfig names, and the hub's and the proxy's
    the same on-prem pod range on the notebook port."""
    values = yaml.safe_load(VALUES.read_text())
    server = yaml.safe_load(KUBECONFIG_TEMPLATE.read_text())["clusters"][0]["cluster"]["server"]
    host, port = re.fullmatch(r"https://([0-9.]+):(\d+)", server).groups()  # type: ignore[union-attr]

    def allowed(rules: list[dict[str, Any]]) -> set[tuple[str, int]]:
        return {
            (peer["ipBlock"]["cidr"], p["port"])
            for rule in rules
            for peer in rule["to"]
            for p in rule["ports"]
        }

    hub = allowed(values["hub"]["networkPolicy"]["egress"])
    proxy = allowed(values["proxy"]["chp"]["networkPolicy"]["egress"])
    assert any(ipaddress.ip_address(host) in ipaddress.ip_network(c) and p == int(port) for c, p in hub)
    assert proxy and proxy <= hub and all(p == 8888 for _, p in proxy)


def test_the_flip_changes_only_the_cluster_access(
    defaults: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Hub-on-prem from the defaults: FLIP changes the clusters' API access, namespaces and hub URLs,
    and nothing of the service (it moves with the hub)."""
    before = wiring(load(HUB_CONFIG))
    for name, value in FLIP.items():
        monkeypatch.setenv(name, value)
    after = wiring(load(HUB_CONFIG))
    changed = {key for key in before if before[key] != after[key]}
    assert changed == {key for key, default, flipped, _ in WIRING if default != flipped}
    assert (hub_cluster(before), hub_cluster(after)) == ("eks", "onprem")
