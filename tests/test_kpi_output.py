"""What leaves the KPI store: `pbxbridge kpi` JSON and CSV, and the Prometheus text for /metrics."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pbxbridge.ami.frames import Frame
from pbxbridge.ami.traces import load_trace
from pbxbridge.calls.replay import tracker_settings
from pbxbridge.calls.tracker import CallTracker
from pbxbridge.cli.main import main
from pbxbridge.config import PbxConfig
from pbxbridge.kpi.definitions import FIGURES
from pbxbridge.kpi.live import LiveLine
from pbxbridge.kpi.service import KpiService
from tests.fixtures_ami import live_linkedids
from tests.fixtures_kpi import LOCAL_LAB, PJSIP_LAB, calls_of, push, scripted, total

REQUIRED = (
    "date", "manager", "calls_in", "calls_out", "answered", "missed", "talk_s",
    "callback_s_median", "lost_leads", "speed_to_lead_s_median",
)


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> str:
    """Run `pbxbridge ...` and return what it printed."""
    assert main(list(argv)) == 0
    return capsys.readouterr().out


def test_kpi_command_json_and_csv(
    db_url: str, shared_dir: Path, expected: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    callback = scripted(expected, "11-missed-then-callback", "callback_after_s")
    to_lead = total(scripted(expected, "11-missed-then-callback", "wait_s"), callback)
    talk = scripted(expected, "01-inbound-answered", "talk_s")
    asyncio.run(push(db_url, calls_of(shared_dir, "01-inbound-answered", "11-missed-then-callback"), KpiService()))
    day = ("--from", "2026-11-26", "--to", "2026-11-26", "--db", db_url)

    lines = run_cli(capsys, "kpi", *day, "--json").splitlines()
    rows = [json.loads(line) for line in lines]
    assert all(set(REQUIRED) <= set(row) for row in rows)
    assert all({f.name for f in FIGURES} <= set(row) for row in rows)
    # The department's row closes the day, manager null.
    department = rows[-1]
    assert department["manager"] is None and department["date"] == "2026-11-26"
    managers = [r["manager"] for r in rows[:-1]]
    assert managers == sorted(managers) and {"202", "203"} <= set(managers)
    # 01 answered by 203; 11: abandoned, called back by 202.
    assert (department["calls_in"], department["answered"], department["missed"]) == (2, 1, 1)
    assert department["calls_out"] == 1 and department["lost_leads"] == 0
    assert callback[0] <= department["callback_s_median"] <= callback[1]
    assert to_lead[0] <= department["speed_to_lead_s_median"] <= to_lead[1]
    by_manager = {r["manager"]: r for r in rows}
    assert by_manager["203"]["answered"] == 1 and talk[0] <= by_manager["203"]["talk_s"] <= talk[1]
    assert by_manager["202"]["calls_out"] == 1 and callback[0] <= by_manager["202"]["callback_s_median"] <= callback[1]

    table = list(csv.DictReader(io.StringIO(run_cli(capsys, "kpi", *day, "--csv"))))
    assert [r["manager"] for r in table] == [r["manager"] or "" for r in rows]
    assert [int(r["calls_in"]) for r in table] == [r["calls_in"] for r in rows]
    assert table[-1]["speed_to_lead_s_median"] == str(department["speed_to_lead_s_median"])

    only = [json.loads(x) for x in run_cli(capsys, "kpi", *day, "--manager", "202").splitlines()]
    assert [r["manager"] for r in only] == ["202"] and only[0] == by_manager["202"]

    hourly = [json.loads(x) for x in run_cli(capsys, "kpi", *day, "--hourly").splitlines()]
    assert {r["hour"] for r in hourly} == {23} and len(hourly) == len(rows)

    assert run_cli(capsys, "kpi", "--from", "2026-11-25", "--db", db_url) == ""


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Every sample of the exposition text by (name, sorted labels)."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _truth(expected: dict[str, Any], scenarios: tuple[str, ...]) -> list[dict[str, Any]]:
    """The scripted calls of these scenarios (expected.json)."""
    return [call for name in scenarios for call in expected[name]["calls"]]


def _family(got: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str) -> dict[tuple[str, ...], float]:
    """One metric's samples by their label values (labels in name order)."""
    return {tuple(v for _k, v in labels): value for (sample, labels), value in got.items() if sample == name}


def _busiest_moment(events: tuple[Frame, ...]) -> int:
    """After how many events the most callers wait in queues at once (the first such moment).

    Counted the plain way, joins less leaves (app_queue sends QueueCallerLeave
    whenever a caller leaves a queue, for whatever reason), apart from how the
    daemon follows its callers.
    """
    waiting, most, cut = 0, 0, 0
    for number, event in enumerate(events, start=1):
        waiting += {"QueueCallerJoin": 1, "QueueCallerLeave": -1}.get(event["Event"], 0)
        if waiting > most:
            most, cut = waiting, number
    return cut


async def test_metrics_text(db_url: str, shared_dir: Path, expected: dict[str, Any]) -> None:
    scenarios = (*LOCAL_LAB, *PJSIP_LAB, "11-missed-then-callback")
    service = KpiService()
    # First the scenarios that script which handsets rang for each caller: the
    # handsets that rang for a caller someone else answered, or nobody did.
    rang_scripted = tuple(
        name for name in scenarios
        if all("rang" in c for c in expected[name]["calls"] if c["direction"] == "inbound")
    )
    assert len(rang_scripted) >= 10
    await push(db_url, calls_of(shared_dir, *rang_scripted), service)
    missed = Counter(
        ext for c in _truth(expected, rang_scripted) if c["direction"] == "inbound"
        for ext in c["rang"] if ext != c["answered_by"]
    )
    got = samples(service.metrics_text())
    assert _family(got, "pbxbridge_calls_missed_total") == {(ext,): float(n) for ext, n in missed.items()}
    # Then the rest.
    await push(db_url, calls_of(shared_dir, *(n for n in scenarios if n not in rang_scripted)), service)
    calls = calls_of(shared_dir, *scenarios)
    # The live gauges as the daemon sets them, from the call tracker and the queue
    # callers after the burst's busiest moment.
    burst = load_trace(shared_dir / "13-burst.ami").events
    cut = _busiest_moment(burst)
    tracker, line = CallTracker(tracker_settings(PbxConfig())), LiveLine()
    for event in burst[:cut]:
        tracker.feed(event, float(event["Timestamp"]))
        line.feed("main", event, 0.0)
    service.metrics.set_live(tracker.active_count(), line.callers_waiting)
    got = samples(service.metrics_text())
    truth = _truth(expected, scenarios)
    inbound = [c for c in truth if c["direction"] == "inbound"]
    answered_in = [c for c in inbound if c["status"] == "answered"]

    # Answered calls by the manager who answered (inbound) or placed them (outbound).
    answered = Counter(
        (c["answered_by"] if c["direction"] == "inbound" else c["placed_by"], c["direction"])
        for c in truth if c["status"] == "answered" and c["direction"] != "internal"
    )
    assert _family(got, "pbxbridge_calls_answered_total") == {
        (direction, manager): float(n) for (manager, direction), n in answered.items()
    }
    unanswered = Counter(c["status"] for c in inbound if c["status"] != "answered")
    assert _family(got, "pbxbridge_inbound_unanswered_total") == {(s,): float(n) for s, n in unanswered.items()}

    # Waits of the answered callers: their count, sum and each bucket no scripted range straddles.
    assert got[("pbxbridge_inbound_wait_seconds_count", (("outcome", "answered"),))] == len(answered_in)
    low, high = total(*((float(c["wait_s"][0]), float(c["wait_s"][1])) for c in answered_in))
    assert low <= got[("pbxbridge_inbound_wait_seconds_sum", (("outcome", "answered"),))] <= high
    checked = 0
    for (edge, outcome), value in _family(got, "pbxbridge_inbound_wait_seconds_bucket").items():
        limit = float(edge)  # "+Inf" included
        if outcome == "answered" and all(c["wait_s"][1] <= limit or c["wait_s"][0] > limit for c in answered_in):
            assert value == sum(c["wait_s"][1] <= limit for c in answered_in), edge
            checked += 1
    assert checked >= 5
    # 11's caller called back by 202.
    callback = scripted(expected, "11-missed-then-callback", "callback_after_s")
    assert got[("pbxbridge_callback_seconds_count", ())] == 1
    assert callback[0] <= got[("pbxbridge_callback_seconds_sum", ())] <= callback[1]
    # What the burst has up at its busiest moment, read off its events.
    waiting = sum({"QueueCallerJoin": 1, "QueueCallerLeave": -1}.get(e["Event"], 0) for e in burst[:cut])
    assert waiting >= 10
    assert got[("pbxbridge_callers_waiting", ())] == waiting
    # One caller is already talking: the two gauges differ, so neither can stand in for the other.
    assert got[("pbxbridge_calls_in_progress", ())] == len(live_linkedids(burst[:cut])) > waiting

    # A replay of the same calls is no new call: the counters stay.
    await push(db_url, calls, service)
    assert samples(service.metrics_text()) == got


async def test_metrics_route() -> None:
    from aiohttp import web
    from aiohttp.test_utils import TestClient, TestServer

    from pbxbridge.kpi.metrics import metrics_handler

    service = KpiService()
    app = web.Application()
    app.router.add_get("/metrics", metrics_handler(service.metrics))
    async with TestClient(TestServer(app)) as client:
        response = await client.get("/metrics")
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/plain")
        names = {f.name for f in text_string_to_metric_families(await response.text())}
    assert {"pbxbridge_calls_in_progress", "pbxbridge_callers_waiting", "pbxbridge_callback_seconds"} <= names


def test_rebuild_follows_the_kpi_settings(
    db_url: str, shared_dir: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    asyncio.run(push(db_url, calls_of(shared_dir, "03-inbound-abandoned", *PJSIP_LAB), KpiService()))
    day = ("--from", "2026-11-26", "--db", db_url)
    (department,) = [json.loads(x) for x in run_cli(capsys, "kpi", *day).splitlines() if '"manager": null' in x]
    # 03 hung up about 23:05:45; the last call (pjsip-03) ended 14 min later: within 900 s, pending.
    assert (department["lost_leads"], department["callbacks_pending"]) == (0, 1)

    monkeypatch.setenv("PBXBRIDGE_KPI__LOST_LEAD_AFTER_S", "600")
    monkeypatch.setenv("PBXBRIDGE_KPI__TIMEZONE", "UTC")
    run_cli(capsys, "kpi", "rebuild", "--db", db_url)
    hourly = [json.loads(x) for x in run_cli(capsys, "kpi", *day, "--hourly").splitlines()]
    # 23:05 Moscow is 20:05 UTC: same date, hour 20; and 14 min is past a 600 s window.
    assert {r["hour"] for r in hourly} == {20}
    (department,) = [r for r in hourly if r["manager"] is None]
    assert (department["lost_leads"], department["callbacks_pending"]) == (1, 0)
    assert department["first_call_at"].endswith("+00:00")
