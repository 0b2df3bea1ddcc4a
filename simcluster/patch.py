"""JSON merge, JSON and strategic merge patches, applied the way the kube-apiserver applies them."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import jsonpatch
import jsonpointer

__all__ = [
    "SMP_KINDS",
    "PatchError",
    "apply_patch",
    "json_patch",
    "merge_patch",
    "strategic_merge_patch",
]


class PatchError(ValueError):
    """A patch the apiserver refuses; ``code`` is the HTTP status it answers with.

    422 (Invalid) when a well-formed patch cannot be applied, 400 (BadRequest) for a malformed
    patch document or directive, 415 (UnsupportedMediaType) for a strategic merge patch on a
    kind that has no strategic merge schema (custom resources).
    """

    def __init__(self, message: str, code: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.code = code


# ---------------------------------------------------------------------------------------------
# Go-flavoured message helpers
# ---------------------------------------------------------------------------------------------


def _go_value(value: Any) -> str:
    """Go's %v for a decoded JSON value (map[k:v] with sorted keys, [a b], <nil>)."""
    if value is None:
        return "<nil>"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Mapping):
        inner = " ".join(f"{k}:{_go_value(value[k])}" for k in sorted(value))
        return f"map[{inner}]"
    if isinstance(value, list):
        return "[" + " ".join(_go_value(v) for v in value) + "]"
    return str(value)


def _go_json_type(value: Any) -> str:
    """The JSON type name encoding/json uses in 'cannot unmarshal X into Go value' errors."""
    if isinstance(value, Mapping):
        return "object"
    if isinstance(value, list):
        return "array"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    return "string"


# ---------------------------------------------------------------------------------------------
# RFC 7386 JSON merge patch
# ---------------------------------------------------------------------------------------------


def _merge_into(target: Any, patch: Any) -> Any:
    """RFC 7386 MergePatch on a target the caller owns; values taken from the patch are copied."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result: dict[str, Any] = target if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = _merge_into(result.get(key), value)
    return result


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch: null deletes a member, a non-object patch replaces."""
    return _merge_into(copy.deepcopy(target), patch)


# ---------------------------------------------------------------------------------------------
# RFC 6902 JSON patch
# ---------------------------------------------------------------------------------------------

_JSON_PATCH_OPS = frozenset({"add", "remove", "replace", "move", "copy", "test"})


def _json_patch_failure(op: Mapping[str, Any]) -> str:
    """The message gopkg.in/evanphx/json-patch.v4 gives for an operation that does not apply."""
    kind = op.get("op")
    path = op.get("path")
    if kind == "test":
        return f"testing value {path} failed: test failed"
    if kind == "add":
        return f'add operation does not apply: doc is missing path: "{path}": missing value'
    if kind == "remove":
        last = str(path).rsplit("/", 1)[-1]
        return f"error in remove for path: '{path}': Unable to remove nonexistent key: {last}: missing value"
    if kind == "replace":
        return f"replace operation does not apply: doc is missing key: {path}: missing value"
    return f"{kind} operation does not apply: doc is missing from path: {op.get('from')}: missing value"


def json_patch(target: Any, ops: Any) -> Any:
    """Apply an RFC 6902 JSON patch (a decoded list of operations) to a copy of ``target``.

    A document that is not a list of objects is a 400; an operation that cannot be applied
    (unknown op, missing path, failed test) is a 422, as in the apiserver.
    """
    if ops is None:  # "null" decodes to an empty patch
        return copy.deepcopy(target)
    if not isinstance(ops, list):
        raise PatchError(
            f"json: cannot unmarshal {_go_json_type(ops)} into Go value of type jsonpatch.Patch",
            code=400,
        )
    for op in ops:
        if op is not None and not isinstance(op, Mapping):
            raise PatchError(
                f"json: cannot unmarshal {_go_json_type(op)} into Go value of type jsonpatch.Operation",
                code=400,
            )
    doc = copy.deepcopy(target)
    for op in copy.deepcopy(ops):
        kind = op.get("op") if op is not None else None
        if not isinstance(kind, str) or kind not in _JSON_PATCH_OPS:
            raise PatchError(f"Unexpected kind: {kind if isinstance(kind, str) else 'unknown'}")
        try:
            doc = jsonpatch.JsonPatch([op]).apply(doc, in_place=True)
        except jsonpatch.JsonPatchTestFailed as exc:
            raise PatchError(_json_patch_failure(op)) from exc
        except jsonpatch.InvalidJsonPatch as exc:
            raise PatchError(f"invalid {kind} operation: {exc}") from exc
        except (
            jsonpatch.JsonPatchException,
            jsonpointer.JsonPointerException,
            LookupError,
            TypeError,
            ValueError,
        ) as exc:
            raise PatchError(_json_patch_failure(op)) from exc
    return doc


# ---------------------------------------------------------------------------------------------
# Strategic merge patch: schemas (k8s.io/api struct tags, paths ignoring list indices)
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Field:
    """The patch metadata of one field: its strategy, merge key and the fields of its value."""

    strategy: str = ""  # "merge", or "" (maps merge, lists are replaced)
    key: str = ""  # patchMergeKey of a list of objects; "" for a set of primitives
    fields: Mapping[str, _Field] = field(default_factory=dict)  # struct / list element type


_Struct = Mapping[str, _Field]
_PLAIN = _Field()


def _merge_by(key: str = "", fields: _Struct | None = None) -> _Field:
    return _Field("merge", key, fields or {})


def _struct(fields: _Struct) -> _Field:
    return _Field(fields=fields)


_OBJECT_META = _struct({"ownerReferences": _merge_by("uid"), "finalizers": _merge_by()})
_CONDITIONS = _merge_by("type")
# Container and EphemeralContainerCommon; resizePolicy is +listType=atomic with no strategy.
_CONTAINER: _Struct = {
    "ports": _merge_by("containerPort"),
    "env": _merge_by("name"),
    "volumeMounts": _merge_by("mountPath"),
    "volumeDevices": _merge_by("devicePath"),
}
_POD_SPEC: _Struct = {
    "containers": _merge_by("name", _CONTAINER),
    "initContainers": _merge_by("name", _CONTAINER),
    "ephemeralContainers": _merge_by("name", _CONTAINER),
    "volumes": _merge_by("name"),
    "imagePullSecrets": _merge_by("name"),
    "hostAliases": _merge_by("ip"),
    "resourceClaims": _merge_by("name"),
    "schedulingGates": _merge_by("name"),
    "topologySpreadConstraints": _merge_by("topologyKey"),
}
_POD_STATUS: _Struct = {
    "conditions": _CONDITIONS,
    "podIPs": _merge_by("ip"),
    "hostIPs": _merge_by("ip"),
    "resourceClaimStatuses": _merge_by("name"),
}
_CONDITIONS_ONLY = _struct({"conditions": _CONDITIONS})

_SCHEMAS: Mapping[str, _Struct] = {
    "Pod": {"metadata": _OBJECT_META, "spec": _struct(_POD_SPEC), "status": _struct(_POD_STATUS)},
    "Node": {
        "metadata": _OBJECT_META,
        "spec": _struct({"podCIDRs": _merge_by()}),
        "status": _struct({"conditions": _CONDITIONS, "addresses": _merge_by("type")}),
    },
    "Service": {
        "metadata": _OBJECT_META,
        "spec": _struct({"ports": _merge_by("port")}),
        "status": _CONDITIONS_ONLY,
    },
    "ServiceAccount": {"metadata": _OBJECT_META, "secrets": _merge_by("name")},
    "PersistentVolumeClaim": {"metadata": _OBJECT_META, "status": _CONDITIONS_ONLY},
    "Namespace": {"metadata": _OBJECT_META, "status": _CONDITIONS_ONLY},
    "ConfigMap": {"metadata": _OBJECT_META},
    "Secret": {"metadata": _OBJECT_META},
    "Event": {"metadata": _OBJECT_META},
    # no merge keys: a quota's hard map merges, a LimitRange's limits and RBAC's rules and subjects
    # are atomic lists, replaced whole
    "ResourceQuota": {"metadata": _OBJECT_META},
    "LimitRange": {"metadata": _OBJECT_META},
    "Role": {"metadata": _OBJECT_META},
    "ClusterRole": {"metadata": _OBJECT_META},
    "RoleBinding": {"metadata": _OBJECT_META},
    "ClusterRoleBinding": {"metadata": _OBJECT_META},
}

SMP_KINDS: frozenset[str] = frozenset(_SCHEMAS)
"""The kinds ``strategic_merge_patch`` has a schema for; any other kind is a 415."""

# ---------------------------------------------------------------------------------------------
# Strategic merge patch: the algorithm (a port of apimachinery's strategicpatch.mergeMap)
# ---------------------------------------------------------------------------------------------

_PATCH = "$patch"
_RETAIN_KEYS = "$retainKeys"
_DELETE_PREFIX = "$deleteFromPrimitiveList"
_ORDER_PREFIX = "$setElementOrder"
_DROP = object()  # _clean's answer for a map carrying "$patch": the field or element goes


def _check_directives(value: Any) -> None:
    """Refuse keys that look like directives but are none (400, as strict field validation)."""
    if isinstance(value, dict):
        for key, item in value.items():
            if (
                isinstance(key, str)
                and key.startswith("$")
                and key not in (_PATCH, _RETAIN_KEYS)
                and not key.startswith((_DELETE_PREFIX + "/", _ORDER_PREFIX + "/"))
            ):
                raise PatchError(f"unknown strategic merge patch directive: {key}", code=400)
            _check_directives(item)
    elif isinstance(value, list):
        for item in value:
            _check_directives(item)


def _clean(value: Any) -> Any:
    """A patch value taken as is: nulls and directive keys go, maps carrying $patch are dropped."""
    if isinstance(value, dict):
        if _PATCH in value:
            return _DROP
        out: dict[str, Any] = {}
        for key, item in value.items():
            if item is None or key.startswith("$"):
                continue
            cleaned = _clean(item)
            if cleaned is not _DROP:
                out[key] = cleaned
        return out
    if isinstance(value, list):
        return [c for c in (_clean(item) for item in value) if c is not _DROP]
    return value


def _kind(value: Any) -> str:
    """The Go reflect type a decoded JSON value has (bool, int64 and float64 differ)."""
    if isinstance(value, dict):
        return "map"
    if isinstance(value, list):
        return "slice"
    if value is None:
        return "nil"
    return type(value).__name__


def _ident(value: Any) -> Any:
    """A hashable identity with Go's interface equality (1 != 1.0 != true)."""
    if isinstance(value, (dict, list)):
        return ("json", json.dumps(value, sort_keys=True))
    return (type(value), value)


def _extract_key(key: str, prefix: str) -> str:
    parts = key.split("/", 1)
    if len(parts) <= 1 or parts[0] != prefix:
        what = "primitive list" if prefix == _DELETE_PREFIX else "setElementOrder list"
        raise PatchError(f"invalid patch format of {what}", code=400)
    return parts[1]


def _element_kind(*lists: Sequence[Any]) -> str:
    """sliceElementType: every element of every list has one type, and it is no list."""
    kind = ""
    for items in lists:
        for item in items:
            this = _kind(item)
            if not kind:
                if this == "slice":
                    raise PatchError("lists of lists are not supported")
                kind = this
            elif this != kind:
                raise PatchError(
                    "list element types are not identical: "
                    + " ".join(_go_value(list(items)) for items in lists)
                )
    return kind


def _require_key(key: str, *lists: Sequence[Any]) -> None:
    for items in lists:
        for item in items:
            if not isinstance(item, dict):
                raise PatchError(f"expected a map, but received a {_kind(item)}")
            if key not in item:
                raise PatchError(f"map: {_go_value(item)} does not contain declared merge key: {key}")


def _key_of(item: Any, key: str, maps: bool) -> Any:
    """What list elements are compared by: the merge key's value, or the element itself."""
    if maps:
        return _ident(item.get(key) if isinstance(item, dict) else None)
    return _ident(item)


def _positions(items: Sequence[Any], key: str, maps: bool) -> dict[Any, int]:
    out: dict[Any, int] = {}
    for i, item in enumerate(items):
        out.setdefault(_key_of(item, key, maps), i)
    return out


def _partition(merged: Sequence[Any], by: Sequence[Any], key: str, maps: bool) -> tuple[list[Any], list[Any]]:
    """Split merged into the items present in ``by`` and the server-only ones."""
    present = {_key_of(item, key, maps) for item in by}
    inside = [item for item in merged if _key_of(item, key, maps) in present]
    outside = [item for item in merged if _key_of(item, key, maps) not in present]
    return inside, outside


def _normalize_order(
    patch_items: list[Any],
    server_only: list[Any],
    patch_order: Sequence[Any],
    server_order: Sequence[Any],
    key: str,
    maps: bool,
) -> list[Any]:
    """normalizeElementOrder: patch items in patch order, server-only ones in live order, merged.

    A server-only item goes before a patch item only when both are in the live list and it
    comes first there, so items new to the list come before the server-only items after them.
    """
    if maps:
        _require_key(key, patch_items, patch_order, server_only, server_order)
    in_patch = _positions(patch_order, key, maps)
    in_server = _positions(server_order, key, maps)
    end = len(patch_order) + len(server_order)
    patch_items = sorted(patch_items, key=lambda i: in_patch.get(_key_of(i, key, maps), end))
    server_only = sorted(server_only, key=lambda i: in_server.get(_key_of(i, key, maps), end))
    out: list[Any] = []
    left, right = 0, 0
    while left < len(server_only) or right < len(patch_items):
        if left >= len(server_only):
            out.append(patch_items[right])
            right += 1
        elif right >= len(patch_items):
            out.append(server_only[left])
            left += 1
        else:
            li = in_server.get(_key_of(server_only[left], key, maps), -1)
            ri = in_server.get(_key_of(patch_items[right], key, maps), -1)
            if li >= 0 and ri >= 0 and li < ri:
                out.append(server_only[left])
                left += 1
            else:
                out.append(patch_items[right])
                right += 1
    return out


def _find(items: Sequence[Any], key: str, value: Any) -> int:
    wanted = _ident(value)
    for i, item in enumerate(items):
        if not isinstance(item, dict):
            raise PatchError(f"value for key {i} is not a map")
        if key in item and _ident(item[key]) == wanted:
            return i
    return -1


def _merge_slice(original: list[Any], patch: list[Any], fld: _Field, is_delete: bool, name: str) -> list[Any]:
    """mergeSlice: a list with the merge strategy, as a set of primitives or by merge key."""
    if not original and not patch:
        return original
    kind = _element_kind(original, patch)
    if kind != "map":
        if is_delete:
            gone = {_ident(item) for item in patch}
            return [item for item in original if _ident(item) not in gone]
        merged: list[Any] = []
        seen: set[Any] = set()
        for item in original + patch:
            if _ident(item) not in seen:
                seen.add(_ident(item))
                merged.append(item)
        patch_items, server_only = _partition(merged, patch, "", False)
        return _normalize_order(patch_items, server_only, patch, original, "", False)
    key = fld.key
    if not key:
        raise PatchError(f"cannot merge lists without merge key for {name}")
    # mergeSliceWithSpecialElements: {"$patch": "delete"|"replace"} elements
    plain: list[Any] = []
    replace = False
    for item in patch:
        if _PATCH not in item:
            plain.append(item)
            continue
        directive = item[_PATCH]
        if directive == "delete":
            if key not in item:
                raise PatchError(f"map: {_go_value(item)} does not contain declared merge key: {key}")
            gone = _ident(item[key])
            original = [o for o in original if key not in o or _ident(o[key]) != gone]
        elif directive == "replace":
            replace = True
        elif directive == "merge":
            raise PatchError("merging lists cannot yet be specified in the patch", code=400)
        else:
            raise PatchError(f"unknown patch type: {directive} in map: {_go_value(item)}", code=400)
    if replace:
        original, plain = _clean(plain), []
    # mergeSliceWithoutSpecialElements
    merged = list(original)
    for item in plain:
        if key not in item:
            raise PatchError(f"map: {_go_value(item)} does not contain declared merge key: {key}")
        at = _find(merged, key, item[key])
        if at >= 0:
            merged[at] = _merge_map(merged[at], item, fld.fields)
        else:
            merged.append(_clean(item))
    patch_items, server_only = _partition(merged, plain, key, True)
    return _normalize_order(patch_items, server_only, plain, original, key, True)


def _merge_slice_field(
    original: list[Any], patch: list[Any], fld: _Field, is_delete: bool, name: str
) -> list[Any]:
    """mergeSliceHandler: merge lists with the merge strategy (or a delete list), replace others."""
    if fld.strategy == "merge" or is_delete:
        return _merge_slice(original, patch, fld, is_delete, name)
    cleaned: list[Any] = _clean(patch)
    return cleaned


def _check_order(patch_list: Sequence[Any], order: Sequence[Any], key: str) -> None:
    """validatePatchWithSetOrderList: the patch list is a subsequence of $setElementOrder."""
    if not order or not patch_list:
        return
    items = list(patch_list)
    if key:
        _require_key(key, order)
        if any(not isinstance(item, dict) for item in items):
            raise PatchError("expected a map in the patch list")
        items = [item for item in items if item.get(_PATCH) != "delete"]
    at, pos = 0, 0
    while at < len(items) and pos < len(order):
        item = items[at]
        if isinstance(item, dict) and _PATCH in item:
            at += 1
            continue
        if key and key not in item:
            raise PatchError(f"map: {_go_value(item)} does not contain declared merge key: {key}")
        if _key_of(item, key, bool(key)) == _key_of(order[pos], key, bool(key)):
            at += 1
        pos += 1
    if at < len(items) and pos >= len(order):
        raise PatchError(
            f"The order in patch list:\n{_go_value(list(patch_list))}\n doesn't match "
            f"{_ORDER_PREFIX} list:\n{_go_value(list(order))}\n"
        )


def _apply_element_order(original: dict[str, Any], patch: dict[str, Any], schema: _Struct) -> None:
    """mergePatchIntoOriginal: merge each list named by a $setElementOrder, then order it."""
    for directive in [k for k in patch if k.startswith(_ORDER_PREFIX)]:
        order = patch.pop(directive)
        if not isinstance(order, list):
            raise PatchError("invalid patch format of setElementOrder list", code=400)
        name = _extract_key(directive, _ORDER_PREFIX)
        fld = schema.get(name, _PLAIN)
        found_original, found_patch = name in original, name in patch
        live = original.get(name, [])
        wanted = patch.pop(name, [])
        for value in (live, wanted):
            if not isinstance(value, list):
                raise PatchError(f"expected a []interface{{}}, but received a {_kind(value)}")
        if not found_original and not found_patch:
            continue
        _check_order(wanted, order, fld.key)
        merged = _merge_slice_field(live, wanted, fld, False, name) if found_patch else live
        maps = bool(fld.key) and _element_kind(merged, order) == "map"
        patch_items, server_only = _partition(merged, order, fld.key, maps)
        original[name] = _normalize_order(patch_items, server_only, order, live, fld.key, maps)


def _merge_map(original: dict[str, Any], patch: dict[str, Any], schema: _Struct) -> dict[str, Any]:
    """mergeMap: merge ``patch`` into ``original`` (both owned by the caller, both mutated)."""
    if _PATCH in patch:
        directive = patch.pop(_PATCH)
        if directive == "replace":
            replaced: dict[str, Any] = _clean(patch)
            return replaced
        if directive == "delete":
            return {}
        raise PatchError(f"unknown patch type: {directive} in map: {_go_value(patch)}", code=400)

    if _RETAIN_KEYS in patch:
        retain = patch.pop(_RETAIN_KEYS)
        if not isinstance(retain, list):
            raise PatchError("invalid patch format of retainKeys", code=400)
        keep = {k for k in retain if isinstance(k, str)}
        for key, value in patch.items():
            if value is None or key.startswith((_DELETE_PREFIX, _ORDER_PREFIX)):
                continue
            if key not in keep:
                raise PatchError("invalid patch format of retainKeys", code=400)
        for key in [k for k in original if k not in keep]:
            del original[key]

    _apply_element_order(original, patch, schema)

    for raw_key, value in patch.items():
        key, is_delete = raw_key, False
        if raw_key.startswith(_DELETE_PREFIX):
            key, is_delete = _extract_key(raw_key, _DELETE_PREFIX), True
        elif raw_key.startswith("$"):
            raise PatchError(f"unknown strategic merge patch directive: {raw_key}", code=400)

        if value is None:
            original.pop(key, None)
            continue
        if key not in original or _kind(original[key]) != _kind(value):
            if not is_delete:
                cleaned = _clean(value)
                if cleaned is _DROP:
                    original.pop(key, None)
                else:
                    original[key] = cleaned
            continue
        fld = schema.get(key, _PLAIN)
        if isinstance(value, dict):
            original[key] = _merge_map(original[key], value, fld.fields)
        elif isinstance(value, list):
            original[key] = _merge_slice_field(original[key], value, fld, is_delete, key)
        elif not is_delete:
            original[key] = value
    return original


def strategic_merge_patch(target: Any, patch: Any, kind: str) -> Any:
    """Apply a Kubernetes strategic merge patch to a copy of ``target``, an object of ``kind``.

    Kinds without a schema (custom resources) are refused with a 415, as the apiserver does.
    """
    schema = _SCHEMAS.get(kind)
    if schema is None:
        raise PatchError("strategic merge patch format is not supported", code=415)
    if not isinstance(patch, dict):
        raise PatchError(
            f"json: cannot unmarshal {_go_json_type(patch)} into Go value of type map[string]interface {{}}",
            code=400,
        )
    if target is not None and not isinstance(target, dict):
        raise PatchError(f"expected a map, but received a {_kind(target)}")
    _check_directives(patch)
    return _merge_map(copy.deepcopy(target or {}), copy.deepcopy(patch), schema)


def apply_patch(target: Any | None, patch: Any, kind: str | None) -> Any:
    """Server-side apply stand-in: create from the patch, else a strategic or a JSON merge patch."""
    if target is None:
        return copy.deepcopy(patch)
    if kind is not None and kind in SMP_KINDS:
        return strategic_merge_patch(target, patch, kind)
    return merge_patch(target, patch)
