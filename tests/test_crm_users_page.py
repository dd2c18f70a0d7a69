"""The head keeps the extension ↔ CRM user mapping in the web app: set, changed, removed, each in the
audit log; other roles may not; bad input is refused with the reason and changes nothing.

SQLite only: the mapping's storage is tested on both databases by test_crm_users.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest
from sqlalchemy import select

from pbxbridge.clients.tables import Manager
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.web.app import WebServer
from pbxbridge.web.context import WebContext
from pbxbridge.web.sessions import SessionSigner
from pbxbridge.web.tables import AuditEntry
from pbxbridge.web.users import add_user
from tests.conftest import fresh_database
from tests.fixtures_web import PASSWORD, ApiClient, fast_password_hashing, web_config  # noqa: F401


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database(request, "sqlite", tmp_path)


@pytest.fixture
async def site(db_url: str, shared_dir: Path, fast_password_hashing: None) -> AsyncIterator[tuple[str, WebContext]]:  # noqa: F811
    config = web_config(db_url, shared_dir)
    config.crm.amocrm.base_url = "https://example.amocrm.ru"
    engine = make_engine(db_url)
    context = WebContext(config=config, sessions=session_factory(engine), signer=SessionSigner(config.web.secret_key))
    async with context.sessions() as db, db.begin():
        await add_user(db, "olga", PASSWORD, "head")
        await add_user(db, "ivan", PASSWORD, "manager", "203")
        await add_user(db, "sergey", PASSWORD, "ops")
        db.add(Manager(extension="203", name="Иван Петров"))
    server = WebServer(context, host="127.0.0.1", port=0)
    await server.start()
    try:
        yield server.url, context
    finally:
        await server.stop()
        await engine.dispose()


async def signed_in(url: str, username: str) -> ApiClient:
    client = ApiClient(url)
    assert (await client.login(username)).status == 200
    return client


async def test_the_head_maps_an_extension_to_a_crm_user_changes_and_removes_it(
    site: tuple[str, WebContext],
) -> None:
    url, context = site
    olga = await signed_in(url, "olga")
    try:
        status, body = await olga.json("GET", "/api/crm/users")
        assert status == 200
        assert body["configured"] == ["amocrm"] and body["items"] == []
        assert body["managers"] == [{"extension": "203", "name": "Иван Петров"}]

        status, item = await olga.json("PUT", "/api/crm/users/amocrm/203", json={"user_id": "9001", "name": " Иванов "})
        assert status == 200
        assert (item["user_id"], item["name"], item["source"]) == ("9001", "Иванов", "manual")
        status, item = await olga.json("PUT", "/api/crm/users/amocrm/203", json={"user_id": 9002})
        assert status == 200 and item["user_id"] == "9002" and item["name"] is None
        _, body = await olga.json("GET", "/api/crm/users")
        assert [(i["target"], i["extension"], i["user_id"]) for i in body["items"]] == [("amocrm", "203", "9002")]

        for path, sent, error in (
            ("/api/crm/users/amocrm/203", {"user_id": "x9"}, "user_id: the user's number in the CRM"),
            ("/api/crm/users/amocrm/20%203", {"user_id": "1"}, "extension: digits only, as dialled on the PBX"),
            ("/api/crm/users/amocrm/203", {"user_id": "1", "name": "я" * 201}, "name: text of at most 200 characters"),
            ("/api/crm/users/salesforce/203", {"user_id": "1"}, "no such CRM"),
        ):
            status, answer = await olga.json("PUT", path, json=sent)
            assert (status, answer) == (404 if "salesforce" in path else 400, {"error": error}), path
        _, body = await olga.json("GET", "/api/crm/users")
        assert [i["user_id"] for i in body["items"]] == ["9002"]  # nothing changed by the refused ones

        async with olga.send("DELETE", "/api/crm/users/amocrm/203") as removed:
            assert removed.status == 204
        status, _ = await olga.json("DELETE", "/api/crm/users/amocrm/203")
        assert status == 404
    finally:
        await olga.close()
    async with context.sessions() as db:
        log = (await db.execute(select(AuditEntry.action, AuditEntry.target, AuditEntry.username)
                                .where(AuditEntry.action.like("crm_user%")).order_by(AuditEntry.id))).all()
    assert log == [("crm_user_set", "amocrm:203", "olga"), ("crm_user_set", "amocrm:203", "olga"),
                   ("crm_user_removed", "amocrm:203", "olga")]


async def test_only_the_head_sees_or_changes_the_mapping_and_the_page(site: tuple[str, WebContext]) -> None:
    url, _ = site
    for username in ("ivan", "sergey"):
        client = await signed_in(url, username)
        try:
            assert (await client.json("GET", "/api/crm/users"))[0] == 403
            assert (await client.json("PUT", "/api/crm/users/amocrm/203", json={"user_id": "1"}))[0] == 403
            async with client.send("GET", "/crm") as page:
                assert page.status == 403
        finally:
            await client.close()
    olga = await signed_in(url, "olga")
    try:
        async with olga.send("GET", "/crm") as page:
            html = await page.text()
            assert page.status == 200 and 'id="crm-users-page"' in html and "js/crm_users.js" in html
            assert 'href="/crm"' in html
    finally:
        await olga.close()
