"""Search over many calls: common words newest first, numbers and names through the cards."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.tables import Call, Recording
from pbxbridge.clients.tables import Client, ClientPhone
from pbxbridge.transcription import search as search_module
from pbxbridge.transcription.lemmas import lemmatise, words_of
from pbxbridge.transcription.search import SearchFilters, search
from pbxbridge.transcription.tables import TranscriptSegment

MANAGER_SAYS = "Все наши операторы заняты, оставайтесь на линии."
CLIENT_SAYS = "Подскажите, какая скидка для постоянных клиентов?"
CLIENT_ASKS_INSTALMENTS = "А рассрочку на год оформить можно?"
N_CALLS = 60
START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def _started(j: int) -> datetime:
    # Pairs of calls start at the same second, so that a walk's batch edge falls between equal times.
    return START + timedelta(minutes=(j // 2) * 7)


def _client_text(j: int) -> str:
    if j % 20 == 7:
        return CLIENT_SAYS + " " + CLIENT_ASKS_INSTALMENTS
    return CLIENT_SAYS if j % 3 == 0 else "Спасибо, до свидания."


def _segment(seg_id: int, rec_id: int, call_id: int, start: float, speaker: str, text: str) -> TranscriptSegment:
    words = [{"start": start + i * 0.4, "end": start + i * 0.4 + 0.3, "word": w} for i, w in enumerate(words_of(text))]
    return TranscriptSegment(
        id=seg_id, recording_id=rec_id, call_id=call_id, start_s=start, end_s=start + len(words) * 0.4,
        speaker=speaker, text=text, words=words, lemmas=lemmatise(text),
    )


async def _fill(factory: async_sessionmaker[AsyncSession]) -> None:
    """N_CALLS answered calls, a client card each (every tenth named), each with a two-sided transcript."""
    async with factory() as session, session.begin():
        for j in range(1, N_CALLS + 1):
            session.add(Client(id=j, name=f"ООО Ромашка {j}" if j % 10 == 0 else None, is_lead=False, created_at=START))
            session.add(ClientPhone(id=j, client_id=j, number=f"+7916{j:07d}"))
        await session.flush()
        for j in range(1, N_CALLS + 1):
            started = _started(j)
            session.add(Call(
                id=j, pbx="main", linkedid=f"1772441{j:03d}.{j}", direction="inbound" if j % 4 else "outbound",
                status="answered", client_id=j, client_number=f"+7916{j:07d}", manager="201" if j % 2 else "202",
                final_manager="201" if j % 2 else "202", rang=[], queues=[], transferred_to=[],
                started_at=started, answered_at=started + timedelta(seconds=3), ended_at=started + timedelta(seconds=60),
                wait_s=3.0, talk_s=57.0, originated=False, closed_by="hangup",
            ))
        await session.flush()
        for j in range(1, N_CALLS + 1):
            session.add(Recording(
                id=j, call_id=j, position=0, pbx_path=f"/var/spool/asterisk/monitor/q-{j}.wav", path=f"q-{j}.wav",
                status="ok", format="wav", channels=2, sample_rate=8000, duration_s=57.0, size_bytes=57 * 32000,
            ))
        await session.flush()
        for j in range(1, N_CALLS + 1):
            session.add(_segment(2 * j - 1, j, j, 1.0, "manager", MANAGER_SAYS))
            session.add(_segment(2 * j, j, j, 8.0, "client", _client_text(j)))
    async with factory() as session, session.begin():
        if session.bind.dialect.name == "postgresql":
            # Statistics as autovacuum gathers them: PostgreSQL searches read their estimates.
            await session.execute(text("ANALYZE"))


def _newest_first(calls: list[int]) -> list[str]:
    ordered = sorted(calls, key=lambda j: (-_started(j).timestamp(), -j))
    return [f"1772441{j:03d}.{j}" for j in ordered]


def _common_above(segments: int) -> Any:
    """A stand-in for the cap on matches read whole from the index, to force one way or the other."""

    async def cap(session: AsyncSession, limit: int) -> int:
        return segments

    return cap


def _key(hits: list[Any]) -> list[tuple[str, str, float, str]]:
    return [(h.linkedid, h.speaker, h.offset_s, h.snippet) for h in hits]


async def test_a_word_said_in_every_call_gives_the_newest_calls_with_the_moment_it_was_said(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    await _fill(sessions)
    filters = SearchFilters(limit=25)
    # Read whole from the full-text index and sorted by the database...
    monkeypatch.setattr(search_module, "_common_cap", _common_above(10_000))
    indexed = await search(sessions, "операторов", filters)
    # ...and walked newest call first, a few calls at a time, across calls that started together.
    monkeypatch.setattr(search_module, "_common_cap", _common_above(1))
    monkeypatch.setattr(search_module, "FIRST_WALK_CALLS", 3)
    walked = await search(sessions, "операторов", filters)

    assert _key(walked) == _key(indexed)
    assert [h.linkedid for h in walked] == _newest_first(list(range(1, N_CALLS + 1)))[:25]
    assert all(h.snippet == "Все наши [операторы] заняты, оставайтесь на линии." for h in walked)
    assert {(h.speaker, h.offset_s, h.matched) for h in walked} == {("manager", 1.8, "transcript")}

    # Filters narrow the walk, and a walk past the last call ends.
    outbound = await search(sessions, "оператор", SearchFilters(direction="outbound", manager="202", limit=100))
    assert [h.linkedid for h in outbound] == _newest_first([j for j in range(1, N_CALLS + 1) if j % 4 == 0])


async def test_every_word_of_a_query_must_be_said_in_the_call(
    sessions: async_sessionmaker[AsyncSession], monkeypatch: pytest.MonkeyPatch  # noqa: F811
) -> None:
    await _fill(sessions)
    instalments = [j for j in range(1, N_CALLS + 1) if j % 20 == 7]
    for common_from in (10_000, 1):
        monkeypatch.setattr(search_module, "_common_cap", _common_above(common_from))
        monkeypatch.setattr(search_module, "FIRST_WALK_CALLS", 4)
        # A rare word with a word said in every call: only calls with both, each place either is said.
        hits = await search(sessions, "рассрочки оператор", SearchFilters(limit=20))
        assert [h.linkedid for h in hits] == [x for x in _newest_first(instalments) for _ in (0, 1)]
        assert {h.speaker for h in hits} == {"manager", "client"}
        client_side = [h for h in hits if h.speaker == "client"]
        assert all("[рассрочку]" in h.snippet and "[скидка]" not in h.snippet for h in client_side)
        # One of the two never said with the other: nothing.
        assert await search(sessions, "рассрочка свидания") == []

    discount = [j for j in range(1, N_CALLS + 1) if j % 3 == 0 or j % 20 == 7]
    hits = await search(sessions, "скидки", SearchFilters(limit=5))
    assert [h.linkedid for h in hits] == _newest_first(discount)[:5]
    assert all(h.offset_s == 8.8 and "[скидка]" in h.snippet for h in hits)


async def test_a_number_in_any_form_finds_its_clients_calls(sessions: async_sessionmaker[AsyncSession]) -> None:  # noqa: F811
    await _fill(sessions)
    async with sessions() as session, session.begin():
        # The same client calls once more from a second number on the card.
        session.add(ClientPhone(id=1000, client_id=12, number="+74951112233"))
        started = START + timedelta(days=3)
        session.add(Call(
            id=1000, pbx="main", linkedid="1772999000.1", direction="inbound", status="missed", client_id=12,
            client_number="+74951112233", rang=["201"], queues=[], transferred_to=[], started_at=started,
            ended_at=started + timedelta(seconds=20), wait_s=20.0, talk_s=0.0, originated=False, closed_by="hangup",
        ))

    for query in ("+79160000012", "8 916 000-00-12", "9160000012", "79160000012"):
        hits = await search(sessions, query)
        assert [(h.linkedid, h.matched) for h in hits] == [
            ("1772999000.1", "client_number"), ("1772441012.12", "client_number")
        ], query
        assert hits[1].snippet == "[+79160000012]" and hits[1].recording == "q-12.wav"
        assert hits[0].recording is None
    # The start of a number: every client whose number begins so.
    hits = await search(sessions, "8916000005")
    assert [h.linkedid for h in hits] == _newest_first(list(range(50, 60)))
    # Its last digits.
    assert [h.linkedid for h in await search(sessions, "00047")] == ["1772441047.47"]
    assert await search(sessions, "+74950000000") == []
    assert await search(sessions, "9160000012", SearchFilters(status="missed")) != []
    assert await search(sessions, "9160000012", SearchFilters(status="busy")) == []


async def test_a_name_nobody_said_finds_the_clients_calls(sessions: async_sessionmaker[AsyncSession]) -> None:  # noqa: F811
    await _fill(sessions)
    hits = await search(sessions, "Ромашка")
    assert [(h.linkedid, h.matched) for h in hits] == [(x, "client_name") for x in _newest_first([10, 20, 30, 40, 50, 60])]
    assert hits[0].snippet == f"[{hits[0].client_name}]" and hits[0].client_name.startswith("ООО Ромашка")
    assert [h.linkedid for h in await search(sessions, "Ромашка 2")] == _newest_first([20])
    assert await search(sessions, "Ромашка", SearchFilters(direction="outbound")) != []
    assert await search(sessions, "Ландыш") == []
