"""Missed callers nobody has called back yet, read from the KPI store's facts.

The one definition the wallboard's "missed today, not called back" (and anything else that
counts them) reads: an inbound call nobody answered (``UNANSWERED_INBOUND``) from a caller
with a number to call, and no callback linked to it (``link_callbacks``: no outbound call to
the client that rang out after the caller hung up). A callback after the lost-lead window
is still a callback here: the caller was called back, late (``lost`` says how late).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from sqlalchemy import ColumnElement, and_, distinct, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.kpi.definitions import INBOUND, UNANSWERED_INBOUND
from pbxbridge.kpi.tables import CallFactRow


def not_called_back() -> ColumnElement[bool]:
    """SQL condition on CallFactRow: a missed caller still waiting for a callback."""
    return and_(
        CallFactRow.direction == INBOUND,
        CallFactRow.status.in_(sorted(UNANSWERED_INBOUND)),
        CallFactRow.client_key.is_not(None),
        CallFactRow.callback_call_id.is_(None),
    )


@dataclass(frozen=True, slots=True)
class NotCalledBack:
    """Missed callers of one business day still to call back."""

    day: date
    # One per client (a client who called three times is one person to call back).
    callers: int
    calls: int


async def missed_not_called_back(session: AsyncSession, day: date) -> NotCalledBack:
    """The callers missed on ``day`` (a business day) whom nobody has called back since."""
    row = (
        await session.execute(
            select(func.count(distinct(CallFactRow.client_key)), func.count()).where(
                CallFactRow.day == day, not_called_back()
            )
        )
    ).one()
    return NotCalledBack(day=day, callers=int(row[0]), calls=int(row[1]))
