"""API tokens for machines: a CRM's connector or a script calls the REST API as a role, with no cookie.

A token is shown once, when it is made; only its SHA-256 is kept (the token itself is 256 random
bits, so a fast hash is as safe as a slow one and costs nothing per request). Each request looks
the hash up in the database: a revoked token is refused from the next request on.

Uses go to the audit log without flooding it: a token's first use in a minute is written at once
(``api_token_used``, with the method and path), further uses that minute are counted, and when the
minute is over one more entry says how many there were, from when to when, and a few of the paths.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import logging
import secrets
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.web.audit import anonymous_entry
from pbxbridge.web.context import CONTEXT, WebContext, write_session
from pbxbridge.web.tables import MANAGER, ROLES, AuditEntry
from pbxbridge.web.token_table import MAX_NAME_CHARS, ApiToken
from pbxbridge.web.users import SignedInUser

log = logging.getLogger(__name__)

# Tokens start with this, so a leaked one is recognisable in a log or a repository scan.
PREFIX = "pbxb_"
TOKEN_USED = "api_token_used"
TOKEN_REFUSED = "api_token_refused"
# The audit entry's username for a token's requests: never a person's username.
USERNAME_PREFIX = "token:"
WINDOW_S = 60.0
MAX_SAMPLES = 5


class TokenError(ValueError):
    """A token that cannot be made or revoked as asked."""


def token_hash(token: str) -> str:
    """What the database keeps of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def new_secret() -> str:
    """A fresh token: the prefix and 43 URL-safe characters."""
    return PREFIX + secrets.token_urlsafe(32)


async def create_token(
    session: AsyncSession, name: str, role: str, extension: str | None = None, now: datetime | None = None
) -> tuple[ApiToken, str]:
    """Make a token; returns the row and the token itself (shown once, never stored)."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_CHARS:
        raise TokenError(f"name must be 1 to {MAX_NAME_CHARS} characters")
    if role not in ROLES:
        raise TokenError(f"role must be one of {', '.join(ROLES)}, got {role!r}")
    if role == MANAGER and not extension:
        raise TokenError("a manager's token needs --extension: whose handset rings and whose calls it sees")
    if await _by_name(session, name) is not None:
        raise TokenError(f"a token named {name!r} already exists (revoke it first, or pick another name)")
    secret = new_secret()
    row = ApiToken(name=name, role=role, extension=extension or None, token_hash=token_hash(secret),
                   created_at=now or datetime.now(UTC))
    session.add(row)
    await session.flush()
    return row, secret


async def _by_name(session: AsyncSession, name: str) -> ApiToken | None:
    return (await session.execute(select(ApiToken).where(ApiToken.name == name))).scalar_one_or_none()


async def list_tokens(session: AsyncSession) -> list[ApiToken]:
    """Every token, revoked ones too, by name."""
    return list((await session.execute(select(ApiToken).order_by(ApiToken.name))).scalars())


async def revoke_token(session: AsyncSession, name: str, now: datetime | None = None) -> ApiToken:
    """Refuse the token from now on; its row stays, so the audit log's entries keep a name."""
    row = await _by_name(session, name)
    if row is None:
        raise TokenError(f"no token named {name!r}")
    if row.revoked_at is None:
        row.revoked_at = now or datetime.now(UTC)
    await session.flush()
    return row


async def find_live(session: AsyncSession, token: str) -> ApiToken | None:
    """The token's row when it exists and is not revoked, else None."""
    row = (
        await session.execute(select(ApiToken).where(ApiToken.token_hash == token_hash(token)))
    ).scalar_one_or_none()
    return row if row is not None and row.revoked_at is None else None


def bearer(header: str | None) -> str | None:
    """The token of an ``Authorization: Bearer …`` header; None when there is no such header."""
    if not header:
        return None
    scheme, _, value = header.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def as_user(row: ApiToken) -> SignedInUser:
    """Who a token's request is: its role and extension under the token's name.

    The id is negative so it never matches a person's row (saved filters and the like are
    a person's, not a machine's).
    """
    return SignedInUser(-row.id, USERNAME_PREFIX + row.name, row.role, row.extension, password_tag="")


@dataclass(slots=True)
class _Minute:
    first_at: float
    last_at: float
    username: str
    role: str
    address: str
    held: int = 0
    targets: list[str] = field(default_factory=list)


def _iso(unix: float) -> str:
    return datetime.fromtimestamp(unix, UTC).isoformat().replace("+00:00", "Z")


class TokenUseLog:
    """Which token uses become audit entries now, and which are summed up when their minute ends."""

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.time) -> None:
        self.window_s = window_s
        self.clock = clock
        self._open: dict[int, _Minute] = {}

    def is_open(self, token_id: int) -> bool:
        """Whether this token's minute has begun (its first use is written already)."""
        return token_id in self._open

    def note(self, token: SignedInUser, address: str, target: str, at: float) -> list[AuditEntry]:
        """Entries to write for this use (the first of its minute), and for minutes now over."""
        out = self.due(at)
        minute = self._open.get(token.id)
        if minute is None:
            self._open[token.id] = _Minute(at, at, token.username, token.role, address)
            out.append(anonymous_entry(datetime.fromtimestamp(at, UTC), token.username, TOKEN_USED, address, target,
                                       role=token.role))
        else:
            minute.held += 1
            minute.last_at = max(minute.last_at, at)
            if target not in minute.targets and len(minute.targets) < MAX_SAMPLES:
                minute.targets.append(target)
        return out

    def due(self, now: float | None = None) -> list[AuditEntry]:
        """Summaries of the minutes that are over."""
        now = self.clock() if now is None else now
        return self._close([k for k, m in self._open.items() if now - m.first_at >= self.window_s])

    def drain(self) -> list[AuditEntry]:
        """Summaries of every open minute (the app is stopping)."""
        return self._close(list(self._open))

    def _close(self, keys: list[int]) -> list[AuditEntry]:
        out = []
        for key in keys:
            m = self._open.pop(key)
            if m.held:
                out.append(anonymous_entry(
                    datetime.fromtimestamp(m.last_at, UTC), m.username, TOKEN_USED, m.address,
                    m.targets[0] if m.targets else None, role=m.role, repeated=m.held, since=_iso(m.first_at),
                    until=_iso(m.last_at), targets=m.targets,
                ))
        return out


# Set on a request the Bearer token authenticated: it carries no cookie, so no CSRF token either.
VIA_TOKEN: web.RequestKey[bool] = web.RequestKey("pbxbridge_via_token", bool)
TOKEN_USES: web.AppKey[TokenUseLog] = web.AppKey("pbxbridge_token_uses", TokenUseLog)


async def _write(context: WebContext, entries: list[AuditEntry], used: dict[int, float]) -> None:
    if not entries and not used:
        return
    try:
        async with write_session(context) as db:
            db.add_all(entries)
            for token_id, at in used.items():
                row = await db.get(ApiToken, token_id)
                if row is not None:
                    row.last_used_at = datetime.fromtimestamp(at, UTC)
    except Exception:
        # The request itself stands; a lost audit row is logged rather than failing the machine's call.
        log.exception("could not write %d API token use(s) to the audit log", len(entries))


async def note_use(request: web.Request, token: SignedInUser, address: str) -> None:
    """Write what this use of a token calls for now (its first use this minute, summaries due)."""
    uses = request.app.get(TOKEN_USES)
    if uses is None:
        return
    context = request.app[CONTEXT]
    at = context.clock()
    first = not uses.is_open(token.id)
    entries = uses.note(token, address, f"{request.method} {request.path}", at)
    # last_used_at is written with the minute's first entry: one write a minute, not one a request.
    await _write(context, entries, {-token.id: at} if first else {})


async def _flushing(app: web.Application) -> AsyncIterator[None]:
    uses, context = app[TOKEN_USES], app[CONTEXT]

    async def every_window() -> None:
        while True:
            await asyncio.sleep(uses.window_s / 2)
            await _write(context, uses.due(), {})

    task = asyncio.create_task(every_window(), name="pbxbridge-token-use-summaries")
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await _write(context, uses.drain(), {})


def install(app: web.Application, uses: TokenUseLog | None = None) -> None:
    """Give the app its token-use log, summed up every half window and when the app stops."""
    app[TOKEN_USES] = uses or TokenUseLog(clock=app[CONTEXT].clock)
    app.cleanup_ctx.append(_flushing)
