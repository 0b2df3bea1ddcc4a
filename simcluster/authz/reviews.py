"""The reviews a user asks about itself: can-i (access and rules reviews) and whoami; none is stored."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import bad_request
from .attributes import Attributes, UserInfo
from .rbac import Authorizer

__all__ = ["self_subject_access_review", "self_subject_review", "self_subject_rules_review"]


def self_subject_access_review(authorizer: Authorizer, user: UserInfo, body: Any) -> dict[str, Any]:
    """The review ``body`` with its status filled in, as the apiserver returns it (nothing is stored)."""
    spec = body.get("spec") if isinstance(body, Mapping) else None
    if not isinstance(spec, Mapping):
        raise bad_request("spec is required")
    res, nonres = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if bool(res) == bool(nonres):
        raise bad_request(
            'SelfSubjectAccessReview.authorization.k8s.io "" is invalid: spec.resourceAttributes: '
            "Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified"
        )
    if isinstance(res, Mapping):
        attrs = Attributes(
            user=user,
            verb=str(res.get("verb", "")),
            resource_request=True,
            api_group=str(res.get("group", "")),
            api_version=str(res.get("version", "")),
            resource=str(res.get("resource", "")),
            subresource=str(res.get("subresource", "")),
            namespace=str(res.get("namespace", "")),
            name=str(res.get("name", "")),
        )
    elif isinstance(nonres, Mapping):
        attrs = Attributes(
            user=user,
            verb=str(nonres.get("verb", "")),
            resource_request=False,
            path=str(nonres.get("path", "")),
        )
    else:
        raise bad_request("spec.resourceAttributes and spec.nonResourceAttributes must be objects")
    out = dict(body)
    out["apiVersion"], out["kind"] = "authorization.k8s.io/v1", "SelfSubjectAccessReview"
    out.setdefault("metadata", {})["creationTimestamp"] = None
    out["status"] = {"allowed": authorizer.allowed(attrs)}
    return out


def self_subject_rules_review(authorizer: Authorizer, user: UserInfo, body: Any) -> dict[str, Any]:
    """The rules that apply to the asking user in ``spec.namespace`` (``kubectl auth can-i --list``)."""
    spec = body.get("spec") if isinstance(body, Mapping) else None
    namespace = str((spec or {}).get("namespace") or "")
    resource_rules: list[dict[str, Any]] = []
    url_rules: list[dict[str, Any]] = []
    for rule in authorizer.rules_for(user, namespace):
        if rule.get("nonResourceURLs"):
            url_rules.append(
                {"verbs": list(rule.get("verbs") or []), "nonResourceURLs": list(rule["nonResourceURLs"])}
            )
        if rule.get("resources"):
            out = {k: list(rule.get(k) or []) for k in ("verbs", "apiGroups", "resources", "resourceNames")}
            resource_rules.append({k: v for k, v in out.items() if v or k == "apiGroups"})
    return {
        "kind": "SelfSubjectRulesReview",
        "apiVersion": "authorization.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "spec": {"namespace": namespace} if namespace else {},
        "status": {"resourceRules": resource_rules, "nonResourceRules": url_rules, "incomplete": False},
    }


def self_subject_review(user: UserInfo) -> dict[str, Any]:
    """Who the asking user is (``kubectl auth whoami``), after impersonation."""
    info: dict[str, Any] = {"username": user.name, "groups": list(user.groups)}
    if user.uid:
        info["uid"] = user.uid
    if user.extra:
        info["extra"] = {key: list(values) for key, values in user.extra}
    return {
        "kind": "SelfSubjectReview",
        "apiVersion": "authentication.k8s.io/v1",
        "metadata": {"creationTimestamp": None},
        "status": {"userInfo": info},
    }
