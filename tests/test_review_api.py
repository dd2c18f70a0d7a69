"""Call review over the API: the head marks a call (comments at moments, tags, a checklist score,
reviewed), the manager whose call it is reads it and cannot change it, the journal's filters
find calls by tag, score and "not reviewed", and the KPI page's summary counts reviews per manager."""

from __future__ import annotations

from sqlalchemy import func, select

from pbxbridge.calls.tables import Call
from pbxbridge.review.filters import not_reviewed, reviewed, score_at_least, score_below, tagged
from tests.fixtures_card import CardSite, card_site  # noqa: F401 - fixture
from tests.fixtures_web import (  # noqa: F401 - fixtures
    fast_password_hashing,
    populated_templates,
    whisper_transcript,
)

TAGS = ["Возражение по цене", "Нет приветствия", "Договорились о встрече"]
CHECKLIST = ["Поздоровался и представился", "Выяснил потребность", "Назначил следующий шаг"]


async def _setup(site: CardSite) -> dict[str, int]:
    olga = await site.signed_in("olga")
    status, setup = await olga.json("PUT", "/api/review/setup", json={"tags": TAGS, "checklist": CHECKLIST})
    assert status == 200, setup
    assert setup["tags"] == sorted(TAGS)
    assert [c["text"] for c in setup["checklist"]] == CHECKLIST
    return {c["text"]: c["id"] for c in setup["checklist"]}


async def test_the_manager_reads_the_heads_review_of_his_call(card_site: CardSite) -> None:
    lines = await _setup(card_site)
    olga = await card_site.signed_in("olga")
    call = f"/api/calls/{card_site.data.ivan_call_id}/review"
    status, comment = await olga.json("POST", f"{call}/comments", json={
        "at_s": 3.25, "text": "Здесь надо было назвать цену", "recording_id": card_site.data.ivan_recording_id,
    })
    assert status == 201 and comment["author"] == "olga" and comment["at_s"] == 3.25
    status, review = await olga.json("PUT", call, json={
        "reviewed": True, "tags": ["Возражение по цене"],
        "checks": {str(lines["Поздоровался и представился"]): True, str(lines["Выяснил потребность"]): True,
                   str(lines["Назначил следующий шаг"]): False},
    })
    assert status == 200, review
    assert (review["reviewed"], review["score"], review["tags"]) == (True, 67, ["Возражение по цене"])

    ivan = await card_site.signed_in("ivan")
    status, seen = await ivan.json("GET", call)
    assert status == 200
    assert seen["reviewed"] is True and seen["reviewer"] == "olga" and seen["score"] == 67
    assert seen["tags"] == ["Возражение по цене"]
    assert [(c["at_s"], c["text"], c["author"], c["recording_id"]) for c in seen["comments"]] == [
        (3.25, "Здесь надо было назвать цену", "olga", card_site.data.ivan_recording_id)
    ]
    assert {c["text"]: c["met"] for c in seen["checks"]} == {
        "Поздоровался и представился": True, "Выяснил потребность": True, "Назначил следующий шаг": False,
    }
    # Another manager's call stays closed to him, its review too.
    status, _ = await ivan.json("GET", f"/api/calls/{card_site.data.petr_call_id}/review")
    assert status == 403


async def test_a_manager_cannot_review_and_the_refusal_is_in_the_audit_log(card_site: CardSite) -> None:
    await _setup(card_site)
    ivan = await card_site.signed_in("ivan")
    call = f"/api/calls/{card_site.data.ivan_call_id}/review"
    for method, path, body in (
        ("PUT", call, {"reviewed": True}),
        ("POST", f"{call}/comments", {"at_s": 1, "text": "сам себя похвалю"}),
        ("PUT", "/api/review/setup", {"tags": ["Мой тег"]}),
    ):
        assert await ivan.json(method, path, json=body) == (403, {"error": "your role may not do this"}), path
    _, review = await ivan.json("GET", call)
    assert (review["reviewed"], review["comments"]) == (False, [])
    _, setup = await ivan.json("GET", "/api/review/setup")
    assert setup["tags"] == sorted(TAGS)
    refused = [(e["username"], e["target"], e["details"]["status"]) for e in await card_site.audit("request_refused")]
    assert ("ivan", f"PUT {call}", 403) in refused
    assert ("ivan", f"POST {call}/comments", 403) in refused


async def test_bad_review_input_is_refused_and_nothing_is_lost(card_site: CardSite) -> None:
    lines = await _setup(card_site)
    olga = await card_site.signed_in("olga")
    call = f"/api/calls/{card_site.data.ivan_call_id}/review"
    first = {str(lines["Выяснил потребность"]): True}
    assert (await olga.json("PUT", call, json={"tags": ["Нет приветствия"], "checks": first}))[0] == 200
    for body, message in (
        ({"tags": ["Нет приветствия", "Грубость"]}, "tags: not on the shared list: Грубость"),
        ({"checks": {"999999": True}}, "checks: no checklist line 999999"),
        ({"checks": {"x": True}}, "checks: checklist line ids with true or false"),
        ({"reviewed": "yes"}, "reviewed: true or false"),
        ({"score": 5}, "unknown field(s): score"),
    ):
        assert await olga.json("PUT", call, json=body) == (400, {"error": message}), body
    for body, message in (
        ({"at_s": -1, "text": "до начала"}, "at_s: seconds from the start of the recording, 0 or more"),
        ({"at_s": 2, "text": "   "}, "text: the comment is empty"),
        ({"at_s": 2, "text": "чужая запись", "recording_id": 999_999}, "recording_id: a recording of this call"),
    ):
        assert await olga.json("POST", f"{call}/comments", json=body) == (400, {"error": message}), body
    _, review = await olga.json("GET", call)
    assert (review["tags"], review["score"], review["comments"]) == (["Нет приветствия"], 100, [])
    # Taking a line off the checklist keeps the reviews that scored it.
    status, setup = await olga.json("PUT", "/api/review/setup", json={"checklist": ["Назначил следующий шаг"]})
    assert status == 200 and [c["text"] for c in setup["checklist"]] == ["Назначил следующий шаг"]
    _, review = await olga.json("GET", call)
    assert [(c["text"], c["met"]) for c in review["checks"]] == [("Выяснил потребность", True)]


async def test_a_comment_is_taken_back_by_the_head_only(card_site: CardSite) -> None:
    olga = await card_site.signed_in("olga")
    call = f"/api/calls/{card_site.data.ivan_call_id}/review"
    _, comment = await olga.json("POST", f"{call}/comments", json={"at_s": 7, "text": "Перебил клиента"})
    ivan = await card_site.signed_in("ivan")
    assert (await ivan.json("DELETE", f"{call}/comments/{comment['id']}"))[0] == 403
    async with olga.send("DELETE", f"{call}/comments/{comment['id']}") as response:
        assert response.status == 204
    assert (await olga.json("DELETE", f"{call}/comments/{comment['id']}"))[0] == 404
    _, review = await ivan.json("GET", call)
    assert review["comments"] == []


async def test_journal_filters_and_the_summary_per_manager(card_site: CardSite) -> None:
    lines = await _setup(card_site)
    olga = await card_site.signed_in("olga")
    ivan_call, petr_call = card_site.data.ivan_call_id, card_site.data.petr_call_id
    met = str(lines["Поздоровался и представился"])
    missed = str(lines["Назначил следующий шаг"])
    assert (await olga.json("PUT", f"/api/calls/{ivan_call}/review", json={
        "reviewed": True, "tags": ["Нет приветствия"], "checks": {met: True, missed: False}}))[0] == 200
    assert (await olga.json("PUT", f"/api/calls/{petr_call}/review", json={
        "tags": ["Договорились о встрече"], "checks": {met: True, missed: True}}))[0] == 200
    await olga.json("POST", f"/api/calls/{petr_call}/review/comments", json={"at_s": 1, "text": "Хорошо"})

    async def ids(*conditions: object) -> set[int]:
        async with card_site.sessions() as db:
            return set((await db.execute(select(Call.id).where(*conditions))).scalars())  # type: ignore[arg-type]

    async with card_site.sessions() as db:
        total = int(await db.scalar(select(func.count()).select_from(Call)) or 0)
    assert await ids(tagged("Нет приветствия")) == {ivan_call}
    assert await ids(tagged("Возражение по цене")) == set()
    assert await ids(score_below(60)) == {ivan_call}
    assert await ids(score_at_least(60)) == {petr_call}
    assert await ids(reviewed()) == {ivan_call}
    not_yet = await ids(not_reviewed())
    assert petr_call in not_yet and ivan_call not in not_yet and len(not_yet) == total - 1

    status, summary = await olga.json("GET", "/api/review/summary", params={"from": "2026-01-01", "to": "2026-12-31"})
    assert status == 200, summary
    by_manager = {r["manager"]: r for r in summary["items"]}
    assert (by_manager["203"]["reviewed"], by_manager["203"]["average_score"]) == (1, 50.0)
    assert (by_manager["202"]["reviewed"], by_manager["202"]["scored"], by_manager["202"]["average_score"],
            by_manager["202"]["comments"]) == (0, 1, 100.0, 1)
    ivan = await card_site.signed_in("ivan")
    assert (await ivan.json("GET", "/api/review/summary"))[0] == 403
    assert (await olga.json("GET", "/api/review/summary", params={"from": "07.12.2026"}))[1] == {
        "error": "from: a date as YYYY-MM-DD, not 07.12.2026"}
