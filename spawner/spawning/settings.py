"""Checks of HybridSpawner's settings that would break spawns: each says what is wrong in a sentence."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import urlsplit

__all__ = ["CHECKS"]

Check = Callable[[Any], str | None]  # the problem with a value, or None when it is fine


def _at_least(bound: float) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int | float) and math.isfinite(value) and value >= bound
        return None if ok else f"must be at least {bound:g}, not {value!r}"

    return check


def _more_than(bound: float) -> Check:
    def check(value: Any) -> str | None:
        ok = isinstance(value, int | float) and math.isfinite(value) and value > bound
        return None if ok else f"must be more than {bound:g} seconds, not {value!r}"

    return check


def _http_url(value: Any) -> str | None:
    parts = urlsplit(value if isinstance(value, str) else "")
    if parts.scheme in ("http", "https") and parts.hostname:
        return None
    return f"must be an http(s) URL with a host, such as http://hub:10101/services/hybridhub/, not {value!r}"


def _absolute_path(value: Any) -> str | None:
    return (
        None
        if isinstance(value, str) and value.startswith("/")
        else f"must be an absolute path, not {value!r}"
    )


def _products(value: Any) -> str | None:
    # GPU Feature Discovery's product names are label values: no blanks, never empty
    bad = [p for p in value if not isinstance(p, str) or not p or any(c.isspace() for c in p)]
    return f"{bad[0]!r} is not a GPU product name such as NVIDIA-L40S" if bad else None


def _gpu_limit(value: Any) -> str | None:
    # a callable is checked when it answers; None is no limit
    if isinstance(value, int) and not isinstance(value, bool) and value < 0:
        return f"must be 0 or more GPUs, or None for no limit, not {value!r}"
    return None


# Setting name -> its check. A value out of these ranges refuses every spawn (max_attempts 0,
# gpu_limit -1), fails every request (service_timeout 0, a service_url without a scheme), or polls
# without pause (answer_poll_interval below 0 is read as no checks; NaN would never end a wait).
CHECKS: Mapping[str, Check] = {
    "max_attempts": _at_least(1),
    "max_gpus": _at_least(1),
    "answer_poll_interval": _at_least(0),
    "service_timeout": _more_than(0),
    "service_address_timeout": _more_than(0),
    "elastic_deadline": _more_than(0),
    "service_url": _http_url,
    "home_mount_path": _absolute_path,
    "gpu_products": _products,
    "gpu_limit": _gpu_limit,
}
