"""Routing rules: department settings, groups and their members, business hours.

Revision ID: 0004_routing
Revises: 0001_core
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004_routing"
down_revision = "0001_core"
branch_labels = ("routing",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "routing_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("ring_timeout_s", sa.Integer(), nullable=False),
        sa.Column("max_waiting", sa.Integer(), nullable=False),
        sa.Column("policy", sa.String(32), nullable=False),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("queue_destination", sa.String(200), nullable=False),
        sa.Column("after_hours_destination", sa.String(200), nullable=False),
        sa.Column("dial_template", sa.String(200), nullable=False),
        sa.Column("default_group", sa.String(100), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_routing_settings"),
    )
    op.create_table(
        "routing_groups",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("policy", sa.String(32), nullable=True),
        sa.Column("queue_destination", sa.String(200), nullable=True),
        sa.Column("last_chosen", sa.String(32), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_routing_groups"),
        sa.UniqueConstraint("name", name="uq_routing_groups_name"),
    )
    op.create_table(
        "routing_group_members",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("group_id", sa.Integer(), nullable=False),
        sa.Column("extension", sa.String(32), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_routing_group_members"),
        sa.ForeignKeyConstraint(
            ["group_id"],
            ["routing_groups.id"],
            name="fk_routing_group_members_group_id_routing_groups",
            ondelete="CASCADE",
        ),
        sa.UniqueConstraint("group_id", "extension", name="uq_routing_group_members_group_id"),
    )
    op.create_index("ix_routing_group_members_group_id", "routing_group_members", ["group_id"])
    op.create_table(
        "routing_hours",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("weekday", sa.Integer(), nullable=False),
        sa.Column("opens", sa.String(5), nullable=False),
        sa.Column("closes", sa.String(5), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_routing_hours"),
    )


def downgrade() -> None:
    op.drop_table("routing_hours")
    op.drop_table("routing_group_members")
    op.drop_table("routing_groups")
    op.drop_table("routing_settings")
