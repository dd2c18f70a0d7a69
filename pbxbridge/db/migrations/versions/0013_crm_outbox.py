"""CRM: the outbox of deliveries to Bitrix24, amoCRM and signed webhooks; managers' CRM users.

Revision ID: 0013_crm_outbox
Revises: 0012_missed_worklist
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_crm_outbox"
down_revision = "0012_missed_worklist"
branch_labels = ("crm",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "crm_deliveries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("event", sa.String(32), nullable=False),
        sa.Column("action", sa.String(48), nullable=False),
        sa.Column("pbx", sa.String(64), nullable=False),
        sa.Column("linkedid", sa.String(64), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=True),
        sa.Column("idempotency_key", sa.String(255), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("result", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name="fk_crm_deliveries_call_id_calls", ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_crm_deliveries"),
        sa.UniqueConstraint("target", "idempotency_key", name="uq_crm_deliveries_target_key"),
    )
    op.create_index("ix_crm_deliveries_status_next_attempt_at", "crm_deliveries", ["status", "next_attempt_at"])
    op.create_index("ix_crm_deliveries_call_order", "crm_deliveries", ["target", "pbx", "linkedid", "id"])
    op.create_index("ix_crm_deliveries_call_id", "crm_deliveries", ["call_id"])
    op.create_table(
        "crm_users",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("extension", sa.String(32), nullable=False),
        sa.Column("user_id", sa.String(64), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("source", sa.String(8), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_crm_users"),
        sa.UniqueConstraint("target", "extension", name="uq_crm_users_target_extension"),
    )


def downgrade() -> None:
    op.drop_table("crm_users")
    op.drop_table("crm_deliveries")
