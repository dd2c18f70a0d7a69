"""The outbox: one row per thing a CRM (or a webhook receiver) is to be told about a call."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

# Imported for their side effect: the calls a delivery points at must be known.
import pbxbridge.calls.tables  # noqa: F401
from pbxbridge.db.base import Base
from pbxbridge.db.types import UTCDateTime

PENDING = "pending"
DONE = "done"
# Tried max_attempts times, or refused in a way trying again cannot fix: waits for `outbox retry`.
DEAD = "dead"


class CrmDelivery(Base):
    """One request to one target about one call, delivered in order of ``id`` among the call's own."""

    __tablename__ = "crm_deliveries"
    __table_args__ = (
        # A call written again (a replay, a reconnect) queues nothing twice.
        UniqueConstraint("target", "idempotency_key", name="uq_crm_deliveries_target_key"),
        Index("ix_crm_deliveries_status_next_attempt_at", "status", "next_attempt_at"),
        # The earlier deliveries of the same call to the same target: what holds a later one back.
        Index("ix_crm_deliveries_call_order", "target", "pbx", "linkedid", "id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target: Mapped[str] = mapped_column(String(200))
    # What the call did (call.finished, recording.ready, ...) and what the target is asked to do about it.
    event: Mapped[str] = mapped_column(String(32))
    action: Mapped[str] = mapped_column(String(48))
    pbx: Mapped[str] = mapped_column(String(64))
    linkedid: Mapped[str] = mapped_column(String(64))
    call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"), index=True)
    # Sent along where the target reads one (a webhook's Idempotency-Key header).
    idempotency_key: Mapped[str] = mapped_column(String(255))
    # The call as it was when the event happened: a later rewrite of the call changes no queued delivery.
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    status: Mapped[str] = mapped_column(String(12), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Taken by a worker until then: two workers never send the same delivery at once.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    # What the target answered that later deliveries need (Bitrix24's CALL_ID for the finish).
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class CrmUser(Base):
    """Which CRM user a manager's extension is: read from the CRM (Bitrix24's inner numbers) or set by hand."""

    __tablename__ = "crm_users"
    __table_args__ = (UniqueConstraint("target", "extension", name="uq_crm_users_target_extension"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target: Mapped[str] = mapped_column(String(200))
    extension: Mapped[str] = mapped_column(String(32))
    user_id: Mapped[str] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(200))
    # "crm": read from the CRM (a sync replaces it); "manual": set by a person (a sync leaves it).
    source: Mapped[str] = mapped_column(String(8))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CrmClick(Base):
    """A manager's click on a number in the CRM, with the call the CRM registered for it.

    Bitrix24 registers the call itself before it sends OnExternalCallStart; the call pbxbridge
    places for the click is finished on that CALL_ID instead of being registered a second time.
    """

    __tablename__ = "crm_clicks"
    __table_args__ = (Index("ix_crm_clicks_target_extension_number", "target", "extension", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    target: Mapped[str] = mapped_column(String(200))
    crm_call_id: Mapped[str] = mapped_column(String(128))
    extension: Mapped[str] = mapped_column(String(32))
    # E.164, as the journal keeps a client's number.
    number: Mapped[str] = mapped_column(String(32))
    clicked_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The call it became (<pbx>:<linkedid>); None until a delivery takes it.
    used_by: Mapped[str | None] = mapped_column(String(160))
