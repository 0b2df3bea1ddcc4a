"""Kubernetes resource quantities ("500m", "16Gi", "1e3") as exact numbers, for the hub side."""

from __future__ import annotations

import math
import re
from decimal import Decimal, InvalidOperation

__all__ = ["QuantityError", "milli_value", "parse_quantity", "value"]


class QuantityError(ValueError):
    """Text that is not a Kubernetes quantity."""


# number, then one of: a binary suffix, a decimal exponent ("e3", "E-2"), a decimal SI suffix
_QUANTITY_RE = re.compile(
    r"^(?P<number>[+-]?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+))"
    r"(?:(?P<binary>Ki|Mi|Gi|Ti|Pi|Ei)|[eE](?P<exponent>[+-]?[0-9]+)|(?P<decimal>[numkMGTPE]))?$"
)
_BINARY = {"Ki": 10, "Mi": 20, "Gi": 30, "Ti": 40, "Pi": 50, "Ei": 60}
_DECIMAL = {"n": -9, "u": -6, "m": -3, "k": 3, "M": 6, "G": 9, "T": 12, "P": 15, "E": 18}


def parse_quantity(quantity: str | int | float) -> Decimal:
    """The exact amount a quantity stands for: "100m" -> 0.1, "1Gi" -> 1073741824, 2 -> 2."""
    if isinstance(quantity, bool):
        raise QuantityError(f"not a quantity: {quantity!r}")
    if isinstance(quantity, int):
        return Decimal(quantity)
    if isinstance(quantity, float):
        if not math.isfinite(quantity):
            raise QuantityError(f"not a quantity: {quantity!r}")
        return Decimal(repr(quantity))
    if not isinstance(quantity, str):
        raise QuantityError(f"not a quantity: {quantity!r}")
    match = _QUANTITY_RE.match(quantity.strip())
    if match is None:
        raise QuantityError(f"not a quantity: {quantity!r}")
    try:
        number = Decimal(match["number"])
    except InvalidOperation as exc:  # pragma: no cover - the pattern admits only valid numbers
        raise QuantityError(f"not a quantity: {quantity!r}") from exc
    if match["binary"]:
        return number * Decimal(2 ** _BINARY[match["binary"]])
    if match["exponent"]:
        exponent = int(match["exponent"])
        if abs(exponent) > 64:
            raise QuantityError(f"quantity out of range: {quantity!r}")
        return number.scaleb(exponent)
    if match["decimal"]:
        return number.scaleb(_DECIMAL[match["decimal"]])
    return number


def value(quantity: str | int | float) -> int:
    """The quantity as a whole number, rounded up, as Quantity.Value() does (bytes, GPUs)."""
    return math.ceil(parse_quantity(quantity))


def milli_value(quantity: str | int | float) -> int:
    """The quantity in thousandths, rounded up, as Quantity.MilliValue() does (millicores)."""
    return math.ceil(parse_quantity(quantity) * 1000)
