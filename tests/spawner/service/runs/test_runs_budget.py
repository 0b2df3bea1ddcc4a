"""The cloud budget in the service against two simclusters: a user's cloud GPU use is metered from
the inventory into the store's ledger; past their budget, their runs wait for on-prem past their
max_wait and say why, a run pinned to the cloud waits there, and another user's run bursts as ever."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import pytest_asyncio

from labextension_server.display import runs_view
from simcluster.testing import SimProcess
from spawner.service.runs.budget import CloudBudget, period_bounds
from spawner.service.store.runs import ADMITTED, UsageLedger

from .runs_harness import RunsService, running_runs_service, tokens_for
from .test_runs_moves import A100, CLUSTER_FILE, POOLS, unique, until, workflow

pytestmark = [pytest.mark.timeout(180), pytest.mark.asyncio(loop_scope="module")]

ARGO = "argo/api/v1/workflows/default"
# dave may use 12 GPU-seconds of the cloud this month: one 4-GPU step of a few seconds spends them
BUDGET = CloudBudget("month", {"*": 100.0, "dave": 12 / 3600})


@pytest.fixture(scope="module")
def sim(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SimProcess]:
    tmp = tmp_path_factory.mktemp("runs-budget")
    (tmp / "clusters.yaml").write_text(CLUSTER_FILE)
    with SimProcess(tmp / "sim", config=tmp / "clusters.yaml") as proc:
        yield proc


@pytest_asyncio.fixture(scope="module", loop_scope="module")
async def svc(sim: SimProcess, tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[RunsService]:
    async with running_runs_service(
        sim,
        tmp_path_factory.mktemp("svc"),
        tokens_for("dave", "erin"),
        pools=POOLS,
        move_settle=1.0,
        cloud_budget=BUDGET,
    ) as s:
        yield s


async def submit(svc: RunsService, who: str, body: dict[str, Any]) -> None:
    status, answer = await svc.call("POST", ARGO, f"{who}-token", {"workflow": body})
    assert status == 200, answer


async def row(svc: RunsService, who: str, name: str) -> dict[str, Any]:
    status, listing = await svc.call("GET", "api/runs", f"{who}-token")
    assert status == 200, listing
    return next(r for r in listing["runs"] if r["name"] == name)


async def phase(svc: RunsService, who: str, name: str) -> str:
    status, answer = await svc.call("GET", f"{ARGO}/{name}", f"{who}-token")
    assert status == 200, answer
    return str((answer.get("status") or {}).get("phase") or "")


async def test_past_their_cloud_budget_a_users_runs_wait_for_onprem_and_say_why(
    svc: RunsService, sim: SimProcess
) -> None:
    # 1. dave bursts once: on-prem is full, his run goes to eks and runs 4 GPUs for 4 s
    blocker = unique("blocker")
    await submit(svc, "erin", workflow(blocker, cluster="onprem", exit_after=None))

    async def blocking() -> bool:
        record = await svc.manager.registry.get("erin", "Workflow", blocker)
        return record is not None and record.state == ADMITTED

    await until(blocking)
    first = unique("burst")
    await submit(svc, "dave", workflow(first, max_wait="0s", exit_after=4))
    record = await svc.manager.registry.get("dave", "Workflow", first)
    assert record is not None and record.cluster == "eks", record

    async def succeeded() -> bool:
        return await phase(svc, "dave", first) == "Succeeded"

    await until(succeeded, 60)
    # the meter charged it to dave, from the inventory: about 4 GPUs x 4 s, and nothing to erin
    # (her run holds on-prem's GPUs, which cost nothing here)
    assert svc.manager.meter is not None
    used = svc.manager.meter.used()
    assert 12 <= used["dave"] <= 4 * 8, used
    assert "erin" not in used, used
    start, _ = period_bounds(datetime.now(UTC), "month")
    assert (await UsageLedger(svc.store).used(start))["dave"] == pytest.approx(used["dave"])
    closed = await svc.manager.cloud_closed("dave")
    assert closed.startswith("you have used 0.00") and "of your 0.00333 cloud GPU-hours this month" in closed
    assert await svc.manager.cloud_closed("erin") == ""

    # the metric collector shows it, per user
    scrape = svc.metrics.render().decode()
    hours = next(
        line for line in scrape.splitlines() if line.startswith('hybridhub_cloud_gpu_hours{user="dave"}')
    )
    assert float(hours.split()[-1]) == pytest.approx(used["dave"] / 3600), hours

    # 2. his next run waits for on-prem past its max_wait of 1 s, and says why
    second = unique("waits")
    await submit(svc, "dave", workflow(second, max_wait="1s", exit_after=0.3))
    record = await svc.manager.registry.get("dave", "Workflow", second)
    assert record is not None and record.cluster == "onprem", record
    assert "not the cloud: you have used" in record.reason, record.reason

    async def says_why() -> dict[str, Any] | None:
        found = await row(svc, "dave", second)
        reason = str((found.get("queue") or {}).get("reason"))
        return found if "it does not go to eks: you have used" in reason else None

    found = await until(says_why, 20)
    assert found["cluster"] == "onprem" and found["moves"] == [], found
    # %runs in his notebook says it, from the same listing
    status, listing = await svc.call("GET", "api/runs", "dave-token")
    shown = runs_view(listing["runs"]).text()
    line = next(ln for ln in shown.splitlines() if second in ln)
    assert "Queued" in line and "it does not go to eks: you have used 0.0" in line, shown
    # the lag of on-prem, as api/capacity shows it: 4 A100s queued there, and a run of 4 waits
    status, capacity = await svc.call("GET", "api/capacity", "dave-token")
    assert status == 200, capacity
    onprem = next(c for c in capacity["clusters"] if c["name"] == "onprem")
    a100 = next(p for p in onprem["products"] if p["product"] == A100)
    assert a100["queued_gpus"] == 4, a100
    waits = {w["gpus"]: w["seconds"] for w in a100["expected_wait"]}
    assert waits[4] is not None and waits[4] > 0 and waits[8] is None, waits  # one node of 4
    # ... and the metric collector: a run waiting there, past its max_wait
    lag = next(
        line
        for line in svc.metrics.render().decode().splitlines()
        if line.startswith('hybridhub_run_longest_wait_seconds{cluster="onprem"}')
    )
    assert float(lag.split()[-1]) >= 1.0, lag
    # ... and a run he pins to eks waits there, not let go
    pinned = unique("pinned")
    await submit(svc, "dave", workflow(pinned, cluster="eks", exit_after=0.3))

    async def pinned_waits() -> dict[str, Any] | None:
        found = await row(svc, "dave", pinned)
        reason = str((found.get("queue") or {}).get("reason"))
        return found if "your run waits on eks" in reason else None

    found = await until(pinned_waits, 20)
    assert found["state"] == "queued" and "you have used" in found["queue"]["reason"], found

    # 3. erin's run bursts past its max_wait as ever
    hers = unique("hers")
    await submit(svc, "erin", workflow(hers, max_wait="1s", exit_after=0.3))

    async def hers_done() -> bool:
        return await phase(svc, "erin", hers) == "Succeeded"

    await until(hers_done, 60)
    assert (await row(svc, "erin", hers))["cluster"] == "eks"
    # dave's still waits on-prem, past its max_wait
    assert (await row(svc, "dave", second))["cluster"] == "onprem"

    # 4. on-prem frees: dave's run starts there
    assert (await svc.call("DELETE", f"{ARGO}/{blocker}", "erin-token"))[0] == 200

    async def second_done() -> bool:
        return await phase(svc, "dave", second) == "Succeeded"

    await until(second_done, 60)
    assert (await row(svc, "dave", second))["cluster"] == "onprem"
    for who, name in (("dave", first), ("dave", second), ("dave", pinned), ("erin", hers)):
        assert (await svc.call("DELETE", f"{ARGO}/{name}", f"{who}-token"))[0] == 200
