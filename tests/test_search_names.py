"""Finding a client's calls by the name on the card, typed in any case."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.tables import Call
from pbxbridge.clients.tables import Client, ClientPhone
from pbxbridge.transcription.search import SearchFilters, search

START = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


async def _cards(factory: async_sessionmaker[AsyncSession]) -> None:
    """Three cards, one call each: a Cyrillic name, one with «ё», and a lead without a name."""
    names = {1: "Иванов Пётр", 2: "ООО «Семёнов и партнёры»", 3: None}
    async with factory() as session, session.begin():
        for i, name in names.items():
            session.add(Client(id=i, name=name, is_lead=name is None, created_at=START))
            session.add(ClientPhone(id=i, client_id=i, number=f"+7495000000{i}"))
        await session.flush()
        for i in names:
            started = START + timedelta(hours=i)
            session.add(Call(
                id=i, pbx="main", linkedid=f"1772500000.{i}", direction="inbound", status="missed", client_id=i,
                client_number=f"+7495000000{i}", rang=["201"], queues=[], transferred_to=[], started_at=started,
                ended_at=started + timedelta(seconds=20), wait_s=20.0, talk_s=0.0, originated=False,
                closed_by="hangup",
            ))


async def _found(factory: async_sessionmaker[AsyncSession], query: str, **filters: object) -> list[str]:
    return [h.linkedid for h in await search(factory, query, SearchFilters(**filters))]  # type: ignore[arg-type]


async def test_a_name_typed_in_lower_case_finds_the_card(sessions: async_sessionmaker[AsyncSession]) -> None:  # noqa: F811
    await _cards(sessions)
    for query in ("иванов", "ИВАНОВ", "Иванов", "иванов петр", "пётр"):
        hits = await search(sessions, query)
        assert [(h.linkedid, h.matched, h.client_name) for h in hits] == [
            ("1772500000.1", "client_name", "Иванов Пётр")
        ], query
    # «е» typed for «ё», as people do.
    assert await _found(sessions, "семенов и партнеры") == ["1772500000.2"]
    assert await _found(sessions, "сидоров") == []
    # The name as a filter of another search.
    assert await _found(sessions, "0000001", client="иванов") == ["1772500000.1"]
    assert await _found(sessions, "0000002", client="иванов") == []


async def test_a_card_named_later_is_found_by_its_name(sessions: async_sessionmaker[AsyncSession]) -> None:  # noqa: F811
    await _cards(sessions)
    # Named through the application...
    async with sessions() as session, session.begin():
        card = await session.get(Client, 3)
        assert card is not None
        card.name = "Кузнецова Анна"
    assert await _found(sessions, "кузнецова") == ["1772500000.3"]
    # ...renamed there, only the case changing...
    async with sessions() as session, session.begin():
        card = await session.get(Client, 1)
        assert card is not None
        card.name = "ИВАНОВ Пётр"
    assert await _found(sessions, "иванов") == ["1772500000.1"]
    # ...and a name cleared and written again in SQL by hand, around it: found as written.
    async with sessions() as session, session.begin():
        await session.execute(update(Client).where(Client.id == 3).values(name=None))
        assert await session.scalar(select(Client.name_folded).where(Client.id == 3)) is None
        await session.execute(update(Client).where(Client.id == 3).values(name="Петров Иван"))
    assert await _found(sessions, "Петров") == ["1772500000.3"]
    assert await _found(sessions, "кузнецова") == []
