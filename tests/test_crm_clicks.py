"""A manager clicks a number in Bitrix24: the portal's OnExternalCallStart rings the manager's handset
through pbxbridge's click-to-call, and only with the application's token.

SQLite only: the event's checks depend on no database.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pbxbridge.cli.main import main
from pbxbridge.config import Bitrix24Config, CrmConfig
from pbxbridge.crm.tables import CrmClick
from pbxbridge.crm.users import MANUAL, set_user
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.routing.click_to_call import ExtensionBusy
from pbxbridge.web.app import WebServer
from pbxbridge.web.context import WebContext
from pbxbridge.web.sessions import SessionSigner
from pbxbridge.web.tables import AuditEntry
from tests.conftest import fresh_database
from tests.fakes_bitrix24 import FakeBitrix24
from tests.fakes_webhook import ServerThread
from tests.fixtures_web import web_config

APP_TOKEN = "bx-app-token-5f0c"
CLIENT = "+79161110001"


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database(request, "sqlite", tmp_path)


@dataclass(slots=True)
class Site:
    events_url: str
    db_url: str
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
    site = Site(f"{server.url}/api/crm/bitrix24/events", db_url, context)

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
    async with site.context.sessions() as db:
        kept = (await db.execute(select(CrmClick.crm_call_id, CrmClick.extension, CrmClick.number))).all()
    assert kept == [(crm_call_id, "204", CLIENT)]


async def test_the_clicked_call_is_finished_on_bitrix24s_own_call_and_never_registered_twice(
    site: Site, shared_dir: Path, tmp_path: Path
) -> None:
    # pjsip-02: manager 204 clicked +79267770004, answered his handset, the client answered.
    started = 1795724369.035
    site.context.clock = lambda: started - 3
    portal = FakeBitrix24(drain_per_s=1000)
    server = ServerThread(portal.app).start()
    try:
        status, body = await portal.click(site.events_url, 14, "+79267770004", APP_TOKEN)
        assert status == 200, body
        (clicked,) = portal.calls
        config = tmp_path / "pbxbridge.toml"
        config.write_text(f"[crm.bitrix24]\nwebhook_url = \"{portal.webhook_url(server.url)}\"\nrequests_per_s = 100\n",
                          encoding="utf-8")
        common = ["--db", site.db_url, "--config", str(config), "--recordings", str(shared_dir / "recordings")]
        replay = ["replay", str(shared_dir / "pjsip-02-click-to-call.ami"), str(shared_dir / "06-outbound-answered.ami")]
        assert await asyncio.to_thread(main, [*replay, *common]) == 0
        assert await asyncio.to_thread(main, ["outbox", "deliver", "--until-empty", "--max-wait", "60", *common]) == 0
    finally:
        server.stop()
    # The clicked call: no second register, finished on the portal's own CALL_ID with the talk time.
    assert [m for m, c in portal.log if c == clicked] == ["finish"]
    finished = portal.calls[clicked].finished
    assert finished is not None and finished["STATUS_CODE"] == "200" and 19 <= finished["DURATION"] <= 22
    # Another outbound call (203's, nobody clicked it) is registered as before.
    others = [c for c in portal.calls.values() if c.call_id != clicked]
    assert len(others) == 1 and others[0].registered["PHONE_NUMBER"] == "+79162220001"
    async with site.context.sessions() as db:
        used = (await db.execute(select(CrmClick.used_by))).scalars().all()
    assert len(used) == 1 and used[0] is not None and used[0].startswith("main:")


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
    # The audit log keeps why as a code, read in the reader's language on the audit page.
    refusals = [(e.username, e.details.get("reason")) for e in await entries(site)
                if e.action == "click_to_call_refused"]
    assert refusals == [("bitrix24:15", "no_crm_extension"), ("bitrix24:14", "extension_busy")]


async def test_a_click_pbxbridge_cannot_place_is_finished_busy_in_bitrix24_not_left_open(
    site: Site, shared_dir: Path, tmp_path: Path
) -> None:
    portal = FakeBitrix24(drain_per_s=1000)
    server = ServerThread(portal.app).start()
    site.context.config.crm.bitrix24.webhook_url = portal.webhook_url(server.url)
    site.busy.add("204")
    try:
        status, body = await portal.click(site.events_url, 14, CLIENT, APP_TOKEN)
        assert status == 409 and body["error"] == "extension 204 is busy"
        (clicked,) = portal.calls
        config = tmp_path / "pbxbridge.toml"
        config.write_text(f"[crm.bitrix24]\nwebhook_url = \"{portal.webhook_url(server.url)}\"\nrequests_per_s = 100\n",
                          encoding="utf-8")
        deliver = ["outbox", "deliver", "--until-empty", "--max-wait", "30", "--db", site.db_url, "--config", str(config)]
        assert await asyncio.to_thread(main, deliver) == 0
    finally:
        server.stop()
    assert [m for m, c in portal.log if c == clicked] == ["finish"]
    finished = portal.calls[clicked].finished
    assert finished is not None and finished["STATUS_CODE"] == "486" and finished["DURATION"] == 0
    assert finished["USER_ID"] == 14  # the manager mapped to 204
    assert site.rang == []
