"""Refused options in-process, with JupyterHub's own database: a short 400, one log line, and the
options saved before left in place (JupyterHub saves a spawn's options before any hook sees them)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest
from jupyterhub import orm
from sqlalchemy.orm import Session

from spawner.hybrid import HybridSpawner, OptionsRefused
from tests.spawner.in_process import make_spawner

HUGE = "x" * 100_000
GOOD = {"gpus": 1, "cluster": "onprem"}


@pytest.fixture
def db() -> Iterator[Session]:
    session = orm.new_session_factory("sqlite:///:memory:")()
    yield session
    session.close()


def saved(db: Session, spawner: HybridSpawner) -> Any:
    """The options in the hub's database, as a new session (a restarted hub) reads them."""
    db.expire_all()
    return db.get(orm.Spawner, spawner.orm_spawner.id).user_options


def hub_spawner(db: Session, options: dict[str, Any] | None) -> HybridSpawner:
    """A spawner as JupyterHub makes one for a user whose saved options are ``options``."""
    user = orm.User(name="ann")
    db.add(user)
    row = orm.Spawner(user=user, name="", user_options=options)
    db.add(row)
    db.commit()
    spawner = make_spawner(user_options=row.user_options)  # as JupyterHub's User._new_spawner does
    spawner.orm_spawner = row
    return spawner


async def spawn_with(db: Session, spawner: HybridSpawner, options: dict[str, Any] | None) -> None:
    """What JupyterHub's User.spawn does with a spawn's options (5.5 and 6): given, they are saved as
    the future defaults; not given, the saved ones are used. Then its hook runner."""
    if options is None:
        options = spawner.orm_spawner.user_options or {}
    else:
        spawner.orm_spawner.user_options = options
        db.commit()
    spawner.user_options = options
    await spawner._run_apply_user_options(spawner.user_options)


@pytest.mark.asyncio
@pytest.mark.parametrize(
    ("before", "refused"),
    [
        (GOOD, {"gpus": HUGE}),
        (GOOD, {"gpus": 1, "cluster": HUGE}),
        (GOOD, {HUGE: 1}),
        (None, {"gpus": -1}),  # no options saved before: none after
        ({"gpus": 2}, {"gpus": 99}),
    ],
)
async def test_refused_options_leave_those_saved_before(
    db: Session, before: dict[str, Any] | None, refused: dict[str, Any], caplog: pytest.LogCaptureFixture
) -> None:
    spawner = hub_spawner(db, before)
    with caplog.at_level(logging.DEBUG), pytest.raises(OptionsRefused) as err:
        await spawn_with(db, spawner, refused)
    assert err.value.status_code == 400
    assert len(err.value.jupyterhub_message) < 250
    assert err.value.log_message % err.value.args == err.value.jupyterhub_message  # the API's message
    assert (saved(db, spawner) or {}) == (before or {})
    assert spawner.user_options == (before or {})  # what the spawn form is filled with
    records = [r for r in caplog.records if r.name == spawner.log.name]
    assert [(r.levelno, r.exc_info) for r in records] == [(logging.INFO, None)]
    assert len(records[0].getMessage()) < 300


@pytest.mark.asyncio
async def test_a_second_refusal_still_leaves_the_first_options(db: Session) -> None:
    spawner = hub_spawner(db, GOOD)
    for refused in ({"gpus": "many"}, {"gpus": 1, "cluster": "mars"}):
        with pytest.raises(OptionsRefused):
            await spawn_with(db, spawner, refused)
    assert saved(db, spawner) == GOOD and spawner.user_options == GOOD


@pytest.mark.asyncio
async def test_accepted_options_are_saved_and_become_those_put_back(db: Session) -> None:
    spawner = hub_spawner(db, GOOD)
    await spawn_with(db, spawner, {"gpus": 0})
    assert saved(db, spawner) == {"gpus": 0}
    with pytest.raises(OptionsRefused):
        await spawn_with(db, spawner, {"gpus": 1.5})
    assert saved(db, spawner) == {"gpus": 0} and spawner.user_options == {"gpus": 0}


@pytest.mark.asyncio
async def test_saved_options_refused_now_stay_saved(db: Session) -> None:
    """A spawn without options uses the saved ones; refused now (the operator removed a cluster, say),
    they are what the user chose, and stay for the form to show."""
    spawner = hub_spawner(db, {"gpus": 1, "cluster": "gone"})
    with pytest.raises(OptionsRefused, match="Unknown cluster 'gone'"):
        await spawn_with(db, spawner, None)
    assert saved(db, spawner) == {"gpus": 1, "cluster": "gone"}


@pytest.mark.asyncio
async def test_an_operators_own_hook_runs_after_the_check(db: Session) -> None:
    seen: list[dict[str, Any]] = []
    spawner = hub_spawner(db, None)
    spawner.apply_user_options = lambda _spawner, options: seen.append(options)
    with pytest.raises(OptionsRefused):
        await spawn_with(db, spawner, {"gpus": "many"})
    await spawn_with(db, spawner, GOOD)
    assert seen == [GOOD]
