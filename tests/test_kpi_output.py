"""What leaves the KPI store: `pbxbridge kpi` JSON and CSV, and the Prometheus text for /metrics."""

from __future__ import annotations

import asyncio
import csv
import io
import json
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from pbxbridge.cli.main import main
from pbxbridge.kpi.definitions import FIGURES
from pbxbridge.kpi.service import KpiService
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


async def test_metrics_text(db_url: str, shared_dir: Path, expected: dict[str, Any]) -> None:
    service = KpiService()
    calls = calls_of(shared_dir, *LOCAL_LAB, *PJSIP_LAB, "11-missed-then-callback")
    await push(db_url, calls, service)
    service.metrics.set_live(calls_in_progress=3, callers_waiting=1)
    got = samples(service.metrics_text())

    def answered(manager: str, direction: str) -> float:
        return got[("pbxbridge_calls_answered_total", (("direction", direction), ("manager", manager)))]

    # Answered inbound: 203 took 01; 202 took 02 and pjsip-01; 205 took 04.
    assert (answered("203", "inbound"), answered("202", "inbound"), answered("205", "inbound")) == (1, 2, 1)
    # Answered outbound: 203's 06, 204's 09 and pjsip-02, 202's callback in 11.
    assert (answered("203", "outbound"), answered("204", "outbound"), answered("202", "outbound")) == (1, 2, 1)
    # 204 rang only in 04 (the overflow queue), where 205 answered.
    assert got[("pbxbridge_calls_missed_total", (("manager", "204"),))] == 1
    # Callers nobody answered: 03, 05 and 11's first call, all hung up themselves.
    assert got[("pbxbridge_inbound_unanswered_total", (("status", "abandoned"),))] == 3
    assert got[("pbxbridge_inbound_wait_seconds_count", (("outcome", "answered"),))] == 4
    # The four answered callers' scripted waits are all within the 20 s bucket.
    queued = ("01-inbound-answered", "02-inbound-second-agent", "04-inbound-overflow", "pjsip-01-inbound-ringall")
    assert all(scripted(expected, s, "wait_s")[1] <= 20 for s in queued)
    assert got[("pbxbridge_inbound_wait_seconds_bucket", (("le", "20.0"), ("outcome", "answered")))] == 4
    assert got[("pbxbridge_callback_seconds_count", ())] == 1
    low, high = scripted(expected, "11-missed-then-callback", "callback_after_s")
    assert low <= got[("pbxbridge_callback_seconds_sum", ())] <= high
    assert got[("pbxbridge_calls_in_progress", ())] == 3 and got[("pbxbridge_callers_waiting", ())] == 1

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
