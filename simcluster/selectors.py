"""Label and field selectors, parsed and matched the way the kube-apiserver does it."""

from __future__ import annotations

import re
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "FieldRequirement",
    "FieldSelector",
    "LabelRequirement",
    "LabelSelector",
    "SelectorError",
    "field_set",
    "label_selector_from_dict",
    "parse_field_selector",
    "parse_label_selector",
    "supported_fields",
]


class SelectorError(ValueError):
    """A selector the apiserver would refuse; the message is the apiserver's (a 400 BadRequest)."""


# ---------------------------------------------------------------------------------------------
# Go-flavoured message helpers (apimachinery's validation and field.Error texts)
# ---------------------------------------------------------------------------------------------

_GO_ESCAPES = {"\a": "\\a", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r", "\t": "\\t"}
_GO_ESCAPES["\v"] = "\\v"


def _go_quote(text: str) -> str:
    """Go's %q (strconv.Quote) for a string."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in _GO_ESCAPES:
            out.append(_GO_ESCAPES[ch])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append(f"\\x{ord(ch):02x}")
        elif ord(ch) < 0x10000:
            out.append(f"\\u{ord(ch):04x}")
        else:
            out.append(f"\\U{ord(ch):08x}")
    out.append('"')
    return "".join(out)


def _go_string_slice(values: Sequence[str] | None) -> str:
    """Go's %#v for a []string."""
    if values is None:
        return "[]string(nil)"
    return "[]string{" + ", ".join(_go_quote(v) for v in values) + "}"


def _regex_error(msg: str, fmt: str, *examples: str) -> str:
    if not examples:
        return f"{msg} (regex used for validation is '{fmt}')"
    msg += " (e.g. "
    for i, example in enumerate(examples):
        if i > 0:
            msg += " or "
        msg += f"'{example}', "
    return msg + f"regex used for validation is '{fmt}')"


def _invalid(path: str, bad_value: str, detail: str) -> str:
    """field.Invalid(path, value, detail).Error()."""
    return f"{path}: Invalid value: {bad_value}: {detail}"


def _aggregate(errors: Sequence[str]) -> str:
    """utilerrors.NewAggregate(errs).Error(): one message as is, several deduplicated in [..]."""
    seen: list[str] = []
    for message in errors:
        if message not in seen:
            seen.append(message)
    if len(seen) == 1:
        return seen[0]
    return "[" + ", ".join(seen) + "]"


_LABEL_KEY_FMT = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_KEY_ERR = (
    "must consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_LABEL_KEY_RE = re.compile(_LABEL_KEY_FMT)
_LABEL_VALUE_FMT = f"({_LABEL_KEY_FMT})?"
_LABEL_VALUE_ERR = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
    "and must start and end with an alphanumeric character"
)
_DNS1123_LABEL_FMT = "[a-z0-9]([-a-z0-9]*[a-z0-9])?"
_DNS1123_SUBDOMAIN_FMT = _DNS1123_LABEL_FMT + "(\\." + _DNS1123_LABEL_FMT + ")*"
_DNS1123_SUBDOMAIN_RE = re.compile(_DNS1123_SUBDOMAIN_FMT)
_DNS1123_SUBDOMAIN_ERR = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
    "'-' or '.', and must start and end with an alphanumeric character"
)
_LABEL_MAX = 63
_SUBDOMAIN_MAX = 253


def _blen(text: str) -> int:
    """Length in bytes, as Go's len() counts a string."""
    return len(text.encode("utf-8", "surrogatepass"))


def _label_key_errors(key: str) -> list[str]:
    """validation.IsQualifiedName / IsLabelKey."""
    errs: list[str] = []
    prefix, slash, rest = key.partition("/")
    if not slash:
        name = key
    elif "/" in rest:
        return [
            "a valid label key "
            + _regex_error(_LABEL_KEY_ERR, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
            + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"
        ]
    else:
        name = rest
        if not prefix:
            errs.append("prefix part must be non-empty")
        else:
            if _blen(prefix) > _SUBDOMAIN_MAX:
                errs.append(f"prefix part must be no more than {_SUBDOMAIN_MAX} characters")
            if not _DNS1123_SUBDOMAIN_RE.fullmatch(prefix):
                errs.append(
                    "prefix part "
                    + _regex_error(_DNS1123_SUBDOMAIN_ERR, _DNS1123_SUBDOMAIN_FMT, "example.com")
                )
    if not name:
        errs.append("name part must be non-empty")
    elif _blen(name) > _LABEL_MAX:
        errs.append(f"name part must be no more than {_LABEL_MAX} characters")
    if not _LABEL_KEY_RE.fullmatch(name):
        errs.append(
            "name part " + _regex_error(_LABEL_KEY_ERR, _LABEL_KEY_FMT, "MyName", "my.name", "123-abc")
        )
    return errs


def _label_value_errors(value: str) -> list[str]:
    """validation.IsValidLabelValue."""
    errs: list[str] = []
    if _blen(value) > _LABEL_MAX:
        errs.append(f"must be no more than {_LABEL_MAX} characters")
    if value and not _LABEL_KEY_RE.fullmatch(value):
        errs.append(_regex_error(_LABEL_VALUE_ERR, _LABEL_VALUE_FMT, "MyValue", "my_value", "12345"))
    return errs


_INT64_RE = re.compile(r"[+-]?[0-9]+")
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1


def _parse_int64(text: str) -> int | None:
    """strconv.ParseInt(text, 10, 64), None where Go gives an error."""
    if not _INT64_RE.fullmatch(text):
        return None
    number = int(text)
    return number if _INT64_MIN <= number <= _INT64_MAX else None


# ---------------------------------------------------------------------------------------------
# Label selectors
# ---------------------------------------------------------------------------------------------

#: The requirement operators. "gt"/"lt" come only from the string syntax ("k>1", "k<1").
LABEL_OPERATORS = frozenset({"=", "!=", "in", "notin", "exists", "!exists", "gt", "lt"})


@dataclass(frozen=True)
class LabelRequirement:
    """One term of a label selector: key, operator and (for set/exact operators) values."""

    key: str
    op: str
    values: frozenset[str] = frozenset()

    def matches(self, labels: Mapping[str, str]) -> bool:
        present = self.key in labels
        if self.op in ("=", "in"):
            return present and labels[self.key] in self.values
        if self.op in ("!=", "notin"):
            return not present or labels[self.key] not in self.values
        if self.op == "exists":
            return present
        if self.op == "!exists":
            return not present
        if self.op in ("gt", "lt") and present and len(self.values) == 1:
            have = _parse_int64(labels[self.key])
            want = _parse_int64(next(iter(self.values)))
            if have is None or want is None:
                return False
            return have > want if self.op == "gt" else have < want
        return False


@dataclass(frozen=True)
class LabelSelector:
    """The AND of its requirements; no requirements selects everything."""

    requirements: tuple[LabelRequirement, ...] = ()

    def matches(self, labels: Mapping[str, str] | None) -> bool:
        have: Mapping[str, str] = labels if labels is not None else {}
        return all(req.matches(have) for req in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements


def _new_requirement(key: str, op: str, values: Sequence[str] | None) -> LabelRequirement:
    """labels.NewRequirement: validate and build, with the apiserver's error text."""
    errs: list[str] = []
    key_errs = _label_key_errors(key)
    if key_errs:
        errs.append(_invalid("key", _go_quote(key), "; ".join(key_errs)))
    vals = list(values) if values is not None else []
    if op in ("in", "notin"):
        if not vals:
            errs.append(
                _invalid(
                    "values",
                    _go_string_slice(values),
                    "for 'in', 'notin' operators, values set can't be empty",
                )
            )
    elif op in ("=", "!="):
        if len(vals) != 1:
            errs.append(
                _invalid(
                    "values",
                    _go_string_slice(values),
                    "exact-match compatibility requires one single value",
                )
            )
    elif op in ("exists", "!exists"):
        if vals:
            errs.append(
                _invalid(
                    "values",
                    _go_string_slice(values),
                    "values set must be empty for exists and does not exist",
                )
            )
    elif op in ("gt", "lt"):
        if len(vals) != 1:
            errs.append(
                _invalid(
                    "values",
                    _go_string_slice(values),
                    "for 'Gt', 'Lt' operators, exactly one value is required",
                )
            )
        for i, val in enumerate(vals):
            if _parse_int64(val) is None:
                errs.append(
                    _invalid(
                        f"values[{i}]",
                        _go_quote(val),
                        "for 'Gt', 'Lt' operators, the value must be an integer",
                    )
                )
    else:
        errs.append(f"operator: Unsupported value: {_go_quote(op)}")
    for i, val in enumerate(vals):
        val_errs = _label_value_errors(val)
        if val_errs:
            errs.append(_invalid(f"values[{i}][{key}]", _go_quote(val), "; ".join(val_errs)))
    if errs:
        raise SelectorError(_aggregate(errs))
    return LabelRequirement(key=key, op=op, values=frozenset(vals))


# Tokens of the label selector lexer (apimachinery labels/selector.go).
_EOS = "end"
_IDENT = "identifier"
_CLOSE, _COMMA, _NOT, _DEQ, _EQ, _GT = ")", ",", "!", "==", "=", ">"
_IN, _LT, _NEQ, _NOTIN, _OPEN = "in", "<", "!=", "notin", "("
_TOKENS = frozenset({_CLOSE, _COMMA, _NOT, _DEQ, _EQ, _GT, _IN, _LT, _NEQ, _NOTIN, _OPEN})
_SPECIAL = frozenset("=!(),><")
_WHITESPACE = frozenset(" \t\r\n")

_Token = tuple[str, str]  # (kind, literal)


def _lex(text: str) -> Iterator[_Token]:
    pos, end = 0, len(text)
    while True:
        while pos < end and text[pos] in _WHITESPACE:
            pos += 1
        if pos >= end:
            yield (_EOS, "")
            return
        if text[pos] in _SPECIAL:
            # longest run of special symbols that is still a known operator
            literal = text[pos]
            pos += 1
            while pos < end and text[pos] in _SPECIAL and literal + text[pos] in _TOKENS:
                literal += text[pos]
                pos += 1
            yield (literal, literal)
        else:
            start = pos
            while pos < end and text[pos] not in _SPECIAL and text[pos] not in _WHITESPACE:
                pos += 1
            literal = text[start:pos]
            yield (literal if literal in (_IN, _NOTIN) else _IDENT, literal)


class _LabelParser:
    """A port of apimachinery's recursive-descent label selector parser."""

    def __init__(self, text: str) -> None:
        self._items = list(_lex(text))
        self._pos = 0

    def _lookahead(self, values: bool = True) -> _Token:
        kind, literal = self._items[self._pos]
        if values and kind in (_IN, _NOTIN):
            kind = _IDENT
        return kind, literal

    def _consume(self, values: bool = True) -> _Token:
        token = self._lookahead(values)
        self._pos += 1
        return token

    def parse(self) -> list[LabelRequirement]:
        requirements: list[LabelRequirement] = []
        while True:
            kind, literal = self._lookahead()
            if kind in (_IDENT, _NOT):
                try:
                    requirements.append(self._requirement())
                except SelectorError as exc:
                    raise SelectorError(f"unable to parse requirement: {exc}") from None
                kind, literal = self._consume()
                if kind == _EOS:
                    return requirements
                if kind == _COMMA:
                    kind2, literal2 = self._lookahead()
                    if kind2 not in (_IDENT, _NOT):
                        raise SelectorError(f"found '{literal2}', expected: identifier after ','")
                else:
                    raise SelectorError(f"found '{literal}', expected: ',' or 'end of string'")
            elif kind == _EOS:
                return requirements
            else:
                raise SelectorError(f"found '{literal}', expected: !, identifier, or 'end of string'")

    def _requirement(self) -> LabelRequirement:
        op: str | None = None
        kind, literal = self._consume()
        if kind == _NOT:
            op = "!exists"
            kind, literal = self._consume()
        if kind != _IDENT:
            raise SelectorError(f"found '{literal}', expected: identifier")
        key_errs = _label_key_errors(literal)
        if key_errs:
            raise SelectorError(_invalid("<nil>", _go_quote(literal), "; ".join(key_errs)))
        key = literal
        if op is None and self._lookahead()[0] in (_EOS, _COMMA):
            op = "exists"
        if op is not None:
            return _new_requirement(key, op, [])
        op = self._operator()
        values = self._set_values() if op in ("in", "notin") else self._exact_value()
        return _new_requirement(key, op, sorted(values))

    def _operator(self) -> str:
        kind, literal = self._consume(values=False)
        ops = {_IN: "in", _NOTIN: "notin", _EQ: "=", _DEQ: "=", _NEQ: "!=", _GT: "gt", _LT: "lt"}
        if kind not in ops:
            raise SelectorError(f"found '{literal}', expected: in, notin, =, ==, !=, gt, lt")
        return ops[kind]

    def _set_values(self) -> set[str]:
        kind, literal = self._consume()
        if kind != _OPEN:
            raise SelectorError(f"found '{literal}' expected: '('")
        kind, literal = self._lookahead()
        if kind in (_IDENT, _COMMA):
            values = self._identifier_list()
            if self._consume()[0] != _CLOSE:
                raise SelectorError(f"found '{literal}', expected: ')'")
            return values
        if kind == _CLOSE:
            self._consume()
            return {""}
        raise SelectorError(f"found '{literal}', expected: ',', ')' or identifier")

    def _identifier_list(self) -> set[str]:
        values: set[str] = set()
        while True:
            kind, literal = self._consume()
            if kind == _IDENT:
                values.add(literal)
                kind2, literal2 = self._lookahead()
                if kind2 == _COMMA:
                    continue
                if kind2 == _CLOSE:
                    return values
                raise SelectorError(f"found '{literal2}', expected: ',' or ')'")
            if kind == _COMMA:
                if not values:
                    values.add("")  # "(,"
                kind2, _ = self._lookahead()
                if kind2 == _CLOSE:
                    values.add("")  # ",)"
                    return values
                if kind2 == _COMMA:
                    self._consume()
                    values.add("")  # ",,"
            else:
                raise SelectorError(f"found '{literal}', expected: ',', or identifier")

    def _exact_value(self) -> set[str]:
        kind, _ = self._lookahead()
        if kind in (_EOS, _COMMA):
            return {""}
        kind, literal = self._consume()
        if kind == _IDENT:
            return {literal}
        raise SelectorError(f"found '{literal}', expected: identifier")


def parse_label_selector(text: str | None) -> LabelSelector:
    """Parse the ?labelSelector= string syntax; "" or None selects everything.

    Supports "k=v", "k==v", "k!=v", "k", "!k", "k in (a,b)", "k notin (a,b)", and "k>1", "k<1"
    (integer comparisons, as the apiserver accepts them); commas AND the terms together.
    """
    if not text:
        return LabelSelector()
    requirements = _LabelParser(text).parse()
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


_EXPRESSION_OPS = {"In": "in", "NotIn": "notin", "Exists": "exists", "DoesNotExist": "!exists"}


def _string_list(raw: Any, where: str) -> list[str] | None:
    if raw is None:
        return None
    if not isinstance(raw, list) or not all(isinstance(v, str) for v in raw):
        raise SelectorError(f"{where} must be a list of strings")
    return list(raw)


def label_selector_from_dict(sel: Mapping[str, Any] | None) -> LabelSelector:
    """metav1.LabelSelector (matchLabels AND matchExpressions) to a selector.

    None and {} select everything. (The apiserver's LabelSelectorAsSelector makes a nil selector
    match nothing; callers that need that reading must check for None themselves.)
    """
    if sel is None:
        return LabelSelector()
    if not isinstance(sel, Mapping):
        raise SelectorError("label selector must be an object")
    match_labels = sel.get("matchLabels") or {}
    match_expressions = sel.get("matchExpressions") or []
    if not isinstance(match_labels, Mapping):
        raise SelectorError("matchLabels must be an object of strings")
    if not isinstance(match_expressions, list):
        raise SelectorError("matchExpressions must be a list")
    requirements: list[LabelRequirement] = []
    for key in sorted(match_labels):
        value = match_labels[key]
        if not isinstance(key, str) or not isinstance(value, str):
            raise SelectorError("matchLabels must be an object of strings")
        requirements.append(_new_requirement(key, "=", [value]))
    for expr in match_expressions:
        if not isinstance(expr, Mapping):
            raise SelectorError("matchExpressions items must be objects")
        key = expr.get("key", "")
        operator = expr.get("operator", "")
        if not isinstance(key, str) or not isinstance(operator, str):
            raise SelectorError("matchExpressions key and operator must be strings")
        if operator not in _EXPRESSION_OPS:
            raise SelectorError(f"{_go_quote(operator)} is not a valid label selector operator")
        values = _string_list(expr.get("values"), "matchExpressions values")
        requirements.append(_new_requirement(key, _EXPRESSION_OPS[operator], values or None))
    return LabelSelector(tuple(sorted(requirements, key=lambda r: r.key)))


# ---------------------------------------------------------------------------------------------
# Field selectors
# ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class FieldRequirement:
    """One term of a field selector: field "=" or "!=" value (value unescaped)."""

    field: str
    op: str
    value: str

    def matches(self, fields: Mapping[str, str]) -> bool:
        have = fields.get(self.field, "")
        return have == self.value if self.op == "=" else have != self.value


@dataclass(frozen=True)
class FieldSelector:
    """The AND of its requirements; no requirements selects everything."""

    requirements: tuple[FieldRequirement, ...] = ()

    def matches(self, fields: Mapping[str, str]) -> bool:
        return all(req.matches(fields) for req in self.requirements)

    @property
    def empty(self) -> bool:
        return not self.requirements

    def get(self, field: str) -> str | None:
        """The value an "=" term requires of this field (for index lookups), else None."""
        for req in self.requirements:
            if req.field == field and req.op == "=":
                return req.value
        return None


def _split_terms(text: str) -> list[str]:
    """Split on commas that are not backslash-escaped (escapes kept)."""
    terms: list[str] = []
    start = 0
    in_slash = False
    for i, ch in enumerate(text):
        if in_slash:
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch == ",":
            terms.append(text[start:i])
            start = i + 1
    terms.append(text[start:])
    return terms


def _split_term(term: str) -> tuple[str, str, str] | None:
    """First operator occurrence splits lhs and rhs; the lhs knows no escapes."""
    for i in range(len(term)):
        for op in ("!=", "==", "="):
            if term.startswith(op, i):
                return term[:i], op, term[i + len(op) :]
    return None


def _unescape(value: str) -> str:
    """fields.UnescapeValue."""
    out: list[str] = []
    in_slash = False
    for ch in value:
        if in_slash:
            if ch not in "\\,=":
                raise SelectorError(f"invalid field selector: invalid escape sequence: \\{ch}")
            out.append(ch)
            in_slash = False
        elif ch == "\\":
            in_slash = True
        elif ch in ",=":
            # Go prints the rune with %v: its code point number
            raise SelectorError(f"invalid field selector: unescaped character in value: {ord(ch)}")
        else:
            out.append(ch)
    if in_slash:
        raise SelectorError("invalid field selector: invalid escape sequence: \\")
    return "".join(out)


#: Kinds with their own field label conversion, and the text it gives for an unknown field.
_UNSUPPORTED_FIELD_MESSAGES = {
    "Job": "field label {quoted} not supported for Job",
}
_CONVERTED_KINDS = frozenset(
    {"Pod", "Node", "ReplicationController", "Event", "Namespace", "Secret", "Service", "Job"}
)


def _unsupported_field(field: str, kind: str | None) -> SelectorError:
    if kind is None or kind in _CONVERTED_KINDS:
        template = _UNSUPPORTED_FIELD_MESSAGES.get(kind or "", "field label not supported: {raw}")
        return SelectorError(template.format(raw=field, quoted=_go_quote(field)))
    # runtime.DefaultMetaV1FieldSelectorConversion, for built-in kinds without their own
    return SelectorError(
        f'{_go_quote(field)} is not a known field selector: only "metadata.name", "metadata.namespace"'
    )


def parse_field_selector(
    text: str | None, supported: Collection[str], *, kind: str | None = None
) -> FieldSelector:
    """Parse the ?fieldSelector= syntax ("a=b", "a==b", "a!=b", comma-AND, "\\," "\\=" "\\\\").

    Terms are taken as the apiserver takes them: no whitespace trimming, sorted before checking,
    the first "!=", "==" or "=" splits field from value. A field outside `supported` raises
    SelectorError('field label not supported: <field>') (custom resources and the core kinds
    with their own field labels). Pass `kind` for a built-in kind to get the text the apiserver
    gives for that kind: Job's own text, or the generic '"x" is not a known field selector: ...'
    for kinds with only metadata.name/metadata.namespace.
    """
    if not text:
        return FieldSelector()
    parsed: list[FieldRequirement] = []
    for part in sorted(_split_terms(text)):
        if not part:
            continue
        split = _split_term(part)
        if split is None:
            raise SelectorError(f"invalid selector: '{text}'; can't understand '{part}'")
        lhs, op, rhs = split
        parsed.append(FieldRequirement(lhs, "!=" if op == "!=" else "=", _unescape(rhs)))
    requirements: list[FieldRequirement] = []
    for req in parsed:
        field = req.field
        if field not in supported:
            raise _unsupported_field(field, kind)
        if field == "spec.host":  # v1 Pod alias kept for old clients
            field = "spec.nodeName"
        requirements.append(FieldRequirement(field, req.op, req.value))
    return FieldSelector(tuple(requirements))


def _str(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else str(value)


def _get(obj: Mapping[str, Any], *path: str) -> Any:
    cur: Any = obj
    for part in path:
        if not isinstance(cur, Mapping):
            return None
        cur = cur.get(part)
    return cur


def _pod_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    pod_ips = _get(obj, "status", "podIPs")
    pod_ip: Any = None
    if isinstance(pod_ips, list) and pod_ips and isinstance(pod_ips[0], Mapping):
        pod_ip = pod_ips[0].get("ip")
    if not pod_ip:
        pod_ip = _get(obj, "status", "podIP")
    return {
        "spec.nodeName": _str(_get(obj, "spec", "nodeName")),
        "spec.restartPolicy": _str(_get(obj, "spec", "restartPolicy")),
        "spec.schedulerName": _str(_get(obj, "spec", "schedulerName")),
        "spec.serviceAccountName": _str(_get(obj, "spec", "serviceAccountName")),
        "spec.hostNetwork": _str(bool(_get(obj, "spec", "hostNetwork"))),
        "status.phase": _str(_get(obj, "status", "phase")),
        "status.podIP": _str(pod_ip),
        "status.nominatedNodeName": _str(_get(obj, "status", "nominatedNodeName")),
    }


def _event_fields(obj: Mapping[str, Any]) -> dict[str, str]:
    # core/v1 names first, events.k8s.io/v1 names as the fallback
    involved = _get(obj, "involvedObject") or _get(obj, "regarding") or {}
    if not isinstance(involved, Mapping):
        involved = {}
    reporting = _str(_get(obj, "reportingComponent") or _get(obj, "reportingController"))
    source = _str(_get(obj, "source", "component") or _get(obj, "deprecatedSource", "component"))
    return {
        "involvedObject.kind": _str(involved.get("kind")),
        "involvedObject.namespace": _str(involved.get("namespace")),
        "involvedObject.name": _str(involved.get("name")),
        "involvedObject.uid": _str(involved.get("uid")),
        "involvedObject.apiVersion": _str(involved.get("apiVersion")),
        "involvedObject.resourceVersion": _str(involved.get("resourceVersion")),
        "involvedObject.fieldPath": _str(involved.get("fieldPath")),
        "reason": _str(_get(obj, "reason")),
        "reportingComponent": reporting,
        "source": source or reporting,
        "type": _str(_get(obj, "type")),
    }


def field_set(kind: str, obj: Mapping[str, Any]) -> dict[str, str]:
    """The apiserver's selectable fields of an object of this kind, every value a string."""
    fields = {"metadata.name": _str(_get(obj, "metadata", "name"))}
    if kind not in ("Node", "Namespace"):
        fields["metadata.namespace"] = _str(_get(obj, "metadata", "namespace"))
    if kind == "Pod":
        fields.update(_pod_fields(obj))
    elif kind == "Event":
        fields.update(_event_fields(obj))
    elif kind == "Node":
        fields["spec.unschedulable"] = _str(bool(_get(obj, "spec", "unschedulable")))
    elif kind == "Namespace":
        fields["status.phase"] = _str(_get(obj, "status", "phase"))
    elif kind == "Secret":
        fields["type"] = _str(_get(obj, "type"))
    elif kind == "Service":
        fields["spec.clusterIP"] = _str(_get(obj, "spec", "clusterIP"))
        fields["spec.type"] = _str(_get(obj, "spec", "type"))
    elif kind == "ReplicationController":
        fields["status.replicas"] = _str(int(_get(obj, "status", "replicas") or 0))
    elif kind == "Job":
        fields["status.successful"] = _str(int(_get(obj, "status", "succeeded") or 0))
    return fields


# Accepted by the apiserver's field label conversion though not in the field set
# (so they compare against ""), or renamed by it.
_EXTRA_SUPPORTED = {"Pod": frozenset({"status.podIPs", "spec.host"})}


def supported_fields(kind: str) -> frozenset[str]:
    """The field labels a field selector on this kind may name."""
    return frozenset(field_set(kind, {})) | _EXTRA_SUPPORTED.get(kind, frozenset())
