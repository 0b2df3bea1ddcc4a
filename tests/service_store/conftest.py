"""The store's tests run on sqlite and on a throwaway PostgreSQL (Debian's packages, started once)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio

from spawner.service.store import Store
from tests.environment import require

from .postgres import PostgresCluster, find_bindir


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresCluster]:
    bindir = find_bindir()
    require(bindir, "needs PostgreSQL's initdb and pg_ctl (Debian's postgresql; make test installs it)")
    assert bindir is not None
    cluster = PostgresCluster(bindir).start()
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """A new, empty database of each kind."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'store' / 'hybridhub.sqlite'}"
    cluster: PostgresCluster = request.getfixturevalue("postgres")
    return cluster.new_database()


@pytest_asyncio.fixture
async def store(db_url: str) -> AsyncIterator[Store]:
    """An upgraded store."""
    s = Store(db_url)
    await s.upgrade()
    try:
        yield s
    finally:
        await s.close()
