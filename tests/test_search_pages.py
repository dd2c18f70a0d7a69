"""A page of calls found by a spoken word, with a count that stops at a cap and says so."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.tables import Call, Recording
from pbxbridge.transcription.lemmas import lemmatise, words_of
from pbxbridge.transcription.search import SearchFilters, search, search_calls
from pbxbridge.transcription.tables import TranscriptSegment, TranscriptTerm

MANAGER_SAYS = "Все наши операторы заняты, оставайтесь на линии."
CLIENT_ASKS = "Можно оформить рассрочку на год?"
N_CALLS = 30
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _linkedid(j: int) -> str:
    return f"1772600{j:03d}.{j}"


async def _fill(factory: async_sessionmaker[AsyncSession]) -> None:
    """N_CALLS answered calls, each manager saying «операторы»; every fifth client asks for instalments."""
    async with factory() as session, session.begin():
        for j in range(1, N_CALLS + 1):
            started = START + timedelta(minutes=10 * j)
            session.add(Call(
                id=j, pbx="main", linkedid=_linkedid(j), direction="inbound", status="answered",
                manager="201" if j % 2 else "202", final_manager="201" if j % 2 else "202", rang=[], queues=[],
                transferred_to=[], started_at=started, answered_at=started + timedelta(seconds=3),
                ended_at=started + timedelta(seconds=60), wait_s=3.0, talk_s=57.0, originated=False,
                closed_by="hangup",
            ))
            session.add(Recording(
                id=j, call_id=j, position=0, pbx_path=f"/var/spool/asterisk/monitor/p-{j}.wav", path=f"p-{j}.wav",
                status="ok", format="wav", channels=2, sample_rate=8000, duration_s=57.0, size_bytes=57 * 32000,
            ))
        await session.flush()
        for j in range(1, N_CALLS + 1):
            said = [("manager", 1.0, MANAGER_SAYS)] + ([("client", 9.0, CLIENT_ASKS)] if j % 5 == 0 else [])
            for k, (speaker, start, text) in enumerate(said):
                words = [{"start": start + i * 0.4, "end": start + i * 0.4 + 0.3, "word": w}
                         for i, w in enumerate(words_of(text))]
                session.add(TranscriptSegment(
                    id=10 * j + k, recording_id=j, call_id=j, start_s=start, end_s=start + len(words) * 0.4,
                    speaker=speaker, text=text, words=words, lemmas=lemmatise(text),
                ))


def _newest_first(calls: list[int]) -> list[str]:
    return [_linkedid(j) for j in sorted(calls, reverse=True)]


async def test_a_common_word_gives_one_page_and_a_count_that_stops_at_the_cap(
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
) -> None:
    await _fill(sessions)
    everyone = list(range(1, N_CALLS + 1))
    page = await search_calls(sessions, "операторов", offset=0, count=10, most=25)
    assert [h.linkedid for h in page.hits] == _newest_first(everyone)[:10]
    assert (page.total, page.exact) == (25, False)
    assert all(h.snippet == "Все наши [операторы] заняты, оставайтесь на линии." and h.offset_s == 1.8
               for h in page.hits)
    # Pages go no further than the count.
    tail = await search_calls(sessions, "операторов", offset=20, count=10, most=25)
    assert [h.linkedid for h in tail.hits] == _newest_first(everyone)[20:25]
    # Under the cap the count is exact.
    page = await search_calls(sessions, "оператор", offset=10, count=10, most=1000)
    assert (page.total, page.exact) == (N_CALLS, True)
    assert [h.linkedid for h in page.hits] == _newest_first(everyone)[10:20]

    # Filters and any further condition on calls (as the web passes a user's visibility).
    page = await search_calls(sessions, "операторов", SearchFilters(calls=Call.manager == "202"), count=100)
    assert [h.linkedid for h in page.hits] == _newest_first([j for j in everyone if j % 2 == 0])
    assert page.total == N_CALLS // 2 and page.exact

    # Two words: only calls where both are said; the first place either is said is the hit.
    page = await search_calls(sessions, "рассрочки оператор", count=100)
    assert [h.linkedid for h in page.hits] == _newest_first([j for j in everyone if j % 5 == 0])
    assert {h.speaker for h in page.hits} == {"manager"}
    # Nobody said it: the client's cards are looked at, and nothing is found.
    none = await search_calls(sessions, "скидка")
    assert (none.hits, none.total, none.exact) == ([], 0, True)


async def test_the_word_index_follows_transcripts_rewritten_and_deleted(
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
) -> None:
    await _fill(sessions)
    async with sessions() as session, session.begin():
        # Re-transcribed: call 5's client now asks for a discount instead.
        text = "Какая скидка для постоянных клиентов?"
        await session.execute(
            update(TranscriptSegment).where(TranscriptSegment.id == 51).values(text=text, lemmas=lemmatise(text))
        )
        # Call 10's transcript deleted (as retention does).
        await session.execute(delete(TranscriptSegment).where(TranscriptSegment.call_id == 10))
    assert [h.linkedid for h in await search(sessions, "скидку")] == [_linkedid(5)]
    assert [h.linkedid for h in await search(sessions, "рассрочка")] == _newest_first([15, 20, 25, 30])
    assert _linkedid(10) not in {h.linkedid for h in await search(sessions, "операторы")}
    async with sessions() as session:
        assert await session.scalar(select(func.count()).where(TranscriptTerm.call_id == 10)) == 0


async def test_a_call_whose_start_is_corrected_is_found_at_its_new_time(
    sessions: async_sessionmaker[AsyncSession],  # noqa: F811
) -> None:
    await _fill(sessions)
    # Call 5 rewritten with its real start: a day earlier than first written.
    moved = START - timedelta(days=1)
    async with sessions() as session, session.begin():
        await session.execute(update(Call).where(Call.id == 5).values(started_at=moved))
    found = [h.linkedid for h in await search(sessions, "рассрочка")]
    assert found == _newest_first([10, 15, 20, 25, 30]) + [_linkedid(5)]
    earlier = SearchFilters(date_to=START)
    assert [h.linkedid for h in await search(sessions, "рассрочка", earlier)] == [_linkedid(5)]
    async with sessions() as session:
        stale = select(func.count()).where(TranscriptTerm.call_id == 5, TranscriptTerm.started_at != moved)
        assert await session.scalar(stale) == 0
