"""Calls still in progress, saved so that a restarted daemon picks them up where it left them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, String
from sqlalchemy.orm import Mapped, mapped_column

from pbxbridge.db.base import Base
from pbxbridge.db.types import UTCDateTime


class OpenCall(Base):
    """One call the PBX has not finished yet: the call tracker's state of it, as JSON."""

    __tablename__ = "open_calls"

    pbx: Mapped[str] = mapped_column(String(64), primary_key=True)
    linkedid: Mapped[str] = mapped_column(String(64), primary_key=True)
    state: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime)
