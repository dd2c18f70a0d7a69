"""Cards get their manager from the calls as they are written (``workflow.assign_manager``)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.calls.store import Written
from pbxbridge.calls.tables import Call
from pbxbridge.clients.assign import Talk, assign_from_talks
from pbxbridge.db.base import table_of
from pbxbridge.kpi.definitions import ANSWERED, INBOUND, OUTBOUND


def talks_of(written: Sequence[Written]) -> list[Talk]:
    """The answered client calls of a batch: who talked with which card, when."""
    talks: list[Talk] = []
    for row, _call, _new in written:
        if (
            row.status == ANSWERED
            and row.direction in (INBOUND, OUTBOUND)
            and row.client_id is not None
            and row.manager_id is not None
        ):
            talks.append(Talk(row.client_id, row.manager_id, row.started_at))
    return talks


class AssignFromCalls:
    """The journal's hook: gives cards without a person's choice the manager who talked with them."""

    def __init__(self, mode: str) -> None:
        self.mode = mode
        self.assigned = 0

    async def after_write(self, session: AsyncSession, written: Sequence[Written]) -> None:
        self.assigned += await assign_from_talks(session, talks_of(written), self.mode)


async def assign_from_journal(session: AsyncSession, mode: str) -> int:
    """Go over every answered client call in the journal (cards made before this was on)."""
    calls = table_of(Call)
    rows = await session.execute(
        select(calls.c.client_id, calls.c.manager_id, calls.c.started_at).where(
            calls.c.status == ANSWERED,
            calls.c.direction.in_((INBOUND, OUTBOUND)),
            calls.c.client_id.is_not(None),
            calls.c.manager_id.is_not(None),
        )
    )
    return await assign_from_talks(session, [Talk(c, m, s) for c, m, s in rows.all()], mode)
