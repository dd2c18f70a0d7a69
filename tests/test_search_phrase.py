"""A phrase in quotes and a side's words, found in real transcripts made by the bundled model.

The one-channel Local-lab calls hold the manager's prompt «Все наши операторы заняты.
Пожалуйста, оставайтесь на линии, и Ваш звонок будет обслужен первым доступным
оператором.» and then the client's «Asterisk это полноценная телефонная станция ...
Дополнительная информация на сайте». The stereo call holds the same two prompts, the
client on the left channel and the manager on the right.
"""

from __future__ import annotations

import wave
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.tables import Call, Recording
from pbxbridge.transcription.queue import enqueue
from pbxbridge.transcription.search import SearchFilters, phrases_of, search, search_calls
from pbxbridge.transcription.worker import EngineHolder, WorkerSettings, run_worker
from tests.fixtures_transcription import (
    CachedEngine,
    speech_recordings,
    stereo_recording,
    stt,  # noqa: F401, F811 - fixture
    write_scenarios,
)

SPOKEN = ["01-inbound-answered", "02-inbound-second-agent", "04-inbound-overflow", "06-outbound-answered"]
STEREO_LINKEDID = "1795724833.8"


async def _stereo_call(factory: async_sessionmaker[AsyncSession], path: Path) -> None:
    """The stereo recording as a journal call's, waiting for the worker."""
    with wave.open(str(path)) as wav:
        duration = wav.getnframes() / wav.getframerate()
    started = datetime(2026, 11, 26, 17, 27, 13, tzinfo=UTC)
    async with factory() as session, session.begin():
        call = Call(
            pbx="lab", linkedid=STEREO_LINKEDID, direction="inbound", status="answered", client_number="+79161119999",
            manager="203", final_manager="203", rang=["203"], queues=["sales"], transferred_to=[],
            started_at=started, answered_at=started + timedelta(seconds=2),
            ended_at=started + timedelta(seconds=2 + duration), wait_s=2.0, talk_s=duration, originated=False,
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


async def _transcribed(factory: async_sessionmaker[AsyncSession], shared_dir: Path, stt: CachedEngine) -> None:
    await write_scenarios(factory, shared_dir / "recordings", SPOKEN)
    settings = WorkerSettings(recordings_root=shared_dir / "recordings", worker_id="w1")
    outcomes = await run_worker(factory, EngineHolder(lambda: stt), settings, once=True)
    assert outcomes and all(o.status == "done" for o in outcomes)
    stereo = stereo_recording(shared_dir)
    await _stereo_call(factory, stereo)
    settings = WorkerSettings(recordings_root=stereo.parent, worker_id="w1")
    outcomes = await run_worker(factory, EngineHolder(lambda: stt), settings, once=True)
    assert [o.status for o in outcomes] == ["done"]


async def _found(factory: async_sessionmaker[AsyncSession], query: str, side: str | None = None) -> set[str]:
    page = await search_calls(factory, query, SearchFilters(side=side))
    return {h.linkedid for h in page.hits}


def test_a_phrase_is_what_is_in_quotes() -> None:
    assert phrases_of('"следующий шаг"') == [["следующий", "шаг"]]
    assert phrases_of("цена «Следующий  шаг» и „на линии“") == [["следующий", "шаг"], ["на", "линии"]]
    # One word in quotes is that word; an unclosed quote is no phrase.
    assert phrases_of('"скидка" и "следующий шаг') == []


async def test_a_phrase_said_is_found_and_its_words_in_another_order_are_not(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path, stt: CachedEngine
) -> None:
    await _transcribed(sessions, shared_dir, stt)
    every = {r.linkedid for r in speech_recordings() if r.scenario in SPOKEN} | {STEREO_LINKEDID}
    assert len(every) == len(SPOKEN) + 1

    # Said as «ваш звонок будет обслужен»: found in order; «оставайтесь на | линии» is cut
    # between two of the model's segments, and is still the phrase said.
    assert await _found(sessions, '"ваш звонок"') == every
    assert await _found(sessions, '"Ваши звонки"') == every  # by dictionary forms
    assert await _found(sessions, "«оставайтесь на линии»") == every
    # The same words in another order, or apart, are not the phrase...
    assert await _found(sessions, '"звонок ваш"') == set()
    assert await _found(sessions, '"линии на оставайтесь"') == set()
    assert await _found(sessions, '"оставайтесь линии"') == set()  # both said, a word apart
    # ... but unquoted, every word said anywhere in the call still finds it, as before.
    assert await _found(sessions, "звонок ваш") == every
    assert await _found(sessions, "оставайтесь линии") == every
    # A phrase and a word: both must be said.
    assert await _found(sessions, '"ваш звонок" сайте') == every
    assert await _found(sessions, '"ваш звонок" скидка') == set()
    # The hit plays from where the phrase starts (the model may cut it between segments), its words marked.
    page = await search_calls(sessions, '"оставайтесь на линии"')
    assert len(page.hits) == len(every)
    for hit in page.hits:
        assert "[оставайтесь] [на]" in hit.snippet.lower(), hit.snippet
    # search() (the command line's) agrees.
    assert {h.linkedid for h in await search(sessions, '"звонок ваш"')} == set()
    assert {h.linkedid for h in await search(sessions, '"ваш звонок"')} == every


async def test_a_side_finds_the_words_of_that_side_only_on_the_stereo_recording(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path, stt: CachedEngine
) -> None:
    await _transcribed(sessions, shared_dir, stt)
    mono = {r.linkedid for r in speech_recordings() if r.scenario in SPOKEN}

    # The manager says «операторы», the client «информация»: on the stereo call each on its side only.
    manager = await search_calls(sessions, "операторы", SearchFilters(side="manager"))
    client = await search_calls(sessions, "операторы", SearchFilters(side="client"))
    assert {h.linkedid for h in manager.hits} == mono | {STEREO_LINKEDID}
    assert {h.linkedid for h in client.hits} == mono
    assert await _found(sessions, "информация", side="client") == mono | {STEREO_LINKEDID}
    assert await _found(sessions, "информация", side="manager") == mono
    assert await _found(sessions, '"дополнительная информация"', side="client") == mono | {STEREO_LINKEDID}
    assert await _found(sessions, '"дополнительная информация"', side="manager") == mono

    for hit in manager.hits:
        if hit.linkedid == STEREO_LINKEDID:
            # Known side: the manager's words, said on his channel.
            assert hit.speaker == "manager" and hit.side_unknown is False and "[операторы]" in hit.snippet.lower()
        else:
            # One channel: the side is not known, the words matched the whole call, and the hit says so.
            assert hit.speaker is None and hit.side_unknown is True
    # No side asked: nothing to say about it.
    assert all(not h.side_unknown for h in (await search_calls(sessions, "операторы")).hits)
