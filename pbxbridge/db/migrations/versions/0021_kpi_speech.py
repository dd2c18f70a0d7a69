"""KPI store: speech analytics per call (checklist items, stop phrases, each side's talk) and per manager.

The day and hour rows get the summable parts (script adherence and talk share are
their ratios, so they add up over days and managers).

Revision ID: 0021_kpi_speech
Revises: 0020_api_tokens
Depends on: 0008_kpi_indexes (the KPI store's own branch)
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0021_kpi_speech"
down_revision = "0020_api_tokens"
branch_labels = None
depends_on = ("0008_kpi_indexes",)

# The figures as they stand in this revision (pbxbridge.kpi.definitions.FIGURES may grow later).
_COUNTS = ("speech_calls", "speech_items", "speech_items_passed", "stop_phrase_calls", "talk_calls")
_FLOATS = ("script_adherence", "manager_talk_s", "client_talk_s", "talk_share")
_FIGURE_TABLES = ("kpi_manager_day", "kpi_manager_hour")


def upgrade() -> None:
    # Plain ALTERs on both databases: a million facts are not copied to add columns.
    facts = "kpi_call_facts"
    op.add_column(facts, sa.Column("speech_items", sa.Integer(), nullable=True))
    op.add_column(facts, sa.Column("speech_items_passed", sa.Integer(), nullable=False, server_default="0"))
    op.add_column(facts, sa.Column("stop_phrase", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.add_column(facts, sa.Column("manager_talk_s", sa.Float(), nullable=True))
    op.add_column(facts, sa.Column("client_talk_s", sa.Float(), nullable=True))
    for table in _FIGURE_TABLES:
        for name in _COUNTS:
            op.add_column(table, sa.Column(name, sa.Integer(), nullable=True))
        for name in _FLOATS:
            op.add_column(table, sa.Column(name, sa.Float(), nullable=True))


def downgrade() -> None:
    for table in _FIGURE_TABLES:
        with op.batch_alter_table(table) as batch:
            for name in (*_COUNTS, *_FLOATS):
                batch.drop_column(name)
    with op.batch_alter_table("kpi_call_facts") as batch:
        for name in ("speech_items", "speech_items_passed", "stop_phrase", "manager_talk_s", "client_talk_s"):
            batch.drop_column(name)
