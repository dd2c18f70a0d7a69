"""What a call's CDR rows tell that its CEL rows do not: recordings, and which queue rang whom."""

from __future__ import annotations

from collections.abc import Iterable
from zoneinfo import ZoneInfo

from pbxbridge.backfill.cel_events import CdrFacts
from pbxbridge.backfill.rebuild import recording_path
from pbxbridge.backfill.rows import CdrRow


def cdr_facts(rows: Iterable[CdrRow], zone: ZoneInfo) -> CdrFacts:
    """One call's CDR rows (any order) as CdrFacts."""
    ordered = sorted(rows, key=lambda r: (r.at, r.sequence))
    recordings: list[str] = []
    queues: dict[str, str] = {}
    caller_queues: list[str] = []
    for row in ordered:
        if row.recordingfile:
            path = recording_path(row.recordingfile, row.at, zone)
            if path not in recordings:
                recordings.append(path)
        queue = row.lastdata.split(",", 1)[0] if row.lastapp == "Queue" else ""
        if queue and row.dstchannel:
            queues.setdefault(row.dstchannel, queue)
        if queue and row.uniqueid == row.linkedid and queue not in caller_queues:
            caller_queues.append(queue)
    return CdrFacts(recordings=tuple(recordings), member_queues=queues, caller_queues=tuple(caller_queues))
