"""Workflow: who chose a card's manager (calls or a person), and missed-call rows closed by hand.

Revision ID: 0012_missed_worklist
Revises: 0010_user_language
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_missed_worklist"
down_revision = "0010_user_language"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTERs on both databases: a batch copy of the table would drop the name-folding
    # trigger the cards carry since 0007.
    op.add_column("clients", sa.Column("manager_set_by", sa.String(8), nullable=True))
    op.add_column("clients", sa.Column("manager_set_at", sa.DateTime(timezone=True), nullable=True))
    # A manager already on a card was put there by a person: calls never replace it.
    op.execute("UPDATE clients SET manager_set_by = 'manual' WHERE responsible_manager_id IS NOT NULL")
    op.create_table(
        "missed_closures",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("through_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("through_call_id", sa.Integer(), nullable=True),
        sa.Column("reason", sa.String(24), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("closed_by", sa.String(64), nullable=False),
        sa.Column("closed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name="fk_missed_closures_client_id_clients", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["through_call_id"], ["calls.id"], name="fk_missed_closures_through_call_id_calls", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_missed_closures"),
    )
    op.create_index("ix_missed_closures_client_id", "missed_closures", ["client_id"])


def downgrade() -> None:
    op.drop_index("ix_missed_closures_client_id", table_name="missed_closures")
    op.drop_table("missed_closures")
    # SQLite >= 3.35 drops a column in place (the cards' triggers stay).
    op.execute("ALTER TABLE clients DROP COLUMN manager_set_at")
    op.execute("ALTER TABLE clients DROP COLUMN manager_set_by")
