"""Speech figures in the KPI store: script adherence, stop-phrase calls and talk share per manager per day.

The checks are made by the analytics domain's own checker on stored two-sided
transcripts; the store is fed as the daemon feeds it, and the figures are held
against what the analytics domain reads off its own tables, and against their drill-downs.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.analytics.checklist import parse_checklist
from pbxbridge.analytics.daemon import Analyst
from pbxbridge.analytics.kpi import DEPARTMENT, feed_kpi_store, speech_days, speech_parts
from pbxbridge.analytics.store import analyse_calls, set_checklist, stored_checklists
from pbxbridge.calls.tables import Call, Recording
from pbxbridge.config import Config
from pbxbridge.hub import Hub
from pbxbridge.kpi.definitions import KpiSettings
from pbxbridge.kpi.drilldown import COUNTED, drill_down
from pbxbridge.kpi.store import KpiRecorder
from pbxbridge.kpi.tables import ManagerDayRow
from pbxbridge.transcription.lemmas import lemmatise, words_of
from pbxbridge.transcription.tables import DONE as TRANSCRIBED
from pbxbridge.transcription.tables import TranscriptionJob, TranscriptSegment
from pbxbridge.web.api_kpi import totals

SETTINGS = KpiSettings()
DAY = date(2026, 12, 1)
SCRIPT = {"name": "Скрипт", "items": [
    {"title": "Поздоровался", "phrases": ["здравствуйте"], "side": "manager"},
    {"title": "Следующий шаг", "phrases": ["следующий шаг"], "side": "manager"},
    {"title": "Без грубости", "phrases": ["не мои проблемы"], "side": "manager", "must": False},
]}
# (call id, manager, start (UTC), what the manager says, what the client says)
CALLS = [
    # 01:30 in Moscow on 1 December, still 30 November in UTC.
    (1, "201", datetime(2026, 11, 30, 22, 30, tzinfo=UTC),
     "здравствуйте компания ромашка давайте назначим следующий шаг на завтра", "да хорошо"),
    (2, "201", datetime(2026, 12, 1, 9, 0, tzinfo=UTC),
     "здравствуйте это не мои проблемы", "мне нужна помощь с заказом пожалуйста помогите"),
    (3, "202", datetime(2026, 12, 1, 10, 0, tzinfo=UTC), "алло слушаю", "я по поводу доставки"),
    # 2 December: another day.
    (4, "202", datetime(2026, 12, 2, 10, 0, tzinfo=UTC), "здравствуйте обсудим следующий шаг", "давайте"),
]


def _segment(call_id: int, start: float, speaker: str, text: str) -> TranscriptSegment:
    words = [{"start": start + i * 0.4, "end": start + i * 0.4 + 0.3, "word": w} for i, w in enumerate(words_of(text))]
    return TranscriptSegment(
        recording_id=call_id, call_id=call_id, start_s=start, end_s=start + len(words) * 0.4,
        speaker=speaker, text=text, words=words, lemmas=lemmatise(text),
    )


async def _calls_with_transcripts(sessions: async_sessionmaker[AsyncSession]) -> None:
    async with sessions() as session, session.begin():
        for call_id, manager, started, _said, _heard in CALLS:
            session.add(Call(
                id=call_id, pbx="main", linkedid=f"1764.{call_id}", direction="inbound", status="answered",
                manager=manager, final_manager=manager, rang=[manager], queues=[], transferred_to=[],
                client_number=f"+7495123456{call_id}",
                started_at=started, answered_at=started + timedelta(seconds=5), ended_at=started + timedelta(seconds=65),
                wait_s=5.0, talk_s=60.0, originated=False, closed_by="hangup",
            ))
        await session.flush()
        for call_id, _manager, _started, said, heard in CALLS:
            session.add(Recording(
                id=call_id, call_id=call_id, position=0, pbx_path=f"/var/spool/asterisk/monitor/{call_id}.wav",
                path=f"{call_id}.wav", status="ok", format="wav", channels=2, sample_rate=8000, duration_s=60.0,
                size_bytes=60 * 32000,
            ))
        await session.flush()
        for call_id, _manager, started, said, heard in CALLS:
            session.add(TranscriptionJob(
                recording_id=call_id, status=TRANSCRIBED, next_attempt_at=started, created_at=started,
                finished_at=started,
            ))
            session.add(_segment(call_id, 1.0, "manager", said))
            session.add(_segment(call_id, 20.0, "client", heard))
        await KpiRecorder(SETTINGS).rebuild(session)


async def _check_all(sessions: async_sessionmaker[AsyncSession], checklist: dict[str, object]) -> None:
    async with sessions() as session, session.begin():
        await set_checklist(session, parse_checklist(checklist))
    async with sessions() as session:
        stored = await stored_checklists(session)
    await analyse_calls(sessions, [c[0] for c in CALLS], stored)
    async with sessions() as session, session.begin():
        await feed_kpi_store(session, SETTINGS, None)


async def _day_rows(sessions: async_sessionmaker[AsyncSession], day: date) -> dict[str, ManagerDayRow]:
    async with sessions() as session:
        rows = await session.scalars(select(ManagerDayRow).where(ManagerDayRow.day == day))
        return {r.manager: r for r in rows}


async def test_the_store_holds_what_the_checks_found_per_manager_per_local_day(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _calls_with_transcripts(sessions)
    before = await _day_rows(sessions, DAY)
    # Nothing checked yet: no adherence, no talk share (absent, not 0 %).
    assert before["201"].speech_calls == 0
    assert before["201"].script_adherence is None and before["201"].talk_share is None

    await _check_all(sessions, SCRIPT)
    rows = await _day_rows(sessions, DAY)
    m201, m202, dept = rows["201"], rows["202"], rows[DEPARTMENT]
    # 201: greeted and agreed the next step (3 of 3), then greeted and was rude (1 of 3).
    assert (m201.speech_calls, m201.speech_items_passed, m201.speech_items) == (2, 4, 6)
    assert m201.script_adherence == 4 / 6
    assert m201.stop_phrase_calls == 1
    # 202 on 1 December: said none of the script, nothing rude (1 of 3).
    assert (m202.speech_calls, m202.script_adherence, m202.stop_phrase_calls) == (1, 1 / 3, 0)
    assert (dept.speech_calls, dept.speech_items_passed, dept.speech_items, dept.stop_phrase_calls) == (3, 5, 9, 1)
    # The next day holds its own call.
    assert (await _day_rows(sessions, date(2026, 12, 2)))["202"].script_adherence == 1.0

    # The same figures as the analytics domain reads off its own tables.
    async with sessions() as session:
        days = {(r.day, r.manager): r for r in await speech_days(session, DAY, DAY, SETTINGS.zone)}
    for who, row in rows.items():
        expected = days[(DAY, who)]
        assert row.speech_calls == expected.checked_calls
        assert row.script_adherence == expected.adherence
        assert row.stop_phrase_calls == expected.stop_phrase_calls
        assert row.talk_calls == expected.talk_calls == row.speech_calls
        assert row.talk_share is not None and expected.talk_share is not None
        assert abs(row.talk_share - expected.talk_share) < 1e-9
    # Call 2: the client talked longer than the manager; call 1 the other way round.
    assert 0 < m201.talk_share < 1

    # Figure == drill-down, for the speech figures as for every counted one.
    assert {"speech_calls", "stop_phrase_calls", "talk_calls"} <= set(COUNTED)
    async with sessions() as session:
        for who in ("201", "202", None):
            row = rows[who or DEPARTMENT]
            for kpi in ("speech_calls", "stop_phrase_calls", "talk_calls"):
                found = await drill_down(session, kpi, DAY, DAY, who, SETTINGS)
                assert found.count == getattr(row, kpi), (who, kpi)
        stops = await drill_down(session, "stop_phrase_calls", DAY, DAY, "201", SETTINGS)
    assert stops.call_ids == [2]


async def test_a_changed_script_and_a_rebuild_keep_the_figures_current(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _calls_with_transcripts(sessions)
    await _check_all(sessions, SCRIPT)
    # The head adds an item every call passes: adherence rises when the calls are checked again.
    changed = {**SCRIPT, "items": [*SCRIPT["items"], {"title": "Назвал компанию или нет", "phrases": ["алло", "здравствуйте"]}]}  # type: ignore[list-item]
    await _check_all(sessions, changed)
    m201 = (await _day_rows(sessions, DAY))["201"]
    assert (m201.speech_items_passed, m201.speech_items) == (6, 8)

    # kpi rebuild: from the analytics domain's reader, and keeping what the store held without one.
    for source in (speech_parts, None):
        async with sessions() as session, session.begin():
            await KpiRecorder(SETTINGS).rebuild(session, speech=source)
        again = (await _day_rows(sessions, DAY))["201"]
        assert (again.speech_items_passed, again.speech_items, again.stop_phrase_calls) == (6, 8, 1)
        assert again.talk_share == m201.talk_share


def _served_hub(sessions: async_sessionmaker[AsyncSession]) -> Hub:
    hub = Hub(Config())

    async def no_pbx(pbx: str, action: dict[str, str], as_list: bool | None) -> None:
        raise ConnectionError(pbx)

    async def no_writer(until: float) -> None:
        return None

    hub.serve(
        sessions=sessions, write_sessions=sessions, send_action=no_pbx, calls_in_progress=list,
        pbx_clock=lambda _pbx: None, calls_up=lambda: 0, database_turn=asyncio.Lock, writer_first=no_writer,
    )
    return hub


async def test_the_daemon_feeds_the_store_as_each_transcript_is_checked(
    sessions: async_sessionmaker[AsyncSession],
) -> None:
    await _calls_with_transcripts(sessions)
    async with sessions() as session, session.begin():
        await set_checklist(session, parse_checklist(SCRIPT))
    analyst = Analyst(_served_hub(sessions))
    # Call 2's transcript is stored: only its figures appear, 201's rude call.
    await analyst.transcript_ready(2)
    m201 = (await _day_rows(sessions, DAY))["201"]
    assert (m201.speech_calls, m201.speech_items_passed, m201.speech_items, m201.stop_phrase_calls) == (1, 1, 3, 1)
    assert (await _day_rows(sessions, DAY))["202"].speech_calls == 0
    await analyst.transcript_ready(1)
    m201 = (await _day_rows(sessions, DAY))["201"]
    assert (m201.speech_calls, m201.script_adherence, m201.stop_phrase_calls) == (2, 4 / 6, 1)


def test_a_period_s_shares_come_from_its_summed_parts_not_a_mean_of_days() -> None:
    days = [
        {"date": "2026-12-01", "manager": "201", "manager_name": None, "speech_calls": 1, "speech_items": 10,
         "speech_items_passed": 10, "stop_phrase_calls": 0, "manager_talk_s": 10.0, "client_talk_s": 90.0},
        {"date": "2026-12-02", "manager": "201", "manager_name": None, "speech_calls": 3, "speech_items": 30,
         "speech_items_passed": 0, "stop_phrase_calls": 2, "manager_talk_s": 300.0, "client_talk_s": 100.0},
    ]
    period = totals(days, 30, date(2026, 12, 1))["201"]
    # 10 of 40 items (a mean of the days' 100 % and 0 % would say 50 %); 310 s of 500 s.
    assert period["script_adherence"] == 0.25
    assert period["talk_share"] == 0.62
    assert (period["speech_calls"], period["stop_phrase_calls"]) == (4, 2)
