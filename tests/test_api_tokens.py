"""API tokens: a machine calls the REST API with ``Authorization: Bearer`` and no cookie; a revoked
token is refused at once; every use is in the audit log, a minute's uses summed up in one entry.

SQLite only: nothing here depends on the database beyond one indexed lookup.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from pbxbridge.cli.main import main
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.transcription.transcript import Transcript
from pbxbridge.web.app import WebServer
from pbxbridge.web.context import WebContext
from pbxbridge.web.sessions import SessionSigner
from pbxbridge.web.tables import AuditEntry
from pbxbridge.web.token_table import ApiToken
from pbxbridge.web.tokens import TOKEN_REFUSED, TOKEN_USED, TokenUseLog, as_user
from tests.conftest import fresh_database
from tests.fixtures_web import (  # noqa: F401 - fixtures
    IVAN_CLIENT,
    ApiClient,
    PopulatedTemplates,
    WebData,
    fast_password_hashing,
    populated_templates,
    web_config,
    whisper_transcript,
)


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database(request, "sqlite", tmp_path)


@dataclass(slots=True)
class Site:
    url: str
    db_url: str
    data: WebData
    context: WebContext
    rang: list[tuple[str, str]] = field(default_factory=list)


@pytest.fixture
async def site(
    db_url: str,
    shared_dir: Path,
    whisper_transcript: Transcript,  # noqa: F811
    fast_password_hashing: None,  # noqa: F811
    populated_templates: PopulatedTemplates,  # noqa: F811
) -> AsyncIterator[Site]:
    config = web_config(db_url, shared_dir)
    data = await populated_templates.fill(config, shared_dir, whisper_transcript)
    engine = make_engine(db_url)
    context = WebContext(config=config, sessions=session_factory(engine), signer=SessionSigner(config.web.secret_key))
    rang: list[tuple[str, str]] = []

    async def originate(extension: str, number: str) -> dict[str, Any]:
        rang.append((extension, number))
        return {"request_id": f"r{len(rang)}"}

    context.originate = originate
    server = WebServer(context, host="127.0.0.1", port=0)
    await server.start()
    try:
        yield Site(server.url, db_url, data, context, rang)
    finally:
        await server.stop()
        await engine.dispose()


async def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The command line, as a person runs it beside the running web app."""
    code = await asyncio.to_thread(main, list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def machine(site: Site, token: str) -> aiohttp.ClientSession:
    """A client that keeps no cookies at all: only the token says who it is."""
    return aiohttp.ClientSession(site.url, cookie_jar=aiohttp.DummyCookieJar(),
                                 headers={"Authorization": f"Bearer {token}"})


async def audit(site: Site, action: str) -> list[AuditEntry]:
    async with site.context.sessions() as db:
        return list((await db.execute(select(AuditEntry).where(AuditEntry.action == action)
                                      .order_by(AuditEntry.id))).scalars())


async def test_a_bearer_token_works_for_click_to_call_and_the_journal_with_no_cookie_and_a_revoked_one_gets_401(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = await cli(capsys, "tokens", "create", "bitrix24", "--role", "head", "--db", site.db_url)
    assert code == 0, err
    token = out.strip()
    assert token.startswith("pbxb_") and len(token) > 40 and "shown only now" in err
    async with site.context.sessions() as db:
        stored = (await db.execute(select(ApiToken.token_hash))).scalars().all()
    assert token not in stored and len(stored) == 1  # only its hash is kept

    async with machine(site, token) as http:
        async with http.get("/api/calls", params={"per_page": "200"}) as journal:
            assert journal.status == 200
            body = await journal.json()
            assert body["total"] == site.data.calls
            assert not journal.cookies.get("pbxb_session")
        # No CSRF header: a Bearer request carries no cookie for another site to ride on.
        async with http.post("/api/calls/originate", json={"number": IVAN_CLIENT, "extension": "203"}) as call:
            assert call.status == 202, await call.text()
        assert site.rang == [("203", IVAN_CLIENT)]

        code, out, err = await cli(capsys, "tokens", "revoke", "bitrix24", "--db", site.db_url)
        assert code == 0, err
        async with http.get("/api/calls") as refused:
            assert refused.status == 401
            assert refused.headers["WWW-Authenticate"].startswith("Bearer")
            assert (await refused.json())["error"] == "the API token is unknown or revoked"
        async with http.post("/api/calls/originate", json={"number": IVAN_CLIENT, "extension": "203"}) as call:
            assert call.status == 401
        assert site.rang == [("203", IVAN_CLIENT)]  # nobody's handset rang for the revoked token

    used = await audit(site, TOKEN_USED)
    assert [(e.username, e.role, e.target) for e in used] == [("token:bitrix24", "head", "GET /api/calls")]
    click = await audit(site, "click_to_call")
    assert [(e.username, e.details["number"]) for e in click] == [("token:bitrix24", IVAN_CLIENT)]
    refused_entries = [e for e in await audit(site, "request_refused") if e.details.get("reason") == TOKEN_REFUSED]
    assert refused_entries and refused_entries[0].target == "GET /api/calls"
    code, out, _ = await cli(capsys, "tokens", "list", "--db", site.db_url)
    line = next(row for row in out.splitlines() if row.startswith("bitrix24"))
    assert "head" in line and line.rstrip()[-5:].count(":") == 1  # revoked: a time, not "-"


async def test_a_manager_token_rings_its_own_handset_and_sees_its_own_calls(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    code, _, err = await cli(capsys, "tokens", "create", "ivan-phone", "--role", "manager", "--db", site.db_url)
    assert code == 1 and "--extension" in err
    code, out, err = await cli(capsys, "tokens", "create", "ivan-phone", "--role", "manager", "--extension", "203",
                         "--db", site.db_url)
    assert code == 0, err
    async with machine(site, out.strip()) as http:
        async with http.get("/api/calls", params={"per_page": "200"}) as journal:
            items = (await journal.json())["items"]
        assert items and len(items) < site.data.calls
        assert all("203" in (i.get("manager"), i.get("final_manager")) or i.get("client_number") for i in items)
        async with http.post("/api/calls/originate",
                             json={"client_id": site.data.ivan_client_id, "extension": "202"}) as call:
            assert call.status == 202, await call.text()
        async with http.post("/api/calls/originate", json={"client_id": site.data.petr_client_id}) as other:
            assert other.status == 403
        # A person's own settings are not a machine's: refused with the reason, nothing kept.
        for path, body in (("/api/me/language", {"language": "ru"}),
                           ("/api/calls/filters", {"name": "Mine", "query": "direction=inbound"})):
            async with http.post(path, json=body) as own:
                assert own.status == 403, path
                assert (await own.json())["error"] == "an API token has no settings of its own: this is for a person signed in"
        async with http.get("/api/calls/filters") as saved:
            assert saved.status == 200
    assert site.rang == [("203", IVAN_CLIENT)]


async def test_an_unknown_token_is_refused_and_a_cookie_session_still_needs_its_csrf_token(site: Site) -> None:
    async with machine(site, "pbxb_not-a-token") as http, http.get("/api/me") as me:
        assert me.status == 401
    async with machine(site, "") as http, http.get("/api/me") as me:
        assert me.status == 401
    person = ApiClient(site.url)
    try:
        assert (await person.login("olga")).status == 200
        status, _ = await person.json("POST", "/api/calls/originate", csrf=False,
                                      json={"number": IVAN_CLIENT, "extension": "203"})
        assert status == 403
    finally:
        await person.close()
    assert site.rang == []


async def test_a_busy_token_costs_one_audit_entry_a_minute_with_the_count(
    site: Site, capsys: pytest.CaptureFixture[str]
) -> None:
    _, out, _ = await cli(capsys, "tokens", "create", "reports", "--role", "head", "--db", site.db_url)
    async with machine(site, out.strip()) as http:
        for path in ("/api/me", "/api/calls", "/api/me", "/api/kpi"):
            async with http.get(path) as answer:
                assert answer.status == 200
    used = await audit(site, TOKEN_USED)
    assert [(e.target, e.details) for e in used] == [("GET /api/me", {})]
    async with site.context.sessions() as db:
        row = (await db.execute(select(ApiToken).where(ApiToken.name == "reports"))).scalar_one()
    assert row.last_used_at is not None

    # The minute's summary, as the app writes it every half minute and when it stops.
    uses = TokenUseLog(window_s=60, clock=lambda: 0.0)
    who = as_user(row)
    assert len(uses.note(who, "10.0.0.5", "GET /api/me", 100.0)) == 1
    for at, path in ((110.0, "/api/calls"), (120.0, "/api/calls"), (130.0, "/api/kpi")):
        assert uses.note(who, "10.0.0.5", f"GET {path}", at) == []
    assert uses.due(150.0) == []
    (summary,) = uses.due(160.0)
    assert summary.username == "token:reports" and summary.details["repeated"] == 3
    assert summary.details["targets"] == ["GET /api/calls", "GET /api/kpi"]
    assert summary.details["since"].endswith("01:40Z") and summary.details["until"].endswith("02:10Z")
    assert uses.drain() == []
