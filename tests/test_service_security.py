"""Every route of the web app, as an attacker tries it; and no secret in the daemon's log.

The routes are not listed here by hand: they are read from the application's
router, so a route added later is checked without anyone remembering to.
Requests go over a real socket byte for byte (no client library tidying
``../`` away) to the app serving every captured call.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from aiohttp import web
from sqlalchemy import select
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.ami.traces import load_trace
from pbxbridge.calls.tables import Recording
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.transcription.transcript import Transcript
from pbxbridge.web.app import WebServer
from pbxbridge.web.context import WebContext
from pbxbridge.web.middleware import is_public
from pbxbridge.web.sessions import SessionSigner
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
# What the app may show strangers: sign-in, health for the load balancer, the API's description.
EXPECTED_PUBLIC = {"/login", "/api/login", "/healthz", "/readyz", "/metrics", "/api/openapi.json"}
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
        yield Site(server.url, "127.0.0.1", server.port, data, server.app, clients, petr_recording)
    finally:
        for client in clients:
            await client.close()
        await server.stop()
        await engine.dispose()


def _own_ids(site: Site) -> dict[str, str]:
    return {
        "call_id": str(site.data.ivan_call_id),
        "client_id": str(site.data.ivan_client_id),
        "recording_id": str(site.data.ivan_recording_id),
    }


def _others_ids(site: Site) -> dict[str, str]:
    return {
        "call_id": str(site.data.petr_call_id),
        "client_id": str(site.data.petr_client_id),
        "recording_id": str(site.petr_recording_id),
    }


async def test_the_router_is_walked_whole(site: Site) -> None:
    routes = app_routes(site.app)
    # The app is not empty and its public part is what it should be.
    assert len(routes) >= 30
    assert {r.template for r in routes if is_public(r.template)} == EXPECTED_PUBLIC
    assert {p for r in routes for p in r.params} == {"call_id", "client_id", "recording_id"}


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
        for who, jar in (("head", cookie), ("stranger", cookie_header(stranger))):
            if who == "stranger" and not is_public(route.template):
                continue  # strangers are turned away before CSRF is looked at (test above)
            for token in (None, "forged-token"):
                headers = {"X-CSRF-Token": token} if token else {}
                status, _, _ = await raw_request(site, route.method, path, jar, headers, b"{}")
                if status != 403:
                    problems.append(f"{who} {route.method} {path} token={token}: {status}")
    assert problems == []
    # The head's session still works: the refusals changed nothing.
    status, me = await head.json("GET", "/api/me")
    assert status == 200 and me["username"] == "olga"


async def test_a_manager_cannot_reach_another_managers_calls_clients_or_recordings(site: Site) -> None:
    ivan = await site.signed_in("ivan")
    cookie = cookie_header(ivan)
    problems = []
    with_ids = [r for r in app_routes(site.app) if r.params]
    assert with_ids
    for route in with_ids:
        own = route.path(**_own_ids(site))
        others = route.path(**_others_ids(site))
        headers = {"X-CSRF-Token": ivan.csrf}
        body = b'{"notes": "mine now"}' if route.method in STATE_CHANGING else b""
        if route.method == "GET":
            # The route works for his own things (so a refusal below means something).
            status, _, _ = await raw_request(site, route.method, own, cookie, headers)
            if status != 200:
                problems.append(f"own {route.method} {own}: {status}")
        status, _, content = await raw_request(site, route.method, others, cookie, headers, body)
        if status not in (403, 404) or any(leak in content for leak in LEAKS):
            problems.append(f"other's {route.method} {others}: {status}")
    assert problems == []


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
