"""The pure parts of simcluster's authorization and admission: request attributes, RBAC rules, the
built-in roles, impersonation, Pod Security checks, quota usage and the cluster file's users."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from simcluster.auth import Authenticator, mint_token
from simcluster.authz.attributes import Attributes, UserInfo, request_attributes
from simcluster.authz.bootstrap import seed
from simcluster.authz.impersonation import impersonate
from simcluster.authz.rbac import Authorizer, forbidden, rule_allows
from simcluster.config import ConfigError, parse_cluster_file
from simcluster.errors import ApiError
from simcluster.podsecurity import violations
from simcluster.quota import pod_usage
from simcluster.resources import Registry
from simcluster.store import Store

ALICE = UserInfo("alice", ("team-a", "system:authenticated"))


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces/x/pods", {}, ("list", "", "pods", "", "x", "")),
        ("GET", "/api/v1/namespaces/x/pods", {"watch": "true"}, ("watch", "", "pods", "", "x", "")),
        (
            "GET",
            "/api/v1/namespaces/x/pods",
            {"fieldSelector": "metadata.name=p"},
            ("list", "", "pods", "", "x", "p"),
        ),
        ("GET", "/api/v1/namespaces/x/pods/p/log", {}, ("get", "", "pods", "log", "x", "p")),
        ("DELETE", "/api/v1/namespaces/x/pods", {}, ("deletecollection", "", "pods", "", "x", "")),
        ("DELETE", "/api/v1/namespaces/x/pods/p", {}, ("delete", "", "pods", "", "x", "p")),
        ("PATCH", "/api/v1/namespaces/x/pods/p/status", {}, ("patch", "", "pods", "status", "x", "p")),
        ("GET", "/api/v1/namespaces/x", {}, ("get", "", "namespaces", "", "x", "x")),
        ("PUT", "/api/v1/namespaces/x/finalize", {}, ("update", "", "namespaces", "finalize", "x", "x")),
        ("GET", "/api/v1/nodes", {}, ("list", "", "nodes", "", "", "")),
        (
            "POST",
            "/apis/argoproj.io/v1alpha1/namespaces/x/workflows",
            {},
            ("create", "argoproj.io", "workflows", "", "x", ""),
        ),
    ],
)
def test_request_attributes(method: str, path: str, query: dict[str, str], expected: tuple[str, ...]) -> None:
    a = request_attributes(ALICE, method, path, query)
    assert a.resource_request
    assert (a.verb, a.api_group, a.resource, a.subresource, a.namespace, a.name) == expected


@pytest.mark.parametrize(
    "path", ["/api", "/api/v1", "/apis", "/apis/batch", "/apis/batch/v1", "/version", "/healthz"]
)
def test_discovery_paths_are_non_resource_requests(path: str) -> None:
    a = request_attributes(ALICE, "GET", path, {})
    assert not a.resource_request and a.verb == "get" and a.path == path


def attrs(
    verb: str, resource: str, sub: str = "", name: str = "", group: str = "", ns: str = "x"
) -> Attributes:
    return Attributes(
        ALICE, verb, True, api_group=group, resource=resource, subresource=sub, namespace=ns, name=name
    )


@pytest.mark.parametrize(
    ("rule", "request_", "allowed"),
    [
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, attrs("get", "pods"), True),
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, attrs("list", "pods"), False),
        (
            {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
            attrs("delete", "workflows", group="argoproj.io"),
            True,
        ),
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]}, attrs("get", "pods", "log"), False),
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/log"]}, attrs("get", "pods", "log"), True),
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["*/log"]}, attrs("get", "pods", "log"), True),
        ({"verbs": ["get"], "apiGroups": [""], "resources": ["pods/*"]}, attrs("get", "pods", "log"), False),
        ({"verbs": ["get"], "apiGroups": ["batch"], "resources": ["pods"]}, attrs("get", "pods"), False),
        (
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]},
            attrs("get", "pods", name="a"),
            True,
        ),
        (
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]},
            attrs("get", "pods", name="b"),
            False,
        ),
        (
            {"verbs": ["list"], "apiGroups": [""], "resources": ["pods"], "resourceNames": ["a"]},
            attrs("list", "pods"),
            False,
        ),
        (
            {"verbs": ["get"], "nonResourceURLs": ["/apis/*"]},
            Attributes(ALICE, "get", False, path="/apis/batch"),
            True,
        ),
        (
            {"verbs": ["get"], "nonResourceURLs": ["/version"]},
            Attributes(ALICE, "get", False, path="/versions"),
            False,
        ),
        (
            {"verbs": ["get"], "apiGroups": [""], "resources": ["pods"]},
            Attributes(ALICE, "get", False, path="/api"),
            False,
        ),
    ],
)
def test_rule_allows(rule: dict[str, Any], request_: Attributes, allowed: bool) -> None:
    assert rule_allows(rule, request_) is allowed


@pytest.mark.parametrize(
    ("request_", "message"),
    [
        (
            attrs("list", "pods"),
            'pods is forbidden: User "alice" cannot list resource "pods" in API group "" in the namespace '
            '"x"',
        ),
        (
            attrs("get", "pods", "log", name="p"),
            'pods "p" is forbidden: User "alice" cannot get resource "pods/log" in API group "" in the '
            'namespace "x"',
        ),
        (
            attrs("create", "workflows", group="argoproj.io"),
            'workflows.argoproj.io is forbidden: User "alice" cannot create resource "workflows" in API '
            'group "argoproj.io" in the namespace "x"',
        ),
        (
            attrs("list", "nodes", ns=""),
            'nodes is forbidden: User "alice" cannot list resource "nodes" in API group "" at the cluster '
            "scope",
        ),
        (
            Attributes(ALICE, "get", False, path="/metrics"),
            'forbidden: User "alice" cannot get path "/metrics"',
        ),
    ],
)
def test_forbidden_is_worded_as_the_apiserver_words_it(request_: Attributes, message: str) -> None:
    err = forbidden(request_)
    assert (err.code, err.reason, err.message) == (403, "Forbidden", message)


@pytest.fixture
def store() -> Store:
    s = Store(
        Registry.with_defaults(
            [{"group": "argoproj.io", "version": "v1alpha1", "plural": "workflows", "kind": "Workflow"}]
        )
    )
    seed(s)
    ns = s.registry.core("namespaces")
    for name in ("x", "y"):
        s.create(ns, None, {"metadata": {"name": name}})
    return s


def bind(store: Store, namespace: str, role: str, subject: dict[str, str]) -> None:
    rt = store.registry.get("rbac.authorization.k8s.io", "v1", "rolebindings")
    assert rt is not None
    body = {
        "metadata": {"name": f"{role}-{subject['name']}"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": role},
        "subjects": [subject],
    }
    store.create(rt, namespace, body)


@pytest.mark.parametrize(
    ("role", "allowed", "refused"),
    [
        (
            "view",
            [("get", "pods", "log"), ("list", "workflows", ""), ("list", "configmaps", "")],
            [("list", "secrets", ""), ("create", "pods", "")],
        ),
        (
            "edit",
            [
                ("list", "secrets", ""),
                ("create", "pods", ""),
                ("create", "workflows", ""),
                ("delete", "jobs", ""),
            ],
            [("create", "rolebindings", ""), ("create", "resourcequotas", "")],
        ),
        (
            "admin",
            [("create", "rolebindings", ""), ("delete", "pods", "")],
            [("create", "resourcequotas", ""), ("create", "namespaces", "")],
        ),
    ],
)
def test_built_in_roles_aggregate_what_the_real_ones_do(
    store: Store, role: str, allowed: list[tuple[str, str, str]], refused: list[tuple[str, str, str]]
) -> None:
    bind(store, "x", role, {"kind": "Group", "name": "team-a", "apiGroup": "rbac.authorization.k8s.io"})
    authz = Authorizer(store)
    groups = {"workflows": "argoproj.io", "jobs": "batch", "rolebindings": "rbac.authorization.k8s.io"}
    for verb, resource, sub in allowed:
        assert authz.allowed(attrs(verb, resource, sub, group=groups.get(resource, ""))), (verb, resource)
        assert not authz.allowed(attrs(verb, resource, sub, group=groups.get(resource, ""), ns="y")), (
            verb,
            resource,
        )
    for verb, resource, sub in refused:
        assert not authz.allowed(attrs(verb, resource, sub, group=groups.get(resource, ""))), (verb, resource)


def test_service_account_subjects_and_discovery(store: Store) -> None:
    bind(store, "x", "view", {"kind": "ServiceAccount", "name": "runner"})
    authz = Authorizer(store)
    sa = UserInfo("system:serviceaccount:x:runner", ("system:serviceaccounts", "system:authenticated"))
    assert authz.allowed(Attributes(sa, "list", True, resource="pods", namespace="x"))
    assert not authz.allowed(Attributes(ALICE, "list", True, resource="pods", namespace="x"))
    assert authz.allowed(Attributes(ALICE, "get", False, path="/apis/argoproj.io/v1alpha1"))
    assert not authz.allowed(Attributes(UserInfo("anon", ()), "get", False, path="/apis"))


def test_impersonation_needs_the_impersonate_verb(store: Store) -> None:
    authz = Authorizer(store)
    admin = UserInfo("admin", ("system:masters", "system:authenticated"))
    as_bob = impersonate(authz, admin, {"Impersonate-User": "bob"}, ["team-b"], {})
    assert as_bob == UserInfo("bob", ("team-b", "system:authenticated"))
    as_sa = impersonate(authz, admin, {"Impersonate-User": "system:serviceaccount:x:runner"}, [], {})
    assert as_sa.groups == ("system:serviceaccounts", "system:serviceaccounts:x", "system:authenticated")
    assert impersonate(authz, ALICE, {}, [], {}) is ALICE
    with pytest.raises(ApiError) as err:
        impersonate(authz, ALICE, {"Impersonate-User": "bob"}, [], {})
    assert err.value.message == (
        'users "bob" is forbidden: User "alice" cannot impersonate resource "users" in API group "" at the '
        "cluster scope"
    )
    with pytest.raises(ApiError) as err:
        impersonate(authz, admin, {}, ["team-b"], {})
    assert err.value.code == 400


def pod(spec: dict[str, Any], container: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", **(container or {})}], **spec}}


RESTRICTED_OK = {
    "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
}
RESTRICTED_CONTAINER = {
    "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}
}


@pytest.mark.parametrize(
    ("level", "obj", "expected"),
    [
        ("baseline", pod({}), []),
        ("privileged", pod({"hostPID": True, "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}), []),
        (
            "baseline",
            pod({"hostPID": True, "hostIPC": True}),
            ["host namespaces (hostPID=true, hostIPC=true)"],
        ),
        (
            "baseline",
            pod(
                {
                    "volumes": [
                        {"name": "a", "hostPath": {"path": "/"}},
                        {"name": "b", "hostPath": {"path": "/"}},
                    ]
                }
            ),
            ['hostPath volumes (volumes "a", "b")'],
        ),
        (
            "baseline",
            pod({}, {"ports": [{"containerPort": 80, "hostPort": 80}]}),
            ['hostPort (container "c" uses hostPort 80)'],
        ),
        (
            "baseline",
            pod({}, {"securityContext": {"capabilities": {"add": ["NET_ADMIN", "CHOWN"]}}}),
            [
                'non-default capabilities (container "c" must not include "NET_ADMIN" in '
                "securityContext.capabilities.add)"
            ],
        ),
        (
            "baseline",
            pod(
                {
                    "securityContext": {
                        "seccompProfile": {"type": "Unconfined"},
                        "sysctls": [{"name": "kernel.msgmax", "value": "1"}],
                    }
                }
            ),
            [
                'seccompProfile (pod must not set securityContext.seccompProfile.type to "Unconfined")',
                "forbidden sysctls (kernel.msgmax)",
            ],
        ),
        ("restricted", pod(RESTRICTED_OK, RESTRICTED_CONTAINER), []),
        (
            "restricted",
            pod(
                {**RESTRICTED_OK, "volumes": [{"name": "h", "hostPath": {"path": "/"}}]}, RESTRICTED_CONTAINER
            ),
            ['restricted volume types (volume "h" uses restricted volume type "hostPath")'],
        ),
        (
            "restricted",
            pod(
                {"securityContext": {"runAsUser": 0, "seccompProfile": {"type": "Localhost"}}},
                RESTRICTED_CONTAINER,
            ),
            [
                'runAsNonRoot != true (pod or container "c" must set securityContext.runAsNonRoot=true)',
                "runAsUser=0 (pod must not set runAsUser=0)",
            ],
        ),
    ],
)
def test_pod_security_checks(level: str, obj: dict[str, Any], expected: list[str]) -> None:
    assert violations(level, obj) == expected


def test_pod_usage_counts_live_pods_and_the_larger_of_init_and_main_containers() -> None:
    spec = {
        "containers": [
            {
                "name": "a",
                "resources": {
                    "requests": {"cpu": "1", "nvidia.com/gpu": "1"},
                    "limits": {"nvidia.com/gpu": "1"},
                },
            },
            {"name": "b", "resources": {"requests": {"cpu": "500m"}}},
        ],
        "initContainers": [{"name": "i", "resources": {"requests": {"cpu": "2"}}}],
    }
    usage = pod_usage({"spec": spec, "status": {"phase": "Running"}})
    assert usage["requests.cpu"] == Decimal(2) and usage["cpu"] == Decimal(2)
    assert usage["requests.nvidia.com/gpu"] == Decimal(1) and usage["pods"] == Decimal(1)
    assert "limits.nvidia.com/gpu" not in usage  # extended resources are quota'd by their requests only
    assert pod_usage({"spec": spec, "status": {"phase": "Succeeded"}}) == {}


def test_cluster_file_users() -> None:
    (spec,) = parse_cluster_file(
        {
            "clusters": [
                {"name": "c", "users": ["admin", {"name": "alice", "groups": ["team-a"], "token": "t" * 16}]}
            ]
        }
    )
    assert spec.users == ("admin", "alice")
    assert spec.user_groups == {"alice": ("team-a",)} and spec.user_tokens == {"alice": "t" * 16}
    (default,) = parse_cluster_file({"clusters": [{"name": "c"}]})
    assert default.users == ("admin",) and default.user_groups == {}
    for bad in (
        {"name": "x", "groups": ["system:masters"]},
        {"name": "x", "token": "short"},
        {"groups": []},
        {"name": "x", "oops": 1},
    ):
        with pytest.raises(ConfigError):
            parse_cluster_file({"clusters": [{"name": "c", "users": [bad]}]})


def test_tokens_name_users_and_groups_and_undeclared_users_stay_cluster_admin() -> None:
    key = b"k" * 32
    auth = Authenticator(
        static_tokens={"s" * 20: "admin", "a" * 20: "alice"}, signing_key=key, groups={"alice": ("team-a",)}
    )
    assert auth.authenticate_user(f"Bearer {'s' * 20}") == UserInfo(
        "admin", ("system:masters", "system:authenticated")
    )
    assert auth.authenticate_user(f"Bearer {'a' * 20}") == UserInfo(
        "alice", ("team-a", "system:authenticated")
    )
    minted, _ = mint_token(key, "alice", 60)
    assert auth.authenticate_user(f"Bearer {minted}") == UserInfo("alice", ("team-a", "system:authenticated"))
    minted, _ = mint_token(key, "ci", 60)  # an exec-plugin user the file does not declare
    assert auth.authenticate_user(f"Bearer {minted}") == UserInfo(
        "ci", ("system:masters", "system:authenticated")
    )
    assert auth.authenticate_user("Bearer wrong") is None
