"""Node objects as a kubelet registers them, with addresses and pod CIDRs handed out per cluster."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterator
from typing import Any

from .config import ClusterSpec, NodeGroup

__all__ = ["AddressPool", "make_node"]


class AddressPool:
    """Node IPs and per-node /24 pod CIDRs of one cluster."""

    def __init__(self, spec: ClusterSpec) -> None:
        self._node_ips: Iterator[ipaddress.IPv4Address] = ipaddress.ip_network(spec.node_cidr).hosts()  # type: ignore[assignment]
        for _ in range(9):  # keep .1-.9 for gateways, as clouds do
            next(self._node_ips)
        self._pod_cidrs = ipaddress.ip_network(spec.pod_cidr).subnets(new_prefix=24)
        self._free_cidrs: list[str] = []
        self._free_ips: list[str] = []

    def node_ip(self) -> str:
        return self._free_ips.pop() if self._free_ips else str(next(self._node_ips))

    def pod_cidr(self) -> str:
        return self._free_cidrs.pop() if self._free_cidrs else str(next(self._pod_cidrs))

    def release(self, node: dict[str, Any]) -> None:
        cidr = (node.get("spec") or {}).get("podCIDR")
        if cidr:
            self._free_cidrs.append(cidr)
        for addr in (node.get("status") or {}).get("addresses") or []:
            if addr.get("type") == "InternalIP":
                self._free_ips.append(addr["address"])


def make_node(
    group: NodeGroup,
    name: str,
    ip: str,
    pod_cidr: str,
    now: str,
    *,
    ready: bool = True,
    provider: str = "",
) -> dict[str, Any]:
    """A Node with status as its kubelet reports it (capacity = allocatable here)."""
    status = "True" if ready else "False"
    reason = "KubeletReady" if ready else "KubeletNotReady"
    message = "kubelet is posting ready status" if ready else "container runtime is starting"
    node: dict[str, Any] = {
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": group.node_labels(name),
            "annotations": {"node.alpha.kubernetes.io/ttl": "0"},
        },
        "spec": {"podCIDR": pod_cidr, "podCIDRs": [pod_cidr]},
        "status": {
            "capacity": dict(group.capacity),
            "allocatable": dict(group.capacity),
            "conditions": [
                _condition(
                    "MemoryPressure",
                    "False",
                    "KubeletHasSufficientMemory",
                    "kubelet has sufficient memory available",
                    now,
                ),
                _condition(
                    "DiskPressure",
                    "False",
                    "KubeletHasNoDiskPressure",
                    "kubelet has no disk pressure",
                    now,
                ),
                _condition(
                    "PIDPressure",
                    "False",
                    "KubeletHasSufficientPID",
                    "kubelet has sufficient PID available",
                    now,
                ),
                _condition("Ready", status, reason, message, now),
            ],
            "addresses": [
                {"type": "InternalIP", "address": ip},
                {"type": "Hostname", "address": name},
            ],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10250}},
            "nodeInfo": {
                "machineID": "",
                "systemUUID": "",
                "bootID": "",
                "kernelVersion": "6.1.0-simcluster",
                "osImage": "Ubuntu 22.04.4 LTS",
                "containerRuntimeVersion": "containerd://1.7.20",
                "kubeletVersion": "v1.32.0",
                "kubeProxyVersion": "v1.32.0",
                "operatingSystem": "linux",
                "architecture": "amd64",
            },
        },
    }
    if group.taints:
        node["spec"]["taints"] = [dict(t) for t in group.taints]
    if provider:
        node["spec"]["providerID"] = f"{provider}/{name}"
    return node


def _condition(type_: str, status: str, reason: str, message: str, now: str) -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "lastHeartbeatTime": now,
        "lastTransitionTime": now,
        "reason": reason,
        "message": message,
    }
