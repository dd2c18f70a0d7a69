"""The calls (or clients) behind each figure, by the figure's own definition.

Every counted figure is made by a predicate of ``pbxbridge.kpi.definitions`` (``counts_*``);
its drill-down reads the same stored facts the figure was tallied from (the business days
asked for) and keeps those the same predicate accepts.  So the list has exactly as many rows
as the figure: a per-call figure lists its calls, a per-client one (lost leads, clients
reached) one row per client and business day (its latest counted call stands for it), the
lead figures their lead cards.  Figures that are no count (talk time, speed of answer,
service level, ...) list the calls they are computed over.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.clients.tables import Client
from pbxbridge.kpi.calendar import day_bounds, local_day, utc
from pbxbridge.kpi.callbacks import waiting_on
from pbxbridge.kpi.days import fact_from_row, lead_from_row
from pbxbridge.kpi.definitions import (
    DEPARTMENT,
    DEPARTMENT_ONLY,
    FIGURE_NAMES,
    INBOUND,
    UNANSWERED_INBOUND,
    CallFact,
    Counts,
    KpiSettings,
    LeadFact,
    counts_abandoned,
    counts_answered,
    counts_callbacks,
    counts_callbacks_pending,
    counts_calls_in,
    counts_calls_internal,
    counts_calls_out,
    counts_client_reached,
    counts_lead,
    counts_lead_answered,
    counts_lead_attempt,
    counts_lead_reached,
    counts_lost,
    counts_missed,
    counts_missed_unanswered,
    counts_offered,
    counts_outbound_answered,
    counts_short_abandoned,
    counts_speech,
    counts_stop_phrase,
    counts_talk_measured,
    counts_talked,
    counts_transferred_in,
    counts_within_sl,
    counts_worked,
    person_of,
)
from pbxbridge.kpi.tables import CallFactRow, LeadRow

CALLS, CLIENTS, LEADS = "calls", "clients", "leads"
# The wallboard's figure of missed callers still to call back; not a column of the KPI store.
NOT_CALLED_BACK = "missed_not_called_back"


@dataclass(frozen=True, slots=True)
class Listing:
    """How one figure's rows are found: calls a predicate accepts, one per client, or lead cards."""

    unit: str  # calls | clients | leads
    calls: Counts | None = None
    leads: Callable[[LeadFact, str], bool] | None = None
    # The figure is the number of rows (False: computed over them, e.g. a mean).
    is_count: bool = True
    # Not tallied in the store: read per day by pbxbridge.kpi.callbacks (the wallboard's figure).
    waiting: bool = False


def _calls(pred: Counts, is_count: bool = True) -> Listing:
    return Listing(CALLS, calls=pred, is_count=is_count)


def _leads(pred: Callable[[LeadFact, str], bool], is_count: bool = True) -> Listing:
    return Listing(LEADS, leads=pred, is_count=is_count)


# Every figure that has rows behind it, by its name in FIGURES.
LISTINGS: dict[str, Listing] = {
    "calls_in": _calls(counts_calls_in),
    "calls_out": _calls(counts_calls_out),
    "calls_internal": _calls(counts_calls_internal),
    "answered": _calls(counts_answered),
    "missed": _calls(counts_missed),
    "missed_unanswered": _calls(counts_missed_unanswered),
    "transferred_in": _calls(counts_transferred_in),
    "outbound_answered": _calls(counts_outbound_answered),
    "reach_rate": _calls(counts_calls_out, is_count=False),
    "outbound_norm_share": _calls(counts_calls_out, is_count=False),
    "talk_s": _calls(counts_talked, is_count=False),
    "talk_s_mean": _calls(counts_talked, is_count=False),
    "talk_s_median": _calls(counts_talked, is_count=False),
    "talk_s_p95": _calls(counts_talked, is_count=False),
    "unique_clients_reached": Listing(CLIENTS, calls=counts_client_reached),
    "first_call_at": _calls(counts_worked, is_count=False),
    "last_call_at": _calls(counts_worked, is_count=False),
    "callbacks": _calls(counts_callbacks),
    "callback_s_mean": _calls(counts_callbacks, is_count=False),
    "callback_s_median": _calls(counts_callbacks, is_count=False),
    "callback_s_p95": _calls(counts_callbacks, is_count=False),
    "callbacks_pending": _calls(counts_callbacks_pending),
    "lost_leads": Listing(CLIENTS, calls=counts_lost),
    "new_leads": _leads(counts_lead),
    "new_leads_reached": _leads(counts_lead_reached),
    "new_leads_reached_share": _leads(counts_lead, is_count=False),
    "speed_to_lead_s_median": _leads(counts_lead_attempt, is_count=False),
    "speed_to_lead_s_p95": _leads(counts_lead_attempt, is_count=False),
    "speed_to_lead_answered_s_median": _leads(counts_lead_answered, is_count=False),
    "speed_to_lead_answered_s_p95": _leads(counts_lead_answered, is_count=False),
    "offered": _calls(counts_offered),
    "queue_answered": _calls(lambda f, who, s: counts_answered(f, DEPARTMENT, s)),
    "abandoned": _calls(counts_abandoned),
    "short_abandoned": _calls(counts_short_abandoned),
    "asa_s": _calls(lambda f, who, s: counts_answered(f, DEPARTMENT, s), is_count=False),
    "wait_s_median": _calls(lambda f, who, s: counts_answered(f, DEPARTMENT, s), is_count=False),
    "wait_s_p95": _calls(lambda f, who, s: counts_answered(f, DEPARTMENT, s), is_count=False),
    "longest_wait_s": _calls(counts_offered, is_count=False),
    "answered_within_sl": _calls(counts_within_sl),
    "service_level": _calls(counts_within_sl, is_count=False),
    # Speech analytics: the calls checked (items and adherence are counted over them), those
    # with a stop phrase, and the two-channel calls talk share is measured on.
    "speech_calls": _calls(counts_speech),
    "speech_items": _calls(counts_speech, is_count=False),
    "speech_items_passed": _calls(counts_speech, is_count=False),
    "script_adherence": _calls(counts_speech, is_count=False),
    "stop_phrase_calls": _calls(counts_stop_phrase),
    "talk_calls": _calls(counts_talk_measured),
    "manager_talk_s": _calls(counts_talk_measured, is_count=False),
    "client_talk_s": _calls(counts_talk_measured, is_count=False),
    "talk_share": _calls(counts_talk_measured, is_count=False),
    # The wallboard's "missed today, not called back": one row per caller (pbxbridge.kpi.callbacks).
    NOT_CALLED_BACK: Listing(CLIENTS, waiting=True),
}
# The counted figures of the KPI store: for each, figure == number of drill-down rows.
COUNTED: tuple[str, ...] = tuple(name for name in FIGURE_NAMES if name in LISTINGS and LISTINGS[name].is_count)


class DrillDownError(ValueError):
    """A drill-down that cannot be made: unknown figure, or a department figure asked of a manager."""


@dataclass(slots=True)
class DrillDown:
    """The rows behind one figure over some business days."""

    kpi: str
    unit: str
    # Calls (per-call figures, and one per client and day for per-client ones), newest first.
    call_ids: list[int] = field(default_factory=list)
    # Per-client figures: how many counted calls each listed call stands for (call id -> calls).
    calls_per_row: dict[int, int] = field(default_factory=dict)
    # Lead figures: the lead cards, newest arrival first.
    client_ids: list[int] = field(default_factory=list)

    @property
    def count(self) -> int:
        """How many rows: the figure, for a counted one."""
        return len(self.client_ids) if self.unit == LEADS else len(self.call_ids)


def listing_of(kpi: str, manager: str | None) -> Listing:
    """The listing of a figure for a manager (None: the department); DrillDownError if there is none."""
    listing = LISTINGS.get(kpi)
    if listing is None:
        raise DrillDownError(f"unknown figure: {kpi}")
    if manager is not None and (kpi in DEPARTMENT_ONLY or listing.waiting):
        raise DrillDownError(f"{kpi} is a figure of the department, not of a manager")
    return listing


def _who(manager: str | None) -> str:
    return DEPARTMENT if manager is None else manager


async def _facts(session: AsyncSession, day_from: date, day_to: date) -> list[CallFact]:
    """The stored facts of the business days, as the figures were tallied from them."""
    rows = await session.execute(
        select(CallFactRow.__table__).where(CallFactRow.day >= day_from, CallFactRow.day <= day_to)
    )
    return [fact_from_row(r) for r in rows]


async def _read_leads(session: AsyncSession, day_from: date, day_to: date, settings: KpiSettings) -> list[LeadFact]:
    """The leads the days' figures count: lead rows, and lead cards made then that nobody called yet."""
    leads = [
        lead_from_row(r)
        for r in await session.execute(
            select(LeadRow.__table__).where(LeadRow.day >= day_from, LeadRow.day <= day_to)
        )
    ]
    start, _ = day_bounds(day_from, settings.zone)
    _, end = day_bounds(day_to, settings.zone)
    called = select(CallFactRow.call_id).where(CallFactRow.client_id == Client.id).exists()
    bare = await session.execute(
        select(Client.id, Client.created_at).where(
            Client.is_lead.is_(True), Client.created_at >= utc(start), Client.created_at < utc(end), ~called
        )
    )
    leads.extend(LeadFact(client_id=cid, arrived_at=created.timestamp()) for cid, created in bare)
    return leads


async def drill_down(
    session: AsyncSession,
    kpi: str,
    day_from: date,
    day_to: date,
    manager: str | None = None,
    settings: KpiSettings | None = None,
) -> DrillDown:
    """The rows behind ``kpi`` for business days day_from..day_to, of ``manager`` (None: the department)."""
    settings = settings or KpiSettings()
    listing = listing_of(kpi, manager)
    who = _who(manager)
    out = DrillDown(kpi=kpi, unit=listing.unit)
    if listing.leads is not None:
        accepts = listing.leads
        leads = [lead for lead in await _read_leads(session, day_from, day_to, settings) if accepts(lead, who)]
        leads.sort(key=lambda lead: (lead.arrived_at, lead.client_id), reverse=True)
        out.client_ids = [lead.client_id for lead in leads]
        return out
    if listing.waiting:
        return await _waiting(session, out, day_from, day_to)
    assert listing.calls is not None
    pred = listing.calls
    facts = [f for f in await _facts(session, day_from, day_to) if pred(f, who, settings)]
    facts.sort(key=lambda f: (f.started_at, f.call_id), reverse=True)
    if listing.unit == CALLS:
        out.call_ids = [f.call_id for f in facts]
        return out
    # One row per client and business day, as the days' figures count them; newest call first.
    seen: dict[tuple[date, str], int] = {}
    for f in facts:
        key = (local_day(f.started_at, settings.zone), person_of(f))
        if key in seen:
            out.calls_per_row[seen[key]] += 1
            continue
        seen[key] = f.call_id
        out.call_ids.append(f.call_id)
        out.calls_per_row[f.call_id] = 1
    return out


async def _waiting(session: AsyncSession, out: DrillDown, day_from: date, day_to: date) -> DrillDown:
    """Clients missed on each day and not reached since, newest day first: the latest waiting call stands for each."""
    # Only the days with a caller nobody answered (a period may span years of quiet days).
    days = await session.scalars(
        select(CallFactRow.day)
        .where(
            CallFactRow.day >= day_from,
            CallFactRow.day <= day_to,
            CallFactRow.direction == INBOUND,
            CallFactRow.status.in_(sorted(UNANSWERED_INBOUND)),
        )
        .distinct()
    )
    for day in sorted(days.all(), reverse=True):
        for client in reversed(await waiting_on(session, day)):
            out.call_ids.append(client.call_ids[-1])
            out.calls_per_row[client.call_ids[-1]] = len(client.call_ids)
    return out


def drill_summary(d: DrillDown) -> dict[str, Any]:
    """The drill-down's figure and rows in plain values (the CLI's JSON)."""
    return {"kpi": d.kpi, "unit": d.unit, "count": d.count, "call_ids": d.call_ids, "client_ids": d.client_ids}
