"""KPI store: call and lead facts, figures per manager per day and per hour.

Revision ID: 0003_kpi
Revises: 0001_core
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from alembic import op

revision = "0003_kpi"
down_revision = "0001_core"
branch_labels = ("kpi",)
depends_on = None

# The figures as they stood when this revision was written; later figures get
# their own revision rather than changing this list.
FIGURE_COLUMNS: tuple[tuple[str, type[sa.types.TypeEngine[Any]]], ...] = (
    ("calls_in", sa.Integer),
    ("calls_out", sa.Integer),
    ("calls_internal", sa.Integer),
    ("answered", sa.Integer),
    ("missed", sa.Integer),
    ("missed_unanswered", sa.Integer),
    ("transferred_in", sa.Integer),
    ("outbound_answered", sa.Integer),
    ("reach_rate", sa.Float),
    ("talk_s", sa.Float),
    ("talk_s_mean", sa.Float),
    ("talk_s_median", sa.Float),
    ("talk_s_p95", sa.Float),
    ("unique_clients_reached", sa.Integer),
    ("first_call_at", sa.Float),
    ("last_call_at", sa.Float),
    ("outbound_norm", sa.Integer),
    ("outbound_norm_share", sa.Float),
    ("managers_meeting_norm", sa.Integer),
    ("callbacks", sa.Integer),
    ("callback_s_mean", sa.Float),
    ("callback_s_median", sa.Float),
    ("callback_s_p95", sa.Float),
    ("callbacks_pending", sa.Integer),
    ("lost_leads", sa.Integer),
    ("new_leads", sa.Integer),
    ("new_leads_reached", sa.Integer),
    ("new_leads_reached_share", sa.Float),
    ("speed_to_lead_s_median", sa.Float),
    ("speed_to_lead_s_p95", sa.Float),
    ("speed_to_lead_answered_s_median", sa.Float),
    ("speed_to_lead_answered_s_p95", sa.Float),
    ("offered", sa.Integer),
    ("queue_answered", sa.Integer),
    ("abandoned", sa.Integer),
    ("short_abandoned", sa.Integer),
    ("asa_s", sa.Float),
    ("wait_s_median", sa.Float),
    ("wait_s_p95", sa.Float),
    ("longest_wait_s", sa.Float),
    ("answered_within_sl", sa.Integer),
    ("service_level", sa.Float),
)


def _figures() -> list[sa.Column[object]]:
    return [sa.Column(name, kind(), nullable=True) for name, kind in FIGURE_COLUMNS]


def upgrade() -> None:
    op.create_table(
        "kpi_call_facts",
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("ended_at", sa.Float(), nullable=False),
        sa.Column("answered_at", sa.Float(), nullable=True),
        sa.Column("wait_s", sa.Float(), nullable=False),
        sa.Column("talk_s", sa.Float(), nullable=False),
        sa.Column("client_key", sa.String(64), nullable=True),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("manager", sa.String(32), nullable=True),
        sa.Column("callee", sa.String(64), nullable=True),
        sa.Column("rang", sa.JSON(), nullable=False),
        sa.Column("transferred_to", sa.JSON(), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("callback_call_id", sa.Integer(), nullable=True),
        sa.Column("callback_by", sa.String(32), nullable=True),
        sa.Column("callback_s", sa.Float(), nullable=True),
        sa.Column("lost", sa.Boolean(), nullable=True),
        sa.PrimaryKeyConstraint("call_id", name="pk_kpi_call_facts"),
        sa.ForeignKeyConstraint(
            ["call_id"], ["calls.id"], name="fk_kpi_call_facts_call_id_calls", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_kpi_call_facts_day", "kpi_call_facts", ["day"])
    op.create_index("ix_kpi_call_facts_client_key", "kpi_call_facts", ["client_key"])
    op.create_index("ix_kpi_call_facts_client_id", "kpi_call_facts", ["client_id"])
    op.create_table(
        "kpi_leads",
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("arrived_at", sa.Float(), nullable=False),
        sa.Column("first_attempt_at", sa.Float(), nullable=True),
        sa.Column("first_attempt_by", sa.String(32), nullable=True),
        sa.Column("first_answered_at", sa.Float(), nullable=True),
        sa.Column("first_answered_by", sa.String(32), nullable=True),
        sa.Column("reached", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("client_id", name="pk_kpi_leads"),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name="fk_kpi_leads_client_id_clients", ondelete="CASCADE"
        ),
    )
    op.create_index("ix_kpi_leads_day", "kpi_leads", ["day"])
    op.create_table(
        "kpi_manager_day",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("manager", sa.String(32), nullable=False),
        *_figures(),
        sa.PrimaryKeyConstraint("id", name="pk_kpi_manager_day"),
        sa.UniqueConstraint("day", "manager", name="uq_kpi_manager_day_day_manager"),
    )
    op.create_table(
        "kpi_manager_hour",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("hour", sa.Integer(), nullable=False),
        sa.Column("manager", sa.String(32), nullable=False),
        *_figures(),
        sa.PrimaryKeyConstraint("id", name="pk_kpi_manager_hour"),
        sa.UniqueConstraint("day", "hour", "manager", name="uq_kpi_manager_hour_day_hour_manager"),
    )


def downgrade() -> None:
    op.drop_table("kpi_manager_hour")
    op.drop_table("kpi_manager_day")
    op.drop_index("ix_kpi_leads_day", table_name="kpi_leads")
    op.drop_table("kpi_leads")
    op.drop_index("ix_kpi_call_facts_client_id", table_name="kpi_call_facts")
    op.drop_index("ix_kpi_call_facts_client_key", table_name="kpi_call_facts")
    op.drop_index("ix_kpi_call_facts_day", table_name="kpi_call_facts")
    op.drop_table("kpi_call_facts")
