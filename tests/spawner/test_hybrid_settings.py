"""HybridSpawner refuses, at config load, settings that would break spawns, naming the setting."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
from traitlets import TraitError

from tests.spawner.in_process import make_spawner


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("name", "value", "words"),
    [
        ("max_attempts", 0, "at least 1"),
        ("max_attempts", -1, "at least 1"),
        ("max_gpus", 0, "at least 1"),
        ("service_timeout", 0.0, "more than 0"),
        ("service_timeout", -5.0, "more than 0"),
        ("service_timeout", math.inf, "more than 0"),
        ("service_address_timeout", 0.0, "more than 0"),
        ("elastic_deadline", 0.0, "more than 0"),
        ("elastic_deadline", math.nan, "more than 0"),
        ("answer_poll_interval", -0.25, "at least 0"),
        ("service_url", "127.0.0.1:10101/services/hybridhub/", "http(s) URL"),
        ("service_url", "http:///services/hybridhub/", "http(s) URL"),
        ("home_mount_path", "home/jovyan", "absolute path"),
        ("gpu_products", ["NVIDIA-L40S", ""], "not a GPU product name"),
        ("gpu_products", ["NVIDIA L40S"], "not a GPU product name"),
        ("gpu_limit", -1, "0 or more"),
        ("hub_instance", "", "must not be empty"),
        ("hub_instance", "research hub", "letters, digits"),
        ("hub_instance", "-hub", "beginning and ending with a letter or digit"),
        ("hub_instance", "h" * 64, "at most 63 characters"),
    ],
)
async def test_a_setting_that_breaks_spawns_is_refused_at_config_load(
    name: str, value: Any, words: str
) -> None:
    with pytest.raises(TraitError, match=rf"HybridSpawner\.{name} .*{re.escape(words)}"):
        make_spawner(**{name: value})


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("max_attempts", 1),
        ("max_gpus", 1),
        ("service_timeout", 0.5),
        ("answer_poll_interval", 0.0),  # no checks
        ("elastic_deadline", 900.0),
        ("service_address_timeout", 60.0),
        ("service_url", "https://hub.example.org/services/hybridhub/"),
        ("home_mount_path", "/home/jovyan"),
        ("gpu_products", ["NVIDIA-A100-SXM4-80GB", "NVIDIA-L40S"]),
        ("gpu_products", []),
        ("gpu_limit", 0),  # CPU-only users
        ("gpu_limit", None),
        ("hub_instance", "research-hub"),
        ("hub_instance", "jupyterhub.site_a"),
        ("hub_instance", "h" * 63),
    ],
)
async def test_a_sound_setting_is_taken(name: str, value: Any) -> None:
    assert getattr(make_spawner(**{name: value}), name) == value


@pytest.mark.asyncio
async def test_a_callable_gpu_limit_is_taken() -> None:
    def per_group(spawner: Any) -> int:
        return 4

    assert make_spawner(gpu_limit=per_group).gpu_limit is per_group


@pytest.mark.asyncio
async def test_a_setting_changed_later_is_checked_too() -> None:
    spawner = make_spawner()
    with pytest.raises(TraitError, match=r"HybridSpawner\.max_attempts must be at least 1, not 0"):
        spawner.max_attempts = 0
    assert spawner.max_attempts == 3
