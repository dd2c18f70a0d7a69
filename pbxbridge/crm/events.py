"""What happened to a call, as the outbox queues it: the event's name and the call as it stood then."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath
from typing import Any

from pbxbridge.calls.tables import Call, Recording

CALL_RINGING = "call.ringing"
CALL_ANSWERED = "call.answered"
CALL_FINISHED = "call.finished"
CALL_MISSED = "call.missed"
RECORDING_READY = "recording.ready"
TRANSCRIPT_READY = "transcript.ready"


@dataclass(frozen=True, slots=True)
class CallEvent:
    """One event of one call; ``key`` tells it from the call's other events of the same name."""

    name: str
    pbx: str
    linkedid: str
    call_id: int | None
    call: dict[str, Any]
    key: str
    extra: dict[str, Any] = field(default_factory=dict)


def _iso(at: datetime | None) -> str | None:
    return at.isoformat().replace("+00:00", "Z") if at is not None else None


def call_snapshot(row: Call) -> dict[str, Any]:
    """The journal's row as plain JSON: what every target is told about the call."""
    return {
        "pbx": row.pbx,
        "linkedid": row.linkedid,
        "direction": row.direction,
        "status": row.status,
        "client_number": row.client_number,
        "did": row.did,
        "dialed": row.dialed,
        "manager": row.manager,
        "final_manager": row.final_manager,
        "callee": row.callee,
        "rang": list(row.rang or []),
        "queues": list(row.queues or []),
        "transferred_to": list(row.transferred_to or []),
        "started_at": _iso(row.started_at),
        "answered_at": _iso(row.answered_at),
        "ended_at": _iso(row.ended_at),
        "wait_s": row.wait_s,
        "talk_s": row.talk_s,
        "originated": row.originated,
        "failure_reason": row.failure_reason,
        "voicemail": row.voicemail,
    }


def is_missed(call: dict[str, Any]) -> bool:
    """An inbound call nobody answered: the one a sales head wants called back."""
    return bool(call["direction"] == "inbound" and call["status"] != "answered")


def finished_events(row: Call, recordings: list[Recording]) -> list[CallEvent]:
    """What a written call brings: it finished (and was missed), and each of its recordings with sound."""
    call = call_snapshot(row)
    sounding = [r for r in recordings if r.status == "ok" and r.path is not None]
    # The conversation's recording first (a voicemail message only when there is none): what a CRM plays.
    main = sorted(sounding, key=lambda r: (r.kind == "voicemail", r.id))
    finished_extra = {"recording_id": main[0].id} if main else {}
    events = [CallEvent(CALL_FINISHED, row.pbx, row.linkedid, row.id, call, CALL_FINISHED, finished_extra)]
    if is_missed(call):
        events.append(CallEvent(CALL_MISSED, row.pbx, row.linkedid, row.id, call, CALL_MISSED))
    for recording in recordings:
        if recording.status != "ok" or recording.path is None:
            continue
        # Named by the PBX's file: the same file written again (a replay) is the same event.
        name = PurePosixPath(recording.pbx_path).name
        extra = {
            "recording_id": recording.id,
            "kind": recording.kind,
            "file_name": name,
            "path": recording.path,
            "format": recording.format,
            "duration_s": recording.duration_s,
            "size_bytes": recording.size_bytes,
        }
        events.append(CallEvent(RECORDING_READY, row.pbx, row.linkedid, row.id, call, f"{RECORDING_READY}:{name}", extra))
    return events


def transcript_event(row: Call, recording: Recording, segments: list[dict[str, Any]]) -> CallEvent:
    """A recording's transcript is stored: its phrases, each with its speaker and times from the recording's start."""
    extra = {
        "recording_id": recording.id,
        "file_name": PurePosixPath(recording.pbx_path).name,
        "segments": segments,
    }
    return CallEvent(
        TRANSCRIPT_READY, row.pbx, row.linkedid, row.id, call_snapshot(row), f"{TRANSCRIPT_READY}:{recording.id}", extra
    )
