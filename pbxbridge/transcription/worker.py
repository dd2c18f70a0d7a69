"""A transcription worker: claims jobs one at a time and runs the model in this process."""

from __future__ import annotations

import asyncio
import logging
import os
import socket
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.recordings.audio import RecordingError, RecordingMissing, read_info
from pbxbridge.transcription.engines import (
    DEFAULT_CHANNEL_SPEAKERS,
    Engine,
    transcribe_recording,
)
from pbxbridge.transcription.queue import (
    DEFAULT_BACKOFF_S,
    DEFAULT_STALE_AFTER_S,
    ClaimedJob,
    Clock,
    claim,
    complete,
    fail,
    heartbeat,
    utcnow,
)

log = logging.getLogger("pbxbridge.transcription")


def default_worker_id() -> str:
    """host-pid: unique per running worker process."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(slots=True)
class WorkerSettings:
    """How one worker takes and runs jobs."""

    recordings_root: Path
    worker_id: str = field(default_factory=default_worker_id)
    max_attempts: int = 3
    stale_after_s: float = DEFAULT_STALE_AFTER_S
    heartbeat_s: float = 15.0
    backoff_base_s: float = DEFAULT_BACKOFF_S
    poll_s: float = 5.0
    channel_speakers: tuple[str, str] = DEFAULT_CHANNEL_SPEAKERS
    # The queue's time (due jobs, backoffs, heartbeats): the wall's, or a test's own.
    clock: Clock = utcnow


@dataclass(frozen=True, slots=True)
class JobOutcome:
    """What became of one claimed job."""

    job: ClaimedJob
    status: str
    error: str | None = None
    audio_s: float = 0.0


class EngineHolder:
    """Loads the engine on first use, so an idle worker starts fast and a busy one loads once."""

    def __init__(self, load: Callable[[], Engine]) -> None:
        self._load = load
        self._engine: Engine | None = None

    def get(self) -> Engine:
        """The engine, loading the model the first time."""
        if self._engine is None:
            self._engine = self._load()
        return self._engine


def _recording_file(job: ClaimedJob, root: Path) -> Path:
    if not job.recording_path:
        raise RecordingMissing(
            f"recording {job.recording_id} was not found under the recordings root when the call was written"
        )
    return root / job.recording_path


async def _beat(factory: async_sessionmaker[AsyncSession], job: ClaimedJob, every_s: float, clock: Clock) -> None:
    while True:
        await asyncio.sleep(every_s)
        if not await heartbeat(factory, job, clock=clock):
            log.warning("job %s was taken over by another worker", job.id)
            return


async def run_job(
    factory: async_sessionmaker[AsyncSession], engines: EngineHolder, job: ClaimedJob, settings: WorkerSettings
) -> JobOutcome:
    """Transcribe one claimed job and record the result or the reason it failed."""
    beat = asyncio.create_task(_beat(factory, job, settings.heartbeat_s, settings.clock))
    try:
        path = _recording_file(job, settings.recordings_root)
        info = read_info(path)
        engine = await asyncio.to_thread(engines.get)
        transcript = await asyncio.to_thread(transcribe_recording, engine, path, settings.channel_speakers)
    except RecordingError as exc:
        # A missing file may still arrive (the PBX's spool is synced later);
        # an empty, corrupt or 0-second one will not get better.
        status = await fail(
            factory, job, str(exc), max_attempts=settings.max_attempts,
            permanent=not isinstance(exc, RecordingMissing), backoff_base_s=settings.backoff_base_s,
            clock=settings.clock,
        )
        return JobOutcome(job, status, str(exc))
    except Exception as exc:  # noqa: BLE001 - one bad recording must not stop the queue
        log.exception("job %s (recording %s) failed", job.id, job.recording_id)
        reason = f"transcription failed: {type(exc).__name__}: {exc}"
        status = await fail(
            factory, job, reason, max_attempts=settings.max_attempts, backoff_base_s=settings.backoff_base_s,
            clock=settings.clock,
        )
        return JobOutcome(job, status, reason)
    finally:
        beat.cancel()
    stored = await complete(factory, job, transcript, clock=settings.clock)
    return JobOutcome(job, "done" if stored else "lost", None, info.duration_s)


async def run_worker(
    factory: async_sessionmaker[AsyncSession],
    engines: EngineHolder,
    settings: WorkerSettings,
    *,
    once: bool = False,
    on_outcome: Callable[[JobOutcome], None] | None = None,
    stop: asyncio.Event | None = None,
) -> list[JobOutcome]:
    """Take jobs until stopped; with once, until no job is due."""
    outcomes: list[JobOutcome] = []
    stop = stop or asyncio.Event()
    while not stop.is_set():
        job = await claim(
            factory, settings.worker_id, stale_after_s=settings.stale_after_s, max_attempts=settings.max_attempts,
            clock=settings.clock,
        )
        if job is None:
            if once:
                break
            try:
                await asyncio.wait_for(stop.wait(), settings.poll_s)
            except TimeoutError:
                pass
            continue
        log.info("claimed job %s (recording %s, attempt %s)", job.id, job.recording_id, job.attempts)
        outcome = await run_job(factory, engines, job, settings)
        log.info("job %s %s%s", job.id, outcome.status, f": {outcome.error}" if outcome.error else "")
        outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
    return outcomes
