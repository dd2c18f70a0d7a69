"""Client cards: notes as a history (text, author, time) instead of one overwritten field.

The single field's text becomes the card's first note, without an author (nobody was recorded
as writing it) and dated when this revision runs.

Revision ID: 0019_client_notes
Revises: 0018_call_review
"""

from __future__ import annotations

from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

revision = "0019_client_notes"
down_revision = "0018_call_review"
branch_labels = None
depends_on = None


def upgrade() -> None:
    notes = op.create_table(
        "client_notes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author", sa.String(100), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name="fk_client_notes_client_id_clients", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name="pk_client_notes"),
    )
    op.create_index("ix_client_notes_client_id", "client_notes", ["client_id"])
    clients = sa.table("clients", sa.column("id", sa.Integer()), sa.column("notes", sa.Text()))
    op.execute(
        notes.insert().from_select(
            ["client_id", "text", "author", "created_at"],
            sa.select(
                clients.c.id, clients.c.notes, sa.null(),
                sa.literal(datetime.now(UTC), sa.DateTime(timezone=True)),
            ).where(clients.c.notes.is_not(None), sa.func.trim(clients.c.notes) != ""),
        )
    )
    # Plain ALTER on both databases (SQLite >= 3.35): a batch copy of the table would drop the
    # name-folding trigger the cards carry since 0007.
    op.execute("ALTER TABLE clients DROP COLUMN notes")


def downgrade() -> None:
    op.execute("ALTER TABLE clients ADD COLUMN notes TEXT")
    # The newest note goes back into the single field; the older ones cannot.
    op.execute(
        "UPDATE clients SET notes = (SELECT n.text FROM client_notes n WHERE n.client_id = clients.id "
        "ORDER BY n.created_at DESC, n.id DESC LIMIT 1)"
    )
    op.drop_table("client_notes")
