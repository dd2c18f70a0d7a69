"""Saving calls in progress, so that a restart (a crash, an upgrade) loses none of them.

The daemon saves the tracker's changed calls every few hundred milliseconds, in
transactions of a bounded size that give way to finished calls waiting for the journal.
A finished call's saved state is deleted by ``forget_written``, a ``CallWriter``
hook, in the very transaction that puts the call in the journal: a crash
between the two cannot leave a call both in progress and written, nor neither.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.tables import Call, OpenCall
from pbxbridge.db.base import table_of
from pbxbridge.db.chunks import chunks
from pbxbridge.db.engine import WRITE
from pbxbridge.db.upsert import dialect_insert

log = logging.getLogger(__name__)

OpenCallState = dict[str, Any]


class OpenCallStore:
    """The ``open_calls`` table: one row per call in progress, per PBX."""

    def __init__(self, session_factory: async_sessionmaker[AsyncSession]) -> None:
        self.session_factory = session_factory

    async def load(self, pbx: str) -> list[OpenCallState]:
        """Every call of that PBX saved as in progress, oldest change first."""
        async with self.session_factory() as session:
            rows = await session.execute(
                select(OpenCall.state).where(OpenCall.pbx == pbx).order_by(OpenCall.updated_at)
            )
            return [dict(state) for state in rows.scalars()]

    async def save(self, pbx: str, changes: Mapping[str, OpenCallState | None]) -> None:
        """In one transaction: write each call's state; a None state removes the call."""
        if not changes:
            return
        now = datetime.now(UTC)
        upserts = [
            {"pbx": pbx, "linkedid": lid, "state": state, "updated_at": now}
            for lid, state in changes.items()
            if state is not None
        ]
        gone = [lid for lid, state in changes.items() if state is None]
        async with self.session_factory() as session:
            async with session.begin():
                await session.connection(execution_options=WRITE)
                await _delete(session, pbx, gone)
                if upserts:
                    # One statement run for every row (executemany): compiled once and
                    # cached, where a multi-row VALUES is compiled anew for each row count.
                    stmt = dialect_insert(session, table_of(OpenCall))
                    stmt = stmt.on_conflict_do_update(
                        index_elements=["pbx", "linkedid"],
                        set_={"state": stmt.excluded.state, "updated_at": stmt.excluded.updated_at},
                    )
                    await session.execute(stmt, upserts)

    async def linkedids(self) -> set[tuple[str, str]]:
        """(pbx, linkedid) of every call saved as in progress."""
        async with self.session_factory() as session:
            rows = await session.execute(select(OpenCall.pbx, OpenCall.linkedid))
            return {(pbx, lid) for pbx, lid in rows.all()}


async def _delete(session: AsyncSession, pbx: str, linkedids: list[str]) -> None:
    """Remove these calls of the PBX from the saved calls in progress."""
    # On the table, not the mapped class: no objects of the session to keep in step,
    # and the ORM's bookkeeping cost more than the statement on every call written.
    table = table_of(OpenCall)
    for chunk in chunks(linkedids):
        await session.execute(delete(table).where(table.c.pbx == pbx, table.c.linkedid.in_(chunk)))


async def forget_written(session: AsyncSession, written: Sequence[tuple[Call, FinishedCall, bool]]) -> None:
    """CallWriter hook: a call in the journal now is no longer in progress (one statement per PBX)."""
    by_pbx: dict[str, set[str]] = {}
    for _row, call, _is_new in written:
        by_pbx.setdefault(call.pbx, set()).add(call.linkedid)
    for pbx, linkedids in sorted(by_pbx.items()):
        await _delete(session, pbx, sorted(linkedids))
