"""Routing rules in the database: read on every inbound call, changed without a restart."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from pbxbridge.db.base import Base
from pbxbridge.db.types import UTCDateTime


class RoutingSettings(Base):
    """The department-wide rules: one row (id 1)."""

    __tablename__ = "routing_settings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # N: a manager ringing longer than this counts as not answering.
    ring_timeout_s: Mapped[int] = mapped_column(Integer)
    # M: more callers than this already waiting for a manager sends the next one to a colleague.
    max_waiting: Mapped[int] = mapped_column(Integer)
    policy: Mapped[str] = mapped_column(String(32))
    timezone: Mapped[str] = mapped_column(String(64))
    # FreePBX goto targets ("context,exten,priority").
    queue_destination: Mapped[str] = mapped_column(String(200))
    after_hours_destination: Mapped[str] = mapped_column(String(200))
    # How the dialplan reaches a manager's handset ({ext} is replaced).
    dial_template: Mapped[str] = mapped_column(String(200))
    default_group: Mapped[str | None] = mapped_column(String(100))
    updated_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class RoutingGroup(Base):
    """Managers who stand in for each other, with the queue their callers fall back to."""

    __tablename__ = "routing_groups"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    # None: the department's policy / queue.
    policy: Mapped[str | None] = mapped_column(String(32))
    queue_destination: Mapped[str | None] = mapped_column(String(200))
    # round_robin: the extension chosen last time.
    last_chosen: Mapped[str | None] = mapped_column(String(32))

    members: Mapped[list[RoutingGroupMember]] = relationship(
        back_populates="group",
        lazy="selectin",
        order_by="RoutingGroupMember.position",
        cascade="all, delete-orphan",
    )


class RoutingGroupMember(Base):
    """A manager's extension in a group, in the group's order."""

    __tablename__ = "routing_group_members"
    __table_args__ = (UniqueConstraint("group_id", "extension", name="uq_routing_group_members_group_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    group_id: Mapped[int] = mapped_column(ForeignKey("routing_groups.id", ondelete="CASCADE"), index=True)
    extension: Mapped[str] = mapped_column(String(32))
    position: Mapped[int] = mapped_column(Integer, default=0)

    group: Mapped[RoutingGroup] = relationship(back_populates="members")


class RoutingHours(Base):
    """Business hours: one opening span per row; no rows means always open."""

    __tablename__ = "routing_hours"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    # 0 Monday .. 6 Sunday, as datetime.weekday() counts.
    weekday: Mapped[int] = mapped_column(Integer)
    # "HH:MM" local time in the settings' timezone; closes is exclusive.
    opens: Mapped[str] = mapped_column(String(5))
    closes: Mapped[str] = mapped_column(String(5))
