"""Checklists in the database, and checking calls against them: one call as its transcript arrives,
every transcribed call after a checklist changed (a job, in chunks, its progress kept)."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.analytics.checklist import Checklist, parse_checklist
from pbxbridge.analytics.figures import conversation_figures
from pbxbridge.analytics.matching import CallWords, Spoken, check_call, spoken_words
from pbxbridge.analytics.tables import (
    DONE,
    FAILED,
    QUEUED,
    RUNNING,
    AnalysisJob,
    CallCheck,
    CallConversation,
    ChecklistRow,
)
from pbxbridge.calls.tables import Call, Recording
from pbxbridge.transcription.tables import DONE as TRANSCRIBED
from pbxbridge.transcription.tables import TranscriptionJob, TranscriptSegment

log = logging.getLogger(__name__)

# Calls read, judged and written per step of a re-check (one transaction each; progress after each).
CHUNK_CALLS = 500
Turn = Callable[[], AbstractAsyncContextManager[None]]


def utcnow() -> datetime:
    return datetime.now(UTC)


def _no_turn() -> AbstractAsyncContextManager[None]:
    return contextlib.nullcontext()


# -- checklists -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StoredChecklist:
    id: int
    version: int
    updated_at: datetime
    checklist: Checklist


async def set_checklist(session: AsyncSession, checklist: Checklist, now: datetime | None = None) -> tuple[StoredChecklist, bool]:
    """Store a checklist under its name (a new one, or a new version); whether anything changed."""
    now = now or utcnow()
    definition = checklist.as_json()
    row = await session.scalar(select(ChecklistRow).where(ChecklistRow.name == checklist.name))
    changed = True
    if row is None:
        row = ChecklistRow(name=checklist.name, definition=definition, version=1, updated_at=now)
        session.add(row)
    elif row.definition != definition:
        row.definition = definition
        row.version += 1
        row.updated_at = now
    else:
        changed = False
    await session.flush()
    return StoredChecklist(row.id, row.version, row.updated_at, checklist), changed


async def delete_checklist(session: AsyncSession, name: str) -> bool:
    """Remove a checklist and every call's verdicts against it; False if there is none of that name."""
    row = await session.scalar(select(ChecklistRow).where(ChecklistRow.name == name))
    if row is None:
        return False
    # Explicitly, not by the cascade alone: SQLite enforces foreign keys only when told to.
    await session.execute(delete(CallCheck).where(CallCheck.checklist_id == row.id))
    await session.delete(row)
    return True


async def stored_checklists(session: AsyncSession) -> list[StoredChecklist]:
    """Every checklist, by name."""
    rows = (await session.scalars(select(ChecklistRow).order_by(ChecklistRow.name))).all()
    return [StoredChecklist(r.id, r.version, r.updated_at, parse_checklist(r.definition)) for r in rows]


# -- jobs -------------------------------------------------------------------------


async def queue_recheck(session: AsyncSession, reason: str, now: datetime | None = None) -> int:
    """Ask for every transcribed call to be checked again; a job already waiting covers this too."""
    waiting = await session.scalar(select(AnalysisJob.id).where(AnalysisJob.status == QUEUED).limit(1))
    if waiting is not None:
        return waiting
    job = AnalysisJob(status=QUEUED, reason=reason[:300], total=0, done=0, created_at=now or utcnow())
    session.add(job)
    await session.flush()
    return job.id


async def requeue_interrupted(session: AsyncSession) -> int:
    """Jobs a stopped daemon left running are queued again (a re-check can start over: it replaces verdicts)."""
    result = await session.execute(update(AnalysisJob).where(AnalysisJob.status == RUNNING).values(status=QUEUED, done=0))
    return int(getattr(result, "rowcount", 0) or 0)


async def next_queued_job(session: AsyncSession) -> int | None:
    return await session.scalar(select(AnalysisJob.id).where(AnalysisJob.status == QUEUED).order_by(AnalysisJob.id).limit(1))


async def job_progress(session: AsyncSession, job_id: int) -> dict[str, Any] | None:
    job = await session.get(AnalysisJob, job_id)
    if job is None:
        return None
    return {
        "id": job.id, "status": job.status, "reason": job.reason, "total": job.total, "done": job.done,
        "created_at": job.created_at.isoformat(),
        "started_at": job.started_at.isoformat() if job.started_at else None,
        "finished_at": job.finished_at.isoformat() if job.finished_at else None,
        "error": job.error,
    }


# -- reading calls ------------------------------------------------------------------


@dataclass(slots=True)
class _CallFacts:
    direction: str
    queues: list[str]
    talk_s: float
    recordings: list[tuple[int, float | None]]  # (id, duration_s) by position
    segments: dict[int, list[dict[str, Any]]]  # by recording id


async def transcribed_call_ids(session: AsyncSession) -> list[int]:
    """Every call with at least one recording whose transcript is stored, in id order."""
    rows = await session.scalars(
        select(Recording.call_id)
        .join(TranscriptionJob, TranscriptionJob.recording_id == Recording.id)
        .where(TranscriptionJob.status == TRANSCRIBED, Recording.kind == "call")
        .distinct()
        .order_by(Recording.call_id)
    )
    return list(rows.all())


async def _read_calls(session: AsyncSession, call_ids: Sequence[int]) -> dict[int, _CallFacts]:
    facts: dict[int, _CallFacts] = {}
    for call_id, direction, queues, talk_s in (
        await session.execute(select(Call.id, Call.direction, Call.queues, Call.talk_s).where(Call.id.in_(call_ids)))
    ).all():
        facts[call_id] = _CallFacts(direction, list(queues or ()), float(talk_s or 0.0), [], {})
    for rec_id, call_id, duration in (
        await session.execute(
            select(Recording.id, Recording.call_id, Recording.duration_s)
            .join(TranscriptionJob, TranscriptionJob.recording_id == Recording.id)
            .where(Recording.call_id.in_(call_ids), Recording.kind == "call", TranscriptionJob.status == TRANSCRIBED)
            .order_by(Recording.call_id, Recording.position, Recording.id)
        )
    ).all():
        facts[call_id].recordings.append((rec_id, duration))
        facts[call_id].segments[rec_id] = []
    segs = await session.execute(
        select(
            TranscriptSegment.call_id, TranscriptSegment.recording_id, TranscriptSegment.start_s, TranscriptSegment.end_s,
            TranscriptSegment.speaker, TranscriptSegment.text, TranscriptSegment.words, TranscriptSegment.lemmas,
        )
        .where(TranscriptSegment.call_id.in_(call_ids))
        .order_by(TranscriptSegment.recording_id, TranscriptSegment.start_s, TranscriptSegment.id)
    )
    for call_id, rec_id, start, end, speaker, text, words, lemmas in segs.all():
        call = facts.get(call_id)
        if call is not None and rec_id in call.segments:
            call.segments[rec_id].append(
                {"start": start, "end": end, "speaker": speaker, "text": text, "words": words, "lemmas": lemmas}
            )
    return facts


def call_words(facts: _CallFacts) -> CallWords:
    """A call's words across its recordings, each placed relative to the answer and to the end.

    A recording runs to the call's end; one longer than the talk time began
    before the answer (FreePBX can record from the first ring), so the answer
    falls that far into it. Only the first recording holds the call's start and
    only the last its end.
    """
    words: list[Spoken] = []
    last = len(facts.recordings) - 1
    for n, (rec_id, duration) in enumerate(facts.recordings):
        segments = facts.segments.get(rec_id, [])
        end = duration if duration else max((float(s["end"]) for s in segments), default=0.0)
        answer = max(0.0, end - facts.talk_s) if facts.talk_s and end > facts.talk_s else 0.0
        words += spoken_words(
            segments, answer_s=answer if n == 0 else None, end_s=end if n == last else None, recording_id=rec_id
        )
    return CallWords(words)


def _figures_row(call_id: int, facts: _CallFacts) -> dict[str, Any] | None:
    # The call's main recording: the first with the two sides apart.
    for rec_id, duration in facts.recordings:
        figures = conversation_figures(facts.segments.get(rec_id, []), duration)
        if figures is not None:
            return {"call_id": call_id, **figures.as_json()}
    return None


# -- checking ---------------------------------------------------------------------


@dataclass(slots=True)
class CheckCounts:
    calls: int = 0
    checks: int = 0
    with_figures: int = 0


async def analyse_calls(
    factory: async_sessionmaker[AsyncSession],
    call_ids: Sequence[int],
    checklists: Sequence[StoredChecklist],
    *,
    turn: Turn = _no_turn,
    now: datetime | None = None,
    write_factory: async_sessionmaker[AsyncSession] | None = None,
) -> CheckCounts:
    """Judge these calls against every checklist that applies to each, and store the verdicts and figures.

    Whatever was stored for them before is replaced in the same transaction: a
    re-check never leaves a call half old, half new.
    """
    now = now or utcnow()
    counts = CheckCounts()
    if not call_ids:
        return counts
    async with factory() as session:
        facts = await _read_calls(session, call_ids)
    checks: list[dict[str, Any]] = []
    figures: list[dict[str, Any]] = []
    for call_id, call in facts.items():
        if not call.recordings:
            continue
        counts.calls += 1
        words: CallWords | None = None
        for stored in checklists:
            if not stored.checklist.applies.covers(call.direction, call.queues, call.talk_s):
                continue
            words = words or call_words(call)
            results = check_call(words, stored.checklist)
            checks.append({
                "call_id": call_id, "checklist_id": stored.id, "checklist_version": stored.version,
                "items_total": len(results), "items_passed": sum(r.passed for r in results),
                "stop_phrases": sum(1 for r in results if not r.must and not r.passed),
                "results": [r.as_json() for r in results], "checked_at": now,
            })
        row = _figures_row(call_id, call)
        if row is not None:
            figures.append(row)
    ids = list(facts)
    async with turn(), (write_factory or factory)() as session, session.begin():
        await session.execute(delete(CallCheck).where(CallCheck.call_id.in_(ids)))
        await session.execute(delete(CallConversation).where(CallConversation.call_id.in_(ids)))
        if checks:
            await session.execute(insert(CallCheck), checks)
        if figures:
            await session.execute(insert(CallConversation), figures)
    counts.checks = len(checks)
    counts.with_figures = len(figures)
    return counts


async def check_recording(
    factory: async_sessionmaker[AsyncSession], recording_id: int, *, turn: Turn = _no_turn,
    write_factory: async_sessionmaker[AsyncSession] | None = None,
) -> CheckCounts:
    """A recording's transcript is stored: check its call again (all its recordings)."""
    async with factory() as session:
        call_id = await session.scalar(select(Recording.call_id).where(Recording.id == recording_id))
        checklists = await stored_checklists(session)
    if call_id is None:
        return CheckCounts()
    return await analyse_calls(factory, [call_id], checklists, turn=turn, write_factory=write_factory)


Progress = Callable[[int, int], Awaitable[None] | None]


async def run_recheck(
    factory: async_sessionmaker[AsyncSession],
    job_id: int | None = None,
    *,
    turn: Turn = _no_turn,
    write_factory: async_sessionmaker[AsyncSession] | None = None,
    chunk: int = CHUNK_CALLS,
    progress: Progress | None = None,
) -> CheckCounts:
    """Check every transcribed call again, chunk by chunk, keeping the job's progress (done of total).

    A failure marks the job failed with its error; the verdicts written so far stay.
    """
    write = write_factory or factory
    async with factory() as session:
        call_ids = await transcribed_call_ids(session)
        checklists = await stored_checklists(session)
    if job_id is not None:
        async with turn(), write() as session, session.begin():
            await session.execute(
                update(AnalysisJob).where(AnalysisJob.id == job_id)
                .values(status=RUNNING, started_at=utcnow(), total=len(call_ids), done=0, error=None)
            )
    total = CheckCounts()
    try:
        for start in range(0, len(call_ids), chunk):
            part = call_ids[start: start + chunk]
            counts = await analyse_calls(factory, part, checklists, turn=turn, write_factory=write)
            total.calls += counts.calls
            total.checks += counts.checks
            total.with_figures += counts.with_figures
            done = start + len(part)
            if job_id is not None:
                async with turn(), write() as session, session.begin():
                    await session.execute(update(AnalysisJob).where(AnalysisJob.id == job_id).values(done=done))
            if progress is not None:
                result = progress(done, len(call_ids))
                if result is not None:
                    await result
    except Exception as exc:
        if job_id is not None:
            async with turn(), write() as session, session.begin():
                await session.execute(
                    update(AnalysisJob).where(AnalysisJob.id == job_id)
                    .values(status=FAILED, finished_at=utcnow(), error=f"{type(exc).__name__}: {exc}"[:2000])
                )
        raise
    if job_id is not None:
        async with turn(), write() as session, session.begin():
            await session.execute(
                update(AnalysisJob).where(AnalysisJob.id == job_id).values(status=DONE, finished_at=utcnow())
            )
    return total


# -- reading verdicts ---------------------------------------------------------------


async def call_checks(session: AsyncSession, linkedid: str, pbx: str | None = None) -> dict[str, Any] | None:
    """A call's verdicts per checklist and its conversation figures; None if there is no such call."""
    query = select(Call.id).where(Call.linkedid == linkedid)
    if pbx:
        query = query.where(Call.pbx == pbx)
    call_ids = list((await session.scalars(query)).all())
    if not call_ids:
        return None
    rows = (
        await session.execute(
            select(CallCheck, ChecklistRow.name)
            .join(ChecklistRow, ChecklistRow.id == CallCheck.checklist_id)
            .where(CallCheck.call_id.in_(call_ids))
            .order_by(ChecklistRow.name)
        )
    ).all()
    conversation = await session.get(CallConversation, call_ids[0])
    checklists = [
        {
            "checklist": name, "version": check.checklist_version, "items_total": check.items_total,
            "items_passed": check.items_passed, "stop_phrases": check.stop_phrases,
            "checked_at": check.checked_at.isoformat(), "items": check.results,
        }
        for check, name in rows
    ]
    figures = None
    if conversation is not None:
        figures = {c.key: getattr(conversation, c.key) for c in CallConversation.__table__.columns if c.key != "call_id"}
    return {"linkedid": linkedid, "checklists": checklists, "conversation": figures}
