"""The per-pod /etc/hosts that stands in for cluster DNS (services, pod hostnames) in the process runtime."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .selectors import label_selector_from_dict

__all__ = ["backing_pods", "hosts_file", "service_endpoint"]

CLUSTER_DOMAIN = "cluster.local"


def _ready(pod: Mapping[str, Any]) -> bool:
    status = pod.get("status") or {}
    return (
        bool(status.get("podIP"))
        and status.get("phase") == "Running"
        and not pod["metadata"].get("deletionTimestamp")
    )


def backing_pods(service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The running pods with an IP that a service's selector matches, oldest first."""
    selector = (service.get("spec") or {}).get("selector")
    if not selector:
        return []
    match = label_selector_from_dict({"matchLabels": selector})
    namespace = service["metadata"]["namespace"]
    candidates = [
        p
        for p in pods
        if p["metadata"].get("namespace") == namespace
        and _ready(p)
        and match.matches(p["metadata"].get("labels") or {})
    ]
    return sorted(
        candidates, key=lambda p: (p["metadata"].get("creationTimestamp", ""), p["metadata"]["name"])
    )


def service_endpoint(service: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> str | None:
    """The IP a service name resolves to: the oldest ready pod its selector matches.

    Cluster IPs route nowhere here (only LoadBalancer and NodePort addresses are proxied, see
    serviceproxy), so names resolve to a backing pod, as for a headless service; clients must use
    the target port.
    """
    found = backing_pods(service, pods)
    return str(found[0]["status"]["podIP"]) if found else None


def _service_addresses(service: Mapping[str, Any], pods: list[Mapping[str, Any]]) -> list[str]:
    """The addresses a service name resolves to in /etc/hosts, oldest pod first.

    Cluster DNS answers a headless Service (``clusterIP: None``) with one record per ready pod, so
    each gets a line; glibc returns every line of a name. Other Services name one pod, see
    ``service_endpoint``.
    """
    if (service.get("spec") or {}).get("clusterIP") == "None":
        return [str(p["status"]["podIP"]) for p in backing_pods(service, pods)]
    target = service_endpoint(service, pods)
    return [] if target is None else [target]


def hosts_file(
    pod: Mapping[str, Any],
    ip: str,
    pods: Iterable[Mapping[str, Any]],
    services: Iterable[Mapping[str, Any]],
) -> str:
    """/etc/hosts for ``pod`` at ``ip``: itself, services, and pods with a hostname + subdomain."""
    pods = list(pods)
    meta, spec = pod["metadata"], pod.get("spec") or {}
    namespace = meta["namespace"]
    hostname = spec.get("hostname") or meta["name"]
    own = [hostname]
    if spec.get("subdomain"):
        own.insert(0, f"{hostname}.{spec['subdomain']}.{namespace}.svc.{CLUSTER_DOMAIN}")
    lines = [
        "# Kubernetes-managed hosts file (simcluster).",
        "127.0.0.1\tlocalhost",
        "::1\tlocalhost ip6-localhost ip6-loopback",
        f"{ip}\t{' '.join(own)}",
    ]
    for svc in sorted(services, key=lambda s: (s["metadata"]["namespace"], s["metadata"]["name"])):
        name, ns = svc["metadata"]["name"], svc["metadata"]["namespace"]
        names = [f"{name}.{ns}.svc.{CLUSTER_DOMAIN}", f"{name}.{ns}.svc", f"{name}.{ns}"]
        if ns == namespace:
            names.append(name)
        for target in _service_addresses(svc, pods):
            lines.append(f"{target}\t{' '.join(names)}")
    for other in pods:  # pods a headless service names: hostname.subdomain.ns.svc.cluster.local
        ospec, ometa = other.get("spec") or {}, other["metadata"]
        if other is pod or not ospec.get("subdomain") or not _ready(other):
            continue
        oname = ospec.get("hostname") or ometa["name"]
        fqdn = f"{oname}.{ospec['subdomain']}.{ometa['namespace']}.svc.{CLUSTER_DOMAIN}"
        short = [f"{oname}.{ospec['subdomain']}"] if ometa["namespace"] == namespace else []
        lines.append(f"{other['status']['podIP']}\t{' '.join([fqdn, *short])}")
    return "\n".join(lines) + "\n"
