"""user_options validation: every mistake gets a sentence, nothing invalid passes."""

from __future__ import annotations

from typing import Any

import pytest

from spawner.spawning.options import GpuOptions, OptionsError, parse_options, shown

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


HUGE = "x" * 100_000


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("mars", "'mars'"),
        ("x" * 40, repr("x" * 40)),  # at the limit: whole
        ("x" * 41, f"{'x' * 40!r}… (41 characters)"),
        (HUGE, f"{'x' * 40!r}… (100,000 characters)"),
        ("it's", '"it\'s"'),  # a repr, so quotes and control characters stay visible
        ("a\nb", "'a\\nb'"),
        (3, "3"),
        (1.5, "1.5"),
        (None, "None"),
        (True, "True"),
        ([1, 2, 3, 4, 5], "[1, 2, 3, ...]"),
        ({"a": 1, "b": 2, "c": 3, "d": 4}, "{'a': 1, 'b': 2, 'c': 3, ...}"),
        ([[[["deep"]]]], "[[[...]]]"),
        (10**60, "100000000000000000...0000000000000000000"),
    ],
)
def test_shown(value: Any, expected: str) -> None:
    assert shown(value) == expected


@pytest.mark.parametrize(
    "value",
    [HUGE, [HUGE] * 1000, {HUGE + str(i): HUGE for i in range(100)}, [[[HUGE] * 100] * 100], 10**4000],
)
def test_shown_is_bounded_whatever_the_value(value: Any) -> None:
    assert len(shown(value)) <= 130


def test_shown_of_an_int_too_long_to_convert() -> None:
    assert shown(10**5000) == "a int too large to show"


@pytest.mark.parametrize(
    ("raw", "text"),
    [
        ({"gpus": HUGE}, f"gpus must be a whole number, not {'x' * 40!r}… (100,000 characters)."),
        ({"gpus": "9" * 100_000}, f"You asked for {'9' * 40!r}… (100,000 characters) GPUs"),
        ({"gpus": "0" * 99_999 + "1"}, None),  # leading zeros: one GPU
        ({"gpus": "10"}, "You asked for 10 GPUs; a server can have at most 8."),
        ({"gpus": [HUGE] * 10}, "gpus must be a whole number, not ["),
        ({"gpus": 1, "gpu_product": HUGE}, "Unknown GPU product 'xxxx"),
        ({"gpus": 1, "gpu_product": {"k": HUGE}}, "gpu_product must be a product name, not {'k': 'xxx"),
        ({"gpus": 1, "cluster": HUGE}, "Unknown cluster 'xxxx"),
        ({HUGE: 1}, f"Unknown option(s) {'x' * 40!r}… (100,000 characters): use gpus"),
        ({f"k{i}": 1 for i in range(1000)}, "Unknown option(s) k0, k1, k10, k100, k101 and 995 more: use"),
        ({"a\nb": 1}, "Unknown option(s) 'a\\nb': use gpus"),  # a name that would break a log line
    ],
)
def test_a_huge_value_gives_a_short_message(raw: dict[str, Any], text: str | None) -> None:
    try:
        got = parse_options(raw, max_gpus=8, products=PRODUCTS, clusters=CLUSTERS, allowed_clusters=None)
    except OptionsError as err:
        assert text is not None and text in str(err), str(err)[:300]
        assert len(str(err)) < 250
    else:
        assert text is None and got == GpuOptions(gpus=1)
