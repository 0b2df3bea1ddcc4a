"""The gateways' addresses and the site gateways setting, as tables."""

from __future__ import annotations

from typing import Any

import pytest

from spawner.service.ssh.gateways import SiteGateway, address_problem, host_of, site_gateways, split_address


@pytest.mark.parametrize(
    ("address", "split", "host"),
    [
        ("ssh.example.org", ("ssh.example.org", ""), "ssh.example.org"),
        ("ssh.example.org:2222", ("ssh.example.org", "2222"), "ssh.example.org"),
        ("10.0.0.1:22", ("10.0.0.1", "22"), "10.0.0.1"),
        ("[fd00::1]:2222", ("[fd00::1]", "2222"), "fd00::1"),
        ("[fd00::1]", ("[fd00::1]", ""), "fd00::1"),
    ],
)
def test_an_address_splits_into_its_host_and_port(address: str, split: tuple[str, str], host: str) -> None:
    assert address_problem(address) is None
    assert split_address(address) == split
    assert host_of(address) == host


@pytest.mark.parametrize(
    ("address", "problem"),
    [
        ("", "is not host or host:port"),
        ("ssh user@host", "is not host or host:port"),
        ("host:", "is not host or host:port"),
        ("host:ssh", "is not host or host:port"),
        ("fd00::1:22", "is not host or host:port"),  # IPv6 needs brackets
        ("-host", "is not host or host:port"),
        ("host:0", "the port must be 1 to 65535"),
        ("host:65536", "the port must be 1 to 65535"),
    ],
)
def test_a_bad_address_is_named(address: str, problem: str) -> None:
    assert problem in (address_problem(address) or "")


def test_site_gateways_parse_and_check_their_clusters() -> None:
    value = {"onprem": {"address": "ssh.onprem:2222", "service": "ssh-gateway-onprem"}}
    assert site_gateways(value, frozenset({"onprem", "eks"})) == {
        "onprem": SiteGateway("onprem", "ssh.onprem:2222", "ssh-gateway-onprem")
    }
    assert site_gateways({}) == {}
    with pytest.raises(ValueError, match=r"'lab' is not one of the clusters \(eks, onprem\)"):
        site_gateways({"lab": value["onprem"]}, frozenset({"onprem", "eks"}))


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"onprem": None}, "give exactly 'address' (host:port) and 'service'"),
        ({"onprem": {"address": "a", "service": "s", "port": 22}}, "give exactly 'address'"),
        ({"onprem": {"address": 22, "service": "s"}}, "must be non-empty strings"),
        ({"onprem": {"address": "a b", "service": "s"}}, "'onprem': 'a b' is not host or host:port"),
    ],
)
def test_a_bad_site_gateway_is_named(value: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        site_gateways(value)
