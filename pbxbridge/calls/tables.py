"""The call journal: one row per call, its parties and its recordings."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

# Import for its side effect too: calls point at clients and managers.
from pbxbridge.clients.tables import Client, Manager  # noqa: F401
from pbxbridge.db.base import Base
from pbxbridge.db.types import UTCDateTime


class Call(Base):
    """One call: one Asterisk linkedid on one PBX."""

    __tablename__ = "calls"
    __table_args__ = (
        UniqueConstraint("pbx", "linkedid", name="uq_calls_pbx_linkedid"),
        Index("ix_calls_started_at", "started_at"),
        Index("ix_calls_client_number", "client_number"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    pbx: Mapped[str] = mapped_column(String(64))
    linkedid: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"), index=True)
    client_number: Mapped[str | None] = mapped_column(String(32))
    did: Mapped[str | None] = mapped_column(String(64))
    dialed: Mapped[str | None] = mapped_column(String(64))
    manager: Mapped[str | None] = mapped_column(String(32))
    manager_id: Mapped[int | None] = mapped_column(ForeignKey("managers.id", ondelete="SET NULL"), index=True)
    final_manager: Mapped[str | None] = mapped_column(String(32))
    callee: Mapped[str | None] = mapped_column(String(64))
    rang: Mapped[list[str]] = mapped_column(JSON, default=list)
    queues: Mapped[list[str]] = mapped_column(JSON, default=list)
    transferred_to: Mapped[list[str]] = mapped_column(JSON, default=list)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    ended_at: Mapped[datetime] = mapped_column(UTCDateTime())
    wait_s: Mapped[float] = mapped_column(Float)
    talk_s: Mapped[float] = mapped_column(Float)
    originated: Mapped[bool] = mapped_column(Boolean, default=False)
    closed_by: Mapped[str] = mapped_column(String(16))
    # An outbound call that did not become a conversation: whose side it stopped on (FailureReason).
    failure_reason: Mapped[str | None] = mapped_column(String(24))
    # The caller was sent to voicemail (the message, when found, is a recording of kind "voicemail").
    voicemail: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    # Where the call was heard: "ami" (live or replayed), "cel" or "cdr" (rebuilt by back-fill).
    source: Mapped[str] = mapped_column(String(16), default="ami", server_default="ami")

    parties: Mapped[list[CallParty]] = relationship(
        back_populates="call", lazy="selectin", order_by="(CallParty.role, CallParty.position)"
    )
    recordings: Mapped[list[Recording]] = relationship(
        back_populates="call", lazy="selectin", order_by="Recording.position"
    )


class CallParty(Base):
    """An extension's part in a call: rang, answered, placed, transferred_to, called."""

    __tablename__ = "call_parties"
    __table_args__ = (UniqueConstraint("call_id", "role", "position", name="uq_call_parties_call_id_role_position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    extension: Mapped[str] = mapped_column(String(32), index=True)
    role: Mapped[str] = mapped_column(String(16))
    position: Mapped[int] = mapped_column(Integer, default=0)

    call: Mapped[Call] = relationship(back_populates="parties")


class Recording(Base):
    """A MixMonitor file of a call and what was found of it under the recordings root."""

    __tablename__ = "recordings"
    __table_args__ = (UniqueConstraint("call_id", "position", name="uq_recordings_call_id_position"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    position: Mapped[int] = mapped_column(Integer, default=0)
    # "call" (MixMonitor, under the recordings root) or "voicemail" (a message the
    # caller left, under the voicemail root): see pbxbridge.recordings.kinds.
    kind: Mapped[str] = mapped_column(String(16), default="call", server_default="call")
    pbx_path: Mapped[str] = mapped_column(String(1024))
    # Relative to its kind's root; None when the file was not found.
    path: Mapped[str | None] = mapped_column(String(1024))
    status: Mapped[str] = mapped_column(String(16))
    format: Mapped[str | None] = mapped_column(String(16))
    channels: Mapped[int | None] = mapped_column(Integer)
    sample_rate: Mapped[int | None] = mapped_column(Integer)
    duration_s: Mapped[float | None] = mapped_column(Float)
    size_bytes: Mapped[int | None] = mapped_column(Integer)

    call: Mapped[Call] = relationship(back_populates="recordings")


class OpenCall(Base):
    """One call the PBX has not finished yet: the call tracker's state of it, as JSON.

    Saved so that a restarted daemon picks calls up where it left them.
    """

    __tablename__ = "open_calls"

    pbx: Mapped[str] = mapped_column(String(64), primary_key=True)
    linkedid: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
