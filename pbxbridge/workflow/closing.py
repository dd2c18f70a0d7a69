"""A person closing a client's row: spam, a wrong number, or reached by other means."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.calls.tables import Call
from pbxbridge.kpi.definitions import KpiSettings
from pbxbridge.workflow.tables import MissedClosure
from pbxbridge.workflow.worklist import CLOSE_REASONS, DAYS, MissedRow, read_worklist

MAX_NOTE = 2000


class CloseRefused(Exception):
    """The row cannot be closed as asked; the message says why."""


class NothingOpen(CloseRefused):
    """The client has no open row (already reached, or closed by someone else)."""


async def close_row(
    session: AsyncSession,
    settings: KpiSettings,
    client_id: int,
    reason: str,
    by: str,
    *,
    through_call_id: int | None = None,
    note: str | None = None,
    now: datetime | None = None,
    days: int = DAYS,
) -> MissedRow:
    """Close the client's row up to ``through_call_id`` (the latest missed call the person saw).

    A call missed after the one the person saw stays open in a new row: closing
    never hides a call nobody has looked at. Returns the row as it was closed.
    """
    if reason not in CLOSE_REASONS:
        raise CloseRefused(f"reason: one of {', '.join(CLOSE_REASONS)}")
    if note is not None and len(note) > MAX_NOTE:
        raise CloseRefused(f"note: text up to {MAX_NOTE} characters")
    rows = await read_worklist(session, settings, [client_id], days)
    if not rows:
        raise NothingOpen("this client has no missed calls waiting for a callback")
    (row,) = rows
    last = row.last_missed_call_id if through_call_id is None else through_call_id
    if last not in row.call_ids:
        raise CloseRefused("the row has changed since it was shown: reload and look again")
    ended = await session.scalar(select(Call.ended_at).where(Call.id == last))
    if ended is None:  # pragma: no cover - a call of the row is in the journal
        raise CloseRefused("no such call")
    session.add(
        MissedClosure(
            client_id=client_id,
            through_at=ended,
            through_call_id=last,
            reason=reason,
            note=(note or "").strip() or None,
            closed_by=by,
            closed_at=now or datetime.now(UTC),
        )
    )
    await session.flush()
    return row
