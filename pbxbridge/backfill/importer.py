"""A range of a PBX's CEL table read into finished calls, page after page, resumable.

Memory stays flat in the table's size: one page of rows, the rows of calls still open, and
the tracker's bounded memory of calls given out. A call belongs to the range it began in:
rows of calls begun before ``start`` are passed over, calls begun after ``end`` are not read,
and calls begun before ``end`` are read to their end. After each page the caller is told the
resume point: the first row of the oldest call still open (everything before it is given out).
"""

from __future__ import annotations

import contextlib
import logging
import math
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from pbxbridge.backfill.cdr_facts import cdr_facts
from pbxbridge.backfill.cel_events import CdrFacts
from pbxbridge.backfill.rebuild import CelRebuilder
from pbxbridge.backfill.rows import CelRow
from pbxbridge.backfill.source import PAGE_ROWS, CdrSource, CelPage
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.tracker import TrackerSettings

log = logging.getLogger(__name__)

# A call still open this long after the range's end is closed where its rows stop.
MAX_CALL_S = 4 * 3600.0
# Linkedids of calls begun before the range, remembered to pass over their later rows.
PASSED_MEMORY = 20_000


@dataclass(slots=True)
class ImportBatch:
    """What one page gave: finished calls, and where to resume once they are written."""

    calls: list[FinishedCall]
    # Read on from after this id after a restart (None: nothing is left to read).
    resume_after: int | None
    rows: int
    # The PBX time the reading has reached (Unix seconds).
    reached: float
    # Calls begun in the range whose rows have not all been read yet.
    open_calls: int = 0


@dataclass(slots=True)
class _State:
    passed: OrderedDict[str, None] = field(default_factory=OrderedDict)
    # Every call begun in the range has been read to its end.
    done: bool = False


async def import_calls(
    source: CdrSource,
    settings: TrackerSettings,
    start: float,
    end: float,
    *,
    after_id: int | None = None,
    page_rows: int = PAGE_ROWS,
    warn: Callable[[str, str], None] | None = None,
    wanted: Callable[[CelRow], bool] | None = None,
) -> AsyncIterator[ImportBatch]:
    """Batches of calls begun in [start, end), reading CEL after ``after_id`` (else from ``start``).

    ``wanted(first_row)`` may refuse a call by its first row (the gap back-fill leaves out
    calls the live path already has).
    """
    facts: dict[str, CdrFacts] = {}
    rebuilder = CelRebuilder(settings, facts=lambda linkedid: facts.pop(linkedid, CdrFacts()), warn=warn)
    cursor = after_id if after_id is not None else await source.first_id_at(start) - 1
    state = _State()
    async with contextlib.aclosing(source.cel_pages(cursor, page_rows)) as pages:
        async for page in pages:
            cursor = page.last_id
            yield await _batch(source, rebuilder, facts, state, page, start, end, wanted)
            if state.done:
                return
    # The table ends here: calls still open are in progress on the PBX. Nothing is given
    # out for them; a later run reads them from their first row.
    calls = rebuilder.calls
    yield ImportBatch([], calls.first_open_id_minus_one(cursor), 0, 0.0, open_calls=len(calls.open))


async def _batch(
    source: CdrSource,
    rebuilder: CelRebuilder,
    facts: dict[str, CdrFacts],
    state: _State,
    page: CelPage,
    start: float,
    end: float,
    wanted: Callable[[CelRow], bool] | None,
) -> ImportBatch:
    """One page's rows added to their calls; the calls they completed, rebuilt."""
    complete: list[list[CelRow]] = []
    for row in page.rows:
        rows = _take(rebuilder, state, row, start, end, wanted)
        if rows is not None:
            complete.append(rows)
    if not rebuilder.calls.open and page.last_at >= end:
        state.done = True
    elif rebuilder.calls.open and page.last_at >= end + MAX_CALL_S:
        complete.extend(rebuilder.calls.take_all())
        state.done = True
    out: list[FinishedCall] = []
    if complete:
        since = min(rows[0].at for rows in complete)
        until = max(rows[-1].at for rows in complete)
        by_call = await source.cdr_rows([rows[0].linkedid for rows in complete], since, until)
        for rows in complete:
            facts[rows[0].linkedid] = cdr_facts(by_call.get(rows[0].linkedid, ()), source.zone)
            out.extend(rebuilder.feed_call(rows))
    if state.done:
        out.extend(rebuilder.tracker.end_of_stream(page.last_at))
    resume = None if state.done else rebuilder.calls.first_open_id_minus_one(page.last_id)
    return ImportBatch(out, resume, len(page.rows), page.last_at, open_calls=len(rebuilder.calls.open))


def _take(
    rebuilder: CelRebuilder,
    state: _State,
    row: CelRow,
    start: float,
    end: float,
    wanted: Callable[[CelRow], bool] | None,
) -> list[CelRow] | None:
    """Add a row to its call unless the call is not the range's; a call's rows once complete."""
    calls = rebuilder.calls
    if row.linkedid not in calls.open:
        if row.linkedid in state.passed:
            return None
        begins = row.eventtype == "CHAN_START" and row.uniqueid == row.linkedid
        # eventtime is kept to the second: a call begun at 12:00:00.7 is written at 12:00:00.
        if not begins or row.at < math.floor(start) or row.at >= end or (wanted is not None and not wanted(row)):
            # Begun before the range (or after it, or not wanted): none of its rows are read.
            state.passed[row.linkedid] = None
            if len(state.passed) > PASSED_MEMORY:
                state.passed.popitem(last=False)
            return None
    return calls.add(row)
