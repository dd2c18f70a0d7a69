"""Finding a checklist's phrases in what was said: by dictionary forms, in order, on a side, in a window.

Pure: a call's words in, each item's verdict out (no database, no clock), so a
re-check of every past call is only reading and this.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from pbxbridge.analytics.checklist import Checklist, Item
from pbxbridge.transcription.lemmas import lemma, lemma_candidates, words_of

# Words of a phrase may be this many words apart («следующий шаг» also in «следующий наш шаг»).
MAX_GAP_WORDS = 2
MANAGER, CLIENT, ANY = "manager", "client", "any"
# Why an item failed (the words a person reads are the web app's and the command line's).
NOT_SAID = "not_said"
STOP_SAID = "stop_phrase_said"


# Not frozen: a re-check makes one per word said in every call, and a frozen dataclass is slow to build.
@dataclass(slots=True)
class Spoken:
    """One word said in a call, with its dictionary form and where it falls in the call."""

    at_s: float  # from the start of its recording: where the player seeks
    end_s: float
    side: str | None  # manager | client; None on a one-channel recording
    text: str
    lemma: str
    recording_id: int | None = None
    # Seconds since the answer (None: not in the first recording, so not early in the call).
    from_answer_s: float | None = None
    # Seconds before the call's end (None: not in the last recording).
    to_end_s: float | None = None


@dataclass(frozen=True, slots=True)
class ItemResult:
    title: str
    must: bool
    side: str
    passed: bool
    # Where the phrase was said (the first time): at_s, side, words, recording_id.
    evidence: dict[str, Any] | None
    reason: str | None
    # A side-bound item judged on a one-channel recording, where nobody's side is known.
    side_unknown: bool

    def as_json(self) -> dict[str, Any]:
        return {
            "title": self.title, "must": self.must, "side": self.side, "passed": self.passed,
            "evidence": self.evidence, "reason": self.reason, "side_unknown": self.side_unknown,
        }


@lru_cache(maxsize=4096)
def phrase_forms(phrase: str) -> tuple[frozenset[str], ...]:
    """Each word of a phrase as the dictionary forms it may have (any of them matches)."""
    return tuple(lemma_candidates(w) | {lemma(w)} for w in words_of(phrase))


class _Words:
    """One side's words in order, indexed by dictionary form so a phrase is looked up, not scanned for."""

    def __init__(self, words: Sequence[Spoken]) -> None:
        self.words = words
        self.at: dict[str, list[int]] = {}
        for i, word in enumerate(words):
            self.at.setdefault(word.lemma, []).append(i)

    def find(self, forms: tuple[frozenset[str], ...]) -> tuple[int, int] | None:
        """The earliest span saying the phrase's words in order, at most MAX_GAP_WORDS between each."""
        if not forms:
            return None
        starts = sorted(i for form in forms[0] for i in self.at.get(form, ()))
        for start in starts:
            end = self._rest(forms, 1, start)
            if end is not None:
                return start, end
        return None

    def _rest(self, forms: tuple[frozenset[str], ...], k: int, last: int) -> int | None:
        if k == len(forms):
            return last
        for i in range(last + 1, min(last + 2 + MAX_GAP_WORDS, len(self.words))):
            if self.words[i].lemma in forms[k]:
                end = self._rest(forms, k + 1, i)
                if end is not None:
                    return end
        return None


def _in_window(word: Spoken, item: Item) -> bool:
    if item.within_s is not None:
        return word.from_answer_s is not None and word.from_answer_s <= item.within_s
    if item.last_s is not None:
        return word.to_end_s is not None and word.to_end_s <= item.last_s
    return True


class CallWords:
    """A call's words, grouped the ways the items ask for them (each grouping built once per call)."""

    def __init__(self, words: Iterable[Spoken]) -> None:
        self.words = sorted(words, key=lambda w: (w.recording_id or 0, w.at_s))
        self.two_channel = any(w.side is not None for w in self.words)
        self._groups: dict[tuple[str, float | None, float | None], list[_Words]] = {}

    def groups(self, item: Item) -> list[_Words]:
        """The word runs a phrase of this item may be found in: one per speaker (a phrase is one person's)."""
        key = (item.side, item.within_s, item.last_s)
        found = self._groups.get(key)
        if found is None:
            windowed = item.within_s is not None or item.last_s is not None
            words = [w for w in self.words if _in_window(w, item)] if windowed else self.words
            if not self.two_channel:
                sides: list[str | None] = [None]
            elif item.side == ANY:
                sides = [MANAGER, CLIENT]
            else:
                sides = [item.side]
            found = self._groups[key] = [_Words([w for w in words if w.side == side]) for side in sides]
        return found


def check_item(call: CallWords, item: Item) -> ItemResult:
    """Whether the call meets one item, and the moment that shows it."""
    best: tuple[Spoken, str] | None = None
    for group in call.groups(item):
        for phrase in item.phrases:
            span = group.find(phrase_forms(phrase))
            if span is None:
                continue
            first = group.words[span[0]]
            if best is None or (first.recording_id or 0, first.at_s) < (best[0].recording_id or 0, best[0].at_s):
                best = first, " ".join(w.text for w in group.words[span[0]: span[1] + 1])
    side_unknown = not call.two_channel and item.side != ANY
    evidence = None
    if best is not None:
        word, text = best
        evidence = {"at_s": round(word.at_s, 2), "side": word.side, "words": text, "recording_id": word.recording_id}
    said = best is not None
    passed = said if item.must else not said
    reason = None if passed else (NOT_SAID if item.must else STOP_SAID)
    return ItemResult(item.title, item.must, item.side, passed, evidence, reason, side_unknown)


def check_call(call: CallWords, checklist: Checklist) -> list[ItemResult]:
    """Every item of a checklist, judged on one call's words."""
    return [check_item(call, item) for item in checklist.items]


def spoken_words(
    segments: Iterable[dict[str, Any]],
    *,
    answer_s: float | None = 0.0,
    end_s: float | None = None,
    recording_id: int | None = None,
) -> list[Spoken]:
    """One recording's stored segments as words with dictionary forms.

    A segment is {start, end, speaker, text, words: [{start, end, word}], lemmas}. Its
    stored lemmas are its text's words in order (as the search index has them):
    used when they line up with the timed words, so the analyser runs only on the
    rest. A segment without timed words spreads its text over its time.
    ``answer_s``: where the answer falls in this recording (None: a later recording
    of the call); ``end_s``: where the call ends in it (None: an earlier one).
    """
    out: list[Spoken] = []
    for seg in segments:
        speaker = seg.get("speaker")
        timed: list[tuple[float, float, str]] = []
        for w in seg.get("words") or ():
            for token in words_of(str(w.get("word", ""))):
                timed.append((float(w.get("start", seg["start"])), float(w.get("end", seg["end"])), token))
        if not timed:
            tokens = words_of(seg.get("text") or "")
            step = (float(seg["end"]) - float(seg["start"])) / max(len(tokens), 1)
            timed = [(float(seg["start"]) + i * step, float(seg["start"]) + (i + 1) * step, t) for i, t in enumerate(tokens)]
        stored = (seg.get("lemmas") or "").split()
        lemmas = stored if len(stored) == len(timed) else [lemma(t) for _s, _e, t in timed]
        for (start, end, token), form in zip(timed, lemmas, strict=True):
            since = None if answer_s is None else start - answer_s
            before = None if end_s is None else end_s - start
            out.append(Spoken(
                start, end, speaker, token, form, recording_id,
                0.0 if since is not None and since < 0 else since,
                0.0 if before is not None and before < 0 else before,
            ))
    return out
