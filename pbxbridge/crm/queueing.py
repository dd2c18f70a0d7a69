"""Putting call events in the outbox: from the call writer's transaction, and when a transcript is stored."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import inspect, select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.calls.tables import Call, Recording
from pbxbridge.crm import outbox
from pbxbridge.crm.events import CallEvent, finished_events, transcript_event
from pbxbridge.crm.tables import CrmDelivery
from pbxbridge.crm.targets import Target
from pbxbridge.db.chunks import chunks
from pbxbridge.transcription.tables import DONE, TranscriptionJob, TranscriptSegment


class CallQueue:
    """Queues each written call's events for every target, in the transaction that writes the call.

    Written in the same transaction, a call and its deliveries are both kept or
    both lost: a crash after the journal has a call cannot lose what the CRM is
    owed, and a batch the database refuses queues nothing.
    """

    def __init__(self, targets: Sequence[Target], clock: Callable[[], float]) -> None:
        self.targets = list(targets)
        self.clock = clock

    async def note_written(self, session: AsyncSession, written: Sequence[tuple[Call, Any, bool]]) -> None:
        """CallWriter hook (``after_write``)."""
        if not self.targets or not written:
            return
        await session.flush()
        rows = [row for row, _call, _new in written]
        recordings = await _recordings(session, rows)
        events: list[CallEvent] = []
        for row in rows:
            events += finished_events(row, recordings.get(row.id, []))
        await outbox.enqueue(session, self.targets, events, datetime.fromtimestamp(self.clock(), UTC))

    async def note_transcript(self, session: AsyncSession, recording_id: int) -> int:
        """A recording's transcript is stored: queue it for the targets that take transcripts. Rows added."""
        recording = await session.get(Recording, recording_id)
        if recording is None:
            return 0
        row = await session.get(Call, recording.call_id)
        if row is None:
            return 0
        found = await session.scalars(
            select(TranscriptSegment)
            .where(TranscriptSegment.recording_id == recording_id)
            .order_by(TranscriptSegment.start_s, TranscriptSegment.id)
        )
        segments = [
            {"speaker": s.speaker, "start_s": round(s.start_s, 2), "end_s": round(s.end_s, 2), "text": s.text}
            for s in found
        ]
        if not segments:
            return 0
        event = transcript_event(row, recording, segments)
        return await outbox.enqueue(session, self.targets, [event], datetime.fromtimestamp(self.clock(), UTC))


async def transcripts_since(session: AsyncSession, since: datetime) -> list[int]:
    """Recordings transcribed since ``since`` whose call the outbox carries: those a stopped daemon never heard of."""
    carried = select(CrmDelivery.id).where(CrmDelivery.call_id == Recording.call_id).exists()
    rows = await session.scalars(
        select(TranscriptionJob.recording_id)
        .join(Recording, Recording.id == TranscriptionJob.recording_id)
        .where(TranscriptionJob.status == DONE, TranscriptionJob.finished_at >= since, carried)
        .order_by(TranscriptionJob.finished_at)
    )
    return list(rows.all())


async def _recordings(session: AsyncSession, rows: list[Call]) -> dict[int, list[Recording]]:
    """Each call's recordings: those the writer's rows hold, else asked of the database in the transaction."""
    if all("recordings" not in inspect(row).unloaded for row in rows):
        return {row.id: list(row.recordings) for row in rows}
    found: dict[int, list[Recording]] = {}
    for some in chunks(sorted({row.id for row in rows})):
        for recording in await session.scalars(
            select(Recording).where(Recording.call_id.in_(some)).order_by(Recording.call_id, Recording.position)
        ):
            found.setdefault(recording.call_id, []).append(recording)
    return found
