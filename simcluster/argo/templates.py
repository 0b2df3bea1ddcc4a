"""Pure template work: ``{{...}}`` substitution, input parameters, DAG dependencies and step pods."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

from ..runtimes.base import ANNOTATION_EXIT_AFTER, ANNOTATION_EXIT_CODE
from .naming import ANNOTATION_NODE_ID, ANNOTATION_NODE_NAME, LABEL_COMPLETED, LABEL_WORKFLOW

__all__ = [
    "TemplateError",
    "build_pod",
    "dependencies",
    "evaluate_when",
    "expand_items",
    "input_parameters",
    "item_label",
    "item_scope",
    "kind_of",
    "script_argv",
    "substitute",
]

_TAG = re.compile(r"{{\s*([^{}=][^{}]*?)\s*}}")
# a script's source goes to its interpreter as a command-line program; these take it with another flag
_SOURCE_FLAG = {"node": "-e", "nodejs": "-e", "perl": "-e", "ruby": "-e"}
LEAF_KINDS = ("container", "script")


class TemplateError(ValueError):
    """A workflow names something it does not define; the message is what Argo's node says."""


def kind_of(template: Mapping[str, Any]) -> str:
    """Which of Argo's template types ``template`` is: container, script, dag, steps, suspend or ''."""
    for kind in ("container", "script", "dag", "steps", "suspend"):
        if template.get(kind) is not None:
            return kind
    return ""


def substitute(value: Any, scope: Mapping[str, str]) -> Any:
    """``value`` with every ``{{name}}`` found in ``scope`` replaced; unknown tags stay as they are."""
    if isinstance(value, str):
        return _TAG.sub(lambda m: scope.get(m.group(1), m.group(0)), value)
    if isinstance(value, list):
        return [substitute(v, scope) for v in value]
    if isinstance(value, dict):
        return {k: substitute(v, scope) for k, v in value.items()}
    return value


def _text(value: Any) -> str:
    """A parameter value as Argo holds it: a string (YAML numbers and objects become their JSON)."""
    return value if isinstance(value, str) else json.dumps(value)


def input_parameters(
    template: Mapping[str, Any], arguments: Mapping[str, Any] | None, scope: Mapping[str, str]
) -> dict[str, str]:
    """The template's input parameters: the caller's arguments, else the template's value or default."""
    given = {
        str(p["name"]): _text(substitute(p.get("value", ""), scope))
        for p in (arguments or {}).get("parameters") or []
        if "value" in p or "valueFrom" not in p
    }
    values: dict[str, str] = {}
    for param in (template.get("inputs") or {}).get("parameters") or []:
        name = str(param["name"])
        if name in given:
            values[name] = given[name]
        elif "value" in param:
            values[name] = _text(substitute(param["value"], scope))
        elif "default" in param:
            values[name] = _text(substitute(param["default"], scope))
        else:
            raise TemplateError(f"inputs.parameters.{name} was not supplied")
    return values


_DEPENDS_TERM = re.compile(
    r"^\(?\s*([A-Za-z0-9_-]+)(?:\.(Succeeded|Failed|Errored|Skipped|Daemoned|AnySucceeded|AllFailed))?\s*\)?$"
)


def dependencies(task: Mapping[str, Any]) -> dict[str, str]:
    """The tasks ``task`` waits for, each with the result it needs (``Succeeded`` or another phase).

    ``dependencies`` lists names; ``depends`` is read when it is a conjunction of ``name`` or
    ``name.Phase`` terms, which is what Hera writes for ``a >> b``; anything richer is refused.
    """
    out = {str(name): "" for name in task.get("dependencies") or []}
    depends = task.get("depends")
    if depends:
        for term in str(depends).split("&&"):
            match = _DEPENDS_TERM.match(term.strip())
            if match is None:
                raise TemplateError(
                    f"depends {depends!r}: simcluster reads only terms joined by && "
                    "(name or name.Succeeded, .Failed, ...)"
                )
            out[match.group(1)] = match.group(2) or ""
    return out


def expand_items(caller: Mapping[str, Any], scope: Mapping[str, str]) -> list[Any] | None:
    """The items a task or step fans out over (``withItems``, ``withParam``, ``withSequence``), or None."""
    if caller.get("withItems") is not None:
        items = substitute(caller["withItems"], scope)
        if not isinstance(items, list):
            raise TemplateError("withItems must be a list")
        return items
    if caller.get("withParam") is not None:
        text = str(substitute(str(caller["withParam"]), scope))
        try:
            items = json.loads(text)
        except ValueError:
            items = None
        if not isinstance(items, list):
            raise TemplateError(f"withParam value could not be parsed as a JSON list: {text}")
        return items
    sequence = caller.get("withSequence")
    if sequence is not None:
        values = {k: str(substitute(str(v), scope)) for k, v in sequence.items()}
        try:
            start = int(values.get("start", "0"))
            end = int(values["end"]) if "end" in values else start + int(values.get("count", "0")) - 1
        except ValueError as exc:
            raise TemplateError(f"withSequence {sequence!r}: {exc}") from exc
        step = 1 if end >= start else -1
        return [str(i) for i in range(start, end + step, step)]
    return None


def item_label(item: Any) -> str:
    """An item as it appears in node names and ``{{item}}``: strings as they are, the rest as JSON."""
    return item if isinstance(item, str) else json.dumps(item, separators=(",", ":"), sort_keys=True)


def item_scope(item: Any) -> dict[str, str]:
    """``{{item}}``, and ``{{item.key}}`` for each key of a map item."""
    scope = {"item": item_label(item)}
    if isinstance(item, dict):
        scope.update({f"item.{k}": _text(v) for k, v in item.items()})
    return scope


_COMPARISONS = ("==", "!=", ">=", "<=", ">", "<")


def evaluate_when(text: str) -> bool:
    """Argo's ``when`` for what Hera pipelines write: comparisons joined by ``&&`` and ``||``.

    Operands are compared as numbers when both are numbers, else as strings without their quotes;
    a term may also be ``true`` or ``false``. Anything else is refused.
    """
    return any(all(_term(t, text) for t in part.split("&&")) for part in text.split("||"))


def _operand(raw: str) -> str:
    value = raw.strip().strip("()").strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def _term(term: str, text: str) -> bool:
    bare = term.strip().strip("()").strip()
    if bare.lower() in {"true", "false"}:
        return bare.lower() == "true"
    for op in _COMPARISONS:
        if op in bare:
            lhs, rhs = (_operand(side) for side in bare.split(op, 1))
            try:
                a, b = float(lhs), float(rhs)
            except ValueError:
                if op in {"==", "!="}:
                    return (lhs == rhs) == (op == "==")
                raise TemplateError(f"when '{text}': {lhs!r} {op} {rhs!r} compares strings") from None
            return {"==": a == b, "!=": a != b, ">=": a >= b, "<=": a <= b, ">": a > b, "<": a < b}[op]
    raise TemplateError(f"when '{text}': simcluster evaluates only comparisons joined by && or ||")


def script_argv(script: Mapping[str, Any]) -> list[str]:
    """The command that runs a script template: its interpreter with the source as a program text.

    Argo writes the source to /argo/staging/script and passes that path; simcluster has no init
    container to write it, so the source goes on the command line (``-c``, or ``-e`` for node).
    """
    command = [str(c) for c in script.get("command") or ["sh"]]
    flag = _SOURCE_FLAG.get(command[0].rsplit("/", 1)[-1], "-c")
    return [*command, flag, str(script.get("source") or ""), *[str(a) for a in script.get("args") or []]]


def build_pod(
    workflow: Mapping[str, Any],
    template: Mapping[str, Any],
    *,
    node_name: str,
    node_id: str,
    name: str,
    simulated: bool = False,
) -> dict[str, Any]:
    """The pod that runs a container or script template (already substituted), as Argo makes it.

    Argo's pods also run ``init`` and ``wait`` containers (argoexec); here only ``main`` runs.
    """
    meta, spec = workflow["metadata"], workflow.get("spec") or {}
    kind = kind_of(template)
    if kind not in LEAF_KINDS:
        raise TemplateError(f"template {template.get('name')!r} is not a container or script template")
    main = {k: v for k, v in template[kind].items() if k not in {"source", "name"}}
    if kind == "script":
        main["command"] = script_argv(template[kind])
        main.pop("args", None)
    main["name"] = "main"
    main.setdefault("image", "argoproj/argosay:v2")
    main["env"] = [
        *(main.get("env") or []),
        {"name": "ARGO_CONTAINER_NAME", "value": "main"},
        {"name": "ARGO_NODE_ID", "value": node_id},
        {"name": "ARGO_WORKFLOW_NAME", "value": meta["name"]},
    ]
    tmeta = template.get("metadata") or {}
    labels = {
        **(tmeta.get("labels") or {}),
        LABEL_WORKFLOW: meta["name"],
        LABEL_COMPLETED: "false",
    }
    annotations = {
        **(tmeta.get("annotations") or {}),
        ANNOTATION_NODE_ID: node_id,
        ANNOTATION_NODE_NAME: node_name,
        "workflows.argoproj.io/template": json.dumps(template, separators=(",", ":"), sort_keys=True),
    }
    if simulated:  # the simulated runtime runs nothing: the step "ends" well at once
        annotations.setdefault(ANNOTATION_EXIT_AFTER, "0.1")
        annotations.setdefault(ANNOTATION_EXIT_CODE, "0")
    pod_spec: dict[str, Any] = {
        "restartPolicy": "Never",
        "containers": [main],
    }
    for key, source in (
        ("serviceAccountName", template.get("serviceAccountName") or spec.get("serviceAccountName")),
        ("nodeSelector", template.get("nodeSelector") or spec.get("nodeSelector")),
        ("tolerations", template.get("tolerations") or spec.get("tolerations")),
        ("affinity", template.get("affinity") or spec.get("affinity")),
        ("securityContext", template.get("securityContext") or spec.get("securityContext")),
        ("priorityClassName", template.get("priorityClassName") or spec.get("priorityClassName")),
        ("schedulerName", template.get("schedulerName") or spec.get("schedulerName")),
        ("activeDeadlineSeconds", template.get("activeDeadlineSeconds")),
    ):
        if source:
            pod_spec[key] = source
    volumes = [*(spec.get("volumes") or []), *(template.get("volumes") or [])]
    if volumes:
        pod_spec["volumes"] = volumes
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": name,
            "namespace": meta["namespace"],
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": "argoproj.io/v1alpha1",
                    "kind": "Workflow",
                    "name": meta["name"],
                    "uid": meta["uid"],
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": pod_spec,
    }
