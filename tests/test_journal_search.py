"""The journal's search and filters against hostile input: a reason the page can show, never a 500,
and what a person typed found however they spaced it (real server, SQLite and PostgreSQL)."""

from __future__ import annotations

from typing import Any

import pytest

from pbxbridge.transcription.search import MAX_QUERY_WORDS, QueryTooLong, TooManyWords, check_query
from tests.fixtures_web import (  # noqa: F401 - fixtures
    fast_password_hashing,
    populated_templates,
    whisper_transcript,
)
from tests.test_web_api import Site, site  # noqa: F401 - the web app over both databases


async def _answer(client: Any, params: dict[str, str]) -> tuple[int, Any]:
    """(status, JSON body), failing on anything but JSON: a raw server message is no answer for the page."""
    async with client.send("GET", "/api/calls", params=params) as response:
        assert response.content_type == "application/json", (params, await response.text())
        return response.status, await response.json()


async def test_a_pasted_page_or_too_many_words_is_refused_with_a_reason(site: Site) -> None:
    olga = await site.signed_in("olga")
    for params, field, reason in (
        ({"q": "информацию " * 500}, "q", "too long"),  # 5,500 characters, 30 KB of address
        ({"q": "а" * 5000}, "q", "too long"),
        ({"q": " ".join(["да"] * 30)}, "q", "too many words"),
        ({"client": "Иван " * 1000}, "client", "too long"),
        ({"q": "информацию", "client": "Иван " * 1000, "manager": "203", "direction": "inbound"}, "client", "too long"),
    ):
        status, problem = await _answer(olga, {**params, "per_page": "200"})
        assert status == 400, (field, problem)
        assert problem["field"] == field and reason in problem["error"], problem
    # The export refuses it the same way, and writes no export to the audit log.
    async with olga.send("GET", "/api/calls/export.csv", params={"q": "информацию " * 500}) as export:
        assert export.status == 400 and "too long" in (await export.json())["error"]
    _, log = await olga.json("GET", "/api/audit")
    assert not [e for e in log["items"] if e["action"] == "export_calls"]
    # Nothing was lost: the journal answers as before.
    assert (await _answer(olga, {}))[1]["total"] == site.data.calls


async def test_odd_values_name_their_parameter_instead_of_failing(site: Site) -> None:
    olga = await site.signed_in("olga")
    for params in (
        {"q": "7" * 5000},  # digits: once a 500 (a number of thousands of digits)
        {"to": "9999-12-31"},  # the day after it is past what a date holds
        {"from": "0001-01-01"},  # before UTC begins in Moscow time
        {"min_duration": "nan"},
        {"max_duration": "inf"},
        {"min_duration": "1e400"},
        {"q": "ab\x00cd"},  # PostgreSQL's text refuses NUL
        {"client": "ab\x00cd"},
        {"manager": "2" * 200},
    ):
        status, problem = await _answer(olga, params)
        (key,) = params
        assert status == 400 and problem["field"] == key and problem["error"].startswith(f"{key}") or (
            status == 400 and key == "q" and "too long" in problem["error"]
        ), (params, status, problem)


async def test_wildcards_and_odd_characters_are_only_characters(site: Site) -> None:
    olga = await site.signed_in("olga")
    _, card = await olga.json("PATCH", f"/api/clients/{site.data.ivan_client_id}", json={"name": "Семёнов Пётр"})
    assert card["name"] == "Семёнов Пётр"
    for typed in ("%", "_", "%%", "Сем%нов", "Сем_нов", "\\", "'; --", "😀", "[", "]"):
        for key in ("q", "client"):
            status, page = await _answer(olga, {key: typed})
            assert status == 200 and page["items"] == [], (key, typed)
    # A fifteen-digit number is still a number: nothing matches, nothing fails.
    status, page = await _answer(olga, {"q": "1" * 15})
    assert status == 200 and page["items"] == []


async def test_two_spaces_between_words_find_what_one_space_finds(site: Site) -> None:
    olga = await site.signed_in("olga")
    await olga.json("PATCH", f"/api/clients/{site.data.ivan_client_id}", json={"name": "Семёнов Пётр"})
    for key in ("q", "client"):
        _, one = await _answer(olga, {key: "Семёнов Пётр"})
        assert [c["id"] for c in one["items"]] == [site.data.ivan_call_id], key
        for typed in ("Семёнов  Пётр", " Семёнов \t Пётр  ", "семёнов   пётр"):
            _, page = await _answer(olga, {key: typed})
            assert [c["id"] for c in page["items"]] == [site.data.ivan_call_id], (key, typed)
    # Words of a transcript too, and the page's hit marks them.
    _, one = await _answer(olga, {"q": "дополнительная информация"})
    _, two = await _answer(olga, {"q": "дополнительная   информация"})
    assert [c["id"] for c in one["items"]] == [c["id"] for c in two["items"]] == [site.data.ivan_call_id]
    assert "[информация]" in two["items"][0]["hit"]["snippet"]


def test_a_query_is_one_line_of_so_many_characters_and_words() -> None:
    # The command line's search reads queries through the same check as the web journal.
    assert check_query("  скидка \t на   доставку\n") == "скидка на доставку"
    assert check_query("ab\x00cd") == "ab cd"
    assert check_query(" ".join(["да"] * MAX_QUERY_WORDS)).count("да") == MAX_QUERY_WORDS
    with pytest.raises(QueryTooLong):
        check_query("а" * 201)
    with pytest.raises(TooManyWords):
        check_query(" ".join(["да"] * (MAX_QUERY_WORDS + 1)))
