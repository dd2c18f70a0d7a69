"""API tokens for machines: a CRM's connector or a script calls the REST API as a role, with no cookie.

A token is shown once, when it is made; only its SHA-256 is kept (the token itself is 256 random
bits, so a fast hash is as safe as a slow one and costs nothing per request). Each request looks
the hash up in the database: a revoked token is refused from the next request on.

Uses go to the audit log without flooding it: a token's first use in a minute is written at once
(``api_token_used``, with the method and path), further uses that minute are counted, and when the
minute is over one more entry says how many there were, from when to when, and a few of the paths.
"""

from __future__ import annotations

import hashlib
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from aiohttp import web
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.web.audit import anonymous_entry
from pbxbridge.web.bursts import WINDOW_S, Burst, Bursts, summed_up
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


@dataclass(frozen=True, slots=True)
class _Use:
    username: str
    role: str
    address: str
    target: str


def _first_use(use: _Use, at: float) -> AuditEntry:
    return anonymous_entry(datetime.fromtimestamp(at, UTC), use.username, TOKEN_USED, use.address, use.target,
                           role=use.role)


def _minute_summary(minute: Burst[_Use]) -> AuditEntry:
    first = minute.first
    return anonymous_entry(
        datetime.fromtimestamp(minute.last_at, UTC), first.username, TOKEN_USED, first.address,
        minute.targets[0] if minute.targets else None, role=first.role, **minute.counted(),
    )


class TokenUseLog(Bursts[int, _Use]):
    """Which token uses become audit entries now, and which are summed up when their minute ends."""

    def __init__(self, window_s: float = WINDOW_S, clock: Callable[[], float] = time.time) -> None:
        super().__init__(_first_use, _minute_summary, window_s, clock)

    def note(self, token: SignedInUser, address: str, target: str, at: float) -> list[AuditEntry]:
        """Entries to write for this use (the first of its minute), and for minutes now over."""
        return self.add(token.id, _Use(token.username, token.role, address, target), at, target)


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


def install(app: web.Application, uses: TokenUseLog | None = None) -> None:
    """Give the app its token-use log, summed up every half window and when the app stops."""
    context = app[CONTEXT]
    app[TOKEN_USES] = uses = uses or TokenUseLog(clock=context.clock)

    async def write_all(entries: list[AuditEntry]) -> None:
        await _write(context, entries, {})

    app.cleanup_ctx.append(summed_up(uses, write_all, "pbxbridge-token-use-summaries"))
