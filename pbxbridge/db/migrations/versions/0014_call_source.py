"""Calls: where a call was heard (the AMI stream, or rebuilt from CEL/CDR), and back-fill checkpoints.

Revision ID: 0014_call_source
Revises: 0013_crm_outbox
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_call_source"
down_revision = "0013_crm_outbox"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("source", sa.String(16), nullable=False, server_default="ami"))
    op.create_table(
        "backfill_checkpoints",
        sa.Column("pbx", sa.String(64), primary_key=True),
        # Which import: "import <from>..<to>" or "gap".
        sa.Column("task", sa.String(128), primary_key=True),
        # The next CEL row id to read (every call begun before it is in the journal or not wanted).
        sa.Column("next_id", sa.BigInteger(), nullable=False),
        sa.Column("calls", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("done", sa.Boolean(), nullable=False, server_default=sa.false()),
        sa.Column("updated_at", sa.Float(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("backfill_checkpoints")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("source")
