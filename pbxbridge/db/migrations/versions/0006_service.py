"""Service: calls in progress, kept across daemon restarts.

Revision ID: 0006_service
Revises: 0001_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_service"
down_revision = "0001_core"
branch_labels = ("service",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "open_calls",
        sa.Column("pbx", sa.String(64), nullable=False),
        sa.Column("linkedid", sa.String(64), nullable=False),
        sa.Column("state", sa.JSON(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("pbx", "linkedid", name="pk_open_calls"),
    )


def downgrade() -> None:
    op.drop_table("open_calls")
