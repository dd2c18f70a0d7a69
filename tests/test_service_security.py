"""Every route of the web app, as an attacker tries it (the public ones with their own proof); no secret in the log.

The routes are not listed here by hand: they are read from the application's
router, so a route added later is checked without anyone remembering to.
Requests go over a real socket byte for byte (no client library tidying
``../`` away) to the app serving every captured call.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.ami.traces import load_trace
from pbxbridge.calls.tables import Recording
from pbxbridge.crm.recording_links import signature, signed_url
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.transcription.transcript import Transcript
from pbxbridge.web.app import WebServer
from pbxbridge.web.context import WebContext
from pbxbridge.web.middleware import SELF_AUTHENTICATED, is_public
from pbxbridge.web.sessions import SessionSigner
from pbxbridge.web.tables import MANAGER
from pbxbridge.web.tokens import create_token, revoke_token
from tests.fixtures_ami import trace_path
from tests.fixtures_service import SECRET, USER, DaemonProcess, write_config
from tests.fixtures_web import (  # noqa: F401 - fixtures
    ApiClient,
    PopulatedTemplates,
    WebData,
    fast_password_hashing,
    populated_templates,
    web_config,
    whisper_transcript,
)

STATE_CHANGING = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# What the app may show strangers, each with what guards it.
EXPECTED_PUBLIC = {
    # Sign-in (the form and its API twin): the password, throttled; CSRF even before signing in.
    "/login",
    "/api/login",
    # Health for the load balancer, the API's description: nothing of the calls in them.
    "/healthz",
    "/readyz",
    "/metrics",
    "/api/openapi.json",
    # The header's RU / EN on the sign-in page: only a cookie of the visitor's own; CSRF required.
    "/language",
    # The pages' translations: the English msgids and their Russian, nothing else (checked below).
    "/static/i18n/{language}.js",
    "/static/i18n/{language}.json",
    # Bitrix24's clicks on a number: the application token in the form, compared in constant time.
    "/api/crm/bitrix24/events",
    # A CRM plays a recording from a link signed with HMAC-SHA256 over the id and the expiry.
    "/recordings/shared/{recording_id}",
}
# Every path parameter the router has; each has an own and another's value in the walk below.
EXPECTED_PARAMS = {"call_id", "client_id", "recording_id", "comment_id", "filter_id", "kpi", "name", "target",
                   "extension", "language"}
# Routes only the head may use: a manager is refused his own things there as well as others'.
HEAD_ONLY = {
    ("GET", "/api/kpi/{kpi}/calls"),
    ("DELETE", "/api/checklists/{name}"),
    ("PUT", "/api/crm/users/{target}/{extension}"),
    ("DELETE", "/api/crm/users/{target}/{extension}"),
    ("PUT", "/api/calls/{call_id}/review"),
    ("POST", "/api/calls/{call_id}/review/comments"),
    ("DELETE", "/api/calls/{call_id}/review/comments/{comment_id}"),
    ("POST", "/api/clients/{client_id}/merge"),
}
# What a manager sends to another's things: a body the route takes, so that only whose they are is refused.
CHANGE_BODIES = {
    "/api/clients/{client_id}": {"notes": "mine now"},
    "/api/clients/{client_id}/notes": {"text": "mine now"},
    "/api/missed/{client_id}/close": {"reason": "spam"},
    "/api/missed/{client_id}/call": {},
    "/api/recordings/{recording_id}/listen": {},
}
# Parameters naming nobody's things (a language): the same for every person, nothing to keep apart.
SHARED_PARAMS = {"language"}
BITRIX24_TOKEN = "b24-application-token-5f1c9e"
BOGUS_BEARERS = ("Bearer x", "Bearer pbxb_" + "A" * 43, "bearer ")
TRAVERSALS = (
    "../../../../etc/passwd",
    "..%2f..%2f..%2f..%2fetc%2fpasswd",
    "%2e%2e/%2e%2e/%2e%2e/etc/passwd",
    "%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    "..%5c..%5c..%5cetc%5cpasswd",
    "/etc/passwd",
    "%2fetc%2fpasswd",
    "1%00",
    "%00../../etc/passwd",
    "1/../../../etc/passwd",
)
# Signs that a file from outside the app's own answers came back.
LEAKS = (b"root:x:0:0", b"RIFF", b"from __future__", b"[database]")


@dataclass(slots=True)
class Site:
    url: str
    host: str
    port: int
    data: WebData
    app: web.Application
    clients: list[ApiClient]
    petr_recording_id: int
    own: dict[str, str]
    others: dict[str, str]

    async def signed_in(self, username: str) -> ApiClient:
        client = ApiClient(self.url)
        self.clients.append(client)
        response = await client.login(username)
        assert response.status == 200, f"{username} could not sign in"
        return client


@dataclass(slots=True)
class Route:
    method: str
    template: str
    params: tuple[str, ...]

    def path(self, **values: str) -> str:
        path = self.template
        for name in self.params:
            path = path.replace("{" + name + "}", values[name])
        return path


def app_routes(app: web.Application) -> list[Route]:
    """Every (method, path template) the router serves, static files aside."""
    out: list[Route] = []
    for route in app.router.routes():
        resource = route.resource
        if resource is None or isinstance(resource, web.StaticResource) or route.method == "HEAD":
            continue
        info = resource.get_info()
        template = info.get("formatter") or info.get("path")
        assert template, resource
        # {call_id:\d+} shows as {call_id} in the formatter.
        params = tuple(re.findall(r"\{(\w+)\}", template))
        out.append(Route(route.method, template, params))
    return out


async def raw_request(site: Site, method: str, path: str, cookie: str = "", headers: dict[str, str] | None = None,
                      body: bytes = b"") -> tuple[int, dict[str, str], bytes]:
    """One HTTP/1.1 request written byte for byte; (status, headers, body)."""
    reader, writer = await asyncio.open_connection(site.host, site.port)
    lines = [f"{method} {path} HTTP/1.1", f"Host: {site.host}:{site.port}", "Connection: close"]
    if cookie:
        lines.append(f"Cookie: {cookie}")
    for key, value in (headers or {}).items():
        lines.append(f"{key}: {value}")
    if body or method in STATE_CHANGING:
        lines += ["Content-Type: application/json", f"Content-Length: {len(body)}"]
    writer.write(("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body)
    await writer.drain()
    data = await asyncio.wait_for(reader.read(), 30)
    writer.close()
    head, _, content = data.partition(b"\r\n\r\n")
    status_line, *header_lines = head.decode("latin-1").split("\r\n")
    answer_headers = {}
    for line in header_lines:
        key, _, value = line.partition(":")
        answer_headers[key.strip().lower()] = value.strip()
    return int(status_line.split()[1]), answer_headers, content


def cookie_header(client: ApiClient) -> str:
    return "; ".join(f"{c.key}={c.value}" for c in client.http.cookie_jar)


@pytest.fixture
async def site(
    db_url: str,
    shared_dir: Path,
    whisper_transcript: Transcript,  # noqa: F811
    fast_password_hashing: None,  # noqa: F811
    populated_templates: PopulatedTemplates,  # noqa: F811
) -> AsyncIterator[Site]:
    """The web app on a free port over every captured call, plus recording rows that point out of the root."""
    config = web_config(db_url, shared_dir)
    config.crm.bitrix24.application_token = BITRIX24_TOKEN
    data = await populated_templates.fill(config, shared_dir, whisper_transcript)
    engine = make_engine(db_url)
    sessions = session_factory(engine)
    async with sessions() as db:
        petr_recording = (
            await db.execute(select(Recording.id).where(Recording.call_id == data.petr_call_id).order_by(Recording.id))
        ).scalars().first()
    assert petr_recording is not None
    context = WebContext(config=config, sessions=sessions, signer=SessionSigner(config.web.secret_key))
    server = WebServer(context, host="127.0.0.1", port=0)
    await server.start()
    clients: list[ApiClient] = []
    try:
        site = Site(server.url, "127.0.0.1", server.port, data, server.app, clients, petr_recording, {}, {})
        await _things_of_each_manager(site)
        yield site
    finally:
        for client in clients:
            await client.close()
        await server.stop()
        await engine.dispose()


async def _things_of_each_manager(site: Site) -> None:
    """Ivan's things (the walk's own values) and Petr's (another's): made as the app makes them."""
    head = await site.signed_in("olga")
    comments = {}
    for who, call_id in (("ivan", site.data.ivan_call_id), ("petr", site.data.petr_call_id)):
        status, comment = await head.json("POST", f"/api/calls/{call_id}/review/comments",
                                          json={"at_s": 1.5, "text": "Не назвал цену"})
        assert status == 201, comment
        comments[who] = str(comment["id"])
    filters = {}
    for who in ("ivan", "petr"):
        manager = await site.signed_in(who)
        status, saved = await manager.json("POST", "/api/calls/filters",
                                           json={"name": "Входящие", "query": "direction=inbound"})
        assert status == 201, saved
        filters[who] = str(saved["id"])
    for extension in ("203", "202"):
        status, mapped = await head.json("PUT", f"/api/crm/users/bitrix24/{extension}",
                                         json={"user_id": extension[-1], "name": "Менеджер"})
        assert status == 200, mapped
    site.own.update(
        call_id=str(site.data.ivan_call_id), client_id=str(site.data.ivan_client_id),
        recording_id=str(site.data.ivan_recording_id), comment_id=comments["ivan"], filter_id=filters["ivan"],
        kpi="answered", name=quote("Приветствие"), target="bitrix24", extension="203", language="ru",
    )
    site.others.update(
        call_id=str(site.data.petr_call_id), client_id=str(site.data.petr_client_id),
        recording_id=str(site.petr_recording_id), comment_id=comments["petr"], filter_id=filters["petr"],
        kpi="missed", name=quote("Закрытие сделки"), target="bitrix24", extension="202", language="en",
    )


def _own_ids(site: Site) -> dict[str, str]:
    return site.own


def _others_ids(site: Site) -> dict[str, str]:
    return site.others


async def test_the_router_is_walked_whole(site: Site) -> None:
    routes = app_routes(site.app)
    # The app is not empty and its public part is what it should be.
    assert len(routes) >= 30
    assert {r.template for r in routes if is_public(r.template)} == EXPECTED_PUBLIC
    assert {p for r in routes for p in r.params} == EXPECTED_PARAMS
    assert set(site.own) == set(site.others) == EXPECTED_PARAMS
    assert HEAD_ONLY <= {(r.method, r.template) for r in routes}
    assert set(CHANGE_BODIES) <= {r.template for r in routes if r.method in STATE_CHANGING}


async def test_strangers_are_refused_everywhere_but_sign_in(site: Site) -> None:
    problems = []
    for route in app_routes(site.app):
        if is_public(route.template):
            continue
        path = route.path(**_own_ids(site))
        status, headers, body = await raw_request(site, route.method, path)
        if path.startswith("/api/"):
            ok = status == 401
        else:
            ok = status == 302 and headers.get("location", "").startswith("/login?next=")
        if not ok or any(leak in body for leak in LEAKS):
            problems.append(f"{route.method} {path}: {status}")
    # A made-up API token opens nothing under /api/, the sign-in and the CRM's events included.
    for route in app_routes(site.app):
        path = route.path(**_own_ids(site))
        if not path.startswith("/api/"):
            continue
        for bogus in BOGUS_BEARERS:
            status, headers, body = await raw_request(site, route.method, path, headers={"Authorization": bogus},
                                                      body=b"{}" if route.method in STATE_CHANGING else b"")
            if status != 401 or "Bearer" not in headers.get("www-authenticate", "") or any(
                leak in body for leak in LEAKS
            ):
                problems.append(f"{bogus!r} {route.method} {path}: {status}")
    assert problems == []


async def test_state_changes_without_the_csrf_token_are_refused(site: Site) -> None:
    head = await site.signed_in("olga")
    cookie = cookie_header(head)
    stranger = ApiClient(site.url)
    site.clients.append(stranger)
    await stranger.prime()
    problems = []
    changing = [r for r in app_routes(site.app) if r.method in STATE_CHANGING]
    assert {r.template for r in changing} >= {"/api/login", "/api/logout", "/api/clients/{client_id}",
                                              "/api/routing/rules", "/api/calls/originate", "/login", "/logout"}
    for route in changing:
        path = route.path(**_own_ids(site))
        if route.template.startswith(SELF_AUTHENTICATED):
            continue  # no cookie counts there at all: its own proof is checked in the test below
        for who, jar in (("head", cookie), ("stranger", cookie_header(stranger))):
            if who == "stranger" and not is_public(route.template):
                continue  # strangers are turned away before CSRF is looked at (test above)
            for token in (None, "forged-token"):
                headers = {"X-CSRF-Token": token} if token else {}
                status, _, _ = await raw_request(site, route.method, path, jar, headers, b"{}")
                if status != 403:
                    problems.append(f"{who} {route.method} {path} token={token}: {status}")
        # A Bearer header beside the head's cookie does not stand in for the CSRF token: under /api/ the
        # made-up token alone is looked at (401), elsewhere the header means nothing (403, as without it).
        status, _, _ = await raw_request(site, route.method, path, cookie, {"Authorization": "Bearer x"}, b"{}")
        if status != (401 if path.startswith("/api/") else 403):
            problems.append(f"head + bogus Bearer {route.method} {path}: {status}")
    assert problems == []
    # The head's session still works: the refusals changed nothing.
    status, me = await head.json("GET", "/api/me")
    assert status == 200 and me["username"] == "olga"


async def test_a_manager_cannot_reach_another_managers_calls_clients_filters_or_comments(site: Site) -> None:
    ivan = await site.signed_in("ivan")
    cookie = cookie_header(ivan)
    head_cookie = cookie_header(await site.signed_in("olga"))
    problems = []
    with_ids = [r for r in app_routes(site.app) if r.params]
    assert with_ids
    for route in with_ids:
        own = route.path(**_own_ids(site))
        others = route.path(**_others_ids(site))
        headers = {"X-CSRF-Token": ivan.csrf}
        head_only = (route.method, route.template) in HEAD_ONLY
        if route.method in STATE_CHANGING and not head_only and route.method != "DELETE":
            body = json.dumps(CHANGE_BODIES[route.template]).encode()
        else:
            body = b""
        if route.template.startswith(SELF_AUTHENTICATED):
            # A signed link: his session is no signature, for his own recording as for another's.
            for path in (own, others):
                status, _, content = await raw_request(site, route.method, path, cookie, headers)
                if status != 403 or content.startswith(b"RIFF"):
                    problems.append(f"unsigned {route.method} {path}: {status}")
            continue
        if route.method == "GET":
            # The route works for his own things (the head's, for a head-only route), so a refusal means something.
            status, _, _ = await raw_request(site, route.method, own, cookie, headers)
            if status != (403 if head_only else 200):
                problems.append(f"own {route.method} {own}: {status}")
            if head_only:
                status, _, _ = await raw_request(site, route.method, own, head_cookie)
                if status != 200:
                    problems.append(f"head's {route.method} {own}: {status}")
        elif head_only:
            status, _, _ = await raw_request(site, route.method, own, cookie, headers, body)
            if status != 403:
                problems.append(f"own {route.method} {own}: {status}")
        if set(route.params) <= SHARED_PARAMS:
            continue  # nobody's: "another's" value is the same thing for everyone
        status, _, content = await raw_request(site, route.method, others, cookie, headers, body)
        if status not in (403, 404) or any(leak in content for leak in LEAKS):
            problems.append(f"other's {route.method} {others}: {status}")
    assert problems == []
    # Nothing of Petr's moved: his saved filter and the comment on his call are still there.
    petr = await site.signed_in("petr")
    status, filters = await petr.json("GET", "/api/calls/filters")
    assert status == 200 and [str(f["id"]) for f in filters["saved"]] == [site.others["filter_id"]]
    status, review = await petr.json("GET", f"/api/calls/{site.data.petr_call_id}/review")
    assert status == 200 and [str(c["id"]) for c in review["comments"]] == [site.others["comment_id"]]


async def test_a_managers_api_token_reaches_no_more_than_the_manager(site: Site, db_url: str) -> None:
    engine = make_engine(db_url)
    try:
        async with session_factory(engine)() as db, db.begin():
            _, token = await create_token(db, "Скрипт Ивана", MANAGER, "203")
            _, old = await create_token(db, "Старый скрипт", MANAGER, "203")
            await revoke_token(db, "Старый скрипт")
    finally:
        await engine.dispose()
    problems = []
    for route in app_routes(site.app):
        if not route.template.startswith("/api/") or not route.params or is_public(route.template):
            continue
        head_only = (route.method, route.template) in HEAD_ONLY
        body = json.dumps(CHANGE_BODIES.get(route.template, {})).encode() if route.method in STATE_CHANGING else b""
        auth = {"Authorization": f"Bearer {token}"}
        if route.method == "GET":
            status, _, _ = await raw_request(site, "GET", route.path(**_own_ids(site)), headers=auth)
            if status != (403 if head_only else 200):
                problems.append(f"token's own GET {route.template}: {status}")
        status, _, content = await raw_request(site, route.method, route.path(**_others_ids(site)), headers=auth,
                                               body=body)
        if status not in (403, 404) or any(leak in content for leak in LEAKS):
            problems.append(f"token on other's {route.method} {route.template}: {status}")
        status, _, _ = await raw_request(site, route.method, route.path(**_own_ids(site)),
                                         headers={"Authorization": f"Bearer {old}"}, body=body)
        if status != 401:
            problems.append(f"revoked token {route.method} {route.template}: {status}")
    assert problems == []
    # A person's saved filter is not a machine's to delete, though the token is of his extension.
    status, _, _ = await raw_request(site, "DELETE", f"/api/calls/filters/{site.own['filter_id']}",
                                     headers={"Authorization": f"Bearer {token}"})
    assert status == 403
    ivan = await site.signed_in("ivan")
    status, filters = await ivan.json("GET", "/api/calls/filters")
    assert status == 200 and [str(f["id"]) for f in filters["saved"]] == [site.own["filter_id"]]


async def test_the_head_cannot_take_back_a_comment_through_another_call(site: Site) -> None:
    head = await site.signed_in("olga")
    # Petr's call's comment, addressed through Ivan's call: not found, and still there.
    wrong = f"/api/calls/{site.data.ivan_call_id}/review/comments/{site.others['comment_id']}"
    async with head.send("DELETE", wrong) as response:
        assert response.status == 404
    status, review = await head.json("GET", f"/api/calls/{site.data.petr_call_id}/review")
    assert status == 200 and [str(c["id"]) for c in review["comments"]] == [site.others["comment_id"]]


async def test_public_routes_refuse_strangers_without_their_own_proof(site: Site) -> None:
    events = "/api/crm/bitrix24/events"
    click = {"event": "ONEXTERNALCALLSTART", "data[USER_ID]": "42", "data[PHONE_NUMBER]": "+74951234567"}
    stranger = ApiClient(site.url)
    site.clients.append(stranger)
    head = await site.signed_in("olga")
    # Without the application token, with a wrong one, with one differing in its last letter: refused,
    # and a head's session beside it changes nothing (Bitrix24 has no session).
    for client in (stranger, head):
        for token in (None, "", "wrong", BITRIX24_TOKEN[:-1] + "0", BITRIX24_TOKEN + " "):
            form = click if token is None else {**click, "auth[application_token]": token}
            async with client.send("POST", events, csrf=False, data=form) as response:
                assert response.status == 403, (token, response.status)
                assert "application token" in (await response.json())["error"]
    # The right token gets past the guard: this Bitrix24 user has no extension, which is said plainly.
    async with stranger.send("POST", events, csrf=False, data={**click, "auth[application_token]": BITRIX24_TOKEN}) \
            as response:
        assert response.status == 409, await response.text()
    # Bitrix24's clicks are refused altogether when no application token is configured.
    site.data.config.crm.bitrix24.application_token = ""
    for token in ("", BITRIX24_TOKEN):
        async with stranger.send("POST", events, csrf=False, data={**click, "auth[application_token]": token}) \
                as response:
            assert response.status == 403
    site.data.config.crm.bitrix24.application_token = BITRIX24_TOKEN

    # A signed recording link plays; without its signature, changed, expired or another's, 403 with no sound.
    key = site.data.config.web.secret_key
    recording = site.data.ivan_recording_id
    later = int(time.time()) + 3600
    good = signed_url("", key, recording, later)
    status, _, content = await raw_request(site, "GET", good)
    assert status == 200 and content.startswith(b"RIFF")
    good_signature = signature(key, recording, later)
    tampered = ("B" if good_signature[0] != "B" else "C") + good_signature[1:]
    earlier = int(time.time()) - 10
    refused = [
        f"/recordings/shared/{recording}",
        f"/recordings/shared/{recording}?expires={later}",
        f"/recordings/shared/{recording}?expires={later}&signature=",
        f"/recordings/shared/{recording}?expires={later}&signature={tampered}",
        f"/recordings/shared/{recording}?expires={later + 1}&signature={good_signature}",
        f"/recordings/shared/{site.petr_recording_id}?expires={later}&signature={good_signature}",
        signed_url("", key, recording, earlier),
        signed_url("", "another-secret-key-0123456789", recording, later),
        f"/recordings/shared/{recording}?expires={later}%00&signature={good_signature}",
    ]
    for path in refused:
        status, _, content = await raw_request(site, "GET", path, cookie_header(head))
        assert status == 403 and not content.startswith(b"RIFF"), (path, status)

    # The translations tell a stranger nothing but the words of the pages.
    secrets = (key.encode(), BITRIX24_TOKEN.encode(), site.data.config.database.url.encode(), b"ivan", b"petr",
               b"+7916111000")
    for language in ("ru", "en"):
        status, headers, content = await raw_request(site, "GET", f"/static/i18n/{language}.json")
        assert status == 200 and headers["content-type"].startswith("application/json")
        catalog = json.loads(content)
        assert set(catalog) == {"language", "plural", "plural_default", "messages", "plurals"}
        assert catalog["language"] == language and isinstance(catalog["plural_default"], int)
        assert all(isinstance(k, str) and isinstance(v, int) for k, v in catalog["plural"].items())
        assert all(isinstance(k, str) and isinstance(v, str) for k, v in catalog["messages"].items())
        assert all(isinstance(k, str) and isinstance(v, list) and all(isinstance(f, str) for f in v)
                   for k, v in catalog["plurals"].items())
        status, _, script = await raw_request(site, "GET", f"/static/i18n/{language}.js")
        assert status == 200 and script.startswith(b"window.PBX_CATALOG = ")
        for body in (content, script):
            assert not any(secret in body for secret in secrets + LEAKS)
    if site.data.config.web.language == "en":
        assert json.loads((await raw_request(site, "GET", "/static/i18n/ru.json"))[2])["messages"]
    for missing in ("de", "ru.po", "RU", "..%2fru"):
        status, _, content = await raw_request(site, "GET", f"/static/i18n/{missing}.json")
        assert status == 404 and not any(leak in content for leak in LEAKS), (missing, status)


async def test_path_traversal_in_every_path_parameter_is_refused(site: Site) -> None:
    head = await site.signed_in("olga")
    cookie = cookie_header(head)
    problems = []
    for route in app_routes(site.app):
        for name in route.params:
            for attack in TRAVERSALS:
                values = _own_ids(site) | {name: attack}
                path = route.path(**values)
                status, _, content = await raw_request(site, route.method, path, cookie,
                                                       {"X-CSRF-Token": head.csrf})
                if status not in (400, 403, 404) or any(leak in content for leak in LEAKS):
                    problems.append(f"{route.method} {path}: {status}")
    # The static files' directory cannot be left either.
    escapes = ("..%2fapp.py", "%2e%2e/app.py", "../app.py", "..%2f..%2f..%2fconfig%2fpbxbridge.example.toml")
    for attack in TRAVERSALS + escapes:
        status, _, content = await raw_request(site, "GET", f"/static/{attack}", cookie)
        if status not in (400, 403, 404) or any(leak in content for leak in LEAKS):
            problems.append(f"GET /static/{attack}: {status}")
    assert problems == []


async def test_recording_rows_pointing_out_of_the_root_serve_nothing(site: Site, db_url: str) -> None:
    await _hostile_recordings_refused(
        site, db_url, ["../../../../../../etc/passwd", "/etc/passwd", "2026/../../../../../../etc/passwd"]
    )


async def test_a_recording_row_with_a_nul_byte_is_refused_cleanly(site: Site, db_url: str) -> None:
    hostile = ["2026/11/26/ok.wav\x00../../../etc/passwd"]
    if make_url(db_url).get_backend_name() == "postgresql":
        # PostgreSQL text cannot hold a NUL byte: such a row never exists there.
        with pytest.raises(DBAPIError):
            await _hostile_recordings_refused(site, db_url, hostile)
        return
    await _hostile_recordings_refused(site, db_url, hostile)


async def _hostile_recordings_refused(site: Site, db_url: str, hostile: list[str]) -> None:
    engine = make_engine(db_url)
    ids = []
    try:
        async with session_factory(engine)() as db, db.begin():
            for position, path in enumerate(hostile, start=50):
                row = Recording(call_id=site.data.ivan_call_id, position=position, pbx_path=path, path=path,
                                status="ok", format="wav")
                db.add(row)
                await db.flush()
                ids.append(row.id)
    finally:
        await engine.dispose()
    head = await site.signed_in("olga")
    for recording_id in ids:
        path = f"/api/recordings/{recording_id}/audio"
        status, _, content = await raw_request(site, "GET", path, cookie_header(head))
        assert status in (403, 404), (recording_id, status)
        assert not any(leak in content for leak in LEAKS)
    # The call's real recording still plays.
    status, headers, content = await raw_request(
        site, "GET", f"/api/recordings/{site.data.ivan_recording_id}/audio", cookie_header(head))
    assert status == 200 and content.startswith(b"RIFF")


def test_the_ami_secret_and_database_password_never_reach_the_log(
    db_url: str, tmp_path: Path, shared_dir: Path
) -> None:
    password = "Db-pa55:w/rd@x"
    url = make_url(db_url)
    if url.get_backend_name() == "postgresql":
        # The server trusts local connections: any password gets in, and the daemon must still hide it.
        db_url = url.set(password=password).render_as_string(hide_password=False)
    log_path = tmp_path / "daemon.log"
    names = ("01-inbound-answered.ami", "06-outbound-answered.ami")
    traces = [load_trace(trace_path(shared_dir, n)) for n in names]

    async def go() -> None:
        # First the PBX refuses the secret (the daemon logs its attempts), then takes it.
        sim = AmiSimulator(traces, speed=0, username=USER, secret="something-else")
        await sim.start()
        config = write_config(tmp_path / "pbxbridge.toml", db_url, sim.port, shared_dir / "recordings", level="DEBUG")
        daemon = DaemonProcess(config, log_path)
        try:
            await daemon.wait_for(lambda e: "login refused" in str(e.get("message")))
            sim.secret = SECRET
            await daemon.wait_for(lambda e: str(e.get("message")).startswith("ready"))
            await sim.wait_replayed()
            await daemon.wait_for(lambda e: str(e.get("message")).startswith("call main/"))
            sim.drop_clients()
            await daemon.wait_for(lambda e: "AMI connection lost" in str(e.get("message")))
            daemon.terminate()
            assert await daemon.exited() == 0
        finally:
            await sim.stop()

    asyncio.run(go())
    text = log_path.read_bytes()
    assert b"pbxbridge daemon stopped" in text and len(text.splitlines()) > 10
    for secret in (SECRET, password, "Db-pa55%3Aw%2Frd%40x", "web-key-0123456789abcdef"):
        assert secret.encode() not in text, secret


async def test_a_crm_user_is_set_and_removed_for_digits_only(site: Site) -> None:
    head = await site.signed_in("olga")
    # "$" in a pattern also matches before a final newline: "203\n" must not become an extension.
    for extension in ("203%0A", "203%0D%0A", "203%00", "%0A203"):
        status, body = await head.json("PUT", f"/api/crm/users/bitrix24/{extension}", json={"user_id": "9"})
        assert status == 400 and "digits only" in body["error"], (extension, status)
        status, body = await head.json("DELETE", f"/api/crm/users/bitrix24/{extension}")
        assert status == 404 and "no user" in body["error"], (extension, status)
    status, listed = await head.json("GET", "/api/crm/users")
    assert status == 200
    assert sorted((i["extension"], i["user_id"]) for i in listed["items"]) == [("202", "2"), ("203", "3")]


async def test_a_nul_character_in_a_body_or_a_search_is_a_clear_400_and_stores_nothing(site: Site) -> None:
    head = await site.signed_in("olga")
    ivan = await site.signed_in("ivan")
    call, client = site.data.ivan_call_id, site.data.ivan_client_id
    # PostgreSQL's text cannot hold a NUL; SQLite would store it. Both refuse it alike, before anything is written.
    sent = [
        (head, "PUT", "/api/crm/users/bitrix24/203", {"user_id": "9", "name": "Иван\x00"}),
        (head, "PUT", "/api/checklists", {"name": "При\x00ветствие", "items": [{"title": "Назвал компанию",
                                                                                  "phrases": ["компания"]}]}),
        (head, "POST", f"/api/calls/{call}/review/comments", {"at_s": 1, "text": "цена\x00"}),
        (ivan, "POST", "/api/calls/filters", {"name": "Входящие\x00", "query": "direction=inbound"}),
        (ivan, "PATCH", f"/api/clients/{client}", {"notes": "перезвонить\x00"}),
        (ivan, "POST", f"/api/clients/{client}/notes", {"text": "ok", "\x00": ["deep", [{"x": "\x00"}]]}),
    ]
    for who, method, path, body in sent:
        status, answer = await who.json(method, path, json=body)
        assert (status, answer) == (400, {"error": "the text must not contain NUL characters"}), (path, status)
    status, answer = await head.json("GET", "/api/clients?q=%00")
    assert status == 400 and "control characters" in answer["error"]
    click = {"event": "ONEXTERNALCALLSTART", "auth[application_token]": BITRIX24_TOKEN, "data[USER_ID]": "3\x00",
             "data[PHONE_NUMBER]": "+74951234567"}
    stranger = ApiClient(site.url)
    site.clients.append(stranger)
    async with stranger.send("POST", "/api/crm/bitrix24/events", csrf=False, data=click) as response:
        assert response.status == 400 and "NUL" in (await response.json())["error"]
    # Nothing of it was kept.
    assert (await head.json("GET", "/api/checklists"))[1]["checklists"] == []
    assert [c["text"] for c in (await head.json("GET", f"/api/calls/{call}/review"))[1]["comments"]] == ["Не назвал цену"]
    assert [f["name"] for f in (await ivan.json("GET", "/api/calls/filters"))[1]["saved"]] == ["Входящие"]
    crm = (await head.json("GET", "/api/crm/users"))[1]["items"]
    assert sorted((i["extension"], i["name"]) for i in crm) == [("202", "Менеджер"), ("203", "Менеджер")]
