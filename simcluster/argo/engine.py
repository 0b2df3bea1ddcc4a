"""One pass of the workflow controller over one workflow: its next status and the pods to create.

Pure: it reads the workflow and its pods and returns what to write. Argo's node model is kept:
the root node is named after the workflow, DAG tasks are ``<dag node>.<task>``, step groups
``<steps node>[i]`` and their steps ``<steps node>[i].<step>``, retry attempts ``<node>(n)``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from .naming import node_id, pod_name
from .templates import (
    LEAF_KINDS,
    TemplateError,
    build_pod,
    dependencies,
    evaluate_when,
    expand_items,
    input_parameters,
    item_label,
    item_scope,
    kind_of,
    substitute,
)

__all__ = ["DONE", "Pass", "advance"]

DONE = frozenset({"Succeeded", "Failed", "Error", "Skipped", "Omitted"})
_FAILED = frozenset({"Failed", "Error"})
_NODE_TYPES = {"container": "Pod", "script": "Pod", "dag": "DAG", "steps": "Steps"}


@dataclass
class Pass:
    """What one pass decided: the workflow's new status, the pods to create and those to delete."""

    status: dict[str, Any]
    pods: list[dict[str, Any]] = field(default_factory=list)
    delete: list[str] = field(default_factory=list)

    @property
    def done(self) -> bool:
        return self.status.get("phase") in DONE


def advance(
    workflow: Mapping[str, Any],
    pods: Mapping[str, Mapping[str, Any]],
    now: str,
    result_of: Callable[[Mapping[str, Any]], str | None],
    *,
    simulated: bool = False,
) -> Pass:
    """Move ``workflow`` on: ``pods`` are its pods by node id, ``result_of(pod)`` a pod's stdout."""
    return _Execution(workflow, pods, now, result_of, simulated).run()


class _Execution:
    def __init__(
        self,
        workflow: Mapping[str, Any],
        pods: Mapping[str, Mapping[str, Any]],
        now: str,
        result_of: Callable[[Mapping[str, Any]], str | None],
        simulated: bool,
    ) -> None:
        self.wf = workflow
        self.name = str(workflow["metadata"]["name"])
        self.spec = workflow.get("spec") or {}
        self.status: dict[str, Any] = json.loads(json.dumps(workflow.get("status") or {}))
        self.nodes: dict[str, dict[str, Any]] = self.status.setdefault("nodes", {})
        self.pods = pods
        self.now = now
        self.result_of = result_of
        self.simulated = simulated
        self.suspended = bool(self.spec.get("suspend"))
        self.templates: dict[str, dict[str, Any]] = {
            str(t.get("name")): t for t in self.spec.get("templates") or []
        }
        self.created: list[dict[str, Any]] = []
        self._before = frozenset(self.nodes)  # nodes a former pass made: their pods were created then
        self._started: set[str] = set()  # nodes whose pods this pass creates
        meta = workflow["metadata"]
        self.scope: dict[str, str] = {
            "workflow.name": self.name,
            "workflow.namespace": str(meta.get("namespace") or ""),
            "workflow.uid": str(meta.get("uid") or ""),
            "workflow.serviceAccountName": str(self.spec.get("serviceAccountName") or "default"),
        }
        for param in (self.spec.get("arguments") or {}).get("parameters") or []:
            value = param.get("value", param.get("default", ""))
            self.scope[f"workflow.parameters.{param['name']}"] = (
                value if isinstance(value, str) else json.dumps(value)
            )

    # ------------------------------------------------------------------ the workflow

    def run(self) -> Pass:
        status = self.status
        if not status.get("phase"):
            status.update(phase="Running", startedAt=self.now)
        if status["phase"] in DONE:
            return Pass(status)
        shutdown = self.spec.get("shutdown")
        if shutdown:
            return self._shut_down(str(shutdown))
        try:
            entry = str(self.spec.get("entrypoint") or "")
            root = self._run(entry, self.name, self.spec.get("arguments"), "", dict(self.scope), self.name)
        except TemplateError as err:
            status.update(phase="Error", message=str(err), finishedAt=self.now)
            return Pass(status, self.created)
        if root["phase"] in DONE:
            status.update(phase=root["phase"], finishedAt=self.now)
            if root.get("message"):
                status["message"] = root["message"]
            status["conditions"] = [
                {"type": "PodRunning", "status": "False"},
                {"type": "Completed", "status": "True"},
            ]
        leaves = [n for n in self.nodes.values() if n.get("type") == "Pod"]
        done = sum(1 for n in leaves if n["phase"] == "Succeeded")
        status["progress"] = f"{done}/{len(leaves)}"
        return Pass(status, self.created)

    def _shut_down(self, strategy: str) -> Pass:
        """``stop`` or ``terminate``: running pods are deleted, unfinished nodes fail, and so does the run."""
        message = f"workflow shutdown with strategy: {strategy}"
        delete = []
        for nid, node in self.nodes.items():
            if node["phase"] in DONE:
                continue
            pod = self.pods.get(nid)
            if pod is not None:
                delete.append(str(pod["metadata"]["name"]))
            self._finish(node, "Failed", message)
        self.status.update(phase="Failed", finishedAt=self.now, message=f"Stopped with strategy '{strategy}'")
        self.status["conditions"] = [
            {"type": "PodRunning", "status": "False"},
            {"type": "Completed", "status": "True"},
        ]
        return Pass(self.status, [], delete)

    # ------------------------------------------------------------------ nodes

    def _node(self, name: str, template: str, type_: str, boundary: str, display: str) -> dict[str, Any]:
        nid = node_id(self.name, name)
        node = self.nodes.get(nid)
        if node is None:
            node = {
                "id": nid,
                "name": name,
                "displayName": display,
                "type": type_,
                "templateName": template,
                "templateScope": f"local/{self.name}",
                "phase": "Running" if type_ not in {"Pod"} else "Pending",
                "startedAt": self.now,
            }
            if boundary:
                node["boundaryID"] = boundary
            self.nodes[nid] = node
        return node

    def _finish(self, node: dict[str, Any], phase: str, message: str | None = None) -> dict[str, Any]:
        if node.get("phase") == phase and node.get("finishedAt"):
            return node  # ended in an earlier pass: keep its time
        node["phase"] = phase
        node["finishedAt"] = self.now
        if message:
            node["message"] = message
        if node.get("type") == "Pod":
            node["progress"] = "1/1" if phase == "Succeeded" else "0/1"
        return node

    @staticmethod
    def _link(parent: dict[str, Any], child: dict[str, Any]) -> None:
        children = parent.setdefault("children", [])
        if child["id"] not in children:
            children.append(child["id"])

    def _template(self, name: str) -> dict[str, Any]:
        template = self.templates.get(name)
        if template is None:
            raise TemplateError(f"templates.{name} not found")
        return template

    def _run(
        self,
        template_name: str,
        name: str,
        arguments: Mapping[str, Any] | None,
        boundary: str,
        scope: dict[str, str],
        display: str,
    ) -> dict[str, Any]:
        """The node ``name`` running ``template_name``, moved on as far as it goes now."""
        template = self._template(template_name)
        kind = kind_of(template)
        if kind not in _NODE_TYPES:
            raise TemplateError(
                f"template {template_name!r}: simcluster runs container, script, dag and steps"
            )
        nid = node_id(self.name, name)
        if nid in self.nodes and self.nodes[nid]["phase"] in DONE:
            return self.nodes[nid]
        inputs = input_parameters(template, arguments, scope)
        local = {**self.scope, **{f"inputs.parameters.{k}": v for k, v in inputs.items()}}
        retry = template.get("retryStrategy")
        node_type = "Retry" if retry is not None else _NODE_TYPES[kind]
        if node_type == "Pod" and nid not in self.nodes and self.suspended:
            return {"id": nid, "phase": "Pending"}  # a suspended workflow starts nothing new
        node = self._node(name, template_name, node_type, boundary, display)
        if inputs:
            node["inputs"] = {"parameters": [{"name": k, "value": v} for k, v in inputs.items()]}
        if retry is not None:
            return self._retry(node, template, retry, local, boundary)
        return self._execute(node, template, kind, local)

    def _execute(
        self, node: dict[str, Any], template: Mapping[str, Any], kind: str, scope: dict[str, str]
    ) -> dict[str, Any]:
        if kind in LEAF_KINDS:
            return self._leaf(node, template, kind, scope)
        if kind == "dag":
            return self._dag(node, template, scope)
        return self._steps(node, template, scope)

    def _retry(
        self,
        node: dict[str, Any],
        template: Mapping[str, Any],
        retry: Mapping[str, Any],
        scope: dict[str, str],
        boundary: str,
    ) -> dict[str, Any]:
        limit_text = str(substitute(str(retry.get("limit", "")), scope)).strip()
        try:
            limit = int(limit_text) if limit_text else 10**9  # no limit: Argo retries for ever
        except ValueError as exc:
            raise TemplateError(f"retryStrategy.limit {limit_text!r} is not an integer") from exc
        once = {k: v for k, v in template.items() if k != "retryStrategy"}
        kind = kind_of(once)
        while True:
            attempts = node.get("children") or []
            if attempts:
                last = self.nodes[attempts[-1]]
                if last["phase"] not in DONE:
                    self._execute(last, once, kind, scope)
                if last["phase"] == "Succeeded":
                    node["outputs"] = last.get("outputs") or {}
                    return self._finish(node, "Succeeded")
                if last["phase"] not in DONE:
                    node["phase"] = "Running"
                    return node
                if len(attempts) > limit:
                    if last.get("outputs"):
                        node["outputs"] = last["outputs"]
                    return self._finish(node, last["phase"], "No more retries left")
            n = len(attempts)
            name = f"{node['name']}({n})"
            aid = node_id(self.name, name)
            if self.suspended and aid not in self.nodes:
                return node
            kind_type = _NODE_TYPES[kind]
            attempt = self._node(
                name, str(template.get("name")), kind_type, boundary, f"{node['displayName']}({n})"
            )
            if node.get("inputs"):
                attempt["inputs"] = node["inputs"]
            self._link(node, attempt)
            self._execute(attempt, once, kind, scope)
            if attempt["phase"] not in DONE:
                node["phase"] = "Running"
                return node

    # ------------------------------------------------------------------ pods

    def _leaf(
        self, node: dict[str, Any], template: Mapping[str, Any], kind: str, scope: dict[str, str]
    ) -> dict[str, Any]:
        pod = self.pods.get(node["id"])
        if pod is None:
            if node["id"] in self._started:
                return node
            if node["id"] in self._before:
                return self._finish(node, "Error", "pod deleted")
            resolved = substitute(dict(template), scope)
            name = pod_name(self.name, node["name"], str(template.get("name")))
            self.created.append(
                build_pod(
                    self.wf,
                    resolved,
                    node_name=node["name"],
                    node_id=node["id"],
                    name=name,
                    simulated=self.simulated,
                )
            )
            self._started.add(node["id"])
            node["phase"] = "Pending"
            node["progress"] = "0/1"
            return node
        spec, status = pod.get("spec") or {}, pod.get("status") or {}
        if spec.get("nodeName"):
            node["hostNodeName"] = spec["nodeName"]
        phase = status.get("phase", "Pending")
        main: Mapping[str, Any] = next(
            (cs for cs in status.get("containerStatuses") or [] if cs.get("name") == "main"), {}
        )
        state = main.get("state") or {}
        if phase == "Pending":
            node["phase"] = "Pending"
            waiting = state.get("waiting") or {}
            unscheduled = next(
                (
                    c
                    for c in status.get("conditions") or []
                    if c.get("type") == "PodScheduled" and c.get("status") == "False"
                ),
                None,
            )
            message = waiting.get("message") or (unscheduled or {}).get("message")
            if message:
                node["message"] = message
            return node
        if phase == "Running":
            node["phase"] = "Running"
            node.pop("message", None)
            return node
        ended = state.get("terminated") or {}
        code = ended.get("exitCode")
        outputs: dict[str, Any] = {}
        if code is not None:
            outputs["exitCode"] = str(code)
        if phase == "Succeeded":
            if kind == "script":
                result = self.result_of(pod)
                if result is not None:
                    outputs["result"] = result
            if outputs:
                node["outputs"] = outputs
            node.pop("message", None)
            return self._finish(node, "Succeeded")
        if outputs:
            node["outputs"] = outputs
        waiting = state.get("waiting") or {}
        message = f"Error (exit code {code})" if code is not None else waiting.get("message") or "pod failed"
        return self._finish(node, "Failed", message)

    # ------------------------------------------------------------------ DAGs and steps

    def _outputs_scope(self, prefix: str, name: str, node: Mapping[str, Any]) -> dict[str, str]:
        out = {f"{prefix}.{name}.id": node["id"], f"{prefix}.{name}.status": node["phase"]}
        for key, value in (node.get("outputs") or {}).items():
            if key in {"result", "exitCode"}:
                out[f"{prefix}.{name}.outputs.{key}"] = str(value)
            elif key == "parameters":
                for p in value:
                    out[f"{prefix}.{name}.outputs.parameters.{p['name']}"] = str(p.get("value", ""))
        return out

    def _dag(
        self, node: dict[str, Any], template: Mapping[str, Any], scope: dict[str, str]
    ) -> dict[str, Any]:
        tasks = {str(t["name"]): t for t in (template.get("dag") or {}).get("tasks") or []}
        needs = {name: dependencies(task) for name, task in tasks.items()}
        for name, deps in needs.items():
            for dep in deps:
                if dep not in tasks:
                    raise TemplateError(
                        f"templates.{template.get('name')}.tasks.{name} dependency '{dep}' not defined"
                    )
        local = dict(scope)
        states: dict[str, str] = {}
        progress = True
        while progress:  # a task that ends now may let its dependents start in the same pass
            progress = False
            for name, task in tasks.items():
                if name in states and states[name] in DONE:
                    continue
                child_name = f"{node['name']}.{name}"
                cid = node_id(self.name, child_name)
                if cid in self.nodes and self.nodes[cid]["phase"] in DONE:
                    states[name] = self.nodes[cid]["phase"]
                    local.update(self._outputs_scope("tasks", name, self.nodes[cid]))
                    progress = True
                    continue
                deps = needs[name]
                if any(states.get(d) not in DONE for d in deps):
                    continue
                if not all(_satisfied(states[d], want) for d, want in deps.items()):
                    skipped = self._node(child_name, str(task.get("template")), "Skipped", node["id"], name)
                    self._finish(skipped, "Omitted", "omitted: depends condition not met")
                    self._link(self._parent(node, deps), skipped)
                    states[name] = "Omitted"
                    progress = True
                    continue
                child = self._call(task, child_name, local, node["id"], name)
                if child["id"] in self.nodes:
                    self._link(self._parent(node, deps), self.nodes[child["id"]])
                states[name] = child["phase"]
                if child["phase"] in DONE:
                    local.update(self._outputs_scope("tasks", name, child))
                    progress = True
        if len(states) < len(tasks) or any(p not in DONE for p in states.values()):
            node["phase"] = "Running"
            return node
        failed = [
            n
            for n, p in states.items()
            if p in _FAILED and not ((tasks[n].get("continueOn") or {}).get("failed"))
        ]
        if failed:
            first = node_id(self.name, f"{node['name']}.{failed[0]}")
            return self._finish(node, "Failed", f"child '{first}' failed")
        return self._finish(node, "Succeeded")

    def _call(
        self, caller: Mapping[str, Any], name: str, scope: dict[str, str], boundary: str, display: str
    ) -> dict[str, Any]:
        """A DAG task or a step: its ``when``, then its template, once or once per item."""
        nid = node_id(self.name, name)
        if nid in self.nodes and self.nodes[nid]["phase"] in DONE:
            return self.nodes[nid]
        template = str(caller.get("template"))
        when = caller.get("when")
        if when and nid not in self.nodes:
            text = str(substitute(str(when), scope))
            if not evaluate_when(text):
                skipped = self._node(name, template, "Skipped", boundary, display)
                return self._finish(skipped, "Skipped", f"when '{text}' evaluated false")
        items = expand_items(caller, scope)
        if items is None:
            arguments = substitute(caller.get("arguments") or {}, scope)
            return self._run(template, name, arguments, boundary, scope, display)
        group = self._node(name, template, "TaskGroup", boundary, display)
        children = []
        for i, item in enumerate(items):
            label = item_label(item)
            local = {**scope, **item_scope(item)}
            arguments = substitute(caller.get("arguments") or {}, local)
            child = self._run(
                template, f"{name}({i}:{label})", arguments, boundary, local, f"{display}({i}:{label})"
            )
            if child["id"] in self.nodes:
                self._link(group, self.nodes[child["id"]])
            children.append(child)
        if any(c["phase"] not in DONE for c in children):
            group["phase"] = "Running"
            return group
        results = [(c.get("outputs") or {}).get("result") for c in children]
        if any(r is not None for r in results):
            group["outputs"] = {"result": json.dumps(results)}
        failed = [c for c in children if c["phase"] in _FAILED]
        if failed:
            return self._finish(group, "Failed", f"child '{failed[0]['id']}' failed")
        return self._finish(group, "Succeeded")

    def _parent(self, dag: dict[str, Any], deps: Mapping[str, str]) -> dict[str, Any]:
        """Argo hangs a task under the tasks it depends on, and a task without any under the DAG."""
        if not deps:
            return dag
        first = node_id(self.name, f"{dag['name']}.{next(iter(deps))}")
        return self.nodes.get(first, dag)

    def _steps(
        self, node: dict[str, Any], template: Mapping[str, Any], scope: dict[str, str]
    ) -> dict[str, Any]:
        local = dict(scope)
        for i, group in enumerate(template.get("steps") or []):
            gname = f"{node['name']}[{i}]"
            gnode = self._node(gname, str(template.get("name")), "StepGroup", node["id"], f"[{i}]")
            self._link(node if i == 0 else self.nodes[node_id(self.name, f"{node['name']}[{i - 1}]")], gnode)
            phases = []
            for step in group or []:
                sname = str(step["name"])
                child = self._call(step, f"{gname}.{sname}", local, node["id"], sname)
                if child["id"] in self.nodes:
                    self._link(gnode, self.nodes[child["id"]])
                phases.append((sname, child))
            if any(c["phase"] not in DONE for _, c in phases):
                node["phase"] = "Running"
                return node
            for sname, child in phases:
                local.update(self._outputs_scope("steps", sname, child))
            failed = [c for s, c in phases if c["phase"] in _FAILED]
            if failed:
                self._finish(gnode, "Failed", f"child '{failed[0]['id']}' failed")
                return self._finish(node, "Failed", f"child '{failed[0]['id']}' failed")
            self._finish(gnode, "Succeeded")
        return self._finish(node, "Succeeded")


def _satisfied(phase: str, want: str) -> bool:
    if not want:  # a bare name: Argo's (a.Succeeded || a.Skipped || a.Daemoned)
        return phase in {"Succeeded", "Skipped"}
    if want in {"Succeeded", "AnySucceeded"}:
        return phase == "Succeeded"
    if want in {"Failed", "AllFailed"}:
        return phase == "Failed"
    if want == "Errored":
        return phase == "Error"
    if want == "Skipped":
        return phase in {"Skipped", "Omitted"}
    return False
