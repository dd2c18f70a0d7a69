"""A domain that subscribed to ``on_transcript_ready`` hears of each transcript a worker stores, once."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import select

from pbxbridge.config import Config
from pbxbridge.hub import Hub
from pbxbridge.transcription.daemon import TranscriptWatcher
from pbxbridge.transcription.queue import claim, complete
from pbxbridge.transcription.tables import TranscriptionJob
from pbxbridge.transcription.transcript import Segment, Transcript
from tests.fixtures_ami import wait_until
from tests.fixtures_transcription import write_scenarios


async def test_each_stored_transcript_is_told_once(sessions, shared_dir: Path) -> None:  # type: ignore[no-untyped-def]
    # The recordings with sound of 01 and 12, queued as the daemon queues them.
    await write_scenarios(sessions, shared_dir / "recordings", ["01-inbound-answered", "12-blind-transfer"])
    async with sessions() as session:
        queued = sorted((await session.scalars(select(TranscriptionJob.recording_id))).all())
    assert len(queued) >= 2
    hub = Hub(Config())
    hub.serve(
        sessions=sessions, write_sessions=sessions, send_action=_no_pbx, calls_in_progress=list,
        pbx_clock=lambda _pbx: None, calls_up=lambda: 0, database_turn=hub.database_turn,
        writer_first=hub.writer_first,
    )
    told: list[int] = []
    both = asyncio.Event()

    def heard(recording_id: int) -> None:
        told.append(recording_id)
        if len(told) >= len(queued):
            both.set()

    hub.on_transcript_ready(heard)
    watcher = TranscriptWatcher(hub, poll_s=0.02)
    await watcher.start()
    try:
        # What a worker process does: claim each job and store its transcript.
        for _ in queued:
            job = await claim(sessions, "elsewhere-1")
            assert job is not None
            text = Transcript(segments=(Segment(start=0.0, end=1.0, text="все наши операторы заняты"),))
            assert await complete(sessions, job, text)
        await asyncio.wait_for(both.wait(), 10)
        # More rounds of asking tell nothing new.
        rounds = watcher.polls
        await wait_until(lambda: watcher.polls >= rounds + 3)
    finally:
        await watcher.stop()
    assert sorted(told) == queued


async def _no_pbx(pbx: str, action: dict[str, str], as_list: bool | None) -> None:
    raise ConnectionError(pbx)
