"""The cloud budget's ledger: GPU-seconds each user's pods held in the cloud, per budget period.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "cloud_usage",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("user", sa.String(length=255), nullable=False),
        sa.Column("period_start", sa.DateTime(timezone=True), nullable=False),
        sa.Column("gpu_seconds", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_cloud_usage")),
        sa.UniqueConstraint("user", "period_start", name=op.f("uq_cloud_usage_user")),
    )


def downgrade() -> None:
    op.drop_table("cloud_usage")
