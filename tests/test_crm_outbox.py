"""The outbox: every call the journal takes queues what each webhook is owed, in the same transaction;
`pbxbridge outbox deliver` sends it in order per call, signed, tries again with growing delays, and
makes dead letters only of what retrying cannot fix."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pbxbridge.cli.main import main
from pbxbridge.crm.outbox import RetryPolicy
from pbxbridge.crm.tables import CrmDelivery
from pbxbridge.crm.worker import OutboxWorker
from pbxbridge.db.engine import make_engine, session_factory
from tests.fakes_webhook import ServerThread, WebhookReceiver

SECRET = "whsec-test-3f9a"
# An answered inbound call with a recording, an abandoned one, an answered outbound one.
TRACES = ("01-inbound-answered", "03-inbound-abandoned", "06-outbound-answered")


def write_config(directory: Path, url: str, **crm: Any) -> Path:
    settings = "\n".join(f"{key} = {value}" for key, value in crm.items())
    path = directory / "pbxbridge.toml"
    path.write_text(
        f"[crm]\n{settings}\n\n[[webhooks]]\nname = \"sales-bot\"\nurl = \"{url}/hook\"\nsecret = \"{SECRET}\"\n",
        encoding="utf-8",
    )
    return path


def replay(shared_dir: Path, db_url: str, config: Path, *extra: str) -> None:
    traces = [str(shared_dir / f"{name}.ami") for name in TRACES]
    args = ["replay", *traces, "--db", db_url, "--config", str(config), "--recordings", str(shared_dir / "recordings")]
    assert main([*args, *extra]) == 0


def deliveries(db_url: str) -> list[CrmDelivery]:
    async def read() -> list[CrmDelivery]:
        engine = make_engine(db_url)
        try:
            async with session_factory(engine)() as session:
                return list((await session.scalars(select(CrmDelivery).order_by(CrmDelivery.id))).all())
        finally:
            await engine.dispose()

    return asyncio.run(read())


def outbox(*args: str) -> int:
    return main(["outbox", *args])


def test_replayed_calls_queue_each_event_once_and_no_deliver_queues_none(
    db_url: str, shared_dir: Path, tmp_path: Path
) -> None:
    config = write_config(tmp_path, "http://127.0.0.1:9")
    replay(shared_dir, db_url, config, "--no-deliver")
    assert deliveries(db_url) == []

    replay(shared_dir, db_url, config)
    rows = deliveries(db_url)
    by_call: dict[str, list[str]] = {}
    for row in rows:
        by_call.setdefault(row.linkedid, []).append(row.event)
        assert row.target == "webhook:sales-bot" and row.status == "pending" and row.call_id is not None
    # Each call finished; the abandoned one was also missed; the answered ones brought a recording.
    assert sorted(Counter(tuple(events) for events in by_call.values()).elements()) == sorted([
        ("call.finished", "recording.ready"),
        ("call.finished", "call.missed"),
        ("call.finished", "recording.ready"),
    ])
    payload = next(r.payload for r in rows if r.event == "call.missed")["data"]["call"]
    assert payload["client_number"] == "+79161110003" and payload["status"] == "abandoned"

    # The same captures again (a re-import of history): the journal refreshes, nothing is queued twice.
    replay(shared_dir, db_url, config)
    assert [r.id for r in deliveries(db_url)] == [r.id for r in rows]


def test_delivered_in_order_per_call_after_failures_each_once_and_signed(
    db_url: str, shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # The receiver is down (502, 503, a timeout's 504) for the first tries, then slows us down once.
    receiver = WebhookReceiver(SECRET, answers=[502, 503, 504, 503, 429])
    server = ServerThread(receiver.app).start()
    try:
        config = write_config(tmp_path, server.url, retry_initial_ms=50, retry_max_ms=200, max_attempts=8)
        replay(shared_dir, db_url, config)
        queued = deliveries(db_url)
        assert outbox("deliver", "--until-empty", "--max-wait", "60", "--db", db_url, "--config", str(config)) == 0
    finally:
        server.stop()
    assert "delivered 6;" in capsys.readouterr().out
    assert receiver.bad_signatures == 0
    ids = [document["id"] for document in receiver.received]
    assert sorted(ids) == sorted(r.idempotency_key for r in queued) and len(set(ids)) == len(ids)
    # Per call, in the order queued: finished before missed before the recording.
    for linkedid in {r.linkedid for r in queued}:
        mine = [r.idempotency_key for r in queued if r.linkedid == linkedid]
        assert [i for i in ids if i in mine] == mine
    rows = deliveries(db_url)
    assert {r.status for r in rows} == {"done"} and all(r.delivered_at is not None for r in rows)
    # Five failed tries were spread over the deliveries; the 429 did not count as one.
    assert sum(r.attempts for r in rows) == len(rows) + 4
    outbound = [d for d in receiver.received if d["data"]["call"]["direction"] == "outbound"]
    finished = next(d for d in outbound if d["event"] == "call.finished")
    assert finished["data"]["call"]["manager"] == "203" and 38 <= finished["data"]["call"]["talk_s"] <= 44


def test_a_refusal_is_a_dead_letter_at_once_and_retry_sends_it(
    db_url: str, shared_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    receiver = WebhookReceiver(SECRET, answers=[422])
    server = ServerThread(receiver.app).start()
    try:
        config = write_config(tmp_path, server.url, retry_initial_ms=50, max_attempts=3)
        replay(shared_dir, db_url, config)
        common = ["--db", db_url, "--config", str(config)]
        # One refusal (422): that delivery is dead with the receiver's answer; the rest go through.
        assert outbox("deliver", "--until-empty", *common) == 1
        rows = deliveries(db_url)
        dead = [r for r in rows if r.status == "dead"]
        assert len(dead) == 1 and dead[0].attempts == 1 and "HTTP 422" in (dead[0].last_error or "")
        assert len(receiver.received) == len(rows) - 1
        capsys.readouterr()
        assert outbox("status", "--dead", *common) == 0
        status = capsys.readouterr().out
        assert f"webhook:sales-bot: 0 pending, {len(rows) - 1} delivered, 1 dead" in status
        assert f"{dead[0].id}  webhook:sales-bot" in status and "HTTP 422" in status
        assert outbox("retry", "12345", *common) == 1
        assert outbox("retry", str(dead[0].id), *common) == 0
        assert outbox("deliver", *common) == 0
    finally:
        server.stop()
    assert {r.status for r in deliveries(db_url)} == {"done"}
    assert sorted(d["id"] for d in receiver.received) == sorted(r.idempotency_key for r in rows)


def test_a_receiver_that_never_answers_well_gives_a_dead_letter_after_max_attempts(
    db_url: str, shared_dir: Path, tmp_path: Path
) -> None:
    receiver = WebhookReceiver(SECRET, answers=[500] * 100)
    server = ServerThread(receiver.app).start()
    try:
        config = write_config(tmp_path, server.url, retry_initial_ms=20, retry_max_ms=40, max_attempts=3)
        replay(shared_dir, db_url, config)
        assert outbox("deliver", "--until-empty", "--db", db_url, "--config", str(config)) == 1
    finally:
        server.stop()
    rows = deliveries(db_url)
    assert receiver.received == []
    # Only each call's first delivery was tried (the rest wait behind it), three times each.
    # Each call's deliveries were tried in turn, three times each, and each became a dead letter with the reason.
    for row in rows:
        assert row.status == "dead" and row.attempts == 3
        assert (row.last_error or "").startswith("gave up after 3 tries: webhook sales-bot: HTTP 500")
    assert receiver.requests == 3 * len(rows)


async def test_delivered_rows_past_the_keep_are_deleted_and_dead_letters_stay(
    sessions: Any, tmp_path: Path
) -> None:
    now = datetime.now(UTC)

    def row(key: str, status: str, delivered_days_ago: float | None) -> CrmDelivery:
        delivered = now - timedelta(days=delivered_days_ago) if delivered_days_ago is not None else None
        return CrmDelivery(target="webhook:bot", event="call.finished", action="post", pbx="main", linkedid=key,
                           idempotency_key=key, payload={}, status=status, attempts=1, next_attempt_at=now,
                           created_at=now - timedelta(days=40), delivered_at=delivered)

    async with sessions() as session, session.begin():
        session.add_all([row("old", "done", 31), row("recent", "done", 29), row("dead", "dead", None),
                         row("waiting", "pending", None)])
    worker = OutboxWorker(sessions, [], RetryPolicy(), keep_delivered_days=30)
    assert await worker.prune() == 1
    async with sessions() as session:
        left = sorted((await session.scalars(select(CrmDelivery.idempotency_key))).all())
    assert left == ["dead", "recent", "waiting"]
    assert await OutboxWorker(sessions, [], RetryPolicy()).prune() == 0
