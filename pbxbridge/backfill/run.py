"""A back-fill run: calls read from a PBX's CEL (or CDR) into the journal through the daemon's writer.

The calls go through the same pipeline as live and replayed ones (the journal, KPI figures,
transcription jobs, every hook a domain attached), each marked with where it was heard.
A call the journal already has (same PBX and linkedid) is left as it is: the live path's
version knows more. After every page, once its calls are in the journal, the run's
checkpoint is saved: a run killed at any moment goes on from there when started again.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import BigInteger, Boolean, Column, Float, Integer, MetaData, String, Table, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.backfill.cdr_calls import cdr_calls
from pbxbridge.backfill.importer import ImportBatch, import_calls
from pbxbridge.backfill.rows import CdrRow, CelRow
from pbxbridge.backfill.source import PAGE_ROWS, CdrSource
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.tables import Call
from pbxbridge.calls.tracker import TrackerSettings
from pbxbridge.db.upsert import dialect_insert

log = logging.getLogger(__name__)

SOURCE_CEL = "cel"
SOURCE_CDR = "cdr"
# Checked this many calls at a time against the journal.
_LOOKUP_CHUNK = 500

# Not in Base.metadata: a back-fill's own bookkeeping, made by migration 0014_call_source.
_metadata = MetaData()
checkpoints = Table(
    "backfill_checkpoints",
    _metadata,
    Column("pbx", String(64), primary_key=True),
    Column("task", String(128), primary_key=True),
    Column("next_id", BigInteger, nullable=False),
    Column("calls", Integer, nullable=False),
    Column("done", Boolean, nullable=False),
    Column("updated_at", Float, nullable=False),
)


@dataclass(slots=True)
class Checkpoint:
    after_id: int | None = None
    calls: int = 0
    done: bool = False


async def load_checkpoint(sessions: async_sessionmaker[AsyncSession], pbx: str, task: str) -> Checkpoint:
    async with sessions() as session:
        row = (
            await session.execute(select(checkpoints).where(checkpoints.c.pbx == pbx, checkpoints.c.task == task))
        ).first()
    if row is None:
        return Checkpoint()
    return Checkpoint(after_id=int(row.next_id), calls=int(row.calls), done=bool(row.done))


async def save_checkpoint(
    sessions: async_sessionmaker[AsyncSession], pbx: str, task: str, point: Checkpoint
) -> None:
    values = {
        "pbx": pbx, "task": task, "next_id": point.after_id or 0, "calls": point.calls,
        "done": point.done, "updated_at": time.time(),
    }
    async with sessions() as session, session.begin():
        insert = dialect_insert(session, checkpoints).values(**values)
        changed = {k: insert.excluded[k] for k in ("next_id", "calls", "done", "updated_at")}
        await session.execute(insert.on_conflict_do_update(index_elements=["pbx", "task"], set_=changed))


class SourceMarks:
    """A CallWriter hook: calls a back-fill gave the writer are marked with their source when first written."""

    def __init__(self, *, rewrite: bool = False) -> None:
        # rewrite: a call written again (the live path had it only as far as it went) is marked too.
        self.rewrite = rewrite
        self._pending: dict[tuple[str, str], str] = {}

    def expect(self, call: FinishedCall, source: str) -> None:
        self._pending[(call.pbx, call.linkedid)] = source

    async def note_written(self, session: AsyncSession, written: Sequence[tuple[Any, Any, bool]]) -> None:
        for row, call, is_new in written:
            source = self._pending.pop((call.pbx, call.linkedid), None)
            if source is not None and (is_new or self.rewrite):
                row.source = source


async def not_in_journal(
    sessions: async_sessionmaker[AsyncSession], calls: Sequence[FinishedCall]
) -> list[FinishedCall]:
    """The calls the journal does not hold yet (by PBX and linkedid)."""
    by_pbx: dict[str, list[FinishedCall]] = {}
    for call in calls:
        by_pbx.setdefault(call.pbx, []).append(call)
    held: set[tuple[str, str]] = set()
    async with sessions() as session:
        for pbx, of_pbx in by_pbx.items():
            for i in range(0, len(of_pbx), _LOOKUP_CHUNK):
                linkedids = [c.linkedid for c in of_pbx[i : i + _LOOKUP_CHUNK]]
                # pbx = … AND linkedid IN (…): the unique index's own order, a look-up per call
                # (a row-value IN is a scan of the whole journal on SQLite).
                found = await session.execute(
                    select(Call.linkedid).where(Call.pbx == pbx, Call.linkedid.in_(linkedids))
                )
                held.update((pbx, linkedid) for (linkedid,) in found.all())
    return [c for c in calls if (c.pbx, c.linkedid) not in held]


@dataclass(slots=True)
class Progress:
    """Where a run stands: calls journaled, rows read, how fast, how much of the range is left."""

    start: float
    end: float
    calls: int = 0
    new: int = 0
    rows: int = 0
    reached: float = 0.0
    began: float = 0.0
    # Calls the KPI figures were rebuilt from at the end (None: not rebuilt).
    kpi_calls: int | None = None

    def line(self, now: float | None = None) -> str:
        now = time.monotonic() if now is None else now
        spent = max(now - self.began, 1e-6)
        span = max(self.end - self.start, 1.0)
        done = min(max((self.reached - self.start) / span, 0.0), 1.0)
        left = spent * (1 - done) / done if done > 0 else None
        left_text = _clock(left) if left is not None else "?"
        return (
            f"{self.calls} calls ({self.new} new) · {self.rows} rows · {self.rows / spent:,.0f} rows/s"
            f" · {done:.0%} · {_clock(spent)} spent, {left_text} left"
        )


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}"


@dataclass(slots=True)
class Writer:
    """Where a run's calls go: the daemon's pipeline, and a wait until they are in the journal."""

    put: Callable[[FinishedCall], None]
    flush: Callable[[], Awaitable[None]]
    sessions: async_sessionmaker[AsyncSession]
    marks: SourceMarks


async def run_backfill(
    source: CdrSource,
    settings: TrackerSettings,
    writer: Writer,
    start: float,
    end: float,
    *,
    task: str,
    cdr_only: bool = False,
    page_rows: int = PAGE_ROWS,
    max_rate: float | None = None,
    on_progress: Callable[[Progress], None] | None = None,
    wanted: Callable[[CelRow], bool] | None = None,
) -> Progress:
    """Journal the calls begun in [start, end) that the journal lacks; resumes a run of the same task."""
    pbx = settings.pbx
    point = await load_checkpoint(writer.sessions, pbx, task)
    progress = Progress(start=start, end=end, calls=point.calls, began=time.monotonic())
    if point.done:
        progress.reached = end
        return progress
    if point.after_id is not None:
        log.info("[%s] back-fill %s goes on after CEL row %d", pbx, task, point.after_id)
    kind = SOURCE_CDR if cdr_only else SOURCE_CEL
    batches = _cdr_batches(source, settings, start, end) if cdr_only else import_calls(
        source, settings, start, end, after_id=point.after_id, page_rows=page_rows, wanted=wanted
    )
    last: ImportBatch | None = None
    async for batch in read_ahead(batches):
        fresh = await not_in_journal(writer.sessions, batch.calls)
        for call in fresh:
            writer.marks.expect(call, kind)
            writer.put(call)
        await writer.flush()
        progress.calls += len(batch.calls)
        progress.new += len(fresh)
        progress.rows += batch.rows
        progress.reached = max(progress.reached, batch.reached)
        last = batch
        if not cdr_only and batch.resume_after is not None:
            point = Checkpoint(after_id=batch.resume_after, calls=progress.calls)
            await save_checkpoint(writer.sessions, pbx, task, point)
        if on_progress is not None:
            on_progress(progress)
        if max_rate and batch.rows:
            # Spare the PBX's database: no faster than max_rate rows a second on average.
            ahead = progress.rows / max_rate - (time.monotonic() - progress.began)
            if ahead > 0:
                await asyncio.sleep(ahead)
    if last is not None and last.open_calls:
        # The table ended with calls still up on the PBX: a later run reads them from their start.
        return progress
    progress.reached = max(progress.reached, end)
    if not cdr_only:
        done = Checkpoint(after_id=None, calls=progress.calls, done=True)
        await save_checkpoint(writer.sessions, pbx, task, done)
    return progress


async def read_ahead(batches: AsyncIterator[ImportBatch]) -> AsyncIterator[ImportBatch]:
    """The batches, the next one read from the PBX's database and rebuilt while this one is written."""
    ahead = asyncio.ensure_future(_next(batches))
    try:
        while True:
            try:
                batch = await ahead
            except StopAsyncIteration:
                return
            ahead = asyncio.ensure_future(_next(batches))
            yield batch
    finally:
        if not ahead.done():
            ahead.cancel()
            with contextlib.suppress(asyncio.CancelledError, StopAsyncIteration):
                await ahead
        aclose = getattr(batches, "aclose", None)
        if aclose is not None:
            await aclose()


async def _next(batches: AsyncIterator[ImportBatch]) -> ImportBatch:
    return await anext(batches)


async def _cdr_batches(
    source: CdrSource, settings: TrackerSettings, start: float, end: float
) -> AsyncIterator[ImportBatch]:
    """CDR-only: every CDR row of the range, then its calls (no checkpoint: it is read again whole)."""
    rows: list[CdrRow] = []
    async for page in source.cdr_pages(start, end):
        rows.extend(page)
    calls = cdr_calls(rows, settings, source.zone)
    yield ImportBatch(calls, None, len(rows), end)
