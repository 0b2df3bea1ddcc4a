"""Tests for simcluster.patch: JSON merge patch, JSON patch and strategic merge patch."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from simcluster.patch import (
    SMP_KINDS,
    PatchError,
    apply_patch,
    json_patch,
    merge_patch,
    strategic_merge_patch,
)


def _containers(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"containers": list(containers)}}


# ---------------------------------------------------------------------------------------------
# RFC 7386 JSON merge patch (the examples of its appendix A)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "expected"),
    [
        ({"a": "b"}, {"a": "c"}, {"a": "c"}),
        ({"a": "b"}, {"b": "c"}, {"a": "b", "b": "c"}),
        ({"a": "b"}, {"a": None}, {}),
        ({"a": "b", "b": "c"}, {"a": None}, {"b": "c"}),
        ({"a": ["b"]}, {"a": "c"}, {"a": "c"}),
        ({"a": "c"}, {"a": ["b"]}, {"a": ["b"]}),
        ({"a": {"b": "c"}}, {"a": {"b": "d", "c": None}}, {"a": {"b": "d"}}),
        ({"a": [{"b": "c"}]}, {"a": [1]}, {"a": [1]}),
        (["a", "b"], ["c", "d"], ["c", "d"]),
        ({"a": "b"}, ["c"], ["c"]),
        ({"a": "foo"}, None, None),
        ({"a": "foo"}, "bar", "bar"),
        ({"e": None}, {"a": 1}, {"e": None, "a": 1}),
        ([1, 2], {"a": "b", "c": None}, {"a": "b"}),
        ({}, {"a": {"bb": {"ccc": None}}}, {"a": {"bb": {}}}),
        (None, {"a": 1}, {"a": 1}),
        # lists are replaced whole, never merged, even Kubernetes' merge-keyed ones
        (
            _containers({"name": "a", "image": "x"}, {"name": "b"}),
            _containers({"name": "a", "image": "y"}),
            _containers({"name": "a", "image": "y"}),
        ),
    ],
)
def test_merge_patch_rfc7386(target: Any, patch: Any, expected: Any) -> None:
    assert merge_patch(target, patch) == expected


# ---------------------------------------------------------------------------------------------
# RFC 6902 JSON patch (examples of its appendix A, plus what Kubernetes clients send)
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "ops", "expected"),
    [
        ({"foo": "bar"}, [{"op": "add", "path": "/baz", "value": "qux"}], {"baz": "qux", "foo": "bar"}),
        (
            {"foo": ["bar", "baz"]},
            [{"op": "add", "path": "/foo/1", "value": "qux"}],
            {"foo": ["bar", "qux", "baz"]},
        ),
        ({"baz": "qux", "foo": "bar"}, [{"op": "remove", "path": "/baz"}], {"foo": "bar"}),
        ({"foo": ["bar", "qux", "baz"]}, [{"op": "remove", "path": "/foo/1"}], {"foo": ["bar", "baz"]}),
        (
            {"baz": "qux", "foo": "bar"},
            [{"op": "replace", "path": "/baz", "value": "boo"}],
            {"baz": "boo", "foo": "bar"},
        ),
        (
            {"foo": {"bar": "baz", "waldo": "fred"}, "qux": {"corge": "grault"}},
            [{"op": "move", "from": "/foo/waldo", "path": "/qux/thud"}],
            {"foo": {"bar": "baz"}, "qux": {"corge": "grault", "thud": "fred"}},
        ),
        (
            {"foo": ["all", "grass", "cows", "eat"]},
            [{"op": "move", "from": "/foo/1", "path": "/foo/3"}],
            {"foo": ["all", "cows", "eat", "grass"]},
        ),
        (
            {"baz": "qux", "foo": ["a", 2, "c"]},
            [
                {"op": "test", "path": "/baz", "value": "qux"},
                {"op": "test", "path": "/foo/1", "value": 2},
            ],
            {"baz": "qux", "foo": ["a", 2, "c"]},
        ),
        (
            {"foo": "bar"},
            [{"op": "add", "path": "/child", "value": {"grandchild": {}}}],
            {"foo": "bar", "child": {"grandchild": {}}},
        ),
        (
            {"foo": "bar"},
            [{"op": "add", "path": "/baz", "value": "qux", "xyz": 123}],
            {"foo": "bar", "baz": "qux"},
        ),
        ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": 10}], {"/": 9, "~1": 10}),
        (
            {"foo": ["bar"]},
            [{"op": "add", "path": "/foo/-", "value": ["abc", "def"]}],
            {"foo": ["bar", ["abc", "def"]]},
        ),
        ({"a": {"b": 1}}, [{"op": "copy", "from": "/a", "path": "/c"}], {"a": {"b": 1}, "c": {"b": 1}}),
        (
            {"metadata": {"labels": {}}},
            [{"op": "add", "path": "/metadata/labels/app.kubernetes.io~1name", "value": "x"}],
            {"metadata": {"labels": {"app.kubernetes.io/name": "x"}}},
        ),
        (
            {"metadata": {"resourceVersion": "5", "finalizers": ["a", "b"]}},
            [
                {"op": "test", "path": "/metadata/resourceVersion", "value": "5"},
                {"op": "remove", "path": "/metadata/finalizers/0"},
            ],
            {"metadata": {"resourceVersion": "5", "finalizers": ["b"]}},
        ),
        ({"a": 1}, [], {"a": 1}),
        ({"a": 1}, None, {"a": 1}),
    ],
)
def test_json_patch_rfc6902(target: Any, ops: Any, expected: Any) -> None:
    assert json_patch(target, ops) == expected


@pytest.mark.parametrize(
    ("target", "ops", "code", "message"),
    [
        ({"baz": "qux"}, [{"op": "test", "path": "/baz", "value": "bar"}], 422, "testing value /baz failed"),
        ({"/": 9, "~1": 10}, [{"op": "test", "path": "/~01", "value": "10"}], 422, "test failed"),
        ({"a": True}, [{"op": "test", "path": "/a", "value": 1}], 422, "test failed"),
        ({"a": 1}, [{"op": "test", "path": "/missing", "value": 1}], 422, "test failed"),
        ({"foo": "bar"}, [{"op": "add", "path": "/baz/bat", "value": "qux"}], 422, "missing path"),
        ({"a": 1}, [{"op": "remove", "path": "/b"}], 422, "Unable to remove nonexistent key: b"),
        ({"a": 1}, [{"op": "replace", "path": "/b", "value": 2}], 422, "doc is missing key: /b"),
        ({"a": 1}, [{"op": "move", "from": "/b", "path": "/c"}], 422, "missing from path: /b"),
        ({"a": 1}, [{"op": "copy", "from": "/b", "path": "/c"}], 422, "missing from path: /b"),
        ({"a": [1]}, [{"op": "remove", "path": "/a/3"}], 422, "error in remove"),
        ({"a": 1}, [{"op": "frobnicate", "path": "/a"}], 422, "Unexpected kind: frobnicate"),
        ({"a": 1}, [{"path": "/a"}], 422, "Unexpected kind: unknown"),
        ({"a": 1}, [{"op": "add", "path": "/b"}], 422, "value"),
        ({"a": 1}, {"op": "add", "path": "/b", "value": 1}, 400, "cannot unmarshal object"),
        ({"a": 1}, "oops", 400, "cannot unmarshal string"),
        ({"a": 1}, ["oops"], 400, "jsonpatch.Operation"),
        ({"a": 1}, [[{"op": "add"}]], 400, "cannot unmarshal array"),
    ],
)
def test_json_patch_failures(target: Any, ops: Any, code: int, message: str) -> None:
    with pytest.raises(PatchError) as err:
        json_patch(target, ops)
    assert err.value.code == code
    assert message in str(err.value)


def test_json_patch_is_atomic_and_leaves_inputs_alone() -> None:
    target = {"a": {"b": 1}}
    ops = [{"op": "add", "path": "/c", "value": {"d": 1}}, {"op": "remove", "path": "/x"}]
    before = copy.deepcopy((target, ops))
    with pytest.raises(PatchError):
        json_patch(target, ops)
    assert (target, ops) == before
    result = json_patch(target, ops[:1])
    result["c"]["d"] = 2
    result["a"]["b"] = 2
    assert (target, ops) == before


# ---------------------------------------------------------------------------------------------
# Strategic merge patch
# ---------------------------------------------------------------------------------------------

POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {
        "name": "nb",
        "labels": {"app": "nb", "tier": "gpu"},
        "finalizers": ["a", "b"],
        "ownerReferences": [{"uid": "u1", "name": "owner", "kind": "X", "apiVersion": "v1"}],
    },
    "spec": {
        "containers": [
            {
                "name": "main",
                "image": "nb:1",
                "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                "ports": [{"containerPort": 8888, "protocol": "TCP"}],
                "volumeMounts": [{"name": "home", "mountPath": "/home"}],
                "resizePolicy": [{"resourceName": "cpu", "restartPolicy": "NotRequired"}],
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
            },
            {"name": "sidecar", "image": "side:1"},
        ],
        "volumes": [{"name": "home", "emptyDir": {}}],
        "tolerations": [{"key": "gpu", "operator": "Exists"}],
        "nodeSelector": {"pool": "gpu"},
    },
    "status": {
        "phase": "Running",
        "conditions": [
            {"type": "Ready", "status": "True"},
            {"type": "PodScheduled", "status": "True"},
        ],
        "containerStatuses": [{"name": "main", "ready": True}, {"name": "sidecar", "ready": True}],
    },
}


def _at(obj: Any, path: str) -> Any:
    for part in path.split("."):
        obj = obj[int(part)] if isinstance(obj, list) else obj[part]
    return obj


@pytest.mark.parametrize(
    ("patch", "path", "expected"),
    [
        # maps merge recursively; null deletes a key
        ({"metadata": {"labels": {"tier": None, "new": "x"}}}, "metadata.labels", {"app": "nb", "new": "x"}),
        ({"spec": {"nodeSelector": None}}, "spec", "nodeSelector-absent"),
        # containers merge by name, and so do their env; ports merge by containerPort
        (
            {"spec": {"containers": [{"name": "main", "image": "nb:2"}]}},
            "spec.containers",
            [dict(POD["spec"]["containers"][0], image="nb:2"), POD["spec"]["containers"][1]],
        ),
        (
            {"spec": {"containers": [{"name": "main", "env": [{"name": "B", "value": "3"}]}]}},
            "spec.containers.0.env",
            [{"name": "A", "value": "1"}, {"name": "B", "value": "3"}],
        ),
        (
            {"spec": {"containers": [{"name": "main", "env": [{"name": "C", "value": "3"}]}]}},
            "spec.containers.0.env",
            [{"name": "C", "value": "3"}, {"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
        ),
        (
            {"spec": {"containers": [{"name": "main", "env": [{"name": "A", "value": None}]}]}},
            "spec.containers.0.env",
            [{"name": "A"}, {"name": "B", "value": "2"}],
        ),
        (
            {"spec": {"containers": [{"name": "main", "ports": [{"containerPort": 8888, "name": "http"}]}]}},
            "spec.containers.0.ports",
            [{"containerPort": 8888, "protocol": "TCP", "name": "http"}],
        ),
        (
            {"spec": {"containers": [{"name": "main", "ports": [{"containerPort": 22}]}]}},
            "spec.containers.0.ports",
            [{"containerPort": 22}, {"containerPort": 8888, "protocol": "TCP"}],
        ),
        (
            {"spec": {"containers": [{"name": "main", "volumeMounts": [{"name": "d", "mountPath": "/d"}]}]}},
            "spec.containers.0.volumeMounts",
            [{"name": "d", "mountPath": "/d"}, {"name": "home", "mountPath": "/home"}],
        ),
        # resizePolicy is +listType=atomic without a patch strategy: replaced
        (
            {"spec": {"containers": [{"name": "main", "resizePolicy": [{"resourceName": "memory"}]}]}},
            "spec.containers.0.resizePolicy",
            [{"resourceName": "memory"}],
        ),
        # a container new to the list comes first, as apimachinery's normalizeElementOrder does
        (
            {"spec": {"containers": [{"name": "extra", "image": "e:1"}]}},
            "spec.containers",
            [{"name": "extra", "image": "e:1"}, *POD["spec"]["containers"]],
        ),
        # $patch: delete on a list element, $patch: replace as a list element
        (
            {"spec": {"containers": [{"name": "sidecar", "$patch": "delete"}]}},
            "spec.containers",
            [POD["spec"]["containers"][0]],
        ),
        (
            {"spec": {"containers": [{"name": "only", "image": "o:1"}, {"$patch": "replace"}]}},
            "spec.containers",
            [{"name": "only", "image": "o:1"}],
        ),
        (
            {"spec": {"containers": [{"name": "main", "env": [{"name": "A", "$patch": "delete"}]}]}},
            "spec.containers.0.env",
            [{"name": "B", "value": "2"}],
        ),
        # $patch on a map: replace keeps only the patch, delete leaves an empty map
        (
            {
                "spec": {
                    "containers": [
                        {"name": "main", "resources": {"$patch": "replace", "limits": {"cpu": "2"}}}
                    ]
                }
            },
            "spec.containers.0.resources",
            {"limits": {"cpu": "2"}},
        ),
        ({"metadata": {"labels": {"$patch": "replace", "x": "y"}}}, "metadata.labels", {"x": "y"}),
        ({"metadata": {"labels": {"$patch": "delete"}}}, "metadata.labels", {}),
        # lists without a strategy are replaced
        (
            {"spec": {"tolerations": [{"key": "other", "operator": "Exists"}]}},
            "spec.tolerations",
            [{"key": "other", "operator": "Exists"}],
        ),
        ({"spec": {"tolerations": []}}, "spec.tolerations", []),
        (
            {"status": {"containerStatuses": [{"name": "main", "ready": False}]}},
            "status.containerStatuses",
            [{"name": "main", "ready": False}],
        ),
        # status conditions merge by type
        (
            {"status": {"conditions": [{"type": "Ready", "status": "False"}]}},
            "status.conditions",
            [{"type": "Ready", "status": "False"}, {"type": "PodScheduled", "status": "True"}],
        ),
        # volumes by name, with $retainKeys dropping the old volume source
        (
            {
                "spec": {
                    "volumes": [
                        {
                            "name": "home",
                            "$retainKeys": ["name", "persistentVolumeClaim"],
                            "persistentVolumeClaim": {"claimName": "c"},
                        }
                    ]
                }
            },
            "spec.volumes",
            [{"name": "home", "persistentVolumeClaim": {"claimName": "c"}}],
        ),
        (
            {"spec": {"volumes": [{"name": "home", "secret": {"secretName": "s"}}]}},
            "spec.volumes",
            [{"name": "home", "emptyDir": {}, "secret": {"secretName": "s"}}],
        ),
        # finalizers: a set of primitives; patch items first, in patch order, then the others
        ({"metadata": {"finalizers": ["c"]}}, "metadata.finalizers", ["c", "a", "b"]),
        ({"metadata": {"finalizers": ["b", "c"]}}, "metadata.finalizers", ["a", "b", "c"]),
        ({"metadata": {"finalizers": ["a"]}}, "metadata.finalizers", ["a", "b"]),
        ({"metadata": {"finalizers": []}}, "metadata.finalizers", ["a", "b"]),
        ({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a"]}}, "metadata.finalizers", ["b"]),
        ({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}, "metadata.finalizers", ["a", "b"]),
        (
            {"metadata": {"finalizers": ["c"], "$deleteFromPrimitiveList/finalizers": ["a", "b"]}},
            "metadata.finalizers",
            ["c"],
        ),
        ({"metadata": {"$deleteFromPrimitiveList/finalizers": None}}, "metadata", "finalizers-absent"),
        # $deleteFromPrimitiveList on a list that is not there adds nothing
        ({"spec": {"$deleteFromPrimitiveList/args": ["x"]}}, "spec", "args-absent"),
        # ownerReferences merge by uid
        (
            {"metadata": {"ownerReferences": [{"uid": "u1", "controller": True}]}},
            "metadata.ownerReferences",
            [{"uid": "u1", "name": "owner", "kind": "X", "apiVersion": "v1", "controller": True}],
        ),
        # $setElementOrder orders the merged list, server-only items keep their place
        (
            {"metadata": {"$setElementOrder/finalizers": ["b", "a"]}},
            "metadata.finalizers",
            ["b", "a"],
        ),
        (
            {
                "spec": {
                    "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "main"}],
                    "containers": [{"name": "sidecar", "image": "side:2"}],
                }
            },
            "spec.containers",
            [{"name": "sidecar", "image": "side:2"}, POD["spec"]["containers"][0]],
        ),
        # scalars and type changes are replaced
        (
            {"spec": {"containers": [{"name": "main", "resources": "odd"}]}},
            "spec.containers.0.resources",
            "odd",
        ),
    ],
)
def test_strategic_merge_patch_pod(patch: dict[str, Any], path: str, expected: Any) -> None:
    result = strategic_merge_patch(POD, patch, "Pod")
    if isinstance(expected, str) and expected.endswith("-absent"):
        assert expected.removesuffix("-absent") not in _at(result, path)
    else:
        assert _at(result, path) == expected


# Vectors from apimachinery's strategicpatch/patch_test.go, on containers (merge key "name")
# and finalizers (a set of primitives); "original" is the live object.
@pytest.mark.parametrize(
    ("original", "patch", "expected"),
    [
        pytest.param(
            _containers({"name": "1"}, {"name": "2", "value": "b"}, {"name": "3"}),
            _containers(
                {"name": "3", "value": "c"}, {"name": "1", "value": "a"}, {"name": "2", "other": "x"}
            ),
            _containers(
                {"name": "3", "value": "c"},
                {"name": "1", "value": "a"},
                {"name": "2", "value": "b", "other": "x"},
            ),
            id="preserve the order from the patch in a merging list",
        ),
        pytest.param(
            _containers({"name": "1"}, {"name": "2", "value": "b"}, {"name": "3"}),
            _containers({"name": "3", "value": "c"}, {"name": "1", "value": "a"}),
            _containers(
                {"name": "2", "value": "b"}, {"name": "3", "value": "c"}, {"name": "1", "value": "a"}
            ),
            id="preserve the order from the patch in a merging list 2",
        ),
        pytest.param(
            {"metadata": {"finalizers": ["1", "2", "3"]}},
            {"metadata": {"finalizers": ["3", "1"]}},
            {"metadata": {"finalizers": ["2", "3", "1"]}},
            id="preserve the order from the patch in a merging int list",
        ),
        pytest.param(
            {"metadata": {"finalizers": ["1", "2"]}},
            {"metadata": {"finalizers": ["2", "3"]}},
            {"metadata": {"finalizers": ["1", "2", "3"]}},
            id="unique scalars when merging lists",
        ),
        pytest.param(
            _containers(
                {"name": "1"}, {"name": "1"}, {"name": "2", "value": "a"}, {"name": "3"}, {"name": "3"}
            ),
            _containers({"name": "1", "$patch": "delete"}, {"name": "3", "$patch": "delete"}),
            _containers({"name": "2", "value": "a"}),
            id="delete all duplicate entries in a merging list",
        ),
        pytest.param(
            _containers({"name": "1"}, {"name": "2"}),
            {"spec": {"containers": [{"$patch": "replace"}]}},
            _containers(),
            id="delete all items from merging list",
        ),
        pytest.param(
            {"name": "1", "value": "1"},
            {"other": "a", "$patch": "replace"},
            {"other": "a"},
            id="add key and delete all keys from map",
        ),
        pytest.param(
            _containers({"name": "1", "other": "a"}, {"name": "2", "value": "2", "other": "b"}),
            {
                "spec": {
                    "$setElementOrder/containers": [
                        {"name": "4"},
                        {"name": "1"},
                        {"name": "2"},
                        {"name": "3"},
                    ],
                    "containers": [{"name": "4", "value": "4"}, {"name": "3", "value": "3"}],
                }
            },
            _containers(
                {"name": "4", "value": "4"},
                {"name": "1", "other": "a"},
                {"name": "2", "value": "2", "other": "b"},
                {"name": "3", "value": "3"},
            ),
            id="merge lists of maps",
        ),
        pytest.param(
            _containers({"name": "1"}, {"name": "3"}),
            {
                "spec": {
                    "$setElementOrder/containers": [{"name": "3"}, {"name": "2"}, {"name": "1"}],
                    "containers": [{"name": "3", "value": "3"}, {"name": "1", "value": "1"}],
                }
            },
            _containers({"name": "3", "value": "3"}, {"name": "1", "value": "1"}),
            id="$setElementOrder contains item that is not present in the list to be merged",
        ),
        pytest.param(
            {"metadata": {"finalizers": ["1", "3"]}},
            {"metadata": {"$setElementOrder/finalizers": ["3", "2", "1"]}},
            {"metadata": {"finalizers": ["3", "1"]}},
            id="$setElementOrder contains item that is not present in the int list to be merged",
        ),
        pytest.param(
            {"metadata": {"finalizers": ["1", "2", "3", "4"]}},
            {
                "metadata": {
                    "$setElementOrder/finalizers": ["1", "2"],
                    "$deleteFromPrimitiveList/finalizers": ["3"],
                }
            },
            {"metadata": {"finalizers": ["1", "2", "4"]}},
            id="delete items in lists of scalars",
        ),
        pytest.param(
            {"metadata": {"finalizers": ["1", "2", "3", "3", "4"]}},
            {
                "metadata": {
                    "$setElementOrder/finalizers": ["1", "2"],
                    "$deleteFromPrimitiveList/finalizers": ["3"],
                }
            },
            {"metadata": {"finalizers": ["1", "2", "4"]}},
            id="delete all duplicate items in lists of scalars",
        ),
        pytest.param(
            {"metadata": {"finalizers": ["1", "2", "3", "4"]}},
            {
                "metadata": {
                    "$setElementOrder/finalizers": ["1", "2", "4"],
                    "$deleteFromPrimitiveList/finalizers": ["3"],
                    "finalizers": ["4"],
                }
            },
            {"metadata": {"finalizers": ["1", "2", "4"]}},
            id="add and delete items in lists of scalars",
        ),
        pytest.param(
            {"name": "hi", **_containers({"name": "hello2"})},
            {
                "spec": {
                    "$setElementOrder/containers": [{"name": "hello"}, {"name": "doesntexist"}],
                    "containers": [{"name": "hello"}, {"$patch": "delete", "name": "doesntexist"}],
                }
            },
            {"name": "hi", **_containers({"name": "hello"}, {"name": "hello2"})},
            id="nested patch merge with empty list",
        ),
        pytest.param(
            {"name": "original-name", "value": "original-value", "other": "current-other"},
            {"name": "modified-name", "value": None},
            {"name": "modified-name", "other": "current-other"},
            id="defined null values should propagate removing original fields",
        ),
        pytest.param(
            {"spec": {"containers": [{"name": "1", "x": {"a": 1}}]}},
            {"spec": {"containers": [{"name": "2", "x": {"a": None, "b": 1}, "$retainKeys": ["x"]}]}},
            _containers({"name": "2", "x": {"b": 1}}, {"name": "1", "x": {"a": 1}}),
            id="new elements lose nulls and directives",
        ),
    ],
)
def test_strategic_merge_patch_upstream_vectors(
    original: dict[str, Any], patch: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert strategic_merge_patch(original, patch, "Pod") == expected


@pytest.mark.parametrize(
    ("kind", "original", "patch", "expected"),
    [
        (
            "Node",
            {
                "status": {
                    "conditions": [
                        {"type": "Ready", "status": "True"},
                        {"type": "DiskPressure", "status": "False"},
                    ]
                }
            },
            {"status": {"conditions": [{"type": "DiskPressure", "status": "True"}]}},
            {
                "status": {
                    "conditions": [
                        {"type": "Ready", "status": "True"},
                        {"type": "DiskPressure", "status": "True"},
                    ]
                }
            },
        ),
        (
            "Node",
            {
                "status": {
                    "addresses": [
                        {"type": "InternalIP", "address": "10.0.0.1"},
                        {"type": "Hostname", "address": "n1"},
                    ]
                }
            },
            {"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.2"}]}},
            {
                "status": {
                    "addresses": [
                        {"type": "InternalIP", "address": "10.0.0.2"},
                        {"type": "Hostname", "address": "n1"},
                    ]
                }
            },
        ),
        (
            "Node",
            {"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}], "podCIDRs": ["10.0.0.0/24"]}},
            {
                "spec": {
                    "taints": [{"key": "b", "effect": "NoSchedule"}],
                    "podCIDRs": ["10.0.0.0/24", "fd00::/64"],
                }
            },
            {
                "spec": {
                    "taints": [{"key": "b", "effect": "NoSchedule"}],
                    "podCIDRs": ["10.0.0.0/24", "fd00::/64"],
                }
            },
        ),
        (
            "Node",
            {"status": {"images": [{"names": ["a"]}]}},
            {"status": {"images": [{"names": ["b"]}]}},
            {"status": {"images": [{"names": ["b"]}]}},
        ),
        (
            "Service",
            {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 8443}]}},
            {"spec": {"ports": [{"port": 443, "targetPort": 9443}]}},
            {"spec": {"ports": [{"port": 80, "targetPort": 8080}, {"port": 443, "targetPort": 9443}]}},
        ),
        (
            "ServiceAccount",
            {"secrets": [{"name": "a"}], "imagePullSecrets": [{"name": "p1"}]},
            {"secrets": [{"name": "b"}], "imagePullSecrets": [{"name": "p2"}]},
            {"secrets": [{"name": "b"}, {"name": "a"}], "imagePullSecrets": [{"name": "p2"}]},
        ),
        (
            "PersistentVolumeClaim",
            {"status": {"phase": "Pending", "conditions": [{"type": "Resizing", "status": "True"}]}},
            {"status": {"phase": "Bound", "conditions": [{"type": "Resizing", "status": "False"}]}},
            {"status": {"phase": "Bound", "conditions": [{"type": "Resizing", "status": "False"}]}},
        ),
        (
            "Namespace",
            {"metadata": {"name": "ns"}, "spec": {"finalizers": ["kubernetes"]}},
            {"spec": {"finalizers": ["other"]}},
            {"metadata": {"name": "ns"}, "spec": {"finalizers": ["other"]}},
        ),
        (
            "ConfigMap",
            {"data": {"a": "1", "b": "2"}, "metadata": {"annotations": {"x": "y"}}},
            {"data": {"a": None, "c": "3"}, "metadata": {"annotations": {"z": "w"}}},
            {"data": {"b": "2", "c": "3"}, "metadata": {"annotations": {"x": "y", "z": "w"}}},
        ),
        (
            "Secret",
            {"data": {"k": "dg=="}, "type": "Opaque"},
            {"stringData": {"k2": "v"}},
            {"data": {"k": "dg=="}, "type": "Opaque", "stringData": {"k2": "v"}},
        ),
        ("Event", {"count": 1, "reason": "Started"}, {"count": 2}, {"count": 2, "reason": "Started"}),
        ("Pod", None, {"metadata": {"name": "x", "labels": None}}, {"metadata": {"name": "x"}}),
        ("Pod", {"a": 1}, {"$patch": "delete"}, {}),
    ],
)
def test_strategic_merge_patch_kinds(
    kind: str, original: dict[str, Any] | None, patch: dict[str, Any], expected: dict[str, Any]
) -> None:
    assert strategic_merge_patch(original, patch, kind) == expected


@pytest.mark.parametrize(
    ("original", "patch", "code", "message"),
    [
        (POD, {"spec": {"$foo": 1}}, 400, "unknown strategic merge patch directive: $foo"),
        (POD, {"metadata": {"labels": {"$patch": "merge"}}}, 400, "unknown patch type: merge"),
        (POD, {"spec": {"containers": [{"name": "main", "$patch": "bogus"}]}}, 400, "unknown patch type"),
        (POD, {"spec": {"containers": [{"$patch": "merge", "name": "x"}]}}, 400, "cannot yet be specified"),
        (POD, {"spec": {"$retainKeys": "containers"}}, 400, "invalid patch format of retainKeys"),
        (
            POD,
            {"spec": {"$retainKeys": ["volumes"], "containers": []}},
            400,
            "invalid patch format of retainKeys",
        ),
        (POD, {"metadata": {"$setElementOrder/finalizers": "a"}}, 400, "setElementOrder list"),
        (POD, {"spec": {"containers": [{"image": "x"}]}}, 422, "does not contain declared merge key: name"),
        (POD, {"spec": {"containers": [{"image": "x", "$patch": "delete"}]}}, 422, "declared merge key"),
        (POD, {"spec": {"containers": ["main"]}}, 422, "list element types are not identical"),
        (POD, {"metadata": {"finalizers": [["a"]]}}, 422, "list element types are not identical"),
        ({"metadata": {"finalizers": []}}, {"metadata": {"finalizers": [["a"]]}}, 422, "lists of lists"),
        (
            _containers({"name": "1"}, {"name": "3"}, {"name": "2"}),
            {
                "spec": {
                    "$setElementOrder/containers": [{"name": "1"}, {"name": "2"}, {"name": "3"}],
                    "containers": [{"name": "3"}, {"name": "1"}],
                }
            },
            422,
            "doesn't match $setElementOrder list",
        ),
        (
            {"metadata": {"finalizers": ["1", "3", "2"]}},
            {"metadata": {"$setElementOrder/finalizers": ["1", "2", "3"], "finalizers": ["3", "1"]}},
            422,
            "doesn't match",
        ),
        (POD, ["not", "a", "map"], 400, "cannot unmarshal array"),
    ],
)
def test_strategic_merge_patch_errors(original: Any, patch: Any, code: int, message: str) -> None:
    with pytest.raises(PatchError) as err:
        strategic_merge_patch(original, patch, "Pod")
    assert err.value.code == code
    assert message in str(err.value)


@pytest.mark.parametrize("kind", ["Notebook", "Workflow", "Deployment", ""])
def test_strategic_merge_patch_unknown_kind_is_415(kind: str) -> None:
    with pytest.raises(PatchError) as err:
        strategic_merge_patch({"spec": {}}, {"spec": {"a": 1}}, kind)
    assert err.value.code == 415
    assert str(err.value) == "strategic merge patch format is not supported"


def test_smp_kinds() -> None:
    assert {"Pod", "Node", "Service", "ConfigMap", "Secret", "Namespace", "Event"} <= SMP_KINDS
    assert {"PersistentVolumeClaim", "ServiceAccount"} <= SMP_KINDS


def test_patch_error_defaults_to_422() -> None:
    err = PatchError("nope")
    assert isinstance(err, ValueError)
    assert (err.code, err.message, str(err)) == (422, "nope", "nope")


# ---------------------------------------------------------------------------------------------
# Inputs are never mutated, results share nothing with them
# ---------------------------------------------------------------------------------------------

_SMP_CASES: list[dict[str, Any]] = [
    {
        "spec": {
            "containers": [
                {"name": "main", "env": [{"name": "A", "$patch": "delete"}, {"name": "Z", "value": "z"}]}
            ]
        }
    },
    {
        "spec": {
            "containers": [
                {"name": "x", "image": "x", "env": [{"name": "Q", "value": None}]},
                {"$patch": "replace"},
            ]
        }
    },
    {
        "metadata": {
            "$setElementOrder/finalizers": ["b", "c"],
            "$deleteFromPrimitiveList/finalizers": ["a"],
            "finalizers": ["c"],
        }
    },
    {
        "spec": {
            "volumes": [{"name": "home", "$retainKeys": ["name", "hostPath"], "hostPath": {"path": "/h"}}]
        }
    },
    {
        "metadata": {"labels": {"$patch": "replace", "only": "me"}},
        "status": {"conditions": [{"type": "Ready", "status": "False"}]},
    },
    {"spec": {"newField": {"deep": {"er": [1, 2]}}}},
]


@pytest.mark.parametrize("patch", _SMP_CASES)
def test_strategic_merge_patch_leaves_inputs_alone(patch: dict[str, Any]) -> None:
    target = copy.deepcopy(POD)
    before = copy.deepcopy((target, patch))
    result = strategic_merge_patch(target, patch, "Pod")
    assert (target, patch) == before
    _scribble(result)
    assert (target, patch) == before


@pytest.mark.parametrize("patch", _SMP_CASES)
def test_merge_patch_leaves_inputs_alone(patch: dict[str, Any]) -> None:
    target = copy.deepcopy(POD)
    before = copy.deepcopy((target, patch))
    result = merge_patch(target, patch)
    assert (target, patch) == before
    _scribble(result)
    assert (target, patch) == before


def _scribble(value: Any) -> None:
    """Mutate every container in ``value`` in place."""
    if isinstance(value, dict):
        for key in list(value):
            _scribble(value[key])
        value["scribbled"] = True
    elif isinstance(value, list):
        for item in value:
            _scribble(item)
        value.append("scribbled")


# ---------------------------------------------------------------------------------------------
# apply_patch: the server-side apply stand-in
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "patch", "kind", "expected"),
    [
        (None, {"kind": "Pod", "metadata": {"name": "p"}}, "Pod", {"kind": "Pod", "metadata": {"name": "p"}}),
        (
            None,
            {"kind": "Notebook", "spec": {"a": [1]}},
            "Notebook",
            {"kind": "Notebook", "spec": {"a": [1]}},
        ),
        (
            _containers({"name": "a", "image": "1"}, {"name": "b"}),
            _containers({"name": "a", "image": "2"}),
            "Pod",
            _containers({"name": "a", "image": "2"}, {"name": "b"}),
        ),
        (
            {"spec": {"list": [{"name": "a"}, {"name": "b"}], "keep": 1}},
            {"spec": {"list": [{"name": "a", "x": 1}]}},
            "Notebook",
            {"spec": {"list": [{"name": "a", "x": 1}], "keep": 1}},
        ),
        ({"spec": {"a": 1}}, {"spec": {"a": None}}, None, {"spec": {}}),
    ],
)
def test_apply_patch(target: Any, patch: Any, kind: str | None, expected: Any) -> None:
    before = copy.deepcopy((target, patch))
    result = apply_patch(target, patch, kind)
    assert result == expected
    _scribble(result)
    assert (target, patch) == before
