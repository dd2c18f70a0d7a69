"""A caller sent to voicemail: a missed call with the message they left, from the PBX's voicemail spool.

17-voicemail.ami was captured with the lab's voicemail spool beside it
(../shared/ami-traces/voicemail/, laid out as /var/spool/asterisk/voicemail/).
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import func, select

from pbxbridge.calls.journal import fetch_journal
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.replay import replay_trace, tracker_settings
from pbxbridge.calls.store import CallWriter
from pbxbridge.calls.tables import Call, Recording
from pbxbridge.config import Config, PbxConfig, load_config
from pbxbridge.recordings.voicemail import locate_voicemail
from pbxbridge.transcription.queue import enqueue_written
from pbxbridge.transcription.tables import TranscriptionJob
from pbxbridge.web.call_filters import has_recording

MESSAGE = "lab/300/INBOX/msg0000.wav"


@pytest.fixture
def voicemail_call(shared_dir: Path) -> FinishedCall:
    (call,) = replay_trace(shared_dir / "17-voicemail.ami", tracker_settings(PbxConfig()))
    return call


def _config(shared_dir: Path, voicemail_root: Path) -> Config:
    return load_config(None, {
        "PBXBRIDGE_RECORDINGS__ROOT": str(shared_dir / "recordings"),
        "PBXBRIDGE_RECORDINGS__VOICEMAIL_ROOT": str(voicemail_root),
    })


async def test_the_message_is_on_the_missed_call(sessions, shared_dir, voicemail_call) -> None:
    writer = CallWriter(sessions, _config(shared_dir, shared_dir / "voicemail"), after_write=[enqueue_written])
    await writer.write(voicemail_call)
    async with sessions() as session:
        (entry,) = await fetch_journal(session)
        (rec,) = (await session.execute(select(Recording).where(Recording.kind == "voicemail"))).scalars().all()
        with_sound = (await session.execute(select(func.count()).select_from(Call).where(has_recording()))).scalar()
        jobs = (await session.execute(select(func.count()).select_from(TranscriptionJob))).scalar()
    assert entry["status"] == "missed" and entry["voicemail"] is True
    assert entry["voicemail_message"] == MESSAGE
    # The conversation itself was never recorded: expected.json says recording: false.
    assert entry["recording"] is None and entry["recordings"] == [] and with_sound == 0
    assert (rec.kind, rec.status, rec.path) == ("voicemail", "ok", MESSAGE)
    assert rec.pbx_path == "/var/lib/lab/spool/voicemail/lab/300/INBOX/msg0000"
    # The message file's own length: the caller spoke some 8 s (its .txt says duration=8).
    assert rec.duration_s is not None and 6 <= rec.duration_s <= 10
    # Messages stay in the PBX's spool, which the transcription workers do not read.
    assert jobs == 0


async def test_a_message_moved_to_old_is_found_by_its_caller_and_time(
    sessions, shared_dir, voicemail_call, tmp_path
) -> None:
    # The manager listened: app_voicemail moved it to Old and numbered it anew.
    old = tmp_path / "lab" / "300" / "Old"
    old.mkdir(parents=True)
    for suffix in (".wav", ".txt"):
        shutil.copy(shared_dir / "voicemail" / "lab" / "300" / "INBOX" / f"msg0000{suffix}", old / f"msg0003{suffix}")
    await CallWriter(sessions, _config(shared_dir, tmp_path)).write(voicemail_call)
    async with sessions() as session:
        (entry,) = await fetch_journal(session)
    assert entry["voicemail_message"] == "lab/300/Old/msg0003.wav"


def test_another_callers_message_is_not_taken(shared_dir: Path, voicemail_call: FinishedCall, tmp_path: Path) -> None:
    old = tmp_path / "lab" / "300" / "Old"
    old.mkdir(parents=True)
    shutil.copy(shared_dir / "voicemail" / "lab" / "300" / "INBOX" / "msg0000.wav", old / "msg0000.wav")
    info = (shared_dir / "voicemail" / "lab" / "300" / "INBOX" / "msg0000.txt").read_text()
    (old / "msg0000.txt").write_text(info.replace("callerid=79161117004", "callerid=79160000000"))
    found = locate_voicemail(voicemail_call.voicemail_file or "", tmp_path, caller=voicemail_call.client_number,
                             started_at=voicemail_call.started_at, ended_at=voicemail_call.ended_at)
    assert found.status == "missing" and found.path is None


def test_a_path_leaving_the_spool_is_refused(shared_dir: Path) -> None:
    found = locate_voicemail("/var/spool/asterisk/voicemail/../../300/INBOX/msg0000", shared_dir / "voicemail",
                             caller="79161117004", started_at=0.0, ended_at=2e9)
    assert found.status == "missing"


async def test_no_spool_here_keeps_the_flag_and_says_missing(sessions, shared_dir, voicemail_call, tmp_path) -> None:
    await CallWriter(sessions, _config(shared_dir, tmp_path / "nowhere")).write(voicemail_call)
    async with sessions() as session:
        (entry,) = await fetch_journal(session)
        (rec,) = (await session.execute(select(Recording).where(Recording.kind == "voicemail"))).scalars().all()
    assert entry["voicemail"] is True and entry["voicemail_message"] is None
    assert (rec.kind, rec.status) == ("voicemail", "missing")
