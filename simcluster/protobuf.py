"""Request bodies in Kubernetes' protobuf encoding, for the kinds kubectl creates with typed clients.

kubectl (seen with 1.32) sends ``kubectl create namespace|configmap|secret|serviceaccount``, the RBAC
kinds (``create role|clusterrole|rolebinding|clusterrolebinding``), ``create quota``, ``auth can-i`` and
``auth whoami`` as
``application/vnd.kubernetes.protobuf`` and does not fall back to JSON on a 415. The body is the
``k8s\\0`` magic, then a ``runtime.Unknown`` (typeMeta, raw object bytes). This decodes the raw
object of the kinds below into the JSON form, dropping the zero values gogo-protobuf writes; a
field or kind without a schema here is a 415, so nothing is silently lost.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from typing import Any, Union

from .errors import ApiError

__all__ = ["CONTENT_TYPE", "PROTOBUF", "decode", "decode_object"]

PROTOBUF = CONTENT_TYPE = "application/vnd.kubernetes.protobuf"
_MAGIC = b"k8s\x00"

# A field is a scalar type name, a message schema, or ("repeated" | "map", element).
Field = Union[str, "Schema", tuple[str, Any]]
Schema = Mapping[int, tuple[str, Field]]

_TIME: Schema = {1: ("seconds", "int"), 2: ("nanos", "int")}  # set by the server: dropped
_OWNER_REF: Schema = {
    1: ("kind", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
    6: ("controller", "bool"),
    7: ("blockOwnerDeletion", "bool"),
}
_OBJECT_META: Schema = {
    1: ("name", "string"),
    2: ("generateName", "string"),
    3: ("namespace", "string"),
    4: ("selfLink", "string"),
    5: ("uid", "string"),
    6: ("resourceVersion", "string"),
    7: ("generation", "int"),
    8: ("creationTimestamp", _TIME),
    9: ("deletionTimestamp", _TIME),
    10: ("deletionGracePeriodSeconds", "int"),
    11: ("labels", ("map", "string")),
    12: ("annotations", ("map", "string")),
    13: ("ownerReferences", ("repeated", _OWNER_REF)),
    14: ("finalizers", ("repeated", "string")),
}
_LOCAL_REF: Schema = {1: ("name", "string")}
_OBJECT_REF: Schema = {
    1: ("kind", "string"),
    2: ("namespace", "string"),
    3: ("name", "string"),
    4: ("uid", "string"),
    5: ("apiVersion", "string"),
    6: ("resourceVersion", "string"),
    7: ("fieldPath", "string"),
}
_QUANTITY: Schema = {1: ("string", "string")}  # resource.Quantity: one string field, decoded to it
_RULE: Schema = {
    1: ("verbs", ("repeated", "string")),
    2: ("apiGroups", ("repeated", "string")),
    3: ("resources", ("repeated", "string")),
    4: ("resourceNames", ("repeated", "string")),
    5: ("nonResourceURLs", ("repeated", "string")),
}
_SELECTOR: Schema = {
    1: ("matchLabels", ("map", "string")),
    2: (
        "matchExpressions",
        (
            "repeated",
            {1: ("key", "string"), 2: ("operator", "string"), 3: ("values", ("repeated", "string"))},
        ),
    ),
}
_BINDING: Schema = {
    1: ("metadata", _OBJECT_META),
    2: (
        "subjects",
        (
            "repeated",
            {
                1: ("kind", "string"),
                2: ("apiGroup", "string"),
                3: ("name", "string"),
                4: ("namespace", "string"),
            },
        ),
    ),
    3: ("roleRef", {1: ("apiGroup", "string"), 2: ("kind", "string"), 3: ("name", "string")}),
}
_RBAC = "rbac.authorization.k8s.io/v1"
_KINDS: dict[tuple[str, str], Schema] = {
    (_RBAC, "Role"): {1: ("metadata", _OBJECT_META), 2: ("rules", ("repeated", _RULE))},
    (_RBAC, "ClusterRole"): {
        1: ("metadata", _OBJECT_META),
        2: ("rules", ("repeated", _RULE)),
        3: ("aggregationRule", {1: ("clusterRoleSelectors", ("repeated", _SELECTOR))}),
    },
    (_RBAC, "RoleBinding"): _BINDING,
    (_RBAC, "ClusterRoleBinding"): _BINDING,
    ("authorization.k8s.io/v1", "SelfSubjectAccessReview"): {
        1: ("metadata", _OBJECT_META),
        2: (
            "spec",
            {
                1: (
                    "resourceAttributes",
                    {
                        1: ("namespace", "string"),
                        2: ("verb", "string"),
                        3: ("group", "string"),
                        4: ("version", "string"),
                        5: ("resource", "string"),
                        6: ("subresource", "string"),
                        7: ("name", "string"),
                        8: ("fieldSelector", {1: ("rawSelector", "string")}),
                        9: ("labelSelector", {1: ("rawSelector", "string")}),
                    },
                ),
                2: ("nonResourceAttributes", {1: ("path", "string"), 2: ("verb", "string")}),
            },
        ),
        3: (
            "status",
            {
                1: ("allowed", "bool"),
                2: ("reason", "string"),
                3: ("evaluationError", "string"),
                4: ("denied", "bool"),
            },
        ),
    },
    ("authorization.k8s.io/v1", "SelfSubjectRulesReview"): {
        1: ("metadata", _OBJECT_META),
        2: ("spec", {1: ("namespace", "string")}),
        3: (
            "status",
            {
                1: ("resourceRules", ("repeated", _RULE)),
                2: ("nonResourceRules", ("repeated", _RULE)),
                3: ("incomplete", "bool"),
                4: ("evaluationError", "string"),
            },
        ),
    },
    ("authentication.k8s.io/v1", "SelfSubjectReview"): {
        1: ("metadata", _OBJECT_META),
        2: (
            "status",
            {
                1: (
                    "userInfo",
                    {1: ("username", "string"), 2: ("uid", "string"), 3: ("groups", ("repeated", "string"))},
                )
            },
        ),
    },
    ("v1", "ResourceQuota"): {
        1: ("metadata", _OBJECT_META),
        2: (
            "spec",
            {
                1: ("hard", ("map", "quantity")),
                2: ("scopes", ("repeated", "string")),
            },
        ),
        3: ("status", {1: ("hard", ("map", "quantity")), 2: ("used", ("map", "quantity"))}),
    },
    ("v1", "Namespace"): {
        1: ("metadata", _OBJECT_META),
        2: ("spec", {1: ("finalizers", ("repeated", "string"))}),
        3: ("status", {1: ("phase", "string")}),
    },
    ("v1", "ConfigMap"): {
        1: ("metadata", _OBJECT_META),
        2: ("data", ("map", "string")),
        3: ("binaryData", ("map", "bytes")),
        4: ("immutable", "bool"),
    },
    ("v1", "Secret"): {
        1: ("metadata", _OBJECT_META),
        2: ("data", ("map", "bytes")),
        3: ("type", "string"),
        4: ("stringData", ("map", "string")),
        5: ("immutable", "bool"),
    },
    ("v1", "ServiceAccount"): {
        1: ("metadata", _OBJECT_META),
        2: ("secrets", ("repeated", _OBJECT_REF)),
        3: ("imagePullSecrets", ("repeated", _LOCAL_REF)),
        4: ("automountServiceAccountToken", "bool"),
    },
}
_UNKNOWN: Schema = {
    1: ("typeMeta", {1: ("apiVersion", "string"), 2: ("kind", "string")}),
    2: ("raw", "bytes"),
    3: ("contentEncoding", "string"),
    4: ("contentType", "string"),
}


def _unsupported(what: str) -> ApiError:
    return ApiError(
        415,
        f"the body of the request was in an unknown format - simcluster decodes protobuf only for "
        f"{', '.join(kind for _, kind in _KINDS)} ({what}); send application/json",
    )


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        if pos >= len(buf):
            raise _unsupported("truncated varint")
        byte = buf[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int | bytes]]:
    """The (field number, varint or length-delimited bytes) pairs of one message."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
            out.append((number, value))
        elif wire == 2:
            size, pos = _varint(buf, pos)
            if pos + size > len(buf):
                raise _unsupported("truncated field")
            out.append((number, buf[pos : pos + size]))
            pos += size
        else:
            raise _unsupported(f"wire type {wire}")
    return out


def _value(field: Field, raw: int | bytes) -> Any:
    if field in ("int", "bool"):
        if not isinstance(raw, int):
            raise _unsupported("a length-delimited scalar")
        if field == "bool":
            return bool(raw)
        return raw - (1 << 64) if raw >= 1 << 63 else raw
    if not isinstance(raw, bytes):
        raise _unsupported("a varint where a string or message belongs")
    if field == "string":
        return raw.decode()
    if field == "bytes":
        return base64.b64encode(raw).decode()
    if field == "quantity":
        return _message(_QUANTITY, raw).get("string", "0")
    if isinstance(field, Mapping):
        return _message(field, raw)
    raise _unsupported(f"field type {field!r}")


def _message(schema: Schema, buf: bytes) -> dict[str, Any]:
    """Decode one message; zero values (which gogo-protobuf always writes) are left out."""
    out: dict[str, Any] = {}
    for number, raw in _fields(buf):
        if number not in schema:
            raise _unsupported(f"field {number}")
        name, field = schema[number]
        if isinstance(field, tuple) and field[0] == "map":
            if not isinstance(raw, bytes):
                raise _unsupported(f"a varint map entry in field {number}")
            entry = _message({1: ("key", "string"), 2: ("value", field[1])}, raw)
            out.setdefault(name, {})[entry.get("key", "")] = entry.get("value", "")
        elif isinstance(field, tuple) and field[0] == "repeated":
            out.setdefault(name, []).append(_value(field[1], raw))
        else:
            value = _value(field, raw)
            if value not in ("", 0, False, {}):
                out[name] = value
    return out


def decode(body: bytes) -> dict[str, Any]:
    """The JSON form of a protobuf-encoded request body; 415 for kinds and fields it lacks."""
    if not body.startswith(_MAGIC):
        raise _unsupported("no k8s protobuf envelope")
    unknown = _message(_UNKNOWN, body[len(_MAGIC) :])
    type_meta = unknown.get("typeMeta") or {}
    api_version, kind = type_meta.get("apiVersion", ""), type_meta.get("kind", "")
    schema = _KINDS.get((api_version, kind))
    if schema is None or unknown.get("contentEncoding"):
        raise _unsupported(f"{api_version}/{kind}")
    obj = _message(schema, base64.b64decode(unknown.get("raw", "")))
    for name in ("creationTimestamp", "deletionTimestamp"):
        obj.get("metadata", {}).pop(name, None)
    return {"apiVersion": api_version, "kind": kind, **obj}


decode_object = decode
