"""KPIs of the captured scenarios, written call by call through the CallWriter, against expected.json."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pbxbridge.calls.model import FinishedCall
from pbxbridge.clients.store import find_or_create_client
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.kpi.alerts import LeadAtRisk
from pbxbridge.kpi.definitions import KpiSettings
from pbxbridge.kpi.report import read_figures
from pbxbridge.kpi.service import KpiService
from tests.fixtures_kpi import (
    LOCAL_LAB,
    PJSIP_LAB,
    TRACE_DAY,
    calls_of,
    day_figures,
    department_truth,
    figure_problems,
    mean_of,
    push,
    scenario_day,
    scripted,
    snapshot,
    total,
)


def metric_samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of Prometheus exposition text by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def within(value: float | None, low: float, high: float) -> bool:
    """value lies in [low, high] (a scripted range)."""
    return value is not None and low <= value <= high


@pytest.mark.parametrize("window, lost, pending", [(900, 0, 2), (600, 2, 0)])
async def test_day_of_both_labs(
    db_url: str, shared_dir: Path, expected: dict[str, Any], window: int, lost: int, pending: int
) -> None:
    def talk(scenario: str) -> tuple[float, float]:
        return scripted(expected, scenario, "talk_s")

    def wait(scenario: str) -> tuple[float, float]:
        return scripted(expected, scenario, "wait_s")

    service = KpiService(KpiSettings(lost_lead_after_s=window))
    await push(db_url, calls_of(shared_dir, *LOCAL_LAB, *PJSIP_LAB), service)
    day = await day_figures(db_url, service)
    assert set(day) == {"201", "202", "203", "204", "205", None}

    # 201: placed 07 (no answer) and internal 10; rang in pjsip-01 (ringall), where 202 answered.
    m = day["201"]
    assert (m["calls_in"], m["answered"], m["missed"], m["missed_unanswered"]) == (1, 0, 1, 0)
    assert (m["calls_out"], m["outbound_answered"], m["reach_rate"], m["calls_internal"]) == (1, 0, 0.0, 1)
    assert m["talk_s"] == 0 and m["outbound_norm"] == 30
    # 202: answered 02 and pjsip-01; rang in 03 (nobody answered) and 04
    # (205 did); busy outbound 08; took the internal call 10.
    m = day["202"]
    assert (m["calls_in"], m["answered"], m["missed"], m["missed_unanswered"]) == (4, 2, 2, 1)
    assert (m["calls_out"], m["outbound_answered"], m["reach_rate"], m["calls_internal"]) == (1, 0, 0.0, 1)
    two = (talk("02-inbound-second-agent"), talk("pjsip-01-inbound-ringall"))
    assert within(m["talk_s"], *total(*two)) and within(m["talk_s_mean"], *mean_of(*two))
    assert m["unique_clients_reached"] == 2
    # 203: answered 01; rang in 02, 03, 04 and pjsip-01; placed 06, answered.
    m = day["203"]
    assert (m["calls_in"], m["answered"], m["missed"], m["missed_unanswered"]) == (5, 1, 4, 1)
    assert (m["calls_out"], m["outbound_answered"], m["reach_rate"]) == (1, 1, 1.0)
    assert within(m["talk_s"], *total(talk("01-inbound-answered"), talk("06-outbound-answered")))
    assert m["unique_clients_reached"] == 2
    # 204: rang in 04 (overflow); placed 09 and the click-to-call pjsip-02, both answered.
    m = day["204"]
    assert (m["calls_in"], m["missed"], m["calls_out"], m["outbound_answered"]) == (1, 1, 2, 2)
    two = (talk("09-outbound-8-prefix"), talk("pjsip-02-click-to-call"))
    assert within(m["talk_s"], *total(*two)) and within(m["talk_s_median"], *mean_of(*two))
    # 205: answered 04; click-to-call pjsip-03 was busy.
    m = day["205"]
    assert (m["calls_in"], m["answered"], m["calls_out"], m["reach_rate"]) == (1, 1, 1, 0.0)
    assert within(m["talk_s"], *talk("04-inbound-overflow"))
    # First and last call of 203: 01 starts the evening at 23:04:09 Moscow; 06 ends it.
    assert day["203"]["first_call_at"].startswith("2026-11-26T23:04:")
    assert day["203"]["last_call_at"] > day["203"]["first_call_at"]

    d = day[None]
    # Inbound 01..05 and pjsip-01: 4 answered, 03 and 05 abandoned. Outbound 06..09, pjsip-02/03.
    assert (d["calls_in"], d["answered"], d["missed"]) == (6, 4, 2)
    assert (d["calls_out"], d["outbound_answered"], d["reach_rate"], d["calls_internal"]) == (6, 3, 0.5, 1)
    # Talk of the 7 answered client calls: 01+02+04+pjsip-01+06+09+pjsip-02.
    answered = ("01-inbound-answered", "02-inbound-second-agent", "04-inbound-overflow", "pjsip-01-inbound-ringall",
                "06-outbound-answered", "09-outbound-8-prefix", "pjsip-02-click-to-call")
    assert within(d["talk_s"], *total(*map(talk, answered)))
    assert d["unique_clients_reached"] == 7
    # Queue: the four answered callers all waited within the 20 s service level; the two who
    # gave up (03, 05) waited longer than 5 s (none short): service level 4 / (4 + 2).
    queued = ("01-inbound-answered", "02-inbound-second-agent", "04-inbound-overflow", "pjsip-01-inbound-ringall")
    gave_up = ("03-inbound-abandoned", "05-inbound-busy-everyone")
    assert all(wait(s)[1] <= 20 for s in queued) and all(wait(s)[0] >= 5 for s in gave_up)
    assert (d["offered"], d["queue_answered"], d["abandoned"], d["short_abandoned"]) == (6, 4, 2, 0)
    assert within(d["asa_s"], *mean_of(*map(wait, queued)))
    assert d["answered_within_sl"] == 4 and d["service_level"] == pytest.approx(4 / 6)
    # The longest wait: 05's, longer than any other caller's.
    longest = wait("05-inbound-busy-everyone")
    assert all(wait(s)[1] < longest[0] for s in (*queued, "03-inbound-abandoned"))
    assert within(d["longest_wait_s"], *longest)
    # New leads: the six inbound callers' cards; 01, 02, 04 and pjsip-01 were reached.
    assert (d["new_leads"], d["new_leads_reached"]) == (6, 4)
    assert d["new_leads_reached_share"] == pytest.approx(4 / 6)
    assert d["speed_to_lead_s_median"] is None  # nobody called a lead back
    # Nobody called 03 or 05 back.  03 ended about 23:05:45 and 05 about 23:07:00; the last
    # call (pjsip-03) ended about 23:20:08, 788..866 s later: past a 600 s window, inside 900 s.
    assert (d["lost_leads"], d["callbacks_pending"], d["callbacks"]) == (lost, pending, 0)
    # 03 rang 203 and 202, so it counts against both; 05 rang nobody.
    assert (day["203"]["lost_leads"], day["202"]["lost_leads"], day["201"]["lost_leads"]) == (lost // 2,) * 2 + (0,)
    assert d["managers_meeting_norm"] == 0 and d["outbound_norm"] == 5 * 30

    hourly = await day_figures(db_url, service, hourly=True)
    # Every scenario ran between 23:04 and 23:21 Moscow time: the 23 o'clock hour is the whole day.
    assert {hour for hour, _ in hourly} == {23}
    for manager, row in day.items():
        assert {k: v for k, v in hourly[(23, manager)].items() if k != "hour"} == row


async def test_department_figures_of_every_scenario_follow_its_script(
    db_url: str, shared_dir: Path, expected: dict[str, Any]
) -> None:
    # Every scenario's department figures as far as expected.json fixes them: each capture is
    # counted the day it arrives, without a figure worked out by hand. One journal holds them
    # all apart: each scenario's calls are moved whole (same local times) to a day of its own.
    first_day = date(2030, 1, 1)
    days: dict[str, date] = {}
    calls = []
    for i, scenario in enumerate(expected):
        days[scenario] = first_day + timedelta(days=i)
        shift = (days[scenario] - scenario_day(scenario)).days * 86400.0
        calls += [moved(call, shift) for call in calls_of(shared_dir, scenario)]
    service = KpiService()
    await push(db_url, calls, service)
    engine = make_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            rows = await read_figures(session, first_day, max(days.values()), service.settings)
    finally:
        await engine.dispose()
    department = {row["date"]: row for row in rows if row["manager"] is None}
    problems = {
        scenario: figure_problems(
            department.get(day.isoformat()), department_truth(expected[scenario]["calls"], service.settings)
        )
        for scenario, day in days.items()
    }
    assert {scenario: found for scenario, found in problems.items() if found} == {}
    # The one place the figures tell callers who gave up from those the PBX gave up on.
    unanswered = {
        dict(labels)["status"]: value
        for (name, labels), value in metric_samples(service.metrics_text()).items()
        if name == "pbxbridge_inbound_unanswered_total"
    }
    scripted_calls = [call for scenario in expected.values() for call in scenario["calls"]]
    want = {
        status: float(sum(c["direction"] == "inbound" and c["status"] == status for c in scripted_calls))
        for status in ("abandoned", "missed")
    }
    assert {status: unanswered.get(status, 0.0) for status in want} == want


def moved(call: FinishedCall, shift: float) -> FinishedCall:
    """The same call, ``shift`` seconds later."""
    return dataclasses.replace(
        call,
        started_at=call.started_at + shift,
        answered_at=None if call.answered_at is None else call.answered_at + shift,
        ended_at=call.ended_at + shift,
    )


@pytest.mark.parametrize("order", ["as placed", "callback written first"])
async def test_missed_then_callback(db_url: str, shared_dir: Path, expected: dict[str, Any], order: str) -> None:
    callback = scripted(expected, "11-missed-then-callback", "callback_after_s")
    # The lead arrived with its call: speed to lead = the caller's wait, then the callback.
    to_lead = total(scripted(expected, "11-missed-then-callback", "wait_s"), callback)
    calls = calls_of(shared_dir, "11-missed-then-callback")
    if order != "as placed":
        calls.reverse()
    service = KpiService()
    await push(db_url, calls, service)
    day = await day_figures(db_url, service)
    d = day[None]
    # The caller waited and hung up; 202 called back, and was answered.
    assert (d["calls_in"], d["answered"], d["missed"], d["abandoned"]) == (1, 0, 1, 1)
    assert (d["calls_out"], d["outbound_answered"]) == (1, 1)
    assert d["callbacks"] == 1 and within(d["callback_s_median"], *callback)
    assert within(d["callback_s_p95"], *callback)
    # Called back well inside the 900 s window: no lost lead, nothing pending.
    assert callback[1] < 900 and (d["lost_leads"], d["callbacks_pending"]) == (0, 0)
    # The same speed to lead for the first attempt and the first answered call (the callback was answered).
    assert within(d["speed_to_lead_s_median"], *to_lead)
    assert within(d["speed_to_lead_answered_s_median"], *to_lead)
    assert (d["new_leads"], d["new_leads_reached"], d["new_leads_reached_share"]) == (1, 1, 1.0)
    m = day["202"]
    assert m["callbacks"] == 1 and within(m["callback_s_median"], *callback)
    assert within(m["speed_to_lead_s_median"], *to_lead)
    assert (m["calls_out"], m["outbound_answered"], m["reach_rate"]) == (1, 1, 1.0)


async def test_speed_to_lead_from_a_card_made_before_the_first_call(
    db_url: str, shared_dir: Path, expected: dict[str, Any]
) -> None:
    # Two leads come in from a web form at 23:00 and 23:01 Moscow; 203 calls the first (06).
    made = datetime(2026, 11, 26, 20, 0, tzinfo=UTC)
    engine = make_engine(db_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            await find_or_create_client(session, "+79162220001", made)
            await find_or_create_client(session, "+79990000001", made.replace(minute=1))
    finally:
        await engine.dispose()
    service = KpiService()
    await push(db_url, calls_of(shared_dir, "06-outbound-answered"), service)
    day = await day_figures(db_url, service)
    d = day[None]
    # 06 started with its scenario (at 23:07:05 Moscow); the card is from 23:00:00. From the
    # whole second before the scenario started, two seconds allow for Asterisk's setup.
    low = math.floor(expected["06-outbound-answered"]["started"] - made.timestamp())
    assert within(d["speed_to_lead_s_median"], low, low + 2)
    assert within(d["speed_to_lead_answered_s_median"], low, low + 2)
    assert within(day["203"]["speed_to_lead_s_median"], low, low + 2)
    # The second lead has had no call: it counts as a new lead not reached.
    assert (d["new_leads"], d["new_leads_reached"], d["new_leads_reached_share"]) == (2, 1, 0.5)


def test_rebuild_equals_incremental_on_every_trace(db_url: str, shared_dir: Path, expected: dict[str, Any]) -> None:
    from pbxbridge.cli.main import main

    service = KpiService()
    for scenario in expected:
        asyncio.run(push(db_url, calls_of(shared_dir, scenario), service))
        incremental = asyncio.run(snapshot(db_url))
        assert main(["kpi", "rebuild", "--db", db_url]) == 0
        assert asyncio.run(snapshot(db_url)) == incremental, scenario
    # Every call of every scenario got its fact row.
    assert len(incremental["kpi_call_facts"]) == sum(len(s["calls"]) for s in expected.values())
    # The same calls again (a replay after a reconnect) change nothing.
    asyncio.run(push(db_url, calls_of(shared_dir, *expected), service))
    assert asyncio.run(snapshot(db_url)) == incremental


async def test_lead_at_risk_alert(db_url: str, shared_dir: Path) -> None:
    missed, callback = calls_of(shared_dir, "11-missed-then-callback")
    service = KpiService()
    heard: list[LeadAtRisk] = []
    service.watch.subscribe(heard.append)
    await push(db_url, [missed], service)
    (risk,) = service.watch.open_windows()
    assert risk.missed_at == pytest.approx(missed.ended_at) and risk.rang == missed.rang
    # 900 s window, alert 300 s before it closes: due 600 s after the caller hung up.
    assert service.due_alerts(missed.ended_at + 599) == []
    assert service.due_alerts(missed.ended_at + 600) == [risk] and heard == [risk]
    assert service.due_alerts(missed.ended_at + 700) == []  # once only

    # After a restart the window is read back from the store; the callback closes it.
    restarted = KpiService()
    engine = make_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            assert await restarted.start(session) == 1
    finally:
        await engine.dispose()
    await push(db_url, [callback], restarted)
    assert restarted.watch.open_windows() == []
    assert restarted.due_alerts(missed.ended_at + 899) == []


async def test_callback_after_midnight_updates_the_day_of_the_miss(
    db_url: str, shared_dir: Path, expected: dict[str, Any]
) -> None:
    missed, callback = calls_of(shared_dir, "11-missed-then-callback")
    # The same callback an hour later: 00:07 on the 27th, Moscow time.
    late = dataclasses.replace(
        callback,
        linkedid=callback.linkedid + "-late",
        started_at=callback.started_at + 3600,
        answered_at=callback.answered_at + 3600 if callback.answered_at else None,
        ended_at=callback.ended_at + 3600,
    )
    service = KpiService()
    await push(db_url, [missed, late], service)
    engine = make_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            rows = await read_figures(session, TRACE_DAY, TRACE_DAY + timedelta(days=1), service.settings)
    finally:
        await engine.dispose()
    by_day = {(r["date"], r["manager"]): r for r in rows}
    miss_day = by_day[("2026-11-26", None)]
    # The scripted callback time plus 3600 s after the miss: past the 900 s window, so lost, with its time.
    low, high = scripted(expected, "11-missed-then-callback", "callback_after_s")
    assert miss_day["callbacks"] == 1 and within(miss_day["callback_s_median"], low + 3600, high + 3600)
    assert (miss_day["lost_leads"], miss_day["calls_out"]) == (1, 0)
    assert by_day[("2026-11-26", "202")]["callbacks"] == 1  # 202 called back, on the 27th
    next_day = by_day[("2026-11-27", None)]
    assert (next_day["calls_out"], next_day["outbound_answered"], next_day["calls_in"]) == (1, 1, 0)


async def test_window_closes_on_the_lines_clock(db_url: str, shared_dir: Path) -> None:
    service = KpiService()
    # 03 (nobody called back) ended about 23:05:45; pjsip-03 ended 14 min later: still open.
    await push(db_url, calls_of(shared_dir, "03-inbound-abandoned", *PJSIP_LAB), service)
    d = (await day_figures(db_url, service))[None]
    assert (d["lost_leads"], d["callbacks_pending"]) == (0, 1)
    # Another client's call ending 20 min after 03 moves the line's clock past 03's window.
    (answered,) = calls_of(shared_dir, "01-inbound-answered")
    later = dataclasses.replace(
        answered,
        linkedid=answered.linkedid + "-later",
        started_at=answered.started_at + 1200,
        answered_at=(answered.answered_at or 0) + 1200,
        ended_at=answered.ended_at + 1200,
    )
    await push(db_url, [later], service)
    d = (await day_figures(db_url, service))[None]
    assert (d["lost_leads"], d["callbacks_pending"]) == (1, 0)


def test_burst_written_concurrently_equals_rebuild(db_url: str, shared_dir: Path) -> None:
    from pbxbridge.calls.store import CallWriter
    from pbxbridge.cli.main import main
    from pbxbridge.config import Config

    calls = calls_of(shared_dir, "13-burst")
    service = KpiService()
    at_once = 4  # calls ending together, each written in its own transaction

    async def write_concurrently() -> None:
        engine = make_engine(db_url)
        try:
            writer = CallWriter(session_factory(engine), Config(), after_write=[service.record_written])
            for i in range(0, len(calls), at_once):
                await asyncio.gather(*(writer.write(c) for c in calls[i : i + at_once]))
        finally:
            await engine.dispose()

    asyncio.run(write_concurrently())
    incremental = asyncio.run(snapshot(db_url))
    # 12 callers within two seconds, all at 23:11 Moscow time.
    (department,) = [r for r in incremental["kpi_manager_day"] if r["manager"] == ""]
    assert department["calls_in"] == 12 and department["answered"] + department["missed"] == 12
    assert main(["kpi", "rebuild", "--db", db_url]) == 0
    assert asyncio.run(snapshot(db_url)) == incremental
