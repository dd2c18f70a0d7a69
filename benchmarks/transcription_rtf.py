"""Real-time factor of speech recognition on the shared call recordings, per engine and compute type.

RTF = processing time / audio duration (0.1: a 10-minute call takes a minute).
Also measures N worker processes side by side (the systemd-template layout),
each with cores/N threads. Figures are printed and written to their section of
benchmarks/RESULTS.md (the previous run's section is replaced).

    python benchmarks/transcription_rtf.py [--compute-types int8 float32] [--workers 1 2]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import time
from pathlib import Path

from _common import cpu_model, shared_recordings, shared_traces_dir, write_section

from pbxbridge.transcription.engines import (
    EngineSettings,
    make_engine,
    transcribe_recording,
)


def measure(settings: EngineSettings, files: list[tuple[Path, float]]) -> tuple[float, float, float]:
    """(load seconds, wall seconds, CPU seconds of all threads) for one engine over the files."""
    started = time.perf_counter()
    engine = make_engine(settings)
    loaded = time.perf_counter() - started
    transcribe_recording(engine, files[0][0])  # warm-up: first call allocates buffers
    started, cpu = time.perf_counter(), time.process_time()
    for path, _ in files:
        transcribe_recording(engine, path)
    return loaded, time.perf_counter() - started, time.process_time() - cpu


def _worker(settings: EngineSettings, paths: list[str], ready: multiprocessing.Barrier) -> None:
    engine = make_engine(settings)
    ready.wait()
    for path in paths:
        transcribe_recording(engine, path)


def throughput(settings: EngineSettings, files: list[tuple[Path, float]], workers: int) -> float:
    """Audio seconds transcribed per wall-clock second by N worker processes."""
    ctx = multiprocessing.get_context("spawn")
    barrier = ctx.Barrier(workers + 1)
    shares = [[str(p) for p, _ in files[i::workers]] for i in range(workers)]
    procs = [ctx.Process(target=_worker, args=(settings, share, barrier)) for share in shares]
    for proc in procs:
        proc.start()
    barrier.wait()  # models loaded in every worker: time the transcription only
    started = time.perf_counter()
    for proc in procs:
        proc.join()
    return sum(d for _, d in files) / (time.perf_counter() - started)


def main() -> int:
    """Measure, print, and append the figures to RESULTS.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=shared_traces_dir())
    parser.add_argument("--model", default="", help="model directory (default: the bundled Whisper base)")
    parser.add_argument("--compute-types", nargs="+", default=["int8", "float32"])
    parser.add_argument("--beams", nargs="+", type=int, default=[5, 1],
                        help="beam sizes; the first for every compute type, the others for the first type only")
    parser.add_argument("--workers", nargs="*", type=int, default=[1, 2])
    parser.add_argument("--openai-checkpoint", default="", help="also time openai-whisper with this .pt file")
    parser.add_argument("--no-write", action="store_true", help="print only, leave RESULTS.md as it is")
    args = parser.parse_args()

    cores = os.cpu_count() or 1
    files = shared_recordings(args.shared)
    audio = sum(d for _, d in files)
    model_name = args.model or "whisper-base (bundled)"
    load_before = os.getloadavg()[0]
    print(f"{len(files)} recordings, {audio:.1f} s of audio; {cpu_model()}, {cores} cores; load {load_before:.1f}")
    rows = []
    # The settings' default beam for every compute type; a narrower beam (faster, a little
    # less accurate) for the first type only.
    runs = [(c, args.beams[0]) for c in args.compute_types] + [(args.compute_types[0], b) for b in args.beams[1:]]
    for compute_type, beam in runs:
        settings = EngineSettings(model=args.model, compute_type=compute_type, threads=cores, beam_size=beam)
        loaded, spent, cpu = measure(settings, files)
        rows.append(("faster-whisper", model_name, compute_type, beam, cores, loaded, spent / audio, cpu / audio))
        print(f"faster-whisper {compute_type:8} beam {beam}  load {loaded:5.1f} s  RTF {spent / audio:.3f}  "
              f"CPU s per audio s {cpu / audio:.3f}")
    if args.openai_checkpoint:
        settings = EngineSettings(engine="openai-whisper", model=args.openai_checkpoint, threads=cores)
        loaded, spent, cpu = measure(settings, files)
        rows.append(("openai-whisper", Path(args.openai_checkpoint).name, "float32", settings.beam_size, cores, loaded,
                     spent / audio, cpu / audio))
        print(f"openai-whisper float32  load {loaded:5.1f} s  RTF {spent / audio:.3f}  CPU s per audio s {cpu / audio:.3f}")
    flows = []
    for workers in args.workers:
        settings = EngineSettings(model=args.model, compute_type="int8", threads=max(1, cores // workers))
        rate = throughput(settings, files, workers)
        flows.append((workers, max(1, cores // workers), rate))
        print(f"{workers} worker(s) × {max(1, cores // workers)} threads (int8): "
              f"{rate:.1f} s of audio per second ({rate * 60:.0f} min of calls per hour)")

    if not args.no_write:
        lines = [
            f"{len(files)} shared recordings, {audio:.1f} s of 8 kHz audio; other work on the host slows "
            "RTF, so the load average is part of the record.",
            "",
            # CPU seconds per audio second hardly depend on other load; divided by
            # the threads it is the RTF an idle host of this CPU would reach.
            "| engine | model | compute type | beam | threads | load s | RTF (wall) | CPU s per audio s |",
            "|---|---|---|---|---|---|---|---|",
            *(f"| {e} | {m} | {c} | {b} | {t} | {lo:.1f} | {r:.3f} | {cp:.3f} |" for e, m, c, b, t, lo, r, cp in rows),
            "",
            *(
                ["| workers | threads each | audio s per wall s | minutes of calls per hour |", "|---|---|---|---|"]
                + [f"| {w} | {t} | {r:.1f} | {r * 60:.0f} |" for w, t, r in flows]
                if flows else []
            ),
        ]
        write_section("transcription_rtf", "Transcription real-time factor (benchmarks/transcription_rtf.py)",
                      "\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
