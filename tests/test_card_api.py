"""A client's card over the API: numbers as people write them, the saved card answered back
(what the page redraws from), bad input refused with nothing lost."""

from __future__ import annotations

from sqlalchemy import update

from pbxbridge.clients.tables import Manager
from tests.fixtures_card import CardSite, card_site  # noqa: F401 - fixture
from tests.fixtures_web import (  # noqa: F401 - fixtures
    IVAN_CLIENT,
    fast_password_hashing,
    populated_templates,
    whisper_transcript,
)


async def test_card_and_list_show_numbers_as_people_write_them(card_site: CardSite) -> None:
    ivan = await card_site.signed_in("ivan")
    status, card = await ivan.json("GET", f"/api/clients/{card_site.data.ivan_client_id}")
    assert status == 200
    assert card["numbers"] == [IVAN_CLIENT]
    assert card["phones"] == [{"number": IVAN_CLIENT, "display": "+7 (916) 111-00-01"}]
    status, found = await ivan.json("GET", "/api/clients", params={"q": "1110001"})
    assert status == 200
    assert [c["phones"] for c in found["items"]] == [[{"number": IVAN_CLIENT, "display": "+7 (916) 111-00-01"}]]


async def test_saving_answers_the_card_as_stored_with_the_managers_name(card_site: CardSite) -> None:
    async with card_site.sessions() as db, db.begin():
        await db.execute(update(Manager).where(Manager.extension == "202").values(name="Пётр Смирнов"))
    olga = await card_site.signed_in("olga")
    path = f"/api/clients/{card_site.data.ivan_client_id}"
    status, saved = await olga.json("PATCH", path, json={
        "name": "  ООО «Ромашка»  ", "notes": "Перезвонить в понедельник", "is_lead": False,
        "responsible_manager": "202",
    })
    assert status == 200
    assert (saved["name"], saved["notes"], saved["is_lead"]) == ("ООО «Ромашка»", "Перезвонить в понедельник", False)
    assert (saved["responsible_manager"], saved["responsible_manager_name"]) == ("202", "Пётр Смирнов")
    assert saved["phones"][0]["display"] == "+7 (916) 111-00-01"
    _, again = await olga.json("GET", path)
    assert {k: again[k] for k in saved} == saved


async def test_bad_input_is_refused_and_the_card_keeps_what_it_had(card_site: CardSite) -> None:
    ivan = await card_site.signed_in("ivan")
    path = f"/api/clients/{card_site.data.ivan_client_id}"
    status, _ = await ivan.json("PATCH", path, json={"notes": "Прайс отправлен"})
    assert status == 200
    for body, message in (
        ({"notes": "x" * 20_001}, "notes: text up to 20000 characters"),
        ({"name": 5}, "name: text up to 200 characters"),
        ({"notes": "стёрто", "colour": "red"}, "unknown field(s): colour"),
        ({"notes": "стёрто", "responsible_manager": "203"}, "only the head of sales reassigns clients"),
    ):
        status, answer = await ivan.json("PATCH", path, json=body)
        assert status in (400, 403), body
        assert answer == {"error": message}
    olga = await card_site.signed_in("olga")
    status, answer = await olga.json("PATCH", path, json={"notes": "стёрто", "responsible_manager": "999"})
    assert (status, answer) == (400, {"error": "responsible_manager: no manager with extension 999"})
    _, card = await ivan.json("GET", path)
    assert card["notes"] == "Прайс отправлен"
