"""Calls the daemon did not hear, filled in from the PBX's CEL on start and after every reconnect.

A domain like the others: it attaches to the hub of a live daemon when a ``[[pbx]]`` names its
``cdr_url``. When a PBX's AMI session logs in, the gap is from the last moment heard of it (its
last event before the drop; after a restart, the newest call in the journal) to the first event
heard on the new session. Calls begun in the gap are rebuilt from CEL and journaled through the
daemon's own writer and hooks (KPIs, transcription, CRM follow), marked ``source = "cel"``:

- a call the journal holds is left as it is, unless the live path could only close it as far as
  it went (``closed_by = "reconcile"``: it was in progress across the gap): that one is rewritten
  whole from CEL, not split in two;
- a call still up on the PBX is the live path's (it took it on at login) and is not touched.

A database that cannot be read is logged and the live AMI path goes on as it was.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy import func, select

from pbxbridge.ami.frames import Frame, event_time
from pbxbridge.backfill.importer import import_calls
from pbxbridge.backfill.rows import CelRow
from pbxbridge.backfill.run import SOURCE_CEL, SourceMarks
from pbxbridge.backfill.source import CdrSource, SourceError
from pbxbridge.calls.following import tracker_settings
from pbxbridge.calls.model import ClosedBy, FinishedCall
from pbxbridge.calls.store import CallWriter
from pbxbridge.calls.tables import Call
from pbxbridge.config import PbxConfig
from pbxbridge.hub import Hub

log = logging.getLogger(__name__)

# After a login: time for the session's catch-up (CoreShowChannels) to close what the PBX no
# longer has, and for the first event to tell the PBX's clock.
SETTLE_S = 2.0
# A gap longer than this is not filled on its own: `pbxbridge backfill` imports history.
MAX_GAP_S = 7 * 24 * 3600.0
# Calls written per transaction.
WRITE_BATCH = 200


def attach(hub: Hub) -> GapFiller | None:
    """Fill gaps for every PBX that names its CEL/CDR database, in a live daemon only."""
    if not hub.live:
        return None
    pbxes = [p for p in hub.config.pbx if p.cdr_url]
    if not pbxes:
        return None
    filler = GapFiller(hub, pbxes)
    hub.on_pbx_connected(filler.connected)
    hub.on_pbx_dropped(filler.dropped)
    hub.on_event(filler.seen)
    hub.add_component(filler)
    log.info("back-fill from CEL after every (re)connect: %s", ", ".join(p.name for p in pbxes))
    return filler


@dataclass(slots=True)
class _PbxGap:
    # The PBX's clock at the last event heard before the session dropped.
    heard_until: float | None = None
    # The start of the oldest call in progress when the session dropped (or the daemon started).
    open_since: float | None = None
    # The time of the first event of the new session, once heard.
    resumed_at: float | None = None
    waiting: bool = False
    linkedids_up: set[str] = field(default_factory=set)


class GapFiller:
    """One back-fill at a time per PBX, started by each login."""

    def __init__(self, hub: Hub, pbxes: Sequence[PbxConfig]) -> None:
        self.hub = hub
        self.pbxes = {p.name: p for p in pbxes}
        self.gaps = {name: _PbxGap() for name in self.pbxes}
        self.tasks: dict[str, asyncio.Task[None]] = {}
        self.filled = 0
        self.runs = 0

    async def start(self) -> None:
        # Before any session logs in: the last moment heard of each PBX is its newest journaled
        # call (asked now, before the new session's own calls are written).
        for pbx, gap in self.gaps.items():
            gap.heard_until = await self._newest_call_end(pbx)

    async def stop(self) -> None:
        for task in self.tasks.values():
            task.cancel()
        for task in self.tasks.values():
            try:
                await task
            except (asyncio.CancelledError, Exception):  # noqa: BLE001 - stopping: its error is logged already
                pass
        self.tasks.clear()

    # -- what the hub tells ---------------------------------------------------------------

    def _open_since(self, pbx: str) -> float | None:
        starts = [float(c["started_at"]) for c in self.hub.calls_in_progress() if c.get("pbx") == pbx]
        return min(starts, default=None)

    def dropped(self, pbx: str) -> None:
        gap = self.gaps.get(pbx)
        if gap is None:
            return
        gap.heard_until = self.hub.pbx_clock(pbx)
        gap.open_since = self._open_since(pbx)

    def connected(self, pbx: str) -> None:
        gap = self.gaps.get(pbx)
        if gap is None:
            return
        if gap.open_since is None:
            # Just started: the calls it took back from before the stop are in progress now.
            gap.open_since = self._open_since(pbx)
        gap.resumed_at = None
        gap.waiting = True
        running = self.tasks.get(pbx)
        if running is not None and not running.done():
            running.cancel()
        self.tasks[pbx] = asyncio.create_task(self._fill(pbx), name=f"backfill-gap-{pbx}")

    def seen(self, pbx: str, frame: Frame) -> None:
        gap = self.gaps.get(pbx)
        if gap is not None and gap.waiting and "Timestamp" in frame:
            gap.resumed_at = event_time(frame, 0.0)
            gap.waiting = False

    # -- filling --------------------------------------------------------------------------

    async def _fill(self, pbx: str) -> None:
        gap = self.gaps[pbx]
        config = self.pbxes[pbx]
        await asyncio.sleep(SETTLE_S)
        await self.hub.writer_first(time.monotonic() + SETTLE_S)
        gap.waiting = False
        start = gap.heard_until
        if start is None:
            log.info("[%s] no call journaled yet: no gap to fill (pbxbridge backfill imports history)", pbx)
            return
        if gap.open_since is not None:
            start = min(start, gap.open_since)
        end = gap.resumed_at if gap.resumed_at is not None else self.hub.clock()
        if end - start > MAX_GAP_S:
            log.warning("[%s] the gap since %s is longer than %d days: filling the last ones only; "
                        "run pbxbridge backfill for the rest", pbx, time.ctime(start), MAX_GAP_S // 86400)
            start = end - MAX_GAP_S
        up = {str(c["linkedid"]) for c in self.hub.calls_in_progress() if c.get("pbx") == pbx}
        log.info("[%s] back-fill from CEL: calls begun from %s to %s", pbx, _moment(start), _moment(end))
        try:
            written = await self._fill_range(config, start, end, up)
        except SourceError as exc:
            log.error("[%s] back-fill from CEL not possible: %s; the live AMI path goes on", pbx, exc)
            return
        except Exception:
            log.exception("[%s] back-fill from CEL failed; the live AMI path goes on", pbx)
            return
        self.runs += 1
        self.filled += written
        gap.open_since = None
        log.info("[%s] back-fill from CEL: %d call(s) of the gap journaled", pbx, written,
                 extra={"pbx": pbx, "backfilled": written})

    async def _newest_call_end(self, pbx: str) -> float | None:
        sessions = self.hub.sessions
        if sessions is None:
            return None
        async with sessions() as session:
            newest = (await session.execute(select(func.max(Call.ended_at)).where(Call.pbx == pbx))).scalar()
        return newest.timestamp() if newest is not None else None

    async def _fill_range(self, pbx: PbxConfig, start: float, end: float, up: set[str]) -> int:
        source = CdrSource(pbx.cdr_url, _zone(pbx, self.hub.config.kpi.timezone))
        try:
            await source.check()
            settings = tracker_settings(pbx)

            def wanted(first: CelRow) -> bool:
                return first.linkedid not in up

            written = 0
            async for batch in import_calls(source, settings, start, end, wanted=wanted):
                written += await self._write(await self._missing(batch.calls))
            return written
        finally:
            await source.close()

    async def _missing(self, calls: Sequence[FinishedCall]) -> list[FinishedCall]:
        """Calls the journal lacks, or holds only as far as the live path could close them."""
        if not calls or self.hub.sessions is None:
            return list(calls)
        keys = {(c.pbx, c.linkedid) for c in calls}
        async with self.hub.sessions() as session:
            found = await session.execute(
                select(Call.pbx, Call.linkedid, Call.closed_by).where(Call.linkedid.in_([k[1] for k in keys]))
            )
            held = {(p, lid): closed for p, lid, closed in found.all() if (p, lid) in keys}
        cut = ClosedBy.RECONCILE.value
        return [c for c in calls if held.get((c.pbx, c.linkedid), cut) == cut]

    async def _write(self, calls: list[FinishedCall]) -> int:
        if not calls or self.hub.write_sessions is None:
            return 0
        marks = SourceMarks(rewrite=True)
        hooks = [*self.hub.after_write_hooks, marks.note_written]
        writer = CallWriter(self.hub.write_sessions, self.hub.config, after_write=hooks)
        for i in range(0, len(calls), WRITE_BATCH):
            chunk = calls[i : i + WRITE_BATCH]
            for call in chunk:
                marks.expect(call, SOURCE_CEL)
            async with self.hub.database_turn():
                rows = await writer.write_many(chunk)
            for call, row in zip(chunk, rows, strict=True):
                self.hub.call_written(call, row)
        return len(calls)


def _zone(pbx: PbxConfig, department: str) -> ZoneInfo:
    try:
        return ZoneInfo(pbx.cdr_timezone or department)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise SourceError(f"pbx.{pbx.name}.cdr_timezone: not an IANA time zone ({exc})") from None


def _moment(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")
