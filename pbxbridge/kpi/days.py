"""A business day's figures kept up to date without going over the whole day for each call.

The day's facts and leads are held in memory, tallied in small slots: a local
hour split by call (or card) id into ``PARTS`` parts. When calls change some
facts, only the slots those facts fall in are tallied again; an hour's figures
are the merge of its slots' tallies and the day's the merge of its hours'
(exact: see ``PeriodTally``). So a call costs about the same whether the day
has a hundred calls or ten thousand, even if they all come in one hour. Only
the rows of the day and of the hours that changed are rewritten.

Rows are written only where figures changed, and what was written is held:
what is held is checked against the store before each use, the held days'
rows of ``kpi_manager_day`` (ids and figures) read in one statement must be
those last written from memory.
Anything else that rewrote the day (``kpi rebuild``, another writer) left other
rows, and the day is then read again from the store. A transaction that rolls
back forgets everything held (see ``KpiRecorder``).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import date
from functools import cache
from typing import Any, TypeVar

from sqlalchemy import bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.clients.tables import Client
from pbxbridge.db.base import table_of
from pbxbridge.db.chunks import chunks
from pbxbridge.kpi.calendar import day_bounds, local_day, local_hour, utc
from pbxbridge.kpi.definitions import (
    FIGURE_NAMES,
    CallFact,
    KpiSettings,
    LeadFact,
    PeriodTally,
    figures_of,
    merge_periods,
    tally_period,
)
from pbxbridge.kpi.tables import CallFactRow, LeadRow, ManagerDayRow, ManagerHourRow

# Days held at once: today and yesterday (a callback after midnight), and one more.
DAYS_HELD = 3
# Slots per hour: a changed fact has 1/PARTS of its hour's calls tallied again,
# and an hour is the merge of PARTS tallies (each a handful of managers).
PARTS = 32

# (local hour, part): where in its day a fact or lead is tallied.
Slot = tuple[int, int]

_FACTS = table_of(CallFactRow)
_LEADS = table_of(LeadRow)
_DAY_ROWS = table_of(ManagerDayRow)
_HOUR_ROWS = table_of(ManagerHourRow)


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
        speech_items=row.speech_items,
        speech_items_passed=row.speech_items_passed or 0,
        stop_phrase=bool(row.stop_phrase),
        manager_talk_s=row.manager_talk_s,
        client_talk_s=row.client_talk_s,
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
    # The same by slot: a slot's tally takes its own, not a pass over the day's.
    bare_slots: dict[Slot, list[LeadFact]] = field(default_factory=dict)
    slots: dict[Slot, PeriodTally] = field(default_factory=dict)
    hours: dict[int, PeriodTally] = field(default_factory=dict)
    # The day's kpi_manager_day rows as written, manager -> (id, figures): what the store must still hold.
    day_rows: dict[str, tuple[int, tuple[Any, ...]]] = field(default_factory=dict)
    # Its kpi_manager_hour rows as written, (hour, manager) -> figures.
    hour_rows: dict[tuple[int, str], tuple[Any, ...]] = field(default_factory=dict)
    # The merged tally of every hour but these, unchanged since: calls mostly change the
    # current hour, and the day is then that hour merged with the rest as it stood.
    rest: tuple[frozenset[int], PeriodTally] | None = None


_Item = TypeVar("_Item", CallFact, LeadFact)


def _place(
    items: dict[int, _Item | None],
    at: dict[int, tuple[date, Slot]],
    days: dict[date, _Day],
    kept: Callable[[_Day], dict[Slot, dict[int, _Item]]],
    day_of: Callable[[_Item], date],
    slot_of: Callable[[_Item], Slot],
    touched: dict[date, set[Slot]],
) -> None:
    """Move each fact or lead (None: gone) to its day's slot among the held days, noting the slots it left and entered."""
    for key, item in items.items():
        was = at.pop(key, None)
        if was is not None and was[0] in days:
            kept(days[was[0]]).get(was[1], {}).pop(key, None)
            touched.setdefault(was[0], set()).add(was[1])
        if item is None:
            continue
        day = day_of(item)
        state = days.get(day)
        if state is None:
            continue
        slot = slot_of(item)
        kept(state).setdefault(slot, {})[key] = item
        at[key] = (day, slot)
        touched.setdefault(day, set()).add(slot)


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
        self,
        session: AsyncSession,
        days: Iterable[date],
        call_ids: Iterable[int],
        leads: dict[int, LeadFact | None],
    ) -> dict[int, CallFact | None]:
        """Rewrite the figures of ``days`` after the facts ``call_ids`` and ``leads`` changed.

        ``leads``: the leads of the clients concerned as now stored, by client id (None: no lead).

        The changes must be flushed. Days not held, or no longer as written,
        are read whole from the store; the others take only the changed rows.
        Returns the facts of ``call_ids`` it read from the store, if it read them.
        """
        wanted = set(days)
        read: dict[int, CallFact | None] = {}
        if not wanted:
            return read
        # Every day held is checked: a changed fact may leave one of them for a day asked for.
        for day in await self._rewritten(session):
            self._drop(day)
        touched: dict[date, set[Slot]] = {day: set() for day in wanted}
        if self._days:
            read = await self.read_facts(session, call_ids)
            self._apply_facts(read, touched)
            self._apply_leads(leads, touched)
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
        return read

    async def recompute(self, session: AsyncSession, day: date) -> None:
        """Read one day whole from the store and rewrite all its figures."""
        self._drop(day)
        await self._load(session, day)
        await self._write(session, day, None)
        while len(self._days) > DAYS_HELD:
            self._drop(next(iter(self._days)))

    # ------------------------------------------------------------------ reading

    async def _rewritten(self, session: AsyncSession) -> list[date]:
        """Held days whose kpi_manager_day rows are no longer those last written from memory."""
        if not self._days:
            return []
        found: dict[date, dict[str, tuple[int, tuple[Any, ...]]]] = {day: {} for day in self._days}
        # One statement for every day held: a handful of rows per manager and day.
        rows = await session.execute(select(_DAY_ROWS).where(_DAY_ROWS.c.day.in_(sorted(self._days))))
        for r in rows:
            found[r.day][r.manager] = (r.id, _figure_values(r))
        return [day for day, state in self._days.items() if state.day_rows != found[day]]

    async def _read_rows(self, session: AsyncSession, day: date, state: _Day) -> None:
        """The day's figure rows as the store holds them now, to be brought up to date from there."""
        state.day_rows = {
            r.manager: (r.id, _figure_values(r))
            for r in await session.execute(select(_DAY_ROWS).where(_DAY_ROWS.c.day == day))
        }
        state.hour_rows = {
            (r.hour, r.manager): _figure_values(r)
            for r in await session.execute(select(_HOUR_ROWS).where(_HOUR_ROWS.c.day == day))
        }

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
        self._set_bare_leads(state, await self._leads_without_calls(session, day))
        await self._read_rows(session, day, state)
        self._days[day] = state
        slots = {*state.facts, *state.leads, *state.bare_slots}
        for slot in slots:
            self._tally(state, slot)
        for hour in {h for h, _part in slots}:
            self._merge_hour(state, hour)

    async def read_facts(self, session: AsyncSession, call_ids: Iterable[int]) -> dict[int, CallFact | None]:
        """The stored facts of these calls (None: no fact stored), read as plain rows."""
        ids = sorted(set(call_ids))
        found: dict[int, CallFact | None] = dict.fromkeys(ids)
        for chunk in chunks(ids):
            rows = await session.execute(select(_FACTS).where(_FACTS.c.call_id.in_(chunk)))
            found.update((r.call_id, fact_from_row(r)) for r in rows)
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
        _place(facts, self._fact_at, self._days, lambda day: day.facts,
               lambda fact: _fact_day(fact, self.settings), self._fact_slot, touched)

    def _apply_leads(self, leads: dict[int, LeadFact | None], touched: dict[date, set[Slot]]) -> None:
        _place(leads, self._lead_at, self._days, lambda day: day.leads,
               lambda lead: _lead_day(lead, self.settings), self._lead_slot, touched)

    async def _refresh_bare_leads(self, session: AsyncSession, day: date, touched: set[Slot]) -> None:
        state = self._days[day]
        bare = await self._leads_without_calls(session, day)
        if bare != state.bare_leads:
            changed = bare.keys() ^ state.bare_leads.keys()
            changed |= {cid for cid in bare.keys() & state.bare_leads.keys() if bare[cid] != state.bare_leads[cid]}
            touched.update(
                self._lead_slot(lead) for cid in changed for lead in (bare.get(cid), state.bare_leads.get(cid)) if lead
            )
            self._set_bare_leads(state, bare)

    def _set_bare_leads(self, state: _Day, bare: dict[int, LeadFact]) -> None:
        state.bare_leads = bare
        state.bare_slots = {}
        for lead in bare.values():
            state.bare_slots.setdefault(self._lead_slot(lead), []).append(lead)

    def _tally(self, state: _Day, slot: Slot) -> None:
        facts = list(state.facts.get(slot, {}).values())
        leads = [*state.leads.get(slot, {}).values(), *state.bare_slots.get(slot, ())]
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
        for by_client in state.leads.values():
            for client_id in by_client:
                self._lead_at.pop(client_id, None)

    # ------------------------------------------------------------------ writing

    def _day_tally(self, state: _Day, hours: frozenset[int] | None) -> PeriodTally:
        """The day's tally, after the hours ``hours`` (None: any) changed; exact in any merge order."""
        if hours is None:
            state.rest = None
            return merge_periods(state.hours[h] for h in sorted(state.hours))
        if state.rest is None or state.rest[0] != hours:
            state.rest = (hours, merge_periods(t for h, t in sorted(state.hours.items()) if h not in hours))
        return merge_periods([state.rest[1], *(state.hours[h] for h in sorted(hours) if h in state.hours)])

    async def _write(self, session: AsyncSession, day: date, slots: set[Slot] | None) -> None:
        """Bring the day's rows and those of the hours of ``slots`` (None: every hour) up to the tallies.

        Only rows whose figures changed are written: a call changes a few
        managers' figures, and most of the day's rows stay as they are.
        """
        state = self._days[day]
        if slots is None:
            hours = set(state.hours) | {hour for hour, _manager in state.hour_rows}
        else:
            for slot in slots:
                self._tally(state, slot)
            hours = {hour for hour, _part in slots}
            for hour in hours:
                self._merge_hour(state, hour)
        hourly = {
            (hour, m): _figure_tuple(fig)
            for hour in sorted(hours)
            if hour in state.hours
            for m, fig in figures_of(state.hours[hour], self.settings).items()
        }
        held = {key: figures for key, figures in state.hour_rows.items() if key[0] in hours}
        await _sync(session, _HOUR_ROWS, day, held, hourly)
        for key in held:
            del state.hour_rows[key]
        state.hour_rows.update(hourly)
        merged = figures_of(self._day_tally(state, None if slots is None else frozenset(hours)), self.settings)
        daily = {(m,): _figure_tuple(fig) for m, fig in merged.items()}
        ids = {m: row_id for m, (row_id, _figures) in state.day_rows.items()}
        if await _sync(session, _DAY_ROWS, day, {(m,): f for m, (_id, f) in state.day_rows.items()}, daily):
            # New rows' ids, for the check that the store still holds what was written.
            rows = await session.execute(select(_DAY_ROWS.c.manager, _DAY_ROWS.c.id).where(_DAY_ROWS.c.day == day))
            ids = {manager: row_id for manager, row_id in rows}
        state.day_rows = {m: (ids[m], figures) for (m,), figures in daily.items()}


async def _sync(
    session: AsyncSession,
    table: Any,
    day: date,
    held: dict[tuple[Any, ...], tuple[Any, ...]],
    wanted: dict[tuple[Any, ...], tuple[Any, ...]],
) -> bool:
    """Make ``table``'s rows of ``day`` with the keys of ``held`` hold ``wanted``; return whether rows were added.

    Keys are (manager,) for days and (hour, manager) for hours; rows are found by
    their key (unique per day), so rows rewritten with other ids are still found.
    """
    names, delete_row, update_row = _statements(table.name)

    def key_params(key: tuple[Any, ...]) -> dict[str, Any]:
        return {f"k_{n}": v for n, v in zip(names, key, strict=True)}

    gone = [key_params(key) for key in held if key not in wanted]
    changed = [
        {**key_params(key), **dict(zip(FIGURE_NAMES, figures, strict=True))}
        for key, figures in wanted.items()
        if key in held and held[key] != figures
    ]
    new = [
        {"day": day, **dict(zip(names, key, strict=True)), **dict(zip(FIGURE_NAMES, figures, strict=True))}
        for key, figures in wanted.items()
        if key not in held
    ]
    if gone:
        await session.execute(delete_row, [{"k_day": day, **params} for params in gone])
    if changed:
        await session.execute(update_row, [{"k_day": day, **params} for params in changed])
    if new:
        await session.execute(insert(table), new)
    return bool(new)


@cache
def _statements(table_name: str) -> tuple[list[str], Any, Any]:
    """A figures table's key columns besides the day, and its delete and update of one row by key.

    Built once: an update naming every figure costs more to build than to run.
    """
    table = _DAY_ROWS if table_name == _DAY_ROWS.name else _HOUR_ROWS
    names = [c.name for c in table.c if c.name not in ("id", "day", *FIGURE_NAMES)]
    by_key = [table.c.day == bindparam("k_day"), *(table.c[n] == bindparam(f"k_{n}") for n in names)]
    return (
        names,
        delete(table).where(*by_key),
        update(table).where(*by_key).values({n: bindparam(n) for n in FIGURE_NAMES}),
    )


def _figure_tuple(figures: dict[str, Any]) -> tuple[Any, ...]:
    return tuple(figures.get(name) for name in FIGURE_NAMES)


def _figure_values(row: Any) -> tuple[Any, ...]:
    """A stored row's figures, in FIGURE_NAMES order."""
    mapping = row._mapping
    return tuple(mapping[name] for name in FIGURE_NAMES)


def _fact_day(fact: CallFact, settings: KpiSettings) -> date:
    return local_day(fact.started_at, settings.zone)


def _lead_day(lead: LeadFact, settings: KpiSettings) -> date:
    return local_day(lead.arrived_at, settings.zone)
