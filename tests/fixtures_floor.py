"""A small site for the floor pages' API tests: a fresh database (SQLite and PostgreSQL), a user of
each role, the managers' names, and whichever captured calls a test replays into the journal."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.replay import replay_traces
from pbxbridge.calls.store import CallWriter
from pbxbridge.clients.tables import Manager
from pbxbridge.config import Config
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.kpi.service import KpiService
from pbxbridge.web.app import WebServer
from pbxbridge.web.context import WebContext
from pbxbridge.web.sessions import SessionSigner
from pbxbridge.web.users import add_user
from tests.fixtures_web import PASSWORD, ApiClient, web_config

# The managers of the captured lab, by the names the department calls them.
NAMES = {"201": "Анна Смирнова", "202": "Пётр Соколов", "203": "Иван Петров"}
USERS = {"olga": ("head", None), "ivan": ("manager", "203"), "sergey": ("ops", None)}


@dataclass(slots=True)
class FloorSite:
    """The web app on a free port over a database of its own."""

    url: str
    config: Config
    context: WebContext
    sessions: async_sessionmaker[AsyncSession]
    clients: list[ApiClient]

    async def signed_in(self, username: str, language: str = "en") -> ApiClient:
        """A client signed in as ``username``, reading the site in ``language`` (the switcher's cookie)."""
        client = ApiClient(self.url)
        self.clients.append(client)
        client.http.cookie_jar.update_cookies({"pbxb_lang": language})
        response = await client.login(username, PASSWORD)
        assert response.status == 200, f"{username} could not sign in"
        return client

    async def journal(self, traces: Sequence[Path]) -> None:
        """Replay captures into the journal, the KPI store following as the daemon's does."""
        calls = await replay_traces(traces, self.config)
        kpi = KpiService.from_config(self.config)
        writer = CallWriter(self.sessions, self.config, after_write=[kpi.record_written])
        for call in calls:
            await writer.write(call)


@asynccontextmanager
async def serve_floor(
    db_url: str, shared_dir: Path, live: Any = None, clock: Callable[[], float] | None = None
) -> AsyncIterator[FloorSite]:
    """A site on a free port; on leaving, its clients are closed, the server stopped, the engine disposed."""
    config = web_config(db_url, shared_dir)
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    async with sessions() as db, db.begin():
        for username, (role, ext) in USERS.items():
            await add_user(db, username, PASSWORD, role, ext)
        for ext, name in NAMES.items():
            db.add(Manager(extension=ext, name=name))
    extra: dict[str, Any] = {"clock": clock} if clock is not None else {}
    context = WebContext(
        config=config, sessions=sessions, signer=SessionSigner(config.web.secret_key), live=live, **extra
    )
    server = WebServer(context, host="127.0.0.1", port=0)
    await server.start()
    site = FloorSite(server.url, config, context, sessions, [])
    try:
        yield site
    finally:
        for client in site.clients:
            await client.close()
        await server.stop()
        await engine.dispose()


@pytest.fixture
async def floor_site(db_url: str, shared_dir: Path, fast_password_hashing: None) -> AsyncIterator[FloorSite]:
    """A site with no calls and no live board."""
    async with serve_floor(db_url, shared_dir) as site:
        yield site
