"""Helpers of the KPI tests: captured scenarios written through the CallWriter with the KPI hook."""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select

from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.app import Daemon
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.replay import replay_trace, tracker_settings
from pbxbridge.calls.store import CallWriter
from pbxbridge.config import Config, DatabaseConfig, PbxConfig, RecordingsConfig
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.kpi.calendar import local_day
from pbxbridge.kpi.daemon import KpiComponent, attach
from pbxbridge.kpi.definitions import KpiSettings, percentile, ratio
from pbxbridge.kpi.report import read_figures
from pbxbridge.kpi.service import KpiService
from pbxbridge.kpi.tables import CallFactRow, LeadRow, ManagerDayRow, ManagerHourRow
from tests.fixtures_ami import wait_until
from tests.scenario_check import load_expected, scenario_names

# The evening of the first captures, Moscow time (the KPIs' default business day).
TRACE_DAY = date(2026, 11, 26)
ZONE = KpiSettings().zone
# The AMI login the simulator asks of the daemon in these tests.
AMI_USER, AMI_SECRET = "pbxbridge", "s3cret"


def scenario_day(scenario: str) -> date:
    """The local day a scenario ran on."""
    return local_day(load_expected()[scenario]["started"], ZONE)


def _plain_evening(name: str) -> bool:
    calls = load_expected()[name]["calls"]
    return scenario_day(name) == TRACE_DAY and len(calls) == 1 and "transferred_to" not in calls[0]


# Read from expected.json: that evening's one-call scenarios without a transfer, the Local
# lab's (01-10) and the PJSIP lab's. Several tests work their figures out by hand for exactly
# these calls; every scenario, those captured since included, has the tests that take each
# scenario's figures from expected.json itself (test_kpi_traces.py).
LOCAL_LAB = tuple(n for n in scenario_names() if not n.startswith("pjsip-") and _plain_evening(n))
PJSIP_LAB = tuple(n for n in scenario_names() if n.startswith("pjsip-") and _plain_evening(n))


def scripted(expected: dict[str, Any], scenario: str, field: str, call: int = 0) -> tuple[float, float]:
    """A scripted ``[low, high]`` of one call of a scenario (``wait_s``, ``talk_s``, ``callback_after_s``)."""
    low, high = expected[scenario]["calls"][call][field]
    return float(low), float(high)


def total(*ranges: tuple[float, float]) -> tuple[float, float]:
    """The range of a sum of values each within its range."""
    return math.fsum(r[0] for r in ranges), math.fsum(r[1] for r in ranges)


def mean_of(*ranges: tuple[float, float]) -> tuple[float, float]:
    """The range of the mean (and of the median of two) of values each within its range."""
    low, high = total(*ranges)
    return low / len(ranges), high / len(ranges)


@functools.cache
def _calls_of(path: Path) -> tuple[FinishedCall, ...]:
    return tuple(replay_trace(path, tracker_settings(PbxConfig())))


def calls_of(shared_dir: Path, *scenarios: str) -> list[FinishedCall]:
    """Calls the tracker finished in the captured scenarios, scenario after scenario."""
    return [call for name in scenarios for call in _calls_of(shared_dir / f"{name}.ami")]


async def push(db_url: str, calls: Iterable[FinishedCall], service: KpiService) -> None:
    """Write calls one transaction each, the KPI hook inside, as the daemon does."""
    engine = make_engine(db_url)
    try:
        writer = CallWriter(session_factory(engine), Config(), after_write=[service.record_written])
        for call in calls:
            await writer.write(call)
    finally:
        await engine.dispose()


async def day_figures(
    db_url: str, service: KpiService, hourly: bool = False, day: date = TRACE_DAY
) -> dict[Any, dict[str, Any]]:
    """A day's rows (the first captures' by default) by manager (None: the department), or by (hour, manager)."""
    engine = make_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            rows = await read_figures(session, day, day, service.settings, hourly=hourly)
    finally:
        await engine.dispose()
    if hourly:
        return {(r["hour"], r["manager"]): r for r in rows}
    return {r["manager"]: r for r in rows}


async def snapshot(db_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of the KPI store, without surrogate ids, in a stable order."""
    engine = make_engine(db_url)
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        async with session_factory(engine)() as session:
            for model in (CallFactRow, LeadRow, ManagerDayRow, ManagerHourRow):
                rows = (await session.execute(select(model.__table__))).mappings().all()
                items = [{k: v for k, v in row.items() if k != "id"} for row in rows]
                out[model.__table__.name] = sorted(items, key=repr)
    finally:
        await engine.dispose()
    return out


def simulator(shared_dir: Path, *traces: str) -> AmiSimulator:
    """The captured streams, replayed at once to whoever logs in."""
    return AmiSimulator([shared_dir / t for t in traces], speed=0, username=AMI_USER, secret=AMI_SECRET)


def kpi_daemon(db_url: str, shared_dir: Path, port: int) -> tuple[Daemon, KpiService, KpiComponent]:
    """A daemon with the KPI domain attached, listening to the simulator on ``port``."""
    config = Config(
        database=DatabaseConfig(url=db_url),
        recordings=RecordingsConfig(root=str(shared_dir / "recordings")),
        pbx=[PbxConfig(name="main", host="127.0.0.1", port=port, username=AMI_USER, secret=AMI_SECRET)],
    )
    daemon = Daemon(config, listener_options={"backoff_initial_s": 0.05, "backoff_cap_s": 0.2})
    component = attach(daemon.hub)
    return daemon, component.service, component


async def all_events_in(daemon: Daemon, sim: AmiSimulator) -> None:
    """Wait until the daemon has taken every event the simulator sent."""
    await sim.wait_replayed()
    link = daemon.links["main"]
    await wait_until(lambda: link.events == sim.events_sent + link.listener.stats.logins)  # type: ignore[union-attr]


# ------------------------------------------- figures a scenario's script fixes


@dataclass(frozen=True)
class Between:
    """A figure the script fixes only within bounds (its calls' scripted ranges)."""

    low: float
    high: float


Truth = dict[str, Any]


def _range_of(values: list[tuple[float, float]], how: str) -> Between | None:
    """Bounds of a mean / median / max of values each within its range (all monotone)."""
    if not values:
        return None
    lows, highs = [v[0] for v in values], [v[1] for v in values]
    if how == "mean":
        return Between(math.fsum(lows) / len(lows), math.fsum(highs) / len(highs))
    if how == "median":
        return Between(percentile(lows, 0.5) or 0.0, percentile(highs, 0.5) or 0.0)
    return Between(max(lows), max(highs))


def _count(sure: int, maybe: int) -> int | Between:
    return sure if sure == maybe else Between(sure, maybe)


def department_truth(calls: list[dict[str, Any]], settings: KpiSettings) -> Truth:
    """The department's figures for one scenario's scripted calls, as far as expected.json fixes them.

    Each value is exact, ``None`` (an empty figure) or ``Between``; a figure the script cannot
    fix (a range a call leaves unscripted) is left out. Lost leads and pending callbacks are
    fixed only together: which of the two a missed caller is depends on the line's clock.
    """
    inbound = [c for c in calls if c["direction"] == "inbound"]
    outbound = [c for c in calls if c["direction"] == "outbound"]
    answered_in = [c for c in inbound if c["status"] == "answered"]
    unanswered_in = [c for c in inbound if c["status"] != "answered"]
    talked = [c for c in calls if c["direction"] != "internal" and c["status"] == "answered"]
    truth: Truth = {
        "calls_in": len(inbound),
        "answered": len(answered_in),
        "missed": len(unanswered_in),
        "missed_unanswered": len(unanswered_in),
        "transferred_in": sum("transferred_to" in c for c in inbound),
        "calls_out": len(outbound),
        "outbound_answered": sum(c["status"] == "answered" for c in outbound),
        "reach_rate": ratio(sum(c["status"] == "answered" for c in outbound), len(outbound)),
        "calls_internal": sum(c["direction"] == "internal" for c in calls),
        "unique_clients_reached": len({c["client"] for c in talked}),
        "offered": len(inbound),
        "queue_answered": len(answered_in),
    }
    if all("talk_s" in c for c in talked):
        talks = [tuple(c["talk_s"]) for c in talked]
        truth["talk_s"] = Between(*total(*talks)) if talks else 0.0
        truth["talk_s_mean"] = _range_of(talks, "mean")
        truth["talk_s_median"] = _range_of(talks, "median")
    if all("wait_s" in c for c in answered_in):
        waits = [tuple(c["wait_s"]) for c in answered_in]
        truth["asa_s"] = _range_of(waits, "mean")
        truth["wait_s_median"] = _range_of(waits, "median")
        unknown = 0
    else:
        waits = [tuple(c["wait_s"]) for c in answered_in if "wait_s" in c]
        unknown = len(answered_in) - len(waits)
    level = settings.service_level_s
    within = (sum(w[1] <= level for w in waits), sum(w[0] <= level for w in waits) + unknown)
    truth["answered_within_sl"] = _count(*within)
    if all("wait_s" in c for c in inbound):
        truth["longest_wait_s"] = _range_of([tuple(c["wait_s"]) for c in inbound], "max")
    # Callers who hung up within kpi.short_abandon_s are counted apart from the abandoned.
    gave_up = [c.get("wait_s") for c in unanswered_in]
    short = (
        sum(w is not None and w[1] < settings.short_abandon_s for w in gave_up),
        sum(w is None or w[0] < settings.short_abandon_s for w in gave_up),
    )
    truth["short_abandoned"] = _count(*short)
    abandoned = (len(unanswered_in) - short[1], len(unanswered_in) - short[0])
    truth["abandoned"] = _count(*abandoned)
    if within[0] == within[1] and abandoned[0] == abandoned[1]:
        truth["service_level"] = ratio(within[0], len(answered_in) + abandoned[0])

    # A missed caller's callback: the next outbound call to the same client (calls are in the order placed).
    callbacks: list[tuple[float, float] | None] = []
    uncalled = 0
    for i, call in enumerate(calls):
        if call["direction"] == "inbound" and call["status"] != "answered":
            if any(c["direction"] == "outbound" and c["client"] == call["client"] for c in calls[i + 1 :]):
                callbacks.append(tuple(call["callback_after_s"]) if "callback_after_s" in call else None)
            else:
                uncalled += 1
    truth["callbacks"] = len(callbacks)
    if None not in callbacks:
        ranges = [r for r in callbacks if r is not None]
        truth["callback_s_median"] = _range_of(ranges, "median")
        if all(r[1] <= settings.lost_lead_after_s for r in ranges):
            truth["lost_leads+callbacks_pending"] = uncalled

    # New leads: the clients whose first call came in (their card made by it).
    leads: dict[str, list[dict[str, Any]]] = {}
    for call in calls:
        if call["direction"] != "internal":
            leads.setdefault(call["client"], []).append(call)
    leads = {client: mine for client, mine in leads.items() if mine[0]["direction"] == "inbound"}
    reached = sum(any(c["status"] == "answered" for c in mine) for mine in leads.values())
    truth["new_leads"] = len(leads)
    truth["new_leads_reached"] = reached
    truth["new_leads_reached_share"] = ratio(reached, len(leads))
    # Speed to lead, where the script fixes it: a caller nobody answered, called back.
    attempts: list[tuple[float, float] | None] = []
    for mine in leads.values():
        called = [c for c in mine if c["direction"] == "outbound"]
        if not called:
            continue
        first = mine[0]
        scripted = {"wait_s", "callback_after_s"} <= first.keys()
        if len(mine) >= 2 and mine[1] is called[0] and first["status"] != "answered" and scripted:
            attempts.append(total(tuple(first["wait_s"]), tuple(first["callback_after_s"])))
        else:
            attempts.append(None)
    if None not in attempts:
        truth["speed_to_lead_s_median"] = _range_of([a for a in attempts if a is not None], "median")
    return truth


def figure_problems(row: dict[str, Any] | None, truth: Truth) -> list[str]:
    """Where a row of figures disagrees with ``department_truth`` (empty when it agrees)."""
    if row is None:
        return ["no figures at all"]
    out: list[str] = []
    for name, want in truth.items():
        got = sum(row[part] for part in name.split("+")) if "+" in name else row[name]
        if isinstance(want, Between):
            if got is None or not want.low - 1e-9 <= got <= want.high + 1e-9:
                out.append(f"{name} is {got!r}, scripted [{want.low}, {want.high}]")
        elif isinstance(want, float) and got is not None:
            if not math.isclose(got, want, abs_tol=1e-9):
                out.append(f"{name} is {got!r}, scripted {want!r}")
        elif got != want:
            out.append(f"{name} is {got!r}, scripted {want!r}")
    return out
