"""Calls: why an outbound call failed, voicemail, and recordings of kind "voicemail".

Revision ID: 0009_call_outcomes
Revises: 0001_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_call_outcomes"
down_revision = "0001_core"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("failure_reason", sa.String(24), nullable=True))
        batch.add_column(sa.Column("voicemail", sa.Boolean(), nullable=False, server_default=sa.false()))
    with op.batch_alter_table("recordings") as batch:
        batch.add_column(sa.Column("kind", sa.String(16), nullable=False, server_default="call"))


def downgrade() -> None:
    with op.batch_alter_table("recordings") as batch:
        batch.drop_column("kind")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("voicemail")
        batch.drop_column("failure_reason")
