"""Search and KPI queries at 100k and 1M calls with transcripts, on SQLite and PostgreSQL.

Rows are generated, not replayed: calls spread over a year of business hours with fresh
linkedids, dates and client numbers, each answered call with a recording and a two-sided
transcript made of the shared recordings' speech (the manager says
``queue-periodic-announce``, the client ``demo-moreinfo``). So that searches of different
selectivity can be timed, 5% of the clients' segments also ask for a discount («скидка») and
0.1% for instalments («рассрочка»). Rows go in by executemany (SQLite) and COPY (PostgreSQL);
the search's word index (transcript_terms) is then filled by one statement, the migration's
backfill, rather than row by row by its triggers; KPI figures are computed per day by the
KPI store's own ``recompute_day``.

Timed, each ``--repeat`` times after one warm-up, through the project's functions:
* search (pbxbridge.transcription.search.search): a rare word, a medium word, a common
  word (all in another word form than stored), a rare and a common word together, part of
  a client's number, and part of a client's name typed in lower case;
* the page the web journal shows for a text search (search_calls: 50 calls, each with its
  first hit, and the count of matching calls up to 1,000);
* the KPI dashboard (what GET /api/kpi does by default): the latest day with figures,
  then pbxbridge.kpi.report.read_figures over the two weeks to it; and over a whole year.

    python benchmarks/queries.py [--quick] [--sizes 100000 1000000] [--db sqlite postgresql] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import importlib
import io
import json
import logging
import pstats
import random
import sqlite3
import tempfile
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from _common import Database, Stopwatch, percentile, scratch_database, write_section
from sqlalchemy import func, make_url, select

from pbxbridge.calls.tables import Call, Recording
from pbxbridge.clients.tables import Client, ClientPhone, Manager, fold_name
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.kpi.calendar import local_day
from pbxbridge.kpi.definitions import KpiSettings
from pbxbridge.kpi.report import read_figures
from pbxbridge.kpi.store import KpiRecorder, _fact_values, fact_from_call
from pbxbridge.kpi.tables import CallFactRow, ManagerDayRow
from pbxbridge.transcription.lemmas import lemmatise, words_of
from pbxbridge.transcription.search import search, search_calls
from pbxbridge.transcription.tables import TranscriptSegment

# The revision that creates the search's word index: its backfill and triggers.
SEARCH_MIGRATION = importlib.import_module("pbxbridge.db.migrations.versions.0007_search_terms")

MANAGER_SAYS = ("Все наши операторы заняты. Пожалуйста, оставайтесь на линии, и Ваш звонок будет "
                "обслужен первым доступным оператором.")
CLIENT_SAYS = ("Asterisk это полноценная телефонная станция и платформа для голосовых меню, работающая "
               "под операционной системой Линукс. Дополнительная информация на сайте www.asterisk.org")
MEDIUM_ADDITION, MEDIUM_SHARE = " Какая скидка для постоянных клиентов?", 0.05
RARE_ADDITION, RARE_SHARE = " Можно оформить рассрочку на год?", 0.001
SEARCHES = {
    "rare word (0.1% of calls)": "рассрочки",
    "medium word (5%)": "скидку",
    "common word (every answered call)": "операторов",
    "two words (rare + common)": "рассрочку оператор",
    "client number digits": "9160000123",
    "client name, lower case": "клиент 12340",
}
# What GET /api/calls?q=… does: one page of calls with a hit each, matching calls counted up to a cap.
WEB_SEARCHES = {"medium word": "скидку", "common word": "операторов"}
WEB_PAGE, WEB_COUNT_UP_TO = 50, 1_000
MANAGERS = [f"{200 + i}" for i in range(1, 9)]
DAYS = 365
TARGET_SEARCH_P95_MS, TARGET_KPI_P95_MS = 50, 200
BUDGET_PER_QUERY_S, MIN_RUNS = 10.0, 3


@dataclass(slots=True)
class Dataset:
    """Generated rows by table name, as plain Python values."""

    calls: int
    tables: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    days: set[date] = field(default_factory=set)


def _segment_variants() -> dict[str, dict[str, Any]]:
    """Each text once with its lemmas and word times (lemmatising a million copies would take hours)."""
    texts = [MANAGER_SAYS, CLIENT_SAYS, CLIENT_SAYS + MEDIUM_ADDITION, CLIENT_SAYS + RARE_ADDITION]
    out = {}
    for text in texts:
        words = [{"start": round(i * 0.4, 2), "end": round(i * 0.4 + 0.35, 2), "word": w}
                 for i, w in enumerate(words_of(text))]
        out[text] = {"text": text, "lemmas": lemmatise(text), "words": words, "length": len(words) * 0.4}
    return out


def generate(n_calls: int, seed: int = 11) -> Dataset:
    """A year of calls with clients, managers, recordings, transcripts and KPI facts."""
    rng = random.Random(seed)
    variants = _segment_variants()
    settings = KpiSettings()
    data = Dataset(n_calls)
    data.tables["managers"] = [{"id": i + 1, "extension": ext, "name": f"Менеджер {ext}"} for i, ext in enumerate(MANAGERS)]
    first_day = datetime(2025, 11, 27, tzinfo=UTC)
    n_clients = max(10, n_calls // 3)
    data.tables["clients"] = [
        {"id": i, "name": f"ООО Клиент {i}" if i % 10 == 0 else None,
         "name_folded": fold_name(f"ООО Клиент {i}") if i % 10 == 0 else None, "is_lead": False,
         "created_at": first_day, "responsible_manager_id": None, "notes": None}
        for i in range(1, n_clients + 1)
    ]
    data.tables["client_phones"] = [{"id": i, "client_id": i, "number": f"+7916{i:07d}"} for i in range(1, n_clients + 1)]
    calls, recordings, segments, facts = [], [], [], []
    rec_id = seg_id = 0
    for j in range(1, n_calls + 1):
        # Business hours in Moscow (09:00-19:00 = 06:00-16:00 UTC), every day of the year.
        started = first_day + timedelta(days=rng.randrange(DAYS), seconds=6 * 3600 + rng.uniform(0, 10 * 3600))
        kind = rng.random()
        direction = "inbound" if kind < 0.6 else "outbound" if kind < 0.95 else "internal"
        manager = rng.choice(MANAGERS)
        roll = rng.random()
        if direction == "inbound":
            status = "answered" if roll < 0.7 else "abandoned" if roll < 0.85 else "missed"
        elif direction == "outbound":
            status = "answered" if roll < 0.6 else "no_answer" if roll < 0.85 else "busy"
        else:
            status = "answered"
        client_id = rng.randrange(1, n_clients + 1) if direction != "internal" else None
        wait = rng.uniform(2, 40)
        talk = rng.uniform(20, 600) if status == "answered" else 0.0
        answered = started + timedelta(seconds=wait) if status == "answered" else None
        ended = started + timedelta(seconds=wait + talk)
        placed_or_answered = manager if (status == "answered" or direction != "inbound") else None
        call = {
            "id": j, "pbx": "main", "linkedid": f"{1_800_000_000 + j}.{j % 977}-q", "direction": direction,
            "status": status, "client_id": client_id,
            "client_number": f"+7916{client_id:07d}" if client_id else None,
            "did": "74951234567" if direction == "inbound" else None, "dialed": None,
            "manager": placed_or_answered, "manager_id": int(manager) - 200 if placed_or_answered else None,
            "final_manager": placed_or_answered, "callee": rng.choice(MANAGERS) if direction == "internal" else None,
            "rang": [manager] if direction == "inbound" else [], "queues": ["sales"] if direction == "inbound" else [],
            "transferred_to": [], "started_at": started, "answered_at": answered, "ended_at": ended,
            "wait_s": round(wait, 3), "talk_s": round(talk, 3), "originated": direction == "outbound" and roll < 0.1,
            "closed_by": "hangup",
        }
        calls.append(call)
        facts.append(_fact_values(fact_from_call(SimpleNamespace(**call)), settings))
        data.days.add(local_day(started.timestamp(), settings.zone))
        if status != "answered":
            continue
        rec_id += 1
        stamp = started.strftime("%Y%m%d-%H%M%S")
        name = f"{started:%Y/%m/%d}/{direction[:3]}-{manager}-{stamp}-{call['linkedid']}.wav"
        recordings.append({
            "id": rec_id, "call_id": j, "position": 0, "pbx_path": f"/var/spool/asterisk/monitor/{name}",
            "path": name, "status": "ok", "format": "wav", "channels": 2, "sample_rate": 8000,
            "duration_s": round(talk, 2), "size_bytes": int(talk * 32000),
        })
        pick = rng.random()
        client_text = (CLIENT_SAYS + RARE_ADDITION if pick < RARE_SHARE else
                       CLIENT_SAYS + MEDIUM_ADDITION if pick < RARE_SHARE + MEDIUM_SHARE else CLIENT_SAYS)
        offset = 0.0
        for speaker, text in (("manager", MANAGER_SAYS), ("client", client_text)):
            seg_id += 1
            v = variants[text]
            segments.append({
                "id": seg_id, "recording_id": rec_id, "call_id": j, "start_s": offset, "end_s": offset + v["length"],
                "speaker": speaker, "text": text,
                "words": [dict(w, start=w["start"] + offset, end=w["end"] + offset) for w in v["words"]],
                "lemmas": v["lemmas"],
            })
            offset += v["length"] + 0.5
    data.tables["calls"] = calls
    data.tables["recordings"] = recordings
    data.tables["transcript_segments"] = segments
    data.tables["kpi_call_facts"] = facts
    return data


TABLES = {
    "managers": Manager.__table__, "clients": Client.__table__, "client_phones": ClientPhone.__table__,
    "calls": Call.__table__, "recordings": Recording.__table__, "transcript_segments": TranscriptSegment.__table__,
    "kpi_call_facts": CallFactRow.__table__,
}


def _sqlite_value(value: Any) -> Any:
    # What SQLAlchemy itself stores in SQLite: naive UTC text, ISO dates, 0/1, JSON text.
    if isinstance(value, datetime):
        return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, (list, dict)):
        return json.dumps(value, ensure_ascii=False)
    return value


def load_sqlite(db: Database, data: Dataset) -> None:
    """executemany per table in one transaction; indexes and the word index are built once afterwards.

    The segments' triggers are dropped for the load: row by row they would insert
    each word at a random place of the index. The migration's own statements fill
    the index and put the triggers back.
    """
    conn = sqlite3.connect(make_url(db.url).database)
    # No rollback journal for the load (a scratch database: a failed load is thrown
    # away), so the rows are written once, not to the WAL first; WAL again after.
    conn.execute("PRAGMA journal_mode=OFF")
    conn.execute("PRAGMA synchronous=OFF")
    conn.execute("PRAGMA cache_size=-524288")  # 512 MB: the word index is sorted in memory where it fits
    # Secondary indexes are built once, from sorted keys, after the rows are in.
    indexes = conn.execute(
        "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL AND tbl_name IN "
        f"({', '.join('?' * len(TABLES))})", list(TABLES)
    ).fetchall()
    with conn:
        for trigger in ("transcript_terms_ai", "transcript_terms_ad", "transcript_terms_au"):
            conn.execute(f"DROP TRIGGER {trigger}")
        for name, _sql in indexes:
            conn.execute(f"DROP INDEX {name}")
        for name, table in TABLES.items():
            rows = data.tables[name]
            cols = [c.name for c in table.columns]
            sql = f"INSERT INTO {name} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            conn.executemany(sql, ([_sqlite_value(r.get(c)) for c in cols] for r in rows))
        conn.execute(SEARCH_MIGRATION.SQLITE_BACKFILL)
        for _name, sql in indexes:
            conn.execute(sql)
        for trigger in SEARCH_MIGRATION.SQLITE_TRIGGERS:
            conn.execute(trigger)
    conn.execute("ANALYZE")
    conn.execute("PRAGMA journal_mode=WAL")
    conn.close()


async def load_postgresql(db: Database, data: Dataset) -> None:
    """COPY per table; indexes and the word index are built once afterwards, the latter as the migration fills it.

    Foreign keys are not checked row by row during the load (the rows are made
    consistent), and the segments' trigger is off: the backfill indexes them all at once.
    """
    import asyncpg

    conn = await asyncpg.connect(db.url)
    try:
        indexes = await conn.fetch(
            "SELECT indexname, indexdef FROM pg_indexes AS i WHERE tablename = ANY($1::text[]) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint AS c WHERE c.conname = i.indexname)",
            list(TABLES),
        )
        for index in indexes:
            await conn.execute(f"DROP INDEX {index['indexname']}")
        await conn.execute("ALTER TABLE transcript_terms DROP CONSTRAINT pk_transcript_terms")
        await conn.execute("SET session_replication_role = replica")  # no foreign key or other triggers
        for name, table in TABLES.items():
            cols = [c.name for c in table.columns]
            json_cols = {c.name for c in table.columns if c.type.__class__.__name__ == "JSON"}
            records = [
                tuple(json.dumps(r.get(c), ensure_ascii=False) if c in json_cols else r.get(c) for c in cols)
                for r in data.tables[name]
            ]
            await conn.copy_records_to_table(name, records=records, columns=cols)
            del records
        await conn.execute("SET session_replication_role = DEFAULT")
        await conn.execute("SET maintenance_work_mem = '512MB'")
        await conn.execute("SET work_mem = '256MB'")
        await conn.execute(SEARCH_MIGRATION.PG_BACKFILL)
        await conn.execute("ALTER TABLE transcript_terms ADD CONSTRAINT pk_transcript_terms "
                           "PRIMARY KEY (term, started_at, call_id, segment_id)")
        for index in indexes:
            await conn.execute(index["indexdef"])
        # As autovacuum leaves it: statistics, and the visibility map index-only scans need.
        await conn.execute("VACUUM ANALYZE")
    finally:
        await conn.close()


async def compute_kpis(url: str, days: set[date]) -> None:
    """Every day's figures, by the KPI store's own recompute_day."""
    engine = make_engine(url)
    recorder = KpiRecorder(KpiSettings())
    try:
        async with session_factory(engine)() as session, session.begin():
            for day in sorted(days):
                await recorder.recompute_day(session, day)
    finally:
        await engine.dispose()


async def time_queries(url: str, repeat: int, profile_query: str | None = None) -> dict[str, list[float]]:
    """Milliseconds per run of each search and KPI query."""
    engine = make_engine(url)
    factory = session_factory(engine)
    timings: dict[str, list[float]] = {}

    async def timed(label: str, fn: Callable[[], Awaitable[Any]]) -> None:
        await fn()  # warm-up: connection, statement cache, pages in memory
        runs: list[float] = []
        spent = Stopwatch()
        # A query taking seconds gets fewer runs, so that the whole benchmark ends in minutes.
        while len(runs) < repeat and (len(runs) < MIN_RUNS or spent() < BUDGET_PER_QUERY_S):
            clock = Stopwatch()
            await fn()
            runs.append(clock() * 1000)
        timings[label] = runs

    try:
        for label, query in SEARCHES.items():
            await timed(f"search: {label}", lambda q=query: search(factory, q))
        for label, query in WEB_SEARCHES.items():
            await timed(f"web search page: {label}", lambda q=query: search_calls(
                factory, q, offset=0, count=WEB_PAGE, most=WEB_COUNT_UP_TO))
        if profile_query:
            profile = cProfile.Profile()
            profile.enable()
            await search(factory, profile_query)
            profile.disable()
            out = io.StringIO()
            pstats.Stats(profile, stream=out).strip_dirs().sort_stats("cumulative").print_stats(18)
            timings["_profile"] = out.getvalue()  # type: ignore[assignment]

        async def dashboard(days: int) -> list[dict[str, Any]]:
            async with factory() as session:
                latest = await session.scalar(select(func.max(ManagerDayRow.day)))
                return await read_figures(session, latest - timedelta(days=days - 1), latest)

        await timed("KPI dashboard: 14 days (default)", lambda: dashboard(14))
        await timed("KPI dashboard: 365 days", lambda: dashboard(365))
    finally:
        await engine.dispose()
    return timings


def main() -> int:
    """Generate, load, time, print, write RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10k and 100k calls")
    parser.add_argument("--sizes", nargs="+", type=int, help="calls (default 100000 1000000)")
    parser.add_argument("--db", nargs="+", choices=("sqlite", "postgresql"), default=["sqlite", "postgresql"])
    parser.add_argument("--repeat", type=int, default=30)
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sizes = args.sizes or ([10_000, 100_000] if args.quick else [100_000, 1_000_000])
    results: dict[tuple[int, str], dict[str, list[float]]] = {}
    load_s: dict[tuple[int, str], float] = {}
    counts: dict[int, tuple[int, int]] = {}
    profiles: dict[tuple[int, str], str] = {}
    with tempfile.TemporaryDirectory(prefix="pbxbridge-bench-") as tmp:
        for n in sizes:
            clock = Stopwatch()
            data = generate(n)
            counts[n] = (len(data.tables["recordings"]), len(data.tables["transcript_segments"]))
            print(f"{n:,} calls generated in {clock():.1f} s ({counts[n][0]:,} recordings, "
                  f"{counts[n][1]:,} transcript segments, {len(data.days)} days)", flush=True)
            for kind in args.db:
                with scratch_database(kind, Path(tmp)) as db:
                    clock = Stopwatch()
                    if kind == "sqlite":
                        load_sqlite(db, data)
                    else:
                        asyncio.run(load_postgresql(db, data))
                    loaded = clock()
                    asyncio.run(compute_kpis(db.url, data.days))
                    load_s[(n, kind)] = clock()
                    print(f"  {kind}: loaded in {loaded:.1f} s, KPI figures computed in {clock() - loaded:.1f} s",
                          flush=True)
                    profile_query = SEARCHES["medium word (5%)"] if n == sizes[-1] else None
                    timings = asyncio.run(time_queries(db.url, args.repeat, profile_query))
                    profiles[(n, kind)] = _trim(str(timings.pop("_profile", "")))
                    results[(n, kind)] = timings
                for label, runs in timings.items():
                    print(f"    {label:<45} p50 {percentile(runs, 50):8.1f} ms   p95 {percentile(runs, 95):8.1f} ms",
                          flush=True)
            del data
    profile_text = "\n\n".join(f"{kind}, {n:,} calls, search {SEARCHES['medium word (5%)']!r}:\n{text}"
                                for (n, kind), text in profiles.items() if text)
    print(f"\ncProfile of one search at the largest size (by cumulative time):\n{profile_text}")
    if not args.no_write:
        body = _report(sizes, args.db, results, load_s, counts, args.repeat)
        body += f"\n\ncProfile of one search at {sizes[-1]:,} calls (top by cumulative time):\n\n```\n{profile_text}\n```"
        write_section("queries", "Search and KPI queries (benchmarks/queries.py)", body)
    return 0


def _trim(report: str) -> str:
    lines = report.splitlines()
    start = next((i for i, line in enumerate(lines) if "ncalls" in line), 0)
    return "\n".join(line.rstrip() for line in lines[start:] if line.strip())


def _report(sizes: list[int], kinds: list[str], results: dict[tuple[int, str], dict[str, list[float]]],
            load_s: dict[tuple[int, str], float], counts: dict[int, tuple[int, int]], repeat: int) -> str:
    lines = [
        ("Generated calls over a year (60% inbound, 35% outbound, 5% internal), answered ones with a "
        "recording and two transcript segments made of the shared recordings' speech; 5% of clients' "
        "segments mention «скидка», 0.1% «рассрочка». Each query run once to warm up, then "
        f"{repeat} times. Targets: search p95 < {TARGET_SEARCH_P95_MS} ms, KPI p95 < {TARGET_KPI_P95_MS} ms."),
        "",
        "| calls | segments | database | load + KPI s | query | runs | p50 ms | p95 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    labels = list(next(iter(results.values())).keys()) if results else []
    for label in labels:
        for kind in kinds:
            for n in sizes:
                runs = results.get((n, kind), {}).get(label)
                if runs is None:
                    continue
                lines.append(f"| {n:,} | {counts[n][1]:,} | {kind} | {load_s[(n, kind)]:.0f} | {label} "
                             f"| {len(runs)} | {percentile(runs, 50):.1f} | {percentile(runs, 95):.1f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
