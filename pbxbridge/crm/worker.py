"""Delivering the outbox: in order per call, each target at its own pace, failures tried again later."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import UTC, datetime

import aiohttp
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.crm import outbox
from pbxbridge.crm.clicks import click_for
from pbxbridge.crm.outbox import RetryPolicy
from pbxbridge.crm.tables import DEAD
from pbxbridge.crm.targets import Delivery, DeliveryFailed, SendContext, Target
from pbxbridge.crm.users import users_of

log = logging.getLogger(__name__)

# With nothing due, the daemon's worker looks again this often (new calls wake it at once).
IDLE_S = 5.0
# Delivered rows older than the settings keep are deleted this often.
PRUNE_EVERY_S = 3600.0


class RateLimit:
    """A token bucket: ``burst`` requests at once, then ``per_s`` a second; a throttled target pauses."""

    def __init__(self, per_s: float, burst: int, clock: Callable[[], float] = time.monotonic) -> None:
        self.per_s = per_s
        self.burst = max(1, burst)
        self.clock = clock
        self.tokens = float(self.burst)
        self.at = clock()
        self.paused_until = 0.0

    async def wait(self) -> None:
        while True:
            now = self.clock()
            if now < self.paused_until:
                await asyncio.sleep(self.paused_until - now)
                continue
            self.tokens = min(self.burst, self.tokens + (now - self.at) * self.per_s)
            self.at = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await asyncio.sleep((1 - self.tokens) / self.per_s)

    def pause(self, seconds: float) -> None:
        """The target said to slow down: nothing goes to it for ``seconds``, and the bucket starts empty."""
        self.paused_until = max(self.paused_until, self.clock() + seconds)
        self.tokens = 0.0


@dataclass(slots=True)
class Tally:
    """What a run of the worker did."""

    delivered: int = 0
    failed: int = 0
    dead: int = 0
    by_target: dict[str, int] = field(default_factory=dict)


def _utc(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


class OutboxWorker:
    """Takes due deliveries and sends them; one pass at a time, or until the outbox is empty, or forever."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession] | None,
        targets: Sequence[Target],
        policy: RetryPolicy,
        *,
        clock: Callable[[], float] = time.time,
        database_turn: Callable[[], AbstractAsyncContextManager[None]] = contextlib.nullcontext,
        keep_delivered_days: int = 0,
    ) -> None:
        self.sessions = sessions
        self.targets = {target.name: target for target in targets}
        self.policy = policy
        self.clock = clock
        self.database_turn = database_turn
        self.limits = {t.name: RateLimit(t.requests_per_s, t.burst) for t in targets}
        self.tally = Tally()
        self.keep_delivered_days = keep_delivered_days
        self._pruned_at = -PRUNE_EVERY_S
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._http: aiohttp.ClientSession | None = None

    def db(self) -> async_sessionmaker[AsyncSession]:
        """The database: the daemon's once it is up, or the command line's own."""
        if self.sessions is None:
            raise RuntimeError("the outbox worker has no database yet")
        return self.sessions

    def wake(self, *_args: object) -> None:
        """Something was queued: look now rather than at the next idle poll."""
        self._wake.set()

    async def _session(self) -> aiohttp.ClientSession:
        if self._http is None or self._http.closed:
            self._http = aiohttp.ClientSession(headers={"User-Agent": "pbxbridge"})
        return self._http

    async def close(self) -> None:
        if self._http is not None:
            await self._http.close()
            self._http = None

    async def deliver_due(self) -> int:
        """One pass: each call's next delivery that is due, every target at once; how many were tried."""
        if not self.targets:
            return 0
        async with self.db()() as session:
            found = await outbox.due(session, _utc(self.clock()), list(self.targets))
        by_target: dict[str, list[Delivery]] = {}
        for delivery in found:
            by_target.setdefault(delivery.target, []).append(delivery)
        await asyncio.gather(*(self._deliver_target(name, some) for name, some in by_target.items()))
        return len(found)

    async def _deliver_target(self, name: str, deliveries: list[Delivery]) -> None:
        target = self.targets[name]
        limit = self.limits[name]
        http = await self._session()
        for delivery in deliveries:
            async with self.database_turn(), self.db()() as session, session.begin():
                if not await outbox.claim(session, delivery.id, _utc(self.clock())):
                    continue
                context = SendContext(await outbox.earlier_results(session, delivery), await users_of(session, name),
                                      await click_for(session, name, delivery))
            await limit.wait()
            try:
                result = await target.send(http, delivery, context)
            except DeliveryFailed as failure:
                if failure.throttled:
                    limit.pause(failure.after_s or 1.0)
                await self._failed(delivery, failure)
                continue
            except Exception as exc:  # a bug in a connector must not stop the others
                log.exception("CRM %s: delivery %d failed unexpectedly", name, delivery.id)
                await self._failed(delivery, DeliveryFailed(f"{type(exc).__name__}: {exc}"))
                continue
            async with self.database_turn(), self.db()() as session, session.begin():
                await outbox.settle_done(session, delivery.id, result, _utc(self.clock()))
            self.tally.delivered += 1
            self.tally.by_target[name] = self.tally.by_target.get(name, 0) + 1

    async def _failed(self, delivery: Delivery, failure: DeliveryFailed) -> None:
        async with self.database_turn(), self.db()() as session, session.begin():
            status = await outbox.settle_failed(session, delivery, failure, self.policy, _utc(self.clock()))
        self.tally.failed += 1
        if status == DEAD:
            self.tally.dead += 1
            log.error("CRM %s: delivery %d (%s of %s/%s) is a dead letter: %s",
                      delivery.target, delivery.id, delivery.action, delivery.pbx, delivery.linkedid, failure.reason)
        else:
            log.warning("CRM %s: delivery %d (%s of %s/%s) failed, will be tried again: %s",
                        delivery.target, delivery.id, delivery.action, delivery.pbx, delivery.linkedid, failure.reason)

    async def deliver_until_empty(self, deadline_s: float | None = None) -> Tally:
        """Deliver until nothing is pending, waiting out retry delays; stop at ``deadline_s`` (monotonic) if given."""
        try:
            while True:
                tried = await self.deliver_due()
                if tried:
                    continue
                wait = await self._until_next_due()
                if wait is None:
                    return self.tally
                if deadline_s is not None:
                    left = deadline_s - time.monotonic()
                    if left <= 0:
                        return self.tally
                    wait = min(wait, left)
                # A delivery another worker holds is due again when its claim lapses: look now and then.
                await asyncio.sleep(min(max(wait, 0.05), IDLE_S))
        finally:
            await self.close()

    async def _until_next_due(self) -> float | None:
        """Seconds until the next pending delivery is due (0 when it is); None with none pending."""
        async with self.db()() as session:
            next_at = await outbox.next_due_at(session, list(self.targets))
        return None if next_at is None else max(0.0, next_at.timestamp() - self.clock())

    async def prune(self) -> int:
        """Delete the delivered rows older than ``keep_delivered_days`` (none when it is 0)."""
        if not self.keep_delivered_days:
            return 0
        before = _utc(self.clock() - self.keep_delivered_days * 86400)
        async with self.database_turn(), self.db()() as session, session.begin():
            return await outbox.prune_delivered(session, before)

    async def run(self, idle_s: float = IDLE_S) -> None:
        """The daemon's loop: deliver what is due, sleep until the next is (or something new is queued)."""
        while True:
            self._wake.clear()
            try:
                if time.monotonic() - self._pruned_at >= PRUNE_EVERY_S:
                    self._pruned_at = time.monotonic()
                    pruned = await self.prune()
                    if pruned:
                        log.info("CRM outbox: %d delivered row(s) older than %d days deleted", pruned,
                                 self.keep_delivered_days)
                tried = await self.deliver_due()
                wait = 0.0
                if not tried:
                    due_in = await self._until_next_due()
                    wait = idle_s if due_in is None else min(idle_s, due_in)
            except Exception:  # the database away for a moment must not end delivering
                log.exception("CRM outbox: a delivery pass failed")
                wait = idle_s
            if wait > 0:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), wait)

    async def start(self) -> None:
        if self.targets:
            self._task = asyncio.create_task(self.run(), name="crm-outbox")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        await self.close()
