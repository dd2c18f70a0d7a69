"""KPI store: indexes for what each written call looks up, so it costs the same at any store size.

- kpi_call_facts (ended_at): the store's clock, the latest end of any call.
- kpi_call_facts (lost, direction, status, ended_at): missed inbound calls whose
  callback window is still open, oldest first; closing the windows a call has
  moved past reads only those, not every call ever stored.
- clients (created_at): the lead cards made on a business day.

Revision ID: 0008_kpi_indexes
Revises: 0003_kpi
"""

from __future__ import annotations

from alembic import op

revision = "0008_kpi_indexes"
down_revision = "0003_kpi"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_kpi_call_facts_ended_at", "kpi_call_facts", ["ended_at"])
    op.create_index(
        "ix_kpi_call_facts_open_windows", "kpi_call_facts", ["lost", "direction", "status", "ended_at"]
    )
    op.create_index("ix_clients_created_at", "clients", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_clients_created_at", table_name="clients")
    op.drop_index("ix_kpi_call_facts_open_windows", table_name="kpi_call_facts")
    op.drop_index("ix_kpi_call_facts_ended_at", table_name="kpi_call_facts")
