"""Validation of a spawn's user_options ({"gpus", "gpu_product", "cluster"}) into sentences users read."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["GpuOptions", "OptionsError", "parse_options"]


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
    unknown = sorted(set(raw) - {"gpus", "gpu_product", "cluster", "profile"})
    if unknown:
        raise OptionsError(f"Unknown option(s) {', '.join(unknown)}: use gpus, gpu_product and cluster.")
    gpus = raw.get("gpus", 0)
    if isinstance(gpus, str) and gpus.strip().isdigit():
        gpus = int(gpus)  # form fields arrive as strings
    if isinstance(gpus, bool) or not isinstance(gpus, int):
        raise OptionsError(f"gpus must be a whole number, not {gpus!r}.")
    if gpus < 0:
        raise OptionsError("gpus cannot be negative.")
    if gpus > max_gpus:
        raise OptionsError(f"You asked for {gpus} GPUs; a server can have at most {max_gpus}.")
    product = raw.get("gpu_product")
    if product in ("", "any"):
        product = None
    if product is not None and not isinstance(product, str):
        raise OptionsError(f"gpu_product must be a product name, not {product!r}.")
    if product is not None and products and product not in products:
        raise OptionsError(f"Unknown GPU product {product!r}; on offer: {', '.join(products)}.")
    if product is not None and gpus == 0:
        product = None  # a CPU-only server has no product to match
    cluster = raw.get("cluster", "auto") or "auto"
    if not isinstance(cluster, str):
        raise OptionsError(f"cluster must be a cluster name or 'auto', not {cluster!r}.")
    if cluster != "auto":
        if cluster not in clusters:
            raise OptionsError(f"Unknown cluster {cluster!r}; there are: {', '.join(clusters)} (or auto).")
        if allowed_clusters is not None and cluster not in allowed_clusters:
            raise OptionsError(f"You may not use cluster {cluster!r}; yours: {', '.join(allowed_clusters)}.")
    return GpuOptions(gpus=gpus, gpu_product=product, cluster=cluster)
