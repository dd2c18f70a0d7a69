"""Keeping the KPI store up to date: each finished call, inside its own transaction, and rebuilds."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy import delete, event, func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pbxbridge.calls.tables import Call
from pbxbridge.clients.tables import Client
from pbxbridge.kpi.definitions import (
    FIGURE_NAMES,
    INBOUND,
    UNANSWERED_INBOUND,
    CallFact,
    KpiSettings,
    LeadFact,
    client_key,
    day_and_hours,
    day_bounds,
    lead_fact,
    link_callbacks,
    local_day,
    local_hour,
    utc,
)
from pbxbridge.kpi.tables import CallFactRow, LeadRow, ManagerDayRow, ManagerHourRow

log = logging.getLogger(__name__)

# One PostgreSQL advisory lock serialises KPI updates: two calls ending at
# once would otherwise both rewrite the same day's rows.
_PG_LOCK_KEY = 0x6B7069  # "kpi"

_LINKED = ("callback_call_id", "callback_by", "callback_s", "lost")


def _unix(value: datetime | float | None) -> float | None:
    if value is None:
        return None
    if isinstance(value, datetime):
        return value.timestamp()
    return float(value)


def fact_from_call(call: Any) -> CallFact:
    """The KPI view of a row of the calls table (an ORM object or a Core row)."""
    direction = str(call.direction)
    number = None if direction == "internal" else call.client_number
    started = _unix(call.started_at)
    ended = _unix(call.ended_at)
    assert started is not None and ended is not None
    return CallFact(
        call_id=int(call.id),
        direction=direction,
        status=str(call.status),
        started_at=started,
        ended_at=ended,
        answered_at=_unix(call.answered_at),
        wait_s=float(call.wait_s or 0.0),
        talk_s=float(call.talk_s or 0.0),
        client_key=client_key(call.client_id, number),
        client_id=call.client_id,
        manager=call.manager,
        callee=call.callee,
        rang=tuple(call.rang or ()),
        transferred_to=tuple(call.transferred_to or ()),
        queues=tuple(call.queues or ()),
    )


def fact_from_row(row: Any) -> CallFact:
    """A stored fact (ORM object or plain row) back as a CallFact."""
    return CallFact(
        call_id=row.call_id,
        direction=row.direction,
        status=row.status,
        started_at=row.started_at,
        ended_at=row.ended_at,
        answered_at=row.answered_at,
        wait_s=row.wait_s,
        talk_s=row.talk_s,
        client_key=row.client_key,
        client_id=row.client_id,
        manager=row.manager,
        callee=row.callee,
        rang=tuple(row.rang or ()),
        transferred_to=tuple(row.transferred_to or ()),
        queues=tuple(row.queues or ()),
        callback_call_id=row.callback_call_id,
        callback_by=row.callback_by,
        callback_s=row.callback_s,
        lost=row.lost,
    )


def _fact_values(fact: CallFact, settings: KpiSettings) -> dict[str, Any]:
    zone = settings.zone
    return {
        "call_id": fact.call_id,
        "day": local_day(fact.started_at, zone),
        "hour": local_hour(fact.started_at, zone),
        "direction": fact.direction,
        "status": fact.status,
        "started_at": fact.started_at,
        "ended_at": fact.ended_at,
        "answered_at": fact.answered_at,
        "wait_s": fact.wait_s,
        "talk_s": fact.talk_s,
        "client_key": fact.client_key,
        "client_id": fact.client_id,
        "manager": fact.manager,
        "callee": fact.callee,
        "rang": list(fact.rang),
        "transferred_to": list(fact.transferred_to),
        "queues": list(fact.queues),
        **{name: getattr(fact, name) for name in _LINKED},
    }


def _lead_from_row(row: Any) -> LeadFact:
    return LeadFact(
        client_id=row.client_id,
        arrived_at=row.arrived_at,
        first_attempt_at=row.first_attempt_at,
        first_attempt_by=row.first_attempt_by,
        first_answered_at=row.first_answered_at,
        first_answered_by=row.first_answered_by,
        reached=row.reached,
    )


def _lead_values(lead: LeadFact, settings: KpiSettings) -> dict[str, Any]:
    return {
        "client_id": lead.client_id,
        "day": local_day(lead.arrived_at, settings.zone),
        "arrived_at": lead.arrived_at,
        "first_attempt_at": lead.first_attempt_at,
        "first_attempt_by": lead.first_attempt_by,
        "first_answered_at": lead.first_answered_at,
        "first_answered_by": lead.first_answered_by,
        "reached": lead.reached,
    }


# Told after a call's transaction commits: (the call as linked, callbacks it settled, is_new).
CommitListener = Callable[[CallFact, list[tuple[CallFact, float]], bool], None]


@dataclass(slots=True)
class _Outcome:
    """What one call changed, for metrics and alerts once its transaction commits."""

    fact: CallFact
    # Missed calls of the client this call settled as called back: (fact, callback_s).
    new_callbacks: list[tuple[CallFact, float]] = field(default_factory=list)


class KpiRecorder:
    """Updates the KPI store as calls are written; a CallWriter ``after_write`` hook."""

    def __init__(
        self,
        settings: KpiSettings | None = None,
        on_commit: Iterable[CommitListener] = (),
    ) -> None:
        self.settings = settings or KpiSettings()
        self.on_commit = list(on_commit)

    async def apply_call(self, session: AsyncSession, call_row: Any, finished_call: Any = None, is_new: bool = True) -> None:
        """Fold one written call into the figures, in the caller's transaction; replays change nothing."""
        await self._lock(session)
        await session.flush()
        fact = fact_from_call(call_row)
        values = _fact_values(fact, self.settings)
        old = await session.get(CallFactRow, fact.call_id)
        days: set[date] = {values["day"]}
        keys = {fact.client_key}
        clients = {fact.client_id}
        if old is None:
            session.add(CallFactRow(**values))
        else:
            days.add(old.day)
            keys.add(old.client_key)
            clients.add(old.client_id)
            for name, value in values.items():
                if name not in _LINKED:
                    setattr(old, name, value)
        await session.flush()
        clock = await self._clock(session)
        outcome = _Outcome(fact=fact)
        for key in sorted(k for k in keys if k is not None):
            days |= await self._relink_client(session, key, clock, outcome)
        for client_id in sorted(c for c in clients if c is not None):
            days |= await self._refresh_lead(session, client_id)
        days |= await self._close_windows(session, clock)
        for day in sorted(days):
            await self.recompute_day(session, day)
        if self.on_commit:
            # Listeners get the call as linked to its callback (or as still open).
            stored = await session.get(CallFactRow, fact.call_id)
            if stored is not None:
                outcome.fact = fact_from_row(stored)
            self._after_commit(session, outcome, is_new)

    # A bound method is what CallWriter takes as a hook.
    __call__ = apply_call

    async def rebuild(self, session: AsyncSession) -> int:
        """Recompute every fact and figure from the calls and clients tables; return the calls seen."""
        await self._lock(session)
        for table in (ManagerHourRow, ManagerDayRow, LeadRow, CallFactRow):
            await session.execute(delete(table))
        rows = (await session.execute(select(Call.__table__))).all()
        facts = [fact_from_call(r) for r in rows]
        clock = max((f.ended_at for f in facts), default=0.0)
        by_client: dict[str, list[CallFact]] = defaultdict(list)
        for f in facts:
            if f.client_key:
                by_client[f.client_key].append(f)
        for group in by_client.values():
            link_callbacks(group, self.settings, clock)
        if facts:
            await session.execute(insert(CallFactRow), [_fact_values(f, self.settings) for f in facts])
        days = {local_day(f.started_at, self.settings.zone) for f in facts}
        client_ids = {f.client_id for f in facts if f.client_id is not None}
        for client_id in sorted(client_ids):
            days |= await self._refresh_lead(session, client_id)
        for day in sorted(days):
            await self.recompute_day(session, day)
        return len(facts)

    async def recompute_day(self, session: AsyncSession, day: date) -> None:
        """Rewrite one business day's figures (per manager, per hour, department) from the facts."""
        # Plain rows, not ORM objects: a busy day holds thousands of calls.
        await session.flush()
        facts_table, leads_table = CallFactRow.__table__, LeadRow.__table__
        fact_rows = await session.execute(
            select(facts_table).where(facts_table.c.day == day).order_by(facts_table.c.started_at, facts_table.c.call_id)
        )
        facts = [fact_from_row(r) for r in fact_rows]
        lead_rows = await session.execute(
            select(leads_table).where(leads_table.c.day == day).order_by(leads_table.c.client_id)
        )
        leads = [_lead_from_row(r) for r in lead_rows] + await self._leads_without_calls(session, day)
        daily, hourly = day_and_hours(facts, leads, self.settings)
        for table in (ManagerDayRow.__table__, ManagerHourRow.__table__):
            await session.execute(delete(table).where(table.c.day == day))
        if daily:
            await session.execute(
                insert(ManagerDayRow),
                [{"day": day, "manager": m, **_stored(fig)} for m, fig in daily.items()],
            )
        hour_rows = [
            {"day": day, "hour": h, "manager": m, **_stored(fig)}
            for h, per_manager in hourly.items()
            for m, fig in per_manager.items()
        ]
        if hour_rows:
            await session.execute(insert(ManagerHourRow), hour_rows)

    # ------------------------------------------------------------------ parts

    async def _lock(self, session: AsyncSession) -> None:
        # SQLite has one writer at a time already (CallWriter begins IMMEDIATE).
        connection = await session.connection()
        if connection.dialect.name == "postgresql":
            await session.execute(select(func.pg_advisory_xact_lock(_PG_LOCK_KEY)))

    async def _clock(self, session: AsyncSession) -> float:
        """The latest end of any call known: the store's notion of now."""
        return float(await session.scalar(select(func.max(CallFactRow.ended_at))) or 0.0)

    async def _relink_client(self, session: AsyncSession, key: str, clock: float, outcome: _Outcome) -> set[date]:
        """Re-find callbacks of one client's missed calls; return the days whose facts changed."""
        rows = (await session.scalars(select(CallFactRow).where(CallFactRow.client_key == key))).all()
        facts = [fact_from_row(r) for r in rows]
        link_callbacks(facts, self.settings, clock)
        changed: set[date] = set()
        for row, fact in zip(rows, facts, strict=True):
            before = tuple(getattr(row, n) for n in _LINKED)
            after = tuple(getattr(fact, n) for n in _LINKED)
            if before == after:
                continue
            for name in _LINKED:
                setattr(row, name, getattr(fact, name))
            changed.add(row.day)
            if fact.callback_call_id is not None and row.callback_call_id != before[0] and fact.callback_s is not None:
                outcome.new_callbacks.append((fact, fact.callback_s))
        return changed

    async def _refresh_lead(self, session: AsyncSession, client_id: int) -> set[date]:
        """Recompute a lead's speed-to-lead facts; return the days they touch, old and new."""
        client = await session.get(Client, client_id)
        old = await session.get(LeadRow, client_id)
        days: set[date] = set()
        if old is not None:
            days.add(old.day)
        lead: LeadFact | None = None
        if client is not None and client.is_lead:
            rows = (await session.scalars(select(CallFactRow).where(CallFactRow.client_id == client_id))).all()
            lead = lead_fact(client_id, client.created_at.timestamp(), [fact_from_row(r) for r in rows])
        if lead is None:
            if old is not None:
                await session.delete(old)
            return days
        values = _lead_values(lead, self.settings)
        days.add(values["day"])
        if old is None:
            session.add(LeadRow(**values))
        else:
            for name, value in values.items():
                setattr(old, name, value)
        await session.flush()
        return days

    async def _close_windows(self, session: AsyncSession, clock: float) -> set[date]:
        """Missed callers whose callback window the calls have moved past are lost."""
        rows = (
            await session.scalars(
                select(CallFactRow).where(
                    CallFactRow.lost.is_(None),
                    CallFactRow.direction == INBOUND,
                    CallFactRow.status.in_(sorted(UNANSWERED_INBOUND)),
                    CallFactRow.ended_at <= clock - self.settings.lost_lead_after_s,
                )
            )
        ).all()
        for row in rows:
            row.lost = True
        return {row.day for row in rows}

    async def _leads_without_calls(self, session: AsyncSession, day: date) -> list[LeadFact]:
        """Lead cards made that day that nobody has called and who have not called in."""
        start, end = day_bounds(day, self.settings.zone)
        called = select(CallFactRow.call_id).where(CallFactRow.client_id == Client.id).exists()
        rows = await session.execute(
            select(Client.id, Client.created_at).where(
                Client.is_lead.is_(True),
                Client.created_at >= utc(start),
                Client.created_at < utc(end),
                ~called,
            ).order_by(Client.id)
        )
        return [LeadFact(client_id=client_id, arrived_at=created.timestamp()) for client_id, created in rows]

    def _after_commit(self, session: AsyncSession, outcome: _Outcome, is_new: bool) -> None:
        def fire(_session: Session) -> None:
            for callback in self.on_commit:
                try:
                    callback(outcome.fact, outcome.new_callbacks, is_new)
                except Exception:  # a broken dashboard must not stop call writing
                    log.exception("KPI commit listener failed")

        event.listen(session.sync_session, "after_commit", fire, once=True)


def _stored(figures: dict[str, Any]) -> dict[str, Any]:
    return {name: figures.get(name) for name in FIGURE_NAMES}


async def apply_call(session: AsyncSession, call_row: Any, finished_call: Any = None, is_new: bool = True) -> None:
    """CallWriter hook with the default [kpi] settings; the daemon uses KpiService's, built from its config."""
    from pbxbridge.kpi.service import default_service

    await default_service().apply_call(session, call_row, finished_call, is_new)


