"""Hub fixtures: two simclusters with the process runtime, and real JupyterHubs spawning into them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from simcluster.runtimes.process import can_use_namespaces
from simcluster.testing import SimProcess
from tests.environment import needs
from tests.harness.cleanup import leave_clean, pod_count
from tests.harness.hub import CHP, HubProcess
from tests.harness.hybrid import wire
from tests.harness.service_api import wait_for_service

HERE = Path(__file__).parent
CLUSTERS = HERE.parent / "harness" / "clusters.yaml"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every hub test needs pods reached at their pod IPs (simcluster's process runtime: root,
    util-linux, iproute2), kubectl and the npm-installed proxy. Checked before a hub starts: missing,
    the test skips here and fails under CI=true (tests/environment.py)."""
    sandboxes, why = can_use_namespaces()
    marks = [
        needs(sandboxes, f"pods reached at their pod IPs need simcluster's process runtime: {why}"),
        needs(CHP.exists(), f"configurable-http-proxy is not installed at {CHP} (make test runs npm ci)"),
        pytest.mark.kubectl,
    ]
    for item in items:
        if item.path.is_relative_to(HERE):
            for mark in marks:
                item.add_marker(mark)


@pytest.fixture(scope="session")
def hsim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    """`onprem` and `eks`, pods run as real processes (tests/harness/clusters.yaml)."""
    with SimProcess(tmp_path_factory.mktemp("hsim"), config=CLUSTERS) as proc:
        yield proc


@pytest.fixture(scope="session")
def pods_at_start(hsim: SimProcess) -> dict[str, int]:
    return pod_count(hsim)


@pytest.fixture(autouse=True)
def leaves_nothing_behind(
    request: pytest.FixtureRequest, hsim: SimProcess, pods_at_start: dict[str, int]
) -> Iterator[None]:
    """A module's tests share one hub and the session's simclusters. After each test, what it left
    (faults, a hub it stopped, servers, pods) is undone, so that a failure stays that test's own."""
    yield
    hubs = [v for v in request.node.funcargs.values() if isinstance(v, HubProcess)]
    namespaces = {"default", "jupyterhub", *(hub.namespace for hub in hubs)}
    if undone := leave_clean(hsim, hubs, pods_at_start, sorted(namespaces)):
        print(f"left behind, now undone: {'; '.join(undone)}")


@pytest.fixture(scope="module")
def hub(hsim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """JupyterHub 5.5 + configurable-http-proxy + stock KubeSpawner; pods run jupyterhub-singleuser."""
    with HubProcess(tmp_path_factory.mktemp("hub"), hsim) as proc:
        yield proc


def run_service_hub(
    hsim: SimProcess, work: Path, *, spawner: bool, extra_config: str = "", **clusters_kw: Any
) -> Iterator[HubProcess]:
    """A hub with the hybridhub service (with ``spawner``, HybridSpawner too); ``clusters_kw`` go to
    tests.harness.hybrid.clusters_value."""
    hub = HubProcess(work / "hub", hsim, namespace="jupyterhub")
    hub.wiring = wire(hub, hsim, work, spawner=spawner, **clusters_kw)
    hub.extra_config += extra_config
    with hub:
        wait_for_service(hub)
        yield hub


@pytest.fixture(scope="module")
def service_hub(hsim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """A hub with the hybridhub service (stock KubeSpawner)."""
    yield from run_service_hub(hsim, tmp_path_factory.mktemp("svc"), spawner=False)


PRE_SPAWN_HOOK = """
def _pre_spawn(spawner):
    spawner.volumes = [*spawner.volumes, {"name": "scratch", "emptyDir": {}}]
    spawner.volume_mounts = [*spawner.volume_mounts, {"name": "scratch", "mountPath": "/scratch"}]
    spawner.extra_labels = {**spawner.extra_labels, "team": "ml"}
c.Spawner.pre_spawn_hook = _pre_spawn
"""


@pytest.fixture(scope="module")
def hybrid_hub(hsim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> Iterator[HubProcess]:
    """A hub with the hybridhub service and HybridSpawner. Each cluster has its own home (a PVC per
    user); the hub reaches pods on eks through a per-user LoadBalancer Service, as from outside a VPC.
    A pre_spawn_hook adds a scratch volume and a label, as deployments' hooks do: every attempt of
    every spawn must keep them."""
    yield from run_service_hub(
        hsim,
        tmp_path_factory.mktemp("hybrid"),
        spawner=True,
        extra_config=PRE_SPAWN_HOOK,
        homes=({"kind": "pvc", "size": "1Gi"}, {"kind": "pvc", "size": "1Gi", "storage_class": "gp3"}),
        eks_access={"pod_access": "service", "service_type": "LoadBalancer"},
    )
