"""Word error rate and speed of speech recognition per setting: VAD, company vocabulary, batched decoding.

Every shared recording with sound is transcribed once per setting, as a worker
would (two-channel files one channel at a time). Word error rate is measured
on the recordings whose spoken prompts are known (the shared README gives
their text), the two-channel call per side; "silent words" counts the words
that come out of silent recordings made here (digital silence, line noise,
and the quiet side of a two-channel call), which should be none.

Speed: wall-clock RTF (other work on the host stretches it, so the load average
is printed beside it) and CPU seconds per audio second, which hardly depend on
that load; "minutes per core-hour" is how many minutes of calls one core
transcribes in an hour at that CPU cost. Prints a Markdown table; writes nothing.

    python benchmarks/transcription_quality.py [--settings baseline vad vocabulary batched ...] [--repeat 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import wave
from dataclasses import dataclass, replace
from pathlib import Path

import jiwer
import numpy as np
from _common import cpu_model, shared_recordings, shared_traces_dir

from pbxbridge.transcription.engines import EngineSettings, make_engine, transcribe_recording
from tests.fixtures_transcription import PROMPTS, normalise, speech_recordings, stereo_recording

# Names said in the shared recordings that a company running Asterisk would list.
VOCABULARY = ("Asterisk", "Линукс")
BASE = EngineSettings(compute_type="int8", beam_size=5, threads=2)
SETTINGS: dict[str, EngineSettings] = {
    "no VAD": replace(BASE, vad=False),
    "VAD": replace(BASE, vad=True),
    "no VAD + vocabulary": replace(BASE, vad=False, vocabulary=VOCABULARY),
    "VAD + vocabulary": replace(BASE, vad=True, vocabulary=VOCABULARY),
    "VAD, batched": replace(BASE, vad=True, batched=True),
    "VAD + vocabulary, batched": replace(BASE, vad=True, vocabulary=VOCABULARY, batched=True),
}


@dataclass(frozen=True)
class Reference:
    """A recording (or one side of it, by speaker) and what was said there."""

    path: Path
    speaker: str | None
    text: str


def references(shared: Path) -> list[Reference]:
    """The spoken recordings and, for the two-channel call, each side's prompt."""
    refs = [Reference(r.path, None, r.reference) for r in speech_recordings(shared)]
    stereo = stereo_recording(shared)
    refs.append(Reference(stereo, "client", PROMPTS["demo-moreinfo"]))
    refs.append(Reference(stereo, "manager", PROMPTS["queue-periodic-announce"]))
    return refs


def _write_wav(path: Path, samples: np.ndarray, rate: int = 8000) -> Path:
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(samples.shape[1] if samples.ndim == 2 else 1)
        wav.setsampwidth(2)
        wav.setframerate(rate)
        wav.writeframes(np.clip(samples, -32768, 32767).astype("<i2").tobytes())
    return path


def silent_recordings(directory: Path, speech: Path) -> list[Path]:
    """Digital silence, line noise (RMS ~40, under the shared recordings' own), and a call whose right side is mute."""
    rng = np.random.default_rng(7)
    with wave.open(str(speech)) as wav:
        voice = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)
    noise = rng.normal(0.0, 40.0, len(voice))
    return [
        _write_wav(directory / "silence.wav", np.zeros(8000 * 30)),
        _write_wav(directory / "line-noise.wav", rng.normal(0.0, 40.0, 8000 * 30)),
        _write_wav(directory / "one-side-mute.wav", np.stack([voice, noise], axis=1)),
    ]


def silent_words(engine: object, paths: list[Path]) -> int:
    """Words transcribed from silence: the mute files whole, and the mute right side of the last."""
    count = 0
    for path in paths:
        transcript = transcribe_recording(engine, path)  # type: ignore[arg-type]
        segments = [s for s in transcript.segments if s.speaker in (None, "manager")]
        count += sum(len(normalise(s.text).split()) for s in segments)
    return count


def run(name: str, settings: EngineSettings, files: list[tuple[Path, float]], refs: list[Reference],
        silent: list[Path], repeat: int) -> dict[str, float | str]:
    """Time one setting over every file (best of `repeat` passes) and score its transcripts."""
    started = time.perf_counter()
    engine = make_engine(settings)
    loaded = time.perf_counter() - started
    transcribe_recording(engine, files[0][0])  # warm-up: the first call allocates buffers
    walls, cpus, texts = [], [], {}
    load = os.getloadavg()[0]
    for _ in range(repeat):
        wall, cpu = time.perf_counter(), time.process_time()
        for path, _duration in files:
            texts[path] = transcribe_recording(engine, path)
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    audio = sum(d for _, d in files)
    scores = []
    for ref in refs:
        transcript = texts[ref.path]
        said = " ".join(s.text for s in transcript.segments if ref.speaker is None or s.speaker == ref.speaker)
        scores.append(jiwer.wer(normalise(ref.text), normalise(said)))
    spelled = {word: sum(w.word.strip(".,;:!?–-") == word for t in texts.values() for s in t.segments for w in s.words)
               for word in VOCABULARY}
    return {
        "setting": name,
        "load s": loaded,
        "load avg": load,
        "RTF": min(walls) / audio,
        "CPU s per audio s": statistics.median(cpus) / audio,
        "WER": statistics.mean(scores),
        "WERs": " ".join(f"{s:.3f}" for s in scores),
        "silent words": silent_words(engine, silent),
        "spelled": " ".join(f"{w} {n}" for w, n in spelled.items()),
    }


def main() -> int:
    """Measure every chosen setting and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shared", type=Path, default=shared_traces_dir())
    parser.add_argument("--settings", nargs="+", choices=sorted(SETTINGS), default=list(SETTINGS))
    parser.add_argument("--repeat", type=int, default=1, help="passes per setting; the fastest wall, the median CPU")
    args = parser.parse_args()

    files = shared_recordings(args.shared)
    refs = references(args.shared)
    audio = sum(d for _, d in files)
    print(f"{len(files)} recordings, {audio:.1f} s of audio, {len(refs)} with known speech; {cpu_model()}, "
          f"{os.cpu_count()} cores; load {os.getloadavg()[0]:.1f}; beam 5, int8, 2 threads", flush=True)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        silent = silent_recordings(Path(tmp), refs[0].path)
        for name in args.settings:
            row = run(name, SETTINGS[name], files, refs, silent, args.repeat)
            rows.append(row)
            print(row, flush=True)
    print()
    # CPU s per audio s over the threads: the RTF of an idle host if both threads
    # kept busy, a floor (on this CPU two threads ran 1.4x one in earlier runs).
    print("| setting | load avg | RTF (wall) | CPU s per audio s | CPU s / threads | minutes of calls per core-hour | "
          "WER mean | WER per recording | words from silence | vocabulary spelled as given |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        cpu = float(r["CPU s per audio s"])
        print(f"| {r['setting']} | {float(r['load avg']):.1f} | {float(r['RTF']):.3f} | {cpu:.3f} | "
              f"{cpu / BASE.threads:.3f} | {60 / cpu:.0f} | "
              f"{float(r['WER']):.3f} | {r['WERs']} | {r['silent words']} | {r['spelled']} |")
    print(f"\nload at end {os.getloadavg()[0]:.1f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
