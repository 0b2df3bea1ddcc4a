"""RBAC as the apiserver's authorizer applies it: bindings name subjects, roles hold rules, rules allow."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from ..errors import ApiError
from ..selectors import SelectorError, label_selector_from_dict
from ..store import Store
from .attributes import MASTERS, Attributes, UserInfo

__all__ = ["RBAC_GROUP", "Authorizer", "forbidden", "rule_allows"]

RBAC_GROUP = "rbac.authorization.k8s.io"
_V1 = (RBAC_GROUP, "v1")


def _matches(values: Iterable[str], wanted: str) -> bool:
    return any(v == "*" or v == wanted for v in values)


def _resource_matches(rule_resources: Iterable[str], resource: str, subresource: str) -> bool:
    """``pods/log`` matches "pods/log", "*" and "*/log"; "pods" alone never matches a subresource."""
    combined = f"{resource}/{subresource}" if subresource else resource
    for have in rule_resources:
        if have in ("*", combined):
            return True
        if subresource and have == f"*/{subresource}":
            return True
    return False


def _url_matches(rule_urls: Iterable[str], path: str) -> bool:
    for have in rule_urls:
        if have in ("*", path):
            return True
        if have.endswith("*") and path.startswith(have[:-1]):
            return True
    return False


def rule_allows(rule: Mapping[str, Any], attrs: Attributes) -> bool:
    """Whether one PolicyRule allows the request (RuleAllows in the apiserver's rbac package)."""
    if not _matches(rule.get("verbs") or (), attrs.verb):
        return False
    if not attrs.resource_request:
        return _url_matches(rule.get("nonResourceURLs") or (), attrs.path)
    if not _matches(rule.get("apiGroups") or (), attrs.api_group):
        return False
    if not _resource_matches(rule.get("resources") or (), attrs.resource, attrs.subresource):
        return False
    names = rule.get("resourceNames") or ()
    return not names or attrs.name in names


def _applies(subject: Mapping[str, Any], user: UserInfo, binding_namespace: str) -> bool:
    kind, name = subject.get("kind"), subject.get("name")
    if kind == "User":
        return bool(user.name == name)
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.name == f"system:serviceaccount:{namespace}:{name}"
    return False


class Authorizer:
    """Decides from the Roles, ClusterRoles and bindings in the store, as they are at the moment asked."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def _type(self, plural: str) -> Any:
        return self.store.registry.get(*_V1, plural)

    def _objects(self, plural: str, namespace: str | None) -> list[dict[str, Any]]:
        rt = self._type(plural)
        return [] if rt is None else self.store.list(rt, namespace)

    def _cluster_role_rules(self, name: str) -> list[Mapping[str, Any]]:
        rt = self._type("clusterroles")
        role = None if rt is None else self.store.find(rt, None, name)
        if role is None:
            return []
        aggregation = role.get("aggregationRule")
        if not aggregation:
            return list(role.get("rules") or [])
        # aggregated roles hold the rules of every ClusterRole their selectors pick, now
        rules: list[Mapping[str, Any]] = []
        for raw in aggregation.get("clusterRoleSelectors") or []:
            try:
                selector = label_selector_from_dict(raw)
            except SelectorError:
                continue
            for other in self._objects("clusterroles", None):
                picked = other["metadata"]["name"] != name and not other.get("aggregationRule")
                if picked and selector.matches(other["metadata"].get("labels") or {}):
                    rules.extend(other.get("rules") or [])
        return rules

    def _role_rules(self, ref: Mapping[str, Any], namespace: str) -> list[Mapping[str, Any]]:
        if ref.get("kind") == "ClusterRole":
            return self._cluster_role_rules(str(ref.get("name")))
        rt = self._type("roles")
        role = None if rt is None else self.store.find(rt, namespace, str(ref.get("name")))
        return list((role or {}).get("rules") or [])

    def rules_for(self, user: UserInfo, namespace: str) -> Iterator[Mapping[str, Any]]:
        """Every rule that applies to ``user`` in ``namespace`` ("" for cluster-scoped requests)."""
        for binding in self._objects("clusterrolebindings", None):
            if any(_applies(s, user, "") for s in binding.get("subjects") or []):
                yield from self._role_rules(binding.get("roleRef") or {}, "")
        if not namespace:
            return
        for binding in self._objects("rolebindings", namespace):
            if any(_applies(s, user, namespace) for s in binding.get("subjects") or []):
                yield from self._role_rules(binding.get("roleRef") or {}, namespace)

    def allowed(self, attrs: Attributes) -> bool:
        # kube-apiserver puts a privileged-group authorizer before RBAC: system:masters may do anything
        if MASTERS in attrs.user.groups:
            return True
        return any(rule_allows(rule, attrs) for rule in self.rules_for(attrs.user, attrs.namespace))

    def check(self, attrs: Attributes) -> None:
        """Raise the apiserver's 403 unless RBAC allows the request."""
        if not self.allowed(attrs):
            raise forbidden(attrs)


def forbidden(attrs: Attributes) -> ApiError:
    """The 403 Status the apiserver answers a refused request with (responsewriters.Forbidden)."""
    user = attrs.user.name
    if not attrs.resource_request:
        return ApiError(403, f'forbidden: User "{user}" cannot {attrs.verb} path "{attrs.path}"', details={})
    resource = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
    where = f'in the namespace "{attrs.namespace}"' if attrs.namespace else "at the cluster scope"
    why = f'User "{user}" cannot {attrs.verb} resource "{resource}" in API group "{attrs.api_group}" {where}'
    qualified = f"{attrs.resource}.{attrs.api_group}" if attrs.api_group else attrs.resource
    subject = f'{qualified} "{attrs.name}"' if attrs.name else qualified
    details: dict[str, Any] = {"kind": attrs.resource}
    if attrs.api_group:
        details["group"] = attrs.api_group
    if attrs.name:
        details["name"] = attrs.name
    return ApiError(403, f"{subject} is forbidden: {why}", details=details)
