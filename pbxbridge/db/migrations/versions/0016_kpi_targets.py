"""KPI targets: what the head of sales expects of each figure, for the department or each manager.

Revision ID: 0016_kpi_targets
Revises: 0015_saved_filters
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0016_kpi_targets"
down_revision = "0015_saved_filters"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "kpi_targets",
        sa.Column("kpi", sa.String(64), nullable=False),
        sa.Column("scope", sa.String(16), nullable=False),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("set_by", sa.String(64), nullable=False),
        sa.Column("set_at", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("kpi", "scope", name="pk_kpi_targets"),
    )


def downgrade() -> None:
    op.drop_table("kpi_targets")
