"""The store on sqlite and PostgreSQL: migrations equal the models, keys, the CA's one key."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import inspect

from spawner.service.store import DuplicateKey, Store
from spawner.service.store.access import engine_url
from spawner.service.store.models import VERSION_TABLE, Base


def differences(store: Store) -> list[object]:
    """What alembic's autogenerate would write to turn the database into the models (`alembic check`)."""
    with store.engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "version_table": VERSION_TABLE}
        )
        return list(compare_metadata(context, Base.metadata))


@pytest.mark.asyncio
async def test_an_empty_database_is_upgraded_to_the_models(db_url: str) -> None:
    store = Store(db_url)
    try:
        assert inspect(store.engine).get_table_names() == []
        await store.upgrade()
        assert differences(store) == []
        tables = set(inspect(store.engine).get_table_names())
        assert tables == {"ssh_keys", "ssh_ca", "runs", "run_moves", "cloud_usage", VERSION_TABLE}
        # a second start finds the tables current and changes nothing
        await store.upgrade()
        assert differences(store) == []
    finally:
        await store.close()


@pytest.mark.asyncio
async def test_migrations_go_down_and_up_again(store: Store) -> None:
    from alembic import command

    config = store.alembic_config()
    with store.engine.begin() as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, "base")
    assert set(inspect(store.engine).get_table_names()) == {VERSION_TABLE}
    await store.upgrade()
    assert differences(store) == []


@pytest.mark.asyncio
async def test_keys_are_kept_per_user_and_each_key_once(store: Store) -> None:
    before = datetime.now(UTC) - timedelta(seconds=1)
    a1 = await store.add_key("alice", "ssh-ed25519", "AAAA1", "SHA256:one", "laptop")
    a2 = await store.add_key("alice", "ssh-rsa", "AAAA2", "SHA256:two", "")
    b1 = await store.add_key("bob", "ssh-ed25519", "AAAA3", "SHA256:three", "bob@x")
    assert a1.created.tzinfo is not None and before < a1.created <= datetime.now(UTC)
    assert a1.line == "ssh-ed25519 AAAA1 laptop" and a2.line == "ssh-rsa AAAA2"
    assert [k.id for k in await store.keys(["alice"])] == [a1.id, a2.id]
    assert [k.user for k in await store.keys(["alice", "bob", "carol"])] == ["alice", "alice", "bob"]
    assert await store.keys([]) == []
    assert len(await store.keys()) == 3
    # one key belongs to one user: registered twice, by the same user or another, it is refused
    for user in ("alice", "bob"):
        with pytest.raises(DuplicateKey):
            await store.add_key(user, "ssh-ed25519", "AAAA1", "SHA256:one", "again")
    assert await store.key(b1.id) == b1
    # a user removes only their own key
    assert not await store.delete_key(b1.id, "alice")
    assert await store.delete_key(b1.id, "bob")
    assert not await store.delete_key(b1.id, "bob")
    assert await store.key(b1.id) is None
    # the store still takes keys after a refused one (the failed transaction was rolled back)
    await store.add_key("bob", "ssh-ed25519", "AAAA4", "SHA256:four", "")


@pytest.mark.asyncio
async def test_two_services_starting_at_once_agree_on_one_ca_key_and_a_restart_keeps_it(db_url: str) -> None:
    first, second = Store(db_url), Store(db_url)
    try:
        await first.upgrade()
        await second.upgrade()
        made = iter(["KEY-A", "KEY-B"])
        keys = await asyncio.gather(
            first.ca_private_key(lambda: next(made)), second.ca_private_key(lambda: next(made))
        )
        assert keys[0] == keys[1] and keys[0] in ("KEY-A", "KEY-B")
        added = await first.add_key("alice", "ssh-ed25519", "AAAA1", "SHA256:one", "laptop")
    finally:
        await first.close()
        await second.close()
    # kept: a restarted service reads the same CA key and makes none, and finds the keys
    restarted = Store(db_url)
    try:
        await restarted.upgrade()
        assert await restarted.ca_private_key(lambda: pytest.fail("a second CA key was made")) == keys[0]
        assert await restarted.keys(["alice"]) == [added]
    finally:
        await restarted.close()


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@db/hub", "postgresql+psycopg://u:p@db/hub"),
        ("postgres://db/hub", "postgresql+psycopg://db/hub"),
        ("postgresql+psycopg://db/hub", "postgresql+psycopg://db/hub"),
        ("sqlite:///x.sqlite", "sqlite:///x.sqlite"),
    ],
)
def test_a_plain_postgresql_url_uses_psycopg_3(url: str, expected: str) -> None:
    assert engine_url(url) == expected
