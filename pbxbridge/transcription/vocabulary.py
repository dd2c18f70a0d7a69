"""A company's own words (product and company names), spelled in the transcript as the company spells them."""

from __future__ import annotations

import re

from pbxbridge.transcription.transcript import Segment, Transcript, Word

# Cyrillic letters drawn like Latin ones.  Whisper's tokens for a Latin name
# heard in Russian speech often start in Cyrillic ("Аsterisk": a Cyrillic А,
# then Latin), a word nobody can find by typing it; compared through this
# table it is the vocabulary's word.
_LOOKALIKES = str.maketrans("АВЕКМНОРСТУХаеорсухіјѕ", "ABEKMHOPCTYXaeopcyxijs")
# A word's own letters, without the punctuation Whisper leaves attached; not a
# part of an address (www.asterisk.org stays as said).
_WORD = re.compile(r"(?<!\w\.)\b\w+(?:[-'’]\w+)*\b(?!\.\w)")


def _key(word: str) -> str:
    return word.translate(_LOOKALIKES).casefold()


def spelling_table(vocabulary: tuple[str, ...]) -> dict[str, str]:
    """Each one-word vocabulary entry by its look-alike key, as the company spells it.

    A phrase of several words still goes to the model as a hint, but is not
    respelled: its words alone may be ordinary ones.
    """
    table: dict[str, str] = {}
    for entry in vocabulary:
        word = entry.strip()
        if _WORD.fullmatch(word):
            table.setdefault(_key(word), word)
    return table


def _respell(text: str, table: dict[str, str]) -> str:
    return _WORD.sub(lambda m: table.get(_key(m.group(0)), m.group(0)), text)


def respell(transcript: Transcript, vocabulary: tuple[str, ...]) -> Transcript:
    """The transcript with every word that reads as a vocabulary word written as the vocabulary writes it.

    Only the look-alike letters and the case may differ: a word the model
    heard differently ("Астериск" for "Asterisk") is left as it was heard.
    """
    table = spelling_table(vocabulary)
    if not table:
        return transcript
    segments = tuple(
        Segment(
            s.start,
            s.end,
            _respell(s.text, table),
            s.speaker,
            tuple(Word(w.start, w.end, _respell(w.word, table)) for w in s.words),
        )
        for s in transcript.segments
    )
    return Transcript(segments, transcript.language, transcript.duration_s)
