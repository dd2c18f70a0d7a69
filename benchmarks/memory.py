"""Memory: the daemon's resident size with 1,000 and 10,000 calls in flight.

The captured traces are cut at each call's middle (every event of a linkedid after the
midpoint between its first and last event is dropped), so every call is left up; fresh-id
copies of them are replayed by ``pbxbridge simulate --speed 0`` in its own process into a
daemon running in a child process, composed as ``pbxbridge run`` composes it
(``attach_domains``: KPI, routing, web; transcription workers are processes of their own
and not counted). Once every event is in and the tracker holds the calls, the child's
VmRSS is read from /proc.

    python benchmarks/memory.py [--quick] [--calls 1000 10000] [--bare] [--no-write] [--tracker]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import logging
import math
import subprocess
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

from _common import (
    Simulator,
    daemon_config,
    rss_mb,
    scratch_database,
    trace_paths,
    write_section,
)
from _streams import interleaved, write_stream

from pbxbridge.ami.frames import event_timestamp
from pbxbridge.ami.traces import Trace, load_trace, with_fresh_ids
from pbxbridge.calls.tracker import CallTracker

TARGET_MB_AT_1000 = 150


def half_calls(trace: Trace) -> Trace:
    """The trace with each call cut at its middle: the calls are all still up at its end."""
    spans: dict[str, list[float]] = {}
    for event in trace.events:
        lid, ts = _linkedid(event), event_timestamp(event)
        if lid and ts is not None:
            span = spans.setdefault(lid, [ts, ts])
            span[1] = ts
    middle = {lid: (a + b) / 2 for lid, (a, b) in spans.items()}
    kept = []
    for event in trace.events:
        lid, ts = _linkedid(event), event_timestamp(event)
        if lid in middle and ts is not None and ts > middle[lid]:
            continue
        kept.append(event)
    return dataclasses.replace(trace, events=tuple(kept))


def _linkedid(event: dict[str, str]) -> str | None:
    return event.get("Linkedid") or event.get("LinkedID") or event.get("DestLinkedid")


def calls_up_per_copy(traces: list[Trace]) -> int:
    """How many calls one copy of the cut traces leaves up in a tracker."""
    up = 0
    for trace in traces:
        tracker = CallTracker()
        now = 0.0
        for event in trace.events:
            now = event_timestamp(event) or now
            tracker.feed(event, now)
        up += len(tracker.active_linkedids())
    return up


def tracker_bytes_per_call(traces: list[Trace], copies: int) -> float:
    """What the tracker alone holds per call in flight (tracemalloc), for ``copies`` fresh-id copies.

    The frames are built before measuring, as the listener hands them over; the
    tracker keeps what it needs of them, and that is what is counted.
    """
    frames = [with_fresh_ids(event, f"-{i}") for i in range(copies) for trace in traces for event in trace.events]
    tracker = CallTracker()
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        now = 0.0
        for frame in frames:
            now = event_timestamp(frame) or now
            tracker.feed(frame, now)
        gc.collect()
        grown = sum(stat.size_diff for stat in tracemalloc.take_snapshot().compare_to(before, "filename"))
    finally:
        tracemalloc.stop()
    return grown / max(1, len(tracker.active_linkedids()))


def measure(goal: int, traces: list[Trace], per_copy: int, workdir: Path, bare: bool) -> dict[str, float]:
    """Start a daemon child, feed it enough copies for ``goal`` calls up, read its RSS."""
    copies = math.ceil(goal / per_copy)
    stream = workdir / f"open-{goal}.ami"
    events = write_stream(interleaved(traces, copies, 1.0, time.time()), stream)
    with scratch_database("sqlite", workdir) as db, Simulator([stream], loop=False, fresh_ids=False) as sim:
        args = [sys.executable, __file__, "--child", db.url, str(sim.port), str(events)]
        if bare:
            args.append("--bare")
        child = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)
        assert child.stdout is not None
        report: dict[str, float] = {"events": events, "copies": copies}
        try:
            for line in child.stdout:
                msg = json.loads(line)
                if msg["stage"] == "started":
                    report["started_mb"] = rss_mb(child.pid)
                elif msg["stage"] == "ready":
                    report["calls_up"] = msg["calls_up"]
                    report["rss_mb"] = rss_mb(child.pid)
                    break
        finally:
            child.terminate()
            child.wait(30)
    return report


async def _child(url: str, port: int, events: int, bare: bool) -> None:
    from pbxbridge.app import Daemon, attach_domains
    from pbxbridge.service.heap import settle_after_start

    config = daemon_config(url, port)
    daemon = Daemon(config)
    if not bare:
        attach_domains(daemon)
    await daemon.start()
    settle_after_start()  # as `pbxbridge run` does once started
    print(json.dumps({"stage": "started"}), flush=True)
    link = daemon.links["main"]
    while link.events <= events:
        await asyncio.sleep(0.1)
    await daemon.flush()
    import gc

    gc.collect()
    print(json.dumps({"stage": "ready", "calls_up": len(link.tracker.active_linkedids())}),
          flush=True)
    await asyncio.sleep(3600)


def main() -> int:
    """Measure each size, print, write RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1,000 calls only")
    parser.add_argument("--calls", nargs="+", type=int, help="calls in flight (default 1000 10000)")
    parser.add_argument("--bare", action="store_true", help="the daemon without the domains (KPI, routing, web)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    parser.add_argument("--tracker", action="store_true",
                        help="print what the call tracker alone holds per call in flight, then stop")
    parser.add_argument("--child", nargs=3, metavar=("URL", "PORT", "EVENTS"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    if args.child:
        url, port, events = args.child
        asyncio.run(_child(url, int(port), int(events), args.bare))
        return 0
    goals = args.calls or ([1000] if args.quick else [1000, 10_000])
    traces = [half_calls(load_trace(p)) for p in trace_paths()]
    per_copy = calls_up_per_copy(traces)
    if args.tracker:
        copies = math.ceil(goals[0] / per_copy)
        print(f"call tracker alone: {tracker_bytes_per_call(traces, copies) / 1024:.2f} KB per call in flight "
              f"({copies * per_copy:,} calls, tracemalloc)")
        return 0
    print(f"one copy of the {len(traces)} cut traces leaves {per_copy} calls up")
    results = {}
    with tempfile.TemporaryDirectory(prefix="pbxbridge-bench-") as tmp:
        for goal in goals:
            r = measure(goal, traces, per_copy, Path(tmp), args.bare)
            results[goal] = r
            print(f"  {int(r['calls_up']):>6,} calls up ({int(r['events']):,} events): RSS {r['rss_mb']:.0f} MB "
                  f"(after start, before events: {r['started_mb']:.0f} MB; "
                  f"{(r['rss_mb'] - r['started_mb']) * 1024 / max(1, r['calls_up']):.1f} KB per call)", flush=True)
    if not args.no_write:
        composition = "bare Daemon (no domains)" if args.bare else "Daemon + attach_domains (KPI, routing, web)"
        body = [
            (f"{composition} in a child process, SQLite journal; calls cut at their middle so they stay up, "
            f"fed by `pbxbridge simulate --speed 0`. Target: < {TARGET_MB_AT_1000} MB at 1,000 calls."),
            "",
            "| calls in flight | events fed | RSS after start MB | RSS with the calls up MB | KB per open call |",
            "|---|---|---|---|---|",
        ]
        for r in results.values():
            body.append(f"| {int(r['calls_up']):,} | {int(r['events']):,} | {r['started_mb']:.0f} | {r['rss_mb']:.0f} "
                        f"| {(r['rss_mb'] - r['started_mb']) * 1024 / max(1, r['calls_up']):.1f} |")
        write_section("memory", "Daemon memory (benchmarks/memory.py)", "\n".join(body))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
