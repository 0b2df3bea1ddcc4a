"""Prometheus metrics of a harness hub and its hybridhub service, parsed: samples' values, not text."""

from __future__ import annotations

import urllib.request

from prometheus_client.parser import text_string_to_metric_families

from tests.harness.hub import HubProcess

__all__ = ["hub_metrics", "service_metrics", "value"]


def _scrape(url: str, token: str) -> str:
    req = urllib.request.Request(url, headers={"Authorization": f"token {token}"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return str(resp.read().decode())


def hub_metrics(hub: HubProcess) -> str:
    """The hub's own /hub/metrics (HybridSpawner's counters live in the hub process)."""
    return _scrape(f"http://127.0.0.1:{hub.hub_port}/hub/metrics", hub.token)


def service_metrics(hub: HubProcess) -> str:
    """The hybridhub service's /metrics, through the proxy with the prometheus service's token."""
    return _scrape(f"{hub.public_url}/services/hybridhub/metrics", hub.wiring.prometheus_token)


def value(text: str, sample: str, **labels: str) -> float:
    """The sum of the samples called ``sample`` (a counter's ``..._total``) whose labels include
    ``labels``. A counter no one has incremented for a label set has no sample there: 0."""
    return sum(
        s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == sample and labels.items() <= s.labels.items()
    )
