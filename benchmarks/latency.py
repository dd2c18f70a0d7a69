"""Latency: from a call's last AMI event to the call being visible in the journal, with 1,000 calls up.

Fresh-id copies of the captured traces are interleaved (each copy starting at a random
moment of a one-minute window) so that about 1,000 calls are in flight at once, and
replayed at capture speed by ``pbxbridge simulate`` in its own process. The daemon
(listener, tracker, CallWriter) runs here; a reader polls the journal's table every
few milliseconds on its own connection, as the web API would read it.

Latency = the moment the journal read first returns the call - the moment the daemon
received the call's last event (the Hangup that finished it). The poll interval is
part of the figure (at most ``--poll-ms``).

    python benchmarks/latency.py [--quick] [--db sqlite postgresql] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import Simulator, percentile, scratch_database, trace_paths, write_section
from _streams import interleaved, load_traces, write_stream
from sqlalchemy import select

from pbxbridge.app import Daemon
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.tables import Call
from pbxbridge.config import Config, DatabaseConfig, PbxConfig, RecordingsConfig
from pbxbridge.db.engine import make_engine, session_factory

WINDOW_S = 60.0
# 110 copies of the 16 traces in a minute keep 1,000-1,200 calls up on the plateau.
COPIES, QUICK_COPIES = 110, 110
IN_FLIGHT_GOAL = 1000


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
        up = len(link.tracker.active_linkedids()) if link is not None else 0
        self.peak = max(self.peak, up)
        self.samples[call.linkedid] = Sample(time.perf_counter(), up)
        super()._finished(call)


async def _poll_journal(url: str, samples: dict[str, Sample], poll_s: float, stop: asyncio.Event) -> None:
    engine = make_engine(url)
    factory = session_factory(engine)
    last_id = 0
    try:
        while not stop.is_set():
            async with factory() as session:
                rows = (await session.execute(
                    select(Call.id, Call.linkedid).where(Call.id > last_id).order_by(Call.id)
                )).all()
            now = time.perf_counter()
            for call_id, linkedid in rows:
                last_id = max(last_id, call_id)
                sample = samples.get(linkedid)
                if sample is not None and sample.visible_at is None:
                    sample.visible_at = now
            await asyncio.sleep(poll_s)
    finally:
        await engine.dispose()


async def run_once(kind: str, url: str, stream: Path, events: int, speed: float, poll_s: float) -> Outcome:
    """Replay the stream into a daemon writing to ``url``; time every call."""
    samples: dict[str, Sample] = {}
    with Simulator([stream], speed=speed, loop=False, fresh_ids=False) as sim:
        config = Config(
            database=DatabaseConfig(url=url),
            recordings=RecordingsConfig(root=str(Path(tempfile.gettempdir()) / "pbxbridge-bench-no-recordings")),
            pbx=[PbxConfig(name="main", host="127.0.0.1", port=sim.port, username="bench", secret="bench")],
        )
        daemon = TimedDaemon(config, samples)
        stop = asyncio.Event()
        await daemon.start()
        poller = asyncio.create_task(_poll_journal(url, samples, poll_s, stop))
        link = daemon.links["main"]
        started = time.perf_counter()
        try:
            last_report = started
            while link.events <= events:
                await asyncio.sleep(0.05)
                if time.perf_counter() - last_report > 10:
                    last_report = time.perf_counter()
                    print(f"    {kind}: {link.events:,}/{events:,} events, {len(link.tracker.active_linkedids()):,} "
                          f"calls up, {daemon.calls_pending} waiting to be written", flush=True)
            await daemon.flush()
            # Let the reader see the last calls.
            await asyncio.sleep(poll_s * 3 + 0.05)
        finally:
            stop.set()
            await poller
            await daemon.stop()
    return Outcome(kind, events, time.perf_counter() - started, samples, daemon.peak)


def main() -> int:
    """Build the stream, measure on each database, print, write RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="SQLite only")
    parser.add_argument("--db", nargs="+", choices=("sqlite", "postgresql"))
    parser.add_argument("--copies", type=int, help=f"copies of the traces (default {COPIES})")
    parser.add_argument("--speed", type=float, default=1.0, help="replay speed (1 = as captured)")
    parser.add_argument("--poll-ms", type=float, default=5.0, help="journal read interval")
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    kinds = args.db or (["sqlite"] if args.quick else ["sqlite", "postgresql"])
    copies = args.copies or (QUICK_COPIES if args.quick else COPIES)

    traces = load_traces(trace_paths())
    outcomes: list[Outcome] = []
    with tempfile.TemporaryDirectory(prefix="pbxbridge-bench-") as tmp:
        stream = Path(tmp) / "interleaved.ami"
        events = write_stream(interleaved(traces, copies, WINDOW_S, time.time()), stream)
        print(f"{copies} copies of {len(traces)} traces interleaved in {WINDOW_S:.0f} s: {events:,} events")
        for kind in kinds:
            with scratch_database(kind, Path(tmp)) as db:
                out = asyncio.run(run_once(kind, db.url, stream, events, args.speed, args.poll_ms / 1000))
            outcomes.append(out)
            print(_line(out), flush=True)

    if not args.no_write:
        body = [
            (f"{copies} fresh-id copies of the {len(traces)} shared traces, each starting at a random moment of a "
            f"{WINDOW_S:.0f}-second window, replayed at {args.speed:g}x capture speed by `pbxbridge simulate` "
            f"(own process): {events:,} events. Latency = journal read (own connection, every "
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
        write_section("latency", "Call-to-journal latency (benchmarks/latency.py)", "\n".join(body))
    return 0


def _line(out: Outcome) -> str:
    every, busy = out.latencies_ms(), out.latencies_ms(IN_FLIGHT_GOAL)
    return (f"  {out.kind:<10} {len(every):,} calls, {out.events / out.seconds:,.0f} ev/s, peak {out.peak_in_flight:,} up; "
            f"all: p50 {percentile(every, 50):.1f} ms, p99 {percentile(every, 99):.1f} ms; "
            f"{len(busy):,} calls ended with >= {IN_FLIGHT_GOAL:,} up: p50 {percentile(busy, 50):.1f} ms, "
            f"p99 {percentile(busy, 99):.1f} ms, max {max(busy, default=float('nan')):.1f} ms")


if __name__ == "__main__":
    raise SystemExit(main())
