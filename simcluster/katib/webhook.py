"""Katib's Experiment webhooks, pure: the defaults they fill in, their checks and the trial's run spec."""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Collection, Mapping, Sequence
from typing import Any

from .gjson import GjsonError, parse
from .naming import (
    COLLECTOR_INJECTION,
    DEFAULT_CONDITIONS,
    DEFAULT_PRIMARY_POD_LABELS,
    SUGGESTION_ALGORITHMS,
)

__all__ = [
    "TemplateError",
    "aggregate",
    "default_experiment",
    "namespace_refusal",
    "run_spec",
    "template_text",
    "validate_experiment",
]

_PARAM = re.compile(r"\$\{trialParameters\..+?\}")
_META = re.compile(r"\$\{trialSpec\.(.+?)\}")
_META_INDEX = re.compile(r"(.+)\[(.+)]")
_META_KEYS = ("Name", "Namespace", "Kind", "APIVersion", "Annotations", "Labels")
_NAME = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?")
_TYPES = ("int", "double", "categorical", "discrete", "unknown")
_DISTRIBUTIONS = ("uniform", "logUniform", "normal", "logNormal", "distributionUnknown")
_COLLECTORS = ("StdOut", "File", "TensorFlowEvent", "PrometheusMetric", "Custom", "None", "Push")
_EDITABLE = ("parallelTrialCount", "maxTrialCount", "maxFailedTrialCount")


class TemplateError(ValueError):
    """The trial template cannot be turned into the trial's object."""


def _placeholder(name: str) -> str:
    """How a trial parameter appears in the template: ``${trialParameters.<name>}``."""
    return "${trialParameters." + name + "}"


def _quote(value: Any) -> str:
    """A value as k8s field errors print it: strings quoted, numbers bare."""
    return json.dumps(value) if isinstance(value, str) else str(value)


def _invalid(path: str, value: Any, detail: str) -> str:
    return f"{path}: Invalid value: {_quote(value)}: {detail}"


def _required(path: str, detail: str) -> str:
    return f"{path}: Required value: {detail}"


def aggregate(errors: Sequence[str]) -> str:
    """An ErrorList as ToAggregate().Error() words it: one message alone, several in brackets."""
    unique = list(dict.fromkeys(errors))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def namespace_refusal(name: str, namespace: str, labels: Mapping[str, str]) -> str | None:
    """The validating webhook's refusal of a namespace without the collector label, else None."""
    if labels.get(COLLECTOR_INJECTION) == "enabled":
        return None
    return (
        f'Cannot create the Experiment "{name}" in namespace "{namespace}": the namespace lacks label '
        f'"{COLLECTOR_INJECTION}: enabled"'
    )


def default_experiment(exp: dict[str, Any]) -> None:
    """Fill in what the defaulting webhook does (experiment_defaults.go SetDefault), in place."""
    spec = exp.setdefault("spec", {})
    spec.setdefault("parallelTrialCount", 3)
    if not spec.get("resumePolicy"):
        spec["resumePolicy"] = "Never"
    objective = spec.get("objective")
    if isinstance(objective, dict):
        strategies = objective.get("metricStrategies") or []
        named = {s.get("name") for s in strategies}
        by_type = {"minimize": "min", "maximize": "max"}.get(str(objective.get("type")), "latest")
        for metric in [objective.get("objectiveMetricName"), *(objective.get("additionalMetricNames") or [])]:
            if metric not in named:
                strategies.append({"name": metric, "value": by_type})
                named.add(metric)
        objective["metricStrategies"] = strategies
    template = spec.get("trialTemplate")
    if isinstance(template, dict) and isinstance(template.get("trialSpec"), dict):
        kind = str(template["trialSpec"].get("kind") or "")
        if kind in DEFAULT_CONDITIONS:
            success, failure = DEFAULT_CONDITIONS[kind]
            template["successCondition"] = template.get("successCondition") or success
            template["failureCondition"] = template.get("failureCondition") or failure
        if kind in DEFAULT_PRIMARY_POD_LABELS and not template.get("primaryPodLabels"):
            template["primaryPodLabels"] = dict(DEFAULT_PRIMARY_POD_LABELS[kind])
    collector = spec.setdefault("metricsCollectorSpec", {})
    if isinstance(collector, dict) and not collector.get("collector"):
        collector["collector"] = {"kind": "StdOut"}
    for param in spec.get("parameters") or []:
        if isinstance(param, dict):
            space = param.setdefault("feasibleSpace", {})
            if isinstance(space, dict) and not space.get("distribution"):
                space["distribution"] = "uniform"


def template_text(spec: Mapping[str, Any]) -> str:
    """The trial template as one JSON string, as Katib marshals it before substituting parameters."""
    template = spec.get("trialTemplate") or {}
    if template.get("configMap") is not None:
        raise TemplateError(
            "simcluster reads spec.trialTemplate.trialSpec; a configMap template is not supported"
        )
    return json.dumps(template.get("trialSpec"), sort_keys=True, separators=(",", ":"))


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _check_counts(spec: Mapping[str, Any]) -> list[str]:
    errors = []
    failed, most, parallel = (
        _int_or_none(spec.get(k)) for k in ("maxFailedTrialCount", "maxTrialCount", "parallelTrialCount")
    )
    if failed is not None and failed < 0:
        errors.append(_invalid("spec.maxFailedTrialCount", failed, "should not be less than 0"))
    if most is not None and most <= 0:
        errors.append(_invalid("spec.maxTrialCount", most, "must be greater than 0"))
    if parallel is not None and parallel <= 0:
        errors.append(_invalid("spec.parallelTrialCount", parallel, "must be greater than 0"))
    if failed is not None and most is not None and failed > most:
        errors.append(
            _invalid("spec.maxFailedTrialCount", failed, "should be less than or equal to spec.maxTrialCount")
        )
    if parallel is not None and most is not None and parallel > most:
        errors.append(
            _invalid(
                "spec.parallelTrialCount", parallel, "should be less than or equal to spec.maxTrialCount"
            )
        )
    return errors


def _check_objective(objective: Any) -> list[str]:
    if not isinstance(objective, dict):
        return [_required("spec.objective", "must be specified")]
    errors = []
    if objective.get("type") not in {"minimize", "maximize"}:
        errors.append(
            _invalid("spec.objective.type", objective.get("type") or "", "must be minimize or maximize")
        )
    name = objective.get("objectiveMetricName")
    if not name:
        errors.append(_required("spec.objective.objectiveMetricName", "must be specified"))
    if name and name in (objective.get("additionalMetricNames") or []):
        errors.append(
            f"spec.objective.additionalMetricNames: Invalid value: {objective.get('additionalMetricNames')}: "
            "should not contain spec.objective.objectiveMetricName"
        )
    return errors


def _check_algorithm(algorithm: Any) -> list[str]:
    if not isinstance(algorithm, dict):
        return [_required("spec.algorithm", "must be specified")]
    errors = []
    name = str(algorithm.get("algorithmName") or "")
    if not name:
        errors.append(_required("spec.algorithm.algorithmName", "must be specified"))
    if name not in SUGGESTION_ALGORITHMS:
        errors.append(
            _invalid(
                "spec.algorithm.algorithmName",
                name,
                f"unable to get Suggestion config data for algorithm {name}: failed to find "
                f"suggestion config for algorithm: {name} in ConfigMap: katib-config",
            )
        )
    return errors


def _check_parameters(params: Sequence[Any]) -> list[str]:
    errors = []
    for i, param in enumerate(params):
        where = f"spec.parameters[{i}]"
        if not isinstance(param, dict):
            errors.append(_required(where, "must be an object"))
            continue
        type_ = param.get("parameterType") or ""
        space = param.get("feasibleSpace") or {}
        if type_ not in _TYPES:
            errors.append(
                _invalid(f"{where}.parameterType", type_, f"parameterType: {type_} is not supported")
            )
        dist = space.get("distribution") or ""
        if dist and dist not in _DISTRIBUTIONS:
            errors.append(
                _invalid(
                    f"{where}.feasibleSpace.distribution", dist, f"distribution: {dist} is not supported"
                )
            )
        if not any(space.get(k) for k in ("min", "max", "step", "list")):
            errors.append(_required(f"{where}.feasibleSpace", "feasibleSpace must be specified"))
        elif type_ in {"double", "int"}:
            if space.get("list"):
                errors.append(
                    f"{where}.feasibleSpace.list: Invalid value: {space.get('list')}: "
                    f"feasibleSpace.list is not supported for parameterType: {type_}"
                )
            if not space.get("max") or not space.get("min"):
                errors.append(
                    _required(
                        f"{where}.feasibleSpace.max",
                        "feasibleSpace.max or feasibleSpace.min must be specified for parameterType: "
                        + type_,
                    )
                )
        elif type_ in {"categorical", "discrete"} and any(space.get(k) for k in ("min", "max", "step")):
            errors.append(
                f"{where}.feasibleSpace: Invalid value: {space}: "
                f"feasibleSpace .max, .min and .step is not supported for parameterType: {type_}"
            )
    return errors


def _is_meta(reference: str) -> bool:
    found = _META.fullmatch(reference)
    if not found:
        return False
    key = found.group(1)
    sub = _META_INDEX.fullmatch(key)
    return key in _META_KEYS or bool(sub and sub.group(1) in _META_KEYS)


def _check_template(spec: Mapping[str, Any], kinds: Collection[tuple[str, str]]) -> list[str]:
    template = spec.get("trialTemplate")
    where = "spec.trialTemplate"
    if not isinstance(template, dict):
        return [_required(where, "must be specified")]
    errors = []
    if not template.get("primaryContainerName"):
        errors.append(_required(f"{where}.primaryContainerName", "must be specified"))
    if not template.get("successCondition") or not template.get("failureCondition"):
        errors.append(_required(where, "successCondition and failureCondition must be specified"))
    if template.get("trialParameters") is None:
        return [*errors, _required(f"{where}.trialParameters", "must be specified")]
    if template.get("trialSpec") is None and template.get("configMap") is None:
        return [
            *errors,
            _required(
                f"{where}.TrialSource",
                "spec.trialTemplate.trialSpec or spec.trialTemplate.configMap must be specified",
            ),
        ]
    if template.get("trialSpec") is not None and template.get("configMap") is not None:
        return [
            *errors,
            _required(
                where,
                "only one of spec.trialTemplate.trialSpec or spec.trialTemplate.configMap can be specified",
            ),
        ]
    try:
        text = template_text(spec)
    except TemplateError as exc:
        return [*errors, _invalid(where, "", f"unable to parse spec.trialTemplate: {exc}")]
    names = {p.get("name") for p in spec.get("parameters") or [] if isinstance(p, dict)}
    seen_names: set[str] = set()
    seen_refs: set[str] = set()
    for i, param in enumerate(template["trialParameters"]):
        name, ref = str(param.get("name") or ""), str(param.get("reference") or "")
        if not name or not ref or "{" in name or "}" in name:
            errors.append(
                _invalid(
                    f"{where}.trialParameters[{i}]",
                    "",
                    "name and reference must be specified and name must not contain '{' or '}'",
                )
            )
            continue
        if name in seen_names:
            errors.append(
                _invalid(
                    f"{where}.trialParameters[{i}].name",
                    name,
                    f"parameter name {name} can't be duplicated in spec.trialTemplate.trialParameters",
                )
            )
            continue
        if ref in seen_refs:
            errors.append(
                _invalid(
                    f"{where}.trialParameters[{i}].reference",
                    ref,
                    f"parameter reference {ref} can't be duplicated in spec.trialTemplate.trialParameters",
                )
            )
            continue
        seen_names.add(name)
        seen_refs.add(ref)
        if names and not _is_meta(ref) and ref not in names:
            errors.append(
                _invalid(
                    f"{where}.trialParameters[{i}].reference",
                    ref,
                    f"parameter reference {ref} does not exist in spec.parameters",
                )
            )
        placeholder = _placeholder(name)
        if placeholder not in text:
            errors.append(
                _invalid(
                    f"{where}.trialParameters[{i}].name",
                    name,
                    f"parameter name: {name} in spec.trialParameters not found in spec.trialTemplate: {text}",
                )
            )
            return errors
        text = text.replace(placeholder, "test-value")
    left = _PARAM.findall(text)
    if left:
        errors.append(
            _invalid(
                where,
                "",
                f"parameters: [{' '.join(left)}] in spec.trialTemplate not found in spec.trialParameters",
            )
        )
    try:
        run = json.loads(text)
    except ValueError:
        return [*errors, _invalid(where, "", f"unable to convert spec.trialTemplate: {text} to unstructured")]
    if not isinstance(run, dict):
        return [*errors, _invalid(where, "", f"unable to convert spec.trialTemplate: {text} to unstructured")]
    meta = run.get("metadata") or {}
    if meta.get("name") or meta.get("namespace"):
        errors.append(
            _invalid(where, "", "metadata.name and metadata.namespace in spec.trialTemplate must be omitted")
        )
    api_version, kind = str(run.get("apiVersion") or ""), str(run.get("kind") or "")
    if not api_version or not kind:
        errors.append(_required(where, "APIVersion and Kind in spec.trialTemplate must be specified"))
    elif (api_version, kind) not in kinds:
        # Katib's controller watches only katib-config's trialResources; here, the kinds the cluster serves
        errors.append(
            _invalid(where, "", f"simcluster serves no resource of kind {kind} in {api_version} for trials")
        )
    for key in ("successCondition", "failureCondition"):
        if template.get(key):
            try:
                parse(str(template[key]))
            except GjsonError as exc:
                errors.append(_invalid(f"{where}.{key}", template[key], str(exc)))
    return errors


def _check_collector(spec: Mapping[str, Any]) -> list[str]:
    collector = spec.get("metricsCollectorSpec") or {}
    kind = str((collector.get("collector") or {}).get("kind") or "")
    where = "spec.metricsCollectorSpec"
    if kind not in _COLLECTORS:
        return [_invalid(f"{where}.collector.kind", kind, f"invalid metrics collector kind: {kind}")]
    errors = []
    if kind != "StdOut":
        errors.append(
            _invalid(
                f"{where}.collector.kind", kind, "simcluster collects metrics with the StdOut collector only"
            )
        )
    for fmt in ((collector.get("source") or {}).get("filter") or {}).get("metricsFormat") or []:
        try:
            re.compile(fmt)
        except re.error as exc:
            errors.append(_invalid(f"{where}.source.filter.metricsFormat", fmt, f"invalid filter: {exc}"))
            continue
        if not re.match(r".*\(.*\).*\(.*\).*", fmt):
            errors.append(
                _invalid(f"{where}.source.filter.metricsFormat", fmt, "two top subexpressions are required")
            )
    return errors


def validate_experiment(
    exp: Mapping[str, Any], old: Mapping[str, Any] | None, kinds: Collection[tuple[str, str]]
) -> list[str]:
    """The validating webhook's errors for ``exp``, ``old`` on update; ``kinds``: the trial kinds served."""
    errors = []
    name = str((exp.get("metadata") or {}).get("name") or "")
    if not _NAME.match(name) or len(name) > 40:
        errors.append(
            _invalid(
                "metadata.name",
                name,
                "name must consist of lower case alphanumeric characters or '-', start with an alphabetic "
                "character, and end with an alphanumeric character (e.g. 'my-name', or 'abc-123', regex used "
                "for validation is '^[a-z]([-a-z0-9]*[a-z0-9])?)') and may not be longer than 40 "
                "characters. ",
            )
        )
    spec = exp.get("spec") or {}
    errors += _check_counts(spec)
    if old is not None:
        before, after = copy.deepcopy(old.get("spec") or {}), copy.deepcopy(spec)
        for key in _EDITABLE:
            before.pop(key, None)
            after.pop(key, None)
        if before != after:
            errors.append(
                "spec: Forbidden: only spec.parallelTrialCount, spec.maxTrialCount and "
                "spec.maxFailedTrialCount are editable"
            )
    objective = _check_objective(spec.get("objective"))
    if objective:
        return errors + objective
    errors += _check_algorithm(spec.get("algorithm"))
    if spec.get("resumePolicy", "") not in {"", "Never", "LongRunning", "FromVolume"}:
        errors.append(_invalid("spec.resumePolicy", spec.get("resumePolicy"), "invalid ResumePolicyType"))
    errors += _check_template(spec, kinds)
    params = spec.get("parameters") or []
    if not params and spec.get("nasConfig") is None:
        errors.append(_required("spec", "spec.parameters or spec.nasConfig must be specified"))
    if params and spec.get("nasConfig") is not None:
        errors.append(_invalid("spec", "", "only one of spec.parameters and spec.nasConfig can be specified"))
    errors += _check_parameters(params)
    errors += _check_collector(spec)
    return errors


def run_spec(
    exp: Mapping[str, Any], trial: str, namespace: str, assignments: Sequence[Mapping[str, str]]
) -> dict[str, Any]:
    """The trial's object: the template with ``${trialParameters.x}`` replaced, named after the trial."""
    spec = exp["spec"]
    text = template_text(spec)
    raw = spec["trialTemplate"]["trialSpec"]
    values = {a["name"]: a["value"] for a in assignments}
    replace: dict[str, str] = {}
    plain = 0
    for param in spec["trialTemplate"].get("trialParameters") or []:
        name, ref = param["name"], param["reference"]
        found = _META.fullmatch(ref)
        if not found:
            if ref not in values:
                raise TemplateError(f"unable to find parameter: {ref} in parameter assignment: {values}")
            replace[name] = values[ref]
            plain += 1
            continue
        key, index = found.group(1), ""
        sub = _META_INDEX.fullmatch(key)
        if sub:
            key, index = sub.group(1), sub.group(2)
        meta = raw.get("metadata") or {}
        lookup = {
            "Name": trial,
            "Namespace": namespace,
            "Kind": raw.get("kind"),
            "APIVersion": raw.get("apiVersion"),
            "Annotations": (meta.get("annotations") or {}).get(index),
            "Labels": (meta.get("labels") or {}).get(index),
        }
        if lookup.get(key) is None:
            raise TemplateError(f"illegal reference of trial metadata: {ref}")
        replace[name] = str(lookup[key])
    if plain != len(assignments):
        raise TemplateError(
            f"parameter assignments: {list(values)} are not all in spec.trialTemplate.trialParameters"
        )
    for name, value in replace.items():
        text = text.replace(_placeholder(name), value)
    try:
        run: dict[str, Any] = json.loads(text)
    except ValueError as exc:
        raise TemplateError(
            f"the trial template is not JSON once its parameters are substituted: {exc}"
        ) from exc
    meta = run.setdefault("metadata", {})
    meta["name"], meta["namespace"] = trial, namespace
    return run
