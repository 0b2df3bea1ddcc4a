"""The store's access layer: sync SQLAlchemy calls run in a worker thread, so the event loop never waits."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, delete, event, select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from .models import SshCa, SshKey

__all__ = ["DuplicateKey", "KeyRecord", "Store", "engine_url"]

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).with_name("migrations")
T = TypeVar("T")


class DuplicateKey(Exception):
    """The key is registered already (by this user or another one)."""


@dataclass(frozen=True)
class KeyRecord:
    """A registered public key as the API shows it."""

    id: int
    user: str
    key_type: str
    key_blob: str
    fingerprint: str
    comment: str
    created: datetime

    @property
    def line(self) -> str:
        """The key as an authorized_keys line."""
        return " ".join(part for part in (self.key_type, self.key_blob, self.comment) if part)


def engine_url(url: str) -> str:
    """The SQLAlchemy URL to use for ``url``: plain ``postgresql://`` means psycopg 3, the driver the hub
    extra installs, where SQLAlchemy would pick psycopg2."""
    parsed = make_url(url)
    if parsed.drivername in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _utc(value: datetime) -> datetime:
    # sqlite hands back naive datetimes for timezone-aware columns
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _record(row: SshKey) -> KeyRecord:
    return KeyRecord(
        id=row.id,
        user=row.user,
        key_type=row.key_type,
        key_blob=row.key_blob,
        fingerprint=row.fingerprint,
        comment=row.comment,
        created=_utc(row.created),
    )


def _make_engine(url: str) -> Engine:
    url = engine_url(url)
    parsed = make_url(url)
    # a file has no connection to lose: only a server's connections are checked before use
    kwargs: dict[str, Any] = {"pool_pre_ping": parsed.get_backend_name() != "sqlite"}
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        kwargs["connect_args"] = {"timeout": 10}
    else:
        kwargs["connect_args"] = {"connect_timeout": 10}
    engine = create_engine(url, **kwargs)
    if parsed.get_backend_name() == "sqlite":

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            # the write-ahead log lets readers go on while a key is added; with it, NORMAL syncs at
            # checkpoints only: a commit survives the service's crash, not the machine's power loss
            # (a deployment's PostgreSQL keeps every commit)
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

    return engine


class Store:
    """The service's SQL database (sqlite or PostgreSQL). Every public method is a coroutine whose
    SQL runs in the store's own worker threads."""

    def __init__(self, url: str, *, threads: int = 4) -> None:
        self.url = url
        self.engine = _make_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="hybridhub-store")

    @property
    def backend(self) -> str:
        return self.engine.url.get_backend_name()

    async def call(self, fn: Callable[[Session], T]) -> T:
        """``fn(session)`` in one of the store's worker threads, with a session of its own."""

        def call() -> T:
            with self._sessions() as session:
                return fn(session)

        return await asyncio.get_running_loop().run_in_executor(self._pool, call)

    # ------------------------------------------------------------------ schema

    def alembic_config(self) -> Config:
        config = Config()
        config.set_main_option("script_location", str(MIGRATIONS))
        # new revisions are files such as v0002_runs.py (a name mypy and ruff accept)
        config.set_main_option("file_template", "v%%(rev)s_%%(slug)s")
        return config

    def upgrade_sync(self, revision: str = "head") -> None:
        """Run the migrations up to ``revision`` (blocking: at start, or from a worker thread)."""
        config = self.alembic_config()
        with self.engine.begin() as conn:
            config.attributes["connection"] = conn
            command.upgrade(config, revision)

    async def upgrade(self, revision: str = "head") -> None:
        await asyncio.get_running_loop().run_in_executor(self._pool, self.upgrade_sync, revision)
        log.info("store %s upgraded to %s", self.engine.url.render_as_string(hide_password=True), revision)

    async def close(self) -> None:
        self._pool.shutdown(wait=True)
        self.engine.dispose()

    # ------------------------------------------------------------------ SSH keys

    async def add_key(
        self, user: str, key_type: str, key_blob: str, fingerprint: str, comment: str
    ) -> KeyRecord:
        """Register a key for ``user``; DuplicateKey when its fingerprint is registered already."""

        def add(session: Session) -> KeyRecord:
            row = SshKey(
                user=user,
                key_type=key_type,
                key_blob=key_blob,
                fingerprint=fingerprint,
                comment=comment,
                created=datetime.now(UTC),
            )
            session.add(row)
            try:
                session.commit()
            except IntegrityError as exc:
                session.rollback()
                raise DuplicateKey(fingerprint) from exc
            return _record(row)

        return await self.call(add)

    async def keys(self, users: Iterable[str] | None = None) -> list[KeyRecord]:
        """The keys of ``users`` (every user's when None), oldest first."""
        wanted = None if users is None else sorted(set(users))

        def read(session: Session) -> list[KeyRecord]:
            query = select(SshKey).order_by(SshKey.id)
            if wanted is not None:
                query = query.where(SshKey.user.in_(wanted))
            return [_record(row) for row in session.scalars(query)]

        if wanted == []:
            return []
        return await self.call(read)

    async def key(self, key_id: int) -> KeyRecord | None:
        def read(session: Session) -> KeyRecord | None:
            row = session.get(SshKey, key_id)
            return _record(row) if row else None

        return await self.call(read)

    async def delete_key(self, key_id: int, user: str) -> bool:
        """Remove ``user``'s key ``key_id``; False when there is no such key of that user."""

        def remove(session: Session) -> bool:
            result = session.execute(delete(SshKey).where(SshKey.id == key_id, SshKey.user == user))
            session.commit()
            return bool(getattr(result, "rowcount", 0))

        return await self.call(remove)

    # ------------------------------------------------------------------ SSH CA

    async def ca_private_key(self, generate: Callable[[], str]) -> str:
        """The CA's private key (OpenSSH format), made with ``generate`` and kept on first use. Two
        services starting at once agree on one key: the row's primary key lets only one insert win."""

        def get_or_create(session: Session) -> str:
            row = session.get(SshCa, 1)
            if row is not None:
                return row.private_key
            session.add(SshCa(id=1, private_key=generate(), created=datetime.now(UTC)))
            try:
                session.commit()
            except IntegrityError:
                session.rollback()
            row = session.get(SshCa, 1)
            if row is None:  # pragma: no cover - the insert either won or lost to another one
                raise RuntimeError("the SSH CA row vanished while it was being created")
            return row.private_key

        return await self.call(get_or_create)
