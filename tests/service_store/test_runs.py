"""The run registry on sqlite and PostgreSQL: a name once per user and kind, states, the queue's order."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest

from spawner.service.store import Store
from spawner.service.store.runs import (
    ADMITTED,
    DELETING,
    QUEUED,
    SUBMITTING,
    DuplicateRun,
    NewRun,
    RunRegistry,
    UsageLedger,
)


def new(user: str, name: str, kind: str = "Workflow", **kw: object) -> NewRun:
    fields: dict[str, object] = {
        "user": user,
        "kind": kind,
        "name": name,
        "namespace": f"hybridhub-runs-{user}",
        "wanted": "auto",
        "max_wait": 1800.0,
        "cluster": "onprem",
        "gang": ((2, "NVIDIA-A100-SXM4-80GB"), (2, "NVIDIA-A100-SXM4-80GB")),
        "manifest": {"kind": kind, "metadata": {"name": name}, "spec": {"suspend": True}},
        "reason": "on-prem has room",
    }
    fields.update(kw)
    return NewRun(**fields)  # type: ignore[arg-type]


@pytest.mark.asyncio
async def test_a_name_is_one_run_per_user_and_kind(store: Store) -> None:
    registry = RunRegistry(store)
    first = await registry.add(new("alice", "train"))
    assert first.state == SUBMITTING and first.gpus == 4 and first.uid is None
    assert first.gang == ((2, "NVIDIA-A100-SXM4-80GB"), (2, "NVIDIA-A100-SXM4-80GB"))
    assert first.manifest["spec"] == {"suspend": True}
    with pytest.raises(DuplicateRun):
        await registry.add(new("alice", "train", cluster="eks"))
    # another user, or another kind, may use the name
    await registry.add(new("bob", "train"))
    await registry.add(new("alice", "train", kind="TrainJob"))
    assert [r.kind for r in await registry.runs(user="alice")] == ["Workflow", "TrainJob"]
    assert await registry.get("alice", "Workflow", "train") == first
    assert await registry.get("carol", "Workflow", "train") is None
    assert await registry.users() == {"alice", "bob"}
    # the registry still takes runs after a refused one
    await registry.add(new("alice", "other"))


@pytest.mark.asyncio
async def test_state_changes_only_from_the_expected_state(store: Store) -> None:
    registry = RunRegistry(store)
    run = await registry.add(new("alice", "train"))
    assert await registry.update(run.id, expect_state=SUBMITTING, state=QUEUED, uid="u-1")
    # a second writer that still thinks it is submitting changes nothing
    assert not await registry.update(run.id, expect_state=SUBMITTING, state=QUEUED, uid="u-2")
    got = await registry.get("alice", "Workflow", "train")
    assert got is not None and got.state == QUEUED and got.uid == "u-1"
    assert await registry.update(run.id, state=ADMITTED)
    assert [r.name for r in await registry.runs(states=[QUEUED])] == []
    assert [r.name for r in await registry.runs(states=[ADMITTED], kinds=["Workflow"])] == ["train"]
    with pytest.raises(ValueError, match="user"):
        await registry.update(run.id, user="mallory")
    assert await registry.update(run.id, state=DELETING)
    assert await registry.remove(run.id)
    assert not await registry.remove(run.id)
    assert not await registry.update(run.id, state=QUEUED)
    # the name is free again once the run is gone
    await registry.add(new("alice", "train"))


@pytest.mark.asyncio
async def test_two_submissions_of_one_name_at_once_make_one_run(store: Store) -> None:
    registry = RunRegistry(store)
    results = await asyncio.gather(
        *(registry.add(new("alice", "race", cluster=c)) for c in ("onprem", "eks", "onprem", "eks")),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, DuplicateRun) for r in results if isinstance(r, Exception))
    assert len(await registry.runs(user="alice")) == 1


@pytest.mark.asyncio
async def test_the_queue_is_in_submission_order(store: Store) -> None:
    registry = RunRegistry(store)
    for name in ("a", "b", "c"):
        run = await registry.add(new("alice", name))
        await registry.update(run.id, state=QUEUED)
    await registry.add(new("bob", "d"))
    assert [r.name for r in await registry.runs(states=[QUEUED])] == ["a", "b", "c"]
    assert [r.name for r in await registry.runs()] == ["a", "b", "c", "d"]


@pytest.mark.asyncio
async def test_the_queues_gangs_are_read_alone(store: Store) -> None:
    registry = RunRegistry(store)
    a = await registry.add(new("alice", "a"))
    b = await registry.add(new("alice", "b", cluster="eks", gang=((1, None),)))
    c = await registry.add(new("bob", "c"))
    await registry.update(b.id, state=QUEUED)
    await registry.update(c.id, state=ADMITTED)
    assert await registry.queued_gangs() == [("onprem", a.gang), ("eks", ((1, None),))]


@pytest.mark.asyncio
async def test_a_move_is_one_write_and_its_left_copy_outlives_the_run(store: Store) -> None:
    registry = RunRegistry(store)
    run = await registry.add(new("alice", "moving"))
    await registry.update(run.id, state=QUEUED, uid="uid-onprem")
    queued = await registry.get("alice", "Workflow", "moving")
    assert queued is not None
    # a move from the cluster and state the run was read in
    first = await registry.move(
        queued, target="eks", reason="moved: onprem is down", left_behind=True, state=SUBMITTING
    )
    assert first is not None
    assert (first.source, first.target, first.left_behind, first.left_uid) == (
        "onprem",
        "eks",
        True,
        "uid-onprem",
    )
    moved = await registry.get("alice", "Workflow", "moving")
    assert moved is not None
    assert (moved.cluster, moved.uid, moved.state, moved.reason) == (
        "eks",
        None,
        SUBMITTING,
        "moved: onprem is down",
    )
    # read before the move, the run is not moved again: it is no longer where it was read
    assert (
        await registry.move(queued, target="eks", reason="again", left_behind=False, state=SUBMITTING) is None
    )
    assert [m.id for m in await registry.moves(copies_left=True)] == [first.id]
    # back to on-prem, deleted first: nothing left behind
    await registry.update(run.id, state=QUEUED, uid="uid-eks")
    again = await registry.get("alice", "Workflow", "moving")
    assert again is not None
    back = await registry.move(
        again, target="onprem", reason="moved back", left_behind=False, state=SUBMITTING
    )
    assert back is not None and back.left_uid is None
    assert [(m.source, m.target) for m in await registry.moves(run_ids=[run.id])] == [
        ("onprem", "eks"),
        ("eks", "onprem"),
    ]
    # the user deletes the run: its history goes, but not the record of a copy still to delete
    await registry.remove(run.id)
    left = await registry.moves(copies_left=True)
    assert [m.id for m in left] == [first.id]
    assert [m.id for m in await registry.moves(run_ids=[run.id])] == [first.id]
    await registry.copy_cleaned(first.id)
    assert await registry.moves(run_ids=[run.id]) == []
    assert await registry.moves(copies_left=True) == []


@pytest.mark.asyncio
async def test_a_cleaned_copy_stays_in_the_history_of_a_live_run(store: Store) -> None:
    registry = RunRegistry(store)
    run = await registry.add(new("bob", "kept"))
    await registry.update(run.id, state=QUEUED, uid="u1")
    queued = await registry.get("bob", "Workflow", "kept")
    assert queued is not None
    move = await registry.move(queued, target="eks", reason="r", left_behind=True, state=SUBMITTING)
    assert move is not None
    await registry.copy_cleaned(move.id)
    history = await registry.moves(run_ids=[run.id])
    assert len(history) == 1 and history[0].cleaned is not None
    assert await registry.moves(copies_left=True) == []


@pytest.mark.asyncio
async def test_the_cloud_ledger_adds_up_per_user_and_period_also_at_once(store: Store) -> None:
    ledger = UsageLedger(store)
    december, january = datetime(2026, 12, 1, tzinfo=UTC), datetime(2027, 1, 1, tzinfo=UTC)
    assert await ledger.used(december) == {}
    await ledger.add(december, {"alice": 60.0, "bob": 4.0})
    await ledger.add(december, {"alice": 30.0})
    await ledger.add(december, {})
    await ledger.add(january, {"alice": 1.0})
    assert await ledger.used(december) == {"alice": 90.0, "bob": 4.0}
    assert await ledger.used(january) == {"alice": 1.0}
    # two services' passes at once (one store): every charge counts once
    await asyncio.gather(*(ledger.add(january, {"carol": 2.0}) for _ in range(2)))
    assert (await ledger.used(january))["carol"] == 4.0
