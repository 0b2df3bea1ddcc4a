"""The TrainJob CRD's defaults and checks and Trainer's validating webhook, pure, failing as the API does."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any

from ..errors import ApiError
from .names import (
    CLUSTER_RUNTIME_KIND,
    CLUSTER_RUNTIMES,
    DEFAULT_MANAGER,
    GROUP,
    MANAGERS,
    RESERVED_ENV,
    RUNTIME_KIND,
    RUNTIMES,
    TRAINJOB_KIND,
)

__all__ = ["WEBHOOK", "RuntimeLookup", "admit", "apply_defaults", "check_schema", "check_webhook"]

Obj = Mapping[str, Any]

# (namespace or None, plural, name) -> the runtime, or None when there is none
RuntimeLookup = Callable[[str | None, str, str], Obj | None]

WEBHOOK = "validator.trainjob.trainer.kubeflow.org"
_RFC1035 = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
# Fields the CRD's CEL rules keep as they were created.
_IMMUTABLE = ("runtimeRef", "initializer", "trainer", "activeDeadlineSeconds", "managedBy")


def apply_defaults(trainjob: dict[str, Any]) -> None:
    """The CRD schema's defaults: the runtime reference's group and kind, ``suspend``, ``managedBy``."""
    spec = trainjob.setdefault("spec", {})
    ref = spec.get("runtimeRef")
    if isinstance(ref, dict):
        ref.setdefault("apiGroup", GROUP)
        ref.setdefault("kind", CLUSTER_RUNTIME_KIND)
    spec.setdefault("suspend", False)
    spec.setdefault("managedBy", DEFAULT_MANAGER)


def _invalid(name: str, causes: list[tuple[str, str]]) -> ApiError:
    """422 Invalid as kube-apiserver writes it for a custom resource (the kind qualified by its group)."""
    text = "; ".join(f"{fld}: {msg}" for fld, msg in causes)
    details = {
        "name": name,
        "group": GROUP,
        "kind": TRAINJOB_KIND,
        "causes": [{"reason": "FieldValueInvalid", "message": msg, "field": fld} for fld, msg in causes],
    }
    return ApiError(422, f'{TRAINJOB_KIND}.{GROUP} "{name}" is invalid: {text}', details=details)


def check_schema(trainjob: Obj, old: Obj | None) -> None:
    """The CRD's OpenAPI and CEL rules; raise 422 Invalid naming every field that breaks one."""
    name = str(trainjob["metadata"].get("name") or "")
    spec = trainjob.get("spec") or {}
    causes: list[tuple[str, str]] = []
    if not _RFC1035.match(name):
        causes.append(
            ("<nil>", 'Invalid value: "object": metadata.name must match RFC 1035 DNS label format')
        )
    if len(name) > 63:
        causes.append(("<nil>", 'Invalid value: "object": metadata.name must be no more than 63 characters'))
    ref = spec.get("runtimeRef")
    if not isinstance(ref, Mapping) or not ref.get("name"):
        causes.append(("spec.runtimeRef.name", "Required value"))
    if spec.get("managedBy") not in MANAGERS:
        causes.append(
            (
                "spec.managedBy",
                'Invalid value: "string": ManagedBy must be trainer.kubeflow.org/trainjob-controller or '
                "kueue.x-k8s.io/multikueue if set",
            )
        )
    trainer = spec.get("trainer") or {}
    nodes = trainer.get("numNodes")
    if nodes is not None and (isinstance(nodes, bool) or not isinstance(nodes, int) or nodes < 0):
        causes.append(
            (
                "spec.trainer.numNodes",
                f"Invalid value: {nodes}: spec.trainer.numNodes in body should be greater than or equal to 0",
            )
        )
    procs = trainer.get("numProcPerNode")
    if procs is not None and (isinstance(procs, bool) or not isinstance(procs, int) or procs < 1):
        causes.append(
            (
                "spec.trainer.numProcPerNode",
                'Invalid value: "integer": numProcPerNode must be greater than or equal to 1',
            )
        )
    if old is not None:
        before = old.get("spec") or {}
        for key in _IMMUTABLE:
            if spec.get(key) != before.get(key):
                kind = "object" if isinstance(spec.get(key) or before.get(key), Mapping) else "string"
                if key == "activeDeadlineSeconds":
                    kind = "integer"
                causes.append((f"spec.{key}", f'Invalid value: "{kind}": field is immutable'))
    if causes:
        raise _invalid(name, causes)


def _denied(message: str) -> ApiError:
    """What kube-apiserver answers when a controller-runtime validating webhook returns an error that
    is not an API status: 403 Forbidden, the webhook named."""
    return ApiError(403, f'admission webhook "{WEBHOOK}" denied the request: {message}', reason="Forbidden")


def _go_ref(ref: Obj) -> str:
    """The reference as Go's ``%#v`` prints it in a field error (pointer fields show an address)."""
    pointers = "APIGroup:(*string)(0xc000a1e010), Kind:(*string)(0xc000a1e020)"
    return f'v1alpha1.RuntimeRef{{Name:"{ref.get("name", "")}", {pointers}}}'


def check_webhook(trainjob: Obj, lookup: RuntimeLookup) -> None:
    """Trainer's ``validator.trainjob`` webhook: a runtime kind it serves, a runtime that exists,
    no PET_* variable of torchrun's own in ``spec.trainer.env``."""
    meta, spec = trainjob["metadata"], trainjob.get("spec") or {}
    ref: Obj = spec.get("runtimeRef") or {}
    group, kind = str(ref.get("apiGroup") or ""), str(ref.get("kind") or "")
    if group != GROUP or kind not in (CLUSTER_RUNTIME_KIND, RUNTIME_KIND):
        raise _denied(f"unsupported runtime: {kind}.{group}" if group else f"unsupported runtime: {kind}")
    name = str(ref.get("name") or "")
    if kind == CLUSTER_RUNTIME_KIND:
        runtime, plural, word = (
            lookup(None, CLUSTER_RUNTIMES, name),
            CLUSTER_RUNTIMES,
            "clusterTrainingRuntime",
        )
    else:
        runtime, plural, word = lookup(meta.get("namespace"), RUNTIMES, name), RUNTIMES, "trainingRuntime"
    if runtime is None:
        raise _denied(
            f'spec.RuntimeRef: Invalid value: {_go_ref(ref)}: {plural}.{GROUP} "{name}" not found: '
            f"specified {word} must be created before the TrainJob is created"
        )
    if ((runtime.get("spec") or {}).get("mlPolicy") or {}).get("torch") is None:
        return
    env = ((spec.get("trainer") or {}).get("env")) or []
    reserved = sorted({str(e.get("name")) for e in env if e.get("name") in RESERVED_ENV})
    if reserved:
        raise _denied(
            f"spec.trainer.env: Invalid value: {json.dumps(env, separators=(',', ':'))}: must not have "
            f"reserved envs, invalid envs configured: [{' '.join(reserved)}]"
        )


def admit(trainjob: dict[str, Any], old: Obj | None, lookup: RuntimeLookup) -> None:
    """Everything a TrainJob create or update goes through before it is stored, in the apiserver's
    order: schema defaults, schema checks, then the validating webhook."""
    apply_defaults(trainjob)
    check_schema(trainjob, old)
    check_webhook(trainjob, lookup)
