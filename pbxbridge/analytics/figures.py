"""How a conversation went, from a two-channel recording: who talked how much, monologues, interruptions.

Each side's speech is the union of its words' times (a segment's span where the
engine gave no word times). One-channel recordings give no figures at all: who
said what is not known there, and a zero would read as a fact.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

MANAGER, CLIENT = "manager", "client"
# Pauses shorter than this inside one side's speech are part of it (between words, a breath).
JOIN_PAUSE_S = 0.5
# A manager's monologue ends when the client speaks or the manager is silent this long.
MONOLOGUE_BREAK_S = 3.0
# One side starting this far inside the other's speech is an interruption, not the usual overlap
# of a turn taken as the other finishes its last word.
INTERRUPT_MARGIN_S = 0.3

Span = tuple[float, float]


@dataclass(frozen=True, slots=True)
class ConversationFigures:
    duration_s: float
    manager_talk_s: float
    client_talk_s: float
    manager_share: float  # of the time either side spoke, 0..1
    client_share: float
    longest_monologue_s: float  # the manager's
    interruptions: int  # either side starting while the other talks
    manager_interruptions: int  # the manager cutting into the client
    client_interruptions: int
    silence_share: float  # of the recording, 0..1: neither side speaking
    manager_wpm: float | None  # words per minute of the manager's own speech
    client_wpm: float | None

    def as_json(self) -> dict[str, Any]:
        return {k: (round(v, 3) if isinstance(v, float) else v) for k, v in asdict(self).items()}


def merge(spans: Iterable[Span], join_s: float = 0.0) -> list[Span]:
    """Overlapping spans (and those closer than ``join_s``) as one, in order."""
    out: list[list[float]] = []
    for start, end in sorted(spans):
        if end < start:
            start, end = end, start
        if out and start <= out[-1][1] + join_s:
            out[-1][1] = max(out[-1][1], end)
        else:
            out.append([start, end])
    return [(s, e) for s, e in out]


def _total(spans: Sequence[Span]) -> float:
    return sum(e - s for s, e in spans)


def _inside(t: float, spans: Sequence[Span], starts: Sequence[float]) -> bool:
    """Whether ``t`` falls well inside one of ``spans`` (merged, in order; ``starts`` their starts)."""
    i = bisect_right(starts, t - INTERRUPT_MARGIN_S) - 1
    return i >= 0 and t < spans[i][1] - INTERRUPT_MARGIN_S


def _minus(span: Span, others: Sequence[Span]) -> list[Span]:
    """What of ``span`` is left once ``others`` are taken out."""
    left = [span]
    for s, e in others:
        left = [piece for a, b in left for piece in ((a, min(b, s)), (max(a, e), b)) if piece[1] > piece[0]]
    return left


def _longest_monologue(manager: Sequence[Span], client: Sequence[Span]) -> float:
    """The manager's longest run of speech, unbroken by the client or by a long pause."""
    longest = 0.0
    for run in merge(manager, MONOLOGUE_BREAK_S):
        # The client's speech splits a run (a "да-да" too: the manager was answered).
        inside = [(s, e) for s, e in manager if s < run[1] and e > run[0]]
        cuts = [(s, e) for s, e in client if s < run[1] and e > run[0]]
        for a, b in _minus(run, cuts):
            said = [(max(s, a), min(e, b)) for s, e in inside if s < b and e > a]
            if said:
                longest = max(longest, max(e for _s, e in said) - min(s for s, _e in said))
    return longest


def conversation_figures(segments: Iterable[dict[str, Any]], duration_s: float | None = None) -> ConversationFigures | None:
    """The figures of one recording's segments ({start, end, speaker, words}); None unless two-channel."""
    spans: dict[str, list[Span]] = {MANAGER: [], CLIENT: []}
    words: dict[str, int] = {MANAGER: 0, CLIENT: 0}
    end_seen = 0.0
    for seg in segments:
        side = seg.get("speaker")
        if side not in spans:
            continue
        timed = [(float(w["start"]), float(w["end"])) for w in seg.get("words") or () if "start" in w and "end" in w]
        if timed:
            spans[side].extend(timed)
            words[side] += len(timed)
        else:
            spans[side].append((float(seg["start"]), float(seg["end"])))
            words[side] += len(str(seg.get("text", "")).split())
        end_seen = max(end_seen, float(seg["end"]))
    if not spans[MANAGER] and not spans[CLIENT]:
        return None
    manager = merge(spans[MANAGER], JOIN_PAUSE_S)
    client = merge(spans[CLIENT], JOIN_PAUSE_S)
    manager_s, client_s = _total(manager), _total(client)
    duration = max(duration_s or 0.0, end_seen)
    either = _total(merge([*manager, *client]))
    talked = manager_s + client_s
    manager_starts, client_starts = [s for s, _e in manager], [s for s, _e in client]
    manager_cuts = sum(1 for s in manager_starts if _inside(s, client, client_starts))
    client_cuts = sum(1 for s in client_starts if _inside(s, manager, manager_starts))
    return ConversationFigures(
        duration_s=duration,
        manager_talk_s=manager_s,
        client_talk_s=client_s,
        manager_share=manager_s / talked if talked else 0.0,
        client_share=client_s / talked if talked else 0.0,
        longest_monologue_s=_longest_monologue(manager, client),
        interruptions=manager_cuts + client_cuts,
        manager_interruptions=manager_cuts,
        client_interruptions=client_cuts,
        silence_share=max(0.0, 1.0 - either / duration) if duration else 0.0,
        manager_wpm=words[MANAGER] * 60.0 / manager_s if manager_s else None,
        client_wpm=words[CLIENT] * 60.0 / client_s if client_s else None,
    )
