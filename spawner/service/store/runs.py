"""The run registry: every run a user submitted, where it went and why, and the queue of those waiting."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from .access import Store
from .models import CloudUsageRow, RunMoveRow, RunRow

__all__ = [
    "ADMITTED",
    "DELETING",
    "QUEUED",
    "REFUSED",
    "STATES",
    "SUBMITTING",
    "DuplicateRun",
    "MoveRecord",
    "NewRun",
    "RunRecord",
    "RunRegistry",
    "UsageLedger",
]

# The registry row is written before anything is sent to a cluster; the create is not confirmed yet.
SUBMITTING = "submitting"
# The run exists in its cluster, suspended, or (a kind that cannot be suspended) waits in the
# registry only; either way the service has not let it start.
QUEUED = "queued"
# The service let the run start: un-suspended, or created.
ADMITTED = "admitted"
# The user deleted the run; the delete in its cluster is not confirmed yet.
DELETING = "deleting"
# A run held in the registry only was refused by its cluster (RBAC, Pod Security, quota) when the
# service let it go; it stays, so that the user reads why, until they delete it.
REFUSED = "refused"
STATES = (SUBMITTING, QUEUED, ADMITTED, DELETING, REFUSED)


class DuplicateRun(Exception):
    """The user has a run of this kind and name already, in some cluster or in the queue."""


@dataclass(frozen=True)
class NewRun:
    """What the registry is told of a run before it is sent anywhere."""

    user: str
    kind: str
    name: str
    namespace: str
    wanted: str
    max_wait: float
    cluster: str | None
    gang: tuple[tuple[int, str | None], ...]
    manifest: Mapping[str, Any]
    reason: str = ""


@dataclass(frozen=True)
class RunRecord:
    """A registry row as the service reads it."""

    id: int
    user: str
    kind: str
    name: str
    namespace: str
    wanted: str
    max_wait: float
    cluster: str | None
    state: str
    gang: tuple[tuple[int, str | None], ...]
    gpus: int
    manifest: Mapping[str, Any]
    reason: str
    uid: str | None
    submitted: datetime
    admitted: datetime | None


@dataclass(frozen=True)
class MoveRecord:
    """A move of a run between clusters before it started (a run_moves row)."""

    id: int
    run_id: int
    user: str
    kind: str
    name: str
    namespace: str
    source: str
    target: str
    at: datetime
    reason: str
    left_behind: bool
    left_uid: str | None
    cleaned: datetime | None


def _move(row: RunMoveRow) -> MoveRecord:
    return MoveRecord(
        id=row.id,
        run_id=row.run_id,
        user=row.user,
        kind=row.kind,
        name=row.name,
        namespace=row.namespace,
        source=row.source,
        target=row.target,
        at=_utc(row.at) or datetime.now(UTC),
        reason=row.reason,
        left_behind=row.left_behind,
        left_uid=row.left_uid,
        cleaned=_utc(row.cleaned),
    )


def _utc(value: datetime | None) -> datetime | None:
    # sqlite hands back naive datetimes for timezone-aware columns
    if value is None:
        return None
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _record(row: RunRow) -> RunRecord:
    submitted = row.submitted if row.submitted.tzinfo else row.submitted.replace(tzinfo=UTC)
    return RunRecord(
        id=row.id,
        user=row.user,
        kind=row.kind,
        name=row.name,
        namespace=row.namespace,
        wanted=row.wanted,
        max_wait=row.max_wait,
        cluster=row.cluster,
        state=row.state,
        gang=tuple((int(g), p) for g, p in json.loads(row.gang)),
        gpus=row.gpus,
        manifest=json.loads(row.manifest),
        reason=row.reason,
        uid=row.uid,
        submitted=submitted,
        admitted=_utc(row.admitted),
    )


# What update() may change.
_CHANGEABLE = frozenset({"cluster", "state", "reason", "uid", "admitted", "manifest"})


class RunRegistry:
    """The runs table through the store's worker threads."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, run: NewRun) -> RunRecord:
        """Write ``run`` as SUBMITTING; DuplicateRun when the user has one of that kind and name."""

        def add(session: Session) -> RunRecord:
            row = RunRow(
                user=run.user,
                kind=run.kind,
                name=run.name,
                namespace=run.namespace,
                wanted=run.wanted,
                max_wait=run.max_wait,
                cluster=run.cluster,
                state=SUBMITTING,
                gang=json.dumps([list(pod) for pod in run.gang]),
                gpus=sum(g for g, _ in run.gang),
                manifest=json.dumps(run.manifest, sort_keys=True),
                reason=run.reason,
                uid=None,
                submitted=datetime.now(UTC),
                admitted=None,
            )
            session.add(row)
            try:
                session.commit()
            except IntegrityError as exc:
                session.rollback()
                raise DuplicateRun(f"{run.kind} {run.name}") from exc
            return _record(row)

        return await self.store.call(add)

    async def get(self, user: str, kind: str, name: str) -> RunRecord | None:
        def read(session: Session) -> RunRecord | None:
            query = select(RunRow).where(RunRow.user == user, RunRow.kind == kind, RunRow.name == name)
            row = session.scalars(query).first()
            return _record(row) if row else None

        return await self.store.call(read)

    async def runs(
        self,
        *,
        user: str | None = None,
        kinds: Iterable[str] | None = None,
        states: Iterable[str] | None = None,
    ) -> list[RunRecord]:
        """The runs that match, oldest first."""
        kind_list = None if kinds is None else sorted(set(kinds))
        state_list = None if states is None else sorted(set(states))

        def read(session: Session) -> list[RunRecord]:
            query = select(RunRow).order_by(RunRow.submitted, RunRow.id)
            if user is not None:
                query = query.where(RunRow.user == user)
            if kind_list is not None:
                query = query.where(RunRow.kind.in_(kind_list))
            if state_list is not None:
                query = query.where(RunRow.state.in_(state_list))
            return [_record(row) for row in session.scalars(query)]

        return await self.store.call(read)

    async def queued_gangs(self) -> list[tuple[str | None, tuple[tuple[int, str | None], ...]]]:
        """(cluster, gang) of each run not yet let go (submitting or queued), oldest first: what
        placement needs of the queue, without reading each run's whole object."""

        def read(session: Session) -> list[tuple[str | None, tuple[tuple[int, str | None], ...]]]:
            query = (
                select(RunRow.cluster, RunRow.gang)
                .where(RunRow.state.in_([SUBMITTING, QUEUED]))
                .order_by(RunRow.submitted, RunRow.id)
            )
            return [
                (c, tuple((int(g), p) for g, p in json.loads(gang))) for c, gang in session.execute(query)
            ]

        return await self.store.call(read)

    async def users(self) -> set[str]:
        """The users with a run in the registry, without reading their runs."""

        def read(session: Session) -> set[str]:
            return set(session.scalars(select(RunRow.user).distinct()))

        return await self.store.call(read)

    async def update(self, run_id: int, *, expect_state: str | None = None, **fields: Any) -> bool:
        """Change ``fields`` of run ``run_id``; with ``expect_state``, only while the run is in that
        state. False when no row changed (gone, or in another state)."""
        unknown = set(fields) - _CHANGEABLE
        if unknown:
            raise ValueError(f"run fields {sorted(unknown)} cannot be changed")
        values = dict(fields)
        if "manifest" in values:
            values["manifest"] = json.dumps(values["manifest"], sort_keys=True)

        def write(session: Session) -> bool:
            query = update(RunRow).where(RunRow.id == run_id)
            if expect_state is not None:
                query = query.where(RunRow.state == expect_state)
            result = session.execute(query.values(**values))
            session.commit()
            return bool(getattr(result, "rowcount", 0))

        return await self.store.call(write)

    async def remove(self, run_id: int, *, uid: str | None = None) -> bool:
        """Forget run ``run_id`` and its moves, except those whose left copy is not deleted yet; with
        ``uid``, only while the run's object is that one (it has not moved meanwhile)."""

        def write(session: Session) -> bool:
            query = delete(RunRow).where(RunRow.id == run_id)
            if uid is not None:
                query = query.where(RunRow.uid == uid)
            result = session.execute(query)
            if not getattr(result, "rowcount", 0):
                session.rollback()
                return False
            session.execute(delete(RunMoveRow).where(RunMoveRow.run_id == run_id, ~_copy_left()))
            session.commit()
            return bool(getattr(result, "rowcount", 0))

        return await self.store.call(write)

    async def move(
        self,
        run: RunRecord,
        *,
        target: str,
        reason: str,
        left_behind: bool,
        state: str,
    ) -> MoveRecord | None:
        """Move ``run`` to ``target`` as one write: the run's cluster and reason change, its uid is
        cleared (it has no object in ``target`` yet) and it takes ``state``; the move is recorded, with
        the copy left in the source when ``left_behind``. Only while the run is in the state and
        cluster it was read in; None when it is not (deleted, let go or moved meanwhile)."""

        def write(session: Session) -> MoveRecord | None:
            result = session.execute(
                update(RunRow)
                .where(RunRow.id == run.id, RunRow.state == run.state, RunRow.cluster == run.cluster)
                .values(
                    cluster=target,
                    reason=reason,
                    uid=None,
                    state=state,
                )
            )
            if not getattr(result, "rowcount", 0):
                session.rollback()
                return None
            row = RunMoveRow(
                run_id=run.id,
                user=run.user,
                kind=run.kind,
                name=run.name,
                namespace=run.namespace,
                source=run.cluster or "",
                target=target,
                at=datetime.now(UTC),
                reason=reason,
                left_behind=left_behind,
                left_uid=run.uid if left_behind else None,
                cleaned=None,
            )
            session.add(row)
            session.commit()
            return _move(row)

        return await self.store.call(write)

    async def moves(
        self, *, run_ids: Iterable[int] | None = None, copies_left: bool = False
    ) -> list[MoveRecord]:
        """Moves, oldest first: of ``run_ids`` when given; with ``copies_left``, only those whose copy
        left in their source is not deleted yet."""
        ids = None if run_ids is None else sorted(set(run_ids))

        def read(session: Session) -> list[MoveRecord]:
            query = select(RunMoveRow).order_by(RunMoveRow.at, RunMoveRow.id)
            if ids is not None:
                query = query.where(RunMoveRow.run_id.in_(ids))
            if copies_left:
                query = query.where(_copy_left())
            return [_move(row) for row in session.scalars(query)]

        return await self.store.call(read)

    async def copy_cleaned(self, move_id: int) -> None:
        """The copy move ``move_id`` left is gone; the row goes too when its run is gone."""

        def write(session: Session) -> None:
            row = session.get(RunMoveRow, move_id)
            if row is None:
                return
            if session.get(RunRow, row.run_id) is None:
                session.delete(row)
            else:
                row.cleaned = datetime.now(UTC)
            session.commit()

        return await self.store.call(write)


def _copy_left() -> Any:
    return RunMoveRow.left_behind.is_(True) & RunMoveRow.cleaned.is_(None)


class UsageLedger:
    """The cloud_usage table: GPU-seconds per user and budget period."""

    def __init__(self, store: Store) -> None:
        self.store = store

    async def add(self, period_start: datetime, seconds: Mapping[str, float]) -> None:
        """Add GPU-seconds to each user's row of the period, made when missing (one transaction)."""
        if not seconds:
            return

        def write(session: Session) -> None:
            for attempt in range(3):
                for user, amount in seconds.items():
                    changed = session.execute(
                        update(CloudUsageRow)
                        .where(CloudUsageRow.user == user, CloudUsageRow.period_start == period_start)
                        .values(gpu_seconds=CloudUsageRow.gpu_seconds + amount)
                    )
                    if not getattr(changed, "rowcount", 0):
                        session.add(CloudUsageRow(user=user, period_start=period_start, gpu_seconds=amount))
                try:
                    session.commit()
                    return
                except IntegrityError:
                    # another writer made a user's first row of the period meanwhile: add to it instead
                    session.rollback()
                    if attempt == 2:
                        raise

        await self.store.call(write)

    async def used(self, period_start: datetime) -> dict[str, float]:
        """GPU-seconds per user in the period that starts at ``period_start``."""

        def read(session: Session) -> dict[str, float]:
            rows = session.execute(
                select(CloudUsageRow.user, CloudUsageRow.gpu_seconds).where(
                    CloudUsageRow.period_start == period_start
                )
            )
            return {user: float(amount) for user, amount in rows}

        return await self.store.call(read)
