"""Alembic's environment for the store: runs on the connection the access layer hands it."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection, create_engine

from spawner.service.store.models import VERSION_TABLE, Base

config = context.config
connection = config.attributes.get("connection")


def _configure(conn: Connection) -> None:
    context.configure(
        connection=conn,
        target_metadata=Base.metadata,
        version_table=VERSION_TABLE,
        # sqlite alters tables by copying them; PostgreSQL ignores this
        render_as_batch=True,
        compare_type=True,
    )


if connection is not None:
    _configure(connection)
    with context.begin_transaction():
        context.run_migrations()
else:
    # the alembic command line (writing a new revision): the URL from `-x url=...`
    url = context.get_x_argument(as_dictionary=True).get("url", "sqlite:///hybridhub.sqlite")
    with create_engine(url).connect() as conn:
        _configure(conn)
        with context.begin_transaction():
            context.run_migrations()
