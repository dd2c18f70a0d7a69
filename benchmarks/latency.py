"""Latency: from a call's last AMI event to the call being visible in the journal, with 1,000 calls up.

Fresh-id copies of the captured traces are interleaved (each copy with its own
clients' numbers, starting at a random moment of a one-minute window) so that about
1,000 calls are in flight at once, and replayed at capture speed by ``pbxbridge simulate`` in its own process. The daemon
runs here, composed as ``pbxbridge run`` composes it (listener, tracker, CallWriter,
KPI figures following the journal in their own transactions, routing, web); a reader in its
own process (own interpreter, event loop and connection, so it takes no turn on the
daemon's loop) polls the journal's table every few milliseconds with the driver's own
query, so that the reader takes little of the two cores from the daemon. (Not through the REST
API: GET /api/calls lists by start time, and a call that began long ago lands deep in
the list when it ends.)

Latency = the moment the journal read first returns the call - the moment the daemon
received the call's last event (the Hangup that finished it). The poll interval is
part of the figure (at most ``--poll-ms``).

Before that, how the cost of writing a call (with its KPI update) grows with the
day's volume: for each of ``--sizes`` calls a day, the day is filled, then its last
calls are timed, alone and in batches, as the daemon writes them.

    python benchmarks/latency.py [--quick] [--db sqlite postgresql] [--sizes 100 1000 10000]
                                 [--skip-latency] [--no-write]

``--quick``: SQLite only.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import logging
import multiprocessing
import sqlite3
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import date
from multiprocessing.connection import Connection
from multiprocessing.synchronize import Event as EventFlag
from pathlib import Path
from typing import Any

import asyncpg
from _common import (
    Simulator,
    daemon_config,
    percentile,
    scratch_database,
    trace_paths,
    write_section,
)
from _streams import interleaved, load_traces, write_stream
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.app import Daemon, attach_domains
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.open_calls import forget_written
from pbxbridge.calls.replay import replay_trace, tracker_settings
from pbxbridge.calls.store import CallWriter
from pbxbridge.config import Config, PbxConfig
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.kpi.calendar import day_bounds
from pbxbridge.kpi.daemon import KpiComponent
from pbxbridge.kpi.follower import KpiFollower
from pbxbridge.kpi.service import KpiService
from pbxbridge.service.heap import settle_after_start

WINDOW_S = 60.0
# 110 copies of the 16 traces in a minute keep 1,000-1,200 calls up on the plateau.
COPIES, QUICK_COPIES = 110, 110
IN_FLIGHT_GOAL = 1000
# The reader and each database's daemon run in processes of their own, sharing nothing with this one.
SPAWN = multiprocessing.get_context("spawn")


@dataclass(slots=True)
class Sample:
    finished_at: float
    in_flight: int
    visible_at: float | None = None


@dataclass(slots=True)
class Outcome:
    kind: str
    events: int
    seconds: float
    samples: dict[str, Sample] = field(default_factory=dict)
    peak_in_flight: int = 0

    def latencies_ms(self, min_in_flight: int = 0) -> list[float]:
        return [(s.visible_at - s.finished_at) * 1000 for s in self.samples.values()
                if s.visible_at is not None and s.in_flight >= min_in_flight]


class TimedDaemon(Daemon):
    """The daemon, noting when each call's last event came in and how many calls were up then."""

    def __init__(self, config: Config, samples: dict[str, Sample]) -> None:
        super().__init__(config)
        self.samples = samples
        self.peak = 0

    def _finished(self, call: FinishedCall) -> None:
        link = self.links.get(call.pbx)
        up = link.tracker.active_count() if link is not None else 0
        self.peak = max(self.peak, up)
        # The monotonic clock is the machine's, so the reader's process reads the same one.
        self.samples[call.linkedid] = Sample(time.monotonic(), up)
        super()._finished(call)


# The driver's own query, not an ORM session per read: the reader shares the machine's
# two cores with the daemon, and what it costs is the benchmark's, not the daemon's.
_NEW_CALLS = "SELECT id, linkedid FROM calls WHERE id > {} ORDER BY id"


async def _poll_journal(url: str, poll_s: float, stop: EventFlag) -> dict[str, float]:
    """linkedid -> when a read of the journal first returned it (``time.monotonic``)."""
    seen: dict[str, float] = {}
    last_id = 0

    def note(rows: list[Any]) -> None:
        nonlocal last_id
        now = time.monotonic()
        for call_id, linkedid in rows:
            last_id = max(last_id, call_id)
            seen.setdefault(linkedid, now)

    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        assert parsed.database is not None
        conn = sqlite3.connect(parsed.database)
        try:
            while not stop.is_set():
                note(conn.execute(_NEW_CALLS.format("?"), (last_id,)).fetchall())
                await asyncio.sleep(poll_s)
        finally:
            conn.close()
        return seen
    pg = await asyncpg.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False))
    try:
        query = await pg.prepare(_NEW_CALLS.format("$1"))
        while not stop.is_set():
            note(await query.fetch(last_id))
            await asyncio.sleep(poll_s)
    finally:
        await pg.close()
    return seen


def _reader_main(url: str, poll_s: float, stop: EventFlag, ready: EventFlag, out: Connection) -> None:
    """The journal reader's own process: its own interpreter, event loop and connection."""
    logging.basicConfig(level=logging.ERROR)
    ready.set()
    out.send(asyncio.run(_poll_journal(url, poll_s, stop)))
    out.close()


class JournalReader:
    """Reads the journal from another process, as a user's page would: the daemon's loop never runs it."""

    def __init__(self, url: str, poll_s: float) -> None:
        self._stop = SPAWN.Event()
        ready = SPAWN.Event()
        self._receive, send = SPAWN.Pipe(duplex=False)
        self._process = SPAWN.Process(
            target=_reader_main, args=(url, poll_s, self._stop, ready, send), name="journal-reader", daemon=True
        )
        self._process.start()
        send.close()
        if not ready.wait(60):
            raise RuntimeError("the journal reader did not start")

    def stop(self) -> dict[str, float]:
        """Stop reading; linkedid -> when the journal first showed it."""
        self._stop.set()
        seen: dict[str, float] = self._receive.recv() if self._receive.poll(60) else {}
        self._process.join(10)
        return seen


async def run_once(kind: str, url: str, stream: Path, events: int, speed: float, poll_s: float) -> Outcome:
    """Replay the stream into a daemon writing to ``url``; time every call."""
    samples: dict[str, Sample] = {}
    with Simulator([stream], speed=speed, loop=False, fresh_ids=False) as sim:
        daemon = TimedDaemon(daemon_config(url, sim.port), samples)
        # Composed as `pbxbridge run` composes it: KPI figures follow the journal in transactions of their own.
        attach_domains(daemon)
        await daemon.start()
        settle_after_start()  # as `pbxbridge run` does once started
        # Started once the schema is in place; spawned, so it shares nothing with this process.
        reader = await asyncio.to_thread(JournalReader, url, poll_s)
        link = daemon.links["main"]
        started = time.perf_counter()
        seen: dict[str, float] = {}
        try:
            last_report = started
            while link.events <= events:
                await asyncio.sleep(0.05)
                if time.perf_counter() - last_report > 10:
                    last_report = time.perf_counter()
                    print(f"    {kind}: {link.events:,}/{events:,} events, {link.tracker.active_count():,} "
                          f"calls up, {daemon.calls_pending} waiting to be written", flush=True)
            await daemon.flush()
            # Let the reader see the last calls.
            await asyncio.sleep(poll_s * 3 + 0.05)
        finally:
            seen = await asyncio.to_thread(reader.stop)
            await daemon.stop()
    for linkedid, sample in samples.items():
        sample.visible_at = seen.get(linkedid)
    return Outcome(kind, events, time.perf_counter() - started, samples, daemon.peak)


def run_apart(kind: str, url: str, stream: Path, events: int, speed: float, poll_s: float) -> Outcome:
    """``run_once`` in a process of its own (spawned): the daemon starts in a fresh interpreter,
    as ``pbxbridge run`` does, not in one whose heap holds what was measured before."""
    logging.basicConfig(level=logging.ERROR)
    return asyncio.run(run_once(kind, url, stream, events, speed, poll_s))


# -- write + KPI cost against the day's volume --------------------------------------------

GROWTH_SIZES = (100, 1_000, 10_000)
# Calls timed at the end of each day, one transaction each and then in batches.
TIMED_CALLS, TIMED_BATCH = 30, 10
GROWTH_DAY = date(2026, 11, 26)


@dataclass(slots=True)
class Growth:
    kind: str
    calls_a_day: int
    single_ms: list[float]
    batch_ms: list[float]


def _renumbered(number: str | None, copy: int) -> str | None:
    # Each copy calls its own clients: a day of N calls has about N / 2 of them, as in life.
    if number is None or not number.isdigit() or len(number) < 10:
        return number
    return f"{number[:-7]}{copy % 1000:03d}{number[-4:]}"


def day_of_calls(paths: list[Path], count: int, settings_zone: object) -> list[FinishedCall]:
    """``count`` calls on one business day: copies of the traced calls, 09:00-21:00, each copy its own clients."""
    traced = [c for p in paths for c in replay_trace(p, tracker_settings(PbxConfig()))]
    first = min(c.started_at for c in traced)
    start, _end = day_bounds(GROWTH_DAY, settings_zone)  # type: ignore[arg-type]
    copies = -(-count // len(traced))
    spacing = 12 * 3600 / copies
    calls: list[FinishedCall] = []
    for k in range(copies):
        shift = start + 9 * 3600 + k * spacing - first
        for c in traced:
            calls.append(dataclasses.replace(
                c,
                linkedid=f"{c.linkedid}-d{k}",
                started_at=c.started_at + shift,
                ended_at=c.ended_at + shift,
                answered_at=None if c.answered_at is None else c.answered_at + shift,
                client_number=_renumbered(c.client_number, k),
                dialed=_renumbered(c.dialed, k),
                recording_files=(),
            ))
    calls.sort(key=lambda c: c.ended_at)
    return calls[:count]


def daemon_writer(url: str, factory: async_sessionmaker[AsyncSession]) -> CallWriter:
    """A CallWriter with the hooks ``pbxbridge run`` gives it, and the KPI update that follows in the same step.

    The daemon folds a call into the KPI store in a transaction after the journal's;
    here both are timed together, as the work a call costs.
    """
    daemon = Daemon(daemon_config(url))
    attach_domains(daemon)
    hooks = [h for h in daemon.after_write if not isinstance(getattr(h, "__self__", None), KpiFollower)]
    kpi = next(c for c in daemon.components if isinstance(c, KpiComponent)).service
    return CallWriter(factory, daemon.config, after_write=[*hooks, kpi.record_written, forget_written])


async def measure_growth(kind: str, url: str, calls: list[FinishedCall]) -> Growth:
    """Fill the day up to the last calls without timing, then time those as the daemon writes them."""
    engine = make_engine(url, inline=True)  # as the daemon writes: on SQLite, on the event loop
    factory = session_factory(engine)
    try:
        timed = TIMED_CALLS + TIMED_BATCH * 3
        before, singles, batched = calls[:-timed], calls[-timed:-TIMED_BATCH * 3], calls[-TIMED_BATCH * 3:]
        bare = CallWriter(factory, Config())
        for i in range(0, len(before), 200):
            await bare.write_many(before[i:i + 200])
        async with factory() as session, session.begin():
            await KpiService().recorder.rebuild(session)
        writer = daemon_writer(url, factory)
        single_ms: list[float] = []
        for call in singles:
            t0 = time.perf_counter()
            await writer.write(call)
            single_ms.append((time.perf_counter() - t0) * 1000)
        batch_ms: list[float] = []
        for i in range(0, len(batched), TIMED_BATCH):
            t0 = time.perf_counter()
            await writer.write_many(batched[i:i + TIMED_BATCH])
            batch_ms.append((time.perf_counter() - t0) * 1000 / TIMED_BATCH)
    finally:
        await engine.dispose()
    return Growth(kind, len(calls), single_ms, batch_ms)


def _growth_line(g: Growth) -> str:
    return (f"  {g.kind:<10} {g.calls_a_day:>6,} calls/day: write+KPI per call {percentile(g.single_ms, 50):.1f} ms "
            f"alone, {percentile(g.batch_ms, 50):.1f} ms in batches of {TIMED_BATCH}")


def main() -> int:
    """Build the stream, measure on each database, print, write RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="SQLite only")
    parser.add_argument("--db", nargs="+", choices=("sqlite", "postgresql"))
    parser.add_argument("--copies", type=int, help=f"copies of the traces (default {COPIES})")
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed (1 = as captured)")
    parser.add_argument("--poll-ms", type=float, default=5.0, help="journal read interval")
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    parser.add_argument("--sizes", type=int, nargs="*", default=list(GROWTH_SIZES),
                        help="calls a day at which write+KPI cost per call is measured (none: skip)")
    parser.add_argument("--skip-latency", action="store_true", help="only the cost against the day's volume")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    kinds = args.db or (["sqlite"] if args.quick else ["sqlite", "postgresql"])
    copies = args.copies or (QUICK_COPIES if args.quick else COPIES)

    traces = load_traces(trace_paths())
    outcomes: list[Outcome] = []
    growth: list[Growth] = []
    events = 0
    with tempfile.TemporaryDirectory(prefix="pbxbridge-bench-") as tmp:
        if args.sizes:
            print(f"write + KPI cost per call against the day's volume ({TIMED_CALLS} calls alone, "
                  f"{TIMED_BATCH * 3} in batches of {TIMED_BATCH}, at the end of the day):")
        for kind in kinds:
            for size in args.sizes:
                day = day_of_calls(trace_paths(), size, KpiService().settings.zone)
                with scratch_database(kind, Path(tmp)) as db:
                    g = asyncio.run(measure_growth(kind, db.url, day))
                growth.append(g)
                print(_growth_line(g), flush=True)
        if not args.skip_latency:
            stream = Path(tmp) / "interleaved.ami"
            events = write_stream(interleaved(traces, copies, WINDOW_S, time.time()), stream)
            print(f"{copies} copies of {len(traces)} traces interleaved in {WINDOW_S:.0f} s: {events:,} events")
            for kind in kinds:
                with scratch_database(kind, Path(tmp)) as db, ProcessPoolExecutor(1, mp_context=SPAWN) as apart:
                    out = apart.submit(run_apart, kind, db.url, stream, events, args.speed, args.poll_ms / 1000).result()
                outcomes.append(out)
                print(_line(out), flush=True)

    if not args.no_write:
        body = _latency_body(outcomes, copies, len(traces), events, args) if outcomes else []
        if growth:
            body += ["", *_growth_body(growth)]
        write_section("latency", "Call-to-journal latency (benchmarks/latency.py)", "\n".join(body))
    return 0


def _latency_body(outcomes: list[Outcome], copies: int, traces: int, events: int, args: argparse.Namespace) -> list[str]:
    body = [
        (f"{copies} fresh-id copies of the {traces} shared traces, each copy with its own clients' numbers and "
         "starting at a random moment of a "
         f"{WINDOW_S:.0f}-second window, replayed at {args.speed:g}x capture speed by `pbxbridge simulate` "
         f"(own process): {events:,} events, into the daemon composed as `pbxbridge run` composes it (KPI "
         "figures following the journal in their own transactions), started in a fresh process for each "
         "database. Latency = journal read (own process and connection, every "
         f"{args.poll_ms:g} ms) first returns the call - daemon received its last event. "
         f"'at >= {IN_FLIGHT_GOAL:,} up': calls that ended while at least {IN_FLIGHT_GOAL:,} calls were in "
         "flight. Target: p99 < 100 ms."),
        "",
        ("| database | calls | event rate ev/s | peak calls up | p50 ms (all) | p99 ms (all) "
         f"| calls at >= {IN_FLIGHT_GOAL:,} up | p50 ms | p99 ms | max ms |"),
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for out in outcomes:
        every, busy = out.latencies_ms(), out.latencies_ms(IN_FLIGHT_GOAL)
        body.append(
            f"| {out.kind} | {len(every):,} | {out.events / out.seconds:,.0f} | {out.peak_in_flight:,} "
            f"| {percentile(every, 50):.1f} | {percentile(every, 99):.1f} | {len(busy):,} "
            f"| {percentile(busy, 50):.1f} | {percentile(busy, 99):.1f} | {max(busy, default=float('nan')):.1f} |"
        )
    return body


def _growth_body(growth: list[Growth]) -> list[str]:
    body = [
        (f"How the write + KPI cost of a call grows with the day's volume: a day of N calls (copies of the traced "
         "calls, 09:00-21:00, each copy its own clients) is written and its figures rebuilt, then its last "
         f"{TIMED_CALLS} calls are written one transaction each and {TIMED_BATCH * 3} more in batches of "
         f"{TIMED_BATCH}, by a CallWriter with the hooks `pbxbridge run` gives it and the KPI update (transcription queue, "
         "saved open calls), through the connections the daemon writes with (on SQLite, statements run on the "
         "event loop). Median wall-clock ms per call."),
        "",
        f"| database | calls a day | ms per call, alone | ms per call, in batches of {TIMED_BATCH} |",
        "|---|---|---|---|",
    ]
    for g in growth:
        body.append(
            f"| {g.kind} | {g.calls_a_day:,} | {percentile(g.single_ms, 50):.1f} | {percentile(g.batch_ms, 50):.1f} |"
        )
    return body


def _line(out: Outcome) -> str:
    every, busy = out.latencies_ms(), out.latencies_ms(IN_FLIGHT_GOAL)
    return (f"  {out.kind:<10} {len(every):,} calls, {out.events / out.seconds:,.0f} ev/s, peak {out.peak_in_flight:,} up; "
            f"all: p50 {percentile(every, 50):.1f} ms, p99 {percentile(every, 99):.1f} ms; "
            f"{len(busy):,} calls ended with >= {IN_FLIGHT_GOAL:,} up: p50 {percentile(busy, 50):.1f} ms, "
            f"p99 {percentile(busy, 99):.1f} ms, max {max(busy, default=float('nan')):.1f} ms")


if __name__ == "__main__":
    raise SystemExit(main())
