"""Between tests that share a hub and simcluster: undo what a test left, so its failure stays its own."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from simcluster.testing import SimProcess
from tests.harness.hub import HubProcess
from tests.harness.service_api import wait_for_service
from tests.harness.waits import wait_for

__all__ = ["leave_clean", "link_delivered", "pod_count"]

CLUSTERS = ("onprem", "eks")


def pod_count(sim: SimProcess) -> dict[str, int]:
    """Pods per cluster, every namespace (the admin API's object counts: no token, no kubectl)."""
    return {c: int(sim.admin(c).state()["objects"].get("pods", 0)) for c in CLUSTERS}


def link_delivered(sim: SimProcess, cluster: str, timeout: float = 150.0) -> None:
    """Wait until ``cluster``'s site link holds nothing more: what was sent while it hung arrives at
    the sender's next TCP retransmission after it returns (up to 2 minutes later), and a create held
    there makes its object only then, after the test that hung the link may have looked."""
    admin = sim.admin(cluster)
    wait_for(
        f"{cluster}'s site link to deliver what it held",
        lambda: admin.faults()["held"],
        timeout,
        until=lambda held: not any(held.values()),
        every=0.5,
    )


def leave_clean(
    sim: SimProcess,
    hubs: Iterable[HubProcess],
    baseline: Mapping[str, int],
    namespaces: Iterable[str],
    timeout: float = 60.0,
) -> list[str]:
    """After a test: API faults cleared, each hub up (started again if a test left it down, its
    service answering), every server stopped, and no pod beyond ``baseline`` left in ``namespaces``.
    Returns what had to be undone, for the test's report; a passing test usually left nothing."""
    undone = []
    for cluster in CLUSTERS:
        admin = sim.admin(cluster)
        if any(admin.faults().get(k) for k in ("down", "latency", "errorRate", "hung")):
            undone.append(f"faults on {cluster}")
            admin.clear_faults()
    for cluster in CLUSTERS:
        link_delivered(sim, cluster)
    for hub in hubs:
        if not hub.running:
            undone.append(f"hub {hub.workdir.name} started again")
            hub.stop()
            hub.start()
            if hub.wiring is not None:
                wait_for_service(hub)
        if stopped := hub.stop_all_servers(timeout):
            undone.append(f"servers of {stopped} stopped")
    if pod_count(sim) == dict(baseline):  # the usual case, answered without kubectl
        return undone
    names = list(namespaces)
    for cluster in CLUSTERS:
        for namespace in names:
            out = sim.kubectl("get", "pods", "-n", namespace, "-o", "name", context=cluster).stdout.split()
            if out:
                undone.append(f"pods {out} in {cluster}/{namespace} deleted")
                force = ("--grace-period=0", "--force", "--wait=false")
                sim.kubectl("delete", *out, "-n", namespace, *force, context=cluster, check=False)
    wait_for(f"pods back to {dict(baseline)}", lambda: pod_count(sim), timeout, until=lambda n: n == baseline)
    return undone
