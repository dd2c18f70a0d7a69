"""A business day's figures kept up to date without going over the whole day for each call.

The day's facts and leads are held in memory, tallied in small slots: a local
hour split by call (or card) id into ``PARTS`` parts. When calls change some
facts, only the slots those facts fall in are tallied again; an hour's figures
are the merge of its slots' tallies and the day's the merge of its hours'
(exact: see ``PeriodTally``). So a call costs about the same whether the day
has a hundred calls or ten thousand, even if they all come in one hour. Only
the rows of the day and of the hours that changed are rewritten.

What is held is checked against the store before each use: the day's rows of
``kpi_manager_day`` (ids and figures) must be those last written from memory.
Anything else that rewrote the day (``kpi rebuild``, another writer) left other
rows, and the day is then read again from the store. A transaction that rolls
back forgets everything held (see ``KpiRecorder``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import delete, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.clients.tables import Client
from pbxbridge.kpi.definitions import (
    FIGURE_NAMES,
    CallFact,
    KpiSettings,
    LeadFact,
    PeriodTally,
    day_bounds,
    figures_of,
    local_day,
    local_hour,
    merge_periods,
    tally_period,
    utc,
)
from pbxbridge.kpi.tables import CallFactRow, LeadRow, ManagerDayRow, ManagerHourRow

# Days held at once: today and yesterday (a callback after midnight), and one more.
DAYS_HELD = 3
# Slots per hour: a changed fact has 1/PARTS of its hour's calls tallied again,
# and an hour is the merge of PARTS tallies (each a handful of managers).
PARTS = 32

# (local hour, part): where in its day a fact or lead is tallied.
Slot = tuple[int, int]

_FACTS = CallFactRow.__table__
_LEADS = LeadRow.__table__
_DAY_ROWS = ManagerDayRow.__table__
_HOUR_ROWS = ManagerHourRow.__table__


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


def lead_from_row(row: Any) -> LeadFact:
    """A stored lead row back as a LeadFact."""
    return LeadFact(
        client_id=row.client_id,
        arrived_at=row.arrived_at,
        first_attempt_at=row.first_attempt_at,
        first_attempt_by=row.first_attempt_by,
        first_answered_at=row.first_answered_at,
        first_answered_by=row.first_answered_by,
        reached=row.reached,
    )


@dataclass(slots=True)
class _Day:
    """One day as last written: its facts and leads by hour, their tallies, and its stored rows."""

    facts: dict[Slot, dict[int, CallFact]] = field(default_factory=dict)  # slot -> call_id -> fact
    leads: dict[Slot, dict[int, LeadFact]] = field(default_factory=dict)  # slot -> client_id -> lead
    # Lead cards of the day nobody has called and who have not called in (client_id -> lead).
    bare_leads: dict[int, LeadFact] = field(default_factory=dict)
    slots: dict[Slot, PeriodTally] = field(default_factory=dict)
    hours: dict[int, PeriodTally] = field(default_factory=dict)
    # The day's kpi_manager_day rows as written: what the store must still hold.
    stored: list[tuple[Any, ...]] = field(default_factory=list)


class DayFigures:
    """Keeps days' figures in the KPI store; one per KpiRecorder."""

    def __init__(self, settings: KpiSettings) -> None:
        self.settings = settings
        self._days: OrderedDict[date, _Day] = OrderedDict()
        # Where each fact and lead held is: its day and slot.
        self._fact_at: dict[int, tuple[date, Slot]] = {}
        self._lead_at: dict[int, tuple[date, Slot]] = {}

    def forget(self) -> None:
        """Drop everything held (a transaction that changed it rolled back)."""
        self._days.clear()
        self._fact_at.clear()
        self._lead_at.clear()

    async def update(
        self, session: AsyncSession, days: Iterable[date], call_ids: Iterable[int], client_ids: Iterable[int]
    ) -> None:
        """Rewrite the figures of ``days`` after the facts ``call_ids`` and the leads of ``client_ids`` changed.

        The changes must be flushed. Days not held, or no longer as written,
        are read whole from the store; the others take only the changed rows.
        """
        wanted = set(days)
        if not wanted:
            return
        # Every day held is checked: a changed fact may leave one of them for a day asked for.
        fresh = {day for day in wanted | set(self._days) if not await self._still_stored(session, day)}
        for day in fresh:
            self._drop(day)
        touched: dict[date, set[Slot]] = {day: set() for day in wanted}
        if self._days:
            self._apply_facts(await self.read_facts(session, call_ids), touched)
            self._apply_leads(await self._read_leads(session, client_ids), touched)
        # A held day a changed fact left is rewritten too (the caller names it anyway).
        for day in sorted(touched):
            if day not in self._days:
                await self._load(session, day)
                await self._write(session, day, None)
            else:
                await self._refresh_bare_leads(session, day, touched[day])
                await self._write(session, day, touched[day])
            self._days.move_to_end(day)
        while len(self._days) > DAYS_HELD:
            self._drop(next(iter(self._days)))

    async def recompute(self, session: AsyncSession, day: date) -> None:
        """Read one day whole from the store and rewrite all its figures."""
        self._drop(day)
        await self._load(session, day)
        await self._write(session, day, None)
        while len(self._days) > DAYS_HELD:
            self._drop(next(iter(self._days)))

    # ------------------------------------------------------------------ reading

    async def _still_stored(self, session: AsyncSession, day: date) -> bool:
        state = self._days.get(day)
        return state is not None and state.stored == await self._stored_rows(session, day)

    async def _stored_rows(self, session: AsyncSession, day: date) -> list[tuple[Any, ...]]:
        rows = await session.execute(
            select(_DAY_ROWS).where(_DAY_ROWS.c.day == day).order_by(_DAY_ROWS.c.manager, _DAY_ROWS.c.id)
        )
        return [tuple(r) for r in rows]

    async def _load(self, session: AsyncSession, day: date) -> None:
        # Plain rows, not ORM objects: a busy day holds thousands of calls.
        state = _Day()
        rows = await session.execute(select(_FACTS).where(_FACTS.c.day == day))
        for r in rows:
            fact = fact_from_row(r)
            slot = self._fact_slot(fact)
            state.facts.setdefault(slot, {})[fact.call_id] = fact
            self._fact_at[fact.call_id] = (day, slot)
        for r in await session.execute(select(_LEADS).where(_LEADS.c.day == day)):
            lead = lead_from_row(r)
            slot = self._lead_slot(lead)
            state.leads.setdefault(slot, {})[lead.client_id] = lead
            self._lead_at[lead.client_id] = (day, slot)
        state.bare_leads = await self._leads_without_calls(session, day)
        self._days[day] = state
        slots = {*state.facts, *state.leads, *(self._lead_slot(lead) for lead in state.bare_leads.values())}
        for slot in slots:
            self._tally(state, slot)
        for hour in {h for h, _part in slots}:
            self._merge_hour(state, hour)

    async def read_facts(self, session: AsyncSession, call_ids: Iterable[int]) -> dict[int, CallFact | None]:
        """The stored facts of these calls (None: no fact stored), read as plain rows."""
        ids = sorted(set(call_ids))
        found: dict[int, CallFact | None] = dict.fromkeys(ids)
        for start in range(0, len(ids), 500):
            rows = await session.execute(select(_FACTS).where(_FACTS.c.call_id.in_(ids[start : start + 500])))
            found.update((r.call_id, fact_from_row(r)) for r in rows)
        return found

    async def _read_leads(self, session: AsyncSession, client_ids: Iterable[int]) -> dict[int, LeadFact | None]:
        ids = sorted(set(client_ids))
        found: dict[int, LeadFact | None] = dict.fromkeys(ids)
        for start in range(0, len(ids), 500):
            rows = await session.execute(select(_LEADS).where(_LEADS.c.client_id.in_(ids[start : start + 500])))
            found.update((r.client_id, lead_from_row(r)) for r in rows)
        return found

    async def _leads_without_calls(self, session: AsyncSession, day: date) -> dict[int, LeadFact]:
        """Lead cards made that day that nobody has called and who have not called in."""
        start, end = day_bounds(day, self.settings.zone)
        called = select(CallFactRow.call_id).where(CallFactRow.client_id == Client.id).exists()
        rows = await session.execute(
            select(Client.id, Client.created_at).where(
                Client.is_lead.is_(True),
                Client.created_at >= utc(start),
                Client.created_at < utc(end),
                ~called,
            )
        )
        return {cid: LeadFact(client_id=cid, arrived_at=created.timestamp()) for cid, created in rows}

    # ----------------------------------------------------------------- changing

    def _fact_slot(self, fact: CallFact) -> Slot:
        return local_hour(fact.started_at, self.settings.zone), fact.call_id % PARTS

    def _lead_slot(self, lead: LeadFact) -> Slot:
        return local_hour(lead.arrived_at, self.settings.zone), lead.client_id % PARTS

    def _apply_facts(self, facts: dict[int, CallFact | None], touched: dict[date, set[Slot]]) -> None:
        for call_id, fact in facts.items():
            was = self._fact_at.pop(call_id, None)
            if was is not None and was[0] in self._days:
                self._days[was[0]].facts.get(was[1], {}).pop(call_id, None)
                touched.setdefault(was[0], set()).add(was[1])
            if fact is None:
                continue
            day = _fact_day(fact, self.settings)
            state = self._days.get(day)
            if state is None:
                continue
            slot = self._fact_slot(fact)
            state.facts.setdefault(slot, {})[call_id] = fact
            self._fact_at[call_id] = (day, slot)
            touched.setdefault(day, set()).add(slot)

    def _apply_leads(self, leads: dict[int, LeadFact | None], touched: dict[date, set[Slot]]) -> None:
        for client_id, lead in leads.items():
            was = self._lead_at.pop(client_id, None)
            if was is not None and was[0] in self._days:
                self._days[was[0]].leads.get(was[1], {}).pop(client_id, None)
                touched.setdefault(was[0], set()).add(was[1])
            if lead is None:
                continue
            day = _lead_day(lead, self.settings)
            state = self._days.get(day)
            if state is None:
                continue
            slot = self._lead_slot(lead)
            state.leads.setdefault(slot, {})[client_id] = lead
            self._lead_at[client_id] = (day, slot)
            touched.setdefault(day, set()).add(slot)

    async def _refresh_bare_leads(self, session: AsyncSession, day: date, touched: set[Slot]) -> None:
        state = self._days[day]
        bare = await self._leads_without_calls(session, day)
        if bare != state.bare_leads:
            changed = bare.keys() ^ state.bare_leads.keys()
            changed |= {cid for cid in bare.keys() & state.bare_leads.keys() if bare[cid] != state.bare_leads[cid]}
            touched.update(
                self._lead_slot(lead) for cid in changed for lead in (bare.get(cid), state.bare_leads.get(cid)) if lead
            )
            state.bare_leads = bare

    def _tally(self, state: _Day, slot: Slot) -> None:
        facts = list(state.facts.get(slot, {}).values())
        leads = [*state.leads.get(slot, {}).values(),
                 *(lead for lead in state.bare_leads.values() if self._lead_slot(lead) == slot)]
        if facts or leads:
            state.slots[slot] = tally_period(facts, leads, self.settings)
        else:
            state.slots.pop(slot, None)

    def _merge_hour(self, state: _Day, hour: int) -> None:
        parts = [state.slots[(hour, part)] for part in range(PARTS) if (hour, part) in state.slots]
        if parts:
            state.hours[hour] = merge_periods(parts)
        else:
            state.hours.pop(hour, None)

    def _drop(self, day: date) -> None:
        state = self._days.pop(day, None)
        if state is None:
            return
        for by_id in state.facts.values():
            for call_id in by_id:
                self._fact_at.pop(call_id, None)
        for by_id in state.leads.values():
            for client_id in by_id:
                self._lead_at.pop(client_id, None)

    # ------------------------------------------------------------------ writing

    async def _write(self, session: AsyncSession, day: date, slots: set[Slot] | None) -> None:
        """Rewrite the day's rows and those of the hours of ``slots`` (None: every hour) from the tallies."""
        state = self._days[day]
        if slots is None:
            await session.execute(delete(_HOUR_ROWS).where(_HOUR_ROWS.c.day == day))
            hours = set(state.hours)
        else:
            for slot in slots:
                self._tally(state, slot)
            hours = {hour for hour, _part in slots}
            for hour in hours:
                self._merge_hour(state, hour)
            if hours:
                await session.execute(
                    delete(_HOUR_ROWS).where(_HOUR_ROWS.c.day == day, _HOUR_ROWS.c.hour.in_(sorted(hours)))
                )
        hour_rows = [
            {"day": day, "hour": hour, "manager": m, **_stored(fig)}
            for hour in sorted(hours)
            if hour in state.hours
            for m, fig in figures_of(state.hours[hour], self.settings).items()
        ]
        if hour_rows:
            await session.execute(insert(ManagerHourRow), hour_rows)
        await session.execute(delete(_DAY_ROWS).where(_DAY_ROWS.c.day == day))
        daily = figures_of(merge_periods(state.hours[h] for h in sorted(state.hours)), self.settings)
        if daily:
            await session.execute(
                insert(ManagerDayRow), [{"day": day, "manager": m, **_stored(fig)} for m, fig in daily.items()]
            )
        state.stored = await self._stored_rows(session, day)


def _stored(figures: dict[str, Any]) -> dict[str, Any]:
    return {name: figures.get(name) for name in FIGURE_NAMES}


def _fact_day(fact: CallFact, settings: KpiSettings) -> date:
    return local_day(fact.started_at, settings.zone)


def _lead_day(lead: LeadFact, settings: KpiSettings) -> date:
    return local_day(lead.arrived_at, settings.zone)
