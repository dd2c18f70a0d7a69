"""Re-checking every past call after a checklist changed: 10,000 generated calls, SQLite and PostgreSQL.

Each generated call is answered, has a two-channel recording and a transcript of
about 65 words in eight segments (``--turns``), the two sides taking turns: sentences of a sales
call (a greeting with the company's name, the need, the price, the next step), some
said in some calls only, so that items pass on some calls and fail on others; 3% of
calls hold a stop phrase. Rows go in by executemany; the search's word index is
filled by its triggers as in production (not timed).

Timed: ``pbxbridge.analytics.store.run_recheck`` as the daemon runs a queued job (in
chunks, the job's progress written after each), against a checklist of eight items
(one-word and multi-word phrases, sides, windows, a stop phrase): wall and CPU
seconds, calls per second, and the moments progress was reported.

    python benchmarks/recheck.py [--calls 10000] [--turns 8] [--db sqlite postgresql] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import random
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from _common import Stopwatch, scratch_database, write_section
from sqlalchemy import insert, select

from pbxbridge.analytics.checklist import parse_checklist
from pbxbridge.analytics.store import job_progress, queue_recheck, run_recheck, set_checklist
from pbxbridge.analytics.tables import CallCheck, CallConversation
from pbxbridge.calls.tables import Call, Recording
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.transcription.lemmas import lemmatise
from pbxbridge.transcription.tables import DONE, TranscriptionJob, TranscriptSegment

START = datetime(2026, 1, 12, 6, 0, tzinfo=UTC)
WORD_S = 0.35
MANAGER_LINES = [
    "Добрый день компания Ромашка меня зовут Анна чем могу помочь",
    "Подскажите пожалуйста для каких задач вам нужно оборудование",
    "Стоимость комплекта составляет сорок тысяч рублей с доставкой",
    "Могу предложить скидку пять процентов при оплате до пятницы",
    "Давайте договоримся о следующем шаге я пришлю коммерческое предложение сегодня",
    "Все наши операторы заняты пожалуйста оставайтесь на линии",
    "Хорошо я вас понял сейчас уточню наличие на складе",
]
CLIENT_LINES = [
    "Здравствуйте хотел узнать про ваши телефонные станции",
    "Нам нужна система для отдела продаж на двадцать человек",
    "А сколько это будет стоить и когда сможете привезти",
    "Это дороговато я подумаю и перезвоню",
    "Да присылайте предложение на почту посмотрим с директором",
    "Дополнительная информация есть на вашем сайте",
]
STOP_LINE = "Это не мои проблемы разбирайтесь сами"
CHECKLIST = {
    "name": "Входящий звонок",
    "applies": {"direction": "inbound"},
    "items": [
        {"title": "Поздоровался", "phrases": ["добрый день", "здравствуйте"], "side": "manager", "within_s": 15},
        {"title": "Назвал компанию", "phrases": ["компания ромашка"], "side": "manager", "within_s": 20},
        {"title": "Выяснил потребность", "phrases": ["для каких задач", "что вам нужно"], "side": "manager"},
        {"title": "Назвал цену", "phrases": ["стоимость", "цена составлять"], "side": "manager"},
        {"title": "Предложил скидку", "phrases": ["скидка"], "side": "manager"},
        {"title": "Договорился о следующем шаге", "phrases": ["следующий шаг", "пришлю предложение"], "last_s": 60},
        {"title": "Клиент назвал бюджет", "phrases": ["бюджет"], "side": "client"},
        {"title": "Без грубости", "phrases": ["не мои проблемы", "разбирайтесь сами"], "must": False},
    ],
}


def _segment(call_id: int, rec_id: int, start: float, side: str, text: str) -> tuple[dict[str, Any], float]:
    words = []
    t = start
    for word in text.split():
        words.append({"start": round(t, 2), "end": round(t + WORD_S - 0.05, 2), "word": word})
        t += WORD_S
    row = {
        "recording_id": rec_id, "call_id": call_id, "start_s": start, "end_s": t, "speaker": side,
        "text": text, "words": words, "lemmas": lemmatise(text),
    }
    return row, t


Rows = list[dict[str, Any]]


def generate(n: int, turns: int = 8, seed: int = 7) -> tuple[Rows, Rows, Rows, Rows]:
    rng = random.Random(seed)
    calls: Rows = []
    recordings: Rows = []
    jobs: Rows = []
    segments: Rows = []
    for j in range(1, n + 1):
        started = START + timedelta(minutes=7 * j)
        t = 1.0
        rows = []
        for turn in range(turns):
            side = "manager" if turn % 2 == 0 else "client"
            if side == "manager":
                line = MANAGER_LINES[0] if turn == 0 and rng.random() < 0.8 else rng.choice(MANAGER_LINES)
            else:
                line = rng.choice(CLIENT_LINES)
            if turn == turns - 1 and rng.random() < 0.03:
                line = STOP_LINE
            row, t = _segment(j, j, t, side, line)
            rows.append(row)
            t += rng.uniform(0.2, 1.5)
        talk = t + 2.0
        segments += rows
        calls.append({
            "id": j, "pbx": "main", "linkedid": f"1768{j:06d}.{j}", "direction": "inbound" if j % 5 else "outbound",
            "status": "answered", "client_number": f"+7916{j:07d}", "manager": f"20{1 + j % 5}",
            "final_manager": f"20{1 + j % 5}", "rang": [], "queues": ["sales"], "transferred_to": [],
            "started_at": started, "answered_at": started + timedelta(seconds=4),
            "ended_at": started + timedelta(seconds=4 + talk), "wait_s": 4.0, "talk_s": talk,
            "originated": False, "closed_by": "hangup",
        })
        recordings.append({
            "id": j, "call_id": j, "position": 0, "kind": "call", "pbx_path": f"/var/spool/asterisk/monitor/r-{j}.wav",
            "path": f"r-{j}.wav", "status": "ok", "format": "wav", "channels": 2, "sample_rate": 8000,
            "duration_s": talk, "size_bytes": int(talk * 32000),
        })
        jobs.append({
            "recording_id": j, "status": DONE, "attempts": 1, "next_attempt_at": started,
            "created_at": started, "finished_at": started + timedelta(minutes=1),
        })
    return calls, recordings, jobs, segments


async def _fill(url: str, n: int, turns: int) -> None:
    calls, recordings, jobs, segments = generate(n, turns)
    engine = make_engine(url)
    try:
        async with session_factory(engine)() as session, session.begin():
            for model, rows in ((Call, calls), (Recording, recordings), (TranscriptionJob, jobs), (TranscriptSegment, segments)):
                for k in range(0, len(rows), 5_000):
                    await session.execute(insert(model), rows[k: k + 5_000])
    finally:
        await engine.dispose()


async def _measure(url: str) -> dict[str, Any]:
    engine = make_engine(url)
    factory = session_factory(engine)
    reported: list[tuple[float, int, int]] = []
    try:
        async with factory() as session, session.begin():
            await set_checklist(session, parse_checklist(CHECKLIST))
            job = await queue_recheck(session, "benchmark: checklist set")
        clock = Stopwatch()
        cpu = time.process_time()

        def progress(done: int, total: int) -> None:
            reported.append((clock(), done, total))

        counts = await run_recheck(factory, job, progress=progress)
        wall, cpu_s = clock(), time.process_time() - cpu
        async with factory() as session:
            state = await job_progress(session, job)
            checks = len((await session.scalars(select(CallCheck.call_id))).all())
            figures = len((await session.scalars(select(CallConversation.call_id))).all())
            passed = (await session.execute(select(CallCheck.items_passed, CallCheck.items_total))).all()
    finally:
        await engine.dispose()
    assert state is not None and state["status"] == "done" and state["done"] == state["total"]
    return {
        "wall": wall, "cpu": cpu_s, "calls": counts.calls, "checks": checks, "figures": figures,
        "adherence": sum(p for p, _t in passed) / max(1, sum(t for _p, t in passed)),
        "first_progress": reported[0][0] if reported else None, "reports": len(reported),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=10_000)
    parser.add_argument("--turns", type=int, default=8, help="segments per call, the sides taking turns")
    parser.add_argument("--db", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"])
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = parser.parse_args()
    lines = [
        "| database | calls | segments a call | checks written | with figures | wall s | CPU s | calls/s "
        "| first progress after s | progress reports |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory() as tmp:
        for kind in args.db:
            with scratch_database(kind, Path(tmp)) as db:
                fill = Stopwatch()
                asyncio.run(_fill(db.url, args.calls, args.turns))
                print(f"{kind}: {args.calls} calls generated and loaded in {fill():.1f} s")
                r = asyncio.run(_measure(db.url))
                print(f"{kind}: re-checked {r['calls']} calls in {r['wall']:.1f} s wall, {r['cpu']:.1f} s CPU "
                      f"({r['calls'] / r['wall']:.0f} calls/s); {r['checks']} checks, {r['figures']} with figures, "
                      f"adherence {r['adherence']:.0%}; first progress after {r['first_progress']:.1f} s")
                lines.append(
                    f"| {kind} | {r['calls']:,} | {args.turns} | {r['checks']:,} | {r['figures']:,} | {r['wall']:.1f} "
                    f"| {r['cpu']:.1f} | {r['calls'] / r['wall']:.0f} | {r['first_progress']:.1f} | {r['reports']} |"
                )
    body = "\n".join(lines)
    print("\n" + body)
    if not args.no_write:
        write_section("recheck", "Re-checking past calls after a checklist change", body)


if __name__ == "__main__":
    main()
