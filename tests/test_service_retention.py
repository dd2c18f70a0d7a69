"""`pbxbridge retention apply`: old calls lose their recordings and transcripts, nothing else does."""

from __future__ import annotations

import asyncio
import shutil
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, update

from pbxbridge.ami.traces import load_trace
from pbxbridge.calls.tables import Call, Recording
from pbxbridge.cli.main import main
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.transcription.tables import TranscriptSegment
from pbxbridge.web.tables import AuditEntry
from tests.fixtures_ami import trace_path

# Answered calls with sound in their recordings.
OLD = ("01-inbound-answered.ami", "06-outbound-answered.ami")
RECENT = ("02-inbound-second-agent.ami",)


async def _give_transcripts(url: str) -> dict[int, str]:
    """A transcript segment for every call (as the transcription workers leave them); call id -> linkedid."""
    engine = make_engine(url)
    try:
        async with session_factory(engine)() as session, session.begin():
            calls = (await session.execute(select(Call))).scalars().all()
            for call in calls:
                recording = (
                    await session.execute(select(Recording).where(Recording.call_id == call.id))
                ).scalars().first()
                assert recording is not None
                session.add(TranscriptSegment(recording_id=recording.id, call_id=call.id, start_s=0.0, end_s=2.0,
                                              speaker=None, text="все наши операторы заняты", words=[],
                                              lemmas="весь наш оператор занятый"))
            return {c.id: c.linkedid for c in calls}
    finally:
        await engine.dispose()


async def _age(url: str, call_ids: set[int], days: int) -> None:
    engine = make_engine(url)
    try:
        async with session_factory(engine)() as session, session.begin():
            for call_id in call_ids:
                call = await session.get(Call, call_id)
                assert call is not None
                await session.execute(
                    update(Call).where(Call.id == call_id).values(started_at=call.started_at - timedelta(days=days))
                )
    finally:
        await engine.dispose()


async def _add_hostile_rows(url: str, call_id: int, paths: list[str]) -> None:
    engine = make_engine(url)
    try:
        async with session_factory(engine)() as session, session.begin():
            for position, path in enumerate(paths, start=10):
                session.add(Recording(call_id=call_id, position=position, pbx_path=path, path=path, status="ok"))
    finally:
        await engine.dispose()


async def _state(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    try:
        async with session_factory(engine)() as session:
            recordings = (await session.execute(select(Recording.call_id, Recording.path, Recording.status))).all()
            segments = (
                await session.execute(
                    select(TranscriptSegment.call_id, func.count()).group_by(TranscriptSegment.call_id)
                )
            ).all()
            audit = (await session.execute(select(AuditEntry.action, AuditEntry.target))).all()
            return {"recordings": recordings, "segments": dict(segments), "audit": audit}
    finally:
        await engine.dispose()


def test_retention_deletes_old_recordings_and_transcripts_only(
    db_url: str, tmp_path: Path, shared_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "monitor"
    shutil.copytree(shared_dir / "recordings", root)
    outside = tmp_path / "outside.wav"
    outside.write_bytes(b"RIFF not ours")
    paths = [str(trace_path(shared_dir, n)) for n in (*OLD, *RECENT)]
    assert main(["replay", *paths, "--db", db_url, "--recordings", str(root)]) == 0
    calls = asyncio.run(_give_transcripts(db_url))
    old_linkedids = {
        e["Linkedid"] for n in OLD for e in load_trace(trace_path(shared_dir, n)).events if "Linkedid" in e
    }
    old_ids = {cid for cid, lid in calls.items() if lid in old_linkedids}
    recent_ids = set(calls) - old_ids
    assert old_ids and recent_ids
    asyncio.run(_age(db_url, old_ids, 40))
    victim = min(old_ids)
    asyncio.run(_add_hostile_rows(db_url, victim, ["../outside.wav", str(outside), "2026/../../outside.wav"]))
    before = asyncio.run(_state(db_url))
    old_files = [root / p for cid, p, s in before["recordings"] if cid in old_ids and s == "ok" and "outside" not in p]
    recent_files = [root / p for cid, p, s in before["recordings"] if cid in recent_ids and p]
    assert old_files and recent_files and all(f.is_file() for f in old_files + recent_files)

    env = ["--db", db_url, "--recordings", str(root)]
    capsys.readouterr()
    # Keep forever unless told otherwise.
    assert main(["retention", "apply", *env]) == 0
    assert "everything is kept" in capsys.readouterr().out
    monkeypatch.setenv("PBXBRIDGE_RETENTION__RECORDINGS_DAYS", "30")
    monkeypatch.setenv("PBXBRIDGE_RETENTION__TRANSCRIPTS_DAYS", "30")
    assert main(["retention", "apply", "--dry-run", *env]) == 0
    dry = capsys.readouterr().out
    assert f"would delete {len(old_files)} recording file(s)" in dry
    assert f"{len(old_ids)} call(s)" in dry and "3 path(s) outside the recordings root refused" in dry
    assert asyncio.run(_state(db_url)) == before
    assert all(f.is_file() for f in old_files)

    assert main(["retention", "apply", *env]) == 0
    out = capsys.readouterr().out
    assert f"deleted {len(old_files)} recording file(s)" in out
    after = asyncio.run(_state(db_url))
    assert not any(f.exists() for f in old_files)
    assert all(f.is_file() for f in recent_files)
    assert outside.read_bytes() == b"RIFF not ours"
    status = {(cid, p): s for cid, p, s in after["recordings"]}
    assert all(s == "deleted" for (cid, p), s in status.items() if cid in old_ids and "outside" not in p)
    assert all(s == "ok" for (cid, p), s in status.items() if "outside" in p)
    assert set(after["segments"]) == recent_ids
    audited = {(a, t) for a, t in after["audit"]}
    assert {t for a, t in audited if a == "retention.transcript_deleted"} == {f"call:{c}" for c in old_ids}
    assert len([1 for a, _ in audited if a == "retention.recording_deleted"]) == len(old_files)

    # Once done, done: a second run finds nothing more.
    assert main(["retention", "apply", *env]) == 0
    again = capsys.readouterr().out
    assert "deleted 0 recording file(s) (0 bytes), 0 transcript segment(s) of 0 call(s)" in again
