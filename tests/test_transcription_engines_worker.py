"""A worker process loads its model once, however many recordings it transcribes."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.transcription.engines import Engine
from pbxbridge.transcription.worker import EngineHolder, WorkerSettings, run_worker
from tests.fixtures_transcription import (
    CachedEngine,
    stt,  # noqa: F401, F811 - fixture
    write_scenarios,
)


async def test_one_model_load_serves_every_job_of_a_worker(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path, stt: CachedEngine
) -> None:
    root = shared_dir / "recordings"
    await write_scenarios(sessions, root, ["01-inbound-answered", "02-inbound-second-agent"])
    loads: list[Engine] = []

    def load() -> Engine:
        loads.append(stt)
        return stt

    holder = EngineHolder(load)
    outcomes = await run_worker(sessions, holder, WorkerSettings(recordings_root=root, worker_id="w1"), once=True)
    assert [o.status for o in outcomes] == ["done", "done"]
    assert len(loads) == 1
    # A later round of jobs on the same worker loads nothing more.
    await write_scenarios(sessions, root, ["04-inbound-overflow"])
    more = await run_worker(sessions, holder, WorkerSettings(recordings_root=root, worker_id="w1"), once=True)
    assert [o.status for o in more] == ["done"]
    assert len(loads) == 1
