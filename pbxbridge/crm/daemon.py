"""The CRM domain in the daemon: calls queued for every target as they are written, delivered by a worker."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from pbxbridge.crm.connectors import retry_policy, targets_from_config
from pbxbridge.crm.live import LiveCalls
from pbxbridge.crm.owners import CrmOwners, owners_from_config
from pbxbridge.crm.queueing import CallQueue, transcripts_since
from pbxbridge.crm.worker import OutboxWorker
from pbxbridge.hub import CRM_OWNER

if TYPE_CHECKING:
    from pbxbridge.hub import Hub

log = logging.getLogger(__name__)

# Transcripts stored while the daemon was down (the workers run apart) are queued at its start,
# as far back as this.
CATCH_UP_DAYS = 7


class TranscriptQueue:
    """Queues a transcript the workers stored, in a short transaction of its own."""

    def __init__(self, hub: Hub, queue: CallQueue, worker: OutboxWorker) -> None:
        self.hub = hub
        self.queue = queue
        self.worker = worker

    async def on_transcript_ready(self, recording_id: int) -> None:
        factory = self.hub.write_sessions
        if factory is None:
            return
        async with self.hub.database_turn(), factory() as session, session.begin():
            added = await self.queue.note_transcript(session, recording_id)
        if added:
            self.worker.wake()

    async def catch_up(self) -> int:
        """Queue the transcripts stored while nobody listened (the watcher hears only those after its start)."""
        factory = self.hub.write_sessions
        if factory is None:
            return 0
        since = datetime.fromtimestamp(self.hub.clock(), UTC) - timedelta(days=CATCH_UP_DAYS)
        added = 0
        async with self.hub.database_turn(), factory() as session, session.begin():
            for recording_id in await transcripts_since(session, since):
                added += await self.queue.note_transcript(session, recording_id)
        if added:
            log.info("CRM: %d transcript delivery(ies) queued that were stored while the daemon was down", added)
        return added


def attach(hub: Hub) -> OutboxWorker | None:
    """Queue every written call for the configured targets; deliver them while the daemon is live."""
    targets = targets_from_config(hub.config)
    if not targets:
        return None
    queue = CallQueue(targets, hub.clock)
    hub.after_write(queue.note_written)
    worker = OutboxWorker(None, targets, retry_policy(hub.config), clock=hub.clock, database_turn=hub.database_turn,
                          keep_delivered_days=hub.config.crm.keep_delivered_days)
    hub.on_call(worker.wake)
    transcripts = TranscriptQueue(hub, queue, worker)
    hub.on_transcript_ready(transcripts.on_transcript_ready)
    # Replay queues deliveries as a live daemon does; they are sent by a live daemon or `pbxbridge outbox deliver`.
    hub.add_component(DaemonWorker(hub, worker, transcripts), serving=True)
    live = LiveCalls(hub.calls_in_progress, targets, hub.config.phone.default_region, hub.clock,
                     hub.database_turn, worker.wake)
    hub.add_component(DaemonLiveCalls(hub, live), serving=True)
    owners = owners_from_config(hub.config, None)
    if owners is not None:
        # Routing asks for a caller's responsible manager when the card names none.
        hub.provide(CRM_OWNER, owners.owner_of)
        hub.add_component(DaemonOwners(hub, owners))
    log.info("CRM: delivering calls to %s", ", ".join(t.name for t in targets))
    return worker


class DaemonOwners:
    """The CRMs' responsible managers: read with the daemon's database, their HTTP session closed at the end."""

    def __init__(self, hub: Hub, owners: CrmOwners) -> None:
        self.hub = hub
        self.owners = owners

    async def start(self) -> None:
        self.owners.sessions = self.hub.sessions

    async def stop(self) -> None:
        await self.owners.close()


class DaemonWorker:
    """The outbox worker as a daemon component: it gets the daemon's database once that is up."""

    def __init__(self, hub: Hub, worker: OutboxWorker, transcripts: TranscriptQueue) -> None:
        self.hub = hub
        self.worker = worker
        self.transcripts = transcripts

    async def start(self) -> None:
        self.worker.sessions = self.hub.write_sessions
        await self.transcripts.catch_up()
        await self.worker.start()

    async def stop(self) -> None:
        await self.worker.stop()


class DaemonLiveCalls:
    """Calls still up, read a few times a second once the daemon's database is up (live daemons only)."""

    def __init__(self, hub: Hub, live: LiveCalls) -> None:
        self.hub = hub
        self.live = live

    async def start(self) -> None:
        await self.live.start(self.hub.write_sessions)

    async def stop(self) -> None:
        await self.live.stop()
