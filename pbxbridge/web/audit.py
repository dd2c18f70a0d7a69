"""The audit log: who listened to, exported or changed what. Rows are only ever added."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from sqlalchemy import func, inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.web.tables import AuditEntry
from pbxbridge.web.users import SignedInUser


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


async def entries(session: AsyncSession, page: int, per_page: int) -> tuple[list[dict[str, Any]], int]:
    """A page of entries, newest first, and the total count."""
    total = int(await session.scalar(select(func.count()).select_from(AuditEntry)) or 0)
    rows = (
        await session.execute(
            select(AuditEntry).order_by(AuditEntry.id.desc()).offset((page - 1) * per_page).limit(per_page)
        )
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
