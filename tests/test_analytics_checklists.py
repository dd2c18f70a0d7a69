"""Checklists as the head of sales writes them: bad ones are refused with every problem named, nothing stored."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.analytics.checklist import ChecklistError, parse_checklist
from pbxbridge.analytics.matching import CallWords, Spoken, check_call
from pbxbridge.analytics.store import stored_checklists
from pbxbridge.cli.main import main
from pbxbridge.transcription.lemmas import lemma

GOOD = {
    "name": "Входящий",
    "applies": {"direction": "inbound", "queue": "sales", "min_talk_s": 10},
    "items": [
        {"title": "Поздоровался", "phrases": ["здравствуйте", "добрый день"], "side": "manager", "within_s": 10},
        {"title": "Договорился о следующем шаге", "phrases": ["следующий шаг"], "last_s": 60},
        {"title": "Не грубил", "phrases": ["не мои проблемы"], "must": False},
    ],
}


def test_every_problem_of_a_bad_checklist_is_named() -> None:
    bad = {
        "name": "",
        "applies": {"direction": "sideways", "min_talk_s": -1},
        "items": [
            {"title": "Без фраз", "phrases": []},
            {"title": "Сторона", "phrases": ["да"], "side": "boss", "within_s": 0, "must": "yes"},
            {"title": "Окна", "phrases": ["да"], "within_s": 5, "last_s": 5, "colour": "red"},
        ],
    }
    with pytest.raises(ChecklistError) as caught:
        parse_checklist(bad)
    problems = caught.value.problems
    for expected in (
        "name: a text is needed",
        "applies.direction: 'sideways' is not one of inbound, outbound, internal",
        "applies.min_talk_s: a number of seconds, 0 or more",
        "items[0].phrases: at least one phrase is needed",
        "items[1].side: 'boss' is not one of manager, client, any",
        "items[1].within_s: a number of seconds above 0",
        "items[1].must: true (must be said) or false (must not be said)",
        "items[2]: within_s (from the answer) or last_s (before the end), not both",
        "items[2].colour: unknown (known: last_s, must, phrases, side, title, within_s)",
    ):
        assert expected in problems, problems


def test_a_checklist_applies_to_the_calls_it_names() -> None:
    applies = parse_checklist(GOOD).applies
    assert applies.covers("inbound", ["sales"], 30)
    assert not applies.covers("outbound", ["sales"], 30)
    assert not applies.covers("inbound", ["support"], 30)
    assert not applies.covers("inbound", ["sales"], 5)


def _said(text: str, side: str | None, start: float = 0.0, step: float = 0.5, end_s: float = 100.0) -> list[Spoken]:
    return [
        Spoken(start + i * step, start + i * step + 0.4, side, w, lemma(w), 1, start + i * step, end_s - start - i * step)
        for i, w in enumerate(text.split())
    ]


def test_phrases_match_by_dictionary_form_in_order_on_their_side_in_their_window() -> None:
    checklist = parse_checklist(GOOD)
    # The manager greets at once; the client, not the manager, speaks of the next step.
    call = CallWords([
        *_said("Добрые дни компания Ромашка слушаю", "manager"),
        *_said("давайте обсудим наш следующий важный шаг", "client", start=40.0),
        *_said("шаг следующий", "manager", start=50.0),
    ])
    greeted, next_step, rude = check_call(call, checklist)
    assert greeted.passed and greeted.evidence == {"at_s": 0.0, "side": "manager", "words": "Добрые дни", "recording_id": 1}
    # «наш следующий важный шаг»: in order, one word between; said by the client (side any).
    assert next_step.passed and next_step.evidence is not None and next_step.evidence["side"] == "client"
    assert next_step.evidence["words"] == "следующий важный шаг"
    assert rude.passed and rude.evidence is None

    # Out of order, or too far apart, is not the phrase.
    apart = CallWords(_said("следующий это был очень долгий шаг", "manager"))
    reversed_ = CallWords(_said("шаг следующий", "manager"))
    for words in (apart, reversed_):
        assert not check_call(words, checklist)[1].passed

    # A greeting past the first 10 s is too late; the client greeting is not the manager's.
    late = CallWords(_said("здравствуйте", "manager", start=12.0))
    client = CallWords(_said("здравствуйте", "client"))
    assert not check_call(late, checklist)[0].passed
    assert not check_call(client, checklist)[0].passed


def _run(*argv: str) -> int:
    return main(list(argv))


async def test_cli_refuses_a_bad_file_and_stores_a_good_one(
    sessions: async_sessionmaker[AsyncSession], db_url: str, tmp_path: Path, capsys: Any
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps([GOOD, {"name": "Пустой", "items": []}], ensure_ascii=False), encoding="utf-8")
    assert await asyncio.to_thread(_run, "checklist", "set", str(bad), "--db", db_url) == 1
    assert "checklist 2: items: a list of at least one item" in capsys.readouterr().err
    broken = tmp_path / "broken.json"
    broken.write_text('{"name": "x", ', encoding="utf-8")
    assert await asyncio.to_thread(_run, "checklist", "set", str(broken), "--db", db_url) == 1
    assert "not JSON" in capsys.readouterr().err
    async with sessions() as session:
        # Nothing of a file with a bad checklist is stored, not even its good one.
        assert await stored_checklists(session) == []

    good = tmp_path / "good.json"
    good.write_text(json.dumps(GOOD, ensure_ascii=False), encoding="utf-8")
    assert await asyncio.to_thread(_run, "checklist", "set", str(good), "--db", db_url) == 0
    out = capsys.readouterr().out
    assert "Входящий: stored, version 1, 3 item(s)" in out and "re-check of past calls queued" in out
    assert await asyncio.to_thread(_run, "checklist", "set", str(good), "--db", db_url) == 0
    assert "Входящий: unchanged, version 1" in capsys.readouterr().out
    assert await asyncio.to_thread(_run, "checklist", "list", "--json", "--db", db_url) == 0
    (listed,) = json.loads(capsys.readouterr().out)
    assert listed["name"] == "Входящий" and [i["title"] for i in listed["items"]] == [i["title"] for i in GOOD["items"]]
    assert await asyncio.to_thread(_run, "analyze", "--all", "--db", db_url) == 0
    assert "0 calls checked" in capsys.readouterr().out
    assert await asyncio.to_thread(_run, "analyze", "--status", "--db", db_url) == 0
    assert json.loads(capsys.readouterr().out)["status"] == "done"


async def test_a_recheck_a_stopped_daemon_left_running_is_run_again(sessions: async_sessionmaker[AsyncSession]) -> None:
    import contextlib
    from datetime import UTC, datetime

    from pbxbridge.analytics.daemon import Analyst
    from pbxbridge.analytics.store import job_progress
    from pbxbridge.analytics.tables import RUNNING, AnalysisJob
    from pbxbridge.config import Config
    from pbxbridge.hub import Hub
    from tests.fixtures_ami import wait_until

    async with sessions() as session, session.begin():
        job = AnalysisJob(status=RUNNING, reason="checklist set: Входящий", total=10, done=4,
                          created_at=datetime.now(UTC), started_at=datetime.now(UTC))
        session.add(job)
        await session.flush()
        job_id = job.id
    hub = Hub(Config())

    async def no_pbx(pbx: str, action: dict[str, str], as_list: bool | None) -> None:
        raise ConnectionError(pbx)

    async def no_writer(until: float) -> None:
        return None

    hub.serve(sessions=sessions, write_sessions=sessions, send_action=no_pbx, calls_in_progress=list,
              pbx_clock=lambda _pbx: None, calls_up=lambda: 0, database_turn=contextlib.nullcontext,
              writer_first=no_writer)
    analyst = Analyst(hub, poll_s=0.05)
    await analyst.start()
    try:
        await wait_until(lambda: analyst.jobs_run >= 1, timeout=30)
    finally:
        await analyst.stop()
    async with sessions() as session:
        progress = await job_progress(session, job_id)
    assert progress is not None and progress["status"] == "done" and progress["done"] == progress["total"] == 0
