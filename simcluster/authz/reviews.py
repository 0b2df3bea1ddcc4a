"""SelfSubjectAccessReview (``kubectl auth can-i``): the authorizer's answer for the asking user."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..errors import bad_request
from .attributes import Attributes, UserInfo
from .rbac import Authorizer

__all__ = ["self_subject_access_review"]


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
