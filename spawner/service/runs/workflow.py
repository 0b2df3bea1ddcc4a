"""The service's checks of a submitted Argo Workflow's spec: templates, references and step pods."""

from __future__ import annotations

from collections.abc import Collection, Mapping

from spawner.service.runs.podspec import (
    PodGpus,
    Refused,
    check_container,
    check_service_account,
    check_volumes,
    items,
    mapping,
    node_product,
    optional_mapping,
    text,
)

__all__ = ["check_workflow_spec"]

# Template types no pod admission ever sees, each with why the service refuses it.
_UNCHECKED_TEMPLATES = {
    "resource": "Argo resource templates are not served: they create any object as the workflow's "
    "service account, past the service's checks",
    "http": "Argo http templates are not served: the workflow controller sends their requests, "
    "outside your namespace's network policy",
    "plugin": "Argo plugin templates are not served: executor plugins run code the service cannot check",
}
_PATCH_REASON = "podSpecPatch is not served: the service cannot check what a patch changes in the pod"
_TEMPLATE_REF_REASON = (
    "templateRef is not served: the service does not serve WorkflowTemplates yet; "
    "copy the template into spec.templates"
)
_WORKFLOW_TEMPLATE_REASON = (
    "workflowTemplateRef is not served: the service does not serve WorkflowTemplates yet; "
    "put the templates in spec.templates"
)
_HOST_NETWORK = "sharing the node's namespaces is not allowed"


def _check_reference(step: object, field: str, names: Collection[str]) -> None:
    """A step, a DAG task or a hook must name a template of this workflow."""
    s = mapping(step, field)
    if s.get("templateRef") is not None:
        raise Refused(f"{field}.templateRef", _TEMPLATE_REF_REASON)
    if s.get("inline") is not None:
        raise Refused(f"{field}.inline", "inline templates are not served; name a template of spec.templates")
    name = text(s.get("template"), f"{field}.template")
    if not name:
        raise Refused(f"{field}.template", "a step needs the name of a template of spec.templates")
    if name not in names:
        raise Refused(f"{field}.template", f"template {name!r} is not in spec.templates")
    _check_exit(s.get("onExit"), f"{field}.onExit", names)
    _check_hooks(s.get("hooks"), f"{field}.hooks", names)


def _check_exit(value: object, field: str, names: Collection[str]) -> None:
    name = text(value, field)
    if name is not None and name not in names:
        raise Refused(field, f"template {name!r} is not in spec.templates")


def _check_hooks(value: object, field: str, names: Collection[str]) -> None:
    for key, hook in optional_mapping(value, field).items():
        _check_reference(hook, f"{field}[{key!r}]", names)


def _containers(value: object, field: str) -> list[int]:
    return [check_container(c, f"{field}[{i}]") for i, c in enumerate(items(value, field))]


def _check_template(t: Mapping[str, object], field: str, runner: str, names: Collection[str]) -> int | None:
    """Refuse what a template may not do; return the GPUs of the pod it runs, or None when it runs
    no pod of its own (steps, DAG, suspend)."""
    for key, reason in _UNCHECKED_TEMPLATES.items():
        if t.get(key) is not None:
            raise Refused(f"{field}.{key}", reason)
    if t.get("podSpecPatch") is not None:
        raise Refused(f"{field}.podSpecPatch", _PATCH_REASON)
    check_service_account(t, field, runner)
    executor = optional_mapping(t.get("executor"), f"{field}.executor")
    check_service_account(executor, f"{field}.executor", runner)
    check_volumes(t.get("volumes"), f"{field}.volumes")
    # The main container, the sidecars and a container set's containers run side by side; init
    # containers one at a time before them, as in any pod.
    running = []
    runs_pod = False
    for key in ("container", "script"):
        if t.get(key) is not None:
            runs_pod = True
            running.append(check_container(t.get(key), f"{field}.{key}"))
    if t.get("containerSet") is not None:
        runs_pod = True
        cs = mapping(t.get("containerSet"), f"{field}.containerSet")
        running += _containers(cs.get("containers"), f"{field}.containerSet.containers")
    running += _containers(t.get("sidecars"), f"{field}.sidecars")
    init = _containers(t.get("initContainers"), f"{field}.initContainers")
    for i, group in enumerate(items(t.get("steps"), f"{field}.steps")):
        where = f"{field}.steps[{i}]"
        for j, step in enumerate(items(group, where)):
            _check_reference(step, f"{where}[{j}]", names)
    if t.get("dag") is not None:
        dag = mapping(t.get("dag"), f"{field}.dag")
        for j, task in enumerate(items(dag.get("tasks"), f"{field}.dag.tasks")):
            _check_reference(task, f"{field}.dag.tasks[{j}]", names)
    if not runs_pod:
        return None
    return max(sum(running), max(init, default=0))


def check_workflow_spec(value: object, field: str, *, runner: str) -> tuple[PodGpus, str]:
    """Check a Workflow's ``spec``; return the pod of its biggest step and the field naming it.

    A workflow's steps run in sequence or in parallel as its DAG says; this slice takes the most GPUs
    any one step's pod asks for as the whole gang. Parallel GPU steps can hold more at once: the
    namespace's ResourceQuota still bounds them."""
    spec = mapping(value, field)
    if spec.get("podSpecPatch") is not None:
        raise Refused(f"{field}.podSpecPatch", _PATCH_REASON)
    if spec.get("workflowTemplateRef") is not None:
        raise Refused(f"{field}.workflowTemplateRef", _WORKFLOW_TEMPLATE_REASON)
    for key in ("hostNetwork", "hostPID", "hostIPC"):
        if spec.get(key) not in (None, False):
            raise Refused(f"{field}.{key}", _HOST_NETWORK)
    check_volumes(spec.get("volumes"), f"{field}.volumes")
    check_service_account(spec, field, runner)
    executor = optional_mapping(spec.get("executor"), f"{field}.executor")
    check_service_account(executor, f"{field}.executor", runner)
    default_product = node_product(spec, field)

    templates = items(spec.get("templates"), f"{field}.templates")
    names: dict[str, int] = {}
    for i, t in enumerate(templates):
        where = f"{field}.templates[{i}]"
        name = text(mapping(t, where).get("name"), f"{where}.name")
        if not name:
            raise Refused(f"{where}.name", "a template needs a name")
        if name in names:
            first = f"{field}.templates[{names[name]}]"
            raise Refused(f"{where}.name", f"template name {name!r} is used twice (also {first})")
        names[name] = i
    if spec.get("templateDefaults") is not None:
        where = f"{field}.templateDefaults"
        if _check_template(mapping(spec.get("templateDefaults"), where), where, runner, names):
            reason = "GPUs in template defaults are not served; ask for them in the templates that use them"
            raise Refused(where, reason)

    entrypoint = text(spec.get("entrypoint"), f"{field}.entrypoint")
    if not entrypoint:
        raise Refused(f"{field}.entrypoint", "a workflow needs an entrypoint")
    if entrypoint not in names:
        raise Refused(f"{field}.entrypoint", f"template {entrypoint!r} is not in spec.templates")
    _check_exit(spec.get("onExit"), f"{field}.onExit", names)
    _check_hooks(spec.get("hooks"), f"{field}.hooks", names)

    biggest, where_biggest = PodGpus(0, default_product), f"{field}.templates"
    for i, t in enumerate(templates):
        where = f"{field}.templates[{i}]"
        tm = mapping(t, where)
        gpus = _check_template(tm, where, runner, names)
        if gpus is not None and gpus > biggest.gpus:
            product = node_product(tm, where) or default_product
            biggest, where_biggest = PodGpus(gpus, product), where
    return biggest, where_biggest
