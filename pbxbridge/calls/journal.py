"""The call journal as the outside world sees it: one JSON object per call."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.calls.tables import Call
from pbxbridge.recordings.kinds import RecordingKind
from pbxbridge.recordings.locate import RecordingStatus


def iso_utc(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with a 'Z', or None."""
    if value is None:
        return None
    return value.isoformat().replace("+00:00", "Z")


def journal_entry(call: Call) -> dict[str, Any]:
    """One call as a journal object (public field names)."""
    with_sound = [
        r.path for r in call.recordings if r.status == RecordingStatus.OK and r.path and r.kind == RecordingKind.CALL
    ]
    messages = [
        r.path for r in call.recordings
        if r.status == RecordingStatus.OK and r.path and r.kind == RecordingKind.VOICEMAIL
    ]
    return {
        "pbx": call.pbx,
        "linkedid": call.linkedid,
        "direction": call.direction,
        "status": call.status,
        "client_number": call.client_number,
        "client_id": call.client_id,
        "did": call.did,
        "dialed": call.dialed,
        "manager": call.manager,
        "final_manager": call.final_manager,
        "callee": call.callee,
        "rang": list(call.rang or []),
        "queues": list(call.queues or []),
        "transferred_to": list(call.transferred_to or []),
        "started_at": iso_utc(call.started_at),
        "answered_at": iso_utc(call.answered_at),
        "ended_at": iso_utc(call.ended_at),
        "wait_s": call.wait_s,
        "talk_s": call.talk_s,
        "originated": call.originated,
        "failure_reason": call.failure_reason,
        "recording": with_sound[0] if with_sound else None,
        "recordings": with_sound,
        "voicemail": call.voicemail,
        # The message the caller left, relative to the voicemail root, when it was found.
        "voicemail_message": messages[0] if messages else None,
    }


async def fetch_journal(
    session: AsyncSession,
    *,
    pbx: str | None = None,
    client_id: int | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    limit: int | None = None,
) -> list[dict[str, Any]]:
    """Journal entries, oldest first, optionally for one PBX, one client or a time window."""
    query = select(Call).order_by(Call.started_at, Call.id)
    if pbx is not None:
        query = query.where(Call.pbx == pbx)
    if client_id is not None:
        query = query.where(Call.client_id == client_id)
    if since is not None:
        query = query.where(Call.started_at >= since)
    if until is not None:
        query = query.where(Call.started_at < until)
    if limit is not None:
        query = query.limit(limit)
    calls = (await session.execute(query)).scalars().all()
    return [journal_entry(call) for call in calls]
