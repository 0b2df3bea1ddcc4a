"""The workflow controller's pure parts: Argo's names, substitution, dependencies and one pass."""

from __future__ import annotations

from typing import Any

import pytest

from simcluster.argo.engine import advance
from simcluster.argo.naming import fnv32a, node_id, pod_name
from simcluster.argo.templates import (
    TemplateError,
    dependencies,
    evaluate_when,
    expand_items,
    input_parameters,
    item_label,
    item_scope,
    script_argv,
    substitute,
)


@pytest.mark.parametrize(
    ("text", "value"),
    [("", 0x811C9DC5), ("a", 0xE40C292C), ("foobar", 0xBF9CF968)],  # FNV-1a test vectors
)
def test_fnv32a_matches_the_reference_vectors(text: str, value: int) -> None:
    assert fnv32a(text) == value


def test_node_ids_and_v2_pod_names() -> None:
    assert node_id("wf", "wf") == "wf" and pod_name("wf", "wf", "main") == "wf"
    assert node_id("wf", "wf.hello") == f"wf-{fnv32a('wf.hello')}"
    assert pod_name("wf", "wf.hello", "say") == f"wf-say-{fnv32a('wf.hello')}"
    assert pod_name("wf", "wf.inline", "say") == f"wf-{fnv32a('wf.inline')}"
    long = pod_name("w" * 300, "w.x", "t")
    assert long.startswith("w" * 242 + "-") and len(long) <= 253


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("{{inputs.parameters.x}}", "1"),
        ("a {{ inputs.parameters.x }} b", "a 1 b"),
        ("{{unknown}}", "{{unknown}}"),
        ("{{=expression}}", "{{=expression}}"),
        (["{{workflow.name}}", {"k": "{{workflow.name}}"}], ["wf", {"k": "wf"}]),
        (3, 3),
    ],
)
def test_substitute(value: Any, expected: Any) -> None:
    assert substitute(value, {"inputs.parameters.x": "1", "workflow.name": "wf"}) == expected


@pytest.mark.parametrize(
    ("task", "expected"),
    [
        ({"dependencies": ["a", "b"]}, {"a": "", "b": ""}),
        ({"depends": "a && b.Failed"}, {"a": "", "b": "Failed"}),
        ({"depends": "(a.Succeeded)"}, {"a": "Succeeded"}),
        ({}, {}),
    ],
)
def test_dependencies(task: dict[str, Any], expected: dict[str, str]) -> None:
    assert dependencies(task) == expected


def test_dependencies_refuse_what_they_cannot_read() -> None:
    with pytest.raises(TemplateError, match="only terms joined by &&"):
        dependencies({"depends": "a || b"})


def test_input_parameters_take_arguments_then_values_then_defaults() -> None:
    template = {
        "inputs": {"parameters": [{"name": "a"}, {"name": "b", "default": "2"}, {"name": "c", "value": 3}]}
    }
    args = {"parameters": [{"name": "a", "value": "{{workflow.parameters.p}}"}]}
    assert input_parameters(template, args, {"workflow.parameters.p": "x"}) == {"a": "x", "b": "2", "c": "3"}
    with pytest.raises(TemplateError, match=r"inputs\.parameters\.a was not supplied"):
        input_parameters(template, None, {})


def test_script_argv_puts_the_source_after_the_interpreter_flag() -> None:
    assert script_argv({"command": ["python"], "source": "print(1)"}) == ["python", "-c", "print(1)"]
    assert script_argv({"command": ["node"], "source": "1", "args": ["x"]}) == ["node", "-e", "1", "x"]


WORKFLOW = {
    "metadata": {"name": "wf", "namespace": "default", "uid": "u1"},
    "spec": {
        "entrypoint": "main",
        "templates": [
            {
                "name": "main",
                "steps": [[{"name": "one", "template": "echo"}], [{"name": "two", "template": "echo"}]],
            },
            {"name": "echo", "container": {"image": "busybox", "command": ["true"]}},
        ],
    },
}


def pod(phase: str, code: int | None = None) -> dict[str, Any]:
    state = {"terminated": {"exitCode": code}} if code is not None else {"running": {}}
    return {
        "spec": {"nodeName": "n1"},
        "status": {"phase": phase, "containerStatuses": [{"name": "main", "state": state}]},
    }


def test_steps_run_group_after_group() -> None:
    first = advance(WORKFLOW, {}, "t0", lambda p: None)
    assert first.status["phase"] == "Running"
    (created,) = first.pods
    one = node_id("wf", "wf[0].one")
    assert created["metadata"]["name"] == pod_name("wf", "wf[0].one", "echo")
    assert created["metadata"]["annotations"]["workflows.argoproj.io/node-id"] == one
    assert created["spec"]["containers"][0]["name"] == "main"
    assert created["spec"]["restartPolicy"] == "Never"
    again = advance({**WORKFLOW, "status": first.status}, {one: pod("Running")}, "t1", lambda p: None)
    assert again.pods == [] and again.status["nodes"][one]["phase"] == "Running"
    second = advance({**WORKFLOW, "status": again.status}, {one: pod("Succeeded", 0)}, "t2", lambda p: None)
    assert [p["metadata"]["annotations"]["workflows.argoproj.io/node-id"] for p in second.pods] == [
        node_id("wf", "wf[1].two")
    ]
    assert second.status["nodes"][one]["outputs"] == {"exitCode": "0"}


def test_a_deleted_pod_is_an_error() -> None:
    first = advance(WORKFLOW, {}, "t0", lambda p: None)
    gone = advance({**WORKFLOW, "status": first.status}, {}, "t1", lambda p: None)
    assert gone.status["phase"] == "Failed"
    assert gone.status["nodes"][node_id("wf", "wf[0].one")]["message"] == "pod deleted"


def test_an_undefined_template_errors_the_workflow() -> None:
    broken = {**WORKFLOW, "spec": {**WORKFLOW["spec"], "entrypoint": "nope"}}
    result = advance(broken, {}, "t0", lambda p: None)
    assert (result.status["phase"], result.status["message"]) == ("Error", "templates.nope not found")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("heads == heads", True),
        ("heads == tails", False),
        ("'a b' != \"a b\"", False),
        ("3 > 10", False),
        ("3.5 >= 3 && 1 < 2", True),
        ("false || 2 == 2", True),
        ("true", True),
    ],
)
def test_evaluate_when(text: str, expected: bool) -> None:
    assert evaluate_when(text) is expected


def test_when_refuses_what_it_cannot_read() -> None:
    with pytest.raises(TemplateError, match="only comparisons"):
        evaluate_when("a =~ b")


@pytest.mark.parametrize(
    ("caller", "items"),
    [
        ({"withItems": ["a", 1, {"k": "v"}]}, ["a", 1, {"k": "v"}]),
        ({"withParam": "{{tasks.t.outputs.result}}"}, [1, 2]),
        ({"withSequence": {"count": "3"}}, ["0", "1", "2"]),
        ({"withSequence": {"start": "5", "end": "3"}}, ["5", "4", "3"]),
        ({}, None),
    ],
)
def test_expand_items(caller: dict[str, Any], items: list[Any] | None) -> None:
    assert expand_items(caller, {"tasks.t.outputs.result": "[1, 2]"}) == items


def test_item_scope_and_labels() -> None:
    assert item_scope({"k": "v", "n": 1}) == {"item": '{"k":"v","n":1}', "item.k": "v", "item.n": "1"}
    assert item_label("x") == "x" and item_label(2) == "2"


FANOUT = {
    "metadata": {"name": "fan", "namespace": "default", "uid": "u2"},
    "spec": {
        "entrypoint": "main",
        "templates": [
            {
                "name": "main",
                "dag": {
                    "tasks": [
                        {
                            "name": "each",
                            "template": "echo",
                            "withItems": ["a", "b"],
                            "arguments": {"parameters": [{"name": "x", "value": "{{item}}"}]},
                        },
                        {
                            "name": "never",
                            "template": "echo",
                            "when": "1 == 2",
                            "arguments": {"parameters": [{"name": "x", "value": "n"}]},
                        },
                        {
                            "name": "after",
                            "template": "echo",
                            "depends": "never",
                            "arguments": {"parameters": [{"name": "x", "value": "z"}]},
                        },
                    ]
                },
            },
            {
                "name": "echo",
                "inputs": {"parameters": [{"name": "x"}]},
                "container": {"image": "busybox", "command": ["echo", "{{inputs.parameters.x}}"]},
            },
        ],
    },
}


def test_items_fan_out_and_a_false_when_skips_without_blocking_dependents() -> None:
    first = advance(FANOUT, {}, "t0", lambda p: None)
    commands = sorted(p["spec"]["containers"][0]["command"][1] for p in first.pods)
    assert commands == ["a", "b", "z"]  # "never" is skipped, so "after" may start
    nodes = {n["displayName"]: n for n in first.status["nodes"].values()}
    assert nodes["each"]["type"] == "TaskGroup" and len(nodes["each"]["children"]) == 2
    assert nodes["each(0:a)"]["name"] == "fan.each(0:a)"
    assert (nodes["never"]["phase"], nodes["never"]["message"]) == (
        "Skipped",
        "when '1 == 2' evaluated false",
    )
