"""Run moves: where each run went before it started, and the copies left in clusters that did not answer.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "run_moves",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("run_id", sa.Integer(), nullable=False),
        sa.Column("user", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("name", sa.String(length=253), nullable=False),
        sa.Column("namespace", sa.String(length=63), nullable=False),
        sa.Column("source", sa.String(length=63), nullable=False),
        sa.Column("target", sa.String(length=63), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("left_behind", sa.Boolean(), nullable=False),
        sa.Column("left_uid", sa.String(length=64), nullable=True),
        sa.Column("cleaned", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_run_moves")),
    )
    op.create_index(op.f("ix_run_moves_run_id"), "run_moves", ["run_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_run_moves_run_id"), table_name="run_moves")
    op.drop_table("run_moves")
