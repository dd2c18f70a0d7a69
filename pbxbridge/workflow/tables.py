"""What the missed-calls worklist keeps: a manager's closing of a row, with its reason.

The rows themselves are not stored: they are read off the journal each time
(pbxbridge.workflow.worklist), so that a call written late or twice, a replay
or a restart can never leave one open or closed by mistake.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from pbxbridge.db.base import Base
from pbxbridge.db.types import UTCDateTime


class MissedClosure(Base):
    """A person closed a client's missed calls up to one of them (spam, a wrong number, reached otherwise)."""

    __tablename__ = "missed_closures"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    # The row covered the missed calls that ended up to here; a call missed later opens a new row.
    through_at: Mapped[datetime] = mapped_column(UTCDateTime())
    through_call_id: Mapped[int | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    reason: Mapped[str] = mapped_column(String(24))
    note: Mapped[str | None] = mapped_column(Text)
    closed_by: Mapped[str] = mapped_column(String(64))
    closed_at: Mapped[datetime] = mapped_column(UTCDateTime())
