"""Kubernetes resource.Quantity: parse quantities to Decimal and format them canonically."""

from __future__ import annotations

import decimal
import math
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal

__all__ = [
    "QuantityError",
    "format_bytes",
    "format_cpu",
    "max_resources",
    "parse_quantity",
    "sum_resources",
]


class QuantityError(ValueError):
    """A quantity the apiserver would refuse; the message is apimachinery's."""


_SPLIT_RE_TEXT = "^([+-]?[0-9.]+)([eEinumkKMGTP]*[-+]?[0-9]*)$"
_ERR_FORMAT = f"quantities must match the regular expression '{_SPLIT_RE_TEXT}'"
_ERR_SUFFIX = "unable to parse quantity's suffix"
_ERR_NUMERIC = "unable to parse numeric part of quantity"

_DECIMAL_SUFFIXES = {"n": -9, "u": -6, "m": -3, "": 0, "k": 3, "M": 6, "G": 9, "T": 12}
_DECIMAL_SUFFIXES |= {"P": 15, "E": 18}
_BINARY_SUFFIXES = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL_BY_EXPONENT = {exp: suffix for suffix, exp in _DECIMAL_SUFFIXES.items()}
_BINARY_BY_POWER = ["", "Ki", "Mi", "Gi", "Ti", "Pi", "Ei"]
_SUFFIX_CHARS = frozenset("eEinumkKMGTP")
_DIGITS = frozenset("0123456789")
_NUMBER_RE = re.compile(r"[+-]?([0-9]+\.?[0-9]*|\.[0-9]+)")
_EXPONENT_RE = re.compile(r"[+-]?[0-9]+")

#: Quantities are capped at the int64 maximum and kept to nano precision, rounding away from 0.
_MAX = Decimal(2**63 - 1)
_NANO = Decimal("1e-9")
_ONE = Decimal(1)
# Enough digits for any capped value at nano precision (and for sums of many of them).
_CONTEXT = decimal.Context(prec=80, Emax=decimal.MAX_EMAX, Emin=decimal.MIN_EMIN)


def _split(text: str) -> tuple[str, str]:
    """parseQuantityString: (the signed numeric part, the suffix), or QuantityError."""
    pos, end = 0, len(text)
    if text[0] in "+-":
        pos += 1
    while pos < end and text[pos] == "0":  # leading zeros
        pos += 1
    if pos >= end:
        return "0", ""
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos < end and text[pos] == ".":
        pos += 1
        while pos < end and text[pos] in _DIGITS:
            pos += 1
    value, suffix_start = text[:pos], pos
    while pos < end and text[pos] in _SUFFIX_CHARS:
        pos += 1
    if pos < end and text[pos] in "+-":
        pos += 1
    while pos < end and text[pos] in _DIGITS:
        pos += 1
    if pos < end:
        raise QuantityError(_ERR_FORMAT)
    return value, text[suffix_start:]


def _interpret(suffix: str) -> tuple[int, int]:
    """(base, exponent) of a suffix: 10**exponent or 2**exponent; QuantityError if unknown."""
    if suffix in _DECIMAL_SUFFIXES:
        return 10, _DECIMAL_SUFFIXES[suffix]
    if suffix in _BINARY_SUFFIXES:
        return 2, _BINARY_SUFFIXES[suffix]
    if len(suffix) > 1 and suffix[0] in "eE" and _EXPONENT_RE.fullmatch(suffix[1:]):
        exponent = int(suffix[1:])
        if -(2**63) <= exponent < 2**63:
            # Go parses an int64 and keeps it as an int32
            return 10, (exponent + 2**31) % 2**32 - 2**31
    raise QuantityError(_ERR_SUFFIX)


def _exponent(value: Decimal) -> int:
    exponent = value.as_tuple().exponent
    if not isinstance(exponent, int):
        raise QuantityError(f"quantity must be a finite number, not {value}")
    return exponent


def _round_nano(value: Decimal) -> Decimal:
    """Cap the magnitude at the int64 maximum and round it up to nano precision."""
    magnitude = value.copy_abs()
    exponent = _exponent(magnitude)
    if magnitude > _MAX:
        magnitude = _MAX
    elif exponent < -9:
        magnitude = magnitude.quantize(_NANO, rounding=decimal.ROUND_UP, context=_CONTEXT)
    elif exponent > 0:  # "1E+3" -> "1000"
        magnitude = magnitude.quantize(_ONE, context=_CONTEXT)
    if magnitude == 0:
        return Decimal(0)
    return magnitude.copy_negate() if value < 0 else magnitude


def parse_quantity(value: str | int | float) -> Decimal:
    """Parse a quantity ("100m", "1.5Gi", "12E6", 2, 0.5) the way resource.ParseQuantity does.

    Strings are stripped of surrounding whitespace (as a quantity in JSON is). The result is
    capped at 2**63-1 and rounded up (away from zero) to a multiple of 1e-9.
    """
    if isinstance(value, bool):
        raise QuantityError(_ERR_FORMAT)
    if isinstance(value, int):
        text = str(value)
    elif isinstance(value, float):
        if not math.isfinite(value):
            raise QuantityError(_ERR_FORMAT)
        text = repr(value)
    elif isinstance(value, str):
        text = value.strip()
    else:
        raise QuantityError(_ERR_FORMAT)
    if not text:
        raise QuantityError(_ERR_FORMAT)
    number, suffix = _split(text)
    base, exponent = _interpret(suffix)
    if not _NUMBER_RE.fullmatch(number):
        raise QuantityError(_ERR_NUMERIC)
    amount = Decimal(number)
    if base == 10:
        amount = amount.scaleb(exponent, context=_CONTEXT)
    else:
        amount = _CONTEXT.multiply(amount, Decimal(2**exponent))
    return _round_nano(amount)


def _format_decimal_si(value: Decimal) -> str:
    """Quantity.String() in DecimalSI: an integer mantissa and a power-of-1000 suffix."""
    value = _round_nano(value)
    if value == 0:
        return "0"
    sign, digits, _ = value.as_tuple()
    exponent = _exponent(value)
    mantissa = int("".join(map(str, digits)))
    while mantissa % 10 == 0:
        mantissa //= 10
        exponent += 1
    shift = exponent % 3
    mantissa *= 10**shift
    exponent -= shift
    suffix = _DECIMAL_BY_EXPONENT.get(exponent, f"e{exponent}")
    return f"{'-' if sign else ''}{mantissa}{suffix}"


def format_cpu(value: Decimal) -> str:
    """Canonical DecimalSI form of a CPU amount: "2", "500m", "1500m", "100u", "2k"."""
    return _format_decimal_si(value)


def format_bytes(value: Decimal) -> str:
    """Canonical BinarySI form of a byte amount: "16Gi", "512Mi", "1536".

    As in Kubernetes, amounts under 1024 in magnitude and fractional amounts fall back to
    DecimalSI ("1k", "500m"), and anything not a whole multiple of 1Ki stays plain bytes.
    """
    value = _round_nano(value)
    if abs(value) < 1024 or value != value.to_integral_value():
        return _format_decimal_si(value)
    magnitude = abs(int(value))
    power = 0
    while magnitude % 1024 == 0 and power < len(_BINARY_BY_POWER) - 1:
        magnitude //= 1024
        power += 1
    return f"{'-' if value < 0 else ''}{magnitude}{_BINARY_BY_POWER[power]}"


def sum_resources(items: Iterable[Mapping[str, str | int | float]]) -> dict[str, Decimal]:
    """Add up resource lists (e.g. the requests of a pod's containers), key by key."""
    total: dict[str, Decimal] = {}
    for item in items:
        for name, quantity in item.items():
            amount = parse_quantity(quantity)
            total[name] = _CONTEXT.add(total[name], amount) if name in total else amount
    return total


def max_resources(a: Mapping[str, Decimal], b: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """The key-by-key maximum of two resource lists (a key in only one keeps its amount)."""
    result = dict(a)
    for name, amount in b.items():
        if name not in result or amount > result[name]:
            result[name] = amount
    return result
