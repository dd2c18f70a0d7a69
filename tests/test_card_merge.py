"""Merging two cards of the same person: the numbers, calls and notes of one move to the other,
the merged card is gone, the merge is in the audit log, and the person's next call finds the kept card."""

from __future__ import annotations

from sqlalchemy import func, select

from pbxbridge.calls.tables import Call
from pbxbridge.clients.store import find_client_by_number
from pbxbridge.kpi.tables import CallFactRow
from tests.fixtures_card import CardSite, card_site  # noqa: F401 - fixture
from tests.fixtures_web import (  # noqa: F401 - fixtures
    IVAN_CLIENT,
    PETR_CLIENT,
    fast_password_hashing,
    populated_templates,
    whisper_transcript,
)


async def _calls_of(site: CardSite, client_id: int) -> set[int]:
    async with site.sessions() as db:
        return set((await db.execute(select(Call.id).where(Call.client_id == client_id))).scalars())


async def test_the_head_merges_two_cards_of_one_person(card_site: CardSite) -> None:
    kept, merged = card_site.data.ivan_client_id, card_site.data.petr_client_id
    olga = await card_site.signed_in("olga")
    assert (await olga.json("POST", f"/api/clients/{kept}/notes", json={"text": "Основная карточка"}))[0] == 201
    assert (await olga.json("POST", f"/api/clients/{merged}/notes", json={"text": "Звонил с рабочего"}))[0] == 201
    assert (await olga.json("PATCH", f"/api/clients/{merged}", json={"name": "Иван Петров"}))[0] == 200
    moving = await _calls_of(card_site, merged)
    calls = await _calls_of(card_site, kept) | moving
    assert moving

    status, card = await olga.json("POST", f"/api/clients/{kept}/merge", json={"client_id": merged})
    assert status == 200, card
    assert card["numbers"] == sorted([IVAN_CLIENT, PETR_CLIENT])
    assert card["name"] == "Иван Петров"  # the kept card had none
    assert [n["text"] for n in card["note_history"]] == ["Звонил с рабочего", "Основная карточка"]
    assert await _calls_of(card_site, kept) == calls
    assert (await olga.json("GET", f"/api/clients/{merged}"))[0] == 404
    _, shown = await olga.json("GET", f"/api/clients/{kept}")
    assert {c["id"] for c in shown["calls"]} == calls

    async with card_site.sessions() as db:
        # The person's next call from the second number lands on the kept card.
        found = await find_client_by_number(db, PETR_CLIENT)
        assert found is not None and found.id == kept
        # The KPI drill-downs list the moved calls under the kept card.
        left = await db.scalar(select(func.count()).select_from(CallFactRow).where(CallFactRow.client_id == merged))
        assert left == 0

    (entry,) = await card_site.audit("merge_clients")
    assert (entry["username"], entry["target"]) == ("olga", f"client:{kept}")
    assert entry["details"]["merged"] == merged and entry["details"]["numbers"] == [PETR_CLIENT]
    assert entry["details"]["calls"] == len(moving)
    assert entry["details"]["notes"] == 1


async def test_a_merge_that_cannot_be_done_changes_nothing(card_site: CardSite) -> None:
    kept, merged = card_site.data.ivan_client_id, card_site.data.petr_client_id
    ivan = await card_site.signed_in("ivan")
    assert await ivan.json("POST", f"/api/clients/{kept}/merge", json={"client_id": merged}) == (
        403, {"error": "your role may not do this"})
    olga = await card_site.signed_in("olga")
    for body, answer in (
        ({"client_id": kept}, (400, {"error": "A card cannot be merged with itself"})),
        ({"client_id": "2"}, (400, {"error": "client_id: the card to merge into this one"})),
        ({}, (400, {"error": "client_id: the card to merge into this one"})),
        ({"client_id": 999_999}, (404, {"error": "no such client"})),
    ):
        assert await olga.json("POST", f"/api/clients/{kept}/merge", json=body) == answer, body
    for client_id in (kept, merged):
        status, card = await olga.json("GET", f"/api/clients/{client_id}")
        assert status == 200 and len(card["numbers"]) == 1
    assert await card_site.audit("merge_clients") == []
