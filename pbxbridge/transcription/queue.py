"""The durable transcription queue: enqueue, claim, heartbeat, finish or fail a job."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, inspect, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.tables import Call, Recording
from pbxbridge.db.base import table_of
from pbxbridge.db.chunks import chunks
from pbxbridge.db.engine import WRITE
from pbxbridge.db.upsert import dialect_insert, rowcount
from pbxbridge.recordings.kinds import RecordingKind
from pbxbridge.transcription.lemmas import lemmatise
from pbxbridge.transcription.tables import (
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    TranscriptionJob,
    TranscriptSegment,
)
from pbxbridge.transcription.transcript import Transcript

# A running job whose worker has not beaten its heart for this long is taken
# to belong to a dead worker (killed, out of memory, host rebooted).
DEFAULT_STALE_AFTER_S = 120.0
DEFAULT_BACKOFF_S = 60.0
MAX_BACKOFF_S = 3600.0


# Conversations are transcribed; voicemail messages live in the PBX's spool, which
# the transcription workers do not read.
CALL_KIND = str(RecordingKind.CALL)


def _transcribable(recording: Recording) -> bool:
    return recording.status == "ok" and recording.kind == CALL_KIND


def utcnow() -> datetime:
    """Now, as an aware UTC datetime."""
    return datetime.now(UTC)


# Where the queue reads the time: every due time, lock and heartbeat is
# compared with it, so that a test can move it rather than wait for it.
Clock = Callable[[], datetime]


@dataclass(frozen=True, slots=True)
class ClaimedJob:
    """A job a worker holds, with what it needs to find the recording."""

    id: int
    recording_id: int
    call_id: int
    attempts: int
    recording_path: str | None
    recording_status: str
    worker_id: str


async def enqueue(
    session: AsyncSession, recording_ids: list[int], *, requeue: bool = False, clock: Clock = utcnow
) -> int:
    """Queue recordings for transcription (once each); requeue resets done/failed ones."""
    if not recording_ids:
        return 0
    now = clock()
    rows = [
        {"recording_id": rid, "status": QUEUED, "attempts": 0, "next_attempt_at": now, "created_at": now}
        for rid in recording_ids
    ]
    stmt = dialect_insert(session, table_of(TranscriptionJob)).values(rows)
    stmt = stmt.on_conflict_do_nothing(index_elements=["recording_id"])
    result = await session.execute(stmt)
    added = rowcount(result)
    if requeue:
        await session.execute(
            update(TranscriptionJob)
            .where(TranscriptionJob.recording_id.in_(recording_ids), TranscriptionJob.status != RUNNING)
            .values(status=QUEUED, attempts=0, next_attempt_at=now, last_error=None,
                    locked_by=None, locked_at=None, heartbeat_at=None, finished_at=None)
        )
    return added


async def enqueue_written(session: AsyncSession, written: Sequence[tuple[Call, FinishedCall | None, bool]]) -> None:
    """CallWriter hook: queue every recording with sound of the calls just written (a batch: one query)."""
    # A call with no MixMonitor file has no recording rows: nothing to ask.
    if all(call is not None and not call.recording_files for _row, call, _new in written):
        return
    await session.flush()
    rows = [row for row, _call, _new in written]
    if all("recordings" not in inspect(row).unloaded for row in rows):
        # The writer's own rows hold their recordings, ids and all once flushed: nothing to ask.
        await enqueue(session, sorted(r.id for row in rows for r in row.recordings if _transcribable(r)))
        return
    # Rows without their recordings loaded: ask the database inside the transaction.
    call_ids = sorted({row.id for row in rows})
    ids: list[int] = []
    for chunk in chunks(call_ids):
        ids += (
            await session.scalars(
                select(Recording.id)
                .where(Recording.call_id.in_(chunk), Recording.status == "ok", Recording.kind == CALL_KIND)
                .order_by(Recording.id)
            )
        ).all()
    await enqueue(session, ids)


async def enqueue_all(session: AsyncSession) -> int:
    """Queue every recording with sound that has no job yet (back-fill)."""
    ids = (
        await session.scalars(
            select(Recording.id)
            .outerjoin(TranscriptionJob, TranscriptionJob.recording_id == Recording.id)
            .where(Recording.status == "ok", Recording.kind == CALL_KIND, TranscriptionJob.id.is_(None))
            .order_by(Recording.id)
        )
    ).all()
    return await enqueue(session, list(ids))


def _claimable(now: datetime, stale_after_s: float) -> Any:
    stale = now - timedelta(seconds=stale_after_s)
    return or_(
        and_(TranscriptionJob.status == QUEUED, TranscriptionJob.next_attempt_at <= now),
        and_(TranscriptionJob.status == RUNNING, TranscriptionJob.heartbeat_at < stale),
    )


async def _fail_exhausted_orphans(session: AsyncSession, now: datetime, stale_after_s: float, max_attempts: int) -> None:
    # A recording that kills its worker every time (a decoder crash, memory)
    # must not take the queue down forever.
    stale = now - timedelta(seconds=stale_after_s)
    await session.execute(
        update(TranscriptionJob)
        .where(
            TranscriptionJob.status == RUNNING,
            TranscriptionJob.heartbeat_at < stale,
            TranscriptionJob.attempts >= max_attempts,
        )
        .values(
            status=FAILED,
            finished_at=now,
            locked_by=None,
            last_error=f"worker stopped while transcribing, {max_attempts} times",
        )
    )


async def claim(
    factory: async_sessionmaker[AsyncSession],
    worker_id: str,
    *,
    stale_after_s: float = DEFAULT_STALE_AFTER_S,
    max_attempts: int = 3,
    clock: Clock = utcnow,
) -> ClaimedJob | None:
    """Take the next due job (or one a dead worker left), or None when there is none."""
    async with factory() as session, session.begin():
        # On SQLite take the write lock before reading, so that two claimers
        # queue up rather than both picking the same row.
        await session.connection(execution_options=WRITE)
        now = clock()
        await _fail_exhausted_orphans(session, now, stale_after_s, max_attempts)
        pick = (
            select(TranscriptionJob.id)
            .where(_claimable(now, stale_after_s))
            .order_by(TranscriptionJob.next_attempt_at, TranscriptionJob.id)
            .limit(1)
        )
        if session.get_bind().dialect.name == "postgresql":
            # Concurrent workers each skip rows another holds instead of waiting on them.
            pick = pick.with_for_update(skip_locked=True)
        job_id = await session.scalar(pick)
        if job_id is None:
            return None
        # The WHERE repeats the condition: on SQLite (no row locks) a second
        # process that picked the same row updates nothing and tries again later.
        result = await session.execute(
            update(TranscriptionJob)
            .where(TranscriptionJob.id == job_id, _claimable(now, stale_after_s))
            .values(
                status=RUNNING,
                attempts=TranscriptionJob.attempts + 1,
                locked_by=worker_id,
                locked_at=now,
                heartbeat_at=now,
            )
            .returning(TranscriptionJob.recording_id, TranscriptionJob.attempts)
        )
        row = result.first()
        if row is None:
            return None
        recording = (
            await session.execute(
                select(Recording.call_id, Recording.path, Recording.status).where(Recording.id == row.recording_id)
            )
        ).one()
        return ClaimedJob(
            id=job_id,
            recording_id=row.recording_id,
            call_id=recording.call_id,
            attempts=row.attempts,
            recording_path=recording.path,
            recording_status=recording.status,
            worker_id=worker_id,
        )


def _held_by(job: ClaimedJob) -> Any:
    return and_(
        TranscriptionJob.id == job.id,
        TranscriptionJob.status == RUNNING,
        TranscriptionJob.locked_by == job.worker_id,
    )


async def heartbeat(factory: async_sessionmaker[AsyncSession], job: ClaimedJob, *, clock: Clock = utcnow) -> bool:
    """Tell the queue the worker is alive; False if the job was taken from it."""
    async with factory() as session, session.begin():
        result = await session.execute(
            update(TranscriptionJob).where(_held_by(job)).values(heartbeat_at=clock())
        )
        return bool(rowcount(result))


def segment_rows(job: ClaimedJob, transcript: Transcript) -> list[dict[str, Any]]:
    """Rows for transcript_segments, with lemmatised text for search."""
    return [
        {
            "recording_id": job.recording_id,
            "call_id": job.call_id,
            "start_s": seg.start,
            "end_s": seg.end,
            "speaker": seg.speaker,
            "text": seg.text,
            "words": [{"start": w.start, "end": w.end, "word": w.word} for w in seg.words],
            "lemmas": lemmatise(seg.text),
        }
        for seg in transcript.segments
        if seg.text
    ]


async def complete(
    factory: async_sessionmaker[AsyncSession], job: ClaimedJob, transcript: Transcript, *, clock: Clock = utcnow
) -> bool:
    """Store the transcript and mark the job done; False if another worker owns it now."""
    async with factory() as session, session.begin():
        now = clock()
        result = await session.execute(
            update(TranscriptionJob)
            .where(_held_by(job))
            .values(status=DONE, finished_at=now, heartbeat_at=now, last_error=None)
        )
        if not rowcount(result):
            # Declared dead and taken over meanwhile: the new owner writes.
            return False
        await session.execute(
            table_of(TranscriptSegment).delete().where(TranscriptSegment.recording_id == job.recording_id)
        )
        rows = segment_rows(job, transcript)
        if rows:
            await session.execute(table_of(TranscriptSegment).insert(), rows)
        return True


def backoff_s(attempts: int, base_s: float = DEFAULT_BACKOFF_S) -> float:
    """Delay before the next try: base, 2×base, 4×base… capped at an hour."""
    return min(MAX_BACKOFF_S, base_s * (2 ** max(0, attempts - 1)))


async def fail(
    factory: async_sessionmaker[AsyncSession],
    job: ClaimedJob,
    reason: str,
    *,
    max_attempts: int,
    permanent: bool = False,
    backoff_base_s: float = DEFAULT_BACKOFF_S,
    clock: Clock = utcnow,
) -> str:
    """Record a failed try: back to the queue after a backoff, or failed for good; returns the status."""
    final = permanent or job.attempts >= max_attempts
    now = clock()
    values: dict[str, Any] = {"last_error": reason[:2000], "locked_by": None, "heartbeat_at": now}
    if final:
        values.update(status=FAILED, finished_at=now)
    else:
        values.update(status=QUEUED, next_attempt_at=now + timedelta(seconds=backoff_s(job.attempts, backoff_base_s)))
    async with factory() as session, session.begin():
        await session.execute(update(TranscriptionJob).where(_held_by(job)).values(**values))
    return values["status"]
