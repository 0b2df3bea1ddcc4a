"""A user's run namespace: names, labels and settings as tables, each manifest as a golden file.

``HYBRIDHUB_REGEN_GOLDEN=1`` rewrites the files under tests/golden/runs/; review the diff before
committing it.
"""

from __future__ import annotations

import os
import re
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubespawner.slugs import is_valid_label, is_valid_object_name, safe_slug

from spawner.core.labels import HUB_LABEL, RUNS_USER_ANNOTATION, RUNS_USER_LABEL
from spawner.service.runs.namespaces import (
    RunNamespaceSettings,
    build,
    impersonated_user,
    namespace_name,
    settings_problems,
    user_slug,
)

REGEN = os.environ.get("HYBRIDHUB_REGEN_GOLDEN") == "1"
GOLDEN = Path(__file__).parents[3] / "golden" / "runs"
DEFAULT = RunNamespaceSettings()

NAMES = [
    "alice",
    "Alice",
    "alice.smith@example.org",
    "bob--carol",
    "1user",
    "user-",
    "-user",
    "üser",
    "a" * 63,
    "a" * 70,
    "x",
    "___",
    "名前",
]


@pytest.mark.parametrize("name", NAMES)
def test_user_slug_is_kubespawners_safe_slug(name: str) -> None:
    # the hub names a user's objects with KubeSpawner's rule, so a namespace is recognisable as the user's
    assert user_slug(name) == safe_slug(name, max_length=63)
    assert user_slug(name, 40) == safe_slug(name, max_length=40)
    assert is_valid_label(user_slug(name))


@pytest.mark.parametrize(
    ("user", "expected"),
    [
        ("alice", "hybridhub-runs-alice"),
        ("Alice", "hybridhub-runs-alice---3bc51062"),
        ("alice.smith@example.org", "hybridhub-runs-alice-smith-example-org---0d1cf0a9"),
        ("bob--carol", "hybridhub-runs-bob-carol---89a0f934"),
        ("a" * 48, "hybridhub-runs-" + "a" * 48),
        ("a" * 49, "hybridhub-runs-" + "a" * 37 + "---" + safe_slug("a" * 49, max_length=48)[-8:]),
    ],
)
def test_namespace_name(user: str, expected: str) -> None:
    name = namespace_name(DEFAULT, user)
    assert name == expected
    assert is_valid_object_name(name)


@pytest.mark.parametrize("user", NAMES)
def test_every_namespace_name_is_a_dns_label_and_names_never_collide(user: str) -> None:
    name = namespace_name(DEFAULT, user)
    assert is_valid_object_name(name), name
    others = {namespace_name(DEFAULT, other) for other in NAMES if other != user}
    assert name not in others


@pytest.mark.parametrize(
    ("template", "user", "expected"),
    [
        ("hybridhub:user:{username}", "alice", "hybridhub:user:alice"),
        ("hybridhub:user:{username}", "Alice@Example.org", "hybridhub:user:Alice@Example.org"),
        ("{username}", "alice", "alice"),
        ("oidc:{username}", "system:kube-scheduler", "oidc:system:kube-scheduler"),
    ],
)
def test_impersonated_user(template: str, user: str, expected: str) -> None:
    settings = replace(DEFAULT, impersonate_template=template)
    assert impersonated_user(settings, user) == expected
    bindings = [o for o in build(settings, user).objects if o["metadata"]["name"] == "hybridhub-user"]
    assert bindings[0]["subjects"] == [
        {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": expected}
    ]


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"name_template": "runs"}, "name_template: must contain {user} exactly once, not 'runs'"),
        ({"name_template": "{user}-{user}"}, "name_template: must contain {user} exactly once"),
        ({"name_template": "Runs-{user}"}, "name_template: outside {user} only lowercase letters"),
        ({"name_template": "runs_{user}"}, "name_template: outside {user} only lowercase letters"),
        ({"name_template": "-runs-{user}"}, "name_template: must begin with a letter or {user}"),
        ({"name_template": "r" * 52 + "{user}"}, "name_template: leaves 11 characters of 63 for the user"),
        ({"impersonate_template": "hybridhub:user"}, "impersonate_template: must contain {username}"),
        (
            {"impersonate_template": "system:{username}"},
            "impersonate_template: must not begin with 'system:'",
        ),
        ({"hub_instance": ""}, "hub_instance: must not be empty"),
        ({"hub_instance": "a hub"}, "hub_instance: must be letters, digits"),
        ({"gpu_quota": -1}, "gpu_quota: must be 0 or more, not -1"),
        ({"pod_quota": 0}, "pod_quota: must be 1 or more, or None, not 0"),
        ({"default_cpu_request": "lots"}, "default_cpu_request: not a Kubernetes quantity: 'lots'"),
        ({"default_memory_request": "0"}, "default_memory_request: must be more than 0, not '0'"),
        ({"user_cluster_role": "Edit"}, "user_cluster_role: must be a DNS label, not 'Edit'"),
        ({"runner_service_account": ""}, "runner_service_account: must be a DNS label, not ''"),
        (
            {"blocked_egress_cidrs": ("10.0.0.0/8", "10.1.0.1/16")},
            "blocked_egress_cidrs[1]: not an address range",
        ),
        (
            {"egress_namespaces": ("kubeflow", "Kube_System")},
            "egress_namespaces[1]: must be a namespace name",
        ),
    ],
)
def test_settings_problems_name_the_field(change: dict[str, Any], problem: str) -> None:
    problems = settings_problems(replace(DEFAULT, **change))
    assert len(problems) == 1, problems
    assert problems[0].startswith(problem), problems
    with pytest.raises(ValueError, match=re.escape(problem.split(":")[0])):
        build(replace(DEFAULT, **change), "alice")


@pytest.mark.parametrize(
    "settings",
    [
        DEFAULT,
        replace(DEFAULT, name_template="{user}", pod_quota=None, gpu_quota=0),
        replace(DEFAULT, blocked_egress_cidrs=("10.244.0.0/16", "fd00:10::/56"), egress_namespaces=()),
    ],
)
def test_usable_settings_have_no_problems(settings: RunNamespaceSettings) -> None:
    assert settings_problems(settings) == []


def test_an_empty_user_is_refused() -> None:
    with pytest.raises(ValueError, match="user: must not be empty"):
        build(DEFAULT, "")


@pytest.mark.parametrize("user", ["alice", "Alice.Smith@example.org"])
def test_every_object_says_whose_it_is(user: str) -> None:
    built = build(DEFAULT, user)
    assert [o["kind"] for o in built.objects] == [
        "Namespace",
        "ResourceQuota",
        "LimitRange",
        "RoleBinding",
        "ServiceAccount",
        "RoleBinding",
        "NetworkPolicy",
    ]
    for obj in built.objects:
        labels = obj["metadata"]["labels"]
        assert labels[HUB_LABEL] == "hybridhub"
        assert labels[RUNS_USER_LABEL] == user_slug(user)
        if obj["kind"] != "Namespace":
            assert obj["metadata"]["namespace"] == built.name
    # a label cannot hold every hub name; the annotation keeps it as the hub spells it
    assert built.objects[0]["metadata"]["annotations"] == {RUNS_USER_ANNOTATION: user}


def test_egress_exceptions_go_to_the_block_of_their_address_family() -> None:
    settings = replace(DEFAULT, blocked_egress_cidrs=("10.244.0.0/16",), egress_namespaces=())
    policy = build(settings, "alice").objects[-1]["spec"]
    assert policy["policyTypes"] == ["Ingress", "Egress"]
    assert policy["egress"][-1] == {
        "to": [
            {"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.244.0.0/16"]}},
            {"ipBlock": {"cidr": "::/0"}},
        ]
    }


GOLDEN_CASES = {
    "default": (DEFAULT, "alice"),
    "escaped-user": (replace(DEFAULT, hub_instance="hub-b", pod_quota=None), "Alice.Smith@example.org"),
    "blocked-egress": (
        replace(DEFAULT, gpu_quota=16, blocked_egress_cidrs=("10.244.0.0/16", "fd00:10::/56")),
        "alice",
    ),
}


@pytest.mark.parametrize("case", sorted(GOLDEN_CASES))
def test_manifests_match_golden(case: str) -> None:
    settings, user = GOLDEN_CASES[case]
    documents = list(build(settings, user).objects)
    path = GOLDEN / f"{case}.yaml"
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(yaml.safe_dump_all(documents, sort_keys=True, default_flow_style=False))
    assert path.exists(), f"{path} is missing: run with HYBRIDHUB_REGEN_GOLDEN=1 to write it"
    assert documents == list(yaml.safe_load_all(path.read_text())), (
        f"differs from {path} (HYBRIDHUB_REGEN_GOLDEN=1 rewrites it)"
    )
