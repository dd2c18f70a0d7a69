"""Which language a person gets, and the plural forms they read (1 звонок, 2 звонка, 5 звонков),
over a real server and both databases."""

from __future__ import annotations

import dataclasses
import re
import subprocess
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from aiohttp.test_utils import make_mocked_request
from babel import Locale
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.config import ConfigError, WebConfig, config_from_mapping
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.web.app import WebServer
from pbxbridge.web.context import CONTEXT, USER, WebContext
from pbxbridge.web.i18n import _, browser_catalog, n_, negotiate
from pbxbridge.web.sessions import CSRF_FIELD, SessionSigner
from pbxbridge.web.tables import User
from pbxbridge.web.users import add_user
from tests.fixtures_web import PASSWORD, ApiClient, fast_password_hashing, web_config  # noqa: F401 - fixtures

RU_BROWSER = "ru-RU,ru;q=0.9,en-US;q=0.8,en;q=0.7"
EN_BROWSER = "en-US,en;q=0.9"


# --- Accept-Language -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "expected"),
    [
        (RU_BROWSER, "ru"),
        (EN_BROWSER, "en"),
        ("en-GB", "en"),
        # q-values, not the order written, decide.
        ("de-DE, en;q=0.3, ru;q=0.7", "ru"),
        ("ru;q=0.5, en;q=0.6", "en"),
        # q=0 is "never this one".
        ("ru;q=0, en", "en"),
        # A broken q-value is not a preference; the next language is taken.
        ("ru;q=abc, en;q=0.2", "en"),
        ("de-DE,fr;q=0.8", None),
        ("*", None),
        ("", None),
        (None, None),
    ],
)
def test_accept_language_picks_the_most_wanted_language_the_app_speaks(header: str | None, expected: str | None) -> None:
    assert negotiate(header) == expected


def test_web_language_is_ru_by_default_and_checked() -> None:
    assert config_from_mapping({}).web.language == "ru"
    assert config_from_mapping({"web": {"language": "en"}}).web.language == "en"
    with pytest.raises(ConfigError) as refused:
        config_from_mapping({"web": {"language": "de"}})
    assert refused.value.problems == ["web.language: must be one of ru, en, got 'de'"]


# --- Plural forms ------------------------------------------------------------------------------

RUSSIAN_CALLS = {1: "1 звонок", 2: "2 звонка", 4: "4 звонка", 5: "5 звонков", 11: "11 звонков", 12: "12 звонков",
                 21: "21 звонок", 22: "22 звонка", 111: "111 звонков", 0: "0 звонков"}
ENGLISH_CALLS = {1: "1 call", 2: "2 calls", 5: "5 calls", 11: "11 calls", 21: "21 calls", 0: "0 calls"}


def _request(accept_language: str, language: str = "ru") -> web.Request:
    """A request as the session middleware leaves it for a stranger, in an app configured for ``language``."""
    app = web.Application()
    config = dataclasses.replace(web_config("sqlite://", Path(".")), web=WebConfig(language=language))
    app[CONTEXT] = WebContext(config=config, sessions=None, signer=SessionSigner("k"))  # type: ignore[arg-type]
    request = make_mocked_request("GET", "/", headers={"Accept-Language": accept_language}, app=app)
    request[USER] = None
    return request


def test_python_plurals_follow_russian_rules() -> None:
    ru, en = _request(RU_BROWSER), _request(EN_BROWSER)
    for n, text in RUSSIAN_CALLS.items():
        assert n_(ru, "{n} call", "{n} calls", n) == text
    for n, text in ENGLISH_CALLS.items():
        assert n_(en, "{n} call", "{n} calls", n) == text
    # Thousands grouped as each language writes them.
    assert n_(ru, "{n} call", "{n} calls", 12345) == "12\u00a0345 звонков"
    assert n_(en, "{n} call", "{n} calls", 12345) == "12,345 calls"


def test_a_browser_with_no_language_the_app_speaks_gets_the_configured_one() -> None:
    assert _(_request("de-DE", language="ru"), "Sign in") == "Войти"
    assert _(_request("de-DE", language="en"), "Sign in") == "Sign in"
    assert _(_request(RU_BROWSER, language="en"), "Sign in") == "Войти"
    # No request at all (the command line): the English it is written in.
    assert _(None, "Sign in") == "Sign in"


def _browser_pick(language: str, singular: str, n: int) -> str:
    """What common.js's tn() does: the CLDR category of n (Intl.PluralRules, here Babel's CLDR data)
    picks the catalog's form through the map the server sends."""
    catalog = browser_catalog(language)
    category = str(Locale.parse(language).plural_form(n))
    index = catalog["plural"].get(category, catalog["plural_default"])
    return str(catalog["plurals"][singular][index]).replace("{n}", str(n))


def test_the_browser_catalog_has_the_same_plural_forms() -> None:
    for n, text in RUSSIAN_CALLS.items():
        assert _browser_pick("ru", "{n} call", n) == text
    for n, text in ENGLISH_CALLS.items():
        assert _browser_pick("en", "{n} call", n) == text
    ru = browser_catalog("ru")
    # Russian has three forms, in gettext's order: 1/21, 2-4, 5-20.
    assert ru["plural"] == {"one": 0, "few": 1, "many": 2}
    assert ru["messages"]["Sign in"] == "Войти"


# --- Over a real server -----------------------------------------------------------------------


@dataclass(slots=True)
class Site:
    url: str
    sessions: async_sessionmaker[AsyncSession]
    clients: list[ApiClient]

    def client(self) -> ApiClient:
        client = ApiClient(self.url)
        self.clients.append(client)
        return client

    async def page(self, client: ApiClient, path: str, accept_language: str) -> tuple[int, str, str]:
        """(status, <html lang>, the page's text) as a browser sending that Accept-Language gets it."""
        async with client.send("GET", path, headers={"Accept-Language": accept_language}) as response:
            text = await response.text()
            found = re.search(r'<html lang="([^"]*)"', text)
            return response.status, found.group(1) if found else "", text

    async def language_of(self, username: str) -> str | None:
        async with self.sessions() as db:
            return (await db.execute(select(User.language).where(User.username == username))).scalar_one()


@pytest.fixture
async def site(db_url: str, fast_password_hashing: None) -> AsyncIterator[Site]:  # noqa: F811
    config = web_config(db_url, Path("."), language="ru")
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    async with sessions() as db, db.begin():
        await add_user(db, "olga", PASSWORD, "head")
        await add_user(db, "ivan", PASSWORD, "manager", "203")
    server = WebServer(
        WebContext(config=config, sessions=sessions, signer=SessionSigner(config.web.secret_key)), "127.0.0.1", 0
    )
    await server.start()
    clients: list[ApiClient] = []
    try:
        yield Site(server.url, sessions, clients)
    finally:
        for client in clients:
            await client.close()
        await server.stop()
        await engine.dispose()


async def test_sign_in_page_follows_the_browser(site: Site) -> None:
    client = site.client()
    status, lang, text = await site.page(client, "/login", RU_BROWSER)
    assert (status, lang) == (200, "ru")
    assert "<h1>Вход в pbxbridge</h1>" in text and "Пароль" in text and ">Войти</button>" in text
    assert "Password" not in text
    status, lang, text = await site.page(client, "/login", EN_BROWSER)
    assert (status, lang) == (200, "en")
    assert ">Sign in</button>" in text and "Password" in text
    # The catalog the page's scripts use is the one for its language.
    assert re.search(r'<script src="/static/i18n/en\.js\?v=\w+"></script><script src="/static/js/common\.js', text)
    # A browser that asks for no language the app speaks: web.language (ru).
    _status, lang, _text = await site.page(client, "/login", "de-DE,fr;q=0.5")
    assert lang == "ru"


async def test_the_catalog_script_is_served_to_strangers(site: Site) -> None:
    client = site.client()
    async with client.send("GET", "/static/i18n/ru.js") as response:
        assert response.status == 200
        assert response.content_type == "application/javascript"
        body = await response.text()
    assert body.startswith("window.PBX_CATALOG = {") and '"Sign in":"Войти"' in body
    status, catalog = await client.json("GET", "/static/i18n/en.json")
    assert status == 200 and catalog["plurals"]["{n} call"] == ["{n} call", "{n} calls"]
    async with client.send("GET", "/static/i18n/de.js") as response:
        assert response.status == 404


async def test_the_users_own_language_wins_over_the_browser(site: Site) -> None:
    olga = site.client()
    assert (await olga.login("olga")).status == 200
    # No setting yet: the browser's language.
    _status, lang, text = await site.page(olga, "/calls", RU_BROWSER)
    assert lang == "ru" and ">Звонки<" in text and "Выйти" in text
    status, body = await olga.json("POST", "/api/me/language", json={"language": "en"})
    assert (status, body) == (200, {"language": "en"})
    assert await site.language_of("olga") == "en"
    # A new browser with Russian settings: still English, her own choice, from the database.
    again = site.client()
    assert (await again.login("olga")).status == 200
    _status, lang, text = await site.page(again, "/calls", RU_BROWSER)
    assert lang == "en" and ">Sign out</button>" in text
    status, me = await again.json("GET", "/api/me")
    assert me["language"] == "en"
    # null: follow the browser again.
    status, body = await again.json("POST", "/api/me/language", json={"language": None})
    assert (status, body) == (200, {"language": None})
    assert await site.language_of("olga") is None


async def test_a_bad_or_forged_language_change_changes_nothing(site: Site) -> None:
    ivan = site.client()
    assert (await ivan.login("ivan")).status == 200
    assert (await ivan.json("POST", "/api/me/language", json={"language": "en"}))[0] == 200
    status, body = await ivan.json("POST", "/api/me/language", json={"language": "fr"})
    assert status == 400 and "ru, en" in body["error"]
    status, body = await ivan.json("POST", "/api/me/language", data="ru", headers={"Content-Type": "application/json"})
    assert status == 400
    # Without the CSRF token (another site's form): refused.
    status, _body = await ivan.json("POST", "/api/me/language", json={"language": "ru"}, csrf=False)
    assert status == 403
    assert await site.language_of("ivan") == "en"
    # The API needs a signed-in user.
    status, _body = await site.client().json("POST", "/api/me/language", json={"language": "ru"})
    assert status in (401, 403)


async def test_the_header_switcher_works_for_strangers_and_users(site: Site) -> None:
    stranger = site.client()
    _status, lang, text = await site.page(stranger, "/login?next=/kpi", EN_BROWSER)
    assert lang == "en"
    form = re.search(r'<form class="lang" method="post" action="/language".*?</form>', text, re.S)
    assert form and 'value="/login?next=/kpi"' in form.group(0) and 'value="RU"' in form.group(0)
    token = stranger.csrf
    async with stranger.send(
        "POST", "/language", csrf=False, data={CSRF_FIELD: token, "language": "RU", "next": "/login?next=/kpi"}
    ) as response:
        assert response.status == 303 and response.headers["Location"] == "/login?next=/kpi"
    # The choice is kept for the visitor whatever the browser says.
    _status, lang, text = await site.page(stranger, "/login", EN_BROWSER)
    assert lang == "ru" and "Пароль" in text
    # A language the app does not speak, or a foreign redirect, is refused or kept home.
    async with stranger.send("POST", "/language", csrf=False, data={CSRF_FIELD: token, "language": "xx"}) as response:
        assert response.status == 400
    async with stranger.send(
        "POST", "/language", csrf=False, data={CSRF_FIELD: token, "language": "en", "next": "//evil.example/"}
    ) as response:
        assert response.status == 303 and response.headers["Location"] == "/"
    # Without the token: refused, nothing changes.
    async with stranger.send("POST", "/language", csrf=False, data={"language": "ru"}) as response:
        assert response.status == 403
    # Signed in, the switcher saves the user's own setting.
    ivan = site.client()
    assert (await ivan.login("ivan")).status == 200
    async with ivan.send(
        "POST", "/language", csrf=False, data={CSRF_FIELD: ivan.csrf, "language": "en", "next": "/calls"}
    ) as response:
        assert response.status == 303
    assert await site.language_of("ivan") == "en"



def test_the_translations_import_before_anything_else_of_the_web_app() -> None:
    """Every web module marks strings with i18n, so i18n must import none of them at load time
    (scripts/catalog imports it first)."""
    for module in ("pbxbridge.web.i18n", "pbxbridge.web.catalog_tools"):
        done = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
