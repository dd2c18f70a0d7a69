"""Signed webhooks as a receiver checks them: every body pbxbridge sends verifies with the shared
secret; a body changed on the way, another secret, or an old signature replayed does not."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from pbxbridge.config import WebhookConfig
from pbxbridge.crm.events import CallEvent
from pbxbridge.crm.targets import Delivery
from pbxbridge.crm.webhooks import REPLAY_WINDOW_S, WebhookTarget, sign, verify_signature
from tests.conftest import fresh_database
from tests.fakes_webhook import ServerThread, WebhookReceiver
from tests.test_crm_outbox import SECRET, outbox, replay, write_config

CALL = {"pbx": "main", "linkedid": "1795723449.4", "direction": "inbound", "status": "answered", "manager": "203"}


@pytest.fixture
def sqlite_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Signatures do not depend on the database: one is enough (the outbox's tests run on both)."""
    yield from fresh_database(request, "sqlite", tmp_path)


def one_delivery(target: WebhookTarget, event: str = "call.finished") -> Delivery:
    planned = target.plan(CallEvent(event, "main", "1795723449.4", 1, CALL, event))
    assert len(planned) == 1
    return Delivery(1, target.name, event, planned[0].action, "main", "1795723449.4",
                    f"main:1795723449.4:{event}", planned[0].payload, 0)


def test_every_delivered_body_verifies_and_a_tampered_one_does_not(
    sqlite_url: str, shared_dir: Path, tmp_path: Path
) -> None:
    db_url = sqlite_url
    receiver = WebhookReceiver(SECRET)
    server = ServerThread(receiver.app).start()
    try:
        config = write_config(tmp_path, server.url)
        replay(shared_dir, db_url, config)
        assert outbox("deliver", "--db", db_url, "--config", str(config)) == 0
    finally:
        server.stop()
    # The receiver refuses (401) what does not verify: it refused nothing and kept all six.
    assert receiver.bad_signatures == 0 and len(receiver.received) == 6
    assert {d["event"] for d in receiver.received} == {"call.finished", "call.missed", "recording.ready"}

    target = WebhookTarget(WebhookConfig(url="http://crm.example/hook", secret=SECRET))
    body = target.body(one_delivery(target))
    now = int(time.time())
    header = sign(SECRET, now, body)
    assert verify_signature(SECRET, header, body)
    tampered = body.replace(b'"answered"', b'"missed"')
    assert tampered != body and not verify_signature(SECRET, header, tampered)
    assert not verify_signature("another-secret", header, body)
    # A signature caught on the way and sent again later is refused past the replay window.
    old = sign(SECRET, now - REPLAY_WINDOW_S - 1, body)
    assert not verify_signature(SECRET, old, body)
    assert not verify_signature(SECRET, "v1=" + header.split("v1=")[1], body)
    assert json.loads(body)["data"]["call"]["manager"] == "203"


def test_a_webhook_gets_only_the_events_it_asked_for() -> None:
    target = WebhookTarget(WebhookConfig(url="http://crm.example/hook", secret=SECRET, events=("call.missed",)))
    assert target.plan(CallEvent("call.finished", "main", "1.1", 1, CALL, "call.finished")) == []
    assert one_delivery(target, "call.missed").payload["event"] == "call.missed"
