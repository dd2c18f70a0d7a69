"""The checklists, each call's verdicts and conversation figures, and the re-check jobs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

# Imported for their side effect: the calls the rows point at must be known.
import pbxbridge.calls.tables  # noqa: F401
from pbxbridge.db.base import Base
from pbxbridge.db.types import UTCDateTime

QUEUED, RUNNING, DONE, FAILED = "queued", "running", "done", "failed"


class ChecklistRow(Base):
    """A sales script's checklist as the head of sales defined it (JSON, see analytics.checklist)."""

    __tablename__ = "checklists"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    definition: Mapped[dict[str, Any]] = mapped_column(JSON)
    # Raised at every change: a call checked against an older version is due a re-check.
    version: Mapped[int] = mapped_column(Integer, default=1)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CallCheck(Base):
    """One call judged against one checklist: each item's verdict and evidence."""

    __tablename__ = "call_checks"

    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    checklist_id: Mapped[int] = mapped_column(
        ForeignKey("checklists.id", ondelete="CASCADE"), primary_key=True, index=True
    )
    checklist_version: Mapped[int] = mapped_column(Integer)
    items_total: Mapped[int] = mapped_column(Integer)
    items_passed: Mapped[int] = mapped_column(Integer)
    # Stop phrases said (items with must: false that failed).
    stop_phrases: Mapped[int] = mapped_column(Integer)
    # [{title, must, side, passed, evidence: {at_s, side, words, recording_id} | null, reason, side_unknown}]
    results: Mapped[list[dict[str, Any]]] = mapped_column(JSON)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CallConversation(Base):
    """How a two-channel call's conversation went (no row for one-channel calls: not known there)."""

    __tablename__ = "call_conversations"

    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    duration_s: Mapped[float] = mapped_column(Float)
    manager_talk_s: Mapped[float] = mapped_column(Float)
    client_talk_s: Mapped[float] = mapped_column(Float)
    manager_share: Mapped[float] = mapped_column(Float)
    client_share: Mapped[float] = mapped_column(Float)
    longest_monologue_s: Mapped[float] = mapped_column(Float)
    interruptions: Mapped[int] = mapped_column(Integer)
    manager_interruptions: Mapped[int] = mapped_column(Integer)
    client_interruptions: Mapped[int] = mapped_column(Integer)
    silence_share: Mapped[float] = mapped_column(Float)
    manager_wpm: Mapped[float | None] = mapped_column(Float)
    client_wpm: Mapped[float | None] = mapped_column(Float)


class AnalysisJob(Base):
    """Re-checking past calls after a checklist changed: run in the background, progress kept here."""

    __tablename__ = "analysis_jobs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(16), default=QUEUED, index=True)
    # What asked for it ("checklist set: <name>", "analyze --all").
    reason: Mapped[str] = mapped_column(String(300))
    total: Mapped[int] = mapped_column(Integer, default=0)
    done: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    error: Mapped[str | None] = mapped_column(Text)
