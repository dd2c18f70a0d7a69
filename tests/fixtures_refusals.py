"""A web app whose clock the test turns (sign-in waits, locks, bursts of refusals) over a database
holding every captured call, with two routes that fail the way a bug would."""

from __future__ import annotations

import gettext
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from sqlalchemy import select

from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.transcription.transcript import Transcript
from pbxbridge.web.app import WebServer
from pbxbridge.web.context import WebContext
from pbxbridge.web.sessions import SessionSigner
from pbxbridge.web.tables import AuditEntry
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

# What the failing routes raise: words that must never reach the person.
SECRET_DETAIL = "connection string postgres://sales:hunter2@db"


class Visitor(ApiClient):
    """An API client whose browser asks for one language."""

    def __init__(self, base_url: str, language: str = "en") -> None:
        self.base_url = base_url
        self.http = aiohttp.ClientSession(
            base_url, cookie_jar=aiohttp.CookieJar(unsafe=True), headers={"Accept-Language": language}
        )


@dataclass(slots=True)
class Site:
    url: str
    data: WebData
    context: WebContext
    server: WebServer
    now: list[float]
    clients: list[Visitor] = field(default_factory=list)

    def client(self, language: str = "en") -> Visitor:
        client = Visitor(self.url, language)
        self.clients.append(client)
        return client

    async def signed_in(self, username: str, language: str = "en") -> Visitor:
        client = self.client(language)
        response = await client.login(username)
        assert response.status == 200, f"{username} could not sign in"
        return client

    def wait(self, seconds: float) -> None:
        """Turn the site's clock forward."""
        self.now[0] += seconds

    async def audit(self, action: str | None = None) -> list[AuditEntry]:
        """The audit log's rows, oldest first (read from the database, not through the API)."""
        async with self.context.sessions() as db:
            query = select(AuditEntry).order_by(AuditEntry.id)
            if action:
                query = query.where(AuditEntry.action == action)
            return list((await db.execute(query)).scalars())


async def _raise(request: web.Request) -> web.Response:
    raise RuntimeError(SECRET_DETAIL)


async def start_site(config: Any, data: WebData, now: list[float]) -> tuple[WebServer, WebContext, Any]:
    engine = make_engine(config.database.url)
    context = WebContext(
        config=config,
        sessions=session_factory(engine),
        signer=SessionSigner(config.web.secret_key),
        throttle=LoginThrottle(clock=lambda: now[0]),
        clock=lambda: now[0],
    )
    server = WebServer(context, host="127.0.0.1", port=0)
    server.app.router.add_get("/reports/broken", _raise)
    server.app.router.add_get("/api/reports/broken", _raise)
    await server.start()
    return server, context, engine


@pytest.fixture
async def site(
    db_url: str,
    shared_dir: Path,
    whisper_transcript: Transcript,  # noqa: F811
    fast_password_hashing: None,  # noqa: F811
    populated_templates: PopulatedTemplates,  # noqa: F811
) -> AsyncIterator[Site]:
    """The web app on a free port; its clock (and the throttle's) moves only when the test says."""
    config = web_config(db_url, shared_dir)
    data = await populated_templates.fill(config, shared_dir, whisper_transcript)
    now = [time.time()]
    server, context, engine = await start_site(config, data, now)
    site = Site(server.url, data, context, server, now)
    try:
        yield site
    finally:
        for client in site.clients:
            await client.close()
        await server.stop()
        await engine.dispose()


class Pseudo(gettext.NullTranslations):
    """A catalog that marks every message it translates: ⟦text⟧. Words on a page without the
    marks did not pass through the catalog, so a Russian reader would get them in English."""

    def gettext(self, message: str) -> str:
        return f"⟦{message}⟧"

    def ngettext(self, msgid1: str, msgid2: str, n: int) -> str:
        return f"⟦{msgid1 if n == 1 else msgid2}⟧"


@pytest.fixture
def pseudo_catalog(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every request's translations are the marking catalog."""
    monkeypatch.setattr("pbxbridge.web.i18n._translations", lambda request: Pseudo())
