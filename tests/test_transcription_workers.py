"""Worker processes: never two on one job, and a killed worker's job is taken over."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.transcription.queue import claim
from pbxbridge.transcription.tables import TranscriptionJob, TranscriptSegment
from pbxbridge.transcription.worker import EngineHolder, WorkerSettings, run_job
from tests.fixtures_transcription import (
    CachedEngine,
    stt,  # noqa: F401, F811 - fixture
    write_scenarios,
)

CLAIMED = re.compile(r"claimed job (\d+)")


def _worker(db_url: str, root: Path, worker_id: str, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pbxbridge", "transcribe-worker", "--db", db_url, "--recordings", str(root),
         "--worker-id", worker_id, *extra],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PBXBRIDGE_CONFIG": ""},
    )


async def _jobs(factory: async_sessionmaker[AsyncSession]) -> list[TranscriptionJob]:
    async with factory() as session:
        return list((await session.scalars(select(TranscriptionJob).order_by(TranscriptionJob.id))).all())


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_two_worker_processes_never_take_the_same_job(
    db_url: str, sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    root = shared_dir / "recordings"
    # Twelve callers within two seconds: six answered calls with recordings.
    await write_scenarios(sessions, root, ["13-burst"])
    queued = await _jobs(sessions)
    assert len(queued) == 6

    workers = [_worker(db_url, root, name, "--once") for name in ("wA", "wB")]
    claimed: dict[str, list[int]] = {}
    for name, proc in zip(("wA", "wB"), workers):
        _out, err = proc.communicate(timeout=240)
        assert proc.returncode == 0, err
        claimed[name] = [int(m) for m in CLAIMED.findall(err)]

    # Each worker loads its model only after its first claim, so both are in
    # the race; FOR UPDATE SKIP LOCKED keeps them off each other's rows.
    assert claimed["wA"] and claimed["wB"]
    assert not set(claimed["wA"]) & set(claimed["wB"])
    assert sorted(claimed["wA"] + claimed["wB"]) == [j.id for j in queued]
    jobs = await _jobs(sessions)
    assert [(j.status, j.attempts) for j in jobs] == [("done", 1)] * 6
    assert {j.id: j.locked_by for j in jobs} == {
        **dict.fromkeys(claimed["wA"], "wA"), **dict.fromkeys(claimed["wB"], "wB")
    }


async def test_a_killed_workers_job_is_claimed_again(
    db_url: str, sessions: async_sessionmaker[AsyncSession], shared_dir: Path, stt: CachedEngine
) -> None:
    root = shared_dir / "recordings"
    await write_scenarios(sessions, root, ["01-inbound-answered"])
    worker = _worker(db_url, root, "doomed", "--heartbeat", "0.5")
    try:
        for _ in range(600):
            (job,) = await _jobs(sessions)
            if job.status == "running":
                break
            assert worker.poll() is None, worker.communicate()[1]
            time.sleep(0.1)
        assert (job.status, job.locked_by, job.attempts) == ("running", "doomed", 1)
    finally:
        # Killed mid-job, as the OOM killer or a power cut would: no chance to clean up.
        worker.send_signal(signal.SIGKILL)
        worker.communicate(timeout=30)

    (job,) = await _jobs(sessions)
    assert (job.status, job.locked_by) == ("running", "doomed")
    # While its heartbeat is recent the job is still the dead worker's.
    assert await claim(sessions, "heir", stale_after_s=60) is None
    for _ in range(300):
        taken = await claim(sessions, "heir", stale_after_s=1.0)
        if taken is not None:
            break
        time.sleep(0.1)
    assert taken is not None and taken.id == job.id and taken.attempts == 2

    outcome = await run_job(sessions, EngineHolder(lambda: stt), taken, WorkerSettings(recordings_root=root, worker_id="heir"))
    assert outcome.status == "done"
    (job,) = await _jobs(sessions)
    assert (job.status, job.locked_by, job.attempts) == ("done", "heir", 2)
    async with sessions() as session:
        count = await session.scalar(select(func.count()).select_from(TranscriptSegment))
    assert count and count >= 3
