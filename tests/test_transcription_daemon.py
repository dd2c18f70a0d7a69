"""The daemon queues each written call's recordings and its own worker process transcribes them."""

from __future__ import annotations

import asyncio
import dataclasses
import subprocess
import sys
import time
from pathlib import Path

from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.ami.traces import load_trace
from pbxbridge.app import Daemon, attach_domains
from pbxbridge.config import (
    Config,
    DatabaseConfig,
    PbxConfig,
    RecordingsConfig,
    TranscriptionConfig,
)
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


def test_a_worker_ends_when_its_daemon_is_killed(db_url: str, tmp_path: Path) -> None:
    # The daemon's workers must not outlive it (SIGKILL gives it no chance to
    # stop them): a stray worker would compete with the next daemon's.
    parent_code = (
        "import os, subprocess, sys, time\n"
        "env = dict(os.environ, PBXBRIDGE_WORKER_PARENT=str(os.getpid()), PBXBRIDGE_DATABASE__URL=sys.argv[1])\n"
        "w = subprocess.Popen([sys.executable, '-m', 'pbxbridge', 'transcribe-worker'], env=env,\n"
        "                     stderr=subprocess.PIPE, text=True)\n"
        # Told once the worker is up (it has asked to die with its parent by then).
        "while 'waiting for recordings' not in w.stderr.readline(): pass\n"
        "print(w.pid, flush=True)\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code, db_url], stdout=subprocess.PIPE, text=True)
    assert parent.stdout is not None
    worker_pid = int(parent.stdout.readline())
    assert _alive(worker_pid)
    parent.kill()
    parent.wait()
    deadline = time.monotonic() + 30
    while _alive(worker_pid) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(worker_pid)


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            # A zombie (state Z) has ended; only its parent has not reaped it yet.
            return stat.read().split(") ", 1)[1][0] != "Z"
    except FileNotFoundError:
        return False
