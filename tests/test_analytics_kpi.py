"""Script adherence, stop-phrase calls and talk share per manager per business day (Moscow time)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.analytics.checklist import parse_checklist
from pbxbridge.analytics.kpi import DEPARTMENT, speech_days, speech_drilldown
from pbxbridge.analytics.store import set_checklist
from pbxbridge.analytics.tables import CallCheck, CallConversation
from pbxbridge.calls.tables import Call

MOSCOW = ZoneInfo("Europe/Moscow")
SCRIPT = parse_checklist({"name": "Скрипт", "items": [
    {"title": "Поздоровался", "phrases": ["здравствуйте"]},
    {"title": "Следующий шаг", "phrases": ["следующий шаг"]},
    {"title": "Без грубости", "phrases": ["не мои проблемы"], "must": False},
]})


def _verdicts(greeted: bool, next_step: bool, rude: bool) -> list[dict[str, object]]:
    return [
        {"title": "Поздоровался", "must": True, "passed": greeted},
        {"title": "Следующий шаг", "must": True, "passed": next_step},
        {"title": "Без грубости", "must": False, "passed": not rude},
    ]


async def test_figures_per_manager_per_local_day_with_the_calls_behind_them(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    # 201: two calls on 1 December (Moscow), one of them at 01:30 Moscow, still 30 November in UTC.
    # 202: one call on 1 December; one call of 202 on 2 December.
    calls = [
        (1, "201", datetime(2026, 11, 30, 22, 30, tzinfo=UTC), (True, True, False), (30.0, 70.0)),
        (2, "201", datetime(2026, 12, 1, 9, 0, tzinfo=UTC), (True, False, True), None),
        (3, "202", datetime(2026, 12, 1, 10, 0, tzinfo=UTC), (False, False, False), (60.0, 40.0)),
        (4, "202", datetime(2026, 12, 2, 10, 0, tzinfo=UTC), (True, True, False), None),
    ]
    async with sessions() as session, session.begin():
        stored, _ = await set_checklist(session, SCRIPT)
        for call_id, manager, started, verdict, talk in calls:
            session.add(Call(
                id=call_id, pbx="main", linkedid=f"1764.{call_id}", direction="inbound", status="answered",
                manager=manager, final_manager=manager, rang=[manager], queues=[], transferred_to=[],
                started_at=started, answered_at=started + timedelta(seconds=5), ended_at=started + timedelta(seconds=105),
                wait_s=5.0, talk_s=100.0, originated=False, closed_by="hangup",
            ))
        await session.flush()
        for call_id, _manager, started, verdict, talk in calls:
            results = _verdicts(*verdict)
            session.add(CallCheck(
                call_id=call_id, checklist_id=stored.id, checklist_version=1, items_total=3,
                items_passed=sum(bool(r["passed"]) for r in results), stop_phrases=int(verdict[2]),
                results=results, checked_at=started,
            ))
            if talk:
                session.add(CallConversation(
                    call_id=call_id, duration_s=100.0, manager_talk_s=talk[0], client_talk_s=talk[1],
                    manager_share=talk[0] / 100, client_share=talk[1] / 100, longest_monologue_s=10.0,
                    interruptions=0, manager_interruptions=0, client_interruptions=0, silence_share=0.0,
                    manager_wpm=120.0, client_wpm=110.0,
                ))

    async with sessions() as session:
        days = {(r.day, r.manager): r for r in await speech_days(session, date(2026, 12, 1), date(2026, 12, 1), MOSCOW)}
    assert set(days) == {(date(2026, 12, 1), m) for m in ("201", "202", DEPARTMENT)}
    m201, m202, dept = days[(date(2026, 12, 1), "201")], days[(date(2026, 12, 1), "202")], days[(date(2026, 12, 1), "")]
    # 201: 3 of 3 and 1 of 3 items passed; one call with a stop phrase.
    assert (m201.checked_calls, m201.items_passed, m201.items_total) == (2, 4, 6)
    assert m201.adherence == 4 / 6 and m201.stop_phrase_calls == 1
    # Talk share from the one two-channel call only.
    assert m201.talk_calls == 1 and m201.talk_share == 0.3
    assert m202.adherence == 1 / 3 and m202.stop_phrase_calls == 0 and m202.talk_share == 0.6
    assert (dept.checked_calls, dept.items_passed, dept.items_total, dept.stop_phrase_calls) == (3, 5, 9, 1)
    assert dept.talk_share == 90 / 200

    async with sessions() as session:
        failed_next = await speech_drilldown(
            session, date(2026, 12, 1), date(2026, 12, 2), MOSCOW, failed_item="Следующий шаг"
        )
        stops = await speech_drilldown(session, date(2026, 12, 1), date(2026, 12, 1), MOSCOW, stop_phrase=True)
        of_202 = await speech_drilldown(session, date(2026, 12, 1), date(2026, 12, 2), MOSCOW, manager="202")
    assert [c["linkedid"] for c in failed_next] == ["1764.3", "1764.2"]
    assert [c["linkedid"] for c in stops] == ["1764.2"]
    assert [c["linkedid"] for c in of_202] == ["1764.4", "1764.3"]
