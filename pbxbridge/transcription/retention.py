"""Retention of transcripts: the segments of old calls are deleted, the call stays on the card."""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.tables import Call
from pbxbridge.db.engine import WRITE
from pbxbridge.db.upsert import rowcount
from pbxbridge.service.retention import Audit, RetentionReport
from pbxbridge.transcription.tables import TranscriptSegment

log = logging.getLogger(__name__)


async def expire_transcripts(
    sessions: async_sessionmaker[AsyncSession], before: datetime, report: RetentionReport, audit: Audit
) -> None:
    """Delete the transcript segments of calls started before ``before``, a transaction per call."""
    async with sessions() as session:
        per_call = (
            await session.execute(
                select(Call.id, Call.pbx, Call.linkedid, func.count(TranscriptSegment.id))
                .join(TranscriptSegment, TranscriptSegment.call_id == Call.id)
                .where(Call.started_at < before)
                .group_by(Call.id, Call.pbx, Call.linkedid)
                .order_by(Call.id)
            )
        ).all()
    for call_id, pbx, linkedid, count in per_call:
        where = {"pbx": pbx, "linkedid": linkedid}
        if report.dry_run:
            log.info("retention: would delete %d transcript segment(s) of call %s", count, linkedid, extra=where)
        else:
            async with sessions() as session:
                async with session.begin():
                    await session.connection(execution_options=WRITE)
                    result = await session.execute(
                        delete(TranscriptSegment).where(TranscriptSegment.call_id == call_id)
                    )
                    count = rowcount(result)
                    await audit(session, "retention.transcript_deleted", f"call:{call_id}", {"segments": count})
            log.info("retention: deleted %d transcript segment(s) of call %s", count, linkedid, extra=where)
        report.transcript_segments_deleted += int(count)
        report.transcript_calls += 1
