"""Missed clients to call back, built from what the calls are: real captured calls, some of them
given one client's number so that one client calls, is missed, is called back or calls again.

Timeline of the captures used (Unix seconds, 26.11.2026 around 23:05 Moscow time):
01 answered in 448-480 (203), 02 answered in 483-525 (202), 03 abandoned 528-545,
05 abandoned 598-620, 07 outbound no answer 672-704, 08 outbound busy 707-709, 12 answered in
835-882, 11 abandoned then called back by 202 (answered); pjsip-03 (07.12.2026) a click-to-call.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.ami.frames import Frame
from pbxbridge.calls.model import CallStatus, FinishedCall
from pbxbridge.calls.store import CallWriter
from pbxbridge.calls.tables import Call
from pbxbridge.cli.main import main
from pbxbridge.config import Config, DatabaseConfig
from pbxbridge.kpi.definitions import KpiSettings
from pbxbridge.kpi.service import KpiService
from pbxbridge.kpi.tables import CallFactRow
from pbxbridge.routing.sim_originate import manager_leg_fails
from pbxbridge.workflow.closing import CloseRefused, NothingOpen, close_row
from pbxbridge.workflow.worklist import SPAM, MissedRow, read_worklist
from tests.trace_edits import events_of, run

SETTINGS = KpiSettings()


def renumbered(events: list[Frame], old: str, new: str) -> list[Frame]:
    """The same call from another number: every header naming the client's number says ``new``."""
    return [{k: v.replace(old, new) for k, v in frame.items()} for frame in events]


def calls_of(shared_dir: Path, name: str, number: str | None = None, to: str | None = None) -> list[FinishedCall]:
    events = events_of(shared_dir / f"{name}.ami")
    if number is not None and to is not None:
        events = renumbered(events, number, to)
    return run(events)


def failed_click_to_call(shared_dir: Path, to: str) -> FinishedCall:
    """pjsip-03's click-to-call whose manager (205) never picked up, placed to ``to``."""
    events = manager_leg_fails(events_of(shared_dir / "pjsip-03-click-to-call-busy.ami"), "NOANSWER", "3")
    (call,) = run(renumbered(events, "79267770005", to))
    assert call.status is CallStatus.FAILED
    return call


async def journal(sessions: async_sessionmaker[AsyncSession], calls: list[FinishedCall]) -> None:
    """Write the calls as the daemon does, with the KPI figures following them."""
    config = Config(database=DatabaseConfig(url="sqlite://"))
    writer = CallWriter(sessions, config, after_write=[KpiService.from_config(config).record_written])
    for call in calls:
        await writer.write(call)


async def worklist(sessions: async_sessionmaker[AsyncSession]) -> dict[str, MissedRow]:
    async with sessions() as session:
        return {str(row.number): row for row in await read_worklist(session, SETTINGS)}


async def test_a_client_missed_twice_then_answered_is_no_longer_waiting(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    client = "+79161119999"
    first = calls_of(shared_dir, "03-inbound-abandoned", "79161110003", client[1:])
    second = calls_of(shared_dir, "05-inbound-busy-everyone", "79161110005", client[1:])
    await journal(sessions, first + second)
    rows = await worklist(sessions)
    row = rows[client]
    # One row for the client, not one per call: both calls, their waits added up.
    assert (row.missed_calls, row.callback_attempts, row.callback_s) == (2, 0, None)
    assert row.waited_s == pytest.approx(first[0].wait_s + second[0].wait_s, abs=0.01)
    assert row.opened_at == pytest.approx(first[0].ended_at, abs=0.01)
    assert row.last_missed_at == pytest.approx(second[0].started_at, abs=0.01)
    assert set(rows) == {client}

    # The client calls a third time and manager 202 answers (12, a later call): reached.
    await journal(sessions, calls_of(shared_dir, "12-blind-transfer", "79164440001", client[1:]))
    assert await worklist(sessions) == {}


async def test_a_client_called_back_and_answered_is_not_listed_and_the_kpis_have_the_callback(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path, expected: dict[str, object]
) -> None:
    missed, callback = calls_of(shared_dir, "11-missed-then-callback")
    await journal(sessions, [missed])
    assert list(await worklist(sessions)) == ["+79163330001"]
    await journal(sessions, [callback])
    assert await worklist(sessions) == {}
    async with sessions() as session:
        fact = (await session.execute(
            select(CallFactRow).join(Call, Call.id == CallFactRow.call_id).where(Call.linkedid == missed.linkedid)
        )).scalar_one()
    low, high = expected["11-missed-then-callback"]["calls"][0]["callback_after_s"]  # type: ignore[index]
    assert low <= fact.callback_s <= high


async def test_calls_out_nobody_answered_are_attempts_and_the_row_stays(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    client = "+79161110003"
    (missed,) = calls_of(shared_dir, "03-inbound-abandoned")
    (no_answer,) = calls_of(shared_dir, "07-outbound-noanswer", "79162220002", client[1:])
    (busy,) = calls_of(shared_dir, "08-outbound-busy", "79162220003", client[1:])
    assert (no_answer.status, busy.status) == (CallStatus.NO_ANSWER, CallStatus.BUSY)
    await journal(sessions, [missed, no_answer, busy])
    row = (await worklist(sessions))[client]
    assert (row.missed_calls, row.callback_attempts, row.last_attempt_status) == (1, 2, "busy")
    assert row.last_attempt_at == pytest.approx(busy.started_at, abs=0.01)
    # The KPIs' callback time: the first attempt's start after the caller hung up.
    assert row.callback_s == pytest.approx(no_answer.started_at - missed.ended_at, abs=0.01)


async def test_a_failed_click_to_call_reaches_nobody(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    client = "+79161110005"
    (missed,) = calls_of(shared_dir, "05-inbound-busy-everyone")
    await journal(sessions, [missed, failed_click_to_call(shared_dir, client[1:])])
    row = (await worklist(sessions))[client]
    assert (row.missed_calls, row.callback_attempts, row.callback_s) == (1, 0, None)


async def test_an_answered_call_before_the_miss_does_not_close_it(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    client = "+79161110001"
    (answered,) = calls_of(shared_dir, "01-inbound-answered")
    (missed,) = calls_of(shared_dir, "03-inbound-abandoned", "79161110003", client[1:])
    # Written the other way round, as a replay of two PBXes may: the times decide, not the order.
    await journal(sessions, [missed, answered])
    row = (await worklist(sessions))[client]
    assert row.call_ids and row.missed_calls == 1


async def test_internal_calls_and_answered_calls_are_never_rows(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    calls = [c for name in ("10-internal", "01-inbound-answered", "06-outbound-answered", "07-outbound-noanswer")
             for c in calls_of(shared_dir, name)]
    await journal(sessions, calls)
    assert await worklist(sessions) == {}


async def test_closing_by_hand_keeps_a_later_miss_open(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    client = "+79161110003"
    (first,) = calls_of(shared_dir, "03-inbound-abandoned")
    await journal(sessions, [first])
    row = (await worklist(sessions))[client]
    async with sessions() as session, session.begin():
        with pytest.raises(CloseRefused):
            await close_row(session, SETTINGS, row.client_id, "holiday", "ivan")
        await close_row(session, SETTINGS, row.client_id, SPAM, "ivan", through_call_id=row.last_missed_call_id)
    assert await worklist(sessions) == {}
    async with sessions() as session, session.begin():
        with pytest.raises(NothingOpen):
            await close_row(session, SETTINGS, row.client_id, SPAM, "ivan")

    # The same client calls again and nobody answers: a new row, with only the new call in it.
    (again,) = calls_of(shared_dir, "05-inbound-busy-everyone", "79161110005", client[1:])
    await journal(sessions, [again])
    reopened = (await worklist(sessions))[client]
    assert (reopened.missed_calls, reopened.opened_at) == (1, pytest.approx(again.ended_at, abs=0.01))
    # A person who saw only the first call cannot close the new one with it.
    async with sessions() as session, session.begin():
        with pytest.raises(CloseRefused):
            await close_row(session, SETTINGS, row.client_id, SPAM, "ivan", through_call_id=row.last_missed_call_id)


def test_replayed_captures_list_exactly_the_unanswered_clients_not_reached(
    db_url: str, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    traces = sorted(shared_dir.glob("[0-9][0-9]-*.ami")) + sorted(shared_dir.glob("pjsip-*.ami"))
    assert main(["replay", "--db", db_url, *map(str, traces)]) == 0
    capsys.readouterr()
    assert main(["missed", "--db", db_url, "--json"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines()]

    # The truth from the scripted scenarios: unanswered inbound callers, minus the one called back.
    expected = json.loads((shared_dir / "expected.json").read_text(encoding="utf-8"))
    truth: dict[str, int] = {}
    reached: set[str] = set()
    for scenario in expected.values():
        for call in scenario.get("calls", []):
            number = "+" + call["client"] if call.get("client") else None
            if call["direction"] == "inbound" and call["status"] in ("missed", "abandoned") and number:
                truth[number] = truth.get(number, 0) + 1
            if call["status"] == "answered" and call["direction"] in ("inbound", "outbound") and number:
                reached.add(number)
    wanted = {n: k for n, k in truth.items() if n not in reached}
    assert "+79163330001" in truth and "+79163330001" not in wanted  # 11: missed, then called back
    assert {r["number"]: r["missed_calls"] for r in rows} == wanted
    assert len({r["client_id"] for r in rows}) == len(rows)
    for row in rows:
        assert row["waited_s"] > 0 and row["callback_attempts"] == 0 and row["overdue"] is True


async def test_the_list_looks_back_so_many_days_from_the_newest_call(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path
) -> None:
    # 03 was missed on 26.11.2026, 16 (queues timed out, another client) on 07.12.2026.
    await journal(sessions, calls_of(shared_dir, "03-inbound-abandoned") + calls_of(shared_dir, "16-queues-time-out"))
    async with sessions() as session:
        both = [r.number for r in await read_worklist(session, SETTINGS, days=30)]
        assert both[0] == "+79161110003" and len(both) == 2
        assert [r.number for r in await read_worklist(session, SETTINGS, days=0)] == both
        assert [r.number for r in await read_worklist(session, SETTINGS, days=10)] == both[1:]
