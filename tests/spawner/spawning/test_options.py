"""user_options validation: every mistake gets a sentence, nothing invalid passes."""

from __future__ import annotations

from typing import Any

import pytest

from spawner.spawning.options import GpuOptions, OptionsError, parse_options

PRODUCTS = ("NVIDIA-A100-SXM4-80GB", "NVIDIA-L40S")
CLUSTERS = ("onprem", "eks")


@pytest.mark.parametrize(
    ("raw", "allowed", "expected"),
    [
        (None, None, GpuOptions()),
        ({}, None, GpuOptions()),
        ({"gpus": 2}, None, GpuOptions(gpus=2)),
        ({"gpus": "2"}, None, GpuOptions(gpus=2)),  # from the spawn form
        ({"gpus": 1, "gpu_product": "NVIDIA-L40S"}, None, GpuOptions(1, "NVIDIA-L40S")),
        ({"gpus": 1, "gpu_product": "any"}, None, GpuOptions(1)),
        ({"gpus": 0, "gpu_product": "NVIDIA-L40S"}, None, GpuOptions(0)),  # no product without GPUs
        ({"gpus": 1, "cluster": "eks"}, ["eks"], GpuOptions(1, cluster="eks")),
        ({"gpus": 1, "cluster": ""}, None, GpuOptions(1)),
    ],
)
def test_good_options(raw: Any, allowed: list[str] | None, expected: GpuOptions) -> None:
    got = parse_options(raw, max_gpus=8, products=PRODUCTS, clusters=CLUSTERS, allowed_clusters=allowed)
    assert got == expected


@pytest.mark.parametrize(
    ("raw", "allowed", "text"),
    [
        ({"gpus": -1}, None, "cannot be negative"),
        ({"gpus": 9}, None, "at most 8"),
        ({"gpus": 1.5}, None, "whole number"),
        ({"gpus": True}, None, "whole number"),
        ({"gpus": "many"}, None, "whole number"),
        ({"gpus": 1, "gpu_product": "H100"}, None, "Unknown GPU product 'H100'"),
        ({"gpus": 1, "gpu_product": 3}, None, "must be a product name"),
        ({"gpus": 1, "cluster": "mars"}, None, "Unknown cluster 'mars'"),
        ({"gpus": 1, "cluster": "eks"}, ["onprem"], "You may not use cluster 'eks'"),
        ({"gpus": 1, "cluster": ["eks"]}, None, "cluster must be"),
        ({"colour": "red"}, None, "Unknown option(s) colour"),
    ],
)
def test_bad_options(raw: Any, allowed: list[str] | None, text: str) -> None:
    with pytest.raises(OptionsError) as err:
        parse_options(raw, max_gpus=8, products=PRODUCTS, clusters=CLUSTERS, allowed_clusters=allowed)
    assert text in str(err.value)
