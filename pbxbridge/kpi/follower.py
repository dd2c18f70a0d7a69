"""KPI figures following the call journal: calls are folded in just after their journal write commits.

A call reaches the journal (and the API) in its own short transaction; its
KPI update follows in another, a batch at a time, when no finished call waits
for the journal. The journal write neither waits for the figures nor fails
with them. Nothing is lost between the two: every call written gets a fact in
the KPI store, calls are folded in in the order the journal wrote them (ids
ascending), and a start first folds in the calls newer than the newest fact:
those a stop or a crash left out.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any

from sqlalchemy import Result, event, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import Session

from pbxbridge.calls.tables import Call
from pbxbridge.db.base import table_of
from pbxbridge.db.engine import WRITE
from pbxbridge.kpi.service import KpiService
from pbxbridge.kpi.tables import CallFactRow

log = logging.getLogger(__name__)

# Most calls one KPI transaction folds in: a call finishing meanwhile waits
# for the journal behind one such transaction at most.
APPLY_BATCH = 50
# A batch at most this often while calls trickle in: fifty calls cost a KPI
# transaction little more than one (most of it is the day's figures), and on
# SQLite every transaction is a turn the journal's writes wait behind.
APPLY_EVERY_S = 1.0
# A KPI batch waits for finished calls queued for the journal, no longer than this.
APPLY_DEFER_MAX_S = 1.0
# First pause after the KPI store refused a batch; doubled up to RETRY_CAP_S.
RETRY_INITIAL_S = 0.5
RETRY_CAP_S = 30.0
_STAGED = "pbxbridge.kpi.staged"

DatabaseTurn = Callable[[], AbstractAsyncContextManager[None]]
WriterFirst = Callable[[float], Awaitable[None]]


class KpiFollower:
    """Notes calls as the journal commits them (a CallWriter hook) and folds them into the KPI store."""

    def __init__(
        self,
        service: KpiService,
        database_turn: DatabaseTurn,
        writer_first: WriterFirst,
    ) -> None:
        self.service = service
        self.database_turn = database_turn
        self.writer_first = writer_first
        self.session_factory: async_sessionmaker[AsyncSession] | None = None
        # call id -> whether the journal wrote it for the first time (metrics count it once).
        self._pending: dict[int, bool] = {}
        # Noted again while their batch was being folded in: folded in once more
        # (new only if written anew since; the batch under way counts the first write).
        self._in_flight: set[int] = set()
        self._again: dict[int, bool] = {}
        self._wake = asyncio.Event()
        self._caught_up = asyncio.Event()
        self._caught_up.set()
        # Calls the KPI store lacked at start, not folded in yet: ids in (after, until].
        self._backlog: tuple[int, int] | None = None
        self._task: asyncio.Task[None] | None = None
        self.failures = 0

    # -- the CallWriter hook ---------------------------------------------------

    async def note_written(self, session: AsyncSession, written: Sequence[tuple[Any, Any, bool]]) -> None:
        """Note the batch's calls; they are handed on when (and if) its transaction commits."""
        staged: dict[int, bool] = session.info.setdefault(_STAGED, {})
        for row, _call, is_new in written:
            staged[int(row.id)] = staged.get(int(row.id), False) or is_new
        sync = session.sync_session
        if not event.contains(sync, "after_commit", self._committed):
            event.listen(sync, "after_commit", self._committed)
            event.listen(sync, "after_rollback", self._rolled_back)

    def _committed(self, session: Session) -> None:
        staged: dict[int, bool] = session.info.pop(_STAGED, {})
        for call_id, is_new in staged.items():
            if call_id in self._in_flight:
                self._again[call_id] = self._again.get(call_id, False) or is_new
            else:
                self._pending[call_id] = self._pending.get(call_id, False) or is_new
        if staged:
            self._caught_up.clear()
            self._wake.set()

    def _rolled_back(self, session: Session) -> None:
        session.info.pop(_STAGED, None)

    # -- running ---------------------------------------------------------------

    async def start(self, session_factory: async_sessionmaker[AsyncSession]) -> int:
        """Fold in the calls the KPI store does not hold yet, then follow the journal; returns how many."""
        self.session_factory = session_factory
        async with session_factory() as session:
            newest = int(await session.scalar(select(func.max(CallFactRow.call_id))) or 0)
            last = int(await session.scalar(select(func.max(Call.id))) or 0)
            left = int(await session.scalar(select(func.count()).select_from(Call).where(Call.id > newest)) or 0)
        if left:
            # Read from the journal a batch at a time (a store filled by another
            # tool may hold many), before any call the journal writes from now on.
            self._backlog = (newest, last)
            self._caught_up.clear()
            self._wake.set()
        self._task = asyncio.create_task(self._run(), name="kpi-follower")
        return left

    async def stop(self, timeout_s: float) -> None:
        """Fold in what is noted, for ``timeout_s`` at most (the rest waits for the next start), then stop."""
        if self._task is None:
            return
        try:
            await asyncio.wait_for(self.flush(), timeout_s)
        except TimeoutError:
            log.warning("KPI: %d call(s) left for the next start to fold in", len(self._pending))
        self._task.cancel()
        try:
            await self._task
        except asyncio.CancelledError:
            pass
        self._task = None

    async def flush(self) -> None:
        """Wait until every call noted so far is in the KPI store."""
        await self._caught_up.wait()

    @property
    def pending(self) -> int:
        """Calls noted from the journal whose figures are still to be updated (a start's catch-up aside)."""
        return len(self._pending)

    async def _run(self) -> None:
        failures = 0
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending or self._backlog is not None:
                await self.writer_first(time.monotonic() + APPLY_DEFER_MAX_S)
                try:
                    if self._backlog is not None:
                        await self._apply_backlog(*self._backlog)
                    else:
                        await self._apply_noted(list(itertools.islice(self._pending, APPLY_BATCH)))
                except asyncio.CancelledError:
                    raise
                except Exception as exc:
                    failures += 1
                    self.failures += 1
                    delay = min(RETRY_CAP_S, RETRY_INITIAL_S * 2 ** min(failures - 1, 10))
                    log.warning("KPI: updating the figures failed (%s); retry in %g s", exc, delay,
                                exc_info=failures == 1)
                    await asyncio.sleep(delay)
                    continue
                failures = 0
                if self._backlog is None and len(self._pending) < APPLY_BATCH:
                    # A few calls more make the next batch cost about the same.
                    await asyncio.sleep(APPLY_EVERY_S)
            if not self._pending and self._backlog is None:
                self._caught_up.set()

    async def _apply_backlog(self, after: int, until: int) -> None:
        """The next calls of those the store lacked at start (ids in ``(after, until]``)."""
        table = table_of(Call)
        stmt = (
            select(table).where(table.c.id > after, table.c.id <= until).order_by(table.c.id).limit(APPLY_BATCH)
        )
        rows = await self._apply(lambda session: session.execute(stmt), {})
        self._backlog = (rows[-1].id, until) if len(rows) == APPLY_BATCH else None

    async def _apply_noted(self, ids: list[int]) -> None:
        """Calls the journal wrote while the daemon ran, in the order it wrote them."""
        batch = {call_id: self._pending[call_id] for call_id in ids}
        self._in_flight = set(ids)
        self._again = {}
        table = table_of(Call)
        ordered = sorted(ids)
        folded = False
        try:
            # A call deleted meanwhile (retention) has nothing left to count.
            await self._apply(
                lambda session: session.execute(select(table).where(table.c.id.in_(ordered)).order_by(table.c.id)),
                batch,
            )
            folded = True
        finally:
            again, self._in_flight, self._again = self._again, set(), {}
            for call_id in ids:
                if call_id in again:
                    # Folded in: only a write since counts as new. Not folded in: the first still does.
                    self._pending[call_id] = again[call_id] or (not folded and self._pending.get(call_id, False))
                elif folded:
                    self._pending.pop(call_id, None)

    async def _apply(
        self, read: Callable[[AsyncSession], Awaitable[Result[Any]]], is_new: dict[int, bool]
    ) -> list[Any]:
        """Read calls' rows and fold them into the store, in one transaction; returns the rows."""
        assert self.session_factory is not None
        # SQLite has one writer at a time: the KPI transaction takes the daemon's turn
        # like any other. PostgreSQL lets it run beside the journal's, whose rows it only reads.
        bind = self.session_factory.kw.get("bind")
        concurrent = bind is not None and bind.dialect.name == "postgresql"
        turn = contextlib.nullcontext() if concurrent else self.database_turn()
        async with turn, self.session_factory() as session, session.begin():
            await session.connection(execution_options=WRITE)
            rows = list((await read(session)).all())
            await self.service.record_written(session, [(row, None, is_new.get(row.id, True)) for row in rows])
        return rows
