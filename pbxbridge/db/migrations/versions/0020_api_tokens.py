"""API tokens for machines (a CRM's connector, a script): a name, a role and the token's hash; and
managers' clicks on a number in Bitrix24, each with the call Bitrix24 registered for it.

Revision ID: 0020_api_tokens
Revises: 0019_client_notes
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0020_api_tokens"
down_revision = "0019_client_notes"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "api_tokens",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("extension", sa.String(32), nullable=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_api_tokens"),
        sa.UniqueConstraint("name", name="uq_api_tokens_name"),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_table(
        "crm_clicks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("target", sa.String(200), nullable=False),
        sa.Column("crm_call_id", sa.String(128), nullable=False),
        sa.Column("extension", sa.String(32), nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.Column("clicked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_by", sa.String(160), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_crm_clicks"),
    )
    op.create_index("ix_crm_clicks_target_extension_number", "crm_clicks", ["target", "extension", "number"])


def downgrade() -> None:
    op.drop_index("ix_crm_clicks_target_extension_number", table_name="crm_clicks")
    op.drop_table("crm_clicks")
    op.drop_table("api_tokens")
