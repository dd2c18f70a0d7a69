"""The transcription queue on SQLite and PostgreSQL: jobs from written calls, failures, retries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.replay import replay_trace, tracker_settings
from pbxbridge.calls.store import CallWriter
from pbxbridge.calls.tables import Call, Recording
from pbxbridge.config import PbxConfig
from pbxbridge.transcription.queue import (
    DEFAULT_STALE_AFTER_S,
    backoff_s,
    claim,
    enqueue,
)
from pbxbridge.transcription.tables import TranscriptionJob, TranscriptSegment
from pbxbridge.transcription.worker import EngineHolder, WorkerSettings, run_worker
from tests.fixtures_transcription import (
    CachedEngine,
    recordings_config,
    speech_recordings,
    stt,  # noqa: F401, F811 - fixture
    write_scenarios,
)


class FrozenClock:
    """The queue's time, moved only by the test: due times and stale workers do not
    depend on how long the machine takes between two steps."""

    def __init__(self, start: datetime) -> None:
        self.now = start

    def __call__(self) -> datetime:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += timedelta(seconds=seconds)


async def _jobs(factory: async_sessionmaker[AsyncSession]) -> dict[str, TranscriptionJob]:
    async with factory() as session:
        rows = await session.execute(
            select(Recording.path, TranscriptionJob).join(TranscriptionJob, TranscriptionJob.recording_id == Recording.id)
        )
        return {path or "": job for path, job in rows.all()}


async def test_written_calls_queue_their_recordings_with_sound(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    root = shared_dir / "recordings"
    # 01: answered, recorded; 03: abandoned, MixMonitor left a header-only file.
    await write_scenarios(sessions, root, ["01-inbound-answered", "03-inbound-abandoned"])
    jobs = await _jobs(sessions)
    assert list(jobs) == [speech_recordings()[0].path.relative_to(root).as_posix()]
    job = next(iter(jobs.values()))
    assert (job.status, job.attempts, job.locked_by) == ("queued", 0, None)
    # The same call written again (a replay, a reconnect) is not queued twice.
    await write_scenarios(sessions, root, ["01-inbound-answered"])
    assert len(await _jobs(sessions)) == 1


async def _broken_call(factory: async_sessionmaker[AsyncSession], linkedid: str, path: str) -> int:
    now = datetime.now(UTC)
    async with factory() as session, session.begin():
        call = Call(
            pbx="main", linkedid=linkedid, direction="inbound", status="answered", started_at=now,
            answered_at=now, ended_at=now, wait_s=1.0, talk_s=20.0, closed_by="hangup",
            rang=[], queues=[], transferred_to=[], originated=False,
        )
        session.add(call)
        await session.flush()
        # The file had sound when the call was written; it broke or vanished later.
        recording = Recording(call_id=call.id, position=0, pbx_path=f"/var/spool/asterisk/monitor/{path}",
                              path=path, status="ok", format="wav")
        session.add(recording)
        await session.flush()
        return recording.id


async def test_broken_recordings_fail_with_a_reason_and_the_queue_goes_on(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path, tmp_path: Path, stt: CachedEngine
) -> None:
    root = tmp_path / "recordings"
    day = root / "2026" / "11" / "26"
    day.mkdir(parents=True)
    (day / "corrupt.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEjunk" + b"\x07" * 4000)
    (day / "empty.wav").touch()
    header_only = next(p for p in (shared_dir / "recordings").rglob("*.wav") if p.stat().st_size == 44)
    shutil.copy(header_only, day / "zero.wav")
    broken = {}
    for name in ("corrupt", "empty", "zero", "gone"):
        broken[name] = await _broken_call(sessions, f"broken-{name}", f"2026/11/26/{name}.wav")
    async with sessions() as session, session.begin():
        await enqueue(session, list(broken.values()))
    # A good recording queued behind the broken ones, as the daemon queues it.
    good = speech_recordings()[0].path
    shutil.copy(good, day / good.name)
    await write_scenarios(sessions, root, ["01-inbound-answered"])

    # A second after the last job was queued, and standing still: the missing file's
    # retry (no backoff) falls due after the good job, however fast the failures go.
    queued_last = max(job.next_attempt_at for job in (await _jobs(sessions)).values())
    clock = FrozenClock(queued_last + timedelta(seconds=1))
    settings = WorkerSettings(recordings_root=root, worker_id="w1", max_attempts=2, backoff_base_s=0.0, clock=clock)
    outcomes = await run_worker(sessions, EngineHolder(lambda: stt), settings, once=True)

    jobs = await _jobs(sessions)
    reasons = {name: jobs[f"2026/11/26/{name}.wav"] for name in broken}
    assert {name: job.status for name, job in reasons.items()} == dict.fromkeys(broken, "failed")
    assert "corrupt" in reasons["corrupt"].last_error
    assert "empty (0 bytes)" in reasons["empty"].last_error
    assert "0 seconds" in reasons["zero"].last_error
    assert "not found" in reasons["gone"].last_error
    # A bad file will not mend: failed at once. A missing one may still be
    # synced from the PBX: retried (no backoff here) until max_attempts.
    assert [reasons[n].attempts for n in ("corrupt", "empty", "zero", "gone")] == [1, 1, 1, 2]
    assert all(j.finished_at is not None for j in reasons.values())

    done = jobs[f"2026/11/26/{good.name}"]
    assert (done.status, done.attempts, done.last_error) == ("done", 1, None)
    # Queue order: each broken file failed in turn, the good one was then
    # transcribed, and the missing file's retry came after it.
    ids = {name: reasons[name].id for name in broken}
    assert [o.job.id for o in outcomes] == [
        ids["corrupt"], ids["empty"], ids["zero"], ids["gone"], done.id, ids["gone"]
    ]
    async with sessions() as session:
        of_job = select(TranscriptSegment.text).where(TranscriptSegment.recording_id == done.recording_id)
        texts = (await session.scalars(of_job)).all()
    assert "операторы" in " ".join(texts).lower()


async def test_failed_try_waits_with_growing_backoff(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path, stt: CachedEngine
) -> None:
    rid = await _broken_call(sessions, "later", "2026/11/26/not-synced-yet.wav")
    clock = FrozenClock(datetime(2026, 11, 26, 20, 4, 9, 123456, tzinfo=UTC))
    async with sessions() as session, session.begin():
        await enqueue(session, [rid], clock=clock)
    settings = WorkerSettings(
        recordings_root=tmp_path, worker_id="w1", max_attempts=3, backoff_base_s=60.0, clock=clock
    )
    outcomes = await run_worker(sessions, EngineHolder(lambda: stt), settings, once=True)
    assert [o.status for o in outcomes] == ["queued"]
    job = next(iter((await _jobs(sessions)).values()))
    assert (job.status, job.attempts, job.locked_by) == ("queued", 1, None)
    # The first backoff is the base, counted from the failed try.
    assert job.next_attempt_at == clock.now + timedelta(seconds=60)
    # Not due yet: nobody may take it, a second before its time.
    clock.advance(59)
    assert await claim(sessions, "w2", clock=clock) is None
    # Due: the next worker takes it for its second try.
    clock.advance(1)
    retry = await claim(sessions, "w2", clock=clock)
    assert retry is not None and (retry.id, retry.attempts, retry.worker_id) == (job.id, 2, "w2")
    assert [backoff_s(n, 60.0) for n in (1, 2, 3, 10)] == [60.0, 120.0, 240.0, 3600.0]


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "pbxbridge", *args], capture_output=True, text=True, timeout=120,
        env={**os.environ, "PBXBRIDGE_CONFIG": ""},
    )


async def test_cli_backfill_queues_old_calls_and_a_linkedid_is_queued_again(
    db_url: str, sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    root = shared_dir / "recordings"
    # Calls written before transcription was set up: no jobs yet.
    writer = CallWriter(sessions, recordings_config(root))
    for scenario in ("01-inbound-answered", "03-inbound-abandoned", "04-inbound-overflow"):
        for call in replay_trace(shared_dir / f"{scenario}.ami", tracker_settings(PbxConfig())):
            await writer.write(call)
    assert await _jobs(sessions) == {}

    result = _cli("transcribe", "--all", "--enqueue-only", "--db", db_url, "--recordings", str(root))
    assert result.returncode == 0, result.stderr
    assert "2 recording(s) queued" in result.stderr
    jobs = await _jobs(sessions)
    assert len(jobs) == 2 and {j.status for j in jobs.values()} == {"queued"}

    # A job that failed for good is queued afresh when asked for by linkedid.
    first = speech_recordings()[0]
    failed_id = jobs[first.path.relative_to(root).as_posix()].id
    async with sessions() as session, session.begin():
        await session.execute(
            update(TranscriptionJob).where(TranscriptionJob.id == failed_id)
            .values(status="failed", attempts=3, last_error="transcription failed: out of memory")
        )
    result = _cli("transcribe", first.linkedid, "--db", db_url, "--recordings", str(root))
    assert result.returncode == 0, result.stderr
    job = (await _jobs(sessions))[first.path.relative_to(root).as_posix()]
    assert (job.id, job.status, job.attempts, job.last_error) == (failed_id, "queued", 0, None)

    result = _cli("transcribe", "no-such-call", "--db", db_url, "--recordings", str(root))
    assert result.returncode == 1 and "no recording" in result.stderr


async def test_a_recording_that_kills_every_worker_ends_failed(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    await write_scenarios(sessions, shared_dir / "recordings", ["01-inbound-answered"])
    (queued,) = (await _jobs(sessions)).values()
    clock = FrozenClock(queued.next_attempt_at)
    # Each worker claims it and dies without a word (no heartbeat, no result).
    first = await claim(sessions, "w1", max_attempts=2, clock=clock)
    assert first is not None and first.attempts == 1
    # While its worker might still be alive, nobody else takes it.
    clock.advance(DEFAULT_STALE_AFTER_S)
    assert await claim(sessions, "w2", max_attempts=2, clock=clock) is None
    clock.advance(1)
    second = await claim(sessions, "w2", max_attempts=2, clock=clock)
    assert second is not None and second.id == first.id and second.attempts == 2
    clock.advance(DEFAULT_STALE_AFTER_S + 1)
    assert await claim(sessions, "w3", max_attempts=2, clock=clock) is None
    (job,) = (await _jobs(sessions)).values()
    assert (job.status, job.last_error) == ("failed", "worker stopped while transcribing, 2 times")


async def test_a_call_written_again_keeps_its_transcript(
    sessions: async_sessionmaker[AsyncSession], tmp_path: Path, stt: CachedEngine
) -> None:
    # A replayed trace or a reconnect writes a finished call again: its
    # recording's transcript and job must survive, not be transcribed twice.
    root = tmp_path / "recordings"
    good = speech_recordings()[0]
    target = root / "2026" / "11" / "26" / good.path.name
    target.parent.mkdir(parents=True)
    shutil.copy(good.path, target)
    await write_scenarios(sessions, root, [good.scenario])
    settings = WorkerSettings(recordings_root=root, worker_id="w1", max_attempts=2, backoff_base_s=0.0)
    await run_worker(sessions, EngineHolder(lambda: stt), settings, once=True)
    jobs_before = await _jobs(sessions)
    async with sessions() as session:
        segments_before = (await session.scalars(select(TranscriptSegment.id))).all()
    assert segments_before and [j.status for j in jobs_before.values()] == ["done"]

    await write_scenarios(sessions, root, [good.scenario])

    jobs_after = await _jobs(sessions)
    async with sessions() as session:
        segments_after = (await session.scalars(select(TranscriptSegment.id))).all()
    assert [(j.id, j.status) for j in jobs_after.values()] == [(j.id, j.status) for j in jobs_before.values()]
    assert segments_after == segments_before
