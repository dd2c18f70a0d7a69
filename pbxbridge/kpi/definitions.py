"""Every KPI formula in one place: call facts in, daily and hourly figures out.

Pure: no database, no clock.  The store (``pbxbridge.kpi.store``) keeps the
facts and the figures; docs/KPI.md explains each figure to a sales head.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from pbxbridge.calls.model import is_outside_number
from pbxbridge.kpi.calendar import local_hour

# The key under which department totals are stored; a manager's extension
# is never empty, and a NULL would not take part in a unique key.
DEPARTMENT = ""

INBOUND = "inbound"
OUTBOUND = "outbound"
INTERNAL = "internal"
ANSWERED = "answered"
# A caller nobody answered: hung up in the queue or dropped by the PBX.
UNANSWERED_INBOUND = frozenset({"missed", "abandoned"})
FAILED = "failed"


@dataclass(frozen=True, slots=True)
class KpiSettings:
    """The ``[kpi]`` section of the configuration."""

    timezone: str = "Europe/Moscow"
    lost_lead_after_s: float = 900.0
    short_abandon_s: float = 5.0
    service_level_s: float = 20.0
    daily_outbound_norm: int = 30
    # A lead-at-risk alert goes out this long before the caller counts as lost.
    alert_before_s: float = 300.0

    @property
    def zone(self) -> ZoneInfo:
        """The business day's time zone."""
        return ZoneInfo(self.timezone)

    @classmethod
    def from_config(cls, config: Any) -> KpiSettings:
        """Take the figures from a ``Config`` (its ``kpi`` section), defaults where absent."""
        section = getattr(config, "kpi", config)
        defaults = cls()
        return cls(
            timezone=str(getattr(section, "timezone", defaults.timezone)),
            lost_lead_after_s=float(getattr(section, "lost_lead_after_s", defaults.lost_lead_after_s)),
            short_abandon_s=float(getattr(section, "short_abandon_s", defaults.short_abandon_s)),
            service_level_s=float(getattr(section, "service_level_s", defaults.service_level_s)),
            daily_outbound_norm=int(getattr(section, "daily_outbound_norm", defaults.daily_outbound_norm)),
            alert_before_s=float(getattr(section, "alert_before_s", defaults.alert_before_s)),
        )


# ---------------------------------------------------------------- the figures


@dataclass(frozen=True, slots=True)
class Figure:
    """One reported number: its name (in JSON, CSV and the tables), kind and unit."""

    name: str
    # count | seconds | ratio | time (Unix seconds, shown as local ISO time)
    kind: str
    unit: str
    summary: str


def _f(name: str, kind: str, summary: str, unit: str | None = None) -> Figure:
    default = {"count": "calls", "seconds": "s", "ratio": "0..1", "time": "local time"}[kind]
    return Figure(name, kind, unit or default, summary)


FIGURES: tuple[Figure, ...] = (
    _f("calls_in", "count", "inbound calls that rang the manager or that the manager answered"),
    _f("calls_out", "count", "outbound calls placed (attempts)"),
    _f("calls_internal", "count", "internal calls placed or received"),
    _f("answered", "count", "inbound calls answered"),
    _f("missed", "count", "inbound calls that rang the manager and that the manager did not answer"),
    _f("missed_unanswered", "count", "missed calls that nobody else answered either"),
    _f("transferred_in", "count", "inbound calls transferred to the manager"),
    _f("outbound_answered", "count", "outbound calls the client answered"),
    _f("reach_rate", "ratio", "outbound_answered / calls_out"),
    _f("talk_s", "seconds", "total talk time of answered client calls"),
    _f("talk_s_mean", "seconds", "mean talk time of answered client calls"),
    _f("talk_s_median", "seconds", "median talk time of answered client calls"),
    _f("talk_s_p95", "seconds", "95th percentile talk time of answered client calls"),
    _f("unique_clients_reached", "count", "distinct clients in answered client calls", "clients"),
    _f("first_call_at", "time", "start of the first call answered or placed"),
    _f("last_call_at", "time", "end of the last call answered or placed"),
    _f("outbound_norm", "count", "the daily outbound norm"),
    _f("outbound_norm_share", "ratio", "calls_out / outbound_norm", "0..1 and above"),
    _f("managers_meeting_norm", "count", "managers whose calls_out reached the norm (department only)", "managers"),
    _f("callbacks", "count", "missed callers called back"),
    _f("callback_s_mean", "seconds", "mean time from a missed call's end to the callback"),
    _f("callback_s_median", "seconds", "median callback time"),
    _f("callback_s_p95", "seconds", "95th percentile callback time"),
    _f("callbacks_pending", "count", "missed callers not called back whose window is still open"),
    _f("lost_leads", "count", "clients missed and not called back within kpi.lost_lead_after_s", "clients"),
    _f("new_leads", "count", "new leads (cards flagged as leads) that came in", "leads"),
    _f("new_leads_reached", "count", "new leads with an answered call since they came in", "leads"),
    _f("new_leads_reached_share", "ratio", "new_leads_reached / new_leads"),
    _f("speed_to_lead_s_median", "seconds", "median time from a lead's arrival to the first outbound call"),
    _f("speed_to_lead_s_p95", "seconds", "95th percentile speed to lead (first attempt)"),
    _f("speed_to_lead_answered_s_median", "seconds", "median time from a lead's arrival to the first answered outbound call"),
    _f("speed_to_lead_answered_s_p95", "seconds", "95th percentile speed to lead (first answered)"),
    _f("offered", "count", "inbound calls offered to the department"),
    _f("queue_answered", "count", "offered calls answered"),
    _f("abandoned", "count", "offered calls unanswered after waiting at least kpi.short_abandon_s"),
    _f("short_abandoned", "count", "offered calls unanswered within kpi.short_abandon_s"),
    _f("asa_s", "seconds", "average speed of answer: mean wait of answered calls"),
    _f("wait_s_median", "seconds", "median wait of answered calls"),
    _f("wait_s_p95", "seconds", "95th percentile wait of answered calls"),
    _f("longest_wait_s", "seconds", "longest wait of any offered call, answered or not"),
    _f("answered_within_sl", "count", "offered calls answered within kpi.service_level_s"),
    _f("service_level", "ratio", "answered_within_sl / (queue_answered + abandoned)"),
    # Speech analytics (docs/ANALYTICS.md): summable parts, and their ratios.
    _f("speech_calls", "count", "the manager's calls checked against a checklist"),
    _f("speech_items", "count", "checklist items checked on those calls", "items"),
    _f("speech_items_passed", "count", "checklist items passed on those calls", "items"),
    _f("script_adherence", "ratio", "speech_items_passed / speech_items"),
    _f("stop_phrase_calls", "count", "checked calls in which a stop phrase was said"),
    _f("talk_calls", "count", "two-channel calls whose talk was measured per side"),
    _f("manager_talk_s", "seconds", "the manager's own talk time on those calls"),
    _f("client_talk_s", "seconds", "the client's own talk time on those calls"),
    _f("talk_share", "ratio", "manager_talk_s / (manager_talk_s + client_talk_s)"),
)
FIGURE_NAMES: tuple[str, ...] = tuple(f.name for f in FIGURES)
FIGURE_KIND: dict[str, str] = {f.name: f.kind for f in FIGURES}

# Figures of the department's inbound line as a whole; a manager's row leaves them empty.
DEPARTMENT_ONLY = frozenset(
    {
        "managers_meeting_norm", "new_leads", "new_leads_reached", "new_leads_reached_share",
        "offered", "queue_answered", "abandoned", "short_abandoned", "asa_s", "wait_s_median",
        "wait_s_p95", "longest_wait_s", "answered_within_sl", "service_level",
    }
)


# ------------------------------------------------------------------ the facts


@dataclass(slots=True)
class CallFact:
    """What the KPIs need of one finished call, plus what later calls taught us about it."""

    call_id: int
    direction: str
    status: str
    started_at: float
    ended_at: float
    answered_at: float | None
    wait_s: float
    talk_s: float
    # "c:<client id>" or, for a number with no card, "n:<E.164>"; None for internal calls.
    client_key: str | None = None
    client_id: int | None = None
    # Who answered an inbound call or placed an outbound or internal one.
    manager: str | None = None
    callee: str | None = None
    rang: tuple[str, ...] = ()
    transferred_to: tuple[str, ...] = ()
    queues: tuple[str, ...] = ()
    # Filled for an unanswered inbound call by link_callbacks.
    callback_call_id: int | None = None
    callback_by: str | None = None
    callback_s: float | None = None
    # None while the callback window is still open.
    lost: bool | None = None
    # Speech analytics, fed by the analytics domain (pbxbridge.kpi.speech): None until the call is checked.
    speech_items: int | None = None
    speech_items_passed: int = 0
    stop_phrase: bool = False
    # Each side's own talk time; None unless a two-channel recording measured it.
    manager_talk_s: float | None = None
    client_talk_s: float | None = None

    @property
    def answered(self) -> bool:
        """Whether anyone answered."""
        return self.status == ANSWERED

    @property
    def unanswered_inbound(self) -> bool:
        """An inbound caller nobody answered: one to call back."""
        return self.direction == INBOUND and self.status in UNANSWERED_INBOUND

    @property
    def dialled_client(self) -> bool:
        """An outbound call that rang out to the client, answered or not.

        A ``failed`` one never got that far (the manager's own handset did not
        pick up the click-to-call, or the PBX could not place it): it is no
        attempt to reach the client, so no callback, no speed to lead, no
        outbound call in the figures (docs/CALLS.md).
        """
        return self.direction == OUTBOUND and self.status != FAILED

    @property
    def colleagues_transferred_to(self) -> tuple[str, ...]:
        """Managers the call was transferred to (an outside number is nobody's figure)."""
        return tuple(t for t in self.transferred_to if not is_outside_number(t))


def client_key(client_id: int | None, client_number: str | None) -> str | None:
    """Identify a client by card when there is one, else by number."""
    if client_id is not None:
        return f"c:{client_id}"
    if client_number:
        return f"n:{client_number}"
    return None


def fact_from_finished(call: Any, call_id: int, client_id: int | None = None) -> CallFact:
    """Build a fact from a tracker's FinishedCall (or anything shaped like it)."""
    direction = str(call.direction)
    number = None if direction == INTERNAL else call.client_number
    return CallFact(
        call_id=call_id,
        direction=direction,
        status=str(call.status),
        started_at=float(call.started_at),
        ended_at=float(call.ended_at),
        answered_at=None if call.answered_at is None else float(call.answered_at),
        wait_s=float(call.wait_s),
        talk_s=float(call.talk_s),
        client_key=client_key(client_id, number),
        client_id=client_id,
        manager=call.manager,
        callee=call.callee,
        rang=tuple(call.rang or ()),
        transferred_to=tuple(call.transferred_to or ()),
        queues=tuple(call.queues or ()),
    )


# ---------------------------------------------------------------- statistics


def percentile(values: Sequence[float], q: float) -> float | None:
    """Linear interpolation between closest ranks (numpy's default); None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = q * (len(ordered) - 1)
    low = math.floor(rank)
    high = math.ceil(rank)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def mean(values: Sequence[float]) -> float | None:
    """Arithmetic mean; None when empty."""
    # fsum: the same figure whatever order the database returned the calls in.
    return math.fsum(values) / len(values) if values else None


def ratio(part: int, whole: int) -> float | None:
    """part / whole; None when there is nothing to divide by."""
    return part / whole if whole else None


# ------------------------------------------------------------- linking calls


def link_callbacks(facts: Iterable[CallFact], settings: KpiSettings, clock: float) -> None:
    """Find each unanswered inbound call's callback among one client's calls; mark lost ones.

    ``clock`` is the latest end of any call known (event time, never the
    wall clock): a window is closed once the calls have moved past it.
    """
    calls = list(facts)
    outbound = sorted((f for f in calls if f.dialled_client), key=lambda f: (f.started_at, f.call_id))
    for fact in calls:
        if not fact.unanswered_inbound:
            continue
        # The next outbound call to this client by anyone, once the caller had hung up.
        callback = next((o for o in outbound if o.started_at >= fact.ended_at), None)
        if callback is None:
            fact.callback_call_id = fact.callback_by = fact.callback_s = None
        else:
            fact.callback_call_id = callback.call_id
            fact.callback_by = callback.manager
            fact.callback_s = callback.started_at - fact.ended_at
        fact.lost = lost_state(fact.ended_at, fact.callback_s, settings, clock)


def lost_state(ended_at: float, callback_s: float | None, settings: KpiSettings, clock: float) -> bool | None:
    """True: lost; False: called back in time; None: not called back yet, window still open."""
    if callback_s is not None and callback_s <= settings.lost_lead_after_s:
        return False
    if callback_s is not None or ended_at + settings.lost_lead_after_s <= clock:
        return True
    return None


@dataclass(slots=True)
class LeadFact:
    """A new lead: when it came in and how fast the department got to it."""

    client_id: int
    arrived_at: float
    first_attempt_at: float | None = None
    first_attempt_by: str | None = None
    first_answered_at: float | None = None
    first_answered_by: str | None = None
    reached: bool = False

    @property
    def attempt_s(self) -> float | None:
        """Speed to lead: arrival to the first outbound call."""
        return None if self.first_attempt_at is None else self.first_attempt_at - self.arrived_at

    @property
    def answered_s(self) -> float | None:
        """Speed to lead: arrival to the first outbound call the lead answered."""
        return None if self.first_answered_at is None else self.first_answered_at - self.arrived_at


def lead_fact(client_id: int, created_at: float, calls: Iterable[CallFact]) -> LeadFact | None:
    """Speed to lead for one lead card; None when it is no inbound lead.

    A lead arrives when its card is made or when it first calls in, whichever
    is earlier.  A card first reached by an outbound call (a cold call, or a
    card the call itself created) is no lead that came in: None.
    """
    ordered = sorted(calls, key=lambda f: (f.started_at, f.call_id))
    first_inbound = next((f.started_at for f in ordered if f.direction == INBOUND), None)
    arrived = created_at if first_inbound is None else min(created_at, first_inbound)
    outbound = [f for f in ordered if f.dialled_client]
    if outbound and outbound[0].started_at <= arrived:
        return None
    lead = LeadFact(client_id=client_id, arrived_at=arrived)
    if outbound:
        lead.first_attempt_at = outbound[0].started_at
        lead.first_attempt_by = outbound[0].manager
    answered = next((f for f in outbound if f.answered), None)
    if answered is not None:
        lead.first_answered_at = answered.started_at
        lead.first_answered_by = answered.manager
    lead.reached = any(f.answered and f.started_at >= arrived for f in ordered)
    return lead


# ------------------------------------------------------- what each call counts for
#
# One predicate per counted figure: whether a call counts towards it for ``who``, a
# manager's extension or DEPARTMENT.  The tallies below count with these and nothing
# else, and the drill-down (``pbxbridge.kpi.drilldown``) lists the calls they accept:
# a figure and the list of calls behind it cannot disagree.

Counts = Callable[[CallFact, str, KpiSettings], bool]


def counts_calls_in(f: CallFact, who: str, s: KpiSettings) -> bool:
    """Inbound: the department's every caller; a manager's when their handset rang or they answered."""
    return f.direction == INBOUND and (who == DEPARTMENT or who in f.rang or f.manager == who)


def counts_answered(f: CallFact, who: str, s: KpiSettings) -> bool:
    """Inbound and answered (by this manager)."""
    return f.direction == INBOUND and f.answered and (who == DEPARTMENT or f.manager == who)


def counts_missed(f: CallFact, who: str, s: KpiSettings) -> bool:
    """Inbound the department did not answer; for a manager, one that rang them and they did not answer."""
    if f.direction != INBOUND:
        return False
    if who == DEPARTMENT:
        # The department missed every caller nobody answered, rung or not.
        return not f.answered
    # A blind transfer rings its target too; that ring was no miss.
    return not (f.answered and f.manager == who) and who in f.rang and who not in f.transferred_to


def counts_missed_unanswered(f: CallFact, who: str, s: KpiSettings) -> bool:
    """Missed, and nobody else answered either."""
    return counts_missed(f, who, s) and not f.answered


def counts_transferred_in(f: CallFact, who: str, s: KpiSettings) -> bool:
    """Inbound and transferred (to this manager)."""
    if f.direction != INBOUND:
        return False
    return bool(f.transferred_to) if who == DEPARTMENT else who in f.colleagues_transferred_to


def counts_calls_out(f: CallFact, who: str, s: KpiSettings) -> bool:
    """Outbound calls that rang out to the client (by this manager)."""
    return f.dialled_client and (who == DEPARTMENT or f.manager == who)


def counts_outbound_answered(f: CallFact, who: str, s: KpiSettings) -> bool:
    """Outbound calls the client answered."""
    return counts_calls_out(f, who, s) and f.answered


def counts_calls_internal(f: CallFact, who: str, s: KpiSettings) -> bool:
    """Internal calls (placed or received by this manager)."""
    return f.direction == INTERNAL and (who == DEPARTMENT or who in (f.manager, f.callee))


def counts_talked(f: CallFact, who: str, s: KpiSettings) -> bool:
    """Answered client calls: the talk time figures and the clients reached are made of these."""
    return counts_answered(f, who, s) or counts_outbound_answered(f, who, s)


def counts_client_reached(f: CallFact, who: str, s: KpiSettings) -> bool:
    """An answered client call with a client to count (a card or a number): clients reached are these calls' clients."""
    return f.client_key is not None and counts_talked(f, who, s)


def counts_worked(f: CallFact, who: str, s: KpiSettings) -> bool:
    """Calls answered or placed (the first and last call of the day are among these)."""
    if f.direction == INBOUND:
        return counts_answered(f, who, s)
    if f.direction == OUTBOUND:
        return who == DEPARTMENT or f.manager == who
    if f.direction == INTERNAL:
        return who == DEPARTMENT or f.manager == who or (f.callee == who and f.answered)
    return False


def counts_callbacks(f: CallFact, who: str, s: KpiSettings) -> bool:
    """Missed callers called back (by this manager)."""
    return f.unanswered_inbound and f.callback_s is not None and (who == DEPARTMENT or f.callback_by == who)


def counts_callbacks_pending(f: CallFact, who: str, s: KpiSettings) -> bool:
    """Missed callers not called back whose window is still open (that rang this manager)."""
    return f.unanswered_inbound and f.lost is None and (who == DEPARTMENT or who in f.rang)


def counts_lost(f: CallFact, who: str, s: KpiSettings) -> bool:
    """A lost caller's call; counts against everyone whose handset rang.  Lost leads are these calls' clients."""
    return f.unanswered_inbound and f.lost is True and (who == DEPARTMENT or who in f.rang)


def counts_offered(f: CallFact, who: str, s: KpiSettings) -> bool:
    """Inbound calls offered to the department."""
    return f.direction == INBOUND


def counts_short_abandoned(f: CallFact, who: str, s: KpiSettings) -> bool:
    """Callers who hang up within seconds mostly dialled by mistake: apart, and out of the service level."""
    return f.direction == INBOUND and not f.answered and f.wait_s < s.short_abandon_s


def counts_abandoned(f: CallFact, who: str, s: KpiSettings) -> bool:
    """Offered calls unanswered after waiting at least kpi.short_abandon_s."""
    return f.direction == INBOUND and not f.answered and f.wait_s >= s.short_abandon_s


def counts_within_sl(f: CallFact, who: str, s: KpiSettings) -> bool:
    """Offered calls answered within kpi.service_level_s."""
    return counts_answered(f, DEPARTMENT, s) and f.wait_s <= s.service_level_s


# Speech figures are the manager's who had the call (as the analytics domain reads them); a call
# nobody took has no script to follow.


def counts_speech(f: CallFact, who: str, s: KpiSettings) -> bool:
    """The manager's calls checked against a checklist."""
    return f.speech_items is not None and bool(f.manager) and (who == DEPARTMENT or f.manager == who)


def counts_stop_phrase(f: CallFact, who: str, s: KpiSettings) -> bool:
    """Checked calls in which a stop phrase was said (fewer is better)."""
    return counts_speech(f, who, s) and f.stop_phrase


def counts_talk_measured(f: CallFact, who: str, s: KpiSettings) -> bool:
    """Two-channel calls whose talk was measured per side: talk share is computed over these."""
    return (
        f.manager_talk_s is not None
        and f.client_talk_s is not None
        and bool(f.manager)
        and (who == DEPARTMENT or f.manager == who)
    )


def person_of(f: CallFact) -> str:
    """Whom a per-client figure counts: the client, or for a caller with no number, the call itself."""
    return f.client_key or f"call:{f.call_id}"


# ----------------------------------------------------------------- the figures


def _involved(fact: CallFact) -> set[str]:
    """Managers whose own figures this call may touch (every predicate above is false for the rest)."""
    people: set[str] = set()
    if fact.manager:
        people.add(fact.manager)
    if fact.direction == INBOUND:
        people.update(fact.rang)
        people.update(fact.colleagues_transferred_to)
    if fact.direction == INTERNAL and fact.callee:
        people.add(fact.callee)
    if fact.callback_by:
        people.add(fact.callback_by)
    return people


@dataclass(slots=True)
class _Tally:
    """Raw material of one manager's (or the department's) figures."""

    calls_in: int = 0
    calls_out: int = 0
    calls_internal: int = 0
    answered: int = 0
    missed: int = 0
    missed_unanswered: int = 0
    transferred_in: int = 0
    outbound_answered: int = 0
    talks: list[float] = field(default_factory=list)
    clients: set[str] = field(default_factory=set)
    first_call_at: float | None = None
    last_call_at: float | None = None
    callbacks: list[float] = field(default_factory=list)
    callbacks_pending: int = 0
    # Lost callers, one per client: a client who called three times and was never called back is one lost lead.
    lost: set[str] = field(default_factory=set)
    stl_attempt: list[float] = field(default_factory=list)
    stl_answered: list[float] = field(default_factory=list)
    speech_calls: int = 0
    speech_items: int = 0
    speech_items_passed: int = 0
    stop_phrase_calls: int = 0
    # Lists, summed with fsum: the same figure whichever order calls were merged in.
    manager_talks: list[float] = field(default_factory=list)
    client_talks: list[float] = field(default_factory=list)

    def worked(self, fact: CallFact) -> None:
        """The manager answered or placed this call (or took it internally)."""
        if self.first_call_at is None or fact.started_at < self.first_call_at:
            self.first_call_at = fact.started_at
        if self.last_call_at is None or fact.ended_at > self.last_call_at:
            self.last_call_at = fact.ended_at



def _add_call(t: _Tally, who: str, f: CallFact, s: KpiSettings) -> None:
    """Count one call towards ``who`` (a manager it involves, or DEPARTMENT), by the predicates above."""
    t.calls_in += counts_calls_in(f, who, s)
    t.answered += counts_answered(f, who, s)
    t.missed += counts_missed(f, who, s)
    t.missed_unanswered += counts_missed_unanswered(f, who, s)
    t.transferred_in += counts_transferred_in(f, who, s)
    t.calls_out += counts_calls_out(f, who, s)
    t.outbound_answered += counts_outbound_answered(f, who, s)
    t.calls_internal += counts_calls_internal(f, who, s)
    if counts_talked(f, who, s):
        t.talks.append(f.talk_s)
    if counts_client_reached(f, who, s):
        t.clients.add(person_of(f))
    if counts_worked(f, who, s):
        t.worked(f)
    if counts_callbacks(f, who, s) and f.callback_s is not None:
        t.callbacks.append(f.callback_s)
    t.callbacks_pending += counts_callbacks_pending(f, who, s)
    if counts_lost(f, who, s):
        t.lost.add(person_of(f))
    if counts_speech(f, who, s):
        t.speech_calls += 1
        t.speech_items += f.speech_items or 0
        t.speech_items_passed += f.speech_items_passed
        t.stop_phrase_calls += counts_stop_phrase(f, who, s)
    if counts_talk_measured(f, who, s):
        t.manager_talks.append(f.manager_talk_s or 0.0)
        t.client_talks.append(f.client_talk_s or 0.0)


def _tally_managers(facts: Sequence[CallFact], leads: Sequence[LeadFact], s: KpiSettings) -> dict[str, _Tally]:
    """Every involved manager's tally, in one pass over the calls and leads."""
    tallies: dict[str, _Tally] = {}
    for f in facts:
        for ext in _involved(f):
            _add_call(tallies.setdefault(ext, _Tally()), ext, f, s)
    for lead in leads:
        by = lead.first_attempt_by
        if by and counts_lead_attempt(lead, by) and lead.attempt_s is not None:
            tallies.setdefault(by, _Tally()).stl_attempt.append(lead.attempt_s)
        by = lead.first_answered_by
        if by and counts_lead_answered(lead, by) and lead.answered_s is not None:
            tallies.setdefault(by, _Tally()).stl_answered.append(lead.answered_s)
    return tallies


def _tally_department(facts: Sequence[CallFact], leads: Sequence[LeadFact], s: KpiSettings) -> _Tally:
    t = _Tally()
    for f in facts:
        _add_call(t, DEPARTMENT, f, s)
    t.stl_attempt = [lead.attempt_s for lead in leads if counts_lead_attempt(lead, DEPARTMENT) and lead.attempt_s is not None]
    t.stl_answered = [
        lead.answered_s for lead in leads if counts_lead_answered(lead, DEPARTMENT) and lead.answered_s is not None
    ]
    return t


# Leads: the department's figures count every lead that arrived; speed to lead is the first caller's.


def counts_lead(lead: LeadFact, who: str) -> bool:
    """A new lead that came in (the department's only)."""
    return who == DEPARTMENT


def counts_lead_reached(lead: LeadFact, who: str) -> bool:
    """A new lead with an answered call since it came in."""
    return who == DEPARTMENT and lead.reached


def counts_lead_attempt(lead: LeadFact, who: str) -> bool:
    """A lead someone called: speed to lead (first attempt) is measured on these."""
    if lead.attempt_s is None:
        return False
    return who == DEPARTMENT or (bool(who) and lead.first_attempt_by == who)


def counts_lead_answered(lead: LeadFact, who: str) -> bool:
    """A lead that answered an outbound call: speed to lead (first answered) is measured on these."""
    if lead.answered_s is None:
        return False
    return who == DEPARTMENT or (bool(who) and lead.first_answered_by == who)


def _figures(t: _Tally, norm: int) -> dict[str, Any]:
    total_talk = math.fsum(t.talks)
    return {
        "calls_in": t.calls_in,
        "calls_out": t.calls_out,
        "calls_internal": t.calls_internal,
        "answered": t.answered,
        "missed": t.missed,
        "missed_unanswered": t.missed_unanswered,
        "transferred_in": t.transferred_in,
        "outbound_answered": t.outbound_answered,
        "reach_rate": ratio(t.outbound_answered, t.calls_out),
        "talk_s": total_talk,
        "talk_s_mean": mean(t.talks),
        "talk_s_median": percentile(t.talks, 0.5),
        "talk_s_p95": percentile(t.talks, 0.95),
        "unique_clients_reached": len(t.clients),
        "first_call_at": t.first_call_at,
        "last_call_at": t.last_call_at,
        "outbound_norm": norm,
        "outbound_norm_share": ratio(t.calls_out, norm),
        "callbacks": len(t.callbacks),
        "callback_s_mean": mean(t.callbacks),
        "callback_s_median": percentile(t.callbacks, 0.5),
        "callback_s_p95": percentile(t.callbacks, 0.95),
        "callbacks_pending": t.callbacks_pending,
        "lost_leads": len(t.lost),
        "speed_to_lead_s_median": percentile(t.stl_attempt, 0.5),
        "speed_to_lead_s_p95": percentile(t.stl_attempt, 0.95),
        "speed_to_lead_answered_s_median": percentile(t.stl_answered, 0.5),
        "speed_to_lead_answered_s_p95": percentile(t.stl_answered, 0.95),
        **_speech_figures(t),
    }


def _speech_figures(t: _Tally) -> dict[str, Any]:
    manager_s, client_s = math.fsum(t.manager_talks), math.fsum(t.client_talks)
    talked = manager_s + client_s
    return {
        "speech_calls": t.speech_calls,
        "speech_items": t.speech_items,
        "speech_items_passed": t.speech_items_passed,
        "script_adherence": ratio(t.speech_items_passed, t.speech_items),
        "stop_phrase_calls": t.stop_phrase_calls,
        "talk_calls": len(t.manager_talks),
        "manager_talk_s": manager_s,
        "client_talk_s": client_s,
        # None, not 0: no call measured says nothing of who talked.
        "talk_share": manager_s / talked if talked else None,
    }


@dataclass(slots=True)
class _Queue:
    """Raw material of the department's inbound line figures."""

    offered: int = 0
    answered_waits: list[float] = field(default_factory=list)
    short: int = 0
    unanswered: int = 0
    within: int = 0
    longest_wait_s: float | None = None


def _tally_queue(facts: Iterable[CallFact], settings: KpiSettings) -> _Queue:
    q = _Queue()
    for f in facts:
        if not counts_offered(f, DEPARTMENT, settings):
            continue
        q.offered += 1
        if q.longest_wait_s is None or f.wait_s > q.longest_wait_s:
            q.longest_wait_s = f.wait_s
        if counts_answered(f, DEPARTMENT, settings):
            q.answered_waits.append(f.wait_s)
            q.within += counts_within_sl(f, DEPARTMENT, settings)
        else:
            q.unanswered += 1
            q.short += counts_short_abandoned(f, DEPARTMENT, settings)
    return q


def _queue_figures(q: _Queue) -> dict[str, Any]:
    abandoned = q.unanswered - q.short
    return {
        "offered": q.offered,
        "queue_answered": len(q.answered_waits),
        "abandoned": abandoned,
        "short_abandoned": q.short,
        "asa_s": mean(q.answered_waits),
        "wait_s_median": percentile(q.answered_waits, 0.5),
        "wait_s_p95": percentile(q.answered_waits, 0.95),
        "longest_wait_s": q.longest_wait_s,
        "answered_within_sl": q.within,
        "service_level": ratio(q.within, len(q.answered_waits) + abandoned),
    }


def queue_figures(facts: Iterable[CallFact], settings: KpiSettings) -> dict[str, Any]:
    """Offered, answered, abandoned, speed of answer and service level of inbound calls."""
    return _queue_figures(_tally_queue(facts, settings))


def _lead_figures(leads: int, reached: int) -> dict[str, Any]:
    return {"new_leads": leads, "new_leads_reached": reached, "new_leads_reached_share": ratio(reached, leads)}


@dataclass(slots=True)
class PeriodTally:
    """Raw material of one period's figures.

    Every part is a count, a min/max or a list/set of values, so the tallies of
    the hours of a day merge into exactly the day's tally: a day's figures are
    made from its hours' without going over its calls again, and medians and
    percentiles stay exact.
    """

    managers: dict[str, _Tally] = field(default_factory=dict)
    # None when the period has neither calls nor leads (no department row then).
    department: _Tally | None = None
    queue: _Queue = field(default_factory=_Queue)
    leads: int = 0
    leads_reached: int = 0


def tally_period(facts: Sequence[CallFact], leads: Sequence[LeadFact], settings: KpiSettings) -> PeriodTally:
    """The raw material of one period's figures (see ``period_figures``)."""
    return PeriodTally(
        managers=_tally_managers(facts, leads, settings),
        department=_tally_department(facts, leads, settings) if facts or leads else None,
        queue=_tally_queue(facts, settings),
        leads=sum(1 for lead in leads if counts_lead(lead, DEPARTMENT)),
        leads_reached=sum(1 for lead in leads if counts_lead_reached(lead, DEPARTMENT)),
    )


def _merge_tally(into: _Tally, t: _Tally) -> None:
    into.calls_in += t.calls_in
    into.calls_out += t.calls_out
    into.calls_internal += t.calls_internal
    into.answered += t.answered
    into.missed += t.missed
    into.missed_unanswered += t.missed_unanswered
    into.transferred_in += t.transferred_in
    into.outbound_answered += t.outbound_answered
    into.talks.extend(t.talks)
    into.clients |= t.clients
    if t.first_call_at is not None and (into.first_call_at is None or t.first_call_at < into.first_call_at):
        into.first_call_at = t.first_call_at
    if t.last_call_at is not None and (into.last_call_at is None or t.last_call_at > into.last_call_at):
        into.last_call_at = t.last_call_at
    into.callbacks.extend(t.callbacks)
    into.callbacks_pending += t.callbacks_pending
    into.lost |= t.lost
    into.stl_attempt.extend(t.stl_attempt)
    into.stl_answered.extend(t.stl_answered)
    into.speech_calls += t.speech_calls
    into.speech_items += t.speech_items
    into.speech_items_passed += t.speech_items_passed
    into.stop_phrase_calls += t.stop_phrase_calls
    into.manager_talks.extend(t.manager_talks)
    into.client_talks.extend(t.client_talks)


def merge_periods(periods: Iterable[PeriodTally]) -> PeriodTally:
    """The tally of the periods taken together (the hours of a day: the day)."""
    out = PeriodTally()
    for p in periods:
        for ext, t in p.managers.items():
            _merge_tally(out.managers.setdefault(ext, _Tally()), t)
        if p.department is not None:
            if out.department is None:
                out.department = _Tally()
            _merge_tally(out.department, p.department)
        q, into = p.queue, out.queue
        into.offered += q.offered
        into.answered_waits.extend(q.answered_waits)
        into.short += q.short
        into.unanswered += q.unanswered
        into.within += q.within
        if q.longest_wait_s is not None and (into.longest_wait_s is None or q.longest_wait_s > into.longest_wait_s):
            into.longest_wait_s = q.longest_wait_s
        out.leads += p.leads
        out.leads_reached += p.leads_reached
    return out


def figures_of(tally: PeriodTally, settings: KpiSettings) -> dict[str, dict[str, Any]]:
    """A period's figures from its tally: per manager, and DEPARTMENT for the totals."""
    norm = settings.daily_outbound_norm
    rows: dict[str, dict[str, Any]] = {}
    for ext in sorted(tally.managers):
        row = _figures(tally.managers[ext], norm)
        row.update({name: None for name in DEPARTMENT_ONLY})
        rows[ext] = row
    if tally.department is not None:
        department = _figures(tally.department, norm * len(tally.managers))
        department["managers_meeting_norm"] = sum(
            1 for r in rows.values() if norm and r["calls_out"] >= norm
        )
        department.update(_queue_figures(tally.queue))
        department.update(_lead_figures(tally.leads, tally.leads_reached))
        rows[DEPARTMENT] = department
    return rows


def period_figures(
    facts: Sequence[CallFact], leads: Sequence[LeadFact], settings: KpiSettings
) -> dict[str, dict[str, Any]]:
    """Figures of one period (a day or an hour): per manager, and DEPARTMENT for the totals.

    ``facts`` are the calls that started in the period (a missed call carries its
    callback, wherever that fell); ``leads`` the leads that arrived in it.
    """
    return figures_of(tally_period(facts, leads, settings), settings)


def hour_tallies(
    facts: Iterable[CallFact], leads: Iterable[LeadFact], settings: KpiSettings
) -> dict[int, PeriodTally]:
    """Tallies per local hour of the call's (lead's) start, for the hours that have any."""
    zone = settings.zone
    facts_by_hour: dict[int, list[CallFact]] = {}
    for f in facts:
        facts_by_hour.setdefault(local_hour(f.started_at, zone), []).append(f)
    leads_by_hour: dict[int, list[LeadFact]] = {}
    for lead in leads:
        leads_by_hour.setdefault(local_hour(lead.arrived_at, zone), []).append(lead)
    return {
        h: tally_period(facts_by_hour.get(h, []), leads_by_hour.get(h, []), settings)
        for h in sorted(facts_by_hour.keys() | leads_by_hour.keys())
    }


def day_and_hours(
    facts: Sequence[CallFact], leads: Sequence[LeadFact], settings: KpiSettings
) -> tuple[dict[str, dict[str, Any]], dict[int, dict[str, dict[str, Any]]]]:
    """One business day's figures, and the same per local hour of the call's (lead's) start."""
    hours = hour_tallies(facts, leads, settings)
    daily = figures_of(merge_periods(hours.values()), settings)
    hourly = {h: figures_of(t, settings) for h, t in hours.items()}
    return daily, hourly
