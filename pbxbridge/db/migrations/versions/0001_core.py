"""Core schema: managers, client cards and phones, calls, call parties, recordings.

Revision ID: 0001_core
Revises:
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001_core"
down_revision = None
branch_labels = ("core",)
depends_on = None


def _utc() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "managers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("extension", sa.String(32), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_managers"),
        sa.UniqueConstraint("extension", name="uq_managers_extension"),
    )
    op.create_table(
        "clients",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=True),
        sa.Column("is_lead", sa.Boolean(), nullable=False),
        sa.Column("created_at", _utc(), nullable=False),
        sa.Column("responsible_manager_id", sa.Integer(), nullable=True),
        sa.Column("notes", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_clients"),
        sa.ForeignKeyConstraint(
            ["responsible_manager_id"],
            ["managers.id"],
            name="fk_clients_responsible_manager_id_managers",
            ondelete="SET NULL",
        ),
    )
    op.create_table(
        "client_phones",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.String(32), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_client_phones"),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name="fk_client_phones_client_id_clients", ondelete="CASCADE"
        ),
        sa.UniqueConstraint("number", name="uq_client_phones_number"),
    )
    op.create_index("ix_client_phones_client_id", "client_phones", ["client_id"])

    op.create_table(
        "calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("pbx", sa.String(64), nullable=False),
        sa.Column("linkedid", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("client_number", sa.String(32), nullable=True),
        sa.Column("did", sa.String(64), nullable=True),
        sa.Column("dialed", sa.String(64), nullable=True),
        sa.Column("manager", sa.String(32), nullable=True),
        sa.Column("manager_id", sa.Integer(), nullable=True),
        sa.Column("final_manager", sa.String(32), nullable=True),
        sa.Column("callee", sa.String(64), nullable=True),
        sa.Column("rang", sa.JSON(), nullable=False),
        sa.Column("queues", sa.JSON(), nullable=False),
        sa.Column("transferred_to", sa.JSON(), nullable=False),
        sa.Column("started_at", _utc(), nullable=False),
        sa.Column("answered_at", _utc(), nullable=True),
        sa.Column("ended_at", _utc(), nullable=False),
        sa.Column("wait_s", sa.Float(), nullable=False),
        sa.Column("talk_s", sa.Float(), nullable=False),
        sa.Column("originated", sa.Boolean(), nullable=False),
        sa.Column("closed_by", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_calls"),
        sa.ForeignKeyConstraint(["client_id"], ["clients.id"], name="fk_calls_client_id_clients", ondelete="SET NULL"),
        sa.ForeignKeyConstraint(
            ["manager_id"], ["managers.id"], name="fk_calls_manager_id_managers", ondelete="SET NULL"
        ),
        sa.UniqueConstraint("pbx", "linkedid", name="uq_calls_pbx_linkedid"),
    )
    op.create_index("ix_calls_started_at", "calls", ["started_at"])
    op.create_index("ix_calls_client_number", "calls", ["client_number"])
    op.create_index("ix_calls_client_id", "calls", ["client_id"])
    op.create_index("ix_calls_manager_id", "calls", ["manager_id"])

    op.create_table(
        "call_parties",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("extension", sa.String(32), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_call_parties"),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name="fk_call_parties_call_id_calls", ondelete="CASCADE"),
        sa.UniqueConstraint("call_id", "role", "position", name="uq_call_parties_call_id_role_position"),
    )
    op.create_index("ix_call_parties_call_id", "call_parties", ["call_id"])
    op.create_index("ix_call_parties_extension", "call_parties", ["extension"])

    op.create_table(
        "recordings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("call_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("pbx_path", sa.String(1024), nullable=False),
        sa.Column("path", sa.String(1024), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("format", sa.String(16), nullable=True),
        sa.Column("channels", sa.Integer(), nullable=True),
        sa.Column("sample_rate", sa.Integer(), nullable=True),
        sa.Column("duration_s", sa.Float(), nullable=True),
        sa.Column("size_bytes", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_recordings"),
        sa.ForeignKeyConstraint(["call_id"], ["calls.id"], name="fk_recordings_call_id_calls", ondelete="CASCADE"),
        sa.UniqueConstraint("call_id", "position", name="uq_recordings_call_id_position"),
    )
    op.create_index("ix_recordings_call_id", "recordings", ["call_id"])


def downgrade() -> None:
    op.drop_table("recordings")
    op.drop_table("call_parties")
    op.drop_table("calls")
    op.drop_table("client_phones")
    op.drop_table("clients")
    op.drop_table("managers")
