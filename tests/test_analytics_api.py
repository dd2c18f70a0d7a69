"""The checklist results over HTTP, for the player: a real transcript of a recorded call, roles and bad input."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from pbxbridge.analytics.store import run_recheck
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.transcription.transcript import Transcript
from pbxbridge.web import api_checks
from pbxbridge.web.app import WebServer
from pbxbridge.web.context import WebContext
from pbxbridge.web.sessions import SessionSigner
from pbxbridge.web.throttle import LoginThrottle
from tests.fixtures_web import (  # noqa: F401 - fixtures
    ApiClient,
    PopulatedTemplates,
    WebData,
    fast_password_hashing,
    populated_templates,
    web_config,
    whisper_transcript,
)

SCRIPT = {
    "name": "Входящий",
    "applies": {"direction": "inbound"},
    "items": [
        {"title": "Попросил остаться на линии", "phrases": ["оставаться на линии"], "side": "manager"},
        {"title": "Назвал цену", "phrases": ["стоимость", "цена"], "side": "manager"},
    ],
}


@pytest.fixture
async def site(
    db_url: str,
    shared_dir: Path,
    whisper_transcript: Transcript,  # noqa: F811
    fast_password_hashing: None,  # noqa: F811
    populated_templates: PopulatedTemplates,  # noqa: F811
) -> AsyncIterator[tuple[str, WebData, WebContext]]:
    config = web_config(db_url, shared_dir)
    data = await populated_templates.fill(config, shared_dir, whisper_transcript)
    engine = make_engine(db_url)
    context = WebContext(
        config=config, sessions=session_factory(engine), signer=SessionSigner(config.web.secret_key),
        throttle=LoginThrottle(clock=lambda: 1000.0),
    )
    server = WebServer(context, host="127.0.0.1", port=0)
    if not any(r.resource is not None and r.resource.canonical == "/api/checklists" for r in server.app.router.routes()):
        server.app.router.add_routes(api_checks.routes)
    await server.start()
    try:
        yield server.url, data, context
    finally:
        await server.stop()
        await engine.dispose()


async def _signed_in(url: str, username: str, clients: list[ApiClient]) -> ApiClient:
    client = ApiClient(url)
    clients.append(client)
    response = await client.login(username)
    assert response.status == 200
    return client


async def test_a_head_sets_a_checklist_and_the_player_gets_each_items_moment(site: Any) -> None:
    url, data, context = site
    clients: list[ApiClient] = []
    try:
        olga = await _signed_in(url, "olga", clients)
        # A bad checklist: every problem named, nothing stored.
        bad = {"name": "Входящий", "items": [{"title": "", "phrases": [], "side": "boss"}]}
        status, body = await olga.json("PUT", "/api/checklists", json=bad)
        assert status == 400 and body["error"] == "The checklist was not saved: fix the fields named"
        assert "items[0].side: 'boss' is not one of manager, client, any" in body["problems"]
        assert (await olga.json("GET", "/api/checklists"))[1]["checklists"] == []

        status, body = await olga.json("PUT", "/api/checklists", json=SCRIPT)
        assert status == 200 and body["changed"] is True and body["checklist"]["version"] == 1
        assert body["recheck"]["status"] == "queued"
        # What the daemon does with the queued job.
        await run_recheck(context.sessions, body["recheck"]["id"])
        status, listing = await olga.json("GET", "/api/checklists")
        assert listing["recheck"]["status"] == "done" and listing["recheck"]["done"] == listing["recheck"]["total"] >= 1

        status, checks = await olga.json("GET", f"/api/calls/{data.ivan_call_id}/checks")
        assert status == 200
        (entry,) = checks["checklists"]
        hold, price = entry["items"]
        assert hold["passed"] and hold["evidence"]["words"].lower() == "оставайтесь на линии"
        # The prompt is about 4 s into the recording; the player seeks there.
        assert 2.0 <= hold["evidence"]["at_s"] <= 6.0
        assert hold["side_note"] and checks["conversation"] is None
        assert not price["passed"] and price["reason_text"] == "Not said" and price["evidence"] is None

        # Ivan answered this call: he sees it; Petr does not; ops see no calls.
        ivan = await _signed_in(url, "ivan", clients)
        assert (await ivan.json("GET", f"/api/calls/{data.ivan_call_id}/checks"))[0] == 200
        petr = await _signed_in(url, "petr", clients)
        assert (await petr.json("GET", f"/api/calls/{data.ivan_call_id}/checks"))[0] == 403
        assert (await petr.json("PUT", "/api/checklists", json=SCRIPT))[0] == 403
        sergey = await _signed_in(url, "sergey", clients)
        assert (await sergey.json("GET", f"/api/calls/{data.ivan_call_id}/checks"))[0] == 403
    finally:
        for client in clients:
            await client.close()
