"""Tests for simcluster.selectors: label and field selector parsing, matching and field sets."""

from __future__ import annotations

from typing import Any

import pytest

from simcluster.selectors import (
    FieldRequirement,
    FieldSelector,
    LabelRequirement,
    LabelSelector,
    SelectorError,
    field_set,
    label_selector_from_dict,
    parse_field_selector,
    parse_label_selector,
    supported_fields,
)

KEY_CHARS_MSG = (
    "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
    "alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for "
    "validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')"
)
VALUE_CHARS_MSG = (
    "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  "
    "or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"
)
SUBDOMAIN_MSG = (
    "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or "
    "'.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used "
    "for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
)


def req(key: str, op: str, *values: str) -> LabelRequirement:
    return LabelRequirement(key, op, frozenset(values))


# --- label selector parsing ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, ()),
        ("", ()),
        ("a=b", (req("a", "=", "b"),)),
        ("a==b", (req("a", "=", "b"),)),
        ("a!=b", (req("a", "!=", "b"),)),
        ("a", (req("a", "exists"),)),
        ("!a", (req("a", "!exists"),)),
        ("a in (x,y)", (req("a", "in", "x", "y"),)),
        ("a notin (x, y)", (req("a", "notin", "x", "y"),)),
        ("a in (x)", (req("a", "in", "x"),)),
        ("a>3", (req("a", "gt", "3"),)),
        ("a<3", (req("a", "lt", "3"),)),
        ("a=", (req("a", "=", ""),)),
        ("a=,b", (req("a", "=", ""), req("b", "exists"))),
        ("a in ()", (req("a", "in", ""),)),
        ("a in (,x)", (req("a", "in", "", "x"),)),
        ("a in (x,)", (req("a", "in", "", "x"),)),
        ("a in (x,,y)", (req("a", "in", "", "x", "y"),)),
        # keywords are ordinary identifiers where a key or value goes
        ("in in (in, notin)", (req("in", "in", "in", "notin"),)),
        ("notin=in", (req("notin", "=", "in"),)),
        # whitespace everywhere, requirements sorted by key
        (
            "  z = 1 ,\ty!=2 , x\tin( a ,b ) ,!w ,v  ",
            (
                req("v", "exists"),
                req("w", "!exists"),
                req("x", "in", "a", "b"),
                req("y", "!=", "2"),
                req("z", "=", "1"),
            ),
        ),
        (
            "example.com/app=web,k8s.io/x_y-z.1=A.b-C_d",
            (req("example.com/app", "=", "web"), req("k8s.io/x_y-z.1", "=", "A.b-C_d")),
        ),
        ("a=" + "v" * 63, (req("a", "=", "v" * 63),)),
        ("p" * 253 + "/" + "n" * 63, (req("p" * 253 + "/" + "n" * 63, "exists"),)),
    ],
)
def test_parse_label_selector(text: str | None, expected: tuple[LabelRequirement, ...]) -> None:
    assert parse_label_selector(text) == LabelSelector(expected)


def _key_error(key: str, detail: str) -> str:
    return f'unable to parse requirement: <nil>: Invalid value: "{key}": {detail}'


def _value_error(index: int, key: str, value: str, detail: str = VALUE_CHARS_MSG) -> str:
    prefix = f"unable to parse requirement: values[{index}][{key}]"
    return f'{prefix}: Invalid value: "{value}": {detail}'


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("a b", "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("a=b,", "found '', expected: identifier after ','"),
        ("a=b,,c", "found ',', expected: identifier after ','"),
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        ("=a", "found '=', expected: !, identifier, or 'end of string'"),
        ("(", "found '(', expected: !, identifier, or 'end of string'"),
        ("!", "unable to parse requirement: found '', expected: identifier"),
        ("!,a", "unable to parse requirement: found ',', expected: identifier"),
        ("!a=b", "found '=', expected: ',' or 'end of string'"),
        ("a in", "unable to parse requirement: found '' expected: '('"),
        ("a in x", "unable to parse requirement: found 'x' expected: '('"),
        ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("a in (x y)", "unable to parse requirement: found 'y', expected: ',' or ')'"),
        ("a in (x,,)", "unable to parse requirement: found ')', expected: ',', or identifier"),
        ("a in (=)", "unable to parse requirement: found '=', expected: ',', ')' or identifier"),
        ("a=(b)", "unable to parse requirement: found '(', expected: identifier"),
        ("a===b", "unable to parse requirement: found '=', expected: identifier"),
        ("a!b", "unable to parse requirement: found '!', expected: in, notin, =, ==, !=, gt, lt"),
        ("-a", _key_error("-a", "name part " + KEY_CHARS_MSG)),
        ("a.", _key_error("a.", "name part " + KEY_CHARS_MSG)),
        ("/a", _key_error("/a", "prefix part must be non-empty")),
        ("a/", _key_error("a/", "name part must be non-empty; name part " + KEY_CHARS_MSG)),
        ("Foo.com/a", _key_error("Foo.com/a", "prefix part " + SUBDOMAIN_MSG)),
        (
            "p" * 254 + "/a",
            _key_error("p" * 254 + "/a", "prefix part must be no more than 253 characters"),
        ),
        ("k" * 64, _key_error("k" * 64, "name part must be no more than 63 characters")),
        (
            "a/b/c",
            _key_error(
                "a/b/c",
                "a valid label key "
                + KEY_CHARS_MSG
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')",
            ),
        ),
        ("a=b/c", _value_error(0, "a", "b/c")),
        ("a=-b", _value_error(0, "a", "-b")),
        ("a in (z_, b)", _value_error(1, "a", "z_")),
        ("a=" + "v" * 64, _value_error(0, "a", "v" * 64, "must be no more than 63 characters")),
        (
            "a>x",
            'unable to parse requirement: values[0]: Invalid value: "x": '
            "for 'Gt', 'Lt' operators, the value must be an integer",
        ),
        ("a>-1", _value_error(0, "a", "-1")),
    ],
)
def test_parse_label_selector_errors(text: str, message: str) -> None:
    with pytest.raises(SelectorError) as info:
        parse_label_selector(text)
    assert str(info.value) == message


# --- label selector matching -----------------------------------------------------------------

LABELS = {"app": "web", "tier": "front", "n": "5", "empty": ""}


@pytest.mark.parametrize(
    ("text", "labels", "matches"),
    [
        ("", LABELS, True),
        ("", {}, True),
        ("", None, True),
        ("app=web", LABELS, True),
        ("app==web", LABELS, True),
        ("app=db", LABELS, False),
        ("missing=web", LABELS, False),
        ("app!=db", LABELS, True),
        ("app!=web", LABELS, False),
        ("missing!=web", LABELS, True),  # != on a missing key matches
        ("empty=", LABELS, True),
        ("missing=", LABELS, False),
        ("app", LABELS, True),
        ("missing", LABELS, False),
        ("!missing", LABELS, True),
        ("!app", LABELS, False),
        ("app in (web,db)", LABELS, True),
        ("app in (db)", LABELS, False),
        ("missing in (web)", LABELS, False),
        ("app notin (db)", LABELS, True),
        ("app notin (web,db)", LABELS, False),
        ("missing notin (web)", LABELS, True),  # notin on a missing key matches
        ("n>4", LABELS, True),
        ("n>5", LABELS, False),
        ("n<6", LABELS, True),
        ("n<5", LABELS, False),
        ("app>1", LABELS, False),  # not an integer label
        ("missing<1", LABELS, False),
        ("app=web,tier=front", LABELS, True),
        ("app=web,tier=back", LABELS, False),
        ("app=web", None, False),
        ("!app", None, True),
    ],
)
def test_label_selector_matches(text: str, labels: dict[str, str] | None, matches: bool) -> None:
    assert parse_label_selector(text).matches(labels) is matches


def test_label_selector_empty() -> None:
    assert parse_label_selector("").empty
    assert parse_label_selector(None).empty
    assert not parse_label_selector("a").empty


# --- metav1.LabelSelector --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("sel", "expected"),
    [
        (None, ()),
        ({}, ()),
        ({"matchLabels": {}, "matchExpressions": []}, ()),
        ({"matchLabels": None}, ()),
        ({"matchLabels": {"b": "2", "a": "1"}}, (req("a", "=", "1"), req("b", "=", "2"))),
        (
            {
                "matchLabels": {"app": "web"},
                "matchExpressions": [
                    {"key": "tier", "operator": "In", "values": ["front", "back"]},
                    {"key": "env", "operator": "NotIn", "values": ["prod"]},
                    {"key": "gpu", "operator": "Exists"},
                    {"key": "spot", "operator": "DoesNotExist", "values": []},
                ],
            },
            (
                req("app", "=", "web"),
                req("env", "notin", "prod"),
                req("gpu", "exists"),
                req("spot", "!exists"),
                req("tier", "in", "front", "back"),
            ),
        ),
    ],
)
def test_label_selector_from_dict(sel: dict[str, Any] | None, expected: tuple[LabelRequirement, ...]) -> None:
    assert label_selector_from_dict(sel) == LabelSelector(expected)


@pytest.mark.parametrize(
    ("sel", "labels", "matches"),
    [
        (None, {"a": "1"}, True),
        ({}, {}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "1", "b": "2"}, True),
        ({"matchLabels": {"a": "1"}}, {"a": "2"}, False),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {"a": "1"}, True),
        ({"matchExpressions": [{"key": "a", "operator": "In", "values": ["1"]}]}, {}, False),
        ({"matchExpressions": [{"key": "a", "operator": "NotIn", "values": ["1"]}]}, {}, True),
        ({"matchExpressions": [{"key": "a", "operator": "Exists"}]}, {"a": ""}, True),
        ({"matchExpressions": [{"key": "a", "operator": "DoesNotExist"}]}, {"a": ""}, False),
    ],
)
def test_label_selector_from_dict_matches(
    sel: dict[str, Any] | None, labels: dict[str, str], matches: bool
) -> None:
    assert label_selector_from_dict(sel).matches(labels) is matches


@pytest.mark.parametrize(
    ("sel", "message"),
    [
        (
            {"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]},
            '"Gt" is not a valid label selector operator',
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "in", "values": ["1"]}]},
            '"in" is not a valid label selector operator',
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": []}]},
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "NotIn"}]},
            "values: Invalid value: []string(nil): for 'in', 'notin' operators, values set can't be empty",
        ),
        (
            {"matchExpressions": [{"key": "a", "operator": "Exists", "values": ["x", "y"]}]},
            'values: Invalid value: []string{"x", "y"}: '
            "values set must be empty for exists and does not exist",
        ),
        ({"matchLabels": {"-a": "1"}}, 'key: Invalid value: "-a": name part ' + KEY_CHARS_MSG),
        ({"matchLabels": {"a": "1!"}}, 'values[0][a]: Invalid value: "1!": ' + VALUE_CHARS_MSG),
        (
            {"matchLabels": {"-a": "1!"}},
            '[key: Invalid value: "-a": name part '
            + KEY_CHARS_MSG
            + ', values[0][-a]: Invalid value: "1!": '
            + VALUE_CHARS_MSG
            + "]",
        ),
        ({"matchLabels": {"a": 1}}, "matchLabels must be an object of strings"),
        ({"matchLabels": ["a"]}, "matchLabels must be an object of strings"),
        ({"matchExpressions": {"key": "a"}}, "matchExpressions must be a list"),
        ({"matchExpressions": ["a"]}, "matchExpressions items must be objects"),
        (
            {"matchExpressions": [{"key": "a", "operator": "In", "values": "x"}]},
            "matchExpressions values must be a list of strings",
        ),
    ],
)
def test_label_selector_from_dict_errors(sel: dict[str, Any], message: str) -> None:
    with pytest.raises(SelectorError) as info:
        label_selector_from_dict(sel)
    assert str(info.value) == message


# --- field selectors -------------------------------------------------------------------------

POD_FIELDS = supported_fields("Pod")


def freq(field: str, op: str, value: str) -> FieldRequirement:
    return FieldRequirement(field, op, value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (None, ()),
        ("", ()),
        (",", ()),
        ("metadata.name=a", (freq("metadata.name", "=", "a"),)),
        ("metadata.name==a", (freq("metadata.name", "=", "a"),)),
        ("metadata.name!=a", (freq("metadata.name", "!=", "a"),)),
        ("metadata.name=", (freq("metadata.name", "=", ""),)),
        (
            "status.phase=Running,spec.nodeName!=n1",  # terms come back sorted
            (freq("spec.nodeName", "!=", "n1"), freq("status.phase", "=", "Running")),
        ),
        ("metadata.name=a,,", (freq("metadata.name", "=", "a"),)),
        (r"metadata.name=a\,b", (freq("metadata.name", "=", "a,b"),)),
        (r"metadata.name=a\=b", (freq("metadata.name", "=", "a=b"),)),
        (r"metadata.name=a\\b", (freq("metadata.name", "=", "a\\b"),)),
        (r"metadata.name=a\\", (freq("metadata.name", "=", "a\\"),)),
        (r"metadata.name!=\,\=\\", (freq("metadata.name", "!=", ",=\\"),)),
        ("metadata.name=a b", (freq("metadata.name", "=", "a b"),)),
        ("spec.host=n1", (freq("spec.nodeName", "=", "n1"),)),  # the old v1 alias
        ("status.podIPs=10.0.0.1", (freq("status.podIPs", "=", "10.0.0.1"),)),
    ],
)
def test_parse_field_selector(text: str | None, expected: tuple[FieldRequirement, ...]) -> None:
    assert parse_field_selector(text, POD_FIELDS) == FieldSelector(expected)


@pytest.mark.parametrize(
    ("text", "supported", "kind", "message"),
    [
        ("spec.foo=1", POD_FIELDS, None, "field label not supported: spec.foo"),
        ("spec.foo=1", POD_FIELDS, "Pod", "field label not supported: spec.foo"),
        # no whitespace trimming: the field is "metadata.name "
        ("metadata.name = a", POD_FIELDS, None, "field label not supported: metadata.name "),
        ("=a", POD_FIELDS, None, "field label not supported: "),
        # the first unsupported field in sorted order is the one reported
        ("z=1,b=2,metadata.name=x", POD_FIELDS, None, "field label not supported: b"),
        (
            "metadata.namespace=a",
            supported_fields("Node"),
            "Node",
            "field label not supported: metadata.namespace",
        ),
        (
            "spec.x=1",
            supported_fields("Job"),
            "Job",
            'field label "spec.x" not supported for Job',
        ),
        (
            "spec.x=1",
            supported_fields("ConfigMap"),
            "ConfigMap",
            '"spec.x" is not a known field selector: only "metadata.name", "metadata.namespace"',
        ),
        ("spec.x=1", supported_fields("Widget"), None, "field label not supported: spec.x"),
        (
            "metadata.name",
            POD_FIELDS,
            None,
            "invalid selector: 'metadata.name'; can't understand 'metadata.name'",
        ),
        (
            "metadata.name=a,bogus",
            POD_FIELDS,
            None,
            "invalid selector: 'metadata.name=a,bogus'; can't understand 'bogus'",
        ),
        (
            r"metadata.name=a\x",
            POD_FIELDS,
            None,
            "invalid field selector: invalid escape sequence: \\x",
        ),
        (
            "metadata.name=a\\",  # one trailing backslash
            POD_FIELDS,
            None,
            "invalid field selector: invalid escape sequence: \\",
        ),
        (
            "metadata.name=\\\\\\",  # three backslashes: one escaped, one dangling
            POD_FIELDS,
            None,
            "invalid field selector: invalid escape sequence: \\",
        ),
        (
            "metadata.name=a=b",
            POD_FIELDS,
            None,
            "invalid field selector: unescaped character in value: 61",
        ),
        # a parse error anywhere wins over an unsupported field
        (
            "spec.foo=1,metadata.name",
            POD_FIELDS,
            None,
            "invalid selector: 'spec.foo=1,metadata.name'; can't understand 'metadata.name'",
        ),
    ],
)
def test_parse_field_selector_errors(
    text: str, supported: frozenset[str], kind: str | None, message: str
) -> None:
    with pytest.raises(SelectorError) as info:
        parse_field_selector(text, supported, kind=kind)
    assert str(info.value) == message


@pytest.mark.parametrize(
    ("text", "fields", "matches"),
    [
        ("", {}, True),
        ("metadata.name=a", {"metadata.name": "a"}, True),
        ("metadata.name=a", {"metadata.name": "b"}, False),
        ("metadata.name!=a", {"metadata.name": "b"}, True),
        ("metadata.name!=a", {"metadata.name": "a"}, False),
        ("spec.nodeName=", {}, True),  # a missing field counts as ""
        ("spec.nodeName!=", {}, False),
        ("spec.nodeName!=", {"spec.nodeName": "n1"}, True),
        (r"metadata.name=a\,b", {"metadata.name": "a,b"}, True),
        (
            "metadata.name=a,metadata.namespace=ns",
            {"metadata.name": "a", "metadata.namespace": "ns"},
            True,
        ),
        (
            "metadata.name=a,metadata.namespace=ns",
            {"metadata.name": "a", "metadata.namespace": "other"},
            False,
        ),
    ],
)
def test_field_selector_matches(text: str, fields: dict[str, str], matches: bool) -> None:
    assert parse_field_selector(text, POD_FIELDS).matches(fields) is matches


@pytest.mark.parametrize(
    ("text", "field", "value"),
    [
        ("metadata.namespace=ns", "metadata.namespace", "ns"),
        ("metadata.namespace==ns,metadata.name=a", "metadata.name", "a"),
        ("metadata.namespace!=ns", "metadata.namespace", None),
        ("metadata.namespace!=x,metadata.namespace=ns", "metadata.namespace", "ns"),
        ("metadata.name=a", "metadata.namespace", None),
        ("", "metadata.name", None),
    ],
)
def test_field_selector_get(text: str, field: str, value: str | None) -> None:
    assert parse_field_selector(text, POD_FIELDS).get(field) == value


def test_field_selector_empty() -> None:
    assert parse_field_selector("", POD_FIELDS).empty
    assert not parse_field_selector("metadata.name=a", POD_FIELDS).empty


# --- field sets ------------------------------------------------------------------------------

POD = {
    "metadata": {"name": "p", "namespace": "ns"},
    "spec": {
        "nodeName": "n1",
        "restartPolicy": "Never",
        "schedulerName": "default-scheduler",
        "serviceAccountName": "sa",
        "hostNetwork": True,
    },
    "status": {
        "phase": "Running",
        "podIP": "10.0.0.9",
        "podIPs": [{"ip": "10.0.0.1"}, {"ip": "fd00::1"}],
        "nominatedNodeName": "n2",
    },
}

EVENT = {
    "metadata": {"name": "e", "namespace": "ns"},
    "involvedObject": {
        "kind": "Pod",
        "namespace": "ns",
        "name": "p",
        "uid": "u-1",
        "apiVersion": "v1",
        "resourceVersion": "42",
        "fieldPath": "spec.containers{c}",
    },
    "reason": "Scheduled",
    "reportingComponent": "default-scheduler",
    "source": {"component": "kubelet"},
    "type": "Normal",
}


@pytest.mark.parametrize(
    ("kind", "obj", "expected"),
    [
        (
            "Pod",
            POD,
            {
                "metadata.name": "p",
                "metadata.namespace": "ns",
                "spec.nodeName": "n1",
                "spec.restartPolicy": "Never",
                "spec.schedulerName": "default-scheduler",
                "spec.serviceAccountName": "sa",
                "spec.hostNetwork": "true",
                "status.phase": "Running",
                "status.podIP": "10.0.0.1",  # podIPs[0] wins, as in the apiserver
                "status.nominatedNodeName": "n2",
            },
        ),
        (
            "Pod",
            {"metadata": {"name": "p", "namespace": "ns"}, "status": {"podIP": "10.0.0.9"}},
            {
                "metadata.name": "p",
                "metadata.namespace": "ns",
                "spec.nodeName": "",
                "spec.restartPolicy": "",
                "spec.schedulerName": "",
                "spec.serviceAccountName": "",
                "spec.hostNetwork": "false",
                "status.phase": "",
                "status.podIP": "10.0.0.9",
                "status.nominatedNodeName": "",
            },
        ),
        (
            "Event",
            EVENT,
            {
                "metadata.name": "e",
                "metadata.namespace": "ns",
                "involvedObject.kind": "Pod",
                "involvedObject.namespace": "ns",
                "involvedObject.name": "p",
                "involvedObject.uid": "u-1",
                "involvedObject.apiVersion": "v1",
                "involvedObject.resourceVersion": "42",
                "involvedObject.fieldPath": "spec.containers{c}",
                "reason": "Scheduled",
                "reportingComponent": "default-scheduler",
                "source": "kubelet",
                "type": "Normal",
            },
        ),
        (
            "Node",
            {"metadata": {"name": "n1"}, "spec": {"unschedulable": True}},
            {"metadata.name": "n1", "spec.unschedulable": "true"},
        ),
        (
            "Node",
            {"metadata": {"name": "n1"}},
            {"metadata.name": "n1", "spec.unschedulable": "false"},
        ),
        (
            "Namespace",
            {"metadata": {"name": "ns"}, "status": {"phase": "Active"}},
            {"metadata.name": "ns", "status.phase": "Active"},
        ),
        (
            "Secret",
            {"metadata": {"name": "s", "namespace": "ns"}, "type": "kubernetes.io/tls"},
            {"metadata.name": "s", "metadata.namespace": "ns", "type": "kubernetes.io/tls"},
        ),
        (
            "Service",
            {"metadata": {"name": "s", "namespace": "ns"}, "spec": {"clusterIP": "10.96.0.1"}},
            {
                "metadata.name": "s",
                "metadata.namespace": "ns",
                "spec.clusterIP": "10.96.0.1",
                "spec.type": "",
            },
        ),
        (
            "Job",
            {"metadata": {"name": "j", "namespace": "ns"}, "status": {"succeeded": 2}},
            {"metadata.name": "j", "metadata.namespace": "ns", "status.successful": "2"},
        ),
        (
            "ConfigMap",
            {"metadata": {"name": "c", "namespace": "ns"}, "data": {"a": "b"}},
            {"metadata.name": "c", "metadata.namespace": "ns"},
        ),
        (
            "ClusterRole",
            {"metadata": {"name": "r"}},
            {"metadata.name": "r", "metadata.namespace": ""},
        ),
        ("Widget", {}, {"metadata.name": "", "metadata.namespace": ""}),
    ],
)
def test_field_set(kind: str, obj: dict[str, Any], expected: dict[str, str]) -> None:
    assert field_set(kind, obj) == expected


@pytest.mark.parametrize(
    ("event", "source"),
    [
        ({"source": {"component": "kubelet"}, "reportingComponent": "x"}, "kubelet"),
        ({"source": {}, "reportingComponent": "x"}, "x"),
        ({"reportingComponent": "x"}, "x"),
        ({}, ""),
        # events.k8s.io/v1 names
        ({"deprecatedSource": {"component": "kubelet"}, "reportingController": "x"}, "kubelet"),
        ({"reportingController": "x"}, "x"),
    ],
)
def test_event_source_field(event: dict[str, Any], source: str) -> None:
    assert field_set("Event", event)["source"] == source


def test_event_regarding_fallback() -> None:
    fields = field_set("Event", {"regarding": {"kind": "Node", "name": "n1"}})
    assert fields["involvedObject.kind"] == "Node"
    assert fields["involvedObject.name"] == "n1"


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        (
            "Pod",
            {
                "metadata.name",
                "metadata.namespace",
                "spec.nodeName",
                "spec.restartPolicy",
                "spec.schedulerName",
                "spec.serviceAccountName",
                "spec.hostNetwork",
                "status.phase",
                "status.podIP",
                "status.podIPs",
                "status.nominatedNodeName",
                "spec.host",
            },
        ),
        ("Node", {"metadata.name", "spec.unschedulable"}),
        ("Namespace", {"metadata.name", "status.phase"}),
        ("Secret", {"metadata.name", "metadata.namespace", "type"}),
        ("Service", {"metadata.name", "metadata.namespace", "spec.clusterIP", "spec.type"}),
        ("Job", {"metadata.name", "metadata.namespace", "status.successful"}),
        ("ReplicationController", {"metadata.name", "metadata.namespace", "status.replicas"}),
        ("ConfigMap", {"metadata.name", "metadata.namespace"}),
    ],
)
def test_supported_fields(kind: str, expected: set[str]) -> None:
    assert supported_fields(kind) == expected


def test_supported_fields_cover_event_field_set() -> None:
    assert supported_fields("Event") == set(field_set("Event", EVENT))
    assert "source" in supported_fields("Event")


@pytest.mark.parametrize(
    ("text", "matches"),
    [
        ("spec.nodeName=n1", True),
        ("spec.host=n1", True),
        ("spec.nodeName=n2", False),
        ("status.phase=Running,spec.hostNetwork=true", True),
        ("status.phase!=Running", False),
        ("status.podIP=10.0.0.1", True),
        ("status.podIPs=", True),  # accepted, but not in the field set: compares with ""
        ("metadata.namespace=ns,metadata.name=p", True),
        ("spec.restartPolicy=Always", False),
    ],
)
def test_pod_field_selector_end_to_end(text: str, matches: bool) -> None:
    selector = parse_field_selector(text, supported_fields("Pod"), kind="Pod")
    assert selector.matches(field_set("Pod", POD)) is matches
