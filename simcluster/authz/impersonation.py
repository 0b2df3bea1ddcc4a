"""Impersonation headers: who a request acts as, allowed only where RBAC grants the ``impersonate`` verb."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from ..errors import ApiError
from .attributes import AUTHENTICATED, Attributes, UserInfo
from .rbac import Authorizer, forbidden

__all__ = ["impersonate"]

USER = "Impersonate-User"
GROUP = "Impersonate-Group"
UID = "Impersonate-Uid"
EXTRA = "Impersonate-Extra-"
_SA_PREFIX = "system:serviceaccount:"


def _check(authorizer: Authorizer, requestor: UserInfo, resource: str, name: str, **more: str) -> None:
    attrs = Attributes(
        user=requestor,
        verb="impersonate",
        resource_request=True,
        api_group=more.pop("group", ""),
        resource=resource,
        name=name,
        namespace=more.pop("namespace", ""),
        subresource=more.pop("subresource", ""),
    )
    if not authorizer.allowed(attrs):
        raise forbidden(attrs)


def impersonate(
    authorizer: Authorizer,
    requestor: UserInfo,
    headers: Mapping[str, str],
    groups: Sequence[str],
    extras: Mapping[str, Sequence[str]],
) -> UserInfo:
    """The user a request acts as: ``requestor`` itself without impersonation headers, else the one named,
    after checking each impersonated attribute as the apiserver's impersonation filter does.

    ``groups`` are every Impersonate-Group value; ``extras`` the Impersonate-Extra-<key> values by key.
    """
    name = headers.get(USER, "")
    uid = headers.get(UID, "")
    if not name:
        if groups or extras or uid:
            raise ApiError(
                400, "requested impersonation of groups, extra or uid without impersonating a user"
            )
        return requestor
    if name.startswith(_SA_PREFIX) and name.count(":") == 3:
        namespace, sa = name[len(_SA_PREFIX) :].split(":")
        _check(authorizer, requestor, "serviceaccounts", sa, namespace=namespace)
        implied: tuple[str, ...] = ("system:serviceaccounts", f"system:serviceaccounts:{namespace}")
    else:
        _check(authorizer, requestor, "users", name)
        implied = ()
    for group in groups:
        _check(authorizer, requestor, "groups", group)
    for key, values in extras.items():
        for value in values:
            _check(authorizer, requestor, "userextras", value, group="authentication.k8s.io", subresource=key)
    if uid:
        _check(authorizer, requestor, "uids", uid, group="authentication.k8s.io")
    all_groups = [*implied, *groups]
    if name != "system:anonymous" and AUTHENTICATED not in all_groups:
        all_groups.append(AUTHENTICATED)
    return UserInfo(
        name=name,
        groups=tuple(dict.fromkeys(all_groups)),
        uid=uid,
        extra=tuple((k, tuple(v)) for k, v in sorted(extras.items())),
    )
