"""A card's notes are a history: each note keeps its author and time, nothing is overwritten;
bad input is refused and loses nothing."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from tests.fixtures_card import CardSite, card_site  # noqa: F401 - fixture
from tests.fixtures_web import (  # noqa: F401 - fixtures
    fast_password_hashing,
    populated_templates,
    whisper_transcript,
)


async def test_notes_pile_up_with_author_and_time_newest_first(card_site: CardSite) -> None:
    path = f"/api/clients/{card_site.data.ivan_client_id}"
    ivan = await card_site.signed_in("ivan")
    olga = await card_site.signed_in("olga")
    before = datetime.now(UTC) - timedelta(seconds=1)
    status, first = await ivan.json("POST", f"{path}/notes", json={"text": "  Просил прайс на опт  "})
    assert status == 201 and (first["text"], first["author"]) == ("Просил прайс на опт", "ivan")
    status, _ = await olga.json("POST", f"{path}/notes", json={"text": "Скидку 5% согласовала"})
    assert status == 201
    # The card's form sends its notes field: a new text is one more note, the same one is nothing new.
    assert (await ivan.json("PATCH", path, json={"notes": "Перезвонить в пятницу"}))[0] == 200
    assert (await ivan.json("PATCH", path, json={"notes": "Перезвонить в пятницу"}))[0] == 200
    status, card = await ivan.json("GET", path)
    assert status == 200
    history = [(n["text"], n["author"]) for n in card["note_history"]]
    assert history == [
        ("Перезвонить в пятницу", "ivan"), ("Скидку 5% согласовала", "olga"), ("Просил прайс на опт", "ivan"),
    ]
    assert card["notes"] == "Перезвонить в пятницу"
    for note in card["note_history"]:
        assert before <= datetime.fromisoformat(note["created_at"]) <= datetime.now(UTC)
    added = await card_site.audit("add_client_note")
    assert [(e["username"], e["target"]) for e in added] == [("ivan", f"client:{card_site.data.ivan_client_id}"),
                                                            ("olga", f"client:{card_site.data.ivan_client_id}")]


async def test_a_bad_note_is_refused_and_the_history_stays(card_site: CardSite) -> None:
    path = f"/api/clients/{card_site.data.ivan_client_id}"
    ivan = await card_site.signed_in("ivan")
    assert (await ivan.json("POST", f"{path}/notes", json={"text": "Ждёт договор"}))[0] == 201
    for body, message in (
        ({"text": "   "}, "text: a note of 1 to 20000 characters"),
        ({"text": "x" * 20_001}, "text: a note of 1 to 20000 characters"),
        ({"text": 5}, "text: a note of 1 to 20000 characters"),
        ({"text": "ок", "author": "olga"}, "unknown field(s): author"),
    ):
        assert await ivan.json("POST", f"{path}/notes", json=body) == (400, {"error": message}), body
    # Another manager's client.
    status, _ = await ivan.json("POST", f"/api/clients/{card_site.data.petr_client_id}/notes", json={"text": "чужое"})
    assert status == 403
    _, card = await ivan.json("GET", path)
    assert [n["text"] for n in card["note_history"]] == ["Ждёт договор"]
