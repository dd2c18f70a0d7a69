"""One meaning of "not called back" for the wallboard, the missed-calls worklist and the drill-down:
a missed client waits until the company reaches them (an answered call either way); a call out
that nobody answered is an attempt and leaves them waiting. On SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from pbxbridge.calls.model import CallStatus, FinishedCall
from pbxbridge.calls.store import CallWriter
from pbxbridge.kpi.callbacks import waiting_on
from pbxbridge.kpi.definitions import KpiSettings
from pbxbridge.kpi.service import KpiService
from pbxbridge.kpi.tables import CallFactRow
from pbxbridge.workflow.worklist import read_worklist
from tests.fixtures_floor import FloorSite, serve_floor
from tests.fixtures_web import fast_password_hashing, local_lab_traces  # noqa: F401 - fixture
from tests.test_workflow_missed import calls_of

MSK = ZoneInfo("Europe/Moscow")
LAB_DAY = date(2026, 11, 26)
LAB_NOON = datetime(2026, 11, 26, 12, 0, tzinfo=MSK).timestamp()
SETTINGS = KpiSettings()


@pytest.fixture
async def site(db_url: str, shared_dir: Path, fast_password_hashing: None) -> AsyncIterator[FloorSite]:  # noqa: F811
    async with serve_floor(db_url, shared_dir, clock=lambda: LAB_NOON) as floor:
        yield floor


async def write(site: FloorSite, calls: list[FinishedCall]) -> None:
    writer = CallWriter(site.sessions, site.config, after_write=[KpiService.from_config(site.config).record_written])
    for call in calls:
        await writer.write(call)


async def three_counts(site: FloorSite, day: date) -> tuple[int, set[int], set[int]]:
    """The wallboard's figure, the worklist's clients with a missed call of the day, the drill-down's clients."""
    _, snap = await (await site.signed_in("sergey")).json("GET", "/api/live/snapshot")
    async with site.sessions() as db:
        rows = await read_worklist(db, SETTINGS, days=0)
        days = {c: d for c, d in (await db.execute(select(CallFactRow.call_id, CallFactRow.day))).all()}
        listed = await waiting_on(db, day)
    worklist_today = {r.client_id for r in rows if any(days[c] == day for c in r.call_ids)}
    assert snap["totals"]["missed_not_called_back"]["day"] == day.isoformat()
    # The page the wallboard's figure opens: as many clients as the figure, the same ones.
    olga = await site.signed_in("olga")
    status, drilled = await olga.json("GET", "/api/kpi/missed_not_called_back/calls",
                                      params={"from": day.isoformat(), "to": day.isoformat(), "per_page": "200"})
    assert status == 200, drilled
    assert drilled["count"] == len(drilled["rows"]) == len(listed)
    assert {r["client_id"] for r in drilled["rows"]} == {w.client_id for w in listed}
    # ... and the journal it links to, one row per client.
    _, journal = await olga.json("GET", "/api/calls", params={
        "kpi": "missed_not_called_back", "from": day.isoformat(), "to": day.isoformat(), "per_page": "200"})
    assert journal["total"] == len(listed), journal
    return snap["totals"]["missed_not_called_back"]["callers"], worklist_today, {w.client_id for w in listed}


async def test_on_the_shared_captures_the_wallboard_the_worklist_and_the_drill_down_agree(
    site: FloorSite, shared_dir: Path
) -> None:
    await site.journal(local_lab_traces(shared_dir))
    total, worklist_today, drilled = await three_counts(site, LAB_DAY)
    # 03, 05, 16, 17 and the burst's callers who gave up; 11 was called back and answered.
    assert total >= 4
    assert total == len(worklist_today) == len(drilled)
    assert worklist_today == drilled
    async with site.sessions() as db:
        reached_11 = await db.scalar(
            select(CallFactRow.client_id).where(CallFactRow.day == LAB_DAY, CallFactRow.callback_s.is_not(None),
                                                CallFactRow.status == "abandoned")
        )
    assert reached_11 is not None and reached_11 not in drilled


async def test_a_call_out_nobody_answered_leaves_the_caller_waiting_until_one_is_answered(
    site: FloorSite, shared_dir: Path
) -> None:
    client = "+79161110003"
    (missed,) = calls_of(shared_dir, "03-inbound-abandoned")
    (no_answer,) = calls_of(shared_dir, "07-outbound-noanswer", "79162220002", client[1:])
    assert no_answer.status is CallStatus.NO_ANSWER
    await write(site, [missed, no_answer])
    # The attempt is the KPIs' callback (its time is measured) ...
    async with site.sessions() as db:
        assert await db.scalar(select(CallFactRow.callback_s).where(CallFactRow.status == "abandoned")) is not None
    # ... but nobody has spoken to the caller: still one to call back, everywhere.
    total, worklist_today, drilled = await three_counts(site, LAB_DAY)
    assert (total, len(worklist_today), len(drilled)) == (1, 1, 1)

    # A manager's call the client answers (06, renumbered to the caller) reaches them.
    (answered,) = calls_of(shared_dir, "06-outbound-answered", "79162220001", client[1:])
    assert answered.status is CallStatus.ANSWERED
    await write(site, [answered])
    assert await three_counts(site, LAB_DAY) == (0, set(), set())
