"""The audit log: who listened to, exported or changed what, who failed to sign in and what was
refused. Rows are only ever added."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.web.tables import AuditEntry
from pbxbridge.web.throttle import MAX_NAME_CHARS, Attempt, Lock
from pbxbridge.web.users import SignedInUser

SIGN_IN = "sign_in"
SIGN_IN_FAILED = "sign_in_failed"
SIGN_IN_LOCKED = "sign_in_locked"
REQUEST_REFUSED = "request_refused"
# Why a sign-in failed (details.reason of SIGN_IN_FAILED).
UNKNOWN_USER = "unknown_user"
WRONG_PASSWORD = "wrong_password"
LOCKED = "locked"
THROTTLED = "throttled"
# Why a request was refused (details.reason of REQUEST_REFUSED).
SIGN_IN_REQUIRED = "sign_in_required"
FORBIDDEN = "forbidden"
CSRF = "csrf"
# Who a request came from when nobody was signed in.
ANONYMOUS = ""
# The log's column widths: longer values (a hostile request's) are cut, never refused.
MAX_TARGET_CHARS = 200
MAX_ROLE_CHARS = 16
# Whether the request's refusal (or failed sign-in) is already in the log.
AUDITED: web.RequestKey[bool] = web.RequestKey("pbxbridge_audited", bool)
# Why the request is being refused, when its status alone does not say (CSRF).
REFUSAL_REASON: web.RequestKey[str] = web.RequestKey("pbxbridge_refusal_reason", str)


def client_address(request: web.Request) -> str:
    """The peer's address (a reverse proxy's own address when behind one)."""
    return request.remote or ""


def record(
    session: AsyncSession,
    request: web.Request,
    user: SignedInUser,
    action: str,
    target: str | None = None,
    **details: Any,
) -> None:
    """Add one entry to the session's transaction (committed with the change it describes)."""
    session.add(
        AuditEntry(
            at=datetime.now(UTC),
            username=user.username,
            role=user.role,
            action=action,
            target=target,
            details=details,
            ip=client_address(request),
        )
    )


def anonymous_entry(
    at: datetime,
    username: str,
    action: str,
    address: str,
    target: str | None = None,
    role: str = ANONYMOUS,
    **details: Any,
) -> AuditEntry:
    """An entry for someone who may not be signed in (a name typed at sign-in, or nobody)."""
    return AuditEntry(
        at=at,
        username=_storable(username)[:MAX_NAME_CHARS],
        role=role[:MAX_ROLE_CHARS],
        action=action,
        target=_storable(target)[:MAX_TARGET_CHARS] if target is not None else None,
        details=details,
        ip=address[:64] or None,
    )


def _storable(text: str) -> str:
    # PostgreSQL keeps no NUL in text; a hostile name or path still gets its entry, the NUL shown as �.
    return text.replace("\x00", "\ufffd")


def failed_sign_in(at: datetime, username: str, address: str, reason: str, **details: Any) -> AuditEntry:
    """A sign-in that failed: the name tried, from where, and why."""
    return anonymous_entry(at, username, SIGN_IN_FAILED, address, reason=reason, **details)


def sign_in_lock(at: datetime, username: str, address: str, lock: Lock) -> AuditEntry:
    """An account or address locked after too many failures (``lock.until`` is a Unix time)."""
    until = datetime.fromtimestamp(lock.until, UTC).isoformat().replace("+00:00", "Z")
    return anonymous_entry(
        at, username, SIGN_IN_LOCKED, address, f"{lock.scope}:{lock.key}", scope=lock.scope,
        failures=lock.failures, until=until,
    )


async def sign_in_attempts(session: AsyncSession, since: float) -> list[Attempt]:
    """Sign-ins checked against a password since ``since`` (Unix time): what the throttle counts."""
    rows = (
        await session.execute(
            select(AuditEntry.at, AuditEntry.username, AuditEntry.ip, AuditEntry.action, AuditEntry.details)
            .where(AuditEntry.at >= datetime.fromtimestamp(since, UTC),
                   AuditEntry.action.in_((SIGN_IN, SIGN_IN_FAILED)))
            .order_by(AuditEntry.id)
        )
    ).all()
    attempts = []
    for at, username, ip, action, details in rows:
        # Tries refused during a wait were never checked, so they never counted.
        if action == SIGN_IN_FAILED and (details or {}).get("reason") not in (UNKNOWN_USER, WRONG_PASSWORD):
            continue
        attempts.append(Attempt(at.timestamp(), username, ip or "", action == SIGN_IN))
    return attempts


async def entries(
    session: AsyncSession, page: int, per_page: int, action: str | None = None
) -> tuple[list[dict[str, Any]], int]:
    """A page of entries (of one action, when given), newest first, and the total count."""
    chosen = select(AuditEntry)
    counted = select(func.count()).select_from(AuditEntry)
    if action:
        action = _storable(action)
        chosen = chosen.where(AuditEntry.action == action)
        counted = counted.where(AuditEntry.action == action)
    total = int(await session.scalar(counted) or 0)
    # A page far past the end is empty; its offset must still fit the database's integers.
    offset = min((page - 1) * per_page, total)
    rows = (
        await session.execute(chosen.order_by(AuditEntry.id.desc()).offset(offset).limit(per_page))
    ).scalars()
    return [
        {
            "id": r.id,
            "at": r.at.isoformat().replace("+00:00", "Z"),
            "username": r.username,
            "role": r.role,
            "action": r.action,
            "target": r.target,
            "details": r.details,
            "ip": r.ip,
        }
        for r in rows
    ], total


# Who the daemon's own maintenance (retention) is in the audit log.
SYSTEM_USER = "pbxbridge"
SYSTEM_ROLE = "system"


async def system_entry(session: AsyncSession, action: str, target: str, details: dict[str, Any]) -> None:
    """An entry for work pbxbridge did itself, in the caller's transaction (none before the log's table exists)."""
    connection = await session.connection()
    if not await connection.run_sync(lambda conn: inspect(conn).has_table(AuditEntry.__tablename__)):
        return
    session.add(AuditEntry(at=datetime.now(UTC), username=SYSTEM_USER, role=SYSTEM_ROLE, action=action,
                           target=target, details=details, ip=None))
