"""What a transcript is: timed segments of text, each with timed words."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Word:
    """One spoken word with its start and end in seconds from the recording's start."""

    start: float
    end: float
    word: str


@dataclass(frozen=True, slots=True)
class Segment:
    """A stretch of speech by one speaker (None when both sides share one channel)."""

    start: float
    end: float
    text: str
    speaker: str | None = None
    words: tuple[Word, ...] = ()


@dataclass(frozen=True, slots=True)
class Transcript:
    """All segments of one recording, ordered by start time."""

    segments: tuple[Segment, ...] = ()
    language: str = ""
    duration_s: float = 0.0

    @property
    def text(self) -> str:
        """The whole transcript as one line of text."""
        return " ".join(s.text.strip() for s in self.segments if s.text.strip())


def merge_by_time(parts: list[Transcript]) -> Transcript:
    """Interleave several speakers' transcripts into one, ordered by segment start."""
    segments = sorted(
        (s for t in parts for s in t.segments), key=lambda s: (s.start, s.end, s.speaker or "")
    )
    language = next((t.language for t in parts if t.language), "")
    duration = max((t.duration_s for t in parts), default=0.0)
    return Transcript(tuple(segments), language, duration)
