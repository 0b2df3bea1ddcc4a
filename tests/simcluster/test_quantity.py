"""Tests for simcluster.quantity: resource.Quantity parsing, canonical formatting and sums."""

from __future__ import annotations

from decimal import Decimal

import pytest

from simcluster.quantity import (
    QuantityError,
    format_bytes,
    format_cpu,
    max_resources,
    parse_quantity,
    sum_resources,
)

FORMAT_MSG = "quantities must match the regular expression '^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$'"
SUFFIX_MSG = "unable to parse quantity's suffix"
NUMERIC_MSG = "unable to parse numeric part of quantity"
INT64_MAX = Decimal(2**63 - 1)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # plain numbers
        ("0", "0"),
        ("2", "2"),
        ("1.5", "1.5"),
        ("0.5", "0.5"),
        (".5", "0.5"),
        ("1.", "1"),
        ("007", "7"),
        ("+1", "1"),
        ("-1.5", "-1.5"),
        ("-0", "0"),
        ("-", "0"),  # apimachinery reads a lone sign as zero
        # decimal SI suffixes
        ("100m", "0.1"),
        ("1500m", "1.5"),
        ("250u", "0.00025"),
        ("5n", "0.000000005"),
        ("1k", "1000"),
        ("1M", "1000000"),
        ("2G", "2000000000"),
        ("1T", "1e12"),
        ("1P", "1e15"),
        ("1E", "1e18"),
        # binary SI suffixes
        ("1Ki", "1024"),
        ("1Mi", "1048576"),
        ("16Gi", "17179869184"),
        ("1Ti", str(2**40)),
        ("1Pi", str(2**50)),
        ("1Ei", str(2**60)),
        ("1.5Gi", "1610612736"),
        ("0.5Ki", "512"),
        # exponents
        ("1e3", "1000"),
        ("12E6", "12000000"),
        ("1e+3", "1000"),
        ("1e-3", "0.001"),
        ("1.5e2", "150"),
        # rounding up to nano precision (away from zero) and the int64 cap
        ("0.1n", "0.000000001"),
        ("1.0000000001", "1.000000001"),
        ("-0.0000000001", "-0.000000001"),
        ("123456789.123456789123", "123456789.123456790"),
        ("1e-99999", "0.000000001"),
        ("9999999999999999999999", str(INT64_MAX)),
        ("1e999999999", str(INT64_MAX)),
        ("-8Ei", str(-INT64_MAX)),
        # surrounding whitespace, as a quantity inside a JSON string
        (" 2 ", "2"),
        ("\t100m\n", "0.1"),
    ],
)
def test_parse_quantity(text: str, expected: str) -> None:
    assert parse_quantity(text) == Decimal(expected)


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (2, "2"),
        (0, "0"),
        (-3, "-3"),
        (2**70, str(INT64_MAX)),
        (0.5, "0.5"),
        (1.0, "1"),
        (1e-7, "0.0000001"),
        (1e16, "10000000000000000"),
    ],
)
def test_parse_quantity_numbers(value: int | float, expected: str) -> None:
    assert parse_quantity(value) == Decimal(expected)


def test_parse_quantity_keeps_small_exponents() -> None:
    # 12E6 comes back as a plain integer, not Decimal('1.2E+7')
    assert str(parse_quantity("12E6")) == "12000000"
    assert str(parse_quantity("2")) == "2"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", FORMAT_MSG),
        ("   ", FORMAT_MSG),
        ("abc", FORMAT_MSG),
        ("1 Gi", FORMAT_MSG),
        ("1.5.5", FORMAT_MSG),
        ("1e3.5", FORMAT_MSG),
        ("1Gi2x", FORMAT_MSG),
        ("--1", SUFFIX_MSG),  # the second sign starts the "suffix"
        ("1K", SUFFIX_MSG),
        ("1k2", SUFFIX_MSG),
        ("1KI", FORMAT_MSG),
        ("1mi", SUFFIX_MSG),
        ("1e", SUFFIX_MSG),
        ("1ee5", SUFFIX_MSG),
        ("1Gim", SUFFIX_MSG),
        ("1e99999999999999999999", SUFFIX_MSG),
        (".", NUMERIC_MSG),
        ("+.", NUMERIC_MSG),
        ("m", NUMERIC_MSG),
        ("Ki", NUMERIC_MSG),
        (True, FORMAT_MSG),
        (float("inf"), FORMAT_MSG),
        (float("nan"), FORMAT_MSG),
    ],
)
def test_parse_quantity_errors(value: str | float, message: str) -> None:
    with pytest.raises(QuantityError) as info:
        parse_quantity(value)
    assert str(info.value) == message


def test_quantity_error_is_value_error() -> None:
    with pytest.raises(ValueError, match="quantities must match"):
        parse_quantity("nope")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("0", "0"),
        ("-0", "0"),
        ("2", "2"),
        ("0.5", "500m"),
        ("1.5", "1500m"),
        ("0.1", "100m"),
        ("0.001", "1m"),
        ("0.0005", "500u"),
        ("0.0001", "100u"),
        ("1.2345", "1234500u"),
        ("1e-9", "1n"),
        ("1e-12", "1n"),  # rounded up to nano
        ("2000", "2k"),
        ("1E+3", "1k"),
        ("123456", "123456"),
        ("1500000", "1500k"),
        ("64", "64"),
        ("-0.25", "-250m"),
        ("1000000000", "1G"),
    ],
)
def test_format_cpu(value: str, expected: str) -> None:
    assert format_cpu(Decimal(value)) == expected


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("17179869184", "16Gi"),
        ("536870912", "512Mi"),
        ("1024", "1Ki"),
        ("1073741824", "1Gi"),
        (str(2**40 * 3), "3Ti"),
        (str(2**62), "4Ei"),
        ("1536", "1536"),  # not a whole multiple of 1Ki: plain bytes
        ("2000", "2000"),
        ("1500000", "1500000"),
        (str(2**63 - 1), str(2**63 - 1)),
        ("-2048", "-2Ki"),
        # under 1024, or fractional: Kubernetes falls back to DecimalSI
        ("0", "0"),
        ("100", "100"),
        ("1000", "1k"),
        ("0.5", "500m"),
        ("1024.5", "1024500m"),
    ],
)
def test_format_bytes(value: str, expected: str) -> None:
    assert format_bytes(Decimal(value)) == expected


@pytest.mark.parametrize("text", ["100m", "2", "1500m", "16Gi", "512Mi", "1Ki", "250u", "3k"])
def test_round_trip(text: str) -> None:
    formatter = format_bytes if text.endswith("i") else format_cpu
    assert formatter(parse_quantity(text)) == text


@pytest.mark.parametrize("bad", ["NaN", "Infinity", "-Infinity"])
def test_format_rejects_non_finite(bad: str) -> None:
    with pytest.raises(QuantityError):
        format_cpu(Decimal(bad))
    with pytest.raises(QuantityError):
        format_bytes(Decimal(bad))


@pytest.mark.parametrize(
    ("items", "expected"),
    [
        ([], {}),
        ([{}], {}),
        ([{"cpu": "100m"}], {"cpu": "0.1"}),
        (
            [{"cpu": "100m", "memory": "1Gi"}, {"cpu": "1.5", "nvidia.com/gpu": 1}],
            {"cpu": "1.6", "memory": "1073741824", "nvidia.com/gpu": "1"},
        ),
        ([{"memory": "512Mi"}, {"memory": "512Mi"}], {"memory": "1073741824"}),
        ([{"cpu": 0.5}, {"cpu": 2}], {"cpu": "2.5"}),
        ([{"cpu": "1e-10"}, {"cpu": "1e-10"}], {"cpu": "0.000000002"}),
    ],
)
def test_sum_resources(items: list[dict[str, str | int | float]], expected: dict[str, str]) -> None:
    assert sum_resources(items) == {k: Decimal(v) for k, v in expected.items()}


def test_sum_resources_rejects_bad_quantity() -> None:
    with pytest.raises(QuantityError, match="suffix"):
        sum_resources([{"cpu": "1"}, {"cpu": "1K"}])


def test_sum_resources_accepts_iterators() -> None:
    got = sum_resources(iter([{"cpu": "1"}, {"cpu": "1"}]))
    assert got == {"cpu": Decimal(2)}


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        ({}, {}, {}),
        ({"cpu": "1"}, {}, {"cpu": "1"}),
        ({}, {"cpu": "1"}, {"cpu": "1"}),
        ({"cpu": "1"}, {"cpu": "2"}, {"cpu": "2"}),
        ({"cpu": "3"}, {"cpu": "2"}, {"cpu": "3"}),
        (
            {"cpu": "0.5", "memory": "100"},
            {"cpu": "0.25", "nvidia.com/gpu": "1"},
            {"cpu": "0.5", "memory": "100", "nvidia.com/gpu": "1"},
        ),
    ],
)
def test_max_resources(a: dict[str, str], b: dict[str, str], expected: dict[str, str]) -> None:
    got = max_resources({k: Decimal(v) for k, v in a.items()}, {k: Decimal(v) for k, v in b.items()})
    assert got == {k: Decimal(v) for k, v in expected.items()}


def test_max_resources_leaves_inputs_alone() -> None:
    a = {"cpu": Decimal(1)}
    b = {"cpu": Decimal(2)}
    max_resources(a, b)
    assert a == {"cpu": Decimal(1)}
    assert b == {"cpu": Decimal(2)}
