"""The web API on a real server over both databases: roles, scoping, CSRF, audio ranges, the OpenAPI contract."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp
import pytest

from pbxbridge.ami.frames import event_time, read_trace
from pbxbridge.calls.tracker import CallTracker, TrackerSettings
from pbxbridge.cli.main import main
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.kpi.service import KpiService
from pbxbridge.transcription.transcript import Transcript
from pbxbridge.web.app import WebServer
from pbxbridge.web.context import WebContext
from pbxbridge.web.live import LiveBoard
from pbxbridge.web.sessions import SessionSigner
from pbxbridge.web.throttle import LoginThrottle
from pbxbridge.web.users import list_users
from tests.fixtures_web import (  # noqa: F401 - fixtures
    PASSWORD,
    USERS,
    ApiClient,
    PopulatedTemplates,
    WebData,
    fast_password_hashing,
    populated_templates,
    web_config,
    whisper_transcript,
)

OPENAPI = Path(__file__).resolve().parent.parent / "pbxbridge" / "web" / "openapi.json"


@dataclass(slots=True)
class Site:
    url: str
    data: WebData
    context: WebContext
    app: Any
    clients: list[ApiClient]

    def client(self) -> ApiClient:
        """A fresh client with its own cookies."""
        client = ApiClient(self.url)
        self.clients.append(client)
        return client

    async def signed_in(self, username: str) -> ApiClient:
        """A client signed in as ``username``."""
        client = self.client()
        response = await client.login(username)
        assert response.status == 200, f"{username} could not sign in"
        return client


def live_board_mid_call(shared_dir: Path) -> LiveBoard:
    """A wallboard fed the first scenario's captured events up to the moment manager 203 answers."""
    tracker = CallTracker(TrackerSettings(pbx="main"))
    board = LiveBoard(tracker.active_calls)
    _banner, frames = read_trace(shared_dir / "01-inbound-answered.ami")
    now = 0.0
    for frame in frames:
        if "Event" not in frame:
            continue
        now = event_time(frame, now)
        tracker.feed(frame, now)
        board.on_event("main", frame)
        calls = tracker.active_calls()
        if calls and calls[0]["answered_at"] and board.snapshot()["managers"]:
            if any(m["state"] == "in_call" for m in board.snapshot()["managers"]):
                break
    return board


@pytest.fixture
async def site(
    db_url: str,
    shared_dir: Path,
    whisper_transcript: Transcript,  # noqa: F811
    fast_password_hashing: None,  # noqa: F811
    populated_templates: PopulatedTemplates,  # noqa: F811
) -> AsyncIterator[Site]:
    """The web app on a free port, over a database holding every captured call."""
    config = web_config(db_url, shared_dir)
    data = await populated_templates.fill(config, shared_dir, whisper_transcript)
    engine = make_engine(db_url)
    kpi = KpiService.from_config(config)
    context = WebContext(
        config=config,
        sessions=session_factory(engine),
        signer=SessionSigner(config.web.secret_key),
        # Time stands still for the throttle: a blocked sign-in stays blocked.
        throttle=LoginThrottle(clock=lambda: 1000.0),
        live=live_board_mid_call(shared_dir),
        metrics_text=kpi.metrics_text,
    )
    server = WebServer(context, host="127.0.0.1", port=0)
    await server.start()
    clients: list[ApiClient] = []
    try:
        yield Site(server.url, data, context, server.app, clients)
    finally:
        for client in clients:
            await client.close()
        await server.stop()
        await engine.dispose()


async def test_each_role_signs_in_and_strangers_are_turned_away(site: Site) -> None:
    stranger = site.client()
    status, body = await stranger.json("GET", "/api/me")
    assert status == 401 and body["error"]
    async with stranger.send("GET", "/calls") as page:
        assert page.status == 302
        assert page.headers["Location"].startswith("/login?next=")
    async with stranger.send("GET", "/api/calls") as listing:
        assert listing.status == 401

    for username, role, extension in (("olga", "head", None), ("ivan", "manager", "203"), ("sergey", "ops", None)):
        client = await site.signed_in(username)
        status, me = await client.json("GET", "/api/me")
        assert (status, me["username"], me["role"], me["extension"]) == (200, username, role, extension)

    # The session cookie is HttpOnly and SameSite=Lax; the CSRF copy is readable by the page.
    fresh = site.client()
    response = await fresh.login("olga")
    cookies = response.headers.getall("Set-Cookie")
    session_cookie = next(c for c in cookies if c.startswith("pbxb_session="))
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie
    assert "HttpOnly" not in next(c for c in cookies if c.startswith("pbxb_csrf="))

    # ops may not read the journal; a manager may not change routing.
    ops = await site.signed_in("sergey")
    assert (await ops.json("GET", "/api/calls"))[0] == 403
    async with ops.send("GET", "/kpi") as page:
        assert page.status == 403
    manager = await site.signed_in("ivan")
    assert (await manager.json("PUT", "/api/routing/rules", json={"max_waiting": 5}))[0] == 403

    # Signing out ends the session.
    assert (await manager.json("POST", "/api/logout"))[0] == 200
    assert (await manager.json("GET", "/api/me"))[0] == 401

    # Behind an HTTPS proxy the cookies are marked Secure.
    site.context.secure_cookies = True
    response = await site.client().login("olga")
    assert all("Secure" in c for c in response.headers.getall("Set-Cookie"))


def lab_managers(shared_dir: Path) -> list[dict[str, str]]:
    """Extensions and names as the lab's PBX announces them (pjsip.conf's callerid lines)."""
    conf = (shared_dir / "lab" / "pjsip" / "pjsip.conf").read_text(encoding="utf-8")
    announced = re.findall(r'callerid = "([^"]+)" <(\d+)>', conf)
    return [{"extension": ext, "name": name} for name, ext in sorted(announced, key=lambda found: found[1])]


async def test_users_for_the_head_only_and_managers_for_everyone_without_secrets(
    site: Site, shared_dir: Path
) -> None:
    async with site.context.sessions() as db:
        hashes = [u.password_hash for u in await list_users(db)]
    secrets = [PASSWORD, site.data.config.web.secret_key, "argon2", *hashes]

    olga = await site.signed_in("olga")
    async with olga.send("GET", "/api/users") as response:
        assert response.status == 200
        text = await response.text()
    listed = json.loads(text)["items"]
    assert sorted((u["username"], u["role"], u["extension"]) for u in listed) == sorted(
        (name, role, ext) for name, (role, ext) in USERS.items()
    )
    assert all(set(u) == {"id", "username", "role", "extension", "created_at"} for u in listed)
    assert not [s for s in secrets if s in text]
    # Who may sign in is the head's business: a manager and ops are refused, and told why.
    for username in ("ivan", "sergey"):
        client = await site.signed_in(username)
        assert await client.json("GET", "/api/users") == (403, {"error": "your role may not do this"})

    # Every role's pages name the managers (journal filter, client card, wallboard): the PBX's names.
    for username in ("olga", "ivan", "sergey"):
        client = olga if username == "olga" else await site.signed_in(username)
        async with client.send("GET", "/api/managers") as response:
            assert response.status == 200, username
            text = await response.text()
        assert json.loads(text) == {"items": lab_managers(shared_dir)}, username
        assert not [s for s in secrets if s in text], username


async def status_with_cookie(url: str, path: str, cookie: str) -> int:
    """The status a request gets carrying only a kept copy of a session cookie (no CSRF needed: GET)."""
    async with aiohttp.ClientSession(url, cookie_jar=aiohttp.DummyCookieJar()) as http:
        async with http.get(path, headers={"Cookie": f"pbxb_session={cookie}"}, allow_redirects=False) as r:
            return r.status


def session_cookie(client: ApiClient) -> str:
    """The value of a client's session cookie."""
    return next(c.value for c in client.http.cookie_jar if c.key == "pbxb_session")


async def test_sign_out_form_ends_the_session_even_for_a_kept_copy_of_its_cookie(site: Site) -> None:
    browser = site.client()
    await browser.prime()
    form = {"username": "olga", "password": PASSWORD, "next": "/calls", "csrf_token": browser.csrf}
    async with browser.send("POST", "/login", csrf=False, data=form) as signed_in:
        assert signed_in.status == 302
    kept = session_cookie(browser)
    assert await status_with_cookie(site.url, "/api/me", kept) == 200
    other = await site.signed_in("petr")

    async with browser.send("GET", "/calls") as page:
        html = await page.text()
    # The "Sign out" button every page carries: a POST form holding the session's CSRF token.
    sign_out = re.search(r'<form method="post" action="([^"]+)"><input type="hidden" name="csrf_token" value="([^"]+)">'
                         r'<button[^>]*>Sign out</button>', html)
    assert sign_out is not None, "no sign-out form on the page"
    action, token = sign_out.groups()
    # A forged form (another site's, without the token) does not sign anyone out.
    async with browser.send("POST", action, csrf=False, data={"csrf_token": "forged"}) as forged:
        assert forged.status == 403
    assert await status_with_cookie(site.url, "/api/me", kept) == 200

    async with browser.send("POST", action, csrf=False, data={"csrf_token": token}) as signed_out:
        assert (signed_out.status, signed_out.headers["Location"]) == (302, "/login")
    async with browser.send("GET", "/calls") as page:
        assert page.status == 302 and page.headers["Location"].startswith("/login")
    # A copy of the cookie kept from before (another tab, a stolen one) no longer works either.
    assert await status_with_cookie(site.url, "/api/me", kept) == 401
    assert await status_with_cookie(site.url, "/calls", kept) == 302
    # Others stay signed in.
    assert (await other.json("GET", "/api/me"))[0] == 200

    # The sign-out holds after a restart (same key, same database), while other sessions carry on.
    config = site.data.config
    restarted = WebServer(
        WebContext(config=config, sessions=site.context.sessions, signer=SessionSigner(config.web.secret_key)),
        host="127.0.0.1", port=0,
    )
    await restarted.start()
    try:
        assert await status_with_cookie(restarted.url, "/api/me", kept) == 401
        assert await status_with_cookie(restarted.url, "/api/me", session_cookie(other)) == 200
    finally:
        await restarted.stop()
    # The head can see who signed out, but not the token that guarded the session's forms.
    head = await site.signed_in("olga")
    _, log = await head.json("GET", "/api/audit")
    assert [e["username"] for e in log["items"] if e["action"] == "sign_out"] == ["olga"]
    assert token not in json.dumps(log)


async def test_new_password_from_the_command_line_ends_that_users_sessions(
    site: Site, db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    ivan = await site.signed_in("ivan")
    kept = session_cookie(ivan)
    petr = await site.signed_in("petr")
    assert (await ivan.json("GET", "/api/me"))[0] == 200

    # `pbxbridge users passwd` as an administrator runs it (in a thread: it runs its own event loop).
    monkeypatch.setattr("sys.stdin", io.StringIO("a brand new secret\n"))
    assert await asyncio.to_thread(main, ["users", "passwd", "ivan", "--password-stdin", "--db", db_url]) == 0

    assert await ivan.json("GET", "/api/me") == (401, {"error": "sign in first"})
    assert await status_with_cookie(site.url, "/calls", kept) == 302
    assert (await petr.json("GET", "/api/me"))[0] == 200
    assert (await site.client().login("ivan")).status == 401
    assert (await site.client().login("ivan", "a brand new secret")).status == 200


async def test_wrong_passwords_are_refused_then_throttled(site: Site) -> None:
    client = site.client()
    for _ in range(3):
        response = await client.login("sergey", "not the password")
        assert response.status == 401
    # Three failures for this name from this address: the next try must wait, even with the right password.
    response = await client.login("sergey")
    assert response.status == 429
    assert int(response.headers["Retry-After"]) >= 1
    # Another user from the same address is not held up.
    assert (await client.login("olga")).status == 200
    # Unknown users get the same answer as a wrong password.
    assert (await site.client().login("nobody", "whatever123")).status == 401


async def test_manager_sees_only_own_calls_and_clients(site: Site) -> None:
    data = site.data
    ivan = await site.signed_in("ivan")  # 203, answered the first call
    petr = await site.signed_in("petr")  # 202, answered the second

    status, call = await ivan.json("GET", f"/api/calls/{data.ivan_call_id}")
    assert status == 200 and call["manager"] == "203"
    assert (await petr.json("GET", f"/api/calls/{data.ivan_call_id}"))[0] == 403
    assert (await ivan.json("GET", f"/api/calls/{data.petr_call_id}"))[0] == 403
    # By link, too: the page itself answers 403.
    async with petr.send("GET", f"/calls/{data.ivan_call_id}") as page:
        assert page.status == 403
        assert "another manager" in await page.text()
    async with ivan.send("GET", f"/calls/{data.ivan_call_id}") as page:
        assert page.status == 200
    # Nor the recording, nor the client's card.
    async with petr.send("GET", f"/api/recordings/{data.ivan_recording_id}/audio") as audio:
        assert audio.status == 403
    assert (await petr.json("GET", f"/api/clients/{data.ivan_client_id}"))[0] == 403
    assert (await petr.json("POST", "/api/calls/originate", json={"client_id": data.ivan_client_id}))[0] == 403

    # The journal lists only the manager's calls, and search finds nothing of others'.
    status, page = await petr.json("GET", "/api/calls?per_page=200")
    assert status == 200 and page["total"] > 0
    assert all("202" in (c["manager"], c["final_manager"]) for c in page["items"])
    _, found = await petr.json("GET", "/api/calls", params={"q": "информация"})
    assert found["total"] == 0
    _, found = await ivan.json("GET", "/api/calls", params={"q": "информация"})
    assert [c["id"] for c in found["items"]] == [data.ivan_call_id]

    # The head of sales sees everything; making petr responsible for ivan's client opens its calls to him.
    olga = await site.signed_in("olga")
    _, everything = await olga.json("GET", "/api/calls?per_page=200")
    assert everything["total"] == data.calls
    status, card = await olga.json(
        "PATCH", f"/api/clients/{data.ivan_client_id}", json={"responsible_manager": "202", "notes": "Wants a demo"}
    )
    assert status == 200 and card["responsible_manager"] == "202" and card["notes"] == "Wants a demo"
    status, card = await petr.json("GET", f"/api/clients/{data.ivan_client_id}")
    assert status == 200 and [c["id"] for c in card["calls"]] == [data.ivan_call_id]
    # Only the head reassigns clients.
    status, body = await petr.json("PATCH", f"/api/clients/{data.ivan_client_id}", json={"responsible_manager": "203"})
    assert status == 403


async def test_malformed_requests_get_a_reason_and_change_nothing(site: Site) -> None:
    olga = await site.signed_in("olga")
    card = f"/api/clients/{site.data.ivan_client_id}"
    assert (await olga.json("PATCH", card, json={"notes": "kept"}))[0] == 200

    async def answer(method: str, path: str, **kwargs: Any) -> tuple[int, Any]:
        return await olga.json(method, path, **kwargs)

    as_json = {"Content-Type": "application/json"}
    assert await answer("PATCH", card, data=b"{not json", headers=as_json) == (400, {"error": "the body must be JSON"})
    assert await answer("PATCH", card, json=["notes"]) == (400, {"error": "the body must be a JSON object"})
    assert await answer("PATCH", card, json={"colour": "red"}) == (400, {"error": "unknown field(s): colour"})
    status, problem = await answer("PATCH", card, json={"notes": 5})
    assert status == 400 and problem["error"].startswith("notes: text up to")
    # A body over the limit is refused before it is read (1 MiB).
    status, problem = await answer("PATCH", card, data=b"x" * (2 * 1024 * 1024), headers=as_json)
    assert status == 413 and problem["error"]
    # Journal filters name the parameter they cannot read.
    for bad in ({"per_page": "many"}, {"from": "yesterday"}, {"min_duration": "long"}):
        status, problem = await answer("GET", "/api/calls", params=bad)
        (key,) = bad
        assert status == 400 and problem["error"].startswith(f"{key}:"), problem
    # A tampered session cookie is no session.
    forged = session_cookie(olga)[:-2] + ("AA" if not session_cookie(olga).endswith("AA") else "BB")
    assert await status_with_cookie(site.url, "/api/me", forged) == 401

    # Nothing of it changed anything.
    assert (await answer("GET", card))[1]["notes"] == "kept"
    assert (await answer("GET", "/api/calls"))[1]["total"] == site.data.calls


async def test_state_changes_need_the_csrf_token(site: Site) -> None:
    olga = await site.signed_in("olga")
    path = f"/api/clients/{site.data.ivan_client_id}"
    status, body = await olga.json("PATCH", path, json={"notes": "x"}, csrf=False)
    assert status == 403 and "CSRF" in body["error"]
    status, _ = await olga.json("PATCH", path, json={"notes": "x"}, csrf=False, headers={"X-CSRF-Token": "forged"})
    assert status == 403
    assert (await olga.json("PATCH", path, json={"notes": "kept"}))[0] == 200
    _, card = await olga.json("GET", path)
    assert card["notes"] == "kept"

    # Signing in needs it as well (a forged login from another site would fail).
    stranger = site.client()
    await stranger.prime()
    async with stranger.send("POST", "/api/login", csrf=False, json={"username": "olga", "password": PASSWORD}) as r:
        assert r.status == 403
    # The sign-in form carries it as a hidden field.
    async with stranger.send("GET", "/login") as page:
        assert 'name="csrf_token"' in await page.text()
    form = {"username": "olga", "password": PASSWORD, "next": "/kpi", "csrf_token": "wrong"}
    async with stranger.send("POST", "/login", csrf=False, data=form) as r:
        assert r.status == 403
    form["csrf_token"] = stranger.csrf
    async with stranger.send("POST", "/login", csrf=False, data=form) as r:
        assert r.status == 302 and r.headers["Location"] == "/kpi"
    assert (await stranger.json("GET", "/api/me"))[1]["username"] == "olga"

    # The live WebSocket refuses a handshake from another site.
    with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
        await olga.http.ws_connect("/api/live", headers={"Origin": "http://evil.example"})
    assert refused.value.status == 403


async def test_clients_and_journal_find_a_cyrillic_name_typed_in_any_case(site: Site) -> None:
    olga = await site.signed_in("olga")
    card_path = f"/api/clients/{site.data.ivan_client_id}"
    status, card = await olga.json("PATCH", card_path, json={"name": "Семёнов Пётр"})
    assert status == 200 and card["name"] == "Семёнов Пётр"
    for typed in ("семёнов", "СЕМЕНОВ", "петр"):
        status, found = await olga.json("GET", "/api/clients", params={"q": typed})
        assert status == 200, typed
        assert [c["id"] for c in found["items"]] == [site.data.ivan_client_id], typed
        # The journal's client filter takes the same name.
        status, calls = await olga.json("GET", "/api/calls", params={"client": typed})
        assert status == 200, typed
        assert [c["id"] for c in calls["items"]] == [site.data.ivan_call_id], typed
    # A LIKE wildcard typed into the box is a character, not "anything".
    _, found = await olga.json("GET", "/api/clients", params={"q": "%"})
    assert found["items"] == []


async def test_recording_served_by_id_with_ranges_and_audited(site: Site, shared_dir: Path) -> None:
    ivan = await site.signed_in("ivan")
    _, call = await ivan.json("GET", f"/api/calls/{site.data.ivan_call_id}")
    (recording,) = call["playable"]
    original = (shared_dir / "recordings" / recording["path"]).read_bytes()

    async with ivan.send("GET", recording["audio_url"], headers={"Range": "bytes=1000-1999"}) as part:
        assert part.status == 206
        assert part.headers["Content-Range"] == f"bytes 1000-1999/{len(original)}"
        assert await part.read() == original[1000:2000]
    async with ivan.send("GET", recording["audio_url"], headers={"Range": f"bytes={len(original) - 10}-"}) as tail:
        assert tail.status == 206 and await tail.read() == original[-10:]
    async with ivan.send("GET", recording["audio_url"]) as whole:
        assert whole.status == 200 and whole.headers["Accept-Ranges"] == "bytes"
        assert whole.content_type == "audio/wav" and await whole.read() == original
    async with ivan.send("GET", recording["audio_url"], headers={"Range": f"bytes={len(original) + 5}-"}) as beyond:
        assert beyond.status == 416
    async with ivan.send("GET", "/api/recordings/999999/audio") as missing:
        assert missing.status == 404
    # Only ids reach the file system: a path in the URL is not a route.
    async with ivan.send("GET", "/api/recordings/..%2F..%2Fetc%2Fpasswd/audio") as sneaky:
        assert sneaky.status == 404

    olga = await site.signed_in("olga")
    _, log = await olga.json("GET", "/api/audit")
    listens = [e for e in log["items"] if e["action"] == "listen"]
    assert [(e["username"], e["target"]) for e in listens] == [("ivan", f"recording:{recording['id']}")]


async def test_journal_filters_search_paging_and_export(site: Site) -> None:
    olga = await site.signed_in("olga")
    data = site.data

    async def ids(**params: Any) -> list[int]:
        status, page = await olga.json("GET", "/api/calls", params={"per_page": "200", **params})
        assert status == 200, page
        return [c["id"] for c in page["items"]]

    everything = await ids()
    assert len(everything) == data.calls
    _, first = await olga.json("GET", "/api/calls", params={"per_page": "5", "page": "1"})
    _, second = await olga.json("GET", "/api/calls", params={"per_page": "5", "page": "2"})
    assert [c["id"] for c in first["items"] + second["items"]] == everything[:10]

    busy = {"direction": "outbound", "status": "busy", "per_page": "200"}
    _, page = await olga.json("GET", "/api/calls", params=busy)
    assert {c["client_number"] for c in page["items"]} == {"+79162220003", "+79267770005"}
    _, page = await olga.json("GET", "/api/calls", params={"manager": "202", "direction": "inbound", "per_page": "200"})
    assert "+79161110002" in {c["client_number"] for c in page["items"]}
    assert all("202" in (c["manager"], c["final_manager"]) for c in page["items"])
    _, page = await olga.json("GET", "/api/calls", params={"client": "8 916 111-00-01"})
    assert [c["id"] for c in page["items"]] == [data.ivan_call_id]
    assert await ids(has_transcript="true") == [data.ivan_call_id]
    with_sound = await ids(has_recording="true")
    without = await ids(has_recording="false")
    assert data.ivan_call_id in with_sound and set(with_sound).isdisjoint(without)
    assert sorted(with_sound + without) == sorted(everything)
    _, page = await olga.json("GET", "/api/calls", params={"min_duration": "40", "per_page": "200"})
    assert page["items"] and all(c["wait_s"] + c["talk_s"] >= 40 for c in page["items"])
    assert await ids(**{"from": "2020-01-01", "to": "2020-01-31"}) == []
    _, page = await olga.json("GET", "/api/calls", params={"per_page": "200"})
    days = {c["id"]: c["started_at"][:10] for c in page["items"]}
    for day in sorted(set(days.values())):
        on_day = {i for i, d in days.items() if d == day}
        assert set(await ids(**{"from": day, "to": day})) == on_day
    status, problem = await olga.json("GET", "/api/calls", params={"direction": "sideways"})
    assert status == 400 and "direction" in problem["error"]

    # Full-text search: any word form, and the hit says where in the recording it was said.
    _, found = await olga.json("GET", "/api/calls", params={"q": "информацию"})
    (hit_call,) = found["items"]
    assert hit_call["id"] == data.ivan_call_id
    hit = hit_call["hit"]
    assert hit["matched"] == "transcript" and "[информация]" in hit["snippet"]
    _, detail = await olga.json("GET", f"/api/calls/{data.ivan_call_id}")
    spoken = [w for s in detail["transcript"] for w in s["words"] if "информац" in w["word"].lower()]
    assert spoken and hit["offset_s"] == pytest.approx(spoken[0]["start"], abs=0.01)
    assert hit["recording_id"] == detail["playable"][0]["id"]

    # The export's own checks (Russian Excel, local times) are in test_journal_export.py.
    english = {"Accept-Language": "en"}
    async with olga.send("GET", "/api/calls/export.csv", params={"direction": "inbound"}, headers=english) as export:
        assert export.status == 200 and export.content_type == "text/csv"
        rows = list(csv.DictReader(io.StringIO((await export.read()).decode("utf-8-sig")), delimiter=";"))
    assert rows and all(r["Direction"] == "Inbound" for r in rows)
    assert "'+7 (916) 111-00-01" in {r["Client number"] for r in rows}
    _, log = await olga.json("GET", "/api/audit")
    exports = [e for e in log["items"] if e["action"] == "export_calls"]
    assert len(exports) == 1 and exports[0]["details"]["rows"] == len(rows)


async def test_routing_rules_for_ops_and_health_endpoints(site: Site) -> None:
    ops = await site.signed_in("sergey")
    status, rules = await ops.json("GET", "/api/routing/rules")
    assert status == 200 and rules["max_waiting"] == 2
    change = {"max_waiting": 4, "groups": [{"name": "north", "members": ["201", "202"]}],
              "hours": [{"weekday": 0, "opens": "09:00", "closes": "18:00"}]}
    status, saved = await ops.json("PUT", "/api/routing/rules", json=change)
    assert status == 200 and saved["max_waiting"] == 4 and saved["groups"][0]["members"] == ["201", "202"]
    assert (await ops.json("GET", "/api/routing/rules"))[1]["hours"] == change["hours"]
    status, refused = await ops.json("PUT", "/api/routing/rules", json={"max_waiting": -1, "policy": "random"})
    assert status == 422 and len(refused["problems"]) == 2

    olga = await site.signed_in("olga")
    _, log = await olga.json("GET", "/api/audit")
    assert any(e["action"] == "change_routing_rules" and e["username"] == "sergey" for e in log["items"])

    async with ops.send("GET", "/healthz") as health:
        assert health.status == 200
    # No AMI session in this process: reachable database, but not ready.
    status, ready = await site.client().json("GET", "/readyz")
    assert status == 503
    assert ready["checks"]["database"] == "ok" and ready["checks"]["transcription_queue"] == 0
    async with site.client().send("GET", "/metrics") as metrics:
        assert metrics.status == 200
        assert "pbxbridge_calls_in_progress" in await metrics.text()


def _resolve(schema: dict[str, Any], doc: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in schema:
        node: Any = doc
        for part in schema["$ref"].lstrip("#/").split("/"):
            node = node[part]
        schema = node
    return schema


_TYPES = {"object": dict, "array": list, "string": str, "boolean": bool, "null": type(None)}


def conforms(value: Any, schema: dict[str, Any], doc: dict[str, Any], where: str = "$") -> list[str]:
    """Where ``value`` breaks ``schema`` (the parts of JSON Schema the document uses)."""
    schema = _resolve(schema, doc)
    problems: list[str] = []
    for part in schema.get("allOf", []):
        problems += conforms(value, part, doc, where)
    if "oneOf" in schema:
        if not any(not conforms(value, option, doc, where) for option in schema["oneOf"]):
            problems.append(f"{where}: matches none of oneOf")
    kinds = schema.get("type")
    if kinds is not None:
        kinds = kinds if isinstance(kinds, list) else [kinds]

        def is_kind(kind: str) -> bool:
            if kind == "integer":
                return isinstance(value, int) and not isinstance(value, bool)
            if kind == "number":
                return isinstance(value, (int, float)) and not isinstance(value, bool)
            return isinstance(value, _TYPES[kind]) and not (kind != "boolean" and isinstance(value, bool))

        if not any(is_kind(k) for k in kinds):
            return problems + [f"{where}: {value!r} is not {kinds}"]
    if "enum" in schema and value not in schema["enum"]:
        problems.append(f"{where}: {value!r} not in {schema['enum']}")
    if isinstance(value, dict):
        for key in schema.get("required", []):
            if key not in value:
                problems.append(f"{where}: missing {key}")
        properties = schema.get("properties", {})
        for key, item in value.items():
            if key in properties:
                problems += conforms(item, properties[key], doc, f"{where}.{key}")
            elif isinstance(schema.get("additionalProperties"), dict):
                problems += conforms(item, schema["additionalProperties"], doc, f"{where}.{key}")
    if isinstance(value, list) and "items" in schema:
        for index, item in enumerate(value):
            problems += conforms(item, schema["items"], doc, f"{where}[{index}]")
    return problems


# What each role gets from each documented operation, walked over ivan's call, recording and
# client: the head sees everything, a manager his own calls and clients, ops the routing rules and
# the wallboard (README's "For / What"). Click-to-call answers 503 to whoever may use it: this site
# deliberately has no PBX. Columns: head (olga), manager (ivan), ops (sergey).
ROLES = ("olga", "ivan", "sergey")
STATUS_BY_ROLE: dict[tuple[str, str], tuple[int, int, int]] = {
    ("POST", "/api/login"): (200, 200, 200),
    ("POST", "/api/logout"): (200, 200, 200),
    ("GET", "/api/me"): (200, 200, 200),
    ("POST", "/api/me/language"): (200, 200, 200),
    ("GET", "/api/calls"): (200, 200, 403),
    ("GET", "/api/calls/export.csv"): (200, 200, 403),
    ("GET", "/api/calls/{call_id}"): (200, 200, 403),
    ("GET", "/api/calls/filters"): (200, 200, 403),
    ("GET", "/api/calls/filter-options"): (200, 200, 403),
    ("POST", "/api/calls/filters"): (201, 201, 403),
    ("DELETE", "/api/calls/filters/{filter_id}"): (404, 404, 403),
    ("POST", "/api/calls/originate"): (503, 503, 403),
    ("GET", "/api/recordings/{recording_id}/audio"): (200, 200, 403),
    ("POST", "/api/recordings/{recording_id}/listen"): (204, 204, 403),
    ("GET", "/api/clients"): (200, 200, 403),
    ("GET", "/api/clients/{client_id}"): (200, 200, 403),
    ("PATCH", "/api/clients/{client_id}"): (200, 200, 403),
    ("GET", "/api/managers"): (200, 200, 200),
    ("POST", "/api/clients/assign"): (200, 403, 403),
    ("GET", "/api/missed"): (200, 200, 403),
    ("GET", "/api/missed/alerts"): (200, 200, 200),
    # Ivan's client was answered: no row to close or call back.
    ("POST", "/api/missed/{client_id}/close"): (404, 404, 403),
    ("POST", "/api/missed/{client_id}/call"): (404, 404, 403),
    ("GET", "/api/kpi"): (200, 403, 403),
    ("GET", "/api/kpi/lost-leads"): (200, 403, 403),
    ("GET", "/api/kpi/targets"): (200, 403, 403),
    ("GET", "/api/calls/{call_id}/checks"): (200, 200, 403),
    ("GET", "/api/checklists"): (200, 403, 403),
    ("PUT", "/api/checklists"): (200, 403, 403),
    ("DELETE", "/api/checklists/{name}"): (404, 403, 403),
    ("PUT", "/api/kpi/targets"): (200, 403, 403),
    ("GET", "/api/kpi/{kpi}/calls"): (200, 403, 403),
    ("GET", "/api/live/snapshot"): (200, 200, 200),
    ("GET", "/api/live"): (101, 101, 101),
    ("GET", "/api/routing/rules"): (200, 403, 200),
    ("PUT", "/api/routing/rules"): (200, 403, 200),
    ("GET", "/api/users"): (200, 403, 403),
    ("GET", "/api/audit"): (200, 403, 403),
    ("GET", "/api/openapi.json"): (200, 200, 200),
    ("POST", "/api/crm/bitrix24/events"): (400, 400, 400),
    ("GET", "/api/crm/users"): (200, 403, 403),
    ("PUT", "/api/crm/users/{target}/{extension}"): (200, 403, 403),
    ("DELETE", "/api/crm/users/{target}/{extension}"): (204, 403, 403),
    ("GET", "/api/review/setup"): (200, 200, 403),
    ("PUT", "/api/review/setup"): (200, 403, 403),
    ("GET", "/api/review/summary"): (200, 403, 403),
    ("GET", "/api/calls/{call_id}/review"): (200, 200, 403),
    ("PUT", "/api/calls/{call_id}/review"): (200, 403, 403),
    ("POST", "/api/calls/{call_id}/review/comments"): (201, 403, 403),
    ("DELETE", "/api/calls/{call_id}/review/comments/{comment_id}"): (404, 403, 403),
    ("POST", "/api/clients/{client_id}/notes"): (201, 201, 403),
    ("POST", "/api/clients/{client_id}/merge"): (404, 403, 403),
}


async def test_every_documented_route_answers_each_role_as_documented(site: Site) -> None:
    doc = json.loads(OPENAPI.read_text(encoding="utf-8"))
    async with site.client().send("GET", "/api/openapi.json") as served:
        assert await served.json() == doc
    operations = [(m.upper(), p) for p, item in doc["paths"].items() for m in item]
    assert sorted(STATUS_BY_ROLE) == sorted(operations), "a documented route has no expected status here"
    data = site.data
    path_values = {
        "target": "amocrm", "extension": "203",
        "call_id": data.ivan_call_id, "recording_id": data.ivan_recording_id, "client_id": data.ivan_client_id,
        "filter_id": 999_999, "kpi": "missed", "comment_id": 999_999, "name": "no-such-checklist",
    }
    bodies: dict[tuple[str, str], Any] = {
        ("PUT", "/api/crm/users/{target}/{extension}"): {"user_id": "9001"},
        ("POST", "/api/calls/originate"): {"client_id": data.ivan_client_id, "extension": "203"},
        ("POST", "/api/calls/filters"): {"name": "Inbound", "query": "direction=inbound"},
        ("PATCH", "/api/clients/{client_id}"): {"notes": "Called about the price list"},
        ("POST", "/api/clients/assign"): {"client_ids": [data.ivan_client_id], "manager": "203"},
        ("POST", "/api/missed/{client_id}/close"): {"reason": "spam"},
        ("POST", "/api/missed/{client_id}/call"): {},
        ("PUT", "/api/routing/rules"): {"max_waiting": 3},
        ("PUT", "/api/kpi/targets"): {"kpi": "answered", "scope": "department", "value": 5},
        ("PUT", "/api/checklists"): {"name": "Greeting", "items": [{"title": "Named the company", "phrases": ["компания"]}]},
        ("POST", "/api/me/language"): {"language": "en"},
        ("PUT", "/api/review/setup"): {"tags": ["Price objection"], "checklist": ["Greeted the client"]},
        ("PUT", "/api/calls/{call_id}/review"): {"reviewed": True, "tags": []},
        ("POST", "/api/calls/{call_id}/review/comments"): {"at_s": 1.5, "text": "Name the price here"},
        ("POST", "/api/clients/{client_id}/notes"): {"text": "Sent the price list"},
        ("POST", "/api/clients/{client_id}/merge"): {"client_id": 999_999},
    }
    stranger = site.client()
    await stranger.prime()
    # Sign-out last: it ends the session the rest of the walk uses.
    operations.sort(key=lambda op: op[1] == "/api/logout")
    for column, username in enumerate(ROLES):
        client = await site.signed_in(username)
        for method, path in operations:
            want = STATUS_BY_ROLE[(method, path)][column]
            where = f"{username}: {method} {path}"
            op = doc["paths"][path][method.lower()]
            documented = op["responses"]
            assert str(want) in documented, f"{where} is expected to answer {want}, which is not documented"
            url = path.format(**path_values)
            if path == "/api/live":
                async with client.http.ws_connect(url) as ws:
                    first = await ws.receive_json()
                assert not conforms(first, doc["components"]["schemas"]["Live"], doc), where
                continue
            body = bodies.get((method, path))
            if path == "/api/login":
                # Signing in again, from a browser of its own.
                client_for_op = site.client()
                await client_for_op.prime()
                body = {"username": username, "password": PASSWORD}
            else:
                client_for_op = client
            async with client_for_op.send(method, url, json=body) as response:
                assert response.status == want, f"{where} answered {response.status}, expected {want}"
                content = documented[str(want)].get("content", {})
                if content:
                    assert response.content_type in content, f"{where}: {response.content_type} undocumented"
                answer = await response.json() if response.content_type == "application/json" else None
            if answer is not None:
                problems = conforms(answer, content["application/json"]["schema"], doc)
                assert not problems, f"{where}: {problems[:5]}"
            # An error says why, in words the user can act on.
            if want == 403:
                assert answer == {"error": "your role may not do this"}, where
            if want == 503:
                assert answer == {"error": "click-to-call needs the daemon's AMI connection"}, where
            if path == "/api/login":
                assert answer is not None and answer["user"]["username"] == username
            if path == "/api/logout":
                assert (await client.json("GET", "/api/me"))[0] == 401, f"{where}: still signed in"

    # Without a session, everything but the public routes says 401.
    for method, path in operations:
        op = doc["paths"][path][method.lower()]
        if op.get("security") == []:
            continue
        url = path.format(**path_values)
        async with stranger.send(method, url, json=bodies.get((method, path))) as response:
            assert "401" in op["responses"], f"{method} {path}: 401 undocumented"
            assert (response.status, await response.json()) == (401, {"error": "sign in first"}), f"{method} {path}"


async def test_every_api_route_is_documented(site: Site) -> None:
    doc = json.loads(OPENAPI.read_text(encoding="utf-8"))
    documented = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    app = site.app
    served = {
        (r.method, r.resource.canonical.replace(":\\d+", ""))
        for r in app.router.routes()
        if r.resource is not None and r.resource.canonical.startswith("/api/") and r.method != "HEAD"
    }
    assert served == documented


def scripted_calls(expected: dict[str, Any], first: str, last: str, zone: str) -> list[dict[str, Any]]:
    """The scripted calls of the scenarios that ran between two local days (inclusive)."""
    tz = ZoneInfo(zone)
    return [
        call
        for scenario in expected.values()
        if first <= datetime.fromtimestamp(scenario["started"], tz).date().isoformat() <= last
        for call in scenario["calls"]
    ]


def department_truth(calls: list[dict[str, Any]], short_abandon_s: float) -> dict[str, int]:
    """The department's counts as the scenarios scripted them (docs/KPI.md's definitions)."""
    inbound = [c for c in calls if c["direction"] == "inbound"]
    answered = [c for c in inbound if c["status"] == "answered"]
    unanswered = [c for c in inbound if c["status"] in ("abandoned", "missed")]
    # Every scripted unanswered wait lies wholly on one side of the short-abandon threshold.
    assert all(c["wait_s"][0] >= short_abandon_s or c["wait_s"][1] < short_abandon_s for c in unanswered)
    attempts = [c for c in calls if c["direction"] == "outbound" and c["status"] in ("answered", "busy", "no_answer")]
    return {
        "calls_in": len(inbound),
        "offered": len(inbound),
        "answered": len(answered),
        "queue_answered": len(answered),
        "missed": len(unanswered),
        "missed_unanswered": len(unanswered),
        "abandoned": sum(c["wait_s"][0] >= short_abandon_s for c in unanswered),
        "short_abandoned": sum(c["wait_s"][1] < short_abandon_s for c in unanswered),
        "transferred_in": sum(bool(c.get("transferred_to")) for c in inbound),
        "calls_out": len(attempts),
        "outbound_answered": sum(c["status"] == "answered" for c in attempts),
        "calls_internal": sum(c["direction"] == "internal" for c in calls),
    }


async def test_kpi_figures_match_the_scripted_calls(site: Site, expected: dict[str, Any]) -> None:
    kpi = site.data.config.kpi
    day = "2026-11-26"
    calls = scripted_calls(expected, day, day, kpi.timezone)
    assert calls, "no scenario ran on the day the figures are read for"
    olga = await site.signed_in("olga")
    status, daily = await olga.json("GET", "/api/kpi", params={"from": day, "to": day})
    assert status == 200
    rows = {r["manager"]: r for r in daily["rows"]}
    truth = department_truth(calls, kpi.short_abandon_s)
    assert {k: rows[None][k] for k in truth} == truth

    # Each manager's outbound attempts and internal calls, by who placed or took them.
    attempts = [c for c in calls if c["direction"] == "outbound" and c["status"] != "failed"]
    for ext in {c["placed_by"] for c in attempts}:
        mine = [c for c in attempts if c["placed_by"] == ext]
        row = rows[ext]
        assert (row["calls_out"], row["outbound_answered"]) == (
            len(mine), sum(c["status"] == "answered" for c in mine)
        ), ext
    internal = [c for c in calls if c["direction"] == "internal"]
    for ext, row in rows.items():
        if ext is not None:
            assert row["calls_internal"] == sum(ext in (c["from_ext"], c["to_ext"]) for c in internal), ext
        # The burst does not script who answered; the scripted answers are a floor.
        scripted = sum(c.get("answered_by") == ext for c in calls if c["direction"] == "inbound")
        assert ext is None or row["answered"] >= scripted, ext

    # The week holding that day: the same calls, one department row dated its Monday.
    week_calls = scripted_calls(expected, "2026-11-23", "2026-11-29", kpi.timezone)
    _, weekly = await olga.json("GET", "/api/kpi", params={"from": "2026-11-23", "to": "2026-11-29", "period": "week"})
    week_department = next(r for r in weekly["rows"] if r["manager"] is None)
    assert week_department["date"] == "2026-11-23"
    assert week_department["offered"] == department_truth(week_calls, kpi.short_abandon_s)["offered"]

    # Lost leads: the unanswered callers nobody called back within the window (scenario 11's
    # caller was called back in time). Later captures in the journal have closed every window.
    unanswered = [c for c in calls if c["direction"] == "inbound" and c["status"] in ("abandoned", "missed")]
    called_back = {
        c["client"] for c in unanswered if "callback_after_s" in c and c["callback_after_s"][1] <= kpi.lost_lead_after_s
    }
    lost = {c["client"]: c for c in unanswered if c["client"] not in called_back}
    assert called_back and lost
    _, leads = await olga.json("GET", "/api/kpi/lost-leads", params={"from": day, "to": day})
    assert sorted((i["client_number"], i["state"]) for i in leads["items"]) == sorted(("+" + n, "lost") for n in lost)
    for item in leads["items"]:
        scripted_call = lost[item["client_number"].lstrip("+")]
        assert item["status"] == scripted_call["status"]
        if "rang" in scripted_call:
            assert item["rang"] == scripted_call["rang"]

    manager = await site.signed_in("ivan")
    status, refused = await manager.json("GET", "/api/kpi")
    assert (status, refused["error"]) == (403, "your role may not do this")


async def test_live_snapshot_mid_call(site: Site, expected: dict[str, Any]) -> None:
    (first,) = expected["01-inbound-answered"]["calls"]
    ops = await site.signed_in("sergey")
    status, snapshot = await ops.json("GET", "/api/live/snapshot")
    assert status == 200
    # The board was fed the first scenario up to the moment its manager answered.
    (call,) = snapshot["calls"]
    assert call["client_number"].lstrip("+") == first["client"]
    assert call["manager"] == first["answered_by"] and call["answered_at"]
    lines = {m["extension"]: m["state"] for m in snapshot["managers"]}
    assert lines[first["answered_by"]] == "in_call"
