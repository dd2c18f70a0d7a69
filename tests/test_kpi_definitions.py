"""KPI formulas on calls shaped after expected.json's scripted scenarios (no database)."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest

from pbxbridge.calls.model import CallStatus, Direction, FinishedCall
from pbxbridge.kpi.calendar import local_day
from pbxbridge.kpi.definitions import (
    DEPARTMENT,
    FIGURE_NAMES,
    CallFact,
    KpiSettings,
    day_and_hours,
    fact_from_finished,
    lead_fact,
    link_callbacks,
    percentile,
    period_figures,
    queue_figures,
)
from pbxbridge.routing.sim_originate import manager_leg_fails
from tests.trace_edits import events_of, only, run

SETTINGS = KpiSettings()


def mid(bounds: list[float]) -> float:
    """The middle of a scripted [low, high] range."""
    return (bounds[0] + bounds[1]) / 2


def scripted_call(scripted: dict[str, Any], start: float, pbx_id: str) -> FinishedCall:
    """A FinishedCall as the script says it went, with mid-range wait and talk."""
    wait = mid(scripted.get("wait_s", [0, 0]))
    talk = mid(scripted.get("talk_s", [0, 0]))
    answered = scripted["status"] == "answered"
    direction = Direction(scripted["direction"])
    manager = scripted.get("answered_by") or scripted.get("placed_by") or scripted.get("from_ext")
    return FinishedCall(
        pbx="main",
        linkedid=pbx_id,
        direction=direction,
        status=CallStatus(scripted["status"]),
        started_at=start,
        answered_at=start + wait if answered else None,
        ended_at=start + wait + talk,
        client_number=scripted.get("client"),
        manager=manager,
        callee=scripted.get("to_ext"),
        rang=tuple(scripted.get("rang", ())),
        # expected.json names a single transfer target as a plain string.
        transferred_to=tuple(filter(None, [scripted.get("transferred_to")])),
    )


def scenario_facts(expected: dict[str, Any], *names: str, first_id: int = 1) -> list[CallFact]:
    """Facts of the scripted calls of some scenarios; each client's number is its card."""
    facts: list[CallFact] = []
    cards: dict[str, int] = {}
    for name in names:
        start = expected[name]["started"]
        for scripted in expected[name]["calls"]:
            call = scripted_call(scripted, start, f"{name}-{len(facts)}")
            client = scripted.get("client")
            card = cards.setdefault(client, 100 + len(cards)) if client else None
            facts.append(fact_from_finished(call, first_id + len(facts), card))
            # The next scripted call starts once this one is over (plus the gap the script leaves).
            start = call.ended_at + scripted.get("callback_after_s", [0, 0])[0]
    return facts


def test_percentile_interpolates_between_ranks() -> None:
    # numpy's default: rank q*(n-1); for [10, 20, 30, 40] the median is 25, p95 at rank 2.85 -> 38.5.
    assert percentile([40, 10, 30, 20], 0.5) == 25
    assert percentile([40, 10, 30, 20], 0.95) == pytest.approx(38.5)
    assert percentile([7.0], 0.95) == 7.0
    assert percentile([], 0.5) is None


def test_missed_then_callback(expected: dict[str, Any]) -> None:
    facts = scenario_facts(expected, "11-missed-then-callback")
    missed, callback = facts
    # Script: the caller waits 9..11 s (mid 10) and hangs up; 202 calls back 23..28 s after
    # the hang-up; scenario_facts starts the callback at the low end, 23 s after.
    link_callbacks(facts, SETTINGS, clock=callback.ended_at)
    assert missed.callback_s == pytest.approx(23)
    assert missed.callback_by == "202" and missed.callback_call_id == callback.call_id
    assert missed.lost is False
    day = period_figures(facts, [], SETTINGS)
    assert day[DEPARTMENT]["callbacks"] == 1
    assert day[DEPARTMENT]["callback_s_median"] == pytest.approx(23)
    assert day[DEPARTMENT]["lost_leads"] == 0
    assert day["202"]["callbacks"] == 1 and day["202"]["calls_out"] == 1
    assert day["202"]["outbound_answered"] == 1 and day["202"]["reach_rate"] == 1.0
    # Speed to lead: the lead arrives with its first inbound call (its card was made by it);
    # first outbound 10 s wait + 23 s later = 33 s; that call was answered, so both figures are 33.
    lead = lead_fact(100, created_at=missed.started_at, calls=facts)
    assert lead is not None
    assert lead.attempt_s == pytest.approx(33) and lead.answered_s == pytest.approx(33)
    assert lead.first_attempt_by == "202" and lead.reached


def test_lost_lead_window_is_read_from_event_times(expected: dict[str, Any]) -> None:
    facts = scenario_facts(expected, "03-inbound-abandoned")
    (abandoned,) = facts
    # Nobody calls back: open until 900 s after the hang-up have passed on the line's clock.
    link_callbacks(facts, SETTINGS, clock=abandoned.ended_at + 899)
    assert abandoned.lost is None
    assert period_figures(facts, [], SETTINGS)[DEPARTMENT]["callbacks_pending"] == 1
    link_callbacks(facts, SETTINGS, clock=abandoned.ended_at + 900)
    assert abandoned.lost is True
    day = period_figures(facts, [], SETTINGS)
    # Script: rang 203 then 202, so the lost caller counts against both, and once for the department.
    assert day[DEPARTMENT]["lost_leads"] == 1
    assert day["203"]["lost_leads"] == 1 and day["202"]["lost_leads"] == 1


def test_a_late_callback_still_leaves_the_lead_lost(expected: dict[str, Any]) -> None:
    missed, callback = scenario_facts(expected, "11-missed-then-callback")
    callback.started_at = missed.ended_at + 901
    link_callbacks([missed, callback], SETTINGS, clock=callback.started_at)
    assert missed.callback_s == pytest.approx(901) and missed.lost is True


def test_manager_figures_of_the_local_lab(expected: dict[str, Any]) -> None:
    names = [f"{n:02d}-{s}" for n, s in enumerate(
        ["inbound-answered", "inbound-second-agent", "inbound-abandoned", "inbound-overflow",
         "inbound-busy-everyone", "outbound-answered", "outbound-noanswer", "outbound-busy",
         "outbound-8-prefix", "internal"], start=1)]
    day = period_figures(scenario_facts(expected, *names), [], SETTINGS)
    # 203: answered 01; rang in 02, 03, 04 without answering (03 nobody answered);
    # placed 06 (answered). talk = 01 (26.5) + 06 (41) = 67.5 over two client calls.
    m203 = day["203"]
    assert (m203["calls_in"], m203["answered"], m203["missed"], m203["missed_unanswered"]) == (4, 1, 3, 1)
    assert (m203["calls_out"], m203["outbound_answered"], m203["reach_rate"]) == (1, 1, 1.0)
    assert m203["talk_s"] == pytest.approx(26.5 + 41) and m203["talk_s_mean"] == pytest.approx(33.75)
    assert m203["unique_clients_reached"] == 2
    # 201: placed 07 (no answer) and the internal call 10 to 202; internal talk is no client talk.
    m201 = day["201"]
    assert (m201["calls_out"], m201["outbound_answered"], m201["reach_rate"]) == (1, 0, 0.0)
    assert m201["calls_internal"] == 1 and m201["talk_s"] == 0
    assert m201["outbound_norm"] == 30 and m201["outbound_norm_share"] == pytest.approx(1 / 30)
    # 202: answered 02 (27.5 s talk), rang in 03 and 04, busy outbound 08, took internal 10.
    m202 = day["202"]
    assert (m202["calls_in"], m202["answered"], m202["missed"]) == (3, 1, 2)
    assert (m202["calls_out"], m202["reach_rate"], m202["calls_internal"]) == (1, 0.0, 1)
    assert m202["first_call_at"] == pytest.approx(expected["02-inbound-second-agent"]["started"], abs=60)
    dept = day[DEPARTMENT]
    # Inbound: 01, 02, 04 answered; 03, 05 nobody answered. Outbound: 06, 09 answered of 4.
    assert (dept["calls_in"], dept["answered"], dept["missed"]) == (5, 3, 2)
    assert (dept["calls_out"], dept["outbound_answered"], dept["reach_rate"]) == (4, 2, 0.5)
    assert dept["calls_internal"] == 1
    # Queue: waits of the answered 3.5, 12, 16 -> ASA 10.5, longest wait 05's 20 s;
    # all three within 20 s, two real abandons (15 s, 20 s): service level 3 / (3 + 2).
    assert dept["offered"] == 5 and dept["queue_answered"] == 3
    assert (dept["abandoned"], dept["short_abandoned"]) == (2, 0)
    assert dept["asa_s"] == pytest.approx(10.5) and dept["longest_wait_s"] == pytest.approx(20)
    assert dept["service_level"] == pytest.approx(0.6)
    assert day["205"]["answered"] == 1 and day["204"]["missed"] == 1
    assert set(dept) == set(FIGURE_NAMES)


def test_blind_transfer_ring_is_no_miss(expected: dict[str, Any]) -> None:
    (call,) = scenario_facts(expected, "12-blind-transfer")
    # The tracker reports the transfer target among the handsets that rang.
    call.rang = ("203", "202")
    day = period_figures([call], [], SETTINGS)
    assert day["202"]["missed"] == 0 and day["202"]["transferred_in"] == 1
    assert day["203"]["answered"] == 1


def test_short_abandons_are_apart_from_the_service_level(expected: dict[str, Any]) -> None:
    (quick,) = scenario_facts(expected, "03-inbound-abandoned")
    quick.wait_s = 3.0  # under kpi.short_abandon_s (5 s): a caller who dialled by mistake
    (answered,) = scenario_facts(expected, "01-inbound-answered", first_id=2)
    q = queue_figures([quick, answered], SETTINGS)
    assert (q["offered"], q["abandoned"], q["short_abandoned"]) == (2, 0, 1)
    assert q["service_level"] == 1.0


def test_lead_card_made_before_the_first_call(expected: dict[str, Any]) -> None:
    (call,) = scenario_facts(expected, "06-outbound-answered")
    lead = lead_fact(100, created_at=call.started_at - 600, calls=[call])
    assert lead is not None and lead.attempt_s == pytest.approx(600) and lead.answered_s == pytest.approx(600)
    # A card the outbound call itself started is a cold call, not a lead that came in.
    assert lead_fact(100, created_at=call.started_at, calls=[call]) is None


def test_business_day_is_local(expected: dict[str, Any]) -> None:
    start = expected["01-inbound-answered"]["started"]
    # 1795723449 is 2026-11-26 20:04 UTC, 23:04 in Moscow; an hour later it is the 27th there.
    assert local_day(start, SETTINGS.zone) == date(2026, 11, 26)
    assert local_day(start + 3600, SETTINGS.zone) == date(2026, 11, 27)
    assert local_day(start + 3600, KpiSettings(timezone="UTC").zone) == date(2026, 11, 26)
    facts = scenario_facts(expected, "01-inbound-answered", "02-inbound-second-agent")
    facts[1].started_at += 3600
    daily, hourly = day_and_hours(facts, [], SETTINGS)
    assert sorted(hourly) == [0, 23]
    assert hourly[23][DEPARTMENT]["calls_in"] == 1 and hourly[0][DEPARTMENT]["calls_in"] == 1
    assert daily[DEPARTMENT]["calls_in"] == 2


def test_a_click_to_call_the_manager_did_not_pick_up_is_no_callback(expected: dict[str, Any], shared_dir: Path) -> None:
    """11-missed-then-callback, with a click-to-call in between whose manager's handset did not
    answer (the tracker's own call from pjsip-03 cut at the ring, moved onto this client)."""
    missed, callback = scenario_facts(expected, "11-missed-then-callback")
    failed_call = only(run(manager_leg_fails(events_of(shared_dir / "pjsip-03-click-to-call-busy.ami"), "NOANSWER", "3")))
    assert failed_call.status is CallStatus.FAILED
    failed_call = replace(failed_call, started_at=missed.ended_at + 5, ended_at=missed.ended_at + 20)
    failed = fact_from_finished(failed_call, 99, missed.client_id)
    facts = [missed, failed, callback]
    link_callbacks(facts, SETTINGS, clock=callback.ended_at)
    # The client's phone never rang on the failed attempt: the callback is 202's real call.
    assert missed.callback_call_id == callback.call_id and missed.callback_by == "202"
    day = period_figures(facts, [], SETTINGS)
    assert day["205"]["calls_out"] == 0 and day[DEPARTMENT]["calls_out"] == 1
    lead = lead_fact(100, created_at=missed.started_at, calls=facts)
    assert lead is not None and lead.first_attempt_by == "202"


def test_a_transfer_to_an_outside_number_is_nobodys_figure(expected: dict[str, Any]) -> None:
    (call,) = scenario_facts(expected, "12-blind-transfer")
    call.rang = ("203",)
    call.transferred_to = ("89161234567",)
    day = period_figures([call], [], SETTINGS)
    assert "89161234567" not in day
    assert day["203"]["answered"] == 1 and day[DEPARTMENT]["transferred_in"] == 1
