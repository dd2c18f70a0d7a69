"""Silence is not transcribed: no invented text from a silent recording or the silent side of a call."""

from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from pbxbridge.transcription.engines import transcribe_recording
from tests.fixtures_transcription import (
    CachedEngine,
    speech_recordings,
    stt,  # noqa: F401, F811 - fixture
)

RATE = 8000  # as MixMonitor writes


def write_wav(path: Path, samples: np.ndarray) -> Path:
    """16-bit PCM at 8 kHz, one channel per column."""
    with wave.open(str(path), "wb") as wav:
        wav.setnchannels(1 if samples.ndim == 1 else samples.shape[1])
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(np.clip(samples, -32768, 32767).astype("<i2").tobytes())
    return path


def line_noise(seconds: float, seed: int = 7) -> np.ndarray:
    # RMS 40: a quiet line, under the ~100 the shared recordings hiss at between words.
    return np.random.default_rng(seed).normal(0.0, 40.0, int(RATE * seconds))


def speech_samples() -> np.ndarray:
    with wave.open(str(speech_recordings()[0].path)) as wav:
        return np.frombuffer(wav.readframes(wav.getnframes()), dtype="<i2").astype(np.float64)


@pytest.mark.parametrize(
    "samples",
    [np.zeros(RATE * 30), line_noise(30)],
    ids=["digital silence", "line noise"],
)
def test_a_silent_recording_gives_no_text(tmp_path: Path, stt: CachedEngine, samples: np.ndarray) -> None:
    transcript = transcribe_recording(stt, write_wav(tmp_path / "silent.wav", samples))
    assert transcript.segments == ()
    assert transcript.text == ""
    assert transcript.duration_s == pytest.approx(30.0, abs=0.1)


def test_the_silent_side_of_a_two_channel_call_says_nothing(tmp_path: Path, stt: CachedEngine) -> None:
    # The client talked (left); the manager's leg (right) carried only the line's hiss.
    voice = speech_samples()
    path = write_wav(tmp_path / "one-sided.wav", np.stack([voice, line_noise(len(voice) / RATE)], axis=1))
    transcript = transcribe_recording(stt, path)
    assert {s.speaker for s in transcript.segments} == {"client"}
    assert "оператор" in transcript.text.lower()


def test_speech_after_a_long_silence_keeps_its_time(tmp_path: Path, stt: CachedEngine) -> None:
    # A client left on hold for 40 s before anyone spoke: the silence is skipped, not the words,
    # and each word's time still counts from the start of the recording.
    voice = speech_samples()
    silence = line_noise(40)
    path = write_wav(tmp_path / "held.wav", np.concatenate([silence, voice]))
    alone = transcribe_recording(stt, speech_recordings()[0].path)
    held = transcribe_recording(stt, path)
    assert held.text.split()[:4] == alone.text.split()[:4]
    first_alone = alone.segments[0].words[0].start
    assert held.segments[0].words[0].start == pytest.approx(40.0 + first_alone, abs=0.5)
