"""Speech analytics: checklists, each call's verdicts and conversation figures, re-check jobs.

Revision ID: 0017_checklists
Revises: 0016_kpi_targets
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0017_checklists"
down_revision = "0016_kpi_targets"
branch_labels = ("analytics",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "checklists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_checklists"),
        sa.UniqueConstraint("name", name="uq_checklists_name"),
    )
    op.create_table(
        "call_checks",
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("checklist_id", sa.Integer(), nullable=False),
        sa.Column("checklist_version", sa.Integer(), nullable=False),
        sa.Column("items_total", sa.Integer(), nullable=False),
        sa.Column("items_passed", sa.Integer(), nullable=False),
        sa.Column("stop_phrases", sa.Integer(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=False),
        sa.Column("checked_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name="fk_call_checks_call_id_calls", ondelete="CASCADE"),
        sa.ForeignKeyConstraint(
            ["checklist_id"], ["checklists.id"], name="fk_call_checks_checklist_id_checklists", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("call_id", "checklist_id", name="pk_call_checks"),
    )
    op.create_index("ix_call_checks_checklist_id", "call_checks", ["checklist_id"])
    op.create_table(
        "call_conversations",
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("duration_s", sa.Float(), nullable=False),
        sa.Column("manager_talk_s", sa.Float(), nullable=False),
        sa.Column("client_talk_s", sa.Float(), nullable=False),
        sa.Column("manager_share", sa.Float(), nullable=False),
        sa.Column("client_share", sa.Float(), nullable=False),
        sa.Column("longest_monologue_s", sa.Float(), nullable=False),
        sa.Column("interruptions", sa.Integer(), nullable=False),
        sa.Column("manager_interruptions", sa.Integer(), nullable=False),
        sa.Column("client_interruptions", sa.Integer(), nullable=False),
        sa.Column("silence_share", sa.Float(), nullable=False),
        sa.Column("manager_wpm", sa.Float(), nullable=True),
        sa.Column("client_wpm", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name="fk_call_conversations_call_id_calls", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("call_id", name="pk_call_conversations"),
    )
    op.create_table(
        "analysis_jobs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.String(300), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_analysis_jobs"),
    )
    op.create_index("ix_analysis_jobs_status", "analysis_jobs", ["status"])


def downgrade() -> None:
    op.drop_index("ix_analysis_jobs_status", table_name="analysis_jobs")
    op.drop_table("analysis_jobs")
    op.drop_table("call_conversations")
    op.drop_index("ix_call_checks_checklist_id", table_name="call_checks")
    op.drop_table("call_checks")
    op.drop_table("checklists")
