"""The transcription queue and the transcripts' segments, searchable by word."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    Float,
    ForeignKey,
    Index,
    Integer,
    PrimaryKeyConstraint,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

# Imported for their side effect: the tables jobs and segments point at must be known.
import pbxbridge.calls.tables  # noqa: F401
from pbxbridge.db.base import Base
from pbxbridge.db.types import UTCDateTime

QUEUED = "queued"
RUNNING = "running"
DONE = "done"
FAILED = "failed"


class TranscriptionJob(Base):
    """One recording waiting for, undergoing or done with speech recognition."""

    __tablename__ = "transcription_jobs"
    __table_args__ = (Index("ix_transcription_jobs_status_next_attempt_at", "status", "next_attempt_at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[int] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), unique=True
    )
    status: Mapped[str] = mapped_column(String(16), default=QUEUED)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime())
    locked_by: Mapped[str | None] = mapped_column(String(128))
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    heartbeat_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime())


class TranscriptSegment(Base):
    """A stretch of one speaker's speech in a recording, with its words' times."""

    __tablename__ = "transcript_segments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    recording_id: Mapped[int] = mapped_column(
        ForeignKey("recordings.id", ondelete="CASCADE"), index=True
    )
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    start_s: Mapped[float] = mapped_column(Float)
    end_s: Mapped[float] = mapped_column(Float)
    # client | manager for two-channel recordings; None when both sides share one channel.
    speaker: Mapped[str | None] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text)
    # [{"start": s, "end": s, "word": "..."}], for playing a call from a word.
    words: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    # The text's words in dictionary form, space-separated: what transcript_terms indexes.
    lemmas: Mapped[str] = mapped_column(Text, default="")


class TranscriptTerm(Base):
    """One word (in dictionary form) said in one segment, filed under the call's start time.

    The search's inverted index: its key is ordered the way search results are
    shown, newest call first, so the first page for a word is one short range
    of it however many calls the word is in. Rows are kept by database triggers
    on transcript_segments (created by the migration), so every way a segment is
    written, deleted or re-lemmatised keeps them in step. call_id and segment_id
    carry no foreign keys: a cascade from calls would need a second index of
    this, the largest table, and the segment triggers already remove the rows.
    """

    __tablename__ = "transcript_terms"
    __table_args__ = (
        PrimaryKeyConstraint("term", "started_at", "call_id", "segment_id", name="pk_transcript_terms"),
        # SQLite: the rows are the key, stored once in key order (no rowid B-tree beside it).
        {"sqlite_with_rowid": False},
    )

    term: Mapped[str] = mapped_column(Text)
    started_at: Mapped[datetime] = mapped_column(UTCDateTime())
    call_id: Mapped[int] = mapped_column(Integer)
    segment_id: Mapped[int] = mapped_column(Integer)
