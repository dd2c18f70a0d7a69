"""The daemon queues each written call's recordings and its own worker process transcribes them."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.ami.traces import load_trace
from pbxbridge.app import Daemon, attach_domains
from pbxbridge.config import Config, DatabaseConfig, PbxConfig, RecordingsConfig, TranscriptionConfig
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.transcription.transcripts import call_transcript

LINKEDID = "1795723449.4"  # 01-inbound-answered: the manager's prompt, then the client's


def test_a_live_call_is_transcribed_by_the_daemons_worker(db_url: str, shared_dir: Path) -> None:
    async def go() -> list[dict[str, object]]:
        sim = AmiSimulator([load_trace(shared_dir / "01-inbound-answered.ami")], speed=0, username="u", secret="s")
        await sim.start()
        config = Config(
            database=DatabaseConfig(url=db_url),
            recordings=RecordingsConfig(root=str(shared_dir / "recordings")),
            pbx=[PbxConfig(name="main", host="127.0.0.1", port=sim.port, username="u", secret="s")],
            transcription=dataclasses.replace(TranscriptionConfig(), workers=1),
        )
        daemon = Daemon(config)
        assert attach_domains(daemon, ("pbxbridge.transcription.daemon",)) == ["pbxbridge.transcription.daemon"]
        engine = make_engine(db_url)
        sessions = session_factory(engine)
        try:
            await daemon.start()
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                segments = await call_transcript(sessions, LINKEDID)
                if segments:
                    return segments
                await asyncio.sleep(0.5)
            raise AssertionError("the daemon's worker did not transcribe the call")
        finally:
            await daemon.stop()
            await sim.stop()
            await engine.dispose()

    segments = asyncio.run(go())
    text = " ".join(str(s["text"]) for s in segments).lower()
    assert "операторы" in text and "астериск" in text.replace("asterisk", "астериск")
