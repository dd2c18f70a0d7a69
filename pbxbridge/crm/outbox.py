"""The outbox's rows: queued in the call's own transaction, taken in order per call, settled after each try."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from pbxbridge.crm.events import CallEvent
from pbxbridge.crm.tables import DEAD, DONE, PENDING, CrmDelivery
from pbxbridge.crm.targets import Delivery, DeliveryFailed, Target
from pbxbridge.db.base import table_of
from pbxbridge.db.chunks import chunks
from pbxbridge.db.upsert import dialect_insert, rowcount

# A worker holds a delivery it took this long at most (a request's timeout and then some);
# one that died meanwhile leaves it to the next.
CLAIM_S = 120.0


@dataclass(frozen=True, slots=True)
class RetryPolicy:
    """How often a failing delivery is tried, and how long between tries."""

    max_attempts: int = 15
    initial_s: float = 2.0
    max_s: float = 600.0

    def delay(self, attempts: int) -> float:
        """The wait after the ``attempts``-th failed try: doubling from ``initial_s`` up to ``max_s``."""
        return float(min(self.max_s, self.initial_s * 2 ** max(0, attempts - 1)))


def planned_rows(targets: Sequence[Target], events: Sequence[CallEvent], now: datetime) -> list[dict[str, Any]]:
    """The outbox rows that events make, target by target, in the order they are to be delivered."""
    rows: list[dict[str, Any]] = []
    for target in targets:
        for event in events:
            for step in target.plan(event):
                rows.append({
                    "target": target.name,
                    "event": event.name,
                    "action": step.action,
                    "pbx": event.pbx,
                    "linkedid": event.linkedid,
                    "call_id": event.call_id,
                    # Target, PBX and linkedid first: the same call never shares one with another,
                    # even where a PBX reuses a linkedid-like id elsewhere.
                    "idempotency_key": f"{event.pbx}:{event.linkedid}:{step.key}"[:255],
                    "payload": step.payload,
                    "status": PENDING,
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                })
    return rows


async def enqueue(session: AsyncSession, targets: Sequence[Target], events: Sequence[CallEvent], now: datetime) -> int:
    """Queue what the events need, inside the caller's transaction; an event queued before is skipped. Rows added."""
    rows = planned_rows(targets, events, now)
    added = 0
    table = table_of(CrmDelivery)
    for some in chunks(rows, 200):
        stmt = dialect_insert(session, table).values(list(some))
        added += rowcount(await session.execute(stmt.on_conflict_do_nothing(index_elements=["target", "idempotency_key"])))
    return added


def _head_of_line() -> Any:
    """Pending deliveries with no earlier pending one of the same call to the same target."""
    earlier = aliased(CrmDelivery)
    blocking = (
        select(earlier.id)
        .where(
            earlier.target == CrmDelivery.target,
            earlier.pbx == CrmDelivery.pbx,
            earlier.linkedid == CrmDelivery.linkedid,
            earlier.status == PENDING,
            earlier.id < CrmDelivery.id,
        )
        .exists()
    )
    return and_(CrmDelivery.status == PENDING, ~blocking)


async def due(session: AsyncSession, now: datetime, targets: Sequence[str], limit: int = 200) -> list[Delivery]:
    """Deliveries whose turn it is: due, not held by a worker, and first of their call's for their target."""
    rows = (
        await session.scalars(
            select(CrmDelivery)
            .where(
                _head_of_line(),
                CrmDelivery.target.in_(list(targets)),
                CrmDelivery.next_attempt_at <= now,
                (CrmDelivery.claimed_until.is_(None)) | (CrmDelivery.claimed_until < now),
            )
            .order_by(CrmDelivery.id)
            .limit(limit)
        )
    ).all()
    return [
        Delivery(r.id, r.target, r.event, r.action, r.pbx, r.linkedid, r.idempotency_key, dict(r.payload), r.attempts)
        for r in rows
    ]


async def next_due_at(session: AsyncSession, targets: Sequence[str]) -> datetime | None:
    """When the earliest pending delivery is next tried; None when nothing is pending."""
    at: datetime | None = await session.scalar(
        select(func.min(CrmDelivery.next_attempt_at)).where(
            CrmDelivery.status == PENDING, CrmDelivery.target.in_(list(targets))
        )
    )
    return at


async def claim(session: AsyncSession, delivery_id: int, now: datetime) -> bool:
    """Take a delivery for a try; False when another worker has it or it is no longer pending."""
    result = await session.execute(
        update(CrmDelivery)
        .where(
            CrmDelivery.id == delivery_id,
            CrmDelivery.status == PENDING,
            (CrmDelivery.claimed_until.is_(None)) | (CrmDelivery.claimed_until < now),
        )
        .values(claimed_until=now + timedelta(seconds=CLAIM_S))
    )
    return rowcount(result) == 1


async def earlier_results(session: AsyncSession, delivery: Delivery) -> dict[str, dict[str, Any]]:
    """What the target answered to this call's deliveries already made, by action."""
    rows = await session.execute(
        select(CrmDelivery.action, CrmDelivery.result)
        .where(
            CrmDelivery.target == delivery.target,
            CrmDelivery.pbx == delivery.pbx,
            CrmDelivery.linkedid == delivery.linkedid,
            CrmDelivery.status == DONE,
            CrmDelivery.id < delivery.id,
        )
        .order_by(CrmDelivery.id)
    )
    return {action: dict(result) for action, result in rows if result}


async def settle_done(session: AsyncSession, delivery_id: int, result: dict[str, Any] | None, now: datetime) -> None:
    await session.execute(
        update(CrmDelivery)
        .where(CrmDelivery.id == delivery_id)
        .values(
            status=DONE, attempts=CrmDelivery.attempts + 1, result=result, delivered_at=now,
            claimed_until=None, last_error=None,
        )
    )


async def settle_failed(
    session: AsyncSession, delivery: Delivery, failure: DeliveryFailed, policy: RetryPolicy, now: datetime
) -> str:
    """Record a failed try: tried again later, or a dead letter with its reason. The status it is left in."""
    attempts = delivery.attempts if failure.throttled else delivery.attempts + 1
    if not failure.retry:
        status, reason, wait = DEAD, failure.reason, 0.0
    elif not failure.throttled and attempts >= policy.max_attempts:
        status, reason, wait = DEAD, f"gave up after {attempts} tries: {failure.reason}", 0.0
    else:
        wait = policy.delay(attempts) if not failure.throttled else 0.0
        wait = max(wait, failure.after_s or 0.0)
        status, reason = PENDING, failure.reason
    await session.execute(
        update(CrmDelivery)
        .where(CrmDelivery.id == delivery.id)
        .values(
            status=status, attempts=attempts, last_error=reason, claimed_until=None,
            next_attempt_at=now + timedelta(seconds=wait),
        )
    )
    return status


async def retry(session: AsyncSession, now: datetime, delivery_id: int | None = None) -> int:
    """Queue dead letters again (one by id, or all of them), from a first try; how many."""
    stmt = update(CrmDelivery).where(CrmDelivery.status == DEAD)
    if delivery_id is not None:
        stmt = stmt.where(CrmDelivery.id == delivery_id)
    result = await session.execute(
        stmt.values(status=PENDING, attempts=0, next_attempt_at=now, claimed_until=None)
    )
    return rowcount(result)


@dataclass(frozen=True, slots=True)
class TargetCounts:
    target: str
    pending: int
    done: int
    dead: int
    oldest_pending: datetime | None


async def counts(session: AsyncSession) -> list[TargetCounts]:
    """Per target: deliveries pending, done and dead, and when the oldest pending one was queued."""
    rows = await session.execute(
        select(CrmDelivery.target, CrmDelivery.status, func.count(), func.min(CrmDelivery.created_at))
        .group_by(CrmDelivery.target, CrmDelivery.status)
        .order_by(CrmDelivery.target)
    )
    found: dict[str, dict[str, Any]] = {}
    for target, status, count, oldest in rows:
        entry = found.setdefault(target, {PENDING: 0, DONE: 0, DEAD: 0, "oldest": None})
        entry[status] = count
        if status == PENDING:
            entry["oldest"] = oldest
    return [TargetCounts(t, e[PENDING], e[DONE], e[DEAD], e["oldest"]) for t, e in found.items()]


async def dead_letters(session: AsyncSession, limit: int = 100) -> list[CrmDelivery]:
    """The dead letters, oldest first, with the reason each gave up."""
    return list(
        (await session.scalars(select(CrmDelivery).where(CrmDelivery.status == DEAD).order_by(CrmDelivery.id).limit(limit))).all()
    )


async def prune_delivered(session: AsyncSession, before: datetime) -> int:
    """Delete deliveries made before ``before`` (dead letters and pending ones stay); how many."""
    result = await session.execute(
        delete(CrmDelivery).where(CrmDelivery.status == DONE, CrmDelivery.delivered_at < before)
    )
    return rowcount(result)
