"""Deleting a checklist over the API: the head only, by its name as written (Cyrillic, spaces), gone
from the list afterwards; a name that is not there is a clear 404, and a manager cannot delete."""

from __future__ import annotations

from urllib.parse import quote

from tests.fixtures_web import (  # noqa: F401 - fixtures
    fast_password_hashing,
    populated_templates,
    whisper_transcript,
)
from tests.test_web_api import Site, site  # noqa: F401 - fixture

NAME = "Входящий звонок"
CHECKLIST = {"name": NAME, "items": [{"title": "Назвал компанию", "phrases": ["компания ромашка"]}]}


async def test_the_head_deletes_a_checklist_by_its_name(site: Site) -> None:
    head = await site.signed_in("olga")
    status, _ = await head.json("PUT", "/api/checklists", json=CHECKLIST)
    assert status == 200
    url = f"/api/checklists/{quote(NAME)}"

    manager = await site.signed_in("ivan")
    status, _ = await manager.json("DELETE", url)
    assert status == 403
    status, listed = await head.json("GET", "/api/checklists")
    assert [c["name"] for c in listed["checklists"]] == [NAME]

    async with head.send("DELETE", url) as response:
        assert response.status == 204
    status, listed = await head.json("GET", "/api/checklists")
    assert listed["checklists"] == []

    status, answer = await head.json("DELETE", url)
    assert status == 404 and NAME in answer["error"]
