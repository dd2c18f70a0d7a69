"""Sessions ended by signing out, remembered until their cookies would have expired.

A session cookie is signed, not stored: clearing it in the browser that signed
out leaves any copy of it (another tab's, a proxy's log, a stolen one) good
until it expires. Each sign-out is written to the audit log (target
``session:<fingerprint>``), so the refusal outlives a restart; the process keeps
the fingerprints in memory so that a request costs no extra query.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.web.sessions import SESSION_LIFETIME_S, SessionData
from pbxbridge.web.tables import AuditEntry

SIGN_OUT = "sign_out"
_TARGET_PREFIX = "session:"


def session_target(data: SessionData) -> str:
    """The audit target naming a session: a fingerprint of its CSRF token (random per session).

    The token itself guards the session's forms; the audit log, which the head
    of sales reads, gets only its hash.
    """
    return _TARGET_PREFIX + hashlib.sha256(data.csrf.encode()).hexdigest()[:32]


class SignedOutSessions:
    """Which sessions were signed out; loaded once from the audit log, then kept up to date in memory."""

    def __init__(self) -> None:
        # audit target -> when the session was issued (Unix seconds; forgotten once it would have expired)
        self._ended: dict[str, float] = {}
        self._loaded = False

    def end(self, data: SessionData, now: float) -> None:
        """Refuse this session from now on (its audit entry is written by the caller)."""
        self._ended = {t: at for t, at in self._ended.items() if now - at <= SESSION_LIFETIME_S}
        self._ended[session_target(data)] = data.issued_at

    async def ended(self, data: SessionData, sessions: async_sessionmaker[AsyncSession], now: float) -> bool:
        """Whether the session was signed out (here, or before this process started)."""
        if not self._loaded:
            await self._load(sessions, now)
        return session_target(data) in self._ended

    async def _load(self, sessions: async_sessionmaker[AsyncSession], now: float) -> None:
        # Only sign-outs of the last lifetime can name a cookie still unexpired; ix_audit_log_at finds them.
        since = datetime.fromtimestamp(now - SESSION_LIFETIME_S, UTC)
        async with sessions() as db:
            targets = (
                await db.scalars(
                    select(AuditEntry.target).where(AuditEntry.at >= since, AuditEntry.action == SIGN_OUT)
                )
            ).all()
        for target in targets:
            if target and target.startswith(_TARGET_PREFIX):
                # The issue time is not in the log: keep the entry for a whole lifetime from now.
                self._ended.setdefault(target, now)
        self._loaded = True
