"""Web app: each user's own language.

Revision ID: 0010_user_language
Revises: 0005_web
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_user_language"
down_revision = "0005_web"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: a user who never picked one sees the language their browser asks for.
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("language", sa.String(8), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.drop_column("language")
