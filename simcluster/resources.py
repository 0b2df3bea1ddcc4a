"""The resource types a simcluster serves: core/v1 kinds and the custom resources of its cluster file."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "API_RESOURCES",
    "BATCH_RESOURCES",
    "CORE_RESOURCES",
    "DEFAULT_CUSTOM_RESOURCES",
    "Registry",
    "ResourceType",
    "custom_resource_from_dict",
]

_VERBS = ("create", "delete", "deletecollection", "get", "list", "patch", "update", "watch")


@dataclass(frozen=True)
class ResourceType:
    """One REST resource: where it lives, what it is called, and which subresources it has."""

    group: str  # "" for the core group
    version: str
    plural: str
    kind: str
    namespaced: bool
    singular: str = ""
    short_names: tuple[str, ...] = ()
    status_subresource: bool = False  # PUT/PATCH on the main resource ignore .status
    subresources: tuple[str, ...] = ()  # extra read-only subresources, e.g. "log"
    categories: tuple[str, ...] = ()
    verbs: tuple[str, ...] = _VERBS

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def key(self) -> tuple[str, str, str]:
        """(group, version, plural): how requests address the type."""
        return (self.group, self.version, self.plural)

    @property
    def builtin(self) -> bool:
        return self.group == ""

    @property
    def list_kind(self) -> str:
        return f"{self.kind}List"

    def discovery(self) -> list[dict[str, Any]]:
        """The APIResource entries of this type and its subresources, as /api/v1 lists them."""
        entry: dict[str, Any] = {
            "name": self.plural,
            "singularName": self.singular or self.kind.lower(),
            "namespaced": self.namespaced,
            "kind": self.kind,
            "verbs": list(self.verbs),
        }
        if self.short_names:
            entry["shortNames"] = list(self.short_names)
        if self.categories:
            entry["categories"] = list(self.categories)
        out = [entry]
        if self.status_subresource:
            out.append(
                {
                    "name": f"{self.plural}/status",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": self.kind,
                    "verbs": ["get", "patch", "update"],
                }
            )
        for sub in self.subresources:
            out.append(
                {
                    "name": f"{self.plural}/{sub}",
                    "singularName": "",
                    "namespaced": self.namespaced,
                    "kind": "Pod" if sub == "log" else self.kind,
                    "verbs": ["get"],
                }
            )
        return out


def _core(
    plural: str,
    kind: str,
    namespaced: bool = True,
    short: tuple[str, ...] = (),
    status: bool = False,
    subresources: tuple[str, ...] = (),
    verbs: tuple[str, ...] = _VERBS,
) -> ResourceType:
    return ResourceType(
        group="",
        version="v1",
        plural=plural,
        kind=kind,
        namespaced=namespaced,
        short_names=short,
        status_subresource=status,
        subresources=subresources,
        categories=("all",) if kind in {"Pod", "Service"} else (),
        verbs=verbs,
    )


CORE_RESOURCES: tuple[ResourceType, ...] = (
    _core(
        "namespaces",
        "Namespace",
        namespaced=False,
        short=("ns",),
        status=True,
        verbs=("create", "delete", "get", "list", "patch", "update", "watch"),
    ),
    _core("nodes", "Node", namespaced=False, short=("no",), status=True),
    _core("pods", "Pod", short=("po",), status=True, subresources=("log",)),
    _core("services", "Service", short=("svc",), status=True),
    _core("secrets", "Secret"),
    _core("configmaps", "ConfigMap", short=("cm",)),
    _core("persistentvolumeclaims", "PersistentVolumeClaim", short=("pvc",), status=True),
    _core("events", "Event", short=("ev",)),
    _core("serviceaccounts", "ServiceAccount", short=("sa",)),
    _core("resourcequotas", "ResourceQuota", short=("quota",), status=True),
    _core("limitranges", "LimitRange", short=("limits",)),
)


def _rbac(plural: str, kind: str, namespaced: bool) -> ResourceType:
    return ResourceType("rbac.authorization.k8s.io", "v1", plural, kind, namespaced)


# Built-in groups beyond core/v1: RBAC's objects, and the reviews of kubectl auth can-i and auth whoami.
API_RESOURCES: tuple[ResourceType, ...] = (
    _rbac("roles", "Role", True),
    _rbac("rolebindings", "RoleBinding", True),
    _rbac("clusterroles", "ClusterRole", False),
    _rbac("clusterrolebindings", "ClusterRoleBinding", False),
    # stored and served, not enforced: simcluster's pod network has no policy (docs/simcluster.md)
    ResourceType(
        "networking.k8s.io", "v1", "networkpolicies", "NetworkPolicy", True, short_names=("netpol",)
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        namespaced=False,
        verbs=("create",),
    ),
    ResourceType(
        "authorization.k8s.io",
        "v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        namespaced=False,
        verbs=("create",),
    ),
    ResourceType(
        "authentication.k8s.io",
        "v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
        namespaced=False,
        verbs=("create",),
    ),
)


# Built-in kinds outside the core group; their controllers live in packages of their own (simcluster.batch).
BATCH_RESOURCES: tuple[ResourceType, ...] = (
    ResourceType(
        group="batch",
        version="v1",
        plural="jobs",
        kind="Job",
        namespaced=True,
        singular="job",
        status_subresource=True,
        categories=("all",),
    ),
)


def custom_resource_from_dict(spec: Mapping[str, Any]) -> ResourceType:
    """A custom resource type from a cluster-file entry (group, version, plural, kind, ...)."""
    missing = [k for k in ("group", "version", "plural", "kind") if not spec.get(k)]
    if missing:
        raise ValueError(f"custom resource {dict(spec)!r} lacks {', '.join(missing)}")
    return ResourceType(
        group=str(spec["group"]),
        version=str(spec["version"]),
        plural=str(spec["plural"]),
        kind=str(spec["kind"]),
        namespaced=bool(spec.get("namespaced", True)),
        singular=str(spec.get("singular") or str(spec["kind"]).lower()),
        short_names=tuple(spec.get("shortNames") or ()),
        status_subresource=bool(spec.get("status", True)),
        categories=tuple(spec.get("categories") or ()),
    )


DEFAULT_CUSTOM_RESOURCES: tuple[dict[str, Any], ...] = (
    # Argo Workflows: the CRDs have no status subresource (the controller writes .status directly).
    {
        "group": "argoproj.io",
        "version": "v1alpha1",
        "plural": "workflows",
        "kind": "Workflow",
        "shortNames": ["wf"],
        "status": False,
    },
    {
        "group": "argoproj.io",
        "version": "v1alpha1",
        "plural": "workflowtemplates",
        "kind": "WorkflowTemplate",
        "shortNames": ["wftmpl"],
        "status": False,
    },
    # Katib
    {
        "group": "kubeflow.org",
        "version": "v1beta1",
        "plural": "experiments",
        "kind": "Experiment",
        "status": True,
    },
    {"group": "kubeflow.org", "version": "v1beta1", "plural": "trials", "kind": "Trial", "status": True},
    {
        "group": "kubeflow.org",
        "version": "v1beta1",
        "plural": "suggestions",
        "kind": "Suggestion",
        "status": True,
    },
    # Training Operator
    {"group": "kubeflow.org", "version": "v1", "plural": "pytorchjobs", "kind": "PyTorchJob", "status": True},
    # Kubeflow Trainer v2 (simcluster.trainer): TrainJobs and their runtimes, one of them cluster-scoped
    {
        "group": "trainer.kubeflow.org",
        "version": "v1alpha1",
        "plural": "trainjobs",
        "kind": "TrainJob",
        "status": True,
    },
    {
        "group": "trainer.kubeflow.org",
        "version": "v1alpha1",
        "plural": "trainingruntimes",
        "kind": "TrainingRuntime",
        "status": False,
    },
    {
        "group": "trainer.kubeflow.org",
        "version": "v1alpha1",
        "plural": "clustertrainingruntimes",
        "kind": "ClusterTrainingRuntime",
        "namespaced": False,
        "status": False,
    },
)


@dataclass
class Registry:
    """The resource types of one cluster, looked up by (group, version, plural) or kind."""

    types: dict[tuple[str, str, str], ResourceType] = field(default_factory=dict)

    @classmethod
    def with_defaults(cls, custom: Iterable[Mapping[str, Any]] = ()) -> Registry:
        reg = cls()
        for rt in (*CORE_RESOURCES, *BATCH_RESOURCES, *API_RESOURCES):
            reg.add(rt)
        for spec in custom:
            reg.add(custom_resource_from_dict(spec))
        return reg

    def add(self, rt: ResourceType) -> None:
        self.types[rt.key] = rt

    def get(self, group: str, version: str, plural: str) -> ResourceType | None:
        return self.types.get((group, version, plural))

    def core(self, plural: str) -> ResourceType:
        return self.types[("", "v1", plural)]

    def groups(self) -> dict[str, list[str]]:
        """Non-core API groups and their versions, in registration order."""
        out: dict[str, list[str]] = {}
        for group, version, _ in self.types:
            if group and version not in out.setdefault(group, []):
                out[group].append(version)
        return out

    def in_group_version(self, group: str, version: str) -> list[ResourceType]:
        return [rt for (g, v, _), rt in self.types.items() if g == group and v == version]
