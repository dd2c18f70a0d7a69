"""The batched pipeline: the same words as one window after another, cut into phrases, turns in spoken order."""

from __future__ import annotations

from dataclasses import replace

import jiwer

from pbxbridge.transcription.engines import FasterWhisperEngine, split_at_pauses, transcribe_recording
from tests.fixtures_transcription import (
    PROMPTS,
    CachedEngine,
    normalise,
    stereo_recording,
    stt,  # noqa: F401, F811 - fixture
)

MAX_WER = 0.35


def test_a_chunk_is_cut_at_sentence_ends_and_pauses() -> None:
    words = [
        (0.5, 0.9, " Все"), (0.9, 1.3, " заняты."), (1.4, 1.9, " Оставайтесь"), (1.9, 2.3, " на"),
        (3.5, 3.9, " линии"), (4.0, 4.3, " www"), (4.3, 4.8, ".asterisk"), (4.8, 5.1, ".org"),
    ]
    phrases = split_at_pauses(0.0, 5.2, "", words)
    assert [(p.start, p.end, p.text) for p in phrases] == [
        (0.5, 1.3, "Все заняты."),
        (1.4, 2.3, "Оставайтесь на"),
        (3.5, 5.1, "линии www.asterisk.org"),
    ]
    assert [w.word for w in phrases[2].words] == ["линии", "www", ".asterisk", ".org"]


def test_a_chunk_without_word_times_stays_whole() -> None:
    (segment,) = split_at_pauses(1.0, 4.0, " Алло ", [])
    assert (segment.start, segment.end, segment.text, segment.words) == (1.0, 4.0, "Алло", ())


def test_batched_decoding_keeps_each_side_and_the_order_of_turns(stt: CachedEngine) -> None:
    engine = stt.engine
    assert isinstance(engine, FasterWhisperEngine)
    batched = engine.with_settings(replace(engine.settings, batched=True))
    transcript = transcribe_recording(batched, stereo_recording())
    said = {
        side: normalise(" ".join(s.text for s in transcript.segments if s.speaker == side))
        for side in ("client", "manager")
    }
    assert jiwer.wer(normalise(PROMPTS["demo-moreinfo"]), said["client"]) <= MAX_WER
    assert jiwer.wer(normalise(PROMPTS["queue-periodic-announce"]), said["manager"]) <= MAX_WER
    # The manager greets first; the client's two sentences are two phrases, not one 12-second block.
    assert [s.speaker for s in transcript.segments] == ["manager", "client", "client"]
    for segment in transcript.segments:
        assert segment.words and segment.start == segment.words[0].start and segment.end == segment.words[-1].end
        assert segment.end - segment.start < 10.0
