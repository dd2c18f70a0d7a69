"""AMI ingest: events per second through the whole daemon against panoramisk alone.

The captured streams are replayed by ``pbxbridge simulate --speed 0`` (in a process of
its own, so the measured side keeps a core to itself) from one capture holding N passes
over the traces, each pass with new unique ids and linkedids: 10x the traces is 10x as
many calls.

Each client first runs once untimed at 1x (``warm_up``). Then, per size (1x, 10x, 100x the
trace volume; a size under 10x lasts a fraction of a second and is run 3 times, the median kept):
* source: a raw socket reader that only counts frames (the simulator's own ceiling);
* panoramisk alone: panoramisk's Manager with one handler that does nothing;
* pipeline: the Daemon (listener, tracker, CallWriter) writing every finished call to
  SQLite, then to PostgreSQL, timed until the last call is committed;
* replay: ``pbxbridge replay`` of the same capture (the Daemon fed from the file, every
  domain attached, as the command runs it), timed until the last call is committed and
  until the KPI figures hold every call too;
* the bare decoder: FrameDecoder splitting the same bytes into dicts, no socket.
Then, without a socket, the CPU cost per event of panoramisk's parser against ours
(each under cProfile too); the CallWriter alone writing the calls of a pipeline run in
the batches the daemon made (its share of the end-to-end time); and a cProfile of the
SQLite pipeline. The replay rows and the figures they are set beside get a section of
their own (``--replay-only`` measures and writes only those: panoramisk, pipeline, replay).

    python benchmarks/ami_ingest.py [--quick] [--sizes 1 10 100] [--replay-only] [--no-write]
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
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from _common import (
    Simulator,
    Stopwatch,
    scratch_database,
    trace_paths,
    write_section,
)

from pbxbridge.ami.frames import Frame, FrameDecoder, encode_frame
from pbxbridge.ami.listener import AmiListener, _FrameProtocol
from pbxbridge.ami.traces import load_trace, wire_template, with_fresh_ids
from pbxbridge.app import Daemon, attach_domains
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.replay import replay_into, replay_pbx, tracker_settings
from pbxbridge.calls.tracker import CallTracker
from pbxbridge.config import Config, DatabaseConfig, PbxConfig, RecordingsConfig

RUN_TIMEOUT_S = 900.0
# What one socket read hands the protocol (asyncio reads up to 256 KiB; 64 KiB is what
# a busy reader mostly gets).
READ_BYTES = 1 << 16


@dataclass(slots=True)
class Run:
    events: int
    seconds: float
    calls: int = 0
    # Pipeline only: seconds until the tracker had seen every event (calls may still be queued).
    ingest_seconds: float = 0.0
    # Pipeline only: how many calls each CallWriter transaction wrote.
    batches: list[int] = field(default_factory=list)
    # Pipeline only: CPU seconds the measured process used in the timed span (all its threads).
    cpu_seconds: float = 0.0
    # Replay only: seconds until what follows the journal (the KPI figures) holds every call too.
    settled_seconds: float = 0.0

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

    cpu_first = 0.0

    def handler(_manager: object, _message: object) -> None:
        nonlocal count, first, cpu_first
        if first is None:
            first = time.perf_counter()
            cpu_first = time.process_time()
        count += 1
        if count >= target and not done.done():
            done.set_result((time.perf_counter(), time.process_time()))

    manager = Manager(host="127.0.0.1", port=port, username="bench", secret="bench",
                      events="on", ping_delay=0, loop=loop, reconnect_timeout=1)
    manager.register_event("*", handler)
    await manager.connect()
    end, cpu_end = await asyncio.wait_for(done, RUN_TIMEOUT_S)
    manager.close()
    # FullyBooted is handled too: it is one event of the session, not of the replay.
    # Its CPU time too, so that it compares with the pipeline's on a loaded machine.
    return Run(count - 1, end - (first or end), cpu_seconds=cpu_end - cpu_first)


async def pipeline(url: str, port: int, target: int, profile: cProfile.Profile | None = None) -> Run:
    """Events per second through the daemon until every finished call is in the database."""
    daemon = Daemon(bench_config(url, port))
    await daemon.start()
    batches = _count_batches(daemon)
    link = daemon.links["main"]
    try:
        # The clock starts with the first event, not with the schema upgrade.
        while link.events == 0:
            await asyncio.sleep(0.001)
        clock = Stopwatch()
        cpu_started = time.process_time()
        if profile is not None:
            profile.enable()
        while link.events <= target:
            await asyncio.sleep(0.005)
        ingested = clock()
        await daemon.flush()
        elapsed = clock()
        cpu = time.process_time() - cpu_started
        if profile is not None:
            profile.disable()
        calls = daemon.stats.calls_written
    finally:
        await daemon.stop()
    # The first event (FullyBooted) was not timed; everything after it was.
    return Run(target, elapsed, calls, ingested, batches, cpu)


async def replay(url: str, stream: Path, target: int) -> Run:
    """Events per second through ``pbxbridge replay``: the capture read from disk into the daemon's pipeline.

    The steps of ``pbxbridge.cli.core.replay`` (a daemon that is not live, every domain
    attached, the capture fed, flushed), the clock running from the first read: until
    the last call is committed (``seconds``, as the pipeline's), and until the KPI
    figures hold every call too (``settled_seconds``).
    """
    daemon = Daemon(bench_config(url, 9), live=False)
    attach_domains(daemon)
    await daemon.start()
    batches = _count_batches(daemon)
    try:
        clock = Stopwatch()
        cpu_started = time.process_time()
        await replay_into(daemon.follower, daemon.pipeline, [stream], replay_pbx(daemon.config))
        ingested = clock()
        await daemon.flush_journal()
        elapsed = clock()
        cpu = time.process_time() - cpu_started
        await daemon.flush()
        settled = clock()
        calls = daemon.stats.calls_written
    finally:
        await daemon.stop()
    return Run(target, elapsed, calls, ingested, batches, cpu, settled)


def bench_config(url: str, port: int) -> Config:
    """The daemon's configuration for one run: one PBX, no recordings."""
    return Config(
        database=DatabaseConfig(url=url),
        recordings=RecordingsConfig(root=str(Path(tempfile.gettempdir()) / "pbxbridge-bench-no-recordings")),
        pbx=[PbxConfig(name="main", host="127.0.0.1", port=port, username="bench", secret="bench")],
    )


def _count_batches(daemon: Daemon) -> list[int]:
    """Record the size of every transaction the daemon's CallWriter runs (its methods wrapped, not changed)."""
    writer = daemon.writer
    assert writer is not None
    sizes: list[int] = []
    write_many, write = writer.write_many, writer.write

    async def counted_many(calls: Any) -> Any:
        sizes.append(len(calls))
        return await write_many(calls)

    async def counted_one(call: Any) -> Any:
        sizes.append(1)
        return await write(call)

    writer.write_many = counted_many  # type: ignore[method-assign]
    writer.write = counted_one  # type: ignore[method-assign]
    return sizes


def write_passes(paths: list[Path], passes: int, out: Path) -> int:
    """One capture file holding the traces ``passes`` times, each pass with fresh ids; returns its events.

    What ``simulate --loop --fresh-ids`` sends, but ending after the last pass, so that
    "every call written" is a moment that comes.
    """
    traces = [load_trace(p) for p in paths]
    # Rendered once; each pass's fresh ids are one join per event (what the simulator does too).
    templates = [wire_template(e) for t in traces for e in t.events]
    with out.open("wb") as fh:
        fh.write(f"{traces[0].banner}\r\n".encode())
        for i in range(passes):
            glue = f"-{i}".encode() if i else b""
            fh.write(b"".join([glue.join(t) for t in templates]))
    return len(templates) * passes


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


def stream_chunks(stream: Path) -> list[bytes]:
    """A capture's bytes after its banner, in socket-sized reads."""
    data = stream.read_bytes()
    data = data[data.index(b"\n") + 1 :]
    return [data[off : off + READ_BYTES] for off in range(0, len(data), READ_BYTES)]


def _panoramisk_protocol() -> Callable[[bytes], None]:
    """panoramisk's own AMIProtocol, fed as its transport would, dispatching to a no-op."""
    from panoramisk.ami_protocol import AMIProtocol

    protocol = AMIProtocol()
    protocol.connection_made(None)
    protocol.factory = SimpleNamespace(dispatch=lambda _message: None)
    return protocol.data_received


def _our_protocol(on_event: Callable[[Frame, float], None]) -> Callable[[bytes], None]:
    """The listener's protocol (FrameDecoder, then delivery to ``on_event``), fed as its transport would."""
    listener = AmiListener("127.0.0.1", 0, "bench", "bench", on_event)
    protocol = _FrameProtocol()
    protocol.connection_made(None)
    protocol.factory = SimpleNamespace(  # type: ignore[assignment]
        listener=listener, dispatch=lambda message: listener._deliver(message.__dict__["frame"])
    )
    protocol.decoder.expect_banner(False)
    return protocol.data_received


def _decoder_only() -> Callable[[bytes], None]:
    decoder = FrameDecoder()
    decoder.expect_banner(False)
    return decoder.feed


def _with_tracker() -> Callable[[bytes], None]:
    tracker = CallTracker(tracker_settings(bench_config("sqlite://", 0).pbx[0]))
    return _our_protocol(tracker.feed)


# What each parser row runs, in the order of the report.
PARSERS: dict[str, Callable[[], Callable[[bytes], None]]] = {
    "panoramisk AMIProtocol (its parser, no-op dispatch)": _panoramisk_protocol,
    "FrameDecoder (bytes -> dicts)": _decoder_only,
    "FrameDecoder + listener delivery (no-op consumer)": lambda: _our_protocol(lambda _f, _t: None),
    "FrameDecoder + listener + CallTracker": _with_tracker,
}


def parser_costs(chunks: list[bytes], events: int) -> tuple[dict[str, float], dict[str, str]]:
    """CPU microseconds per event of each parser over the same reads, and cProfiles of panoramisk's and ours."""
    costs: dict[str, float] = {}
    for name, make in PARSERS.items():
        best = float("inf")
        for _ in range(3):
            feed = make()
            started = time.process_time()
            for chunk in chunks:
                feed(chunk)
            best = min(best, time.process_time() - started)
        costs[name] = best / events * 1e6
    profiles: dict[str, str] = {}
    for name in ("panoramisk AMIProtocol (its parser, no-op dispatch)", "FrameDecoder + listener + CallTracker"):
        feed = PARSERS[name]()
        profile = cProfile.Profile()
        profile.enable()
        for chunk in chunks:
            feed(chunk)
        profile.disable()
        profiles[name] = top_functions(profile, 12, cumulative=False)
    return costs, profiles


def finished_calls(chunks: list[bytes]) -> list[FinishedCall]:
    """The calls the daemon's tracker finishes from these reads, in order."""
    calls: list[FinishedCall] = []

    def on_event(frame: Frame, received_at: float) -> None:
        calls.extend(tracker.feed(frame, received_at))

    tracker = CallTracker(tracker_settings(bench_config("sqlite://", 0).pbx[0]))
    feed = _our_protocol(on_event)
    for chunk in chunks:
        feed(chunk)
    return calls


async def writer_alone(url: str, calls: list[FinishedCall], batches: list[int]) -> float:
    """Seconds the daemon's CallWriter (with the daemon's hooks) takes to write ``calls`` in ``batches``, nothing else running.

    The daemon's PBX points at a closed port: its listener only retries, now and then.
    """
    daemon = Daemon(bench_config(url, 9))
    await daemon.start()
    writer = daemon.writer
    assert writer is not None
    try:
        clock = Stopwatch()
        start = 0
        for size in batches:
            batch = calls[start : start + size]
            start += size
            if len(batch) == 1:
                await writer.write(batch[0])
            elif batch:
                await writer.write_many(batch)
        return clock()
    finally:
        await daemon.stop()


def top_functions(profile: cProfile.Profile, limit: int = 25, cumulative: bool = True) -> str:
    """The profile's top functions by own time, then (if asked) by cumulative time."""
    out = io.StringIO()
    stats = pstats.Stats(profile, stream=out)
    stats.strip_dirs().sort_stats("tottime").print_stats(limit)
    text = out.getvalue()
    if not cumulative:
        return _trim(text)
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


async def warm_up(paths: list[Path], workdir: Path, kinds: list[str]) -> None:
    """One untimed 1x run of every client before any is timed.

    What a process pays once, whichever daemon comes first (phone-number
    metadata and its patterns, SQLAlchemy's lazily built per-mapper insert
    plans, regexes compiled on first use: some 50 ms), a running daemon paid
    long ago; in a 1x run, 0.15 s long, it would weigh on whichever client
    ran first. What each daemon pays anew (its connections, its statements'
    first compilation) stays in every timed run.
    """
    stream = workdir / "warm-up.ami"
    target = write_passes(paths, 1, stream)
    with Simulator([stream], loop=False, fresh_ids=False) as sim:
        await panoramisk_bare(sim.port, target)
    for kind in kinds:
        with scratch_database(kind, workdir) as db, Simulator([stream], loop=False, fresh_ids=False) as sim:
            await pipeline(db.url, sim.port, target)
        with scratch_database(kind, workdir) as db:
            await replay(db.url, stream, target)


# A run shorter than this many passes lasts a fraction of a second: scheduling and a
# collector's pause move it by a quarter. It is run RUNS_OF_SHORT times, the median kept.
SHORT_PASSES, RUNS_OF_SHORT = 10, 3


def _median(runs: list[Run]) -> Run:
    return sorted(runs, key=lambda r: r.rate)[len(runs) // 2]


async def measure_size(paths: list[Path], per_pass: int, passes: int, workdir: Path,
                       kinds: list[str], replay_only: bool = False) -> dict[str, Run]:
    """Every measurement for one size, each against a fresh simulator (a short size: the median of a few)."""
    stream = workdir / f"passes-{passes}.ami"
    target = write_passes(paths, passes, stream)
    assert target == per_pass * passes
    repeats = RUNS_OF_SHORT if passes < SHORT_PASSES else 1
    note = f" (median of {repeats})" if repeats > 1 else ""
    runs: dict[str, Run] = {}
    if not replay_only:
        with Simulator([stream], loop=False, fresh_ids=False) as sim:
            runs["source"] = await source_ceiling(sim.port, target)
        print(f"  {passes:>4}x  source (simulator ceiling)   {runs['source'].rate:>9,.0f} ev/s", flush=True)
    tries = []
    for _ in range(repeats):
        with Simulator([stream], loop=False, fresh_ids=False) as sim:
            tries.append(await panoramisk_bare(sim.port, target))
    runs["panoramisk"] = _median(tries)
    print(f"  {passes:>4}x  panoramisk, no-op handler    {runs['panoramisk'].rate:>9,.0f} ev/s{note}", flush=True)
    for kind in kinds:
        tries = []
        for _ in range(repeats):
            with scratch_database(kind, workdir) as db, Simulator([stream], loop=False, fresh_ids=False) as sim:
                tries.append(await pipeline(db.url, sim.port, target))
        r = runs[kind] = _median(tries)
        print(f"  {passes:>4}x  pipeline -> {kind:<10}        {r.rate:>9,.0f} ev/s  "
              f"({r.events:,} events, {r.calls:,} calls in {r.seconds:.1f} s, events in after "
              f"{r.ingest_seconds:.1f} s = {r.events / r.ingest_seconds:,.0f} ev/s; CPU {r.cpu_seconds:.1f} s; "
              f"{r.rate / runs['panoramisk'].rate:.2f}x panoramisk){note}", flush=True)
    for kind in kinds:
        tries = []
        for _ in range(repeats):
            with scratch_database(kind, workdir) as db:
                tries.append(await replay(db.url, stream, target))
        r = runs[f"replay-{kind}"] = _median(tries)
        print(f"  {passes:>4}x  replay -> {kind:<10}          {r.rate:>9,.0f} ev/s  "
              f"({r.calls:,} calls in {r.seconds:.1f} s in {len(r.batches)} transactions, events in after "
              f"{r.ingest_seconds:.1f} s; KPI figures after {r.settled_seconds:.1f} s = "
              f"{r.events / r.settled_seconds:,.0f} ev/s; CPU {r.cpu_seconds:.1f} s; "
              f"{r.rate / runs[kind].rate:.2f}x the pipeline, {r.rate / runs['panoramisk'].rate:.2f}x panoramisk)"
              f"{note}", flush=True)
    return runs


@dataclass(slots=True)
class WriterRun:
    calls: int
    batches: list[int]
    # Writing the calls in the batches of the pipeline run, then one call per transaction.
    batched_s: float
    single_s: float


def main() -> int:
    """Measure, print, write RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="1x and 10x only")
    parser.add_argument("--sizes", nargs="+", type=int, help="multiples of the trace volume (default 1 10 100)")
    parser.add_argument("--replay-only", action="store_true",
                        help="panoramisk, the pipeline and the replay only; write the replay section alone")
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md alone")
    args = parser.parse_args()
    logging.basicConfig(level=logging.ERROR)
    sizes = args.sizes or ([1, 10] if args.quick else [1, 10, 100])
    kinds = ["sqlite", "postgresql"]
    paths = trace_paths()
    per_pass = events_per_pass(paths)
    print(f"{len(paths)} traces, {per_pass:,} events per pass")
    if args.replay_only:
        compared = replay_comparison(paths, per_pass, sizes, kinds)
        if not args.no_write:
            write_replay_section(sizes, per_pass, compared)
        return 0

    decoder_runs = {n: bare_decoder(paths, n) for n in sizes}
    for n, r in decoder_runs.items():
        print(f"  {n:>4}x  FrameDecoder, bytes -> dicts  {r.rate:>9,.0f} frames/s")

    results: dict[int, dict[str, Run]] = {}
    writers: dict[str, WriterRun] = {}
    profile = cProfile.Profile()
    # Profiling doubles the run time: it gets a run of its own, after the timed ones.
    profiled_size = min(10, sizes[-1])
    with tempfile.TemporaryDirectory(prefix="pbxbridge-bench-") as tmp:
        workdir = Path(tmp)
        stream = workdir / f"passes-{profiled_size}.ami"
        parsed_events = write_passes(paths, profiled_size, stream)
        chunks = stream_chunks(stream)
        costs, parser_profiles = parser_costs(chunks, parsed_events)
        print(f"\nWithout a socket, {profiled_size}x in {READ_BYTES // 1024} KiB reads (CPU time per event):")
        for name, us in costs.items():
            print(f"  {name:<55} {us:6.2f} us  ({1e6 / us:>9,.0f} ev/s)")
        print()
        asyncio.run(warm_up(paths, workdir, kinds))
        for n in sizes:
            results[n] = asyncio.run(measure_size(paths, per_pass, n, workdir, kinds))
        calls = finished_calls(chunks)
        for kind in kinds:
            batches = results[profiled_size][kind].batches
            with scratch_database(kind, workdir) as db:
                batched = asyncio.run(writer_alone(db.url, calls, batches))
            with scratch_database(kind, workdir) as db:
                single = asyncio.run(writer_alone(db.url, calls, [1] * len(calls)))
            writers[kind] = WriterRun(len(calls), batches, batched, single)
            print(f"  {profiled_size:>4}x  CallWriter alone -> {kind:<10} {len(calls)} calls in {len(batches)} "
                  f"transactions: {batched:.2f} s ({batched / len(calls) * 1e3:.1f} ms/call); one call per "
                  f"transaction: {single:.2f} s ({single / len(calls) * 1e3:.1f} ms/call)", flush=True)
        asyncio.run(profiled_run(paths, profiled_size, workdir, profile))
    profile_text = top_functions(profile)
    for name, text in parser_profiles.items():
        print(f"\nProfile, {name}:\n{text}")
    print(f"\nProfile of the SQLite pipeline at {profiled_size}x (cProfile):\n{profile_text}")

    if not args.no_write:
        write_section("ami_ingest", "AMI ingest (benchmarks/ami_ingest.py)",
                      _report(sizes, per_pass, decoder_runs, results, profiled_size, costs, parser_profiles,
                              writers, profile_text))
        write_replay_section(sizes, per_pass, results)
    return 0


def replay_comparison(paths: list[Path], per_pass: int, sizes: list[int], kinds: list[str]) -> dict[int, dict[str, Run]]:
    """Panoramisk, the pipeline and the replay at each size, nothing else (``--replay-only``)."""
    results: dict[int, dict[str, Run]] = {}
    with tempfile.TemporaryDirectory(prefix="pbxbridge-bench-") as tmp:
        workdir = Path(tmp)
        asyncio.run(warm_up(paths, workdir, kinds))
        for n in sizes:
            results[n] = asyncio.run(measure_size(paths, per_pass, n, workdir, kinds, replay_only=True))
    return results


def write_replay_section(sizes: list[int], per_pass: int, results: dict[int, dict[str, Run]]) -> None:
    """The replay rows beside the pipeline and panoramisk of the same run, in a section of their own."""
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    lines = [
        ("`pbxbridge replay` of the capture the pipeline was fed (the same N passes with fresh ids, "
         f"{per_pass:,} events per pass), read from disk into the daemon's own pipeline: a Daemon that is not "
         "live, every domain attached (KPI figures following the journal, transcription jobs), the calls "
         "written by its call writer in its batches. 'pipeline' is the daemon fed over TCP by `pbxbridge "
         "simulate --speed 0`, no domain attached, and 'panoramisk' panoramisk alone with a no-op handler, "
         "both from the same run and timed as in the section above. 'to journal' is timed from the first read "
         "until the last call is committed, as the pipeline is; the KPI follower's folding runs meanwhile on "
         "the same event loop and is counted in it. 'to KPI figures' runs until the KPI store holds every call too: the follower "
         "folds calls in 50 at a time once the journal has them and pauses a second whenever fewer than 50 are "
         "left (its trickle pause, made for a live daemon), so a replay pays that second at least once, at its "
         "end; and as every pass repeats the same 30 clients on the same two days, each of its batches "
         "rereads more of their calls the more passes there are. Events/s count the capture's events (those "
         "skipped undecoded included, as for the pipeline); 'per CPU s' is events over the CPU time the "
         "measured process used until the journal held every call: the rate with a core to itself, whatever "
         f"else ran on the machine. Under {SHORT_PASSES}x, each figure is the median of {RUNS_OF_SHORT} runs."),
        "",
        ("| size | database | calls | panoramisk ev/s | pipeline ev/s | pipeline ev per CPU s "
         "| replay to journal ev/s | replay ev per CPU s | transactions | replay to KPI figures ev/s "
         "| replay / pipeline | replay / panoramisk | pipeline / panoramisk |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        r = results[n]
        pano = r["panoramisk"].rate
        for kind, name in names.items():
            daemon, rep = r[kind], r[f"replay-{kind}"]
            lines.append(
                f"| {n}x | {name} | {rep.calls:,} | {pano:,.0f} | {daemon.rate:,.0f} "
                f"| {daemon.events / daemon.cpu_seconds:,.0f} | {rep.rate:,.0f} | {rep.events / rep.cpu_seconds:,.0f} "
                f"| {len(rep.batches)} | {rep.events / rep.settled_seconds:,.0f} | {rep.rate / daemon.rate:.2f} "
                f"| {rep.rate / pano:.2f} | {daemon.rate / pano:.2f} |"
            )
    write_section("ami_ingest_replay", "AMI ingest: `pbxbridge replay` beside the daemon (benchmarks/ami_ingest.py)",
                  "\n".join(lines))


def _batches(sizes: list[int]) -> str:
    """Transaction sizes, run-length encoded: '1, 199, 80' or '1 x 40, 200 x 3'."""
    runs: list[list[int]] = []
    for size in sizes:
        if runs and runs[-1][0] == size:
            runs[-1][1] += 1
        else:
            runs.append([size, 1])
    text = ", ".join(f"{size}" if count == 1 else f"{size} x {count}" for size, count in runs)
    return text if len(text) <= 60 else text[:57] + "..."


def _report(sizes: list[int], per_pass: int, decoder_runs: dict[int, Run], results: dict[int, dict[str, Run]],
            profiled_size: int, costs: dict[str, float], parser_profiles: dict[str, str],
            writers: dict[str, WriterRun], profile_text: str) -> str:
    names = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}
    lines = [
        (f"Shared traces, N passes with fresh ids ({per_pass:,} events per pass, as `--loop --fresh-ids` "
         "would send them, written to one capture), replayed by `pbxbridge simulate --speed 0` in its own "
         "process; the measured process is single-threaded (one core). Pipeline = AmiListener -> CallTracker "
         "-> CallWriter; 'end to end' is timed from the first event until the last finished call is committed, "
         "'events in' until the tracker has seen the last event (calls may still wait for the database). "
         "'source ceiling' is a client that only counts frame ends: the simulator cannot send faster. "
         "'FrameDecoder bare' splits the same bytes into dicts, no socket. 'per CPU s' is events over the CPU "
         "time the measured process (all its threads) used end to end: the rate with a core to itself, "
         "whatever else ran on the machine. Every client ran once untimed at 1x first, so that what the "
         "process pays once (libraries' lazily built state, ~50 ms) does not weigh on the first one timed; "
         "each daemon's own start (connections, first compilation of its statements) is in every run. "
         f"A size under {SHORT_PASSES}x lasts a fraction of a second: each client's figure there is the median "
         f"of {RUNS_OF_SHORT} runs. "
         "Target: >= 40,000 events/s end to end."),
        "",
        ("| size | events | calls | source ceiling ev/s | panoramisk no-op ev/s | FrameDecoder bare frames/s "
         "| SQLite end to end ev/s | SQLite events in ev/s | SQLite ev per CPU s | PostgreSQL end to end ev/s "
         "| PostgreSQL events in ev/s | PostgreSQL ev per CPU s | SQLite / panoramisk | PostgreSQL / panoramisk |"),
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for n in sizes:
        r = results[n]
        pano = r["panoramisk"].rate
        sq, pg = r["sqlite"], r["postgresql"]
        lines.append(
            f"| {n}x | {sq.events:,} | {sq.calls:,} | {r['source'].rate:,.0f} | {pano:,.0f} "
            f"| {decoder_runs[n].rate:,.0f} | {sq.rate:,.0f} | {sq.events / sq.ingest_seconds:,.0f} "
            f"| {sq.events / sq.cpu_seconds:,.0f} | {pg.rate:,.0f} | {pg.events / pg.ingest_seconds:,.0f} "
            f"| {pg.events / pg.cpu_seconds:,.0f} | {sq.rate / pano:.2f} | {pg.rate / pano:.2f} |"
        )
    pano_us = next(iter(costs.values()))
    lines += ["", (f"Parsers without a socket: the {profiled_size}x capture fed in {READ_BYTES // 1024} KiB reads, "
                   "CPU time per event (best of three):"), "",
              "| parser | CPU us per event | events/s on one core | cost vs panoramisk |", "|---|---|---|---|"]
    for name, us in costs.items():
        lines.append(f"| {name} | {us:.2f} | {1e6 / us:,.0f} | {us / pano_us:.2f} |")
    lines += ["", (f"CallWriter alone (the daemon's, with its hooks; nothing else running): the {profiled_size}x "
                   "run's finished calls written in the transactions the daemon made during the timed run, then one "
                   "call per transaction. 'share' is that writing time over the run's end-to-end time: on one core "
                   "the writer's time and the ingest's add up."), "",
              ("| database | calls | transactions in the run (calls each) | writer alone s | ms per call "
               "| share of end to end | one call per transaction s | ms per call |"),
              "|---|---|---|---|---|---|---|---|"]
    for kind, w in writers.items():
        run = results[profiled_size][kind]
        lines.append(
            f"| {names[kind]} | {w.calls} | {len(w.batches)} ({_batches(w.batches)}) | {w.batched_s:.2f} "
            f"| {w.batched_s / w.calls * 1e3:.1f} | {w.batched_s / run.seconds:.0%} | {w.single_s:.2f} "
            f"| {w.single_s / w.calls * 1e3:.1f} |"
        )
    for name, text in parser_profiles.items():
        lines += ["", f"cProfile, {name}, own time:", "", "```", text, "```"]
    lines += ["", (f"cProfile of a separate (untimed) SQLite pipeline run at {profiled_size}x; cProfile counts each "
                   "resumption of a coroutine as a call, and greenlet switches blur cumulative times, so own time "
                   "(tottime) is the column to read:"), "", "```", profile_text, "```"]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
