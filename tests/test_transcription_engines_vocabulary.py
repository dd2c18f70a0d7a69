"""A company's vocabulary: from the config to the model, and its names spelled as the company spells them."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from pbxbridge.config import ConfigError, load_config
from pbxbridge.transcription.engines import (
    EngineSettings,
    EngineUnavailable,
    FasterWhisperEngine,
    transcribe_recording,
)
from pbxbridge.transcription.transcript import Segment, Transcript, Word
from pbxbridge.transcription.vocabulary import respell
from tests.fixtures_transcription import (
    CachedEngine,
    speech_recordings,
    stt,  # noqa: F401, F811 - fixture
)


def loaded(stt: CachedEngine) -> FasterWhisperEngine:
    engine = stt.engine
    assert isinstance(engine, FasterWhisperEngine)
    return engine


def test_vocabulary_comes_from_the_config_file(tmp_path: Path) -> None:
    path = tmp_path / "pbxbridge.toml"
    path.write_text('[transcription]\nvocabulary = ["Гимпульс", "Фитнес Плюс"]\n', encoding="utf-8")
    settings = EngineSettings.from_config(load_config(path, {}).transcription)
    assert settings.vocabulary == ("Гимпульс", "Фитнес Плюс")
    assert settings.hotwords == "Гимпульс, Фитнес Плюс"


def test_vocabulary_comes_from_the_environment() -> None:
    config = load_config(None, {"PBXBRIDGE_TRANSCRIPTION__VOCABULARY": "Гимпульс, Asterisk"})
    assert EngineSettings.from_config(config.transcription).vocabulary == ("Гимпульс", "Asterisk")


def test_no_vocabulary_gives_the_model_no_hint() -> None:
    assert EngineSettings.from_config(load_config(None, {}).transcription).hotwords is None


@pytest.mark.parametrize(
    ("toml", "message"),
    [
        ('vocabulary = ["Гимпульс", " "]', r"transcription.vocabulary\[1\]: an empty name"),
        ('vocabulary = ["Гимпульс", "гимпульс"]', r"transcription.vocabulary\[1\]: 'гимпульс' is listed twice"),
        (f'vocabulary = [{", ".join(chr(34) + "Гимпульс" + str(i) + chr(34) for i in range(60))}]',
         r"transcription.vocabulary: \d+ characters in all, at most 400"),
        ('vocabulary = "Гимпульс"', r"transcription.vocabulary: must be a list of strings"),
    ],
    ids=["blank", "twice", "too long", "not a list"],
)
def test_a_bad_vocabulary_is_refused_with_the_reason(tmp_path: Path, toml: str, message: str) -> None:
    path = tmp_path / "pbxbridge.toml"
    path.write_text(f"[transcription]\n{toml}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message):
        load_config(path, {})


def test_a_vocabulary_longer_than_the_model_reads_is_refused(stt: CachedEngine) -> None:
    engine = loaded(stt)
    # Under the config's character limit, over the model's 223 tokens: rare Latin letters cost one each.
    names = tuple(f"Qz{i}xj" for i in range(60))
    with pytest.raises(EngineUnavailable, match=r"tokens long for the model, which reads at most 223"):
        engine.with_settings(replace(engine.settings, vocabulary=names))


def test_only_decoding_settings_change_without_a_new_load(stt: CachedEngine) -> None:
    engine = loaded(stt)
    with pytest.raises(ValueError, match="compute_type"):
        engine.with_settings(replace(engine.settings, compute_type="float32"))


def test_a_name_in_the_vocabulary_is_written_as_the_company_writes_it(stt: CachedEngine) -> None:
    # The client's prompt says «...под операционной системой Линукс»; Whisper base writes
    # the Latin «Linux» unless told, and the start of «Asterisk» in Cyrillic letters.
    recording = speech_recordings()[0].path
    plain = transcribe_recording(stt, recording)
    engine = loaded(stt)
    told = transcribe_recording(engine.with_settings(replace(engine.settings, vocabulary=("Asterisk", "Линукс"))),
                                recording)
    words = [w.word.strip(".,!?–- ") for s in told.segments for w in s.words]
    assert "Линукс" not in plain.text
    assert "Линукс" in words
    assert "Линукс" in told.text
    assert "Asterisk" in words
    # Its time is the word's own: inside the segment that holds it.
    (segment,) = [s for s in told.segments if "Линукс" in s.text]
    (word,) = [w for w in segment.words if "Линукс" in w.word]
    assert segment.start <= word.start < word.end <= segment.end + 0.05


def test_respelling_changes_look_alike_letters_and_case_only() -> None:
    words = ("Аsterisk", "астериск", "GYMPULSE", "обслужен")
    transcript = Transcript((Segment(0.0, 2.0, "Аsterisk, астериск и GYMPULSE обслужен.", "client",
                                     tuple(Word(i * 0.5, i * 0.5 + 0.4, w) for i, w in enumerate(words))),), "ru", 2.0)
    out = respell(transcript, ("Asterisk", "Gympulse", "Фитнес Плюс"))
    # A Cyrillic А before Latin letters, and a shouted name, become the names as listed; the name
    # heard in Russian letters («астериск») stays as heard, and so does everything else.
    assert out.segments[0].text == "Asterisk, астериск и Gympulse обслужен."
    assert [w.word for w in out.segments[0].words] == ["Asterisk", "астериск", "Gympulse", "обслужен"]
    assert (out.segments[0].speaker, out.segments[0].start, out.duration_s) == ("client", 0.0, 2.0)
    assert respell(transcript, ()) is transcript
