"""The journal filtered by what was said and by the head's review, over HTTP, on every captured call.

Ivan's call (01-inbound-answered) is transcribed by the bundled model: the manager's
prompt says «Все наши операторы заняты. Пожалуйста, оставайтесь на линии, и Ваш звонок
будет обслужен первым доступным оператором.» on one channel. It is checked against a
real checklist by the analytics, and reviewed by the head; each filter must narrow the
journal to the calls a head expects, in the list, in its count, in the CSV and in a saved filter.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

from pbxbridge.analytics.checklist import parse_checklist
from pbxbridge.analytics.store import analyse_calls, set_checklist, stored_checklists
from tests.fixtures_card import CardSite, card_site  # noqa: F401 - fixture
from tests.fixtures_web import (  # noqa: F401 - fixtures
    fast_password_hashing,
    populated_templates,
    whisper_transcript,
)

SCRIPT = {
    "name": "Входящий",
    "items": [
        {"title": "Пообещал обслужить", "phrases": ["ваш звонок обслужить"], "side": "manager"},
        {"title": "Предложил скидку", "phrases": ["скидка"], "side": "manager"},
        {"title": "Не просил ждать", "phrases": ["оставаться на линии"], "must": False},
    ],
}
TAGS = ["Возражение по цене", "Нет приветствия"]
LINES = ["Поздоровался и представился", "Назначил следующий шаг"]


async def _checked_and_reviewed(site: CardSite) -> Any:
    async with site.sessions() as session, session.begin():
        await set_checklist(session, parse_checklist(SCRIPT))
        checklists = await stored_checklists(session)
    counts = await analyse_calls(site.sessions, [site.data.ivan_call_id], checklists)
    assert counts.checks == 1
    olga = await site.signed_in("olga")
    status, setup = await olga.json("PUT", "/api/review/setup", json={"tags": TAGS, "checklist": LINES})
    assert status == 200, setup
    met, missed = (str(c["id"]) for c in setup["checklist"])
    ivan_call, petr_call = site.data.ivan_call_id, site.data.petr_call_id
    assert (await olga.json("PUT", f"/api/calls/{ivan_call}/review", json={
        "reviewed": True, "tags": ["Нет приветствия"], "checks": {met: True, missed: False}}))[0] == 200
    assert (await olga.json("PUT", f"/api/calls/{petr_call}/review", json={
        "tags": ["Нет приветствия"], "checks": {met: True, missed: True}}))[0] == 200
    return olga


async def _ids(client: Any, **params: str) -> tuple[set[int], int]:
    status, page = await client.json("GET", "/api/calls", params={"per_page": "200", **params})
    assert status == 200, (params, page)
    return {c["id"] for c in page["items"]}, page["total"]


async def test_each_filter_narrows_the_journal_to_the_calls_it_names(card_site: CardSite) -> None:
    olga = await _checked_and_reviewed(card_site)
    ivan_call, petr_call, every = card_site.data.ivan_call_id, card_site.data.petr_call_id, card_site.data.calls
    _, total = await _ids(olga)
    assert total == every

    # Call review: by tag, by score, not reviewed.
    assert await _ids(olga, tag="Нет приветствия") == ({ivan_call, petr_call}, 2)
    assert await _ids(olga, tag="Возражение по цене") == (set(), 0)
    assert await _ids(olga, score_below="60") == ({ivan_call}, 1)
    assert await _ids(olga, score_at_least="60") == ({petr_call}, 1)
    assert await _ids(olga, reviewed="true") == ({ivan_call}, 1)
    not_reviewed, count = await _ids(olga, reviewed="false")
    assert count == every - 1 and ivan_call not in not_reviewed and petr_call in not_reviewed
    # Combined with each other and with the journal's own filters.
    assert await _ids(olga, tag="Нет приветствия", reviewed="false") == ({petr_call}, 1)
    assert await _ids(olga, tag="Нет приветствия", manager="203") == ({ivan_call}, 1)

    # Speech analytics: a failed item, a stop phrase said (the prompt asks to stay on the line).
    assert await _ids(olga, checklist="Входящий", failed_item="Предложил скидку") == ({ivan_call}, 1)
    assert await _ids(olga, checklist="Входящий", failed_item="Пообещал обслужить") == (set(), 0)
    assert await _ids(olga, checklist="Другой", failed_item="Предложил скидку") == (set(), 0)
    assert await _ids(olga, stop_said="true") == ({ivan_call}, 1)
    assert (await _ids(olga, stop_said="false"))[1] == every - 1
    assert await _ids(olga, stop_said="true", reviewed="false") == (set(), 0)

    # What was said, the way it was said.
    assert (await _ids(olga, q='"доступным оператором"'))[0] == {ivan_call}
    assert (await _ids(olga, q='"оператором доступным"'))[1] == 0
    assert (await _ids(olga, q="оператором доступным"))[0] == {ivan_call}
    status, page = await olga.json("GET", "/api/calls", params={"q": "«оставаться на линии»", "side": "manager"})
    assert status == 200 and [c["id"] for c in page["items"]] == [ivan_call]
    # One channel: whose words they were is not known, and the hit says it matched the whole call.
    assert page["items"][0]["hit"]["side_unknown"] is True

    # The manager sees only his own calls under the same filters.
    ivan = await card_site.signed_in("ivan")
    assert await _ids(ivan, tag="Нет приветствия") == ({ivan_call}, 1)
    assert await _ids(ivan, stop_said="true") == ({ivan_call}, 1)

    # What the filters offer: the shared tags and every checklist's items.
    status, options = await olga.json("GET", "/api/calls/filter-options")
    assert status == 200
    assert options["tags"] == sorted(TAGS)
    assert options["checklists"] == [
        {"name": "Входящий", "items": ["Пообещал обслужить", "Предложил скидку", "Не просил ждать"]}
    ]


async def test_the_export_and_a_saved_filter_keep_the_new_filters(card_site: CardSite) -> None:
    olga = await _checked_and_reviewed(card_site)
    query = {"tag": "Нет приветствия", "reviewed": "false"}
    async with olga.send("GET", "/api/calls/export.csv", params=query) as response:
        assert response.status == 200
        rows = (await response.read()).decode("utf-8-sig").strip().split("\r\n")
    assert len(rows) == 2  # the header and Petr's call
    async with olga.send("GET", "/api/calls/export.csv", params={"checklist": "Входящий",
                                                                  "failed_item": "Предложил скидку"}) as response:
        assert len((await response.read()).decode("utf-8-sig").strip().split("\r\n")) == 2

    status, saved = await olga.json("POST", "/api/calls/filters", json={
        "name": "Скидку не предложил",
        "query": "checklist=Входящий&failed_item=Предложил+скидку&stop_said=true&score_below=60&page=3",
    })
    assert status == 201, saved
    # The page it was on is not kept; every filter is, and opened again it lists the same call.
    kept = dict(parse_qsl(saved["query"]))
    assert kept == {"checklist": "Входящий", "failed_item": "Предложил скидку", "stop_said": "true", "score_below": "60"}
    assert await _ids(olga, **kept) == ({card_site.data.ivan_call_id}, 1)


async def test_bad_filters_are_refused_with_the_field_named(card_site: CardSite) -> None:
    olga = await card_site.signed_in("olga")
    for params, field in (
        ({"score_below": "много"}, "score_below"),
        ({"score_at_least": "101"}, "score_at_least"),
        ({"reviewed": "может быть"}, "reviewed"),
        ({"failed_item": "Предложил скидку"}, "checklist"),
        ({"side": "client"}, "side"),
        ({"q": "скидка", "side": "boss"}, "side"),
        ({"tag": "т" * 61}, "tag"),
    ):
        status, body = await olga.json("GET", "/api/calls", params=params)
        assert status == 400 and body.get("field") == field, (params, body)
    # A saved filter with a bad one is refused before it is kept.
    status, body = await olga.json("POST", "/api/calls/filters", json={"name": "x", "query": "score_below=abc"})
    assert status == 400 and body.get("field") == "score_below"
