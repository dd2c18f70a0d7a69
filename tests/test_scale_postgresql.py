"""Scale-out on one PostgreSQL: two daemons (one per PBX) and three transcription workers, one killed mid-job.

Every process is started as an operator would (``pbxbridge simulate``, ``pbxbridge run``,
``pbxbridge transcribe-worker``); the workers transcribe with the bundled Whisper model, as
tests/test_transcription_workers.py does (the suite has no stand-in engine for worker processes).
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.tables import Call, Recording
from pbxbridge.transcription.tables import TranscriptionJob, TranscriptSegment
from tests.fixtures_ami import trace_path

USER, SECRET = "pbxbridge", "s3cret"
# Per PBX: an answered call with its recording, and calls without one.
TRACES = ("01-inbound-answered", "03-inbound-abandoned", "10-internal")
PBXES = ("east", "west")
WORKERS = ("w1", "w2", "w3")
# The lease: a worker beats its heart every half second; a job silent for four is another's
# (in production 15 s and 120 s).
HEARTBEAT_S, STALE_AFTER_S = "0.5", "4"
DEADLINE_S = 150.0


def _pbxbridge(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "pbxbridge", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PBXBRIDGE_CONFIG": "", **(env or {})},
    )


def _simulator(shared_dir: Path) -> tuple[subprocess.Popen[str], str]:
    paths = [str(trace_path(shared_dir, f"{name}.ami")) for name in TRACES]
    sim = _pbxbridge("simulate", *paths, "--port", "0", "--speed", "0", "--username", USER, "--secret", SECRET)
    assert sim.stdout is not None
    line = sim.stdout.readline()
    assert line.startswith("listening on 127.0.0.1:"), line + (sim.stderr.read() if sim.stderr else "")
    return sim, line.strip().rsplit(":", 1)[1]


def _daemon(db_url: str, shared_dir: Path, pbx: str, port: str) -> subprocess.Popen[str]:
    key = f"PBXBRIDGE_PBX__{pbx.upper()}"
    return _pbxbridge(
        "run", "--db", db_url, "--recordings", str(shared_dir / "recordings"),
        env={
            f"{key}__PORT": port, f"{key}__USERNAME": USER, f"{key}__SECRET": SECRET,
            "PBXBRIDGE_LOG__FORMAT": "text",
            "PBXBRIDGE_WEB__PORT": "0",
            "PBXBRIDGE_ROUTING__AGI_PORT": "0",
            # The daemons queue the jobs; the workers below, on "other hosts", take them.
            "PBXBRIDGE_TRANSCRIPTION__WORKERS": "0",
        },
    )


def _worker(db_url: str, shared_dir: Path, worker_id: str) -> subprocess.Popen[str]:
    return _pbxbridge(
        "transcribe-worker", "--db", db_url, "--recordings", str(shared_dir / "recordings"),
        "--worker-id", worker_id, "--heartbeat", HEARTBEAT_S, "--stale-after", STALE_AFTER_S,
    )


async def _rows(sessions: async_sessionmaker[AsyncSession], model: Any) -> list[Any]:
    async with sessions() as session:
        return list((await session.scalars(select(model).order_by(model.id))).all())


async def _until(what: str, check: Callable[[], Awaitable[Any]], procs: list[subprocess.Popen[str]],
                 deadline: float) -> Any:
    """Poll ``check`` until it gives something true; fail at once if a process died."""
    while not (found := await check()):
        for proc in procs:
            if proc.poll() is not None:
                pytest.fail(f"{' '.join(map(str, proc.args[3:5]))} stopped: {proc.communicate()[1][-3000:]}")
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        await asyncio.sleep(0.2)
    return found


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
async def test_two_daemons_and_three_workers_share_one_postgresql(
    db_url: str, sessions: async_sessionmaker[AsyncSession], shared_dir: Path, expected: dict[str, Any]
) -> None:
    deadline = time.monotonic() + DEADLINE_S
    scripted = sum(len(expected[name]["calls"]) for name in TRACES)
    procs: list[subprocess.Popen[str]] = []
    try:
        # The workers first: they start (on other hosts, in production) before there is work.
        workers = {name: _worker(db_url, shared_dir, name) for name in WORKERS}
        procs += workers.values()
        for pbx in PBXES:
            sim, port = _simulator(shared_dir)
            procs += [sim, _daemon(db_url, shared_dir, pbx, port)]

        async def journal_full() -> bool:
            return len(await _rows(sessions, Call)) >= scripted * len(PBXES)

        await _until("both PBXes' calls in the journal", journal_full, procs, deadline)
        recordings = [r for r in await _rows(sessions, Recording) if r.status == "ok" and r.kind == "call"]
        assert recordings

        async def running() -> list[TranscriptionJob]:
            return [j for j in await _rows(sessions, TranscriptionJob) if j.status == "running"]

        victim_job = (await _until("a worker holding a job", running, procs, deadline))[0]
        victim = victim_job.locked_by
        # Killed mid-job, as the OOM killer or a power cut would: no chance to give the job back.
        workers[victim].send_signal(signal.SIGKILL)
        workers[victim].communicate(timeout=30)
        procs.remove(workers[victim])

        async def all_finished() -> bool:
            return all(j.status in ("done", "failed") for j in await _rows(sessions, TranscriptionJob))

        await _until("every job finished", all_finished, procs, deadline)
        jobs = await _rows(sessions, TranscriptionJob)
        segments = await _rows(sessions, TranscriptSegment)
        journal = await _rows(sessions, Call)
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()

    # Every call of each PBX journaled once, under its own PBX.
    assert max(Counter((c.pbx, c.linkedid) for c in journal).values()) == 1
    assert Counter(c.pbx for c in journal) == dict.fromkeys(PBXES, scripted)
    # Every recording transcribed once: one job each, done, none lost with the killed worker.
    assert sorted(j.recording_id for j in jobs) == sorted(r.id for r in recordings)
    assert [j.status for j in jobs] == ["done"] * len(jobs)
    taken_over = next(j for j in jobs if j.id == victim_job.id)
    # Taken over from the killed worker (a second time, should its heir be too slow to beat its heart).
    assert taken_over.attempts >= 2 and taken_over.locked_by not in (victim, None)
    # One transcript per recording: its segments stored once, not once per attempt.
    assert segments and max(Counter((s.recording_id, s.speaker, s.start_s) for s in segments).values()) == 1
    assert {s.recording_id for s in segments} == {r.id for r in recordings}
