"""Calls still up: while a client's call rings a manager's handset, Bitrix24 is told at once (the
manager's card pops up) and a webhook hears `call.ringing`, then `call.answered`, then
`call.finished`; the finished call registers nothing a second time. And transcripts stored while
the daemon was down reach the outbox when it starts."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.ami.frames import event_time, read_trace
from pbxbridge.calls.following import tracker_settings
from pbxbridge.calls.replay import replay_pbx
from pbxbridge.calls.store import CallWriter
from pbxbridge.calls.tables import Recording
from pbxbridge.calls.tracker import CallTracker
from pbxbridge.cli.core import replay
from pbxbridge.config import Bitrix24Config, Config, CrmConfig, DatabaseConfig, RecordingsConfig, WebhookConfig
from pbxbridge.crm.connectors import retry_policy, targets_from_config
from pbxbridge.crm.daemon import TranscriptQueue
from pbxbridge.crm.live import LiveCalls
from pbxbridge.crm.queueing import CallQueue
from pbxbridge.crm.tables import CrmDelivery
from pbxbridge.crm.worker import OutboxWorker
from pbxbridge.hub import Hub
from pbxbridge.transcription.tables import DONE, TranscriptionJob, TranscriptSegment
from tests.fakes_bitrix24 import FakeBitrix24
from tests.fakes_webhook import ServerThread, WebhookReceiver

SECRET = "whsec-live-91c2"


async def test_a_ringing_call_pops_up_in_bitrix24_and_webhooks_hear_it_in_order(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    fake = FakeBitrix24(drain_per_s=1000)
    receiver = WebhookReceiver(SECRET)
    portal = ServerThread(fake.app).start()
    hook = ServerThread(receiver.app).start()
    try:
        config = Config(
            recordings=RecordingsConfig(root=str(shared_dir / "recordings")),
            crm=CrmConfig(bitrix24=Bitrix24Config(webhook_url=fake.webhook_url(portal.url), requests_per_s=100)),
            webhooks=[WebhookConfig(url=f"{hook.url}/hook", secret=SECRET, name="bot")],
        )
        targets = targets_from_config(config)
        tracker = CallTracker(tracker_settings(replay_pbx(config)))
        live = LiveCalls(tracker.active_calls, targets, "RU", time.time)
        await live.start(sessions, poll_s=3600)
        # The capture as the PBX sent it, with a look at the calls in progress after each event.
        _banner, frames = read_trace(shared_dir / "01-inbound-answered.ami")
        now, finished = 0.0, []
        for frame in frames:
            if "Event" in frame:
                now = event_time(frame, now)
                finished += tracker.feed(frame, now)
                await live.queue(live.due_events())
        finished += tracker.end_of_stream(now)
        await live.stop()
        async with sessions() as session:
            before = [(r.target, r.event) for r in (await session.scalars(select(CrmDelivery).order_by(CrmDelivery.id)))]
        assert before == [("bitrix24", "call.ringing"), ("webhook:bot", "call.ringing"), ("webhook:bot", "call.answered")]

        writer = CallWriter(sessions, config, after_write=[CallQueue(targets, time.time).note_written])
        assert len(finished) == 1
        await writer.write(finished[0])
        worker = OutboxWorker(sessions, targets, retry_policy(config))
        await worker.deliver_until_empty(time.monotonic() + 60)
    finally:
        portal.stop()
        hook.stop()

    # One call in Bitrix24, registered while ringing with the card shown to 203, then finished.
    assert not fake.refused and len(fake.calls) == 1
    call = next(iter(fake.calls.values()))
    assert call.registered["SHOW"] == 1 and call.registered["USER_PHONE_INNER"] == "203"
    assert call.registered["PHONE_NUMBER"] == "+79161110001" and call.registered["TYPE"] == 2
    assert call.finished is not None and call.finished["STATUS_CODE"] == "200"
    assert [method for method, _ in fake.log] == ["register", "finish", "attachRecord"]
    assert [d["event"] for d in receiver.received] == ["call.ringing", "call.answered", "call.finished",
                                                        "recording.ready"]
    assert receiver.received[0]["data"]["call"]["manager"] == "203"


async def test_transcripts_stored_while_the_daemon_was_down_are_queued_at_its_start(
    sessions: async_sessionmaker[AsyncSession], db_url: str, shared_dir: Path, tmp_path: Path
) -> None:
    config = Config(
        database=DatabaseConfig(url=db_url),
        recordings=RecordingsConfig(root=str(shared_dir / "recordings")),
        crm=CrmConfig(bitrix24=Bitrix24Config(webhook_url="http://127.0.0.1:9/rest/1/t/")),
    )
    await replay([shared_dir / "01-inbound-answered.ami"], config, None)
    # A worker (its own process) stored the transcript while no daemon was running.
    async with sessions() as session, session.begin():
        recording = (await session.scalars(select(Recording).where(Recording.status == "ok"))).one()
        await session.execute(update(TranscriptionJob).where(TranscriptionJob.recording_id == recording.id)
                              .values(status=DONE, finished_at=datetime.now(UTC)))
        session.add(TranscriptSegment(recording_id=recording.id, call_id=recording.call_id, start_s=0.5, end_s=2.0,
                                      speaker="manager", text="Добрый день", words=[], lemmas=""))
    hub = Hub(config)
    hub.write_sessions = sessions
    targets = targets_from_config(config)
    worker = OutboxWorker(sessions, targets, retry_policy(config))
    transcripts = TranscriptQueue(hub, CallQueue(targets, time.time), worker)
    assert await transcripts.catch_up() == 1
    # The next start finds it queued already.
    assert await transcripts.catch_up() == 0
    async with sessions() as session:
        events = [r.event for r in (await session.scalars(select(CrmDelivery).order_by(CrmDelivery.id)))]
    assert events == ["call.finished", "call.finished", "recording.ready", "transcript.ready"]
