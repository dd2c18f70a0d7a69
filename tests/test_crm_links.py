"""amoCRM's ``link``: each call with a recording carries a signed, expiring address on pbxbridge that
plays the file without signing in; a changed or expired link is refused (403).

SQLite only: signing and serving depend on no database.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import aiohttp
import pytest
from sqlalchemy import select

from pbxbridge.calls.tables import Recording
from pbxbridge.cli.main import main
from pbxbridge.config import load_config
from pbxbridge.crm.recording_links import is_valid, signature, signed_url
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.web.app import WebServer
from pbxbridge.web.context import WebContext
from pbxbridge.web.sessions import SessionSigner
from pbxbridge.web.tables import AuditEntry
from tests.conftest import fresh_database
from tests.fakes_amocrm import TOKEN, FakeAmoCrm
from tests.fakes_webhook import ServerThread, free_port

SECRET = "web-secret-key-for-links-0123456789"


@pytest.fixture
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    yield from fresh_database(request, "sqlite", tmp_path)


def test_a_link_is_refused_when_anything_in_it_changes_or_it_has_expired() -> None:
    url = signed_url("https://pbx.example.ru/", SECRET, 42, 2_000_000_000)
    parts = urlsplit(url)
    assert parts.path == "/recordings/shared/42"
    query = {k: v[0] for k, v in parse_qs(parts.query).items()}
    assert is_valid(SECRET, 42, query["expires"], query["signature"], now=1_999_999_999)
    assert not is_valid(SECRET, 42, query["expires"], query["signature"], now=2_000_000_001)  # expired
    assert not is_valid(SECRET, 43, query["expires"], query["signature"], now=0)  # another recording
    assert not is_valid(SECRET, 42, "2000000999", query["signature"], now=0)  # a later expiry
    assert not is_valid("another key", 42, query["expires"], query["signature"], now=0)
    assert not is_valid(SECRET, 42, query["expires"], query["signature"][:-1] + "A", now=0)
    assert not is_valid(SECRET, 42, "-1", signature(SECRET, 42, -1), now=-5)  # not digits
    assert not is_valid("", 42, query["expires"], signature("", 42, 2_000_000_000), now=0)  # no key, no links


async def test_amocrm_gets_a_link_that_plays_the_recording_without_signing_in(
    db_url: str, shared_dir: Path, tmp_path: Path
) -> None:
    account = FakeAmoCrm(contacts={"+79161110001", "+79161110003"})
    amo = ServerThread(account.app).start()
    web_port = free_port()
    try:
        config_path = tmp_path / "pbxbridge.toml"
        config_path.write_text(
            f"[web]\nsecret_key = \"{SECRET}\"\npublic_url = \"http://127.0.0.1:{web_port}\"\nlanguage = \"en\"\n\n"
            f"[crm.amocrm]\nbase_url = \"{amo.url}\"\ntoken = \"{TOKEN}\"\n",
            encoding="utf-8",
        )
        common = ["--db", db_url, "--config", str(config_path), "--recordings", str(shared_dir / "recordings")]
        replay = ["replay", str(shared_dir / "01-inbound-answered.ami"), str(shared_dir / "03-inbound-abandoned.ami")]
        assert await asyncio.to_thread(main, [*replay, *common]) == 0
        assert await asyncio.to_thread(main, ["outbox", "deliver", "--until-empty", "--max-wait", "60", *common]) == 0
    finally:
        amo.stop()
    linked = [c for c in account.calls if c.get("link")]
    unlinked = [c for c in account.calls if not c.get("link")]
    # The answered call was recorded; the abandoned one has no recording, so no link.
    assert len(linked) == 1 and len(unlinked) == 1 and unlinked[0]["call_status"] == 6
    link = linked[0]["link"]
    assert link.startswith(f"http://127.0.0.1:{web_port}/recordings/shared/")

    config = load_config(config_path, {"PBXBRIDGE_DATABASE__URL": db_url,
                                       "PBXBRIDGE_RECORDINGS__ROOT": str(shared_dir / "recordings")})
    engine = make_engine(db_url)
    clock = {"now": 1_800_000_000.0}
    context = WebContext(config=config, sessions=session_factory(engine), signer=SessionSigner(SECRET),
                         clock=lambda: clock["now"])
    server = WebServer(context, host="127.0.0.1", port=web_port)
    await server.start()
    try:
        async with session_factory(engine)() as db:
            rec = (await db.execute(select(Recording).where(Recording.status == "ok"))).scalars().first()
        assert rec is not None and link.split("?")[0].endswith(f"/{rec.id}")
        wanted = (shared_dir / "recordings" / rec.path).read_bytes()
        async with aiohttp.ClientSession(cookie_jar=aiohttp.DummyCookieJar()) as http:
            async with http.get(link) as answer:
                assert answer.status == 200 and answer.content_type == "audio/wav"
                assert await answer.read() == wanted
            async with http.get(link, headers={"Range": "bytes=0-99"}) as part:
                assert part.status == 206 and len(await part.read()) == 100
            other = link.replace(f"/shared/{rec.id}?", f"/shared/{rec.id + 1}?")
            longer = link.replace("expires=", "expires=9")
            for changed in (other, longer, link[:-2], link.split("&")[0]):
                async with http.get(changed) as refused:
                    assert refused.status == 403, changed
            clock["now"] = float(parse_qs(urlsplit(link).query)["expires"][0]) + 1
            async with http.get(link) as expired:
                assert expired.status == 403
                assert "out of date or damaged" in await expired.text()
        async with session_factory(engine)() as db:
            listens = (await db.execute(select(AuditEntry).where(AuditEntry.action == "listen"))).scalars().all()
        assert [(e.username, e.target, e.details["source"]) for e in listens] == [
            ("recording-link", f"recording:{rec.id}", "link")
        ]
    finally:
        await server.stop()
        await engine.dispose()
