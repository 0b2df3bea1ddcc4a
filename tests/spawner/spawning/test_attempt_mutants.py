"""Tests for spawner.spawning.attempt that mutation testing showed missing (docs/mutation-testing.md)."""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import pytest

from spawner.spawning.attempt import Candidate, PodSettings, build_attempt, spawn_base
from spawner.spawning.options import GpuOptions
from tests.spawner.spawning.test_attempt import (
    BASE,
    HOME,
    ONPREM,
    PVC_HOME,
    SCRATCH,
)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ([], "a candidate must be an object, not list"),
        ("onprem", "a candidate must be an object, not str"),
        (None, "a candidate must be an object, not NoneType"),
    ],
)
def test_a_candidate_that_is_no_object_says_what_it_is(raw: Any, message: str) -> None:
    with pytest.raises(ValueError) as caught:
        Candidate.from_json(raw)
    assert str(caught.value) == message


def test_a_candidate_without_optional_fields_is_a_fixed_pool_without_nodes() -> None:
    """An answer that leaves ``elastic`` out is not a pool that waits for a new node."""
    assert Candidate.from_json({"cluster": "onprem", "pool": "l40s"}) == Candidate("onprem", "l40s")


def test_settings_from_no_traits_are_the_defaults() -> None:
    assert PodSettings.from_traits({}) == PodSettings()
    assert PodSettings.from_traits({"namespace": None, "volumes": None}) == PodSettings()


@pytest.mark.parametrize("enabled", [True, False])
def test_settings_from_traits_keep_the_per_user_service(enabled: bool) -> None:
    assert PodSettings.from_traits({"services_enabled": enabled}).services_enabled is enabled


def test_settings_from_traits_share_nothing_with_the_traits() -> None:
    """The spawner's trait values change after the settings are taken (hooks, the next attempt)."""
    volume = {"name": "scratch", "emptyDir": {}}
    labels = {"team": "ml"}
    settings = PodSettings.from_traits({"volumes": [volume], "extra_labels": labels})
    volume["name"] = "changed"
    labels["team"] = "changed"
    assert settings.volumes == ({"name": "scratch", "emptyDir": {}},)
    assert settings.extra_labels == {"team": "ml"}


def test_the_spawn_base_shares_nothing_with_the_configuration_or_the_hooks() -> None:
    """Attempts change the base's lists and dicts; the configuration and a hook's values stay as they were.
    The values are the test's own, so that a failure here leaves the module's tables intact."""
    home = {"name": "home", "persistentVolumeClaim": {"claimName": "{pvc_name}"}}
    hooked = {"name": "scratch", "emptyDir": {}}
    configured = {"volumes": [home]}
    base = spawn_base({"volumes": [home, hooked]}, configured, {})
    base["volumes"][0]["name"] = "changed"
    base["volumes"][1]["name"] = "changed"
    assert (home["name"], hooked["name"]) == ("home", "scratch")
    # an attempt's value gives way to a copy of the configured one
    attempt = [{"name": "home", "nfs": {"server": "nas", "path": "/h"}}]
    again = spawn_base({"volumes": attempt}, configured, {"volumes": attempt})
    assert again == {"volumes": [home]}
    again["volumes"][0]["name"] = "changed"
    assert home["name"] == "home"


def test_a_home_of_none_keeps_the_configured_claim_settings_without_a_claim_volume() -> None:
    """With ``home_storage`` none the operator's storage settings stand, even with no claim mounted."""
    base = replace(BASE, volumes=(SCRATCH,), volume_mounts=({"name": "scratch", "mountPath": "/s"},))
    got = build_attempt(
        base, ONPREM, Candidate("onprem", "l40s"), GpuOptions(), home_mount_path=HOME, pvc_name="x"
    )
    assert (got.volumes, got.volume_mounts) == (base.volumes, base.volume_mounts)
    assert (got.storage_pvc_ensure, got.storage_capacity, got.storage_class) == (True, "1Gi", "standard")


def test_a_pvc_home_makes_its_claim_even_where_the_configuration_makes_none() -> None:
    base = replace(BASE, storage_pvc_ensure=False, storage_capacity=None, storage_class=None)
    got = build_attempt(
        base, PVC_HOME, Candidate("pvc", "l40s"), GpuOptions(), home_mount_path=HOME, pvc_name="x"
    )
    assert (got.storage_pvc_ensure, got.storage_capacity, got.storage_class) == (True, "50Gi", "gp3")
