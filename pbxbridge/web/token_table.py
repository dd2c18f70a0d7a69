"""The API tokens' table: kept apart from their handling so the schema loads without the web app."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from pbxbridge.db.base import Base
from pbxbridge.db.types import UTCDateTime

MAX_NAME_CHARS = 64


class ApiToken(Base):
    """A machine's credential for the REST API: a name, a role and the hash of the secret."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(MAX_NAME_CHARS), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    # A manager's token rings this handset on click-to-call and sees this manager's calls.
    extension: Mapped[str | None] = mapped_column(String(32))
    # Hex SHA-256 of the token.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime())
    # When it was last written to the audit log as used (at most once a minute, not every request).
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
