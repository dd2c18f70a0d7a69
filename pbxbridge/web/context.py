"""What the web app's handlers share: settings, database sessions and the daemon's live parts."""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.config import Config
from pbxbridge.db.engine import WRITE
from pbxbridge.web.sessions import SessionSigner
from pbxbridge.web.signed_out import SignedOutSessions
from pbxbridge.web.throttle import LoginThrottle

# originate(manager_extension, client_number) -> what the PBX answered.
Originate = Callable[[str, str], Awaitable[dict[str, Any]]]


@dataclass(slots=True)
class WebContext:
    """One per app; handlers reach it as ``request.app[CONTEXT]``."""

    config: Config
    sessions: async_sessionmaker[AsyncSession]
    signer: SessionSigner
    throttle: LoginThrottle = field(default_factory=LoginThrottle)
    # The wallboard's feed (pbxbridge.web.live.LiveBoard); None without a daemon.
    live: Any = None
    # Prometheus text of the KPI metrics.
    metrics_text: Callable[[], str] | None = None
    # PBX name -> whether its AMI session is logged in.
    ami_status: Callable[[], dict[str, bool]] | None = None
    originate: Originate | None = None
    # Set Secure on cookies even over plain HTTP here (HTTPS ends at a reverse proxy);
    # requests that arrive over HTTPS get it anyway.
    secure_cookies: bool = False
    clock: Callable[[], float] = time.time
    # (user id, recording id) -> when the listen was last written to the audit log.
    listens: dict[tuple[int, int], float] = field(default_factory=dict)
    # Sessions signed out before their cookies expire: a kept copy of such a cookie is refused.
    signed_out: SignedOutSessions = field(default_factory=SignedOutSessions)

    @property
    def recordings_root(self) -> Path:
        """Where recordings are read from; a path in the database is taken relative to it."""
        return Path(self.config.recordings.root)


CONTEXT: web.AppKey[WebContext] = web.AppKey("pbxbridge_web", WebContext)
# The signed-in user (SignedInUser) and their session (SessionData), or None; set per request.
USER: web.RequestKey[Any] = web.RequestKey("pbxbridge_user", object)
SESSION: web.RequestKey[Any] = web.RequestKey("pbxbridge_session", object)


def secret_key(config: Config) -> str:
    """The configured key, or a random one (sessions then end when the process does)."""
    return config.web.secret_key or secrets.token_urlsafe(48)


@contextlib.asynccontextmanager
async def write_session(context: WebContext) -> AsyncIterator[AsyncSession]:
    """A session in a transaction that will write: committed on success, rolled back on error.

    On SQLite the write lock is taken up front; a transaction that reads first
    and writes later would otherwise fail at once against the call writer
    instead of waiting its turn.
    """
    async with context.sessions() as session, session.begin():
        await session.connection(execution_options=WRITE)
        yield session


def ctx(request: web.Request) -> WebContext:
    """The app's shared context."""
    return request.app[CONTEXT]
