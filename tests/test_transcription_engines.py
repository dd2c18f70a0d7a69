"""Russian speech in the shared recordings, through the bundled Whisper base model."""

from __future__ import annotations

import sys
from typing import Any

import jiwer
import pytest

from pbxbridge.transcription.engines import (
    EngineSettings,
    EngineUnavailable,
    make_engine,
    resolve_compute_type,
    transcribe_recording,
)
from tests.fixtures_transcription import (
    PROMPTS,
    CachedEngine,
    SpeechRecording,
    normalise,
    speech_recordings,
    stereo_recording,
    stt,  # noqa: F401, F811 - fixture
)

MAX_WER = 0.35


@pytest.mark.parametrize("recording", speech_recordings(), ids=lambda r: r.linkedid)
def test_word_error_rate_per_recording(recording: SpeechRecording, stt: CachedEngine) -> None:
    transcript = transcribe_recording(stt, recording.path)
    hypothesis = normalise(transcript.text)
    wer = jiwer.wer(normalise(recording.reference), hypothesis)
    assert wer <= MAX_WER, f"WER {wer:.3f} for {recording.path.name}: {hypothesis!r}"


def test_every_spoken_recording_is_checked(expected: dict[str, Any]) -> None:
    # Every call whose speech the ground truth fixes has its recording found and checked above.
    spoken = sorted(name for name, scenario in expected.items() for call in scenario["calls"] if call.get("speech"))
    assert spoken and sorted(r.scenario for r in speech_recordings()) == spoken


def test_words_carry_times_inside_their_segment(stt: CachedEngine) -> None:
    transcript = transcribe_recording(stt, speech_recordings()[0].path)
    assert transcript.language == "ru"
    words = [w for s in transcript.segments for w in s.words]
    assert len(words) >= 25
    for segment in transcript.segments:
        for word in segment.words:
            assert segment.start - 0.05 <= word.start <= word.end <= segment.end + 0.05
    starts = [w.start for w in words]
    assert starts == sorted(starts)
    assert words[-1].end <= transcript.duration_s


def test_stereo_call_is_split_into_client_and_manager(stt: CachedEngine) -> None:
    transcript = transcribe_recording(stt, stereo_recording())
    by_speaker = {
        speaker: normalise(" ".join(s.text for s in transcript.segments if s.speaker == speaker))
        for speaker in ("client", "manager")
    }
    assert {s.speaker for s in transcript.segments} == {"client", "manager"}
    # Left channel: the caller says demo-moreinfo; right: the manager says queue-periodic-announce.
    assert jiwer.wer(normalise(PROMPTS["demo-moreinfo"]), by_speaker["client"]) <= MAX_WER
    assert jiwer.wer(normalise(PROMPTS["queue-periodic-announce"]), by_speaker["manager"]) <= MAX_WER
    # Merged by time: the manager's greeting comes first, as it was spoken.
    starts = [s.start for s in transcript.segments]
    assert starts == sorted(starts)
    assert transcript.segments[0].speaker == "manager"


def test_channel_labels_follow_the_settings(stt: CachedEngine) -> None:
    # A PBX whose sox join put the manager on the left.
    transcript = transcribe_recording(stt, stereo_recording(), channel_speakers=("manager", "client"))
    first = transcript.segments[0]
    assert first.speaker == "client"
    assert "оператор" in normalise(first.text)


def test_openai_whisper_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    # None in sys.modules makes `import whisper` fail as on a host without the extra.
    monkeypatch.setitem(sys.modules, "whisper", None)
    with pytest.raises(EngineUnavailable, match=r"pip install 'pbxbridge\[openai-whisper\]'"):
        make_engine(EngineSettings(engine="openai-whisper", model="/models/base.pt"))


def test_unknown_engine_names_the_choices() -> None:
    with pytest.raises(EngineUnavailable, match="faster-whisper"):
        make_engine(EngineSettings(engine="vosk"))


def test_compute_type_auto_is_int8_on_cpu_and_float16_on_gpu() -> None:
    assert resolve_compute_type("auto", "cpu") == "int8"
    assert resolve_compute_type("auto", "cuda") == "float16"
    assert resolve_compute_type("float32", "cpu") == "float32"


def test_settings_come_from_the_transcription_config_section() -> None:
    from pbxbridge.config import load_config

    config = load_config(None, {"PBXBRIDGE_TRANSCRIPTION__BEAM_SIZE": "2", "PBXBRIDGE_TRANSCRIPTION__THREADS": "1"})
    settings = EngineSettings.from_config(config.transcription)
    assert (settings.engine, settings.language, settings.beam_size, settings.threads) == ("faster-whisper", "ru", 2, 1)
