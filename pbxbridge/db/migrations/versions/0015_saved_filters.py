"""Journal: each user's saved filters; calls sorted by talk time through an index.

Revision ID: 0015_saved_filters
Revises: 0014_call_source
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_saved_filters"
down_revision = "0014_call_source"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "saved_filters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(80), nullable=False),
        sa.Column("query", sa.String(2000), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name="fk_saved_filters_user_id_users", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id", name="pk_saved_filters"),
        sa.UniqueConstraint("user_id", "name", name="uq_saved_filters_user_id_name"),
    )
    op.create_index("ix_calls_talk_s", "calls", ["talk_s"])


def downgrade() -> None:
    op.drop_index("ix_calls_talk_s", table_name="calls")
    op.drop_table("saved_filters")
