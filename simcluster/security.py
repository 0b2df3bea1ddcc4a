"""A cluster as a security boundary: built-in RBAC roles, the admission plugins, the quota controller."""

from __future__ import annotations

from .authz.bootstrap import seed
from .controller import Controller
from .podsecurity import PodSecurityAdmission
from .quota import LimitRanger, QuotaAdmission, QuotaStatus
from .store import Store

__all__ = ["install"]


def install(store: Store) -> list[Controller]:
    """Seed the built-in roles, add the admission plugins in the apiserver's order (LimitRanger mutates,
    then PodSecurity and ResourceQuota validate), and return the controllers to run."""
    seed(store)
    store.admission_plugins += [LimitRanger(store), PodSecurityAdmission(store), QuotaAdmission(store)]
    return [QuotaStatus(store)]
