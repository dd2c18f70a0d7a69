"""Fixtures for transcription tests: the real bundled model, the shared recordings and their prompts."""

from __future__ import annotations

import functools
import hashlib
import json
import os
import re
import wave
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.ami.frames import read_trace
from pbxbridge.calls.replay import replay_trace, tracker_settings
from pbxbridge.calls.store import CallWriter
from pbxbridge.config import Config, PbxConfig, load_config
from pbxbridge.transcription.engines import Engine, EngineSettings
from pbxbridge.transcription.engines import make_engine as make_stt
from pbxbridge.transcription.queue import enqueue_written
from pbxbridge.transcription.transcript import Transcript

REPO_ROOT = Path(__file__).resolve().parent.parent

# The prompts' text as the shared README gives it.
PROMPTS = {
    "queue-periodic-announce": (
        "Все наши операторы заняты. Пожалуйста, оставайтесь на линии, и Ваш звонок будет "
        "обслужен первым доступным оператором."
    ),
    "demo-moreinfo": (
        "Asterisk это полноценная телефонная станция и платформа для голосовых меню, работающая "
        "под операционной системой Линукс. Дополнительная информация на сайте www.asterisk.org"
    ),
}


def shared_path() -> Path:
    """The shared captures directory, found as the conftest's shared_dir fixture finds it."""
    override = os.environ.get("PBXBRIDGE_SHARED")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "ami-traces"


def normalise(text: str) -> str:
    """Text for word error rate: lower case, ё as е, punctuation as spaces."""
    text = text.lower().replace("ё", "е")
    return " ".join(re.sub(r"[^\w]+", " ", text).split())


@dataclass(frozen=True)
class SpeechRecording:
    """A shared recording and the prompts spoken in it, in order."""

    path: Path
    scenario: str
    linkedid: str
    speech: tuple[str, ...]

    @property
    def reference(self) -> str:
        """The prompts' text, in the order they were spoken."""
        return " ".join(PROMPTS[name] for name in self.speech)


def linkedid_of(recording: Path) -> str:
    """FreePBX names a recording ...-<uniqueid>.wav; for the call's first leg that is its linkedid."""
    return recording.stem.removesuffix("-stereo").rsplit("-", 1)[1]


def speech_recordings(shared: Path | None = None) -> list[SpeechRecording]:
    """Recordings whose call has `speech` in expected.json, matched by the linkedid in the file name."""
    return list(_speech_recordings(shared or shared_path()))


@functools.cache
def _speech_recordings(shared: Path) -> tuple[SpeechRecording, ...]:
    expected = json.loads((shared / "expected.json").read_text(encoding="utf-8"))
    # Which scenario (trace) each linkedid belongs to: MixMonitor's file name is
    # set on a channel of that linkedid in the stream.
    scenario_of: dict[str, str] = {}
    for trace in sorted(shared.glob("*.ami")):
        _banner, frames = read_trace(trace)
        for frame in frames:
            if frame.get("Event") == "VarSet" and frame.get("Variable") == "MIXMONITOR_FILENAME":
                scenario_of[frame["Linkedid"]] = trace.stem
    found = []
    for path in sorted((shared / "recordings").rglob("*.wav")):
        linkedid = linkedid_of(path)
        scenario = scenario_of.get(linkedid)
        if scenario is None:
            continue
        calls = expected[scenario]["calls"]
        # Several calls in one scenario: the one whose client's number is in the file name.
        matching = [c for c in calls if len(calls) == 1 or (c.get("client") and c["client"] in path.name)]
        if len(matching) == 1 and matching[0].get("speech"):
            found.append(SpeechRecording(path, scenario, linkedid, tuple(matching[0]["speech"])))
    return tuple(found)


def stereo_recording(shared: Path | None = None) -> Path:
    """The two-channel call: left the client, right the manager."""
    return next(((shared or shared_path()) / "recordings-stereo").glob("*.wav"))


class CachedEngine:
    """The real engine, remembering each file's transcript (by content) for the test session.

    The model takes seconds per call on two cores; every test that needs a
    recording transcribed shares one run of it.
    """

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self.name = engine.name
        self.runs = 0
        self._cache: dict[tuple[str, int | None], Transcript] = {}

    def transcribe(self, path: str | Path, channel: int | None = None) -> Transcript:
        """The engine's transcript, computed once per file content and channel."""
        key = (hashlib.sha256(Path(path).read_bytes()).hexdigest(), channel)
        if key not in self._cache:
            self.runs += 1
            self._cache[key] = self.engine.transcribe(path, channel)
        return self._cache[key]


@functools.cache
def shared_engine() -> CachedEngine:
    """One engine for the whole session, whichever test modules import the fixture."""
    return CachedEngine(make_stt(EngineSettings()))


@pytest.fixture(scope="session")
def stt() -> CachedEngine:
    """The bundled Whisper base (faster-whisper, int8), loaded once per test session."""
    return shared_engine()


FRAME_S = 0.02
# Line noise in these recordings stays under ~100 RMS; speech is well over 300.
LOUD_RMS = 300.0


def loud_frames(path: Path, channel: int | None = None) -> np.ndarray:
    """For each 20 ms of the file (or of one channel), whether it holds sound, read from the samples."""
    with wave.open(str(path)) as wav:
        rate = wav.getframerate()
        samples = np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)
        samples = samples.reshape(-1, wav.getnchannels())
    samples = samples.mean(axis=1) if channel is None else samples[:, channel]
    size = int(rate * FRAME_S)
    count = len(samples) // size
    return np.sqrt((samples[: count * size].reshape(count, size) ** 2).mean(axis=1)) > LOUD_RMS


def speech_onset_s(path: Path, channel: int | None = None) -> float:
    """Where sound first rises above the line noise (not from Whisper)."""
    loud = np.nonzero(loud_frames(path, channel))[0]
    assert loud.size, f"{path} holds no sound"
    return float(loud[0] * FRAME_S)


def speech_span_s(path: Path, channel: int | None = None) -> tuple[float, float]:
    """First and last moment of sound in the file (or one channel)."""
    loud = np.nonzero(loud_frames(path, channel))[0]
    assert loud.size, f"{path} holds no sound"
    return float(loud[0] * FRAME_S), float((loud[-1] + 1) * FRAME_S)


def recordings_config(root: Path) -> Config:
    """Default settings with the recordings root pointed at root."""
    return load_config(None, {"PBXBRIDGE_RECORDINGS__ROOT": str(root)})


async def write_scenarios(
    factory: async_sessionmaker[AsyncSession], root: Path, scenarios: list[str], shared: Path | None = None
) -> list[Any]:
    """Replay captured scenarios into the journal, queueing recordings as the daemon does."""
    shared = shared or shared_path()
    writer = CallWriter(factory, recordings_config(root), after_write=[enqueue_written])
    rows = []
    for scenario in scenarios:
        for call in replay_trace(shared / f"{scenario}.ami", tracker_settings(PbxConfig())):
            rows.append(await writer.write(call))
    return rows
