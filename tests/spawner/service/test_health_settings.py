"""The service's probe and watch settings for a hung site link: refused when they would break the
product, and their help states the bounds the service keeps (tests/spawner/service/test_fleet_hung.py
measures them)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from traitlets import TraitError
from traitlets.config import Config

from spawner.service.app import HybridHubService


def loaded(**settings: Any) -> HybridHubService:
    config = Config()
    for name, value in settings.items():
        setattr(config.HybridHubService, name, value)
    return HybridHubService(config=config)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("probe_retry_interval", 0, "must be at least 0.5 seconds (shorter probes /readyz back to back)"),
        ("probe_retry_interval", 0.4, "must be at least 0.5 seconds"),
        ("probe_retry_interval", float("nan"), "must be a finite number"),
        ("watch_read_timeout", 0.5, "must be at least 1 second"),
        ("watch_read_timeout", float("inf"), "must be a finite number"),
    ],
)
def test_a_setting_that_breaks_the_product_is_refused(name: str, value: Any, message: str) -> None:
    with pytest.raises(TraitError, match=rf"^HybridHubService\.{name}: .*{re.escape(message)}"):
        loaded(**{name: value})


@pytest.mark.parametrize(("name", "value"), [("probe_retry_interval", 0.5), ("watch_read_timeout", 1.0)])
def test_the_smallest_good_values_are_accepted(name: str, value: Any) -> None:
    assert getattr(loaded(**{name: value}), name) == value


def help_of(name: str) -> str:
    return " ".join(HybridHubService.class_traits()[name].help.split())


def test_the_defaults_give_the_bounds_the_help_states() -> None:
    s = HybridHubService()
    down_hung = s.probe_interval + (s.down_after_failures - 1) * s.probe_retry_interval + s.probe_timeout
    down_refused = s.probe_interval + (s.down_after_failures - 1) * s.probe_retry_interval
    back = s.recover_after * s.probe_retry_interval + s.probe_timeout
    assert (down_hung, down_refused, back) == (10, 7, 5)
    assert (
        "DOWN within probe_interval + (down_after_failures - 1) * probe_retry_interval + probe_timeout "
        "seconds: 10 s with the defaults, 7 s when its API refuses connections" in help_of("probe_interval")
    )
    assert (
        "HEALTHY with a current inventory within recover_after * probe_retry_interval + probe_timeout "
        "seconds (5 s with the defaults" in help_of("probe_retry_interval")
    )
    assert "keep it above 60" in help_of("watch_read_timeout") and s.watch_read_timeout > 60
