"""The cloud meter on the store: charges per pass from the inventory, a new period starts from zero,
a long gap is charged at most MAX_STEP, and a new service process reads what the ledger holds."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from spawner.core.model import Role
from spawner.inventory.index import ServerLocation
from spawner.service.runs.budget import CloudBudget
from spawner.service.runs.metering import MAX_STEP, CloudMeter
from spawner.service.store import Store
from spawner.service.store.runs import UsageLedger

ROLES = {"onprem": Role.ONPREM, "eks": Role.CLOUD}
DEC_31 = datetime(2026, 12, 31, 20, 0, tzinfo=UTC).timestamp()


class Pods:
    """GPU pods and notebook pods by cluster, as the fleet's inventory has them."""

    def __init__(self) -> None:
        self.gpus: dict[str, tuple[tuple[str, str, int], ...]] = {
            "onprem": (("hybridhub-runs-ada", "train-0", 8),),  # on-prem costs nothing here
            "eks": (("hybridhub-runs-ada", "sweep-1", 2), ("jupyterhub", "jupyter-bob", 1)),
        }
        self.namespace_reads = 0

    def gpu_pods(self, cluster: str) -> tuple[tuple[str, str, int], ...]:
        return self.gpus.get(cluster, ())

    def notebook_pods(self) -> list[tuple[str, ServerLocation]]:
        bob = ServerLocation("bob", "", "jupyterhub", "jupyter-bob", None, "Running", "n1")
        return [("eks", bob)]

    async def run_namespaces(self) -> dict[str, str]:
        self.namespace_reads += 1
        return {"hybridhub-runs-ada": "ada"}


@pytest.mark.asyncio
async def test_the_meter_charges_cloud_gpus_per_user_by_period_and_survives_a_restart(store: Store) -> None:
    pods = Pods()
    budget = CloudBudget("month", {"ada": 1.0})
    meter = CloudMeter(UsageLedger(store), budget)
    now = DEC_31
    assert await meter.meter(now, pods, ROLES, pods.run_namespaces) == {}  # the first call starts the clock
    assert await meter.meter(now + 30, pods, ROLES, pods.run_namespaces) == {"ada": 60.0, "bob": 30.0}
    assert await meter.closed("ada", now + 30) == ""
    # a gap of an hour (a suspended machine) is charged MAX_STEP, not the hour
    found = await meter.meter(now + 30 + 3600 - 60, pods, ROLES, pods.run_namespaces)
    assert found == {"ada": 2 * MAX_STEP, "bob": MAX_STEP}
    assert meter.used() == {"ada": 60.0 + 2 * MAX_STEP, "bob": 30.0 + MAX_STEP}
    # a new process reads December from the ledger
    again = CloudMeter(UsageLedger(store), budget)
    assert await again.closed("ada", now + 60) == ""
    assert again.used() == meter.used()
    # past her hour: her budget is spent, bob has none
    pods.gpus["eks"] = (("hybridhub-runs-ada", "sweep-1", 8),)
    for step in range(3):  # the first starts this process's clock
        await again.meter(now + 60 + step * 300, pods, ROLES, pods.run_namespaces)
    assert again.used()["ada"] == 60.0 + 2 * MAX_STEP + 2 * 8 * 300
    closed = await again.closed("ada", now + 700)
    assert closed.startswith("you have used 1.5 of your 1 cloud GPU-hours this month"), closed
    # January: a new period, from zero
    january = datetime(2027, 1, 1, 0, 5, tzinfo=UTC).timestamp()
    assert await again.closed("ada", january) == ""
    assert again.used() == {}
    await again.meter(january, pods, ROLES, pods.run_namespaces)
    assert (await UsageLedger(store).used(datetime(2027, 1, 1, tzinfo=UTC)))["ada"] == 8 * MAX_STEP
    # only pods in the cloud, and the run namespaces read only when a pod needs them
    pods.gpus["eks"] = (("jupyterhub", "jupyter-bob", 1),)
    reads = pods.namespace_reads
    await again.meter(january + 10, pods, ROLES, pods.run_namespaces)
    assert pods.namespace_reads == reads
