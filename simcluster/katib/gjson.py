"""The part of GJSON path syntax that Katib's trial conditions use: parsed, checked and evaluated."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["GjsonError", "Query", "matches", "parse"]

# A query component: #(field==value)# keeps every match, #(field==value) keeps the first.
_QUERY = re.compile(r"^#\(\s*([A-Za-z0-9_\-]+)\s*(==|!=)\s*(.+?)\s*\)(#?)$")
_KEY = re.compile(r"^[A-Za-z0-9_\-]+$")


class GjsonError(ValueError):
    """A condition that uses GJSON syntax simcluster does not evaluate."""


@dataclass(frozen=True)
class Query:
    """One step of a path: an object key, a filter over an array, or ``[@this]``."""

    key: str = ""
    field: str = ""
    op: str = ""
    value: Any = None
    all_matches: bool = False
    wrap: bool = False  # [@this]: the current value in a one-element array


@dataclass(frozen=True)
class _Step:
    query: Query
    piped: bool  # reached through "|": applies to a filter's result as a whole, not to each element


def _split(path: str) -> list[tuple[str, str]]:
    """The components of ``path`` with the separator before each ("" for the first)."""
    parts: list[tuple[str, str]] = []
    depth, quoted, start, sep = 0, False, 0, ""
    for i, ch in enumerate(path):
        if ch == '"' and (i == 0 or path[i - 1] != "\\"):
            quoted = not quoted
        elif quoted:
            continue
        elif ch in "([":
            depth += 1
        elif ch in ")]":
            depth -= 1
        elif ch in ".|" and depth == 0:
            parts.append((sep, path[start:i]))
            sep, start = ch, i + 1
    parts.append((sep, path[start:]))
    return parts


def _literal(text: str, path: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise GjsonError(f"{path!r}: the value {text} is not a JSON literal") from exc


def parse(path: str) -> tuple[_Step, ...]:
    """The steps of ``path``; GjsonError names what simcluster does not evaluate."""
    if not path.strip():
        raise GjsonError("empty condition")
    steps: list[_Step] = []
    for sep, part in _split(path.strip()):
        if part == "[@this]":
            query = Query(wrap=True)
        elif found := _QUERY.match(part):
            field, op, value, all_ = found.groups()
            query = Query(field=field, op=op, value=_literal(value, path), all_matches=bool(all_))
        elif _KEY.match(part):
            query = Query(key=part)
        else:
            raise GjsonError(
                f"{path!r}: simcluster evaluates object keys, #(field==value)#, #(field!=value)# "
                f"and [@this] joined by '.' or '|', not {part!r}"
            )
        steps.append(_Step(query, sep == "|"))
    return tuple(steps)


def _evaluate(value: Any, steps: Sequence[_Step]) -> Any:
    if not steps or value is None:
        return value
    query, rest = steps[0].query, steps[1:]
    if query.wrap:
        return _evaluate([value], rest)
    if query.key:
        if isinstance(value, dict):
            return _evaluate(value.get(query.key), rest)
        if isinstance(value, list) and query.key.isdigit() and int(query.key) < len(value):
            return _evaluate(value[int(query.key)], rest)
        return None
    if not isinstance(value, list):
        return None
    kept = [
        item
        for item in value
        if isinstance(item, dict)
        and query.field in item
        and (item[query.field] == query.value) == (query.op == "==")
    ]
    if not query.all_matches:
        return _evaluate(kept[0], rest) if kept else None
    if rest and not rest[0].piped:
        # "." after #(...)# reaches into every match, as GJSON does
        mapped = [_evaluate(item, rest) for item in kept]
        return [item for item in mapped if item is not None]
    return _evaluate(kept, rest)


def matches(document: Any, path: str) -> Any:
    """What ``path`` selects from ``document``: Katib counts an object or a non-empty array as met."""
    result = _evaluate(document, parse(path))
    if isinstance(result, dict) or (isinstance(result, list) and result):
        return result
    return None
