"""Validation of a spawn's user_options ({"gpus", "gpu_product", "cluster"}) into sentences users read."""

from __future__ import annotations

import reprlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["GpuOptions", "OptionsError", "parse_options", "shown"]

# The most characters of one value a message shows. Values come from users, and JupyterHub puts the
# message in the API's answer and in its log: a value of any size must give a message of bounded size.
SHOWN_CHARS = 40
# The most unknown option names one message lists.
SHOWN_NAMES = 5

_REPR = reprlib.Repr()
_REPR.maxlevel = 2
_REPR.maxdict = _REPR.maxlist = _REPR.maxtuple = _REPR.maxset = 3
_REPR.maxstring = _REPR.maxlong = _REPR.maxother = SHOWN_CHARS


def shown(value: Any) -> str:
    """``repr(value)`` of bounded size for messages and logs: a long string keeps its start and says its
    length, e.g. ``'xxxxxxxx…' (100,000 characters)``; containers keep their first few items."""
    if isinstance(value, str):
        if len(value) <= SHOWN_CHARS:
            return repr(value)
        return f"{value[:SHOWN_CHARS]!r}… ({len(value):,} characters)"
    try:
        text = _REPR.repr(value)
    except ValueError:  # an int past Python's limit on digits to convert
        return f"a {type(value).__name__} too large to show"
    # reprlib bounds each part; a container of long keys may still add up, so the whole is bounded too
    return text if len(text) <= 3 * SHOWN_CHARS else text[: 3 * SHOWN_CHARS] + "…"


def _names(names: Sequence[Any]) -> str:
    """Option names as a message lists them: short ones as they are, a few at most."""
    listed = [
        n if isinstance(n, str) and n.isprintable() and len(n) <= SHOWN_CHARS else shown(n) for n in names
    ]
    more = f" and {len(names) - SHOWN_NAMES} more" if len(names) > SHOWN_NAMES else ""
    return ", ".join(listed[:SHOWN_NAMES]) + more


class OptionsError(ValueError):
    """The options are wrong; the message is shown to the user as it is."""


@dataclass(frozen=True)
class GpuOptions:
    gpus: int = 0
    gpu_product: str | None = None
    cluster: str = "auto"


def parse_options(
    raw: Mapping[str, Any] | None,
    *,
    max_gpus: int,
    products: Sequence[str],
    clusters: Sequence[str],
    allowed_clusters: Sequence[str] | None,
) -> GpuOptions:
    """``raw`` as the hub passes user_options; ``products`` the GPU products on offer (empty: any)."""
    raw = dict(raw or {})
    unknown = sorted(set(raw) - {"gpus", "gpu_product", "cluster", "profile"}, key=str)
    if unknown:
        raise OptionsError(f"Unknown option(s) {_names(unknown)}: use gpus, gpu_product and cluster.")
    gpus = raw.get("gpus", 0)
    if isinstance(gpus, str) and gpus.strip().isdigit():
        digits = gpus.strip().lstrip("0")
        if len(digits) > len(str(max_gpus)):  # too many; and int() refuses numbers past 4,300 digits
            number = digits if len(digits) <= SHOWN_CHARS else shown(digits)
            raise OptionsError(f"You asked for {number} GPUs; a server can have at most {max_gpus}.")
        gpus = int(digits or "0")  # form fields arrive as strings
    if isinstance(gpus, bool) or not isinstance(gpus, int):
        raise OptionsError(f"gpus must be a whole number, not {shown(gpus)}.")
    if gpus < 0:
        raise OptionsError("gpus cannot be negative.")
    if gpus > max_gpus:
        raise OptionsError(f"You asked for {shown(gpus)} GPUs; a server can have at most {max_gpus}.")
    product = raw.get("gpu_product")
    if product in ("", "any"):
        product = None
    if product is not None and not isinstance(product, str):
        raise OptionsError(f"gpu_product must be a product name, not {shown(product)}.")
    if product is not None and products and product not in products:
        raise OptionsError(f"Unknown GPU product {shown(product)}; on offer: {', '.join(products)}.")
    if product is not None and gpus == 0:
        product = None  # a CPU-only server has no product to match
    cluster = raw.get("cluster", "auto") or "auto"
    if not isinstance(cluster, str):
        raise OptionsError(f"cluster must be a cluster name or 'auto', not {shown(cluster)}.")
    if cluster != "auto":
        if cluster not in clusters:
            raise OptionsError(
                f"Unknown cluster {shown(cluster)}; there are: {', '.join(clusters)} (or auto)."
            )
        if allowed_clusters is not None and cluster not in allowed_clusters:
            raise OptionsError(
                f"You may not use cluster {shown(cluster)}; yours: {', '.join(allowed_clusters)}."
            )
    return GpuOptions(gpus=gpus, gpu_product=product, cluster=cluster)
