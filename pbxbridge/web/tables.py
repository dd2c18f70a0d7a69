"""Who may sign in to the web app, and the append-only record of what they did."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

# Cards and calls must be known before users point at managers.
from pbxbridge.clients.tables import Manager  # noqa: F401
from pbxbridge.db.base import Base
from pbxbridge.db.types import UTCDateTime

HEAD = "head"
MANAGER = "manager"
OPS = "ops"
ROLES: tuple[str, ...] = (HEAD, MANAGER, OPS)


class User(Base):
    """A person who signs in: the head of sales, a manager (with their extension) or operations."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(100), unique=True)
    # argon2id, as argon2-cffi encodes it (parameters and salt inside).
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    # A manager's handset extension: which calls and clients are theirs.
    extension: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # The language the user picked for the web app ("ru", "en"); None: the browser's.
    language: Mapped[str | None] = mapped_column(String(8))


class AuditEntry(Base):
    """One thing a user did: listened to a recording, exported calls, changed a card or the rules."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_at", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime())
    # Kept as text, not a foreign key: the record outlives a deleted user.
    username: Mapped[str] = mapped_column(String(100))
    role: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(64))
    target: Mapped[str | None] = mapped_column(String(200))
    details: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    ip: Mapped[str | None] = mapped_column(String(64))

# Saved journal filters live beside the journal code, API tokens beside their handling; loaded with
# the web tables so the schema is whole.
from pbxbridge.web import journal_filters, token_table  # noqa: E402, F401
