"""The shared captures replayed once into two CRM targets at the same time: the Bitrix24 fake and a signed
webhook whose receiver is written here, from docs/CRM.md alone (its body, its headers, its signature),
sharing no code with tests/fakes_webhook.py or tests/fakes_bitrix24.py. Each scripted call reaches
each of them once, finished (and missed when nobody answered), with the manager, number, direction,
talk time and status expected.json gives, and the two tell the same story of every call."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from pbxbridge.cli.main import main
from tests.conftest import fresh_database
from tests.fakes_bitrix24 import FakeBitrix24
from tests.test_crm_bitrix24 import (
    STATUS_CODES,
    check_portal,
    replay_all,
    scripted_calls,
    transcribe_first_recording,
    write_config,
)

SECRET = "an independent receiver's own secret, 0123456789"
WINDOW_S = 300
TRANSCRIBED = "79161110001"


@pytest.fixture
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """SQLite only: what the two targets were told, not what the database did (tested elsewhere)."""
    yield from fresh_database(request, "sqlite", tmp_path)


def verify(secret: str, header: str, body: bytes, now: float) -> bool:
    """docs/CRM.md, "Verifying a webhook": `t=<ts>,v1=<hex HMAC-SHA256(secret, "<ts>." + raw body)>`."""
    parts = dict(p.split("=", 1) for p in header.split(",") if "=" in p)
    try:
        timestamp = int(parts["t"])
    except (KeyError, ValueError):
        return False
    if abs(now - timestamp) > WINDOW_S:
        return False
    mac = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(mac, parts.get("v1", ""))


class Receiver:
    """A receiver as an integrator would write one from docs/CRM.md: checks, then keeps, every POST."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        self.problems: list[str] = []
        self.requests = 0

    async def handle(self, request: web.Request) -> web.Response:
        self.requests += 1
        raw = await request.read()
        header = request.headers.get("X-Pbxbridge-Signature", "")
        now = time.time()
        if not verify(SECRET, header, raw, now):
            self.problems.append(f"bad signature: {header!r}")
            return web.json_response({"error": "bad signature"}, status=401)
        # The same signature must not fit another body or another secret.
        if verify(SECRET, header, raw + b" ", now) or verify(SECRET + "x", header, raw, now):
            self.problems.append("a signature that fits a tampered body or a wrong secret")
        document = json.loads(raw)
        timestamp = request.headers.get("X-Pbxbridge-Timestamp", "")
        if not header.startswith(f"t={timestamp},"):
            self.problems.append(f"timestamp header {timestamp!r} is not the signed one in {header!r}")
        if request.headers.get("Idempotency-Key") != document.get("id"):
            self.problems.append(f"Idempotency-Key {request.headers.get('Idempotency-Key')!r} != id {document.get('id')!r}")
        if request.headers.get("X-Pbxbridge-Event") != document.get("event"):
            self.problems.append(f"X-Pbxbridge-Event != event in {document.get('id')!r}")
        self.bodies.append(document)
        return web.json_response({"kept": document.get("id")})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/events", self.handle)
        return app


class Served:
    """An aiohttp app on 127.0.0.1 from a thread of its own, beside pbxbridge's command line."""

    def __init__(self, app: web.Application) -> None:
        self.app = app
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = int(sock.getsockname()[1])
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _serve(self) -> None:
        loop = self._loop
        runner = web.AppRunner(self.app)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", self.port).start())
        self._ready.set()
        loop.run_forever()
        loop.run_until_complete(runner.cleanup())
        loop.close()

    def __enter__(self) -> Served:
        self._thread.start()
        assert self._ready.wait(10), "the test server did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)


def expected_manager(truth: dict[str, Any]) -> str | None:
    return truth.get("answered_by") or truth.get("placed_by")


def check_receiver(receiver: Receiver, expected: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """Each scripted call finished once (missed once when nobody answered), as expected.json has it."""
    assert receiver.problems == []
    # Nothing refused or sent twice: one request per delivery.
    assert receiver.requests == len(receiver.bodies)
    ids = Counter(body["id"] for body in receiver.bodies)
    assert [i for i, n in ids.items() if n > 1] == []
    finished = [b["data"]["call"] for b in receiver.bodies if b["event"] == "call.finished"]
    missed = [b["data"]["call"] for b in receiver.bodies if b["event"] == "call.missed"]
    everything = [{**c, "scenario": name} for name, scenario in expected.items() for c in scenario["calls"]]
    # Webhooks hear of calls between colleagues too; only those with a client are keyed by number.
    assert len(finished) == len(everything)
    assert sum(1 for c in finished if c["direction"] == "internal") == sum(
        1 for c in everything if c["direction"] == "internal")
    by_call = {(c["client_number"].lstrip("+"), c["direction"]): c for c in finished if c["direction"] != "internal"}
    scripted = scripted_calls(expected)
    assert len(by_call) == len(scripted)
    missed_keys = Counter((c["client_number"].lstrip("+"), c["direction"]) for c in missed)
    for truth in scripted:
        key = (truth["client"], truth["direction"])
        where = (truth["scenario"], truth["client"])
        call = by_call[key]
        assert call["client_number"] == f"+{truth['client']}", where
        assert call["direction"] == truth["direction"], where
        assert call["status"] == truth["status"], where
        if truth["direction"] == "inbound":
            assert call["did"] == truth["did"], where
        manager = expected_manager(truth)
        if manager is not None:
            assert call["manager"] == manager, where
        elif "answered_by" in truth:
            # Nobody answered: no manager on the call (a CRM would otherwise credit someone with it).
            assert call["manager"] is None and call["final_manager"] is None, where
        if "rang" in truth:
            assert call["rang"] == truth["rang"], where
        final = truth.get("final_agent") or manager
        if final is not None:
            assert call["final_manager"] == final, where
        if "talk_s" in truth:
            low, high = truth["talk_s"]
            assert low - 2 <= (call["talk_s"] or 0) <= high + 2, where
        nobody_answered = truth["direction"] == "inbound" and truth["status"] != "answered"
        assert missed_keys[key] == (1 if nobody_answered else 0), where
    assert sum(missed_keys.values()) == sum(
        1 for t in scripted if t["direction"] == "inbound" and t["status"] != "answered")
    return by_call


def test_each_call_reaches_bitrix24_and_a_signed_webhook_once_and_both_tell_the_same_story(
    sqlite_url: str, shared_dir: Path, expected: dict[str, Any], tmp_path: Path
) -> None:
    db_url = sqlite_url
    portal = FakeBitrix24(drain_per_s=1000)
    receiver = Receiver()
    with Served(portal.app()) as server, Served(receiver.app()) as hooks:
        config = write_config(tmp_path, portal.webhook_url(server.url))
        with config.open("a", encoding="utf-8") as out:
            out.write(f'\n[[webhooks]]\nname = "independent"\nurl = "{hooks.url}/events"\nsecret = "{SECRET}"\n'
                      "requests_per_s = 1000\n")
        replay_all(shared_dir, db_url, config)
        # Queued for both targets: the portal's attachTranscription and the webhook's transcript.ready.
        assert transcribe_first_recording(db_url, config, TRANSCRIBED) == 2
        assert main(["outbox", "deliver", "--until-empty", "--max-wait", "60", "--db", db_url,
                     "--config", str(config), "--recordings", str(shared_dir / "recordings")]) == 0

    check_portal(portal, expected)
    by_call = check_receiver(receiver, expected)

    # The two agree, call by call, joined on the PBX and linkedid (Bitrix24's EXTERNAL_CALL_ID).
    portal_calls = {c.registered["EXTERNAL_CALL_ID"]: c for c in portal.calls.values()}
    hooked = {f"{c['pbx']}:{c['linkedid']}": c for c in by_call.values()}
    assert set(portal_calls) == set(hooked)
    recordings = Counter(f"{b['data']['call']['pbx']}:{b['data']['call']['linkedid']}"
                         for b in receiver.bodies if b["event"] == "recording.ready")
    for external, seen in portal_calls.items():
        call = hooked[external]
        assert seen.finished is not None, external
        assert seen.registered["PHONE_NUMBER"] == call["client_number"], external
        assert seen.registered["TYPE"] == (2 if call["direction"] == "inbound" else 1), external
        if call["final_manager"] or call["manager"]:
            assert seen.finished["USER_PHONE_INNER"] == (call["final_manager"] or call["manager"]), external
        assert abs(seen.finished["DURATION"] - (call["talk_s"] or 0)) <= 1, external
        assert seen.finished["STATUS_CODE"] == STATUS_CODES.get(call["status"], "304"), external
        assert len(seen.records) == recordings[external], external

    # The transcript: the same lines in both.
    transcripts = [b["data"] for b in receiver.bodies if b["event"] == "transcript.ready"]
    assert len(transcripts) == 1 and transcripts[0]["call"]["client_number"] == f"+{TRANSCRIBED}"
    portal_call = portal_calls[f"{transcripts[0]['call']['pbx']}:{transcripts[0]['call']['linkedid']}"]
    assert len(portal_call.transcripts) == 1
    assert [m["MESSAGE"] for m in portal_call.transcripts[0]] == [s["text"] for s in transcripts[0]["segments"]]
    assert [m["SIDE"] for m in portal_call.transcripts[0]] == [
        "User" if s["speaker"] == "manager" else "Client" for s in transcripts[0]["segments"]]
