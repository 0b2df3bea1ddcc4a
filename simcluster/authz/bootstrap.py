"""The ClusterRoles and bindings a new cluster starts with, as the apiserver's bootstrap policy makes them."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from ..errors import ApiError
from ..resources import ResourceType
from ..store import Store
from .rbac import RBAC_GROUP

__all__ = ["bootstrap_objects", "seed"]

READ = ("get", "list", "watch")
WRITE = ("create", "delete", "deletecollection", "patch", "update")
_AGGREGATE = "rbac.authorization.k8s.io/aggregate-to-"
_BOOTSTRAP = {"kubernetes.io/bootstrapping": "rbac-defaults"}
_AUTOUPDATE = {"rbac.authorization.kubernetes.io/autoupdate": "true"}
_DISCOVERY_URLS: tuple[str, ...] = ("/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi")
_DISCOVERY_URLS += ("/openapi/*", "/readyz", "/version", "/version/")
_EDITABLE: tuple[str, ...] = (
    "serviceaccounts",
    "services",
    "services/proxy",
    "persistentvolumeclaims",
    "configmaps",
)
_EDITABLE += ("secrets", "events")
# Groups Kubernetes serves itself: their resources are not custom ones an installer aggregates.
_KUBERNETES_GROUPS = {
    "",
    "apps",
    "batch",
    "policy",
    "authorization.k8s.io",
    "authentication.k8s.io",
    "networking.k8s.io",
    "storage.k8s.io",
    RBAC_GROUP,
}


def _rule(verbs: Sequence[str], groups: Sequence[str], resources: Sequence[str]) -> dict[str, Any]:
    return {"verbs": list(verbs), "apiGroups": list(groups), "resources": list(resources)}


def _urls(verbs: Sequence[str], urls: Sequence[str]) -> dict[str, Any]:
    return {"verbs": list(verbs), "nonResourceURLs": list(urls)}


def _role(name: str, rules: list[dict[str, Any]], labels: dict[str, str] | None = None) -> dict[str, Any]:
    meta = {"name": name, "labels": {**_BOOTSTRAP, **(labels or {})}, "annotations": dict(_AUTOUPDATE)}
    return {"metadata": meta, "rules": rules}


def _aggregated(name: str, to: str) -> dict[str, Any]:
    role = _role(name, [])
    role["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {f"{_AGGREGATE}{to}": "true"}}]}
    return role


def _labels(*targets: str) -> dict[str, str]:
    return {f"{_AGGREGATE}{t}": "true" for t in targets}


def _binding(name: str, role: str, groups: Iterable[str]) -> dict[str, Any]:
    return {
        "metadata": {"name": name, "labels": dict(_BOOTSTRAP), "annotations": dict(_AUTOUPDATE)},
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": g} for g in groups],
    }


def _custom_rules(custom: Iterable[ResourceType], verbs: Sequence[str]) -> list[dict[str, Any]]:
    by_group: dict[str, list[str]] = {}
    for rt in custom:
        by_group.setdefault(rt.group, []).append(rt.plural)
        if rt.status_subresource:
            by_group[rt.group].append(f"{rt.plural}/status")
    return [_rule(verbs, [group], plurals) for group, plurals in by_group.items()]


def bootstrap_objects(
    custom: Iterable[ResourceType] = (),
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """(ClusterRoles, ClusterRoleBindings) of Kubernetes 1.32's bootstrap policy, in the parts that matter
    here, plus roles that aggregate the cluster's custom resources into admin, edit and view."""
    custom = [rt for rt in custom if rt.group not in _KUBERNETES_GROUPS]
    core_read = ["pods", "pods/log", "pods/status", "services", "services/status", "endpoints"]
    core_read += ["persistentvolumeclaims", "persistentvolumeclaims/status", "configmaps", "serviceaccounts"]
    core_read += ["limitranges", "resourcequotas", "resourcequotas/status", "events", "namespaces/status"]
    roles = [
        _role("cluster-admin", [_rule(["*"], ["*"], ["*"]), _urls(["*"], ["*"])]),
        _aggregated("admin", "admin"),
        _aggregated("edit", "edit"),
        _aggregated("view", "view"),
        _role(
            "system:aggregate-to-admin",
            [
                _rule(["create"], ["authorization.k8s.io"], ["localsubjectaccessreviews"]),
                _rule(READ + WRITE, [RBAC_GROUP], ["roles", "rolebindings"]),
            ],
            _labels("admin"),
        ),
        _role(
            "system:aggregate-to-edit",
            [
                _rule(["impersonate"], [""], ["serviceaccounts"]),
                _rule(WRITE, [""], ["pods", "pods/attach", "pods/proxy", "pods/exec", "pods/portforward"]),
                _rule(["create"], [""], ["pods/eviction"]),
                _rule(
                    WRITE,
                    [""],
                    _EDITABLE,
                ),
                _rule(["create"], [""], ["serviceaccounts/token"]),
                _rule(WRITE, ["batch"], ["jobs", "cronjobs"]),
                _rule(READ, [""], ["pods/attach", "pods/proxy", "pods/exec", "pods/portforward", "secrets"]),
            ],
            _labels("admin", "edit"),
        ),
        _role(
            "system:aggregate-to-view",
            [
                _rule(READ, [""], core_read),
                _rule(READ, [""], ["namespaces"]),
                _rule(READ, ["batch"], ["jobs", "cronjobs", "jobs/status", "cronjobs/status"]),
            ],
            _labels("admin", "edit", "view"),
        ),
        _role(
            "system:discovery",
            [
                _urls(
                    ["get"],
                    _DISCOVERY_URLS,
                )
            ],
        ),
        _role("system:public-info-viewer", [_urls(["get"], ["/healthz", "/livez", "/readyz", "/version"])]),
        _role(
            "system:basic-user",
            [
                _rule(
                    ["create"],
                    ["authorization.k8s.io"],
                    ["selfsubjectaccessreviews", "selfsubjectrulesreviews"],
                ),
                _rule(["create"], ["authentication.k8s.io"], ["selfsubjectreviews"]),
            ],
        ),
    ]
    if custom:
        # stand-ins for what the CRDs' installers ship (Argo's argo-aggregate-to-*, for one)
        roles += [
            _role(
                "simcluster:aggregate-custom-to-edit",
                _custom_rules(custom, READ + WRITE),
                _labels("admin", "edit"),
            ),
            _role("simcluster:aggregate-custom-to-view", _custom_rules(custom, READ), _labels("view")),
        ]
    bindings = [
        _binding("cluster-admin", "cluster-admin", ["system:masters"]),
        _binding("system:discovery", "system:discovery", ["system:authenticated"]),
        _binding("system:basic-user", "system:basic-user", ["system:authenticated"]),
        _binding(
            "system:public-info-viewer",
            "system:public-info-viewer",
            ["system:authenticated", "system:unauthenticated"],
        ),
    ]
    return roles, bindings


def seed(store: Store) -> None:
    """Create the bootstrap ClusterRoles and ClusterRoleBindings in a new cluster's store."""
    roles_rt = store.registry.get(RBAC_GROUP, "v1", "clusterroles")
    bindings_rt = store.registry.get(RBAC_GROUP, "v1", "clusterrolebindings")
    if roles_rt is None or bindings_rt is None:
        return
    roles, bindings = bootstrap_objects(store.registry.types.values())
    for rt, objs in ((roles_rt, roles), (bindings_rt, bindings)):
        for obj in objs:
            try:
                store.create(rt, None, obj)
            except ApiError as err:
                if err.code != 409:
                    raise
