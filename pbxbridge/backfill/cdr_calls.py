"""Calls from CDR alone, for a PBX that keeps no CEL: a call's CDR rows grouped by linkedid.

CDR is one row per channel and bridge segment, written when the segment ends, with its
start, answer (``duration - billsec``), last application and disposition. What it cannot
say, and so what a call rebuilt from it lacks or guesses:

- who hung up: an unanswered inbound call whose caller was still in Queue/Dial when it ended
  is taken as abandoned, one that went on to other dialplan (Hangup, VoiceMail, Playback) as
  missed;
- rings shorter than a segment, members that refused (busy) and ring order within a second;
- transfers (a blind transfer starts a new segment on the same channel, which is not told
  apart from a second dial), consultations, pickups;
- click-to-call (an Originate looks like a manager's own call), the reason an outbound call
  failed, the voicemail message file;
- times to the second.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from zoneinfo import ZoneInfo

from pbxbridge.backfill.rebuild import recording_path
from pbxbridge.backfill.rows import CdrRow
from pbxbridge.calls.channels import parse_channel
from pbxbridge.calls.model import CallStatus, ClosedBy, Direction, FailureReason, FinishedCall
from pbxbridge.calls.tracker import TrackerSettings

_WAITING_APPS = frozenset({"Queue", "Dial"})
_OUTBOUND_STATUS = {"BUSY": CallStatus.BUSY, "NO ANSWER": CallStatus.NO_ANSWER, "FAILED": CallStatus.FAILED}
_FAILURE = {CallStatus.BUSY: FailureReason.CLIENT_BUSY, CallStatus.NO_ANSWER: FailureReason.CLIENT_NO_ANSWER}


class CdrCallBuilder:
    """One call of CDR rows at a time."""

    def __init__(self, settings: TrackerSettings, zone: ZoneInfo) -> None:
        self.settings = settings
        self.zone = zone
        self._ext = re.compile(settings.extension_pattern)
        self._inbound = frozenset(settings.inbound_contexts)
        self._internal = frozenset(settings.internal_contexts)

    def handset(self, channel: str) -> str | None:
        """The extension behind a channel name (``PJSIP/201-…``, ``Local/201@from-queue-…;1``)."""
        if not channel:
            return None
        name = parse_channel(channel)
        if name.is_local and name.local_context in self._inbound:
            return None
        return name.resource if self._ext.match(name.resource) else None

    def build(self, rows: Sequence[CdrRow]) -> FinishedCall | None:
        """The call these rows (all of one linkedid) stand for; None without the caller's own row."""
        rows = sorted(rows, key=lambda r: (r.at, r.sequence))
        linkedid = rows[0].linkedid
        own = [r for r in rows if r.uniqueid == linkedid]
        if not own:
            return None
        first = own[0]
        started = min(r.at for r in rows)
        # calldate and duration are both cut to the second: the end lies in the two seconds after.
        ended = max(r.at + r.duration for r in rows) + 1.0
        recordings = tuple(dict.fromkeys(recording_path(r.recordingfile, r.at, self.zone) for r in rows if r.recordingfile))
        queues = tuple(dict.fromkeys(r.lastdata.split(",", 1)[0] for r in own if r.lastapp == "Queue" and r.lastdata))
        answered = [r for r in own if r.disposition == "ANSWERED" and r.dstchannel]
        # A call begun by no handset came in (dcontext shows where the channel ended up: after a
        # transfer, from-internal).
        if first.dcontext in self._inbound or self.handset(first.channel) is None:
            return self._inbound_call(linkedid, rows, own, answered, started, ended, queues, recordings)
        caller = self.handset(first.channel) or (first.cnum or first.src if self._ext.match(first.cnum or first.src) else None)
        dialled = [r for r in own if r.dstchannel]
        dest_is_handset = bool(dialled) and all(self.handset(r.dstchannel) for r in dialled)
        if dest_is_handset or (not dialled and self._ext.match(first.dst)):
            return self._internal_call(linkedid, caller, rows, own, answered, started, ended, recordings)
        talked = [r for r in answered if not self.handset(r.dstchannel)]
        if talked:
            status = CallStatus.ANSWERED
        else:
            last = dialled[-1].disposition if dialled else "FAILED"
            status = _OUTBOUND_STATUS.get(last, CallStatus.NO_ANSWER)
        return FinishedCall(
            pbx=self.settings.pbx, linkedid=linkedid, direction=Direction.OUTBOUND, status=status,
            started_at=started, ended_at=ended,
            answered_at=_answer_time(talked[0], rows) if talked else None,
            client_number=first.dst or None, dialed=first.dst or None, manager=caller, final_manager=caller,
            recording_files=recordings, closed_by=ClosedBy.HANGUP,
            failure_reason=None if talked else _FAILURE.get(status, FailureReason.NOT_PLACED),
        )

    def _inbound_call(
        self, linkedid: str, rows: list[CdrRow], own: list[CdrRow], answered: list[CdrRow], started: float, ended: float,
        queues: tuple[str, ...], recordings: tuple[str, ...],
    ) -> FinishedCall:
        first = own[0]
        # A member that was busy did not ring.
        rang = tuple(dict.fromkeys(h for r in own if r.disposition != "BUSY" and (h := self.handset(r.dstchannel))))
        talked = [(r, h) for r in answered if (h := self.handset(r.dstchannel))]
        voicemail = any(r.lastapp == "VoiceMail" for r in own)
        if talked:
            status = CallStatus.ANSWERED
        elif voicemail or own[-1].lastapp not in _WAITING_APPS:
            status = CallStatus.MISSED
        else:
            status = CallStatus.ABANDONED
        manager = talked[0][1] if talked else None
        return FinishedCall(
            pbx=self.settings.pbx, linkedid=linkedid, direction=Direction.INBOUND, status=status,
            started_at=started, ended_at=ended, answered_at=_answer_time(talked[0][0], rows) if talked else None,
            client_number=first.cnum or first.src or None,
            did=first.did or next((r.dst for r in own if r.dcontext in self._inbound), None),
            manager=manager, final_manager=talked[-1][1] if talked else None, rang=rang, queues=queues,
            recording_files=recordings, closed_by=ClosedBy.HANGUP, voicemail=voicemail,
        )

    def _internal_call(
        self, linkedid: str, caller: str | None, rows: list[CdrRow], own: list[CdrRow], answered: list[CdrRow], started: float,
        ended: float, recordings: tuple[str, ...],
    ) -> FinishedCall:
        callee = next((h for r in own if (h := self.handset(r.dstchannel))), own[0].dst or None)
        if answered:
            status = CallStatus.ANSWERED
        else:
            dialled = [r for r in own if r.dstchannel]
            status = _OUTBOUND_STATUS.get(dialled[-1].disposition, CallStatus.NO_ANSWER) if dialled else CallStatus.FAILED
        return FinishedCall(
            pbx=self.settings.pbx, linkedid=linkedid, direction=Direction.INTERNAL, status=status,
            started_at=started, ended_at=ended, answered_at=_answer_time(answered[0], rows) if answered else None,
            dialed=own[0].dst or None, manager=caller, final_manager=caller, callee=callee,
            rang=(callee,) if callee else (), recording_files=recordings, closed_by=ClosedBy.HANGUP,
        )


def _answer_time(row: CdrRow, rows: Sequence[CdrRow]) -> float:
    """When the far end of an answered segment answered: its own CDR's answer (or its Local pipe's far end's)."""
    at = row.at + max(0, row.duration - row.billsec)
    far = {row.dstchannel, row.dstchannel[:-1] + "2" if row.dstchannel.endswith(";1") else row.dstchannel}
    for other in rows:
        if other.channel in far and other.at >= row.at:
            return max(at, other.at + max(0, other.duration - other.billsec))
    return at


def cdr_calls(rows: Iterable[CdrRow], settings: TrackerSettings, zone: ZoneInfo) -> list[FinishedCall]:
    """Calls of CDR rows (any order), in the order they began."""
    by_call: dict[str, list[CdrRow]] = {}
    for row in rows:
        by_call.setdefault(row.linkedid, []).append(row)
    builder = CdrCallBuilder(settings, zone)
    calls = [c for group in by_call.values() if (c := builder.build(group)) is not None]
    return sorted(calls, key=lambda c: c.started_at)
