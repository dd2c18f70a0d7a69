"""Managers' users in each CRM: extension -> the CRM's user id, read from the CRM or set by hand."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.crm.tables import CrmUser

FROM_CRM = "crm"
MANUAL = "manual"


async def users_of(session: AsyncSession, target: str) -> dict[str, str]:
    """extension -> user id in that target."""
    rows = await session.execute(select(CrmUser.extension, CrmUser.user_id).where(CrmUser.target == target))
    return {extension: user_id for extension, user_id in rows}


async def listed(session: AsyncSession) -> list[CrmUser]:
    return list((await session.scalars(select(CrmUser).order_by(CrmUser.target, CrmUser.extension))).all())


async def set_user(
    session: AsyncSession, target: str, extension: str, user_id: str, name: str | None, source: str, now: datetime
) -> bool:
    """Map an extension (a CRM's sync leaves one set by hand alone); whether anything changed."""
    row = await session.scalar(select(CrmUser).where(CrmUser.target == target, CrmUser.extension == extension))
    if row is None:
        session.add(CrmUser(target=target, extension=extension, user_id=user_id, name=name, source=source,
                            updated_at=now))
        return True
    if source == FROM_CRM and row.source == MANUAL:
        return False
    if (row.user_id, row.name, row.source) == (user_id, name, source):
        return False
    row.user_id, row.name, row.source, row.updated_at = user_id, name, source, now
    return True


async def replace_from_crm(
    session: AsyncSession, target: str, found: Iterable[tuple[str, str, str | None]], now: datetime
) -> int:
    """What the CRM says now, (extension, user id, name) each: its old rows go, manual ones stay. Rows set."""
    found = list(found)
    await session.execute(
        delete(CrmUser).where(
            CrmUser.target == target, CrmUser.source == FROM_CRM,
            CrmUser.extension.not_in([extension for extension, _id, _name in found]),
        )
    )
    changed = 0
    for extension, user_id, name in found:
        changed += await set_user(session, target, extension, user_id, name, FROM_CRM, now)
    return changed


async def remove_user(session: AsyncSession, target: str, extension: str) -> bool:
    result = await session.execute(delete(CrmUser).where(CrmUser.target == target, CrmUser.extension == extension))
    return bool(getattr(result, "rowcount", 0))
