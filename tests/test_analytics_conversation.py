"""How a two-channel conversation went, from the real stereo recording transcribed by the bundled model.

The stereo call: left the client, right the manager. The manager's prompt plays
first (about 1.1 to 8.5 s), then the client's (about 11.5 to 24 s): nobody talks
over anyone. The figures are checked against the sound itself (each channel's
loud 20 ms frames), not against the transcript they are made from. A second file
moves the client's channel earlier so that the client starts while the manager
is still speaking: one interruption, the client's.
"""

from __future__ import annotations

import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.analytics.checklist import parse_checklist
from pbxbridge.analytics.figures import JOIN_PAUSE_S, merge
from pbxbridge.analytics.store import analyse_calls, call_checks, set_checklist, stored_checklists
from pbxbridge.calls.tables import Call, Recording
from pbxbridge.transcription.queue import enqueue
from pbxbridge.transcription.worker import EngineHolder, WorkerSettings, run_worker
from tests.fixtures_transcription import (
    FRAME_S,
    PROMPTS,
    CachedEngine,
    loud_frames,
    stereo_recording,
    stt,  # noqa: F401, F811 - fixture
)

CLIENT_CH, MANAGER_CH = 0, 1
STARTED = datetime(2026, 11, 26, 17, 27, 13, tzinfo=UTC)


def _duration_s(path: Path) -> float:
    with wave.open(str(path)) as wav:
        return wav.getnframes() / wav.getframerate()


def sound_spans(path: Path, channel: int) -> list[tuple[float, float]]:
    """Where a channel holds sound, pauses under JOIN_PAUSE_S joined (as the figures join words)."""
    loud = np.nonzero(loud_frames(path, channel))[0]
    return merge(((i * FRAME_S, (i + 1) * FRAME_S) for i in loud), JOIN_PAUSE_S)


def _total(spans: list[tuple[float, float]]) -> float:
    return sum(e - s for s, e in spans)


async def _journal_and_transcribe(
    factory: async_sessionmaker[AsyncSession], stt: CachedEngine, path: Path, linkedid: str
) -> None:
    """A journal call holding ``path`` as its recording, transcribed as a worker does."""
    duration = _duration_s(path)
    async with factory() as session, session.begin():
        call = Call(
            pbx="lab", linkedid=linkedid, direction="inbound", status="answered", client_number="+79161119999",
            manager="203", final_manager="203", rang=["203"], queues=["sales"], transferred_to=[],
            started_at=STARTED, answered_at=STARTED + timedelta(seconds=2),
            ended_at=STARTED + timedelta(seconds=2 + duration), wait_s=2.0, talk_s=duration, originated=False,
            closed_by="hangup",
        )
        session.add(call)
        await session.flush()
        recording = Recording(
            call_id=call.id, position=0, pbx_path=f"/var/spool/asterisk/monitor/{path.name}", path=path.name,
            status="ok", format="wav", channels=2, sample_rate=8000, duration_s=duration, size_bytes=path.stat().st_size,
        )
        session.add(recording)
        await session.flush()
        await enqueue(session, [recording.id])
    settings = WorkerSettings(recordings_root=path.parent, worker_id="w1")
    outcomes = await run_worker(factory, EngineHolder(lambda: stt), settings, once=True)
    assert [o.status for o in outcomes] == ["done"]


async def test_talk_shares_monologue_and_silence_match_what_is_heard(
    sessions: async_sessionmaker[AsyncSession], stt: CachedEngine
) -> None:
    path = stereo_recording()
    await _journal_and_transcribe(sessions, stt, path, "1795724833.8")
    async with sessions() as session, session.begin():
        await set_checklist(session, parse_checklist({"name": "Стороны", "items": [
            {"title": "Менеджер назвал оператора", "phrases": ["доступный оператор"], "side": "manager"},
            {"title": "Клиент назвал оператора", "phrases": ["доступный оператор"], "side": "client"},
            {"title": "Клиент назвал сайт", "phrases": ["на сайте"], "side": "client"},
        ]}))
        checklists = await stored_checklists(session)
    counts = await analyse_calls(sessions, [1], checklists)
    assert counts.with_figures == 1
    async with sessions() as session:
        found = await call_checks(session, "1795724833.8")
    assert found is not None and found["conversation"] is not None
    figures = found["conversation"]

    manager, client = sound_spans(path, MANAGER_CH), sound_spans(path, CLIENT_CH)
    heard_manager, heard_client = _total(manager), _total(client)
    # What is heard: the manager ~7 s, the client ~12 s, one after the other.
    assert 6.0 < heard_manager < 8.5 and 10.0 < heard_client < 13.5
    assert abs(figures["manager_share"] - heard_manager / (heard_manager + heard_client)) <= 0.05
    assert abs(figures["manager_share"] + figures["client_share"] - 1.0) < 1e-6
    # The manager's one run of speech is the whole prompt.
    assert abs(figures["longest_monologue_s"] - (manager[-1][1] - manager[0][0])) <= 1.0
    assert figures["interruptions"] == 0
    duration = _duration_s(path)
    heard_silence = 1.0 - _total(merge([*manager, *client])) / duration
    assert abs(figures["silence_share"] - heard_silence) <= 0.05
    # The manager's prompt has 16 words, spoken in the time its channel holds sound.
    prompt_words = len(PROMPTS["queue-periodic-announce"].split())
    assert abs(figures["manager_wpm"] - prompt_words * 60 / heard_manager) <= 0.15 * prompt_words * 60 / heard_manager

    # Sides are known here: a phrase is the manager's, not the client's.
    items = {i["title"]: i for i in found["checklists"][0]["items"]}
    assert items["Менеджер назвал оператора"]["passed"] and not items["Менеджер назвал оператора"]["side_unknown"]
    assert items["Менеджер назвал оператора"]["evidence"]["side"] == "manager"
    assert not items["Клиент назвал оператора"]["passed"]
    site = items["Клиент назвал сайт"]
    assert site["passed"] and site["evidence"]["side"] == "client" and site["evidence"]["at_s"] > client[0][0]


async def test_the_client_cutting_in_is_an_interruption(
    sessions: async_sessionmaker[AsyncSession], stt: CachedEngine, tmp_path: Path
) -> None:
    source = stereo_recording()
    with wave.open(str(source)) as wav:
        params = wav.getparams()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").reshape(-1, 2).copy()
    # The client's speech moved 7 s earlier: it starts near 4.5 s, while the manager's prompt runs to 8.5 s.
    shift = int(7.0 * params.framerate)
    samples[:, CLIENT_CH] = np.concatenate([samples[shift:, CLIENT_CH], np.zeros(shift, dtype="<i2")])
    path = tmp_path / "in-74951234567-79161119999-20261126-202713-1795724833.9-stereo.wav"
    with wave.open(str(path), "wb") as out:
        out.setparams(params)
        out.writeframes(samples.tobytes())
    manager, client = sound_spans(path, MANAGER_CH), sound_spans(path, CLIENT_CH)
    assert manager[0][0] < client[0][0] < manager[-1][1]  # heard: the client starts over the manager

    await _journal_and_transcribe(sessions, stt, path, "1795724833.9")
    await analyse_calls(sessions, [1], [])
    async with sessions() as session:
        found = await call_checks(session, "1795724833.9")
    assert found is not None and found["conversation"] is not None
    figures = found["conversation"]
    assert figures["client_interruptions"] == 1 and figures["manager_interruptions"] == 0
    assert figures["interruptions"] == 1
    # The manager's monologue ends where the client cuts in.
    assert abs(figures["longest_monologue_s"] - (client[0][0] - manager[0][0])) <= 1.0


def test_turns_taken_over_each_other_count_for_whoever_cut_in() -> None:
    from pbxbridge.analytics.figures import conversation_figures

    def said(side: str, start: float, end: float) -> dict[str, object]:
        return {"start": start, "end": end, "speaker": side, "text": "да", "words": [{"start": start, "end": end}]}

    # The manager 0-5 s, the client cuts in at 2 s and talks to 7 s, the manager cuts back in at 6 s.
    figures = conversation_figures([said("manager", 0, 5), said("client", 2, 7), said("manager", 6, 9)], 10.0)
    assert figures is not None
    assert (figures.client_interruptions, figures.manager_interruptions) == (1, 1)
    # The client's speech splits the manager's run: 0-2 s and 7-9 s.
    assert figures.longest_monologue_s == 2.0
    assert abs(figures.silence_share - 0.1) < 1e-9 and figures.manager_talk_s == 8.0
    # A one-channel transcript (no sides) has no figures at all.
    assert conversation_figures([{"start": 0, "end": 5, "speaker": None, "text": "алло", "words": []}], 10.0) is None
