"""CEL rows in, finished calls out: rows grouped into calls, each call's events through the tracker.

A call's rows are complete at its ``LINKEDID_END`` (Asterisk writes it after the last channel
of the linkedid is gone). Only then are its rows turned into events: which channel dialled
which is known from rows written later than the dial. One tracker takes every call, as one
AMI session would, so a call already given out is never given out again.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from zoneinfo import ZoneInfo

from pbxbridge.backfill.cel_events import CdrFacts, call_events
from pbxbridge.backfill.rows import CelRow
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.tracker import CallTracker, TrackerSettings

log = logging.getLogger(__name__)

# Where FreePBX's MixMonitor writes (ASTSPOOLDIR/monitor/YYYY/MM/DD); CDR(recordingfile) keeps the name only.
MONITOR_DIR = "/var/spool/asterisk/monitor"
_NAME_DATE = re.compile(r"-(?P<y>\d{4})(?P<m>\d{2})(?P<d>\d{2})-\d{6}-")


def recording_path(name: str, started_at: float, zone: ZoneInfo) -> str:
    """The full path on the PBX of a recording FreePBX's CDR names (the day in its name, else the call's day)."""
    if name.startswith("/"):
        return name
    m = _NAME_DATE.search(name)
    if m:
        day = f"{m['y']}/{m['m']}/{m['d']}"
    else:
        day = datetime.fromtimestamp(started_at, zone).strftime("%Y/%m/%d")
    return f"{MONITOR_DIR}/{day}/{name}"


@dataclass
class CelCalls:
    """Open calls' rows by linkedid, until their LINKEDID_END."""

    open: dict[str, list[CelRow]] = field(default_factory=dict)

    def add(self, row: CelRow) -> list[CelRow] | None:
        """Take a row; a call's rows when this row completes it."""
        rows = self.open.setdefault(row.linkedid, [])
        rows.append(row)
        if row.eventtype == "LINKEDID_END":
            return self.open.pop(row.linkedid)
        return None

    def first_open_id_minus_one(self, otherwise: int) -> int:
        """Where a resumed read starts again (after this id): before the oldest open call's first row."""
        first = min((rows[0].id for rows in self.open.values()), default=None)
        return otherwise if first is None else first - 1

    def take_all(self) -> list[list[CelRow]]:
        """Every call still open (the rows ran out before their LINKEDID_END), oldest first."""
        calls = sorted(self.open.values(), key=lambda rows: (rows[0].at, rows[0].id))
        self.open = {}
        return calls


class CelRebuilder:
    """Calls rebuilt from CEL rows by the live path's own tracker."""

    def __init__(
        self,
        settings: TrackerSettings,
        facts: Callable[[str], CdrFacts] | None = None,
        warn: Callable[[str, str], None] | None = None,
    ) -> None:
        self.tracker = CallTracker(settings)
        self.calls = CelCalls()
        self._facts = facts or (lambda _linkedid: CdrFacts())
        self._warn = warn or (lambda linkedid, message: log.warning("call %s: %s", linkedid, message))

    def feed_call(self, rows: Sequence[CelRow]) -> list[FinishedCall]:
        """One complete call's rows; the calls this finished."""
        for row in rows:
            if row.extra_is_cut():
                self._warn(row.linkedid, f"CEL row {row.id} ({row.eventtype}): eventextra cut at the column's width")
        out: list[FinishedCall] = []
        if not rows:
            return out
        # Every event made from CEL carries its row's time (Timestamp): the tracker reads that.
        feed, now = self.tracker.feed, rows[0].at
        for event in call_events(rows, self._facts(rows[0].linkedid)):
            done = feed(event, now)
            if done:
                out.extend(done)
        for linkedid, message in self.tracker.take_warnings():
            self._warn(linkedid, message)
        return out

    def feed(self, row: CelRow) -> list[FinishedCall]:
        """One row in the order Asterisk wrote them; the calls it completed."""
        rows = self.calls.add(row)
        return self.feed_call(rows) if rows is not None else []

    def finish(self) -> list[FinishedCall]:
        """No more rows: calls cut off by the end of the range are given out as far as they went."""
        out: list[FinishedCall] = []
        for rows in self.calls.take_all():
            out.extend(self.feed_call(rows))
        end = max((c.ended_at for c in out), default=0.0)
        out.extend(self.tracker.end_of_stream(end))
        for linkedid, message in self.tracker.take_warnings():
            self._warn(linkedid, message)
        return out


def rebuild_calls(
    rows: Iterable[CelRow],
    settings: TrackerSettings,
    facts: Mapping[str, CdrFacts] | None = None,
) -> list[FinishedCall]:
    """Every call in the rows (tests and tools: all of it in memory)."""
    known = facts or {}
    rebuilder = CelRebuilder(settings, facts=lambda linkedid: known.get(linkedid, CdrFacts()))
    out: list[FinishedCall] = []
    for row in rows:
        out.extend(rebuilder.feed(row))
    out.extend(rebuilder.finish())
    return out
