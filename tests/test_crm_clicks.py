"""A manager clicks a number in Bitrix24: the portal's OnExternalCallStart rings the manager's handset
through pbxbridge's click-to-call, and only with the application's token.

SQLite only: the event's checks depend on no database.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pbxbridge.config import Bitrix24Config, CrmConfig
from pbxbridge.crm.users import MANUAL, set_user
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.routing.click_to_call import ExtensionBusy
from pbxbridge.web.app import WebServer
from pbxbridge.web.context import WebContext
from pbxbridge.web.sessions import SessionSigner
from pbxbridge.web.tables import AuditEntry
from tests.conftest import fresh_database
from tests.fakes_bitrix24 import FakeBitrix24
from tests.fixtures_web import web_config

APP_TOKEN = "bx-app-token-5f0c"
CLIENT = "+79161110001"


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database(request, "sqlite", tmp_path)


@dataclass(slots=True)
class Site:
    events_url: str
    context: WebContext
    rang: list[tuple[str, str]] = field(default_factory=list)
    busy: set[str] = field(default_factory=set)


@pytest.fixture
async def site(db_url: str, shared_dir: Path) -> AsyncIterator[Site]:
    config = web_config(db_url, shared_dir)
    config.crm = CrmConfig(bitrix24=Bitrix24Config(application_token=APP_TOKEN))
    engine = make_engine(db_url)
    context = WebContext(config=config, sessions=session_factory(engine), signer=SessionSigner("k" * 32))
    async with context.sessions() as db, db.begin():
        # Bitrix24 user 14 is the manager at extension 204 (as `pbxbridge crm users sync` reads it).
        await set_user(db, "bitrix24", "204", "14", "Manager204", MANUAL, datetime.now(UTC))
    server = WebServer(context, host="127.0.0.1", port=0)
    site = Site(f"{server.url}/api/crm/bitrix24/events", context)

    async def originate(extension: str, number: str) -> dict[str, Any]:
        if extension in site.busy:
            raise ExtensionBusy(f"extension {extension} is busy")
        site.rang.append((extension, number))
        return {"request_id": "r1"}

    context.originate = originate
    await server.start()
    site.events_url = f"{server.url}/api/crm/bitrix24/events"
    try:
        yield site
    finally:
        await server.stop()
        await engine.dispose()


async def entries(site: Site) -> list[AuditEntry]:
    async with site.context.sessions() as db:
        return list((await db.execute(select(AuditEntry).order_by(AuditEntry.id))).scalars())


async def test_a_click_in_bitrix24_rings_the_managers_handset_then_dials_the_client(site: Site) -> None:
    portal = FakeBitrix24()
    status, body = await portal.click(site.events_url, 14, CLIENT, APP_TOKEN)
    assert status == 200, body
    assert body["status"] == "ringing" and body["extension"] == "204"
    assert site.rang == [("204", CLIENT)]
    (entry,) = [e for e in await entries(site) if e.action == "click_to_call"]
    crm_call_id = next(iter(portal.calls))
    assert entry.username == "bitrix24:14" and entry.target == "bitrix24:CONTACT/7"
    assert entry.details == {"extension": "204", "number": CLIENT, "crm_call_id": crm_call_id}


async def test_a_click_without_the_application_token_rings_nobody(site: Site) -> None:
    portal = FakeBitrix24()
    for token in ("", "bx-app-token-0000"):
        status, body = await portal.click(site.events_url, 14, CLIENT, token)
        assert status == 403 and body["error"] == "the application token is missing or wrong"
    site.context.config.crm.bitrix24.application_token = ""
    status, _ = await portal.click(site.events_url, 14, CLIENT, "")
    assert status == 403  # no token configured: every click refused, none guessed
    assert site.rang == []
    refused = [e for e in await entries(site) if e.action == "request_refused"]
    assert refused and refused[0].target == "POST /api/crm/bitrix24/events"


async def test_a_click_by_a_user_without_an_extension_or_on_a_busy_handset_says_why(site: Site) -> None:
    portal = FakeBitrix24()
    status, body = await portal.click(site.events_url, 15, CLIENT, APP_TOKEN)
    assert status == 409 and "Bitrix24 user 15 has no extension" in body["error"]
    site.busy.add("204")
    status, body = await portal.click(site.events_url, 14, CLIENT, APP_TOKEN)
    assert status == 409 and body["error"] == "extension 204 is busy"
    status, body = await portal.click(site.events_url, 14, "not a number", APP_TOKEN)
    assert status == 400
    assert site.rang == []
    refusals = [(e.username, e.details.get("reason", "")[:40]) for e in await entries(site)
                if e.action == "click_to_call_refused"]
    assert refusals == [("bitrix24:15", "Bitrix24 user 15 has no extension: set t"),
                        ("bitrix24:14", "extension 204 is busy")]
