"""Call review: the shared tag list, the head's checklist, and each call's review and comments."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

# Reviews point at calls: the journal's tables must be in the metadata first.
from pbxbridge.calls.tables import Call  # noqa: F401
from pbxbridge.db.base import Base
from pbxbridge.db.types import UTCDateTime


class ReviewTag(Base):
    """One tag of the department's shared list ("price objection", "no greeting", ...)."""

    __tablename__ = "review_tags"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(60), unique=True)


class ReviewCriterion(Base):
    """One line of the head's checklist. Taken off the list, it stays for the reviews that scored it."""

    __tablename__ = "review_criteria"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    text: Mapped[str] = mapped_column(String(300))
    position: Mapped[int] = mapped_column(Integer, default=0)
    active: Mapped[bool] = mapped_column(Boolean, default=True)


class CallReview(Base):
    """A head's verdict on one call: the checklist's marks, the score they make, reviewed or not."""

    __tablename__ = "call_reviews"

    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    reviewed: Mapped[bool] = mapped_column(Boolean, default=False, index=True)
    # Criterion id (as text: JSON keys) -> met or not; criteria left unmarked are not counted.
    checks: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # Share of the marked criteria met, 0..100; None while nothing is marked. Kept beside the marks
    # so that the journal filters by it in SQL.
    score: Mapped[int | None] = mapped_column(Integer, index=True)
    # Kept as text, as in the audit log: the review outlives a deleted user.
    reviewer: Mapped[str] = mapped_column(String(100))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime())


class CallReviewTag(Base):
    """A tag put on a call."""

    __tablename__ = "call_review_tags"

    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), primary_key=True)
    tag_id: Mapped[int] = mapped_column(ForeignKey("review_tags.id", ondelete="CASCADE"), primary_key=True, index=True)


class ReviewComment(Base):
    """A comment at a moment of a call's recording."""

    __tablename__ = "review_comments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    call_id: Mapped[int] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    # Which recording of the call (a call may have several) and the second in it.
    recording_id: Mapped[int | None] = mapped_column(ForeignKey("recordings.id", ondelete="SET NULL"))
    at_s: Mapped[float] = mapped_column(Float)
    text: Mapped[str] = mapped_column(Text)
    author: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
