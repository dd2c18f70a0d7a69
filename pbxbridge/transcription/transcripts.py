"""Reading a call's stored transcript back."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.tables import Call, Recording
from pbxbridge.transcription.tables import TranscriptSegment


async def call_transcript(
    session_factory: async_sessionmaker[AsyncSession], linkedid: str, pbx: str | None = None
) -> list[dict[str, Any]] | None:
    """A call's segments (recording, start, end, speaker, text, words) in order; None if no such call."""
    async with session_factory() as session:
        calls = select(Call.id).where(Call.linkedid == linkedid)
        if pbx:
            calls = calls.where(Call.pbx == pbx)
        call_ids = (await session.scalars(calls)).all()
        if not call_ids:
            return None
        rows = await session.execute(
            select(TranscriptSegment, Recording.path)
            .join(Recording, Recording.id == TranscriptSegment.recording_id)
            .where(TranscriptSegment.call_id.in_(call_ids))
            .order_by(Recording.position, TranscriptSegment.start_s, TranscriptSegment.id)
        )
        return [
            {
                "recording": path,
                "start": round(seg.start_s, 2),
                "end": round(seg.end_s, 2),
                "speaker": seg.speaker,
                "text": seg.text,
                "words": seg.words,
            }
            for seg, path in rows.all()
        ]
