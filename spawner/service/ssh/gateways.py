"""The SSH gateways users reach servers through: one beside the hub and, optionally, one per site (pure)."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = ["SiteGateway", "address_problem", "host_of", "site_gateways", "split_address"]

# a DNS name, an IPv4 address, or an IPv6 address in brackets; then an optional port
_ADDRESS = re.compile(
    r"^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?)(?::(\d{1,5}))?$"
)


@dataclass(frozen=True)
class SiteGateway:
    """A gateway running in one cluster, so that SSH to that cluster's servers need not cross the site
    link; ``service`` is the hub service whose token it holds."""

    cluster: str
    address: str
    service: str


def address_problem(address: str) -> str | None:
    """What is wrong with a ``host`` or ``host:port`` users' clients are to reach; None when nothing."""
    found = _ADDRESS.match(address)
    if found is None:
        return f"{address!r} is not host or host:port"
    if found.group(1) is not None and not 1 <= int(found.group(1)) <= 65535:
        return f"{address!r}: the port must be 1 to 65535"
    return None


def split_address(address: str) -> tuple[str, str]:
    """``host:port`` as (host as written, port); the port is "" when there is none."""
    if address.startswith("[") and "]" in address:
        end = address.index("]") + 1
        return address[:end], address[end + 1 :]
    if address.count(":") == 1:
        host, port = address.split(":")
        return host, port
    return address, ""


def host_of(address: str) -> str:
    """The host of ``host``, ``host:port`` or ``[v6]:port``: the name a gateway's certificate holds."""
    return split_address(address)[0].strip("[]")


def site_gateways(
    value: Mapping[str, object], clusters: frozenset[str] | None = None
) -> dict[str, SiteGateway]:
    """``{cluster: {"address": "host:port", "service": "hub service"}}`` checked and parsed; raises
    ValueError saying which entry is wrong. ``clusters``, when given, are the names an entry may use."""
    out: dict[str, SiteGateway] = {}
    services: dict[str, str] = {}
    for cluster, entry in value.items():
        if clusters is not None and cluster not in clusters:
            raise ValueError(f"{cluster!r} is not one of the clusters ({', '.join(sorted(clusters))})")
        if not isinstance(entry, Mapping) or set(entry) != {"address", "service"}:
            raise ValueError(f"{cluster!r}: give exactly 'address' (host:port) and 'service' (a hub service)")
        address, service = entry["address"], entry["service"]
        if not isinstance(address, str) or not isinstance(service, str) or not service:
            raise ValueError(f"{cluster!r}: 'address' and 'service' must be non-empty strings")
        problem = address_problem(address)
        if problem:
            raise ValueError(f"{cluster!r}: {problem}")
        if service in services:
            raise ValueError(
                f"{cluster!r}: service {service!r} is the gateway of {services[service]!r} already"
            )
        services[service] = cluster
        out[cluster] = SiteGateway(cluster, address, service)
    return out
