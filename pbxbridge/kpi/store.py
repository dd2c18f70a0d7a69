"""Keeping the KPI store up to date: finished calls (in the transaction given, a batch at a time), and rebuilds."""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from itertools import zip_longest
from typing import Any

from sqlalchemy import bindparam, delete, event, func, insert, select, union_all, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pbxbridge.calls.tables import Call
from pbxbridge.clients.tables import Client
from pbxbridge.db.base import table_of
from pbxbridge.db.chunks import chunks
from pbxbridge.kpi.calendar import local_day, local_hour
from pbxbridge.kpi.days import DayFigures, fact_from_row
from pbxbridge.kpi.definitions import (
    INBOUND,
    UNANSWERED_INBOUND,
    CallFact,
    KpiSettings,
    LeadFact,
    client_key,
    lead_fact,
    link_callbacks,
)
from pbxbridge.kpi.lock import lock_figures
from pbxbridge.kpi.speech import NOT_MEASURED, SpeechSource, held_parts
from pbxbridge.kpi.tables import CallFactRow, LeadRow, ManagerDayRow, ManagerHourRow

log = logging.getLogger(__name__)

_LINKED = ("callback_call_id", "callback_by", "callback_s", "lost")
_FACTS = table_of(CallFactRow)


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
    """Updates the KPI store as calls are written (``apply_many`` is a CallWriter hook)."""

    def __init__(
        self,
        settings: KpiSettings | None = None,
        on_commit: Iterable[CommitListener] = (),
    ) -> None:
        self.settings = settings or KpiSettings()
        self.on_commit = list(on_commit)
        self.days = DayFigures(self.settings)
        # The latest end of any call in the store, once asked (see _clock).
        self._clock_value: float | None = None

    async def apply_many(self, session: AsyncSession, written: Sequence[tuple[Any, Any, bool]]) -> None:
        """Fold calls written together, (call_row, finished_call, is_new) each, into the figures at once.

        The figures come out as if the calls had been folded in one by one:
        each call's fact is stored, then each client's callbacks are found
        again and each lead's speed is recomputed once for the lot, callback
        windows are closed on the latest clock, and each day touched is
        rewritten once.
        """
        if not written:
            return
        await self._lock(session)
        await session.flush()
        self._forget_on_rollback(session)
        facts = [fact_from_call(call_row) for call_row, _finished, _is_new in written]
        days: set[date] = set()
        keys: set[str] = set()
        clients: set[int] = set()
        stored = await self._load_facts(session, [f.call_id for f in facts])
        clock = await self._clock(session)
        for fact in facts:
            values = _fact_values(fact, self.settings)
            old = stored.get(fact.call_id)
            days.add(values["day"])
            previous = (None, None) if old is None else (old.client_key, old.client_id)
            keys.update(k for k in (fact.client_key, previous[0]) if k is not None)
            clients.update(c for c in (fact.client_id, previous[1]) if c is not None)
            if old is None:
                stored[fact.call_id] = CallFactRow(**values)
                session.add(stored[fact.call_id])
                clock = max(clock, fact.ended_at)
            else:
                days.add(old.day)
                if old.ended_at != fact.ended_at:
                    # A call written again with another end: the store is asked for the latest end again.
                    self._clock_value = None
                for name, value in values.items():
                    if name not in _LINKED:
                        setattr(old, name, value)
        await session.flush()
        if self._clock_value is not None:
            self._clock_value = clock
        clock = await self._clock(session)
        changed = {f.call_id for f in facts}
        callbacks: dict[str, list[tuple[CallFact, float]]] = {}
        # Every fact of the batch's clients in a statement or two, rather than a few per call.
        by_key, by_client = await self._facts_of(session, keys, clients)
        relinked: list[dict[str, Any]] = []
        for key in sorted(keys):
            days |= self._relink_client(
                key, clock, callbacks.setdefault(key, []), changed, by_key.get(key, []), relinked
            )
        if relinked:
            # Every client's changed facts in one executemany, not a round trip per client.
            await session.execute(
                update(_FACTS)
                .where(_FACTS.c.call_id == bindparam("b_call_id"))
                .values({n: bindparam(n) for n in _LINKED}),
                relinked,
            )
        cards, leads = await self._load_leads(session, clients)
        lead_facts: dict[int, LeadFact | None] = {}
        for client_id in sorted(clients):
            days |= await self._refresh_lead(
                session, client_id, cards.get(client_id), leads.get(client_id), by_client.get(client_id, []), lead_facts
            )
        days |= await self._close_windows(session, clock, changed)
        await session.flush()
        read = await self.days.update(session, days, changed, lead_facts)
        if self.on_commit:
            self._after_commit(session, await self._outcomes(session, written, facts, callbacks, read))

    async def _load_facts(self, session: AsyncSession, call_ids: Sequence[int]) -> dict[int, CallFactRow]:
        """The stored facts of these calls by call id, in a statement or two (absent: not stored yet)."""
        ids = sorted(set(call_ids))
        found: dict[int, CallFactRow] = {}
        for chunk in chunks(ids):
            rows = await session.scalars(select(CallFactRow).where(CallFactRow.call_id.in_(chunk)))
            found.update((r.call_id, r) for r in rows)
        return found

    async def _facts_of(
        self, session: AsyncSession, keys: Iterable[str], client_ids: Iterable[int]
    ) -> tuple[dict[str, list[Any]], dict[int, list[Any]]]:
        """Stored fact rows of these client keys and of these cards, grouped by each.

        Mostly the same rows (a card's calls share its key): read together, once.
        """
        wanted_keys, wanted_ids = sorted(set(keys)), sorted(set(client_ids))
        by_key: dict[str, list[Any]] = defaultdict(list)
        by_client: dict[int, list[Any]] = defaultdict(list)
        key_set, id_set = set(wanted_keys), set(wanted_ids)
        for some_keys, some_ids in zip_longest(chunks(wanted_keys), chunks(wanted_ids), fillvalue=()):
            rows = await session.execute(
                select(_FACTS).where(_FACTS.c.client_key.in_(some_keys) | _FACTS.c.client_id.in_(some_ids))
            )
            for row in rows:
                if row.client_key in key_set:
                    by_key[row.client_key].append(row)
                if row.client_id in id_set:
                    by_client[row.client_id].append(row)
        return by_key, by_client

    async def _load_leads(
        self, session: AsyncSession, client_ids: Iterable[int]
    ) -> tuple[dict[int, Any], dict[int, LeadRow]]:
        """The cards (is_lead, created_at only) and lead rows of these clients by client id."""
        ids = sorted(set(client_ids))
        cards: dict[int, Any] = {}
        leads: dict[int, LeadRow] = {}
        for chunk in chunks(ids):
            cards.update(
                (c.id, c)
                for c in await session.execute(
                    select(Client.id, Client.is_lead, Client.created_at).where(Client.id.in_(chunk))
                )
            )
            leads.update(
                (r.client_id, r) for r in await session.scalars(select(LeadRow).where(LeadRow.client_id.in_(chunk)))
            )
        return cards, leads

    async def _outcomes(
        self,
        session: AsyncSession,
        written: Sequence[tuple[Any, Any, bool]],
        facts: list[CallFact],
        callbacks: dict[str, list[tuple[CallFact, float]]],
        read: dict[int, CallFact | None],
    ) -> list[tuple[_Outcome, bool]]:
        """Each call as now stored (linked to its callback, or still open), with the callbacks it settled.

        ``read``: facts read from the store since the batch's last change, by call id.
        """
        stored = dict(read)
        missing = [f.call_id for f in facts if f.call_id not in read]
        if missing:
            stored.update(await self.days.read_facts(session, missing))
        # A client's new callbacks go with that client's last call of the batch.
        last_of_key = {f.client_key: i for i, f in enumerate(facts) if f.client_key is not None}
        outcomes: list[tuple[_Outcome, bool]] = []
        for i, ((_row, _finished, is_new), fact) in enumerate(zip(written, facts, strict=True)):
            outcome = _Outcome(fact=stored.get(fact.call_id) or fact)
            if fact.client_key is not None and last_of_key[fact.client_key] == i:
                outcome.new_callbacks = callbacks.get(fact.client_key, [])
            outcomes.append((outcome, is_new))
        return outcomes

    async def rebuild(self, session: AsyncSession, speech: SpeechSource | None = None) -> int:
        """Recompute every fact and figure from the calls and clients tables; return the calls seen.

        Speech figures come from ``speech`` (the analytics domain's reader); without
        one, the parts the facts held are kept.
        """
        await self._lock(session)
        self._forget_on_rollback(session)
        self._forget(session.sync_session)
        if speech is None:
            kept = await held_parts(session)
        else:
            kept = dict(await speech(session, None))
        for table in (ManagerHourRow, ManagerDayRow, LeadRow, CallFactRow):
            await session.execute(delete(table))
        rows = (await session.execute(select(table_of(Call)))).all()
        facts = [fact_from_call(r) for r in rows]
        clock = max((f.ended_at for f in facts), default=0.0)
        by_client: dict[str, list[CallFact]] = defaultdict(list)
        for f in facts:
            if f.client_key:
                by_client[f.client_key].append(f)
        for group in by_client.values():
            link_callbacks(group, self.settings, clock)
        if facts:
            await session.execute(
                insert(CallFactRow),
                [{**_fact_values(f, self.settings), **kept.get(f.call_id, NOT_MEASURED).values()} for f in facts],
            )
        days = {local_day(f.started_at, self.settings.zone) for f in facts}
        client_ids = {f.client_id for f in facts if f.client_id is not None}
        cards, leads = await self._load_leads(session, client_ids)
        for client_id in sorted(client_ids):
            days |= await self._refresh_lead(session, client_id, cards.get(client_id), leads.get(client_id))
        self._clock_value = None
        for day in sorted(days):
            await self.recompute_day(session, day)
        return len(facts)

    async def recompute_day(self, session: AsyncSession, day: date) -> None:
        """Rewrite one business day's figures (per manager, per hour, department) from the stored facts."""
        await session.flush()
        self._forget_on_rollback(session)
        await self.days.recompute(session, day)

    # ------------------------------------------------------------------ parts

    async def _lock(self, session: AsyncSession) -> None:
        # SQLite has one writer at a time already (CallWriter begins IMMEDIATE).
        await lock_figures(session)

    async def _clock(self, session: AsyncSession) -> float:
        """The latest end of any call known: the store's notion of now.

        Asked of the store once, then kept: a call's fact only ever moves it on
        (a call written again with another end has it asked for again).
        """
        if self._clock_value is None:
            self._clock_value = float(await session.scalar(select(func.max(CallFactRow.ended_at))) or 0.0)
        return self._clock_value

    def _forget_on_rollback(self, session: AsyncSession) -> None:
        """What is held in memory was changed in this transaction: a rollback must drop it."""
        sync = session.sync_session
        if not event.contains(sync, "after_rollback", self._forget):
            event.listen(sync, "after_rollback", self._forget)

    def _forget(self, _session: Session) -> None:
        self._clock_value = None
        self.days.forget()

    def _relink_client(
        self,
        key: str,
        clock: float,
        new_callbacks: list[tuple[CallFact, float]],
        changed: set[int],
        rows: Sequence[Any],
        updates: list[dict[str, Any]],
    ) -> set[date]:
        """Re-find callbacks of one client's missed calls (``rows``: its stored facts); return the days changed.

        The facts that changed are added to ``updates`` (plain rows, and only the changed
        ones: a client may have many calls), for the caller to write back.
        """
        facts = [fact_from_row(r) for r in rows]
        link_callbacks(facts, self.settings, clock)
        days: set[date] = set()
        for row, fact in zip(rows, facts, strict=True):
            before = tuple(getattr(row, n) for n in _LINKED)
            after = tuple(getattr(fact, n) for n in _LINKED)
            if before == after:
                continue
            updates.append({"b_call_id": fact.call_id, **{n: getattr(fact, n) for n in _LINKED}})
            days.add(row.day)
            changed.add(fact.call_id)
            if fact.callback_call_id is not None and fact.callback_call_id != before[0] and fact.callback_s is not None:
                new_callbacks.append((fact, fact.callback_s))
        return days

    async def _refresh_lead(
        self,
        session: AsyncSession,
        client_id: int,
        client: Any,
        old: LeadRow | None,
        rows: Sequence[Any] | None = None,
        leads: dict[int, LeadFact | None] | None = None,
    ) -> set[date]:
        """Recompute a lead's speed-to-lead facts; return its days.

        ``client`` and ``old``: its card (is_lead, created_at) and stored lead row, if any;
        ``rows``: its stored facts, if read; ``leads``: where to note the lead as now stored (None: none).
        """
        days: set[date] = set()
        if old is not None:
            days.add(old.day)
        lead: LeadFact | None = None
        if client is not None and client.is_lead:
            if rows is None:
                rows = (await session.execute(select(_FACTS).where(_FACTS.c.client_id == client_id))).all()
            lead = lead_fact(client_id, client.created_at.timestamp(), [fact_from_row(r) for r in rows])
        if leads is not None:
            leads[client_id] = lead
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
        return days

    async def _close_windows(self, session: AsyncSession, clock: float, changed: set[int]) -> set[date]:
        """Missed callers whose callback window the calls have moved past are lost."""
        # One branch per status, each a range of ix_kpi_call_facts_open_windows: with "status IN"
        # PostgreSQL may, lacking statistics, filter every open fact of the index instead.
        due = clock - self.settings.lost_lead_after_s
        branches = [
            select(_FACTS.c.call_id, _FACTS.c.day).where(
                _FACTS.c.lost.is_(None),
                _FACTS.c.direction == INBOUND,
                _FACTS.c.status == status,
                _FACTS.c.ended_at <= due,
            )
            for status in sorted(UNANSWERED_INBOUND)
        ]
        rows = (await session.execute(union_all(*branches))).all()
        ids = sorted(call_id for call_id, _day in rows)
        for chunk in chunks(ids):
            await session.execute(update(_FACTS).where(_FACTS.c.call_id.in_(chunk)).values(lost=True))
        changed.update(ids)
        return {day for _call_id, day in rows}

    def _after_commit(self, session: AsyncSession, outcomes: list[tuple[_Outcome, bool]]) -> None:
        def fire(_session: Session) -> None:
            for outcome, is_new in outcomes:
                for callback in self.on_commit:
                    try:
                        callback(outcome.fact, outcome.new_callbacks, is_new)
                    except Exception:  # a broken dashboard must not stop call writing
                        log.exception("KPI commit listener failed")

        event.listen(session.sync_session, "after_commit", fire, once=True)
