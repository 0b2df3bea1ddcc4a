"""hub_config/manifests/: the companion Kubernetes objects of each cluster parse, and their RBAC gives the
hub's and the service's identity what the code calls, and nothing more; the on-prem identity's token
is bound and renewed, never long-lived; and what ``kubectl kustomize`` renders fits the Kubernetes
schema as the ``kubernetes`` client's models know it.

The tables below come from reading the code: KubeSpawner 7.0's spawner.py and reflector.py,
spawner/hybrid.py and the packages spawning, kube, inventory and service. ``test_the_tables_cover_the_code``
scans those sources for Kubernetes CoreV1Api calls, so a new call fails here until the table (and the
manifests) have it; ``test_the_runs_tables_cover_the_code`` checks the runs' table against the run
kinds and the run namespace's objects the service's code defines.
"""

from __future__ import annotations

import copy
import json
import os
import re
import subprocess
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import asyncssh
import kubernetes.client
import kubespawner
import pytest
import yaml
from kubernetes_asyncio.client import CoreV1Api
from traitlets.config import Config

from spawner.cli import SUBCOMMANDS
from spawner.hybrid import HybridSpawner
from spawner.service.app import HybridHubService
from spawner.service.runs.clusterio import COLLECTIONS
from spawner.service.runs.namespaces import RunNamespaceSettings, build
from spawner.ssh.gateway_cli import GatewayApp, load_host_key

from .configfiles import chart_environment, use_environment

ROOT = Path(__file__).resolve().parents[2]
HUB_CONFIG = ROOT / "hub_config"
MANIFESTS = HUB_CONFIG / "manifests"
CLUSTERS = ["onprem", "eks"]
RBAC = "rbac.authorization.k8s.io"

Need = tuple[str, str, str]  # (apiGroup, resource, verb)

# HybridSpawner (KubeSpawner underneath) in the notebook namespace.
SPAWNER_NEEDS: dict[Need, str] = {
    ("", "pods", "create"): "KubeSpawner._make_create_pod_request",
    ("", "pods", "delete"): "KubeSpawner._make_delete_pod_request (stop), leftovers.LeftoverPods",
    ("", "pods", "get"): "leftovers.LeftoverPods (the UID a leftover is deleted with)",
    ("", "pods", "list"): "KubeSpawner's PodReflector (list_namespaced_pod)",
    ("", "pods", "watch"): "KubeSpawner's PodReflector",
    ("", "events", "list"): "KubeSpawner's EventReflector (list_namespaced_event)",
    ("", "events", "watch"): "KubeSpawner's EventReflector",
    ("", "persistentvolumeclaims", "create"): "KubeSpawner._make_create_pvc_request (home PVC)",
    ("", "persistentvolumeclaims", "get"): "KubeSpawner._make_create_pvc_request on 403, _check_pvc_exists",
    ("", "persistentvolumeclaims", "delete"): "KubeSpawner.delete_forever (delete_pvc)",
    ("", "services", "create"): "KubeSpawner._make_create_resource_request('service') (pod_access: service)",
    ("", "services", "get"): "KubeSpawner._ensure_not_exists('service'), spawning.follow.service_address",
    ("", "services", "delete"): "KubeSpawner._ensure_not_exists('service')",
    ("", "secrets", "create"): "KubeSpawner._make_create_resource_request('secret') (internal_ssl)",
    ("", "secrets", "get"): "KubeSpawner._ensure_not_exists('secret')",
    ("", "secrets", "delete"): "KubeSpawner._ensure_not_exists('secret')",
}
# The hybridhub service: the whole cluster ...
SERVICE_CLUSTER_NEEDS: dict[Need, str] = {
    ("", "nodes", "list"): "ClusterWatcher (inventory.py: list_node)",
    ("", "nodes", "watch"): "ClusterWatcher",
    ("", "pods", "list"): "ClusterWatcher (inventory.py: list_pod_for_all_namespaces)",
    ("", "pods", "watch"): "ClusterWatcher",
}
# ... for runs (service/runs/), as itself: what it does as the user it impersonates is the cluster's
# RBAC in the user's run namespace to decide, not these manifests' ...
_RUN_NAMESPACE_VERBS = ("get", "create", "patch", "delete")  # provision.ensure and remove
SERVICE_RUNS_NEEDS: dict[Need, str] = {
    ("", "namespaces", "list"): "RunManager.sweep_users (the run namespaces of users the hub no longer has)",
    **{
        (group, resource, verb): "provision.ensure, provision.remove (a user's run namespace)"
        for group, resource in [
            ("", "namespaces"),
            ("", "resourcequotas"),
            ("", "limitranges"),
            ("", "serviceaccounts"),
            (RBAC, "rolebindings"),
            ("networking.k8s.io", "networkpolicies"),
        ]
        for verb in _RUN_NAMESPACE_VERBS
    },
    ("", "users", "impersonate"): "clusterio.UserApi (Impersonate-User: hybridhub:user:<name>)",
    **{
        (group, plural, verb): f"RunManager.sweep_orphans ({kind}s this hub made that the registry lost)"
        for kind, group, plural in [
            ("Workflow", "argoproj.io", "workflows"),
            ("Experiment", "kubeflow.org", "experiments"),
            ("TrainJob", "trainer.kubeflow.org", "trainjobs"),
            ("PyTorchJob", "kubeflow.org", "pytorchjobs"),
            ("Job", "batch", "jobs"),
        ]
        for verb in ("list", "delete")
    },
    **{
        (group, plural, "patch"): "RunManager._let_go (spec.suspend false, when the GPU gang fits)"
        for group, plural in [
            ("argoproj.io", "workflows"),
            ("trainer.kubeflow.org", "trainjobs"),
            ("kubeflow.org", "pytorchjobs"),
            ("batch", "jobs"),
        ]
    },
    ("trainer.kubeflow.org", "clustertrainingruntimes", "get"): "api/k8s.py KubeHandler.everyones",
    ("trainer.kubeflow.org", "clustertrainingruntimes", "list"): "api/k8s.py KubeHandler.everyones",
}
SERVICE_CLUSTER_NEEDS |= SERVICE_RUNS_NEEDS
# ... and rules for one named object, in every namespace.
SERVICE_NAMED_CLUSTER_NEEDS: dict[tuple[str, str, str, str], str] = {
    (RBAC, "clusterroles", "bind", "edit"): "namespaces.build (the user's RoleBinding to `edit`)",
    (RBAC, "clusterroles", "bind", "hybridhub-runner"): "namespaces.build (the runner's RoleBinding)",
    ("", "configmaps", "get", "kubeflow-trainer-public"): "api/k8s.py (TrainerClient reads it as it starts)",
}
# The Argo runner: a ClusterRole the manifests ship and nothing in them binds; the service binds it to
# each run namespace's runner account, so workflow pods hold these rules in their own namespace only.
RUNNER_ROLE = "hybridhub-runner"
RUNNER_NEEDS: dict[Need, str] = {
    ("argoproj.io", "workflowtaskresults", "create"): "Argo's emissary executor reports step results (3.4+)",
    ("argoproj.io", "workflowtaskresults", "patch"): "Argo's emissary executor reports step results (3.4+)",
    ("", "pods", "get"): "older Argo controllers read outputs through the pod",
    ("", "pods", "watch"): "older Argo controllers read outputs through the pod",
    ("", "pods", "patch"): "older Argo controllers read outputs through the pod",
}
SERVICE_URL_NEEDS = {("/readyz", "get"): "ClusterMember.readyz (service/fleet.py)"}
# ... and the notebook namespace.
SERVICE_NAMESPACE_NEEDS: dict[Need, str] = {
    ("", "pods", "delete"): "the leftover-pod sweep",
}
# CoreV1Api calls in the sources that hybridhub never makes
NOT_MADE = {"create_namespace": "KubeSpawner, only with enable_user_namespaces, which hybridhub does not use"}

SPAWNER_SOURCES = [
    Path(kubespawner.__file__).parent / "spawner.py",
    Path(kubespawner.__file__).parent / "reflector.py",
    ROOT / "spawner" / "hybrid.py",
    *sorted((ROOT / "spawner" / "spawning").rglob("*.py")),
    *sorted((ROOT / "spawner" / "kube").rglob("*.py")),
]
SERVICE_SOURCES = [
    *sorted((ROOT / "spawner" / "inventory").rglob("*.py")),
    *sorted((ROOT / "spawner" / "kube").rglob("*.py")),
    *sorted((ROOT / "spawner" / "service").rglob("*.py")),
]

# Who the hub and the service are in each cluster: the hub runs in EKS (the chart's ServiceAccount
# `hub`, in-cluster) and reaches on-prem as a ServiceAccount of its own there, over the site link.
IDENTITY = {
    "onprem": {"kind": "ServiceAccount", "name": "hybridhub-hub", "namespace": "jupyterhub"},
    "eks": {"kind": "ServiceAccount", "name": "hub", "namespace": "jupyterhub"},
}
# The EKS Job that renews the hub's on-prem token (eks/onprem-token-refresh.yaml).
REFRESHER = {"kind": "ServiceAccount", "name": "hybridhub-onprem-token-refresh", "namespace": "jupyterhub"}
ONPREM_SECRET = "hybridhub-onprem"  # the on-prem kubeconfig and token, mounted in the hub pod
# Rules limited to one named object, per cluster and binding: the on-prem identity may request tokens
# for itself (the renewal), and the refresher may rewrite the one Secret that holds the token.
NamedNeed = tuple[str, str, str, str]  # (apiGroup, resource, verb, name)
NAMED_NEEDS: dict[str, dict[str, tuple[dict[str, str], set[NamedNeed]]]] = {
    "onprem": {
        "hybridhub-token-renewal": (
            IDENTITY["onprem"],
            {("", "serviceaccounts/token", "create", IDENTITY["onprem"]["name"])},
        ),
    },
    "eks": {
        "hybridhub-onprem-token-refresh": (
            REFRESHER,
            {("", "secrets", "get", ONPREM_SECRET), ("", "secrets", "patch", ONPREM_SECRET)},
        ),
    },
}
CLUSTER_SCOPED = {"Namespace", "ClusterRole", "ClusterRoleBinding"}


# ---------------------------------------------------------------------------------------------- loading


def folder_docs(folder: Path) -> list[dict[str, Any]]:
    docs = []
    for path in sorted(folder.glob("*.yaml")):
        if path.name == "kustomization.yaml":
            continue
        docs.extend(d for d in yaml.safe_load_all(path.read_text()) if d is not None)
    return docs


@pytest.fixture(params=CLUSTERS)
def cluster(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def docs(cluster: str) -> list[dict[str, Any]]:
    return folder_docs(MANIFESTS / cluster)


def one(docs: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]


def notebook_namespace(docs: list[dict[str, Any]]) -> str:
    (namespace,) = one(docs, "Namespace")
    return str(namespace["metadata"]["name"])


# ---------------------------------------------------------------------------------------------- RBAC


class Grants:
    """What one subject may do, as the bindings in a set of manifests give it (all of them, or the one
    named ``name``: each component of the code has its own, though both run as one identity)."""

    def __init__(self, docs: list[dict[str, Any]], subject: dict[str, str], name: str | None = None) -> None:
        self.cluster: set[Need] = set()
        self.urls: set[tuple[str, str]] = set()
        self.namespaced: dict[str, set[Need]] = {}
        self.named: dict[str, set[NamedNeed]] = {}  # rules limited to resourceNames, by namespace
        self.cluster_named: set[NamedNeed] = set()  # rules limited to resourceNames, in every namespace
        roles = {(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d for d in docs}
        for binding in docs:
            if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
                continue
            if not any(self._is(s, subject) for s in binding.get("subjects") or []):
                continue
            if name is not None and binding["metadata"]["name"] != name:
                continue
            ref = binding["roleRef"]
            assert ref["apiGroup"] == RBAC
            namespace = binding["metadata"].get("namespace") if ref["kind"] == "Role" else None
            role = roles.get((ref["kind"], namespace, ref["name"]))
            assert role is not None, f"{binding['kind']} {binding['metadata']['name']} binds a missing role"
            for rule in role.get("rules") or []:
                if "nonResourceURLs" in rule:
                    assert binding["kind"] == "ClusterRoleBinding", (
                        "non-resource URLs need a ClusterRoleBinding"
                    )
                    self.urls |= {(u, v) for u in rule["nonResourceURLs"] for v in rule["verbs"]}
                    continue
                needs = {
                    (g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]
                }
                if rule.get("resourceNames"):
                    named = {(*need, n) for need in needs for n in rule["resourceNames"]}
                    if binding["kind"] == "ClusterRoleBinding":
                        self.cluster_named |= named
                    else:
                        self.named.setdefault(binding["metadata"]["namespace"], set()).update(named)
                elif binding["kind"] == "ClusterRoleBinding":
                    self.cluster |= needs
                else:
                    self.namespaced.setdefault(binding["metadata"]["namespace"], set()).update(needs)

    @staticmethod
    def _is(candidate: dict[str, str], subject: dict[str, str]) -> bool:
        return all(candidate.get(k) == v for k, v in subject.items())

    def in_namespace(self, namespace: str) -> set[Need]:
        return self.namespaced.get(namespace, set()) | self.cluster

    def everything(self) -> set[Need]:
        return set().union(self.cluster, *self.namespaced.values())


def missing(docs: list[dict[str, Any]], cluster: str) -> set[Any]:
    """What the code needs that the manifests do not give (empty: all is there), per component."""
    namespace = notebook_namespace(docs)
    spawner = Grants(docs, IDENTITY[cluster], "hybridhub-spawner")
    service = Grants(docs, IDENTITY[cluster], "hybridhub-service")
    named = set()
    for binding, (subject, needs) in NAMED_NEEDS[cluster].items():
        held = Grants(docs, subject, binding).named.get(namespace, set())
        named |= {(binding, *n) for n in needs - held}
    return (
        {("spawner", *n) for n in set(SPAWNER_NEEDS) - spawner.in_namespace(namespace)}
        | {("service", *n) for n in set(SERVICE_NAMESPACE_NEEDS) - service.in_namespace(namespace)}
        | {("service", *n) for n in set(SERVICE_CLUSTER_NEEDS) - service.cluster}
        | {("service", *n) for n in set(SERVICE_URL_NEEDS) - service.urls}
        | {("service", *n) for n in set(SERVICE_NAMED_CLUSTER_NEEDS) - service.cluster_named}
        | named
    )


def test_rbac_gives_what_the_code_needs(docs: list[dict[str, Any]], cluster: str) -> None:
    assert not missing(docs, cluster)


def test_rbac_gives_nothing_more(docs: list[dict[str, Any]], cluster: str) -> None:
    namespace = notebook_namespace(docs)
    grants = Grants(docs, IDENTITY[cluster])
    assert grants.cluster <= set(SERVICE_CLUSTER_NEEDS), "cluster-wide grants beyond the service's"
    extra = (
        grants.everything() - set(SPAWNER_NEEDS) - set(SERVICE_CLUSTER_NEEDS) - set(SERVICE_NAMESPACE_NEEDS)
    )
    assert not extra
    assert set(grants.namespaced) == {notebook_namespace(docs)}
    assert grants.urls == set(SERVICE_URL_NEEDS)
    spawner = Grants(docs, IDENTITY[cluster], "hybridhub-spawner")
    assert spawner.everything() == set(SPAWNER_NEEDS) and not spawner.cluster and not spawner.urls
    service = Grants(docs, IDENTITY[cluster], "hybridhub-service")
    assert service.cluster == set(SERVICE_CLUSTER_NEEDS)
    assert service.namespaced == {notebook_namespace(docs): set(SERVICE_NAMESPACE_NEEDS)}
    assert grants.cluster_named == service.cluster_named == set(SERVICE_NAMED_CLUSTER_NEEDS)
    bindings = {b["metadata"]["name"] for b in one(docs, "RoleBinding") + one(docs, "ClusterRoleBinding")}
    assert bindings == {"hybridhub-spawner", "hybridhub-service", *NAMED_NEEDS[cluster]}
    # the rules limited to one object give exactly what they are for, to whom they are for
    expected_named = {
        n for subject, needs in NAMED_NEEDS[cluster].values() if subject == IDENTITY[cluster] for n in needs
    }
    assert grants.named == ({namespace: expected_named} if expected_named else {})
    for binding, (subject, needs) in NAMED_NEEDS[cluster].items():
        other = Grants(docs, subject)
        assert other.named == {namespace: needs}, binding
        if subject != IDENTITY[cluster]:
            assert not other.everything() and not other.urls, f"{binding}: only its named rules"
            assert not other.cluster_named, f"{binding}: only its named rules"
    for role in one(docs, "Role") + one(docs, "ClusterRole"):
        for rule in role["rules"]:
            assert "*" not in str(rule), f"{role['kind']} {role['metadata']['name']}: no wildcards"


def test_each_rule_is_needed_and_its_loss_is_caught(docs: list[dict[str, Any]], cluster: str) -> None:
    """Take away any one rule (or one verb of it) and `missing` reports it."""
    for index, doc in enumerate(docs):
        if doc["kind"] not in ("Role", "ClusterRole") or doc["metadata"]["name"] == RUNNER_ROLE:
            continue
        for r, rule in enumerate(doc["rules"]):
            for verb in rule["verbs"]:
                broken = [dict(d) for d in docs]
                rules = [dict(x) for x in doc["rules"]]
                rules[r] = {**rule, "verbs": [v for v in rule["verbs"] if v != verb]}
                broken[index] = {**doc, "rules": rules}
                assert missing(broken, cluster), f"{doc['metadata']['name']} {rule} {verb} is not needed"


def test_the_runner_role_grants_what_argos_executor_needs_and_the_service_binds_it(
    docs: list[dict[str, Any]],
) -> None:
    (role,) = [d for d in docs if d["kind"] == "ClusterRole" and d["metadata"]["name"] == RUNNER_ROLE]
    granted = {
        (g, r, v)
        for rule in role["rules"]
        for g in rule["apiGroups"]
        for r in rule["resources"]
        for v in rule["verbs"]
    }
    assert granted == set(RUNNER_NEEDS)
    assert RunNamespaceSettings().runner_cluster_role == RUNNER_ROLE
    # nothing in the manifests binds it: only the service does, per run namespace
    bound = [
        b
        for b in one(docs, "RoleBinding") + one(docs, "ClusterRoleBinding")
        if b["roleRef"]["name"] == RUNNER_ROLE
    ]
    assert bound == []


def test_the_identity_is_the_hubs(docs: list[dict[str, Any]], cluster: str) -> None:
    """Every binding names the hub's identity (the token refresher's its own), and never the notebook
    pods' ServiceAccount."""
    for binding in one(docs, "RoleBinding") + one(docs, "ClusterRoleBinding"):
        name = binding["metadata"]["name"]
        subject = NAMED_NEEDS[cluster][name][0] if name in NAMED_NEEDS[cluster] else IDENTITY[cluster]
        assert binding["subjects"] == [subject], name
    text = "\n".join(p.read_text() for p in (MANIFESTS / cluster).glob("*.yaml"))
    assert "system:serviceaccounts" not in text and "system:authenticated" not in text


CORE_METHODS = {m for m in dir(CoreV1Api) if not m.startswith("_") and not m.endswith("_with_http_info")}
VERBS = {
    "create": "create",
    "read": "get",
    "delete": "delete",
    "list": "list",
    "patch": "patch",
    "replace": "update",
}


def core_calls(paths: Iterable[Path]) -> dict[str, tuple[bool, Need]]:
    """CoreV1Api methods named in the sources -> (cluster-wide, need)."""
    calls: dict[str, tuple[bool, Need]] = {}
    for path in paths:
        if not path.exists():
            continue
        for name in set(re.findall(r"\b[a-z][a-z0-9_]*\b", path.read_text())) & CORE_METHODS:
            if name in NOT_MADE:
                continue
            match = re.fullmatch(
                r"(create|read|delete|list|patch|replace)_(namespaced_)?([a-z_]+?)(_for_all_namespaces)?",
                name,
            )
            assert match, f"{path.name} calls CoreV1Api.{name}: add it to the tables in this file"
            verb, namespaced, kind, everywhere = match.groups()
            resource = kind.replace("_", "") + ("" if kind.endswith("s") else "s")
            calls[name] = (bool(everywhere) or not namespaced, ("", resource, VERBS[verb]))
    return calls


def test_the_tables_cover_the_code() -> None:
    spawner = core_calls(SPAWNER_SOURCES)
    assert {"create_namespaced_pod", "delete_namespaced_pod"} <= set(spawner)  # the scan works
    for name, (everywhere, need) in spawner.items():
        assert not everywhere, f"the spawner calls {name} across the cluster"
        assert need in SPAWNER_NEEDS, f"HybridSpawner/KubeSpawner call {name}: add {need} to SPAWNER_NEEDS"
    service = core_calls(SERVICE_SOURCES)
    assert {"list_node", "list_pod_for_all_namespaces"} <= set(service)
    for name, (everywhere, need) in service.items():
        table = SERVICE_CLUSTER_NEEDS if everywhere else SERVICE_NAMESPACE_NEEDS | SERVICE_CLUSTER_NEEDS
        assert need in table, f"the service calls {name}: add {need} to the service's tables"
    assert '"/readyz"' in (ROOT / "spawner" / "service" / "fleet.py").read_text()


def _group(api_version: str) -> str:
    return api_version.rpartition("/")[0]


def _plural(kind: str) -> str:
    return kind.lower()[:-1] + "ies" if kind.endswith("y") else kind.lower() + "s"


def test_the_runs_tables_cover_the_code() -> None:
    """Every run kind the service serves, every object of a run namespace, and every rule of a Role
    there (Kubernetes lets one write a Role only with its rules) are in the service's tables."""
    for kind, (prefix, plural) in COLLECTIONS.items():
        group = prefix.split("/")[2] if prefix.startswith("/apis/") else ""
        verbs = {"list", "delete"} | ({"patch"} if kind != "Experiment" else set())  # held back by suspend
        for verb in verbs:
            assert (group, plural, verb) in SERVICE_RUNS_NEEDS, f"{kind}: add {verb} to SERVICE_RUNS_NEEDS"
    namespace = build(RunNamespaceSettings(), "alice")
    kinds = set()
    for obj in namespace.objects:
        kinds.add(obj["kind"])
        for verb in _RUN_NAMESPACE_VERBS:
            need = (_group(obj["apiVersion"]), _plural(obj["kind"]), verb)
            assert need in SERVICE_RUNS_NEEDS, f"a run namespace's {obj['kind']}: add {need}"
        for rule in obj.get("rules") or []:
            needs = {(g, r, v) for g in rule["apiGroups"] for r in rule["resources"] for v in rule["verbs"]}
            assert needs <= set(SERVICE_CLUSTER_NEEDS), f"Role {obj['metadata']['name']}: {needs}"
        ref = obj.get("roleRef") or {}
        if ref.get("kind") == "ClusterRole":
            assert (RBAC, "clusterroles", "bind", ref["name"]) in SERVICE_NAMED_CLUSTER_NEEDS
    assert {"Namespace", "RoleBinding", "NetworkPolicy"} <= kinds  # the build is read


# ---------------------------------------------------------------------------------------------- the objects


def test_every_document_is_a_kubernetes_object(docs: list[dict[str, Any]], cluster: str) -> None:
    assert docs
    namespace = notebook_namespace(docs)
    seen = set()
    for doc in docs:
        assert doc.get("apiVersion") and doc.get("kind") and doc.get("metadata", {}).get("name"), doc
        if doc["kind"] in CLUSTER_SCOPED:
            assert "namespace" not in doc["metadata"]
        else:
            assert doc["metadata"].get("namespace") == namespace, doc["metadata"]["name"]
        key = (doc["apiVersion"], doc["kind"], doc["metadata"].get("namespace"), doc["metadata"]["name"])
        assert key not in seen
        seen.add(key)


def test_kustomization_lists_every_file(cluster: str) -> None:
    folder = MANIFESTS / cluster
    kustomization = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    files = {p.name for p in folder.glob("*.yaml")} - {"kustomization.yaml"}
    assert sorted(kustomization["resources"]) == sorted(files)
    assert not [p for p in folder.iterdir() if p.suffix == ".yml"]


def kustomize(cluster: str, home: Path) -> list[dict[str, Any]]:
    """What `kubectl kustomize` renders for ``cluster``'s folder (offline: ``home`` stands in for HOME, and
    no kubeconfig is read; `kubectl apply --dry-run=client` would need an API server)."""
    env = {**os.environ, "HOME": str(home), "KUBECONFIG": str(home / "none")}
    result = subprocess.run(
        ["kubectl", "kustomize", str(MANIFESTS / cluster)],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return [d for d in yaml.safe_load_all(result.stdout) if d is not None]


@pytest.mark.kubectl  # needs the kubectl binary: skipped here, failed under CI=true (tests/environment.py)
def test_kustomize_renders_the_same_objects(cluster: str, tmp_path: Path) -> None:
    def key(d: dict[str, Any]) -> tuple[str, str]:
        return d["kind"], d["metadata"]["name"]

    rendered = kustomize(cluster, tmp_path)
    assert sorted(rendered, key=key) == sorted(folder_docs(MANIFESTS / cluster), key=key)


# ---------------------------------------------------------------------------------------------- the schema

# The check reads each document into the `kubernetes` client's model of its kind and writes it out
# again. The models keep only the fields the API defines, with the types it defines, so a misspelled
# or misplaced field comes back missing and a wrong type comes back changed or fails to read. Three
# things it does not cover: enum values (a Role's verb, a policy's `protocol`, `concurrencyPolicy` are
# plain strings to the models), the insides of int-or-string and free-form fields (a NetworkPolicy
# port, a ResourceQuota's `hard`), and custom resources, which have no model here and are reported as
# such rather than passed.


class _Answer:
    """The one thing ApiClient.deserialize reads of an HTTP answer: its body, as JSON text."""

    def __init__(self, doc: dict[str, Any]) -> None:
        self.data = json.dumps(doc)


def model_name(doc: dict[str, Any]) -> str:
    """The client's model class for a document: ``rbac.authorization.k8s.io/v1`` ``Role`` is V1Role."""
    version = str(doc["apiVersion"]).rsplit("/", 1)[-1]
    return version[:1].upper() + version[1:] + str(doc["kind"])


def differences(given: Any, kept: Any, path: str = "") -> list[str]:
    """Where ``kept`` (the document as the model wrote it out) differs from ``given``, by field path."""
    if isinstance(given, dict) and isinstance(kept, dict):
        found = []
        for field, value in given.items():
            at = f"{path}.{field}" if path else str(field)
            if field not in kept:
                found.append(f"{at}: not a field here (misspelled, misplaced or null)")
            else:
                found.extend(differences(value, kept[field], at))
        return found + [f"{path or '.'}: {field} added by the model" for field in kept.keys() - given.keys()]
    if isinstance(given, list) and isinstance(kept, list) and len(given) == len(kept):
        return [
            p
            for i, (g, k) in enumerate(zip(given, kept, strict=True))
            for p in differences(g, k, f"{path}[{i}]")
        ]
    return [] if given == kept else [f"{path}: {given!r} reads back as {kept!r}"]


def schema_problems(doc: dict[str, Any]) -> list[str]:
    """What of ``doc`` the Kubernetes schema does not have (empty: it fits)."""
    where = f"{doc.get('kind')} {doc.get('metadata', {}).get('name')}"
    name = model_name(doc)
    if not hasattr(kubernetes.client, name):
        return [f"{where}: the kubernetes client has no model {name} (a custom resource is not checked)"]
    api = kubernetes.client.ApiClient()
    try:
        model = api.deserialize(_Answer(doc), name)
    except (ValueError, TypeError) as exc:  # a required field missing, a value of the wrong type
        return [f"{where}: {exc}"]
    return [f"{where}: {p}" for p in differences(doc, api.sanitize_for_serialization(model))]


@pytest.mark.kubectl  # needs the kubectl binary: skipped here, failed under CI=true (tests/environment.py)
def test_kustomize_output_fits_the_kubernetes_schema(cluster: str, tmp_path: Path) -> None:
    rendered = kustomize(cluster, tmp_path)
    assert rendered
    assert [p for doc in rendered for p in schema_problems(doc)] == []


def _rename(path: list[str], new: str) -> Callable[[dict[str, Any]], None]:
    """A mutation: the field at ``path`` (keys; a number is a list index) renamed ``new``."""

    def mutate(doc: dict[str, Any]) -> None:
        node: Any = doc
        for step in path[:-1]:
            node = node[int(step)] if isinstance(node, list) else node[step]
        node[new] = node.pop(path[-1])

    return mutate


def _set(path: list[str], value: Any) -> Callable[[dict[str, Any]], None]:
    """A mutation: the field at ``path`` set to ``value``, whether it was there or not."""

    def mutate(doc: dict[str, Any]) -> None:
        node: Any = doc
        for step in path[:-1]:
            node = node[int(step)] if isinstance(node, list) else node[step]
        node[path[-1]] = value

    return mutate


JOB_POD = ["spec", "jobTemplate", "spec", "template", "spec"]
SPAWNER = "hybridhub-spawner"
# cluster, kind, name (None: the first of its kind), the mutation, what the problem must name
BROKEN = [
    pytest.param(
        "eks",
        "NetworkPolicy",
        None,
        _rename(["spec", "podSelector", "matchLabels"], "matchLabel"),
        "podSelector.matchLabel",
        id="matchLabel",
    ),
    pytest.param(
        "onprem",
        "NetworkPolicy",
        None,
        _rename(["spec", "policyTypes"], "policyType"),
        "spec.policyType",
        id="policyType",
    ),
    pytest.param("onprem", "ResourceQuota", None, _rename(["spec", "hard"], "hrad"), "spec.hrad", id="hrad"),
    pytest.param(
        "eks",
        "Role",
        SPAWNER,
        _rename(["rules", "0", "apiGroups"], "apiGroup"),
        "rules[0].apiGroup",
        id="apiGroup",
    ),
    pytest.param(  # a required field missing: the model refuses to be made
        "onprem",
        "RoleBinding",
        SPAWNER,
        _rename(["roleRef"], "roleref"),
        "role_ref",
        id="roleref",
    ),
    pytest.param(  # labels beside metadata instead of in it
        "eks",
        "Namespace",
        None,
        _set(["labels"], {"team": "ml"}),
        "jupyterhub: labels",
        id="misplaced",
    ),
    pytest.param(
        "eks",
        "CronJob",
        None,
        _rename([*JOB_POD, "serviceAccountName"], "serviceAcountName"),
        "template.spec.serviceAcountName",
        id="deep",
    ),
    pytest.param(  # a string where a number goes
        "eks",
        "CronJob",
        None,
        _set(["spec", "startingDeadlineSeconds"], "ten minutes"),
        "ten minutes",
        id="not-a-number",
    ),
    pytest.param(  # a string where a boolean goes: read as True
        "eks",
        "CronJob",
        None,
        _set(["spec", "suspend"], "no"),
        "spec.suspend: 'no'",
        id="not-a-bool",
    ),
]


@pytest.mark.parametrize(("cluster_name", "kind", "name", "mutate", "named"), BROKEN)
def test_the_schema_check_catches_a_broken_manifest(
    cluster_name: str,
    kind: str,
    name: str | None,
    mutate: Callable[[dict[str, Any]], None],
    named: str,
) -> None:
    candidates = [
        d
        for d in folder_docs(MANIFESTS / cluster_name)
        if d["kind"] == kind and name in (None, d["metadata"]["name"])
    ]
    doc = candidates[0]
    assert schema_problems(doc) == []  # as shipped it fits: the mutation is what is caught
    broken = copy.deepcopy(doc)
    mutate(broken)
    problems = schema_problems(broken)
    assert problems and named in " ".join(problems), problems


def test_a_kind_without_a_model_is_reported() -> None:
    """A custom resource is not passed silently: the check says it cannot check it."""
    workflow = {"apiVersion": "argoproj.io/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"}}
    (problem,) = schema_problems(workflow)
    assert "no model V1alpha1Workflow" in problem


def test_namespace_pod_security(docs: list[dict[str, Any]]) -> None:
    (namespace,) = one(docs, "Namespace")
    labels = namespace["metadata"]["labels"]
    assert labels["pod-security.kubernetes.io/enforce"] == "baseline"
    assert labels["pod-security.kubernetes.io/warn"] == "restricted"


def test_the_namespaces_are_the_configured_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each folder's namespace is the one 10-clusters.py makes of the chart's environment (values.yaml,
    the chart installed in ``jupyterhub`` as its header says): EKS the hub's own, on-prem values.yaml's;
    and each identity lives there (the hub's ServiceAccount, and on-prem its own)."""
    values = yaml.safe_load((HUB_CONFIG / "values.yaml").read_text())
    assert "--namespace jupyterhub" in (HUB_CONFIG / "values.yaml").read_text()
    use_environment(monkeypatch, {**chart_environment(values), "POD_NAMESPACE": "jupyterhub"})
    config = Config()
    path = HUB_CONFIG / "jupyterhub_config.d" / "10-clusters.py"
    exec(compile(path.read_text(), str(path), "exec"), {"c": config, "__file__": str(path)})
    clusters = {c["name"]: c for c in config.ClusterSet.clusters}
    for cluster in CLUSTERS:
        docs = folder_docs(MANIFESTS / cluster)
        assert notebook_namespace(docs) == clusters[cluster]["namespace"] == IDENTITY[cluster]["namespace"]
    (account,) = one(folder_docs(MANIFESTS / "onprem"), "ServiceAccount")
    assert account["metadata"]["name"] == IDENTITY["onprem"]["name"]


def test_notebook_pods_fit_the_namespace() -> None:
    """No service-account token in notebook pods, and no privileged init container (baseline refuses it)."""
    config = Config()
    path = HUB_CONFIG / "jupyterhub_config.d" / "20-spawner.py"
    exec(compile(path.read_text(), str(path), "exec"), {"c": config, "__file__": str(path)})
    assert config.HybridSpawner.automount_service_account_token is False
    values = yaml.safe_load((HUB_CONFIG / "values.yaml").read_text())
    assert values["singleuser"]["cloudMetadata"]["blockWithIptables"] is False


def test_gpu_quota(docs: list[dict[str, Any]]) -> None:
    (quota,) = one(docs, "ResourceQuota")
    hard = quota["spec"]["hard"]
    assert int(hard["requests.nvidia.com/gpu"]) > 0
    assert "limits.nvidia.com/gpu" not in hard  # extended resources take only the requests. form


def test_only_the_hub_and_proxy_reach_the_notebook_port(docs: list[dict[str, Any]], cluster: str) -> None:
    policies = {p["metadata"]["name"]: p["spec"] for p in one(docs, "NetworkPolicy")}
    ingress = policies["hybridhub-notebook-ingress"]
    assert ingress["podSelector"] == {"matchLabels": {"component": "singleuser-server"}}
    assert ingress["policyTypes"] == ["Ingress"]
    rule, ssh = ingress["ingress"]
    assert rule["ports"] == [{"protocol": "TCP", "port": "notebook-port"}]  # KubeSpawner's port name
    (peer,) = rule["from"]
    if cluster == "eks":  # the hub and the proxy run here: their pods' labels
        selector = peer["podSelector"]
        assert selector["matchLabels"] == {"app": "jupyterhub"}
        assert selector["matchExpressions"] == [
            {"key": "component", "operator": "In", "values": ["hub", "proxy"]}
        ]
    else:  # the hub and the proxy are in the other cluster: an address range
        assert set(peer) == {"ipBlock"}
    # the SSH server's port (HybridSpawner.ssh_port), to the SSH gateway alone
    assert ssh["ports"] == [{"protocol": "TCP", "port": HybridSpawner(config=Config(), _mock=True).ssh_port}]
    (peer,) = ssh["from"]
    if cluster == "eks":  # the gateway runs here: its pods' labels
        assert peer == {"podSelector": {"matchLabels": gateway_selector()}}
    else:  # the gateway is in EKS: its pods' range over the site link
        assert set(peer) == {"ipBlock"} and "except" not in peer["ipBlock"]
    # every other policy that selects notebook pods leaves ingress alone (they add up: one more could
    # admit anyone)
    for name, spec in policies.items():
        if name != "hybridhub-notebook-ingress" and selects_notebooks(spec):
            assert "Ingress" not in spec["policyTypes"], name


def test_notebooks_cannot_reach_instance_metadata() -> None:
    """On-prem no chart policy selects notebook pods: hybridhub-notebook-egress keeps them from the
    metadata address. In EKS the chart's singleuser policy does, and a policy of ours would widen it."""
    docs = folder_docs(MANIFESTS / "onprem")
    (egress,) = [p["spec"] for p in one(docs, "NetworkPolicy") if "Egress" in p["spec"]["policyTypes"]]
    assert egress["podSelector"] == {"matchLabels": {"component": "singleuser-server"}}
    blocks = [peer["ipBlock"] for rule in egress["egress"] for peer in rule["to"]]
    assert blocks and all("169.254.169.254/32" in b.get("except", []) for b in blocks)
    assert not [
        p
        for p in one(folder_docs(MANIFESTS / "eks"), "NetworkPolicy")
        if "Egress" in p["spec"]["policyTypes"] and selects_notebooks(p["spec"])
    ]
    values = yaml.safe_load((HUB_CONFIG / "values.yaml").read_text())
    rules = values["singleuser"]["networkPolicy"].get("egressAllowRules", {})
    assert rules.get("cloudMetadataServer", False) is False  # the chart's default: blocked


# ------------------------------------------------------------------------------------------ the SSH gateway

GATEWAY_FILE = MANIFESTS / "eks" / "ssh-gateway.yaml"


def gateway(kind: str) -> dict[str, Any]:
    (doc,) = [d for d in yaml.safe_load_all(GATEWAY_FILE.read_text()) if d and d["kind"] == kind]
    return dict(doc)


def gateway_labels() -> dict[str, str]:
    """The labels of the gateway's pods, which the other NetworkPolicies and values.yaml admit."""
    return dict(gateway("Deployment")["spec"]["template"]["metadata"]["labels"])


def gateway_selector() -> dict[str, str]:
    """The labels that pick the gateway's pods: its Deployment's selector."""
    return dict(gateway("Deployment")["spec"]["selector"]["matchLabels"])


def gateway_pod() -> dict[str, Any]:
    return dict(gateway("Deployment")["spec"]["template"]["spec"])


def selects_notebooks(spec: dict[str, Any]) -> bool:
    """Whether a policy's pod selector takes in notebook pods (KubeSpawner's `component` label)."""
    return spec["podSelector"].get("matchLabels", {}).get("component", "singleuser-server") == (
        "singleuser-server"
    )


def chart_values() -> dict[str, Any]:
    return dict(yaml.safe_load((HUB_CONFIG / "values.yaml").read_text()))


def test_the_gateway_runs_the_hub_image_locked_down() -> None:
    """Non-root, no privilege escalation, no capabilities, a read-only root filesystem, bounded
    resources, no service-account token; the hub image of values.yaml; probes on its SSH port."""
    deployment = gateway("Deployment")
    assert deployment["spec"]["selector"]["matchLabels"].items() <= gateway_labels().items()
    assert gateway("PodDisruptionBudget")["spec"]["minAvailable"] < deployment["spec"]["replicas"]
    pod = gateway_pod()
    assert pod["automountServiceAccountToken"] is False
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    image = chart_values()["hub"]["image"]
    for container in pod["initContainers"] + pod["containers"]:
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False, container["name"]
        assert context["readOnlyRootFilesystem"] is True, container["name"]
        assert context["capabilities"] == {"drop": ["ALL"]}, container["name"]
        resources = container["resources"]
        assert {"cpu", "memory"} <= set(resources["requests"]) and "memory" in resources["limits"]
        assert container["image"] == f"{image['name']}:{image['tag']}"
    (container,) = pod["containers"]
    (port,) = container["ports"]
    assert (port["name"], port["containerPort"]) == ("ssh", 2222)
    for probe in ("readinessProbe", "livenessProbe"):
        assert container[probe]["tcpSocket"] == {"port": "ssh"}, probe


def gateway_environment(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment, a stand-in for each Secret key."""
    env = {}
    for entry in container["env"]:
        if "value" in entry:
            env[entry["name"]] = entry["value"]
        else:
            ref = entry["valueFrom"]["secretKeyRef"]
            env[entry["name"]] = f"secret-{ref['name']}-{ref['key']}"
    return env


def test_the_gateway_is_configured_as_the_hub_expects(monkeypatch: pytest.MonkeyPatch) -> None:
    """`hybridhub ssh-gateway` with the manifest's arguments and environment: complete, on the port the
    Service and the policies name, reaching the hub and the service through the hub's Service on the
    ports values.yaml opens, with the token of the Secret key the hub registers it with, and its host
    key where the init container copies it."""
    pod = gateway_pod()
    (container,) = pod["containers"]
    assert container["command"] == ["hybridhub", "ssh-gateway"] and "ssh-gateway" in SUBCOMMANDS
    env = gateway_environment(container)
    for name in list(os.environ):
        if name.startswith(("JUPYTERHUB_", "HYBRIDHUB_")):
            monkeypatch.delenv(name)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    app = GatewayApp()
    app.initialize(container["args"])
    assert app.missing() == []
    assert app.port == container["ports"][0]["containerPort"] == 2222
    assert app.pod_ssh_port == HybridSpawner(config=Config(), _mock=True).ssh_port
    assert app.start_servers is False  # the hub's role for it then lacks `servers` (30-service.py)
    values = chart_values()
    # the token: the Secret key whose value the hub registers as the ssh-gateway service's token
    hub_ref = values["hub"]["extraEnv"]["HYBRIDHUB_SSH_GATEWAY_TOKEN"]["valueFrom"]["secretKeyRef"]
    assert app.api_token == f"secret-{hub_ref['name']}-{hub_ref['key']}"
    api, service = urlsplit(app.api_url), urlsplit(app.service_url)
    assert (api.hostname, api.port, api.path) == ("hub", 8081, "/hub/api")
    (extra,) = [p for p in values["hub"]["service"]["extraPorts"] if p["name"] == "hybridhub"]
    assert (service.hostname, service.port) == ("hub", extra["port"])
    assert service.path == HybridHubService().service_prefix  # /services/hybridhub/
    assert app.hub_public_url == values["hub"]["extraEnv"]["HYBRIDHUB_ONPREM_HUB_URL"]
    # the host key: the Secret's file, copied by the init container into the memory volume it reads
    (init,) = pod["initContainers"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: volumes[m["name"]] for m in init["volumeMounts"]}
    source, target = init["args"]
    secret = mounts[str(Path(source).parent)]["secret"]
    assert secret["secretName"] == "hybridhub-ssh-gateway" and secret["defaultMode"] == 0o400
    assert [item["path"] for item in secret["items"]] == [Path(source).name]
    assert target == app.host_key_file
    (mount,) = [m for m in container["volumeMounts"] if m["mountPath"] == str(Path(target).parent)]
    assert volumes[mount["name"]]["emptyDir"]["medium"] == "Memory"
    assert mounts[mount["mountPath"]] is volumes[mount["name"]]


def test_the_init_container_makes_a_key_the_gateway_accepts(tmp_path: Path) -> None:
    """A Secret's file is root's, or with fsGroup group-readable (the kubelet adds the group's read to
    defaultMode 0400): the gateway refuses a key others may read. The init container's command copies
    it with mode 0600, which the gateway reads: the same key."""
    key = asyncssh.generate_private_key("ssh-ed25519")
    secret = tmp_path / "secret" / "host_key"
    secret.parent.mkdir()
    secret.write_bytes(key.export_private_key())
    secret.chmod(0o440)
    with pytest.raises(ValueError, match="may be read by others"):
        load_host_key(str(secret))
    (init,) = gateway_pod()["initContainers"]
    copied = tmp_path / "run" / "host_key"
    copied.parent.mkdir()
    source, target = init["args"]
    assert Path(source).name == secret.name and Path(target).name == copied.name
    subprocess.run([*init["command"], str(secret), str(copied)], check=True, timeout=30)
    assert copied.stat().st_mode & 0o777 == 0o600
    assert load_host_key(str(copied)).public_data == key.public_data


def test_the_gateway_service_is_one_load_balancer_on_port_22() -> None:
    service = gateway("Service")
    spec = service["spec"]
    assert spec["type"] == "LoadBalancer"
    assert spec["selector"].items() <= gateway_labels().items()
    (port,) = spec["ports"]
    (container,) = gateway_pod()["containers"]
    named = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert (port["port"], named[port["targetPort"]], port["protocol"]) == (22, 2222, "TCP")
    annotations = service["metadata"]["annotations"]
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-type"] == "external"  # an NLB
    assert annotations["service.beta.kubernetes.io/aws-load-balancer-nlb-target-type"] == "ip"


def test_the_gateway_reaches_the_hub_the_notebooks_and_dns_only() -> None:
    """Anyone may reach its SSH port; it may reach the hub's API and the service, the notebook pods' SSH
    port here and in the on-prem pod range (the one values.yaml gives the hub and the proxy), and DNS."""
    policy = gateway("NetworkPolicy")["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= gateway_labels().items()
    assert sorted(policy["policyTypes"]) == ["Egress", "Ingress"]
    assert policy["ingress"] == [{"ports": [{"protocol": "TCP", "port": 2222}]}]  # no `from`: anyone
    allowed = set()
    for rule in policy["egress"]:
        ports = {(p["protocol"], p["port"]) for p in rule["ports"]}
        for peer in rule["to"]:
            allowed.add((json.dumps(peer, sort_keys=True), frozenset(ports)))
    values = chart_values()
    (onprem_pods,) = [
        peer["ipBlock"]["cidr"]
        for rule in values["hub"]["networkPolicy"]["egress"]
        for peer in rule["to"]
        if {"protocol": "TCP", "port": 8888} in rule["ports"]
    ]
    tcp = "TCP"
    expected: list[tuple[dict[str, Any], set[tuple[str, int]]]] = [
        (
            {"podSelector": {"matchLabels": {"app": "jupyterhub", "component": "hub"}}},
            {(tcp, 8081), (tcp, 10101)},
        ),
        ({"podSelector": {"matchLabels": {"component": "singleuser-server"}}}, {(tcp, 2222)}),
        ({"ipBlock": {"cidr": onprem_pods}}, {(tcp, 2222)}),
        (
            {"namespaceSelector": {}, "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}}},
            {("UDP", 53), (tcp, 53)},
        ),
    ]
    assert allowed == {(json.dumps(peer, sort_keys=True), frozenset(ports)) for peer, ports in expected}
