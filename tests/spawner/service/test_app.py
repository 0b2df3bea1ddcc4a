"""The service's settings: a value that would break the product is refused at config load, naming the
setting; the help of reservation_ttl says what the code does."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from traitlets import TraitError
from traitlets.config import Config

from spawner.service.app import HybridHubService
from tests.spawner.in_process import CLUSTERS


def loaded(**settings: Any) -> HybridHubService:
    config = Config()
    for name, value in settings.items():
        setattr(config.HybridHubService, name, value)
    return HybridHubService(config=config)


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("reservation_ttl", 0, "must be at least 1 second"),  # every GPU spawn a 500
        ("reservation_ttl", -5.0, "must be at least 1 second"),
        ("reservation_ttl", float("nan"), "must be a finite number"),
        ("probe_interval", 0, "must be at least 0.5 seconds (shorter probes /readyz back to back)"),
        ("probe_interval", 0.1, "must be at least 0.5 seconds"),
        ("probe_timeout", 0, "must be more than 0 seconds"),
        ("probe_timeout", -1.0, "must be more than 0 seconds"),
        ("probe_timeout", float("inf"), "must be a finite number"),
        ("watch_timeout", 0, "must be at least 1 second"),
        ("degraded_latency", 0, "must be more than 0 seconds"),
        ("max_watch_age", 0, "must be more than 0 seconds"),
        ("down_after_failures", 0, "must be 1 or more"),
        ("recover_after", 0, "must be 1 or more"),
        ("recover_after", -2, "must be 1 or more"),
        ("leftover_sweep_interval", 0.5, "must be 0 (off) or at least 1 second"),
        ("leftover_sweep_interval", -1.0, "must be 0 (off) or at least 1 second"),
        ("leftover_grace", -1.0, "must be 0 or more seconds"),
        ("service_prefix", "services/hybridhub/", "must start with '/'"),
        ("bind_url", "https://0.0.0.0:10101", "the service serves plain HTTP"),
        ("bind_url", "10101", "expected http://HOST:PORT"),
        ("bind_url", "http://0.0.0.0:port", "Port could not be cast"),
        ("api_url", "127.0.0.1:8081/hub/api", "expected the hub's http(s) API URL"),
        ("hub_instance", "", "must not be empty"),
        ("hub_instance", "my hub", "letters, digits"),
        ("hub_instance", "x" * 64, "at most 63 characters"),
        ("ssh_gateway_address", "ssh.example.org:0", "the port must be 1 to 65535"),
        ("ssh_gateway_address", "ssh user@host", "is not host or host:port"),
        ("ssh_site_gateways", {"onprem": "ssh.onprem:2222"}, "give exactly 'address'"),
        ("ssh_site_gateways", {"onprem": {"address": "ssh.onprem:2222"}}, "give exactly 'address'"),
        ("ssh_site_gateways", {"onprem": {"address": "", "service": "gw"}}, "is not host or host:port"),
        ("ssh_site_gateways", {"onprem": {"address": "a:1", "service": ""}}, "must be non-empty strings"),
        (
            "ssh_site_gateways",
            {"onprem": {"address": "a:1", "service": "gw"}, "eks": {"address": "b:1", "service": "gw"}},
            "service 'gw' is the gateway of 'onprem' already",
        ),
    ],
)
def test_a_setting_that_breaks_the_product_is_refused(name: str, value: Any, message: str) -> None:
    with pytest.raises(TraitError, match=rf"^HybridHubService\.{name}: .*{re.escape(message)}"):
        loaded(**{name: value})


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("reservation_ttl", 1.0),
        ("probe_interval", 0.5),
        ("probe_timeout", 0.01),
        ("watch_timeout", 1),
        ("down_after_failures", 1),
        ("recover_after", 1),
        ("leftover_sweep_interval", 0.0),  # off
        ("leftover_sweep_interval", 1.0),
        ("leftover_grace", 0.0),
        ("service_prefix", "/services/other/"),
        ("bind_url", "http://0.0.0.0:10101"),
        ("api_url", "https://hub.example.org/hub/api"),
        ("hub_instance", "research-hub"),
        ("hub_instance", "a"),
        ("ssh_gateway_address", "[fd00::1]:2222"),
        ("ssh_site_gateways", {"onprem": {"address": "ssh.onprem.example.org:2222", "service": "gw-onprem"}}),
    ],
)
def test_the_smallest_good_values_are_accepted(name: str, value: Any) -> None:
    assert getattr(loaded(**{name: value}), name) == value


def test_a_bad_value_in_the_config_file_stops_the_service(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "service_config.py"
    config.write_text("c.HybridHubService.reservation_ttl = 0\n")
    with pytest.raises(SystemExit):
        HybridHubService().initialize(["--config", str(config)])
    assert "HybridHubService.reservation_ttl: must be at least 1 second" in capfd.readouterr().err


def test_values_from_jupyterhubs_environment_are_checked_too(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no hybridhub_service_config.py here
    monkeypatch.setenv("JUPYTERHUB_SERVICE_URL", "https://127.0.0.1:10101")  # internal_ssl: not served
    with pytest.raises(SystemExit, match=r"HybridHubService\.bind_url: .*plain HTTP"):
        HybridHubService().initialize([])


def test_reservation_ttl_help_says_what_is_reserved_and_extended() -> None:
    help_ = " ".join(HybridHubService.class_traits()["reservation_ttl"].help.split())
    assert "Each attempt, fallbacks included, is placed and reserved when it is tried" in help_
    assert "extends its reservation by this much (``POST api/placements/{id}/extend``)" in help_
    assert "Nothing extends" not in help_ and "only the first candidate" not in help_


def test_a_bad_hub_instance_from_the_environment_stops_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HYBRIDHUB_HUB_INSTANCE", "site a")
    with pytest.raises(SystemExit, match=r"HybridHubService\.hub_instance: .*letters, digits"):
        HybridHubService().initialize([])


def test_a_site_gateway_of_a_cluster_there_is_not_stops_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "service_config.py"
    clusters = [c for c in CLUSTERS if c["name"] in ("onprem", "eks")]
    config.write_text(
        f"c.ClusterSet.clusters = {clusters!r}\n"
        "c.HybridHubService.ssh_site_gateways = "
        "{'on-prem': {'address': 'ssh.onprem.example.org', 'service': 'ssh-gateway-onprem'}}\n"
    )
    with pytest.raises(
        SystemExit, match=r"ssh_site_gateways: 'on-prem' is not one of the clusters \(eks, onprem\)"
    ):
        HybridHubService().initialize(["--config", str(config)])
