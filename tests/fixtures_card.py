"""The web app over the populated test database, for the card's and the player's API tests."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.transcription.transcript import Transcript
from pbxbridge.web.app import WebServer
from pbxbridge.web.context import WebContext
from pbxbridge.web.sessions import SessionSigner
from tests.fixtures_web import ApiClient, PopulatedTemplates, WebData, web_config


@dataclass(slots=True)
class CardSite:
    """The running app, its test data and its database."""

    url: str
    data: WebData
    context: WebContext
    sessions: async_sessionmaker[AsyncSession]
    clients: list[ApiClient]

    async def signed_in(self, username: str) -> ApiClient:
        """A client with its own cookies, signed in as ``username``."""
        client = ApiClient(self.url)
        self.clients.append(client)
        response = await client.login(username)
        assert response.status == 200, f"{username} could not sign in"
        return client

    async def audit(self, action: str) -> list[dict[str, Any]]:
        """The audit log's entries of one action, oldest first (read as the head)."""
        head = await self.signed_in("olga")
        status, log = await head.json("GET", "/api/audit", params={"per_page": "500"})
        assert status == 200
        return [e for e in reversed(log["items"]) if e["action"] == action]


@pytest.fixture
async def card_site(
    db_url: str,
    shared_dir: Path,
    whisper_transcript: Transcript,
    fast_password_hashing: None,
    populated_templates: PopulatedTemplates,
) -> AsyncIterator[CardSite]:
    """The web app on a free port over a database holding every captured call."""
    config = web_config(db_url, shared_dir)
    data = await populated_templates.fill(config, shared_dir, whisper_transcript)
    engine = make_engine(db_url)
    context = WebContext(config=config, sessions=session_factory(engine), signer=SessionSigner(config.web.secret_key))
    server = WebServer(context, host="127.0.0.1", port=0)
    await server.start()
    site = CardSite(server.url, data, context, session_factory(engine), [])
    try:
        yield site
    finally:
        for client in site.clients:
            await client.close()
        await server.stop()
        await engine.dispose()
