"""Back-fill: `pbxbridge backfill` of a large FreePBX cel table (MariaDB) into the journal.

The shared captures' CEL and CDR rows (tests/fixtures_cel.py: as cel_odbc writes them) are
copied with fresh uniqueids and linkedids, each copy later in time than the one before, until
the cel table holds ``--rows`` rows (1,000,000 by default). Then, each in its own process:

- `pbxbridge backfill` of the whole table into a fresh SQLite journal: CEL rows a second,
  calls a second, the process's peak resident size;
- the same for the first half of the table's days: peak memory must not grow with the table;
- a run killed (SIGKILL) once half of the calls are in the journal, then run again: it goes on
  from its checkpoint, and the journal ends with every call once.

    python benchmarks/backfill.py [--rows 1000000] [--quick] [--no-write]

``--quick``: 50,000 rows. Filling the table takes most of the time at 1M rows (about as long as
the import itself); the machine is shared with the tests, so run the full size alone.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import resource
import signal
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from _common import REPO_ROOT, scratch_database, trace_paths, write_section

from pbxbridge.backfill.freepbx import CEL_WIDTHS
from tests.fixtures_cel import capture_tables, create_cdr_database, drop_cdr_database, insert_rows

INSERT_CHUNK = 10_000
_UID = re.compile(r"\b(\d{9,11}\.\d+)\b")
ENV = {"PBXBRIDGE_PBX__MAIN__CDR_TIMEZONE": "UTC", "PYTHONUNBUFFERED": "1"}
# Each run's stderr, by process id.
_LOGS: dict[int, Any] = {}


def _template() -> tuple[list[dict[str, Any]], list[dict[str, Any]], float]:
    """Every capture's cel and cdr rows, and the time they span."""
    cel: list[dict[str, Any]] = []
    cdr: list[dict[str, Any]] = []
    for path in trace_paths():
        tables = capture_tables(path)
        cel.extend(tables.cel)
        cdr.extend(tables.cdr)
    times = [datetime.fromisoformat(r["eventtime"]) for r in cel]
    return cel, cdr, (max(times) - min(times)).total_seconds() + 60


def _copy(row: dict[str, Any], k: int, shift: timedelta, keys: tuple[str, ...], when: str) -> dict[str, Any]:
    out = dict(row)
    for key in keys:
        if out.get(key):
            # Cut again to the column's width, as cel_odbc would.
            out[key] = _UID.sub(lambda m: f"{m[1]}-{k}", out[key])[: CEL_WIDTHS.get(key, 255)]
    out[when] = (datetime.fromisoformat(row[when]) + shift).strftime("%Y-%m-%d %H:%M:%S")
    return out


async def fill(url: str, rows: int) -> tuple[int, int]:
    """Copies of the captures' rows until cel holds ``rows`` rows; (cel rows, calls) written."""
    cel, cdr, span = _template()
    calls_per_copy = sum(1 for r in cel if r["eventtype"] == "LINKEDID_END")
    written = calls = 0
    k = 0
    batch_cel: list[dict[str, Any]] = []
    batch_cdr: list[dict[str, Any]] = []
    while written < rows:
        shift = timedelta(seconds=span * k)
        take = cel if rows - written >= len(cel) else cel[: rows - written]
        batch_cel.extend(_copy(r, k, shift, ("uniqueid", "linkedid", "eventextra"), "eventtime") for r in take)
        batch_cdr.extend(_copy(r, k, shift, ("uniqueid", "linkedid"), "calldate") for r in cdr)
        written += len(take)
        calls += calls_per_copy if take is cel else sum(1 for r in take if r["eventtype"] == "LINKEDID_END")
        k += 1
        if len(batch_cel) >= INSERT_CHUNK or written >= rows:
            await insert_rows(url, batch_cel, batch_cdr)
            batch_cel, batch_cdr = [], []
    return written, calls


def _backfill(db_url: str, cdr_url: str, until: str, extra: list[str] | None = None) -> subprocess.Popen[str]:
    command = [sys.executable, "-m", "pbxbridge", "backfill", "--db", db_url, "--cdr-url", cdr_url,
               "--from", "2026-01-01", "--to", until, *(extra or [])]
    # Its output to files, not pipes: a pipe nobody reads while the run goes on (a warning per
    # cut transfer row, thousands at 1M rows) fills up and stops the run.
    log = tempfile.TemporaryFile("w+")
    proc = subprocess.Popen(command, env={**os.environ, **ENV}, stdout=subprocess.DEVNULL, stderr=log, text=True,
                            cwd=REPO_ROOT)
    _LOGS[proc.pid] = log
    return proc


def _said(proc: subprocess.Popen[str]) -> str:
    """What the finished run wrote on stderr."""
    proc.wait()
    log = _LOGS.pop(proc.pid)
    log.seek(0)
    return str(log.read())


def _hwm_mb(pid: int) -> float | None:
    """The process's peak resident size so far (VmHWM), None once it is gone."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    m = re.search(r"^VmHWM:\s+(\d+) kB", status, re.MULTILINE)
    return int(m[1]) / 1024 if m else None


def _measured(db_url: str, cdr_url: str, until: str) -> dict[str, float]:
    """One whole run in a child process: seconds, CPU seconds, rows and calls it reports, its peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    proc = _backfill(db_url, cdr_url, until)
    peak = 0.0
    while proc.poll() is None:
        peak = max(peak, _hwm_mb(proc.pid) or 0.0)
        time.sleep(0.05)
    err = _said(proc)
    seconds = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if proc.returncode != 0:
        raise SystemExit(f"backfill failed ({proc.returncode}): {err[-2000:]}")
    # The last progress line is the run's summary.
    found = re.findall(r"(\d+) calls \((\d+) new\) · (\d+) rows", err)
    assert found, err[-500:]
    summary = found[-1]
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {
        "seconds": seconds, "cpu_s": cpu, "calls": float(summary[0]), "rows": float(summary[2]), "peak_mb": peak,
    }


def _count(db_url: str, sql: str) -> int:
    from sqlalchemy import text

    from pbxbridge.db.engine import make_engine

    async def go() -> int:
        engine = make_engine(db_url)
        try:
            async with engine.connect() as conn:
                return int((await conn.execute(text(sql))).scalar() or 0)
        finally:
            await engine.dispose()

    return asyncio.run(go())


def _killed_and_resumed(db_url: str, cdr_url: str, until: str, calls: int) -> dict[str, Any]:
    proc = _backfill(db_url, cdr_url, until, ["--page-rows", "1000"])
    killed_at = 0
    while proc.poll() is None:
        killed_at = _count(db_url, "SELECT count(*) FROM calls")
        if killed_at >= calls // 2 and _count(db_url, "SELECT count(*) FROM backfill_checkpoints"):
            proc.send_signal(signal.SIGKILL)
            break
        time.sleep(0.1)
    proc.wait()
    killed = proc.returncode == -signal.SIGKILL
    started = time.perf_counter()
    again = _backfill(db_url, cdr_url, until)
    err = _said(again)
    if again.returncode != 0:
        raise SystemExit(f"resumed backfill failed: {err[-2000:]}")
    rows_said = re.findall(r"· (\d+) rows", err)
    return {
        "killed": killed, "journal_at_kill": killed_at, "resume_s": time.perf_counter() - started,
        "resume_rows": int(rows_said[-1]) if rows_said else -1,
        "calls": _count(db_url, "SELECT count(*) FROM calls"),
        "distinct": _count(db_url, "SELECT count(DISTINCT linkedid) FROM calls"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--quick", action="store_true", help="50,000 rows")
    parser.add_argument("--no-write", action="store_true", help="print only; leave RESULTS.md")
    args = parser.parse_args()
    rows = 50_000 if args.quick else args.rows

    cdr_url = asyncio.run(create_cdr_database("mysql"))
    try:
        t0 = time.perf_counter()
        written, calls = asyncio.run(fill(cdr_url, rows))
        fill_s = time.perf_counter() - t0
        print(f"cel: {written:,} rows, {calls:,} calls, filled in {fill_s:.0f} s", flush=True)
        cel, _cdr, span = _template()
        first_day = datetime.fromisoformat(min(r["eventtime"] for r in cel)).date()
        copies = written / len(cel)
        half_until = (first_day + timedelta(seconds=span * copies / 2)).isoformat()
        all_until = (first_day + timedelta(seconds=span * (copies + 1)) + timedelta(days=1)).isoformat()
        with tempfile.TemporaryDirectory() as tmp:
            with scratch_database("sqlite", Path(tmp)) as db:
                whole = _measured(db.url, cdr_url, all_until)
            with scratch_database("sqlite", Path(tmp)) as db:
                half = _measured(db.url, cdr_url, half_until)
            with scratch_database("sqlite", Path(tmp)) as db:
                resumed = _killed_and_resumed(db.url, cdr_url, all_until, calls)
    finally:
        asyncio.run(drop_cdr_database(cdr_url))

    lines = [
        f"`pbxbridge backfill` of a FreePBX cel table of {written:,} rows ({calls:,} calls; copies of the shared "
        "captures' CEL and CDR, MariaDB on the same machine) into a fresh SQLite journal, with the hooks an import "
        "runs per call (workflow, CRM queue) and the KPI figures rebuilt once at its end; each run a process of its "
        "own, start-up included. CPU seconds are the process's own (user + system): on a shared machine the "
        "steadier figure.",
        "",
        "| run | CEL rows | calls | seconds | CEL rows/s | calls/s | CEL rows per CPU s | peak RSS |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        *(
            f"| {name} | {r['rows']:,.0f} | {r['calls']:,.0f} | {r['seconds']:.1f} | {r['rows'] / r['seconds']:,.0f} | "
            f"{r['calls'] / r['seconds']:,.0f} | {r['rows'] / max(r['cpu_s'], 1e-9):,.0f} | {r['peak_mb']:.0f} MiB |"
            for name, r in (("whole table", whole), ("first half of its days", half))
        ),
        "",
        f"Killed (SIGKILL: {resumed['killed']}) with {resumed['journal_at_kill']:,} calls in the journal, run again: "
        f"it read {resumed['resume_rows']:,} rows in {resumed['resume_s']:.1f} s; the journal holds "
        f"{resumed['calls']:,} calls, {resumed['distinct']:,} distinct (expected {calls:,}).",
        f"Filling the table took {fill_s:.0f} s.",
        "Target: >= 20,000 CEL rows/s, peak memory flat in the table's size (the half and the whole table alike).",
    ]
    body = "\n".join(lines)
    print(body)
    print(json.dumps({"whole": whole, "half": half, "resumed": resumed}))
    if not args.no_write:
        write_section("backfill", f"Back-fill from CEL ({written:,} rows)", body)


if __name__ == "__main__":
    main()
