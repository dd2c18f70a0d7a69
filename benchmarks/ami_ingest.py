"""AMI ingest: events per second through the whole daemon against panoramisk alone.

The captured streams are replayed by ``pbxbridge simulate --speed 0 --loop --fresh-ids``
(in a process of its own, so the measured side keeps a core to itself): each pass over
the traces gets new unique ids and linkedids, so 10x the traces is 10x as many calls.

Measured, per size (1x, 10x, 100x the trace volume):
* source: a raw socket reader that only counts frames (the simulator's own ceiling);
* panoramisk alone: panoramisk's Manager with one handler that does nothing;
* pipeline: the Daemon (listener, tracker, CallWriter) writing every finished call to
  SQLite, then to PostgreSQL, timed until the last call is committed;
* the bare decoder: FrameDecoder splitting the same bytes into dicts, no socket.
Then the SQLite pipeline is profiled with cProfile and its top functions printed.

    python benchmarks/ami_ingest.py [--quick] [--sizes 1 10 100] [--no-write]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import logging
import pstats
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from _common import (
    Simulator,
    Stopwatch,
    scratch_database,
    trace_paths,
    write_section,
)

from pbxbridge.ami.frames import FrameDecoder, encode_frame
from pbxbridge.ami.traces import load_trace, with_fresh_ids
from pbxbridge.app import Daemon
from pbxbridge.config import Config, DatabaseConfig, PbxConfig, RecordingsConfig

RUN_TIMEOUT_S = 900.0


@dataclass(slots=True)
class Run:
    events: int
    seconds: float
    calls: int = 0
    # Pipeline only: seconds until the tracker had seen every event (calls may still be queued).
    ingest_seconds: float = 0.0

    @property
    def rate(self) -> float:
        return self.events / self.seconds if self.seconds else float("nan")


def events_per_pass(paths: list[Path]) -> int:
    """Events the simulator sends for one pass over the traces (session events excluded)."""
    return sum(len(load_trace(p).events) for p in paths)


async def _login(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
    await reader.readline()  # banner
    writer.write(b"Action: Login\r\nUsername: bench\r\nSecret: bench\r\nEvents: on\r\n\r\n")
    await writer.drain()
    return reader, writer


async def source_ceiling(port: int, target: int) -> Run:
    """Frames per second a client that only counts frame ends can take from the simulator."""
    reader, writer = await _login(port)
    # Login response and FullyBooted come first: two frames that are not replayed events.
    want = target + 2
    seen, tail = 0, b""
    clock: Stopwatch | None = None
    while seen < want:
        data = await reader.read(1 << 16)
        if not data:
            raise ConnectionError("simulator closed the connection")
        if clock is None:
            clock = Stopwatch()
        chunk = tail + data
        seen += chunk.count(b"\r\n\r\n")
        tail = chunk[-3:]
    elapsed = clock() if clock else 0.0
    writer.close()
    return Run(target, elapsed)


async def panoramisk_bare(port: int, target: int) -> Run:
    """Events per second through panoramisk's Manager with a handler that does nothing."""
    from panoramisk import Manager

    loop = asyncio.get_running_loop()
    done = loop.create_future()
    count = 0
    first: float | None = None

    def handler(_manager: object, _message: object) -> None:
        nonlocal count, first
        if first is None:
            first = time.perf_counter()
        count += 1
        if count >= target and not done.done():
            done.set_result(time.perf_counter())

    manager = Manager(host="127.0.0.1", port=port, username="bench", secret="bench",
                      events="on", ping_delay=0, loop=loop, reconnect_timeout=1)
    manager.register_event("*", handler)
    await manager.connect()
    end = await asyncio.wait_for(done, RUN_TIMEOUT_S)
    manager.close()
    # FullyBooted is handled too: it is one event of the session, not of the replay.
    return Run(count - 1, end - (first or end))


async def pipeline(url: str, port: int, target: int, profile: cProfile.Profile | None = None) -> Run:
    """Events per second through the daemon until every finished call is in the database."""
    config = Config(
        database=DatabaseConfig(url=url),
        recordings=RecordingsConfig(root=str(Path(tempfile.gettempdir()) / "pbxbridge-bench-no-recordings")),
        pbx=[PbxConfig(name="main", host="127.0.0.1", port=port, username="bench", secret="bench")],
    )
    daemon = Daemon(config)
    await daemon.start()
    link = daemon.links["main"]
    try:
        # The clock starts with the first event, not with the schema upgrade.
        while link.events == 0:
            await asyncio.sleep(0.001)
        clock = Stopwatch()
        if profile is not None:
            profile.enable()
        while link.events <= target:
            await asyncio.sleep(0.005)
        ingested = clock()
        await daemon.flush()
        elapsed = clock()
        if profile is not None:
            profile.disable()
        calls = daemon.stats.calls_written
    finally:
        await daemon.stop()
    # The first event (FullyBooted) was not timed; everything after it was.
    return Run(target, elapsed, calls, ingested)


def write_passes(paths: list[Path], passes: int, out: Path) -> int:
    """One capture file holding the traces ``passes`` times, each pass with fresh ids; returns its events.

    What ``simulate --loop --fresh-ids`` sends, but ending after the last pass, so that
    "every call written" is a moment that comes.
    """
    traces = [load_trace(p) for p in paths]
    count = 0
    with out.open("wb") as fh:
        fh.write(f"{traces[0].banner}\r\n".encode())
        for i in range(passes):
            suffix = f"-{i}" if i else ""
            fh.write(b"".join(encode_frame(with_fresh_ids(e, suffix)) for t in traces for e in t.events))
            count += sum(len(t.events) for t in traces)
    return count


def bare_decoder(paths: list[Path], passes: int) -> Run:
    """Frames per second FrameDecoder splits out of the replayed bytes, in 64 KiB reads, no socket."""
    events = [e for p in paths for e in load_trace(p).events]
    blob = b"".join(encode_frame(e) for e in events)
    copies = [b"".join(encode_frame(with_fresh_ids(e, f"-{i}")) for e in events) if i else blob
              for i in range(min(passes, 3))]
    frames = 0
    clock = Stopwatch()
    for i in range(passes):
        data = copies[i % len(copies)]
        decoder = FrameDecoder()
        decoder.expect_banner(False)
        for off in range(0, len(data), 1 << 16):
            frames += len(decoder.feed(data[off:off + (1 << 16)]))
    return Run(frames, clock())


def top_functions(profile: cProfile.Profile, limit: int = 25) -> str:
    """The profile's top functions by own time, then by cumulative time."""
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(limit)
    text = out.getvalue()
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats("cumulative").print_stats(limit)
    return _trim(text) + "\n" + _trim(out.getvalue())


def _trim(report: str) -> str:
    lines = report.splitlines()
    start = next((i for i, line in enumerate(lines) if "Ordered by" in line), 0)
    return "\n".join(line.rstrip() for line in lines[start:] if line.strip())


async def profiled_run(paths: list[Path], passes: int, workdir: Path, profile: cProfile.Profile) -> Run:
    """The SQLite pipeline once more, under cProfile (its rate is not reported)."""
    stream = workdir / f"passes-{passes}.ami"
    target = write_passes(paths, passes, stream)
    with scratch_database("sqlite", workdir) as db, Simulator([stream], loop=False, fresh_ids=False) as sim:
        return await pipeline(db.url, sim.port, target, profile)


async def measure_size(paths: list[Path], per_pass: int, passes: int, workdir: Path,
                       kinds: list[str]) -> dict[str, Run]:
    """Every measurement for one size, each against a fresh simulator."""
    stream = workdir / f"passes-{passes}.ami"
    target = write_passes(paths, passes, stream)
    assert target == per_pass * passes
    runs: dict[str, Run] = {}
    with Simulator([stream], loop=False, fresh_ids=False) as sim:
        runs["source"] = await source_ceiling(sim.port, target)
    print(f"  {passes:>4}x  source (simulator ceiling)   {runs['source'].rate:>9,.0f} ev/s", flush=True)
    with Simulator([stream], loop=False, fresh_ids=False) as sim:
        runs["panoramisk"] = await panoramisk_bare(sim.port, target)
    print(f"  {passes:>4}x  panoramisk, no-op handler    {runs['panoramisk'].rate:>9,.0f} ev/s", flush=True)
    for kind in kinds:
        with scratch_database(kind, workdir) as db, Simulator([stream], loop=False, fresh_ids=False) as sim:
            runs[kind] = await pipeline(db.url, sim.port, target)
        r = runs[kind]
        print(f"  {passes:>4}x  pipeline -> {kind:<10}        {r.rate:>9,.0f} ev/s  "
              f"({r.events:,} events, {r.calls:,} calls in {r.seconds:.1f} s, events in after "
              f"{r.ingest_seconds:.1f} s = {r.events / r.ingest_seconds:,.0f} ev/s; "
              f"{r.rate / runs['panoramisk'].rate:.2f}x panoramisk)", flush=True)
    return runs


def main() -> int:
    """Measure, print, write RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1x and 10x only")
    parser.add_argument("--sizes", nargs="+", type=int, help="multiples of the trace volume (default 1 10 100)")
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sizes = args.sizes or ([1, 10] if args.quick else [1, 10, 100])
    paths = trace_paths()
    per_pass = events_per_pass(paths)
    print(f"{len(paths)} traces, {per_pass:,} events per pass")

    decoder_runs = {n: bare_decoder(paths, n) for n in sizes}
    for n, r in decoder_runs.items():
        print(f"  {n:>4}x  FrameDecoder, bytes -> dicts  {r.rate:>9,.0f} frames/s")

    results: dict[int, dict[str, Run]] = {}
    profile = cProfile.Profile()
    # Profiling doubles the run time: it gets a run of its own, after the timed ones.
    profiled_size = min(10, sizes[-1])
    with tempfile.TemporaryDirectory(prefix="pbxbridge-bench-") as tmp:
        for n in sizes:
            results[n] = asyncio.run(measure_size(paths, per_pass, n, Path(tmp), ["sqlite", "postgresql"]))
        asyncio.run(profiled_run(paths, profiled_size, Path(tmp), profile))
    profile_text = top_functions(profile)
    print(f"\nProfile of the SQLite pipeline at {profiled_size}x (cProfile):\n{profile_text}")

    if not args.no_write:
        write_section("ami_ingest", "AMI ingest (benchmarks/ami_ingest.py)",
                      _report(sizes, per_pass, decoder_runs, results, profiled_size, profile_text))
    return 0


def _report(sizes: list[int], per_pass: int, decoder_runs: dict[int, Run], results: dict[int, dict[str, Run]],
            profiled_size: int, profile_text: str) -> str:
    lines = [
        (f"Shared traces, N passes with fresh ids ({per_pass:,} events per pass, as `--loop --fresh-ids` "
         "would send them, written to one capture), replayed by `pbxbridge simulate --speed 0` in its own "
         "process; the measured process is single-threaded (one core). Pipeline = AmiListener -> CallTracker "
         "-> CallWriter; 'end to end' is timed from the first event until the last finished call is committed, "
         "'events in' until the tracker has seen the last event (calls may still wait for the database). "
         "'source ceiling' is a client that only counts frame ends: the simulator cannot send faster. "
         "Target: >= 40,000 events/s end to end."),
        "",
        ("| size | events | calls | source ceiling ev/s | panoramisk no-op ev/s "
         "| SQLite end to end ev/s | SQLite events in ev/s | PostgreSQL end to end ev/s "
         "| PostgreSQL events in ev/s | SQLite / panoramisk | PostgreSQL / panoramisk | FrameDecoder frames/s |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        r = results[n]
        pano = r["panoramisk"].rate
        sq, pg = r["sqlite"], r["postgresql"]
        lines.append(
            f"| {n}x | {sq.events:,} | {sq.calls:,} | {r['source'].rate:,.0f} | {pano:,.0f} "
            f"| {sq.rate:,.0f} | {sq.events / sq.ingest_seconds:,.0f} | {pg.rate:,.0f} "
            f"| {pg.events / pg.ingest_seconds:,.0f} | {sq.rate / pano:.2f} | {pg.rate / pano:.2f} "
            f"| {decoder_runs[n].rate:,.0f} |"
        )
    lines += ["", (f"cProfile of a separate (untimed) SQLite pipeline run at {profiled_size}x; cProfile counts each "
                   "resumption of a coroutine as a call, and greenlet switches blur cumulative times, so own time "
                   "(tottime) is the column to read:"), "", "```", profile_text, "```"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
