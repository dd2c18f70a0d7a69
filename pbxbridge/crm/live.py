"""Calls still up: ``call.ringing`` when a manager's handset rings, ``call.answered`` when someone picks up.

Read off what the call trackers hold (``hub.calls_in_progress()``) a few times
a second, and queued in short transactions of their own for the targets that
take them: Bitrix24 registers the call while it rings, so the manager's card
pops up with the client's record; a webhook gets the events it asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.clients.numbers import normalise_number
from pbxbridge.crm import outbox
from pbxbridge.crm.events import CALL_ANSWERED, CALL_FINISHED, CALL_RINGING, CallEvent
from pbxbridge.crm.tables import CrmDelivery
from pbxbridge.crm.targets import Target

log = logging.getLogger(__name__)

# A card popping up half a second after the handset starts ringing is soon enough.
POLL_S = 0.5


def _iso(seconds: float | None) -> str | None:
    if seconds is None:
        return None
    return datetime.fromtimestamp(seconds, UTC).isoformat().replace("+00:00", "Z")


class LiveCalls:
    """Notes each call in progress once as ringing and once as answered, and queues those events."""

    def __init__(
        self,
        calls_in_progress: Callable[[], list[dict[str, Any]]],
        targets: Sequence[Target],
        region: str,
        clock: Callable[[], float],
        database_turn: Callable[[], AbstractAsyncContextManager[None]] = contextlib.nullcontext,
        queued: Callable[[], None] = lambda: None,
    ) -> None:
        self.calls_in_progress = calls_in_progress
        self.targets = [t for t in targets if t.live_events]
        self.wanted = frozenset().union(*(t.live_events for t in self.targets)) if self.targets else frozenset()
        self.region = region
        self.clock = clock
        self.database_turn = database_turn
        self.queued = queued
        self.sessions: async_sessionmaker[AsyncSession] | None = None
        # (pbx, linkedid) -> the live events already queued for it.
        self._noted: dict[tuple[str, str], set[str]] = {}
        self._task: asyncio.Task[None] | None = None

    def due_events(self) -> list[CallEvent]:
        """The events that happened since the last look (calls gone meanwhile are forgotten)."""
        events: list[CallEvent] = []
        up: set[tuple[str, str]] = set()
        for call in self.calls_in_progress():
            direction = str(call.get("direction"))
            number = normalise_number(str(call.get("client_number") or ""), self.region)
            if direction not in ("inbound", "outbound") or number is None:
                continue
            key = (str(call["pbx"]), str(call["linkedid"]))
            up.add(key)
            noted = self._noted.setdefault(key, set())
            ringing = [str(ext) for ext in call.get("ringing") or []]
            manager = call.get("manager") or (ringing[0] if ringing else None)
            snapshot = {
                "pbx": key[0],
                "linkedid": key[1],
                "direction": direction,
                "status": "answered" if call.get("answered_at") is not None else "ringing",
                "client_number": number,
                "did": None,
                "dialed": None,
                "manager": manager,
                "final_manager": None,
                "rang": ringing,
                "queues": list(call.get("queues") or []),
                "started_at": _iso(call.get("started_at")),
                "answered_at": _iso(call.get("answered_at")),
            }
            # Inbound: a handset rings; outbound: the manager dialled (the client's phone rings).
            rings = bool(ringing) or (direction == "outbound" and manager is not None)
            if CALL_RINGING not in noted and rings and manager is not None:
                noted.add(CALL_RINGING)
                if CALL_RINGING in self.wanted:
                    events.append(CallEvent(CALL_RINGING, key[0], key[1], None, snapshot, CALL_RINGING))
            if CALL_ANSWERED not in noted and call.get("answered_at") is not None:
                noted.add(CALL_ANSWERED)
                if CALL_ANSWERED in self.wanted:
                    events.append(CallEvent(CALL_ANSWERED, key[0], key[1], None, snapshot, CALL_ANSWERED))
        for gone in set(self._noted) - up:
            del self._noted[gone]
        return events

    async def queue(self, events: Sequence[CallEvent]) -> int:
        """Queue the events, each unless its call is in the journal already (it would arrive after its end)."""
        if not events or self.sessions is None:
            return 0
        async with self.database_turn(), self.sessions() as session, session.begin():
            rows = await session.execute(
                select(CrmDelivery.pbx, CrmDelivery.linkedid).where(
                    CrmDelivery.event == CALL_FINISHED,
                    CrmDelivery.linkedid.in_(sorted({e.linkedid for e in events})),
                )
            )
            finished = {(pbx, linkedid) for pbx, linkedid in rows}
            fresh = [e for e in events if (e.pbx, e.linkedid) not in finished]
            added = await outbox.enqueue(session, self.targets, fresh, datetime.fromtimestamp(self.clock(), UTC))
        if added:
            self.queued()
        return added

    async def _poll(self, poll_s: float) -> None:
        while True:
            try:
                await self.queue(self.due_events())
            except Exception:  # the database away for a moment: the next look queues what is still up
                log.exception("CRM: queueing events of calls in progress failed")
            await asyncio.sleep(poll_s)

    async def start(self, sessions: async_sessionmaker[AsyncSession] | None, poll_s: float = POLL_S) -> None:
        self.sessions = sessions
        if self.targets:
            self._task = asyncio.create_task(self._poll(poll_s), name="crm-live-calls")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
