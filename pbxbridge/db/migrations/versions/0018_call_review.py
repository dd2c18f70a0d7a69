"""Call review: the shared tag list, the head's checklist, each call's review, tags and comments.

Revision ID: 0018_call_review
Revises: 0017_checklists
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0018_call_review"
down_revision = "0017_checklists"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "review_tags",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(60), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_review_tags"),
        sa.UniqueConstraint("name", name="uq_review_tags_name"),
    )
    op.create_table(
        "review_criteria",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("text", sa.String(300), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_review_criteria"),
    )
    op.create_table(
        "call_reviews",
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("reviewed", sa.Boolean(), nullable=False),
        sa.Column("checks", sa.JSON(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=True),
        sa.Column("reviewer", sa.String(100), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name="fk_call_reviews_call_id_calls", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("call_id", name="pk_call_reviews"),
    )
    op.create_index("ix_call_reviews_reviewed", "call_reviews", ["reviewed"])
    op.create_index("ix_call_reviews_score", "call_reviews", ["score"])
    op.create_table(
        "call_review_tags",
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("tag_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name="fk_call_review_tags_call_id_calls", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["tag_id"], ["review_tags.id"], name="fk_call_review_tags_tag_id_review_tags", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("call_id", "tag_id", name="pk_call_review_tags"),
    )
    op.create_index("ix_call_review_tags_tag_id", "call_review_tags", ["tag_id"])
    op.create_table(
        "review_comments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("recording_id", sa.Integer(), nullable=True),
        sa.Column("at_s", sa.Float(), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("author", sa.String(100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name="fk_review_comments_call_id_calls", ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["recording_id"], ["recordings.id"], name="fk_review_comments_recording_id_recordings",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_review_comments"),
    )
    op.create_index("ix_review_comments_call_id", "review_comments", ["call_id"])


def downgrade() -> None:
    op.drop_table("review_comments")
    op.drop_table("call_review_tags")
    op.drop_table("call_reviews")
    op.drop_table("review_criteria")
    op.drop_table("review_tags")
