"""The journal filters by call review: a tag, a checklist score under a percent, reviewed or not;
the same filters as the review's own SQL conditions, so the journal and the review agree."""

from __future__ import annotations

from tests.fixtures_card import CardSite, card_site  # noqa: F401 - fixture
from tests.fixtures_web import (  # noqa: F401 - fixtures
    fast_password_hashing,
    populated_templates,
    whisper_transcript,
)


async def test_the_journal_lists_calls_by_tag_score_and_not_reviewed(card_site: CardSite) -> None:
    olga = await card_site.signed_in("olga")
    status, setup = await olga.json("PUT", "/api/review/setup", json={
        "tags": ["Возражение по цене", "Нет приветствия"], "checklist": ["Поздоровался", "Назвал цену"]})
    assert status == 200
    greeted, priced = (str(c["id"]) for c in setup["checklist"])
    ivan_call, petr_call = card_site.data.ivan_call_id, card_site.data.petr_call_id
    assert (await olga.json("PUT", f"/api/calls/{ivan_call}/review", json={
        "reviewed": True, "tags": ["Нет приветствия"], "checks": {greeted: False, priced: True}}))[0] == 200
    assert (await olga.json("PUT", f"/api/calls/{petr_call}/review", json={
        "tags": ["Возражение по цене", "Нет приветствия"], "checks": {greeted: True, priced: True}}))[0] == 200

    async def listed(**params: str) -> set[int]:
        status, page = await olga.json("GET", "/api/calls", params={**params, "per_page": "200"})
        assert status == 200, page
        return {c["id"] for c in page["items"]}

    everything = await listed()
    assert await listed(tag="Нет приветствия") == {ivan_call, petr_call}
    assert await listed(tag="Возражение по цене") == {petr_call}
    assert await listed(tag="Такого тега нет") == set()
    assert await listed(score_below="60") == {ivan_call}
    assert await listed(score_below="101") == {ivan_call, petr_call}
    assert await listed(reviewed="true") == {ivan_call}
    assert await listed(reviewed="false") == everything - {ivan_call}
    assert await listed(reviewed="false", tag="Нет приветствия") == {petr_call}

    # The manager's journal filters only his own calls.
    ivan = await card_site.signed_in("ivan")
    status, mine = await ivan.json("GET", "/api/calls", params={"tag": "Нет приветствия"})
    assert status == 200 and {c["id"] for c in mine["items"]} == {ivan_call}

    for params, message in (
        ({"score_below": "abc"}, "score_below: expected an integer, got 'abc'"),
        ({"score_below": "102"}, "score_below: must be between 0 and 101"),
        ({"reviewed": "maybe"}, "reviewed: expected true or false, got 'maybe'"),
    ):
        status, problem = await olga.json("GET", "/api/calls", params=params)
        assert (status, problem["error"], problem.get("field")) == (400, message, next(iter(params))), params
