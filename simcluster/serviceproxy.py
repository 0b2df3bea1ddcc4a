"""LoadBalancer and NodePort Services that carry TCP: a cloud load-balancer controller plus kube-proxy."""

from __future__ import annotations

import errno
import ipaddress
import logging
import zlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from .controller import Controller
from .errors import ApiError
from .events import EventRecorder
from .hosts import backing_pods
from .link import Link
from .selectors import label_selector_from_dict
from .store import Store, WatchEvent
from .tcpproxy import CONNECT_TIMEOUT, Addr, TcpForwarder, bind_error

__all__ = ["IngressPool", "ServiceProxy", "default_load_balancer_cidr", "endpoints", "target_port"]

log = logging.getLogger(__name__)


def default_load_balancer_cidr(index: int) -> str:
    """The LoadBalancer pool of the cluster at ``index`` in the cluster file when it names none."""
    return f"127.210.{index % 256}.0/24"


def target_port(port: Mapping[str, Any], pod: Mapping[str, Any]) -> int | None:
    """The pod's port for a service port: a number, or a named container port (None if it lacks it)."""
    target = port.get("targetPort", port.get("port"))
    if isinstance(target, int):
        return target
    if isinstance(target, str) and target.isdigit():
        return int(target)
    protocol = port.get("protocol", "TCP")
    for container in (pod.get("spec") or {}).get("containers") or []:
        for cport in container.get("ports") or []:
            if cport.get("name") == target and cport.get("protocol", "TCP") == protocol:
                return int(cport["containerPort"])
    return None


def _pod_ready(pod: Mapping[str, Any]) -> bool:
    conditions = (pod.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def endpoints(
    service: Mapping[str, Any],
    port: Mapping[str, Any],
    pods: Iterable[Mapping[str, Any]],
    node: str = "",
) -> list[Addr]:
    """Where a service port sends traffic: (pod IP, target port) of its Ready pods, oldest first.

    The pods are the ones a service name resolves to (``hosts.backing_pods``) that are Ready, have a
    pod IP and have the target port; ``node`` keeps only the pods on that node.
    """
    found = []
    for pod in backing_pods(service, pods):
        if not _pod_ready(pod) or (node and (pod.get("spec") or {}).get("nodeName") != node):
            continue
        number = target_port(port, pod)
        if number is not None:
            found.append((str(pod["status"]["podIP"]), number))
    return found


def _tcp_ports(service: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    ports = (service.get("spec") or {}).get("ports") or []
    return [p for p in ports if p.get("protocol", "TCP") == "TCP" and p.get("port")]


class IngressPool:
    """LoadBalancer ingress IPs of one cluster, one per Service (by uid), lowest free first."""

    def __init__(self, cidr: str) -> None:
        self.network = ipaddress.ip_network(cidr)
        self._by_uid: dict[str, str] = {}

    def get(self, uid: str) -> str | None:
        return self._by_uid.get(uid)

    def free(self) -> Iterator[str]:
        taken = set(self._by_uid.values())
        return (ip for ip in map(str, self.network.hosts()) if ip not in taken)

    def assign(self, uid: str, ip: str) -> None:
        self._by_uid[uid] = ip

    def release(self, uid: str) -> str | None:
        return self._by_uid.pop(uid, None)

    def uids(self) -> set[str]:
        return set(self._by_uid)


@dataclass(frozen=True)
class Route:
    """What one listening address serves: the service port whose ``field`` is ``number``."""

    namespace: str
    name: str
    uid: str
    field: str  # "port" on a load-balancer IP, "nodePort" on a node IP
    number: int
    node: str = ""  # the node whose InternalIP this is (node ports only)

    def __str__(self) -> str:
        return f"service {self.namespace}/{self.name}"


def _in_use(ip: str, ports: Iterable[Mapping[str, Any]]) -> bool:
    """Whether some other socket on this host listens on one of ``ports`` at ``ip``."""
    for p in ports:
        why = bind_error((ip, int(p["port"])))
        if why is not None and why.errno == errno.EADDRINUSE:
            return True
    return False


class ServiceProxy(Controller):
    """Gives LoadBalancer Services an ingress IP and serves it and all node ports on this host.

    Every ``spec.ports[].port`` of a LoadBalancer Service is served at its ingress IP, and every
    ``nodePort`` at each Ready node's InternalIP that is an address of this host. A connection goes
    to a Ready pod of the Service (round robin, or by client IP with ``sessionAffinity: ClientIP``)
    at its target port, and is reset when there is none. While ``link`` hangs, these addresses
    hang too (they are the cluster's, across the site link).
    """

    name = "service-proxy"

    def __init__(
        self,
        store: Store,
        cidr: str,
        *,
        connect_timeout: float = CONNECT_TIMEOUT,
        link: Link | None = None,
    ) -> None:
        super().__init__(store)
        self.pool = IngressPool(cidr)
        self.forwarder = TcpForwarder(self.pick, connect_timeout=connect_timeout, link=link)
        self.events = EventRecorder(store, "service-controller")
        self._services = store.registry.core("services")
        self._pods = store.registry.core("pods")
        self._nodes = store.registry.core("nodes")
        self._warned: set[Addr] = set()  # addresses that failed to bind, logged once
        self._local: dict[str, bool] = {}  # node IP -> an address of this host
        self._turns: dict[tuple[str, int], int] = {}  # (service uid, port) -> round-robin counter

    def serving(self) -> dict[Addr, Route]:
        """The addresses served now, with what they serve."""
        return self.forwarder.serving()

    async def stop(self) -> None:
        await super().stop()
        await self.forwarder.stop()

    # ------------------------------------------------------------------ watching

    def observe(self, event: WatchEvent) -> bool:
        if not event.rt.builtin:
            return False
        if event.rt.kind == "Node" and event.type == "DELETED":
            for addr in (event.obj.get("status") or {}).get("addresses") or []:
                self._local.pop(str(addr.get("address")), None)  # the next node with it checks again
        return event.rt.kind in ("Service", "Node")  # endpoints are looked up per connection

    def reconcile(self) -> float | None:
        want: dict[Addr, Route] = {}
        nodes = self._node_addresses()
        seen: set[str] = set()
        for svc in self.store.list(self._services):
            meta, spec = svc["metadata"], svc.get("spec") or {}
            if meta.get("deletionTimestamp"):
                continue
            uid, kind = meta["uid"], spec.get("type", "ClusterIP")
            seen.add(uid)
            ports = _tcp_ports(svc)
            ns, name = meta["namespace"], meta["name"]
            if kind == "LoadBalancer":
                ip = self._ensure_load_balancer(svc, ports)
                for p in ports if ip else ():
                    want[(ip, int(p["port"]))] = Route(ns, name, uid, "port", int(p["port"]))
            elif self.pool.get(uid) is not None:
                self._delete_load_balancer(svc)
            if kind in ("NodePort", "LoadBalancer"):
                for p in (p for p in ports if p.get("nodePort")):
                    number = int(p["nodePort"])
                    for node, node_ip in nodes:
                        want[(node_ip, number)] = Route(ns, name, uid, "nodePort", number, node)
        for uid in self.pool.uids() - seen:
            self.pool.release(uid)
        self._turns = {k: v for k, v in self._turns.items() if k[0] in seen}
        serving = self.forwarder.serving()
        for addr, route in serving.items():
            if want.get(addr) != route:
                self.forwarder.close(addr)
        for addr, route in want.items():
            if serving.get(addr) == route:
                continue
            why = self.forwarder.open(addr, route)
            if why is not None and addr not in self._warned:
                self._warned.add(addr)
                log.warning("%s: cannot listen on %s:%d: %s", route, *addr, why)
        self._warned &= set(want)
        return None

    def _node_addresses(self) -> list[tuple[str, str]]:
        """(name, InternalIP) of Ready nodes whose address this host has."""
        found = []
        for node in self.store.list(self._nodes):
            status = node.get("status") or {}
            ready = any(
                c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or []
            )
            ips = [a["address"] for a in status.get("addresses") or [] if a.get("type") == "InternalIP"]
            if ready and ips and self._is_local(ips[0]):
                found.append((node["metadata"]["name"], ips[0]))
        return found

    def _is_local(self, ip: str) -> bool:
        known = self._local.get(ip)
        if known is None:
            why = bind_error((ip, 0))
            known = why is None
            if not known:
                log.info(
                    "node address %s is not on this host (%s): its node ports are not served "
                    "(a nodeCIDR in 127.0.0.0/8 makes them reachable)",
                    ip,
                    why,
                )
            self._local[ip] = known
        return known

    # ------------------------------------------------------------------ the cloud's load balancers

    def _ensure_load_balancer(self, svc: Mapping[str, Any], ports: list[Mapping[str, Any]]) -> str:
        """The Service's ingress IP (allocated on first sight) in its status; "" when none is free."""
        meta = svc["metadata"]
        ip = self.pool.get(meta["uid"])
        if ip is None:
            self.events.record(svc, "Normal", "EnsuringLoadBalancer", "Ensuring load balancer")
            # an address another program (say a second simcluster) serves these ports on is skipped
            ip = next((a for a in self.pool.free() if not _in_use(a, ports)), None)
            if ip is None:
                message = (
                    "Error syncing load balancer: failed to ensure load balancer: no free address "
                    f"in loadBalancerCIDR {self.pool.network}"
                )
                self.events.record(svc, "Warning", "SyncLoadBalancerFailed", message)
                return ""
            self.pool.assign(meta["uid"], ip)
        ingress = {"ingress": [{"ip": ip, "ipMode": "VIP"}]}
        if (svc.get("status") or {}).get("loadBalancer") != ingress:
            self._write_status(svc, ingress)
            self.events.record(svc, "Normal", "EnsuredLoadBalancer", "Ensured load balancer")
        return ip

    def _delete_load_balancer(self, svc: Mapping[str, Any]) -> None:
        """The Service is no longer a LoadBalancer: its address goes, and its status says so."""
        self.events.record(svc, "Normal", "DeletingLoadBalancer", "Deleting load balancer")
        self.pool.release(svc["metadata"]["uid"])
        self._write_status(svc, {})
        self.events.record(svc, "Normal", "DeletedLoadBalancer", "Deleted load balancer")

    def _write_status(self, svc: Mapping[str, Any], load_balancer: dict[str, Any]) -> None:
        meta = svc["metadata"]

        def mutate(obj: dict[str, Any]) -> None:
            obj.setdefault("status", {})["loadBalancer"] = load_balancer

        try:
            self.store.update(self._services, meta["namespace"], meta["name"], mutate, subresource="status")
        except ApiError as err:
            log.warning("service %s/%s: status not written: %s", meta["namespace"], meta["name"], err)

    # ------------------------------------------------------------------ forwarding

    def pick(self, route: Route, client_ip: str) -> Addr | None:
        """The pod address a new connection to ``route`` goes to, or None when there is none."""
        svc = self.store.find(self._services, route.namespace, route.name)
        if svc is None or svc["metadata"]["uid"] != route.uid:
            return None
        spec = svc.get("spec") or {}
        port = next((p for p in _tcp_ports(svc) if p.get(route.field) == route.number), None)
        if port is None or not spec.get("selector"):
            return None
        selector = label_selector_from_dict({"matchLabels": spec["selector"]})
        pods = self.store.list(self._pods, route.namespace, labels=selector)
        local = route.node if spec.get("externalTrafficPolicy") == "Local" else ""
        found = endpoints(svc, port, pods, node=local)
        if not found:
            return None
        if spec.get("sessionAffinity") == "ClientIP":
            return found[zlib.crc32(client_ip.encode()) % len(found)]
        key = (route.uid, int(port["port"]))
        turn = self._turns.get(key, 0)
        self._turns[key] = turn + 1
        return found[turn % len(found)]
