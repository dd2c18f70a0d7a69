"""Find calls by what was said in them (any word form), by client name or number."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Row, Select, and_, func, or_, select, union_all
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.orm import aliased
from sqlalchemy.sql.elements import True_

from pbxbridge.calls.tables import Call, Recording
from pbxbridge.clients.numbers import normalise_number
from pbxbridge.clients.tables import Client, ClientPhone, fold_name
from pbxbridge.transcription.lemmas import WORD_RE, lemma, lemma_candidates, words_of
from pbxbridge.transcription.tables import TranscriptSegment, TranscriptTerm

MARK_OPEN, MARK_CLOSE = "[", "]"
# A query of digits (and + - ( ) spaces) this long is a phone number, not speech.
MIN_NUMBER_DIGITS = 4
_NUMBER_QUERY = re.compile(r"^[\d\s+()\-]+$")
# Of a query of several words, each word's segments are counted up to this at
# least, to choose the rarest to walk (see _common_cap).
MIN_COMMON_SEGMENTS = 2_000
# Segments of the index read per step of a walk at first; each further step reads
# twice as many, up to MAX_WALK_CALLS. One step gives a one-word query its page.
FIRST_WALK_CALLS = 256
MAX_WALK_CALLS = 8_192
# Client cards matched by a name or part of a number, at most.
MAX_CLIENTS = 1_000
# A query is a phrase someone typed: past these it is a pasted text, and each word
# costs a lookup in the index (and one more nested condition in the walk's SQL).
MAX_QUERY_CHARS = 200
MAX_QUERY_WORDS = 20
# No phone number has more digits than this (E.164).
MAX_NUMBER_DIGITS = 15
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class SearchQueryError(ValueError):
    """A query the search will not run."""


class QueryTooLong(SearchQueryError):
    """More than MAX_QUERY_CHARS characters."""


class TooManyWords(SearchQueryError):
    """More than MAX_QUERY_WORDS words."""


def check_query(query: str) -> str:
    """The query as one line (runs of spaces as one: "Петров  Иван" finds "Петров Иван"); raises if too long."""
    line = " ".join(_CONTROL.sub(" ", query).split())
    if len(line) > MAX_QUERY_CHARS:
        raise QueryTooLong(f"a search has at most {MAX_QUERY_CHARS} characters")
    if len(words_of(line)) > MAX_QUERY_WORDS:
        raise TooManyWords(f"a search has at most {MAX_QUERY_WORDS} words")
    return line


# Quotes a phrase may be typed in: straight ones, and the «ёлочки» and „лапки“ of Russian text.
_PHRASE_RE = re.compile(r'["«“„]([^"«»“”„]*)["»”“]')


def phrases_of(query: str) -> list[list[str]]:
    """The query's phrases (text in quotes), each as its words, lower case; quotes with one word or none are no phrase."""
    found = [[w.lower() for w in words_of(m.group(1))] for m in _PHRASE_RE.finditer(query)]
    return [p for p in found if len(p) > 1]


@dataclass(slots=True)
class _Narrowing:
    """What a hit needs beyond every word said in one recording: a side, phrases said word after word."""

    side: str | None
    # Each phrase as its words' dictionary forms, in order.
    phrases: list[list[frozenset[str]]]

    @property
    def active(self) -> bool:
        return self.side is not None or bool(self.phrases)


def _narrowing(query: str, filters: SearchFilters) -> _Narrowing:
    return _Narrowing(filters.side, [[frozenset(_forms(w)) for w in p] for p in phrases_of(query)])


def _holds(lemmas: list[str], phrase: list[frozenset[str]]) -> int | None:
    """Where in the lemmas the phrase's words follow one another, or None."""
    n = len(phrase)
    for i in range(len(lemmas) - n + 1):
        if all(lemmas[i + k] in phrase[k] for k in range(n)):
            return i
    return None


def _narrowed(segments: list[Any], how: _Narrowing) -> tuple[list[Any], dict[int, int]]:
    """The segments that count for a hit (in their order), and per recording the segment a phrase starts in.

    A side keeps that side's segments of a two-channel recording and every segment of a
    one-channel one. Phrases are matched on one speaker's words in order across the
    recording's segments (Whisper cuts segments mid-sentence); a recording not holding
    every phrase keeps none of its segments.
    """
    if not how.active:
        return segments, {}
    stereo = {s.recording_id for s in segments if s.speaker is not None}
    if how.side is not None:
        segments = [s for s in segments if s.recording_id not in stereo or s.speaker == how.side]
    if not how.phrases:
        return segments, {}
    # One speaker's words of a recording, in order, and which segment each word came from.
    spoken: dict[tuple[int, str | None], tuple[list[str], list[int]]] = {}
    for s in segments:
        words, owners = spoken.setdefault((s.recording_id, s.speaker), ([], []))
        forms = (s.lemmas or "").split()
        words += forms
        owners += [s.segment_id] * len(forms)
    found: dict[int, set[int]] = {}
    starts: dict[int, int] = {}
    for (recording_id, _speaker), (words, owners) in spoken.items():
        for index, phrase in enumerate(how.phrases):
            at = _holds(words, phrase)
            if at is not None:
                found.setdefault(recording_id, set()).add(index)
                if index == 0 and recording_id not in starts:
                    starts[recording_id] = owners[at]
    whole = {r for r, said in found.items() if len(said) == len(how.phrases)}
    return [s for s in segments if s.recording_id in whole], {r: starts[r] for r in whole if r in starts}


@dataclass(slots=True)
class SearchFilters:
    """Narrow a search down; None means any."""

    manager: str | None = None
    # A number (any part of it) or a name on the client's card.
    client: str | None = None
    direction: str | None = None
    status: str | None = None
    date_from: datetime | None = None
    date_to: datetime | None = None
    # Whole call, start to end.
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    # Any further SQL condition on calls (e.g. the calls a user may open).
    calls: Any = None
    limit: int = 200
    # The words said by this side ("manager" or "client") only, on two-channel recordings; a
    # one-channel recording's side is unknown, so there the whole call is searched (and the hit says so).
    side: str | None = None


@dataclass(slots=True)
class Hit:
    """One place where a search matched: a call, and where in it to start listening."""

    linkedid: str
    pbx: str
    call_id: int
    started_at: str
    direction: str
    status: str
    manager: str | None
    client_number: str | None
    client_name: str | None
    recording_id: int | None
    recording: str | None
    segment_id: int | None
    speaker: str | None
    offset_s: float
    snippet: str
    matched: str  # transcript | client_number | client_name
    # A side was asked for, but the recording has both sides on one channel: matched the whole call.
    side_unknown: bool = False

    def as_dict(self) -> dict[str, Any]:
        """Plain values, for JSON."""
        return asdict(self)


def _digits(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    # The domestic 8-prefix form of a Russian number is the +7 one.
    if len(digits) == 11 and digits.startswith("8"):
        digits = "7" + digits[1:]
    return digits


def _is_number(query: str) -> bool:
    return bool(_NUMBER_QUERY.match(query.strip())) and len(_digits(query)) >= MIN_NUMBER_DIGITS


def _name_matches(query: str) -> Any:
    """Cards whose name holds the query in any case (Cyrillic too, on SQLite as well)."""
    query = " ".join(query.split())
    return and_(
        # What the partial index of named cards holds (so the database reads it, not the table).
        Client.name_folded.is_not(None),
        or_(
            Client.name_folded.contains(fold_name(query), autoescape=True),
            # A name written around the application is folded by the database's lower(),
            # which leaves Cyrillic as written on SQLite (see migration 0007).
            Client.name_folded.contains(query, autoescape=True),
        ),
    )


def _call_filters(stmt: Select[*tuple[Any, ...]], filters: SearchFilters) -> Select[*tuple[Any, ...]]:
    conds = []
    if filters.manager:
        conds.append(or_(Call.manager == filters.manager, Call.final_manager == filters.manager))
    if filters.client:
        if _is_number(filters.client):
            conds.append(Call.client_number.contains(_digits(filters.client)))
        else:
            conds.append(_name_matches(filters.client))
    if filters.calls is not None:
        conds.append(filters.calls)
    if filters.direction:
        conds.append(Call.direction == filters.direction)
    if filters.status:
        conds.append(Call.status == filters.status)
    if filters.date_from:
        conds.append(Call.started_at >= filters.date_from)
    if filters.date_to:
        conds.append(Call.started_at < filters.date_to)
    duration = Call.wait_s + Call.talk_s
    if filters.min_duration_s is not None:
        conds.append(duration >= filters.min_duration_s)
    if filters.max_duration_s is not None:
        conds.append(duration <= filters.max_duration_s)
    return stmt.where(and_(*conds)) if conds else stmt


def _base(columns: list[Any]) -> Select[*tuple[Any, ...]]:
    return select(
        Call.linkedid, Call.pbx, Call.id.label("call_id"), Call.started_at, Call.direction, Call.status,
        Call.manager, Call.client_number, Client.name.label("client_name"), *columns,
    )


class _Marks:
    """Which words of the hits' text are the query's, each spelling lemmatised once for all hits."""

    def __init__(self, wanted: frozenset[str]) -> None:
        self.wanted = wanted
        self.known: dict[str, bool] = {}
        # Tokens (as written) known to be query words.
        self.said: set[str] = set()

    def matches(self, word: str) -> bool:
        """Whether a word as written (one token or a recogniser's word with punctuation) is a query word."""
        hit = self.known.get(word)
        if hit is None:
            parts = words_of(word)
            hit = self.known[word] = any(lemma(p) in self.wanted for p in parts)
            if hit and len(parts) == 1 and parts[0] == word:
                self.said.add(word)
        return hit

    def marked(self, text_: str) -> str:
        """The text with every query word bracketed."""
        tokens = set(WORD_RE.findall(text_))
        for token in tokens.difference(self.known):
            self.matches(token)
        said = tokens & self.said
        if not said:
            return text_
        # The text's query words as one pattern: the substitution then runs in the
        # regex engine, not a Python call per token of every hit.
        return _token_pattern(frozenset(said)).sub(_MARKED, text_)


# The substitution template: the matched token between the marks.
_MARKED = f"{MARK_OPEN}\\g<0>{MARK_CLOSE}"


@lru_cache(maxsize=256)
def _token_pattern(tokens: frozenset[str]) -> re.Pattern[str]:
    """Whole tokens (as WORD_RE cuts a text) that are one of ``tokens``, longest first."""
    alternatives = "|".join(re.escape(t) for t in sorted(tokens, key=lambda t: (-len(t), t)))
    return re.compile(f"(?<![0-9a-zа-яё])(?:{alternatives})(?![0-9a-zа-яё])", re.IGNORECASE)


def locate(words: list[dict[str, Any]], text_: str, query: str, start_s: float) -> tuple[float, str]:
    """Where the first matching word starts, and the segment's text with matches marked."""
    return _locate(words, text_, _Marks(_wanted(query)), start_s)


def _wanted(query: str) -> frozenset[str]:
    # Any query word's forms will do: a snippet marks each word said.
    return frozenset().union(*(lemma_candidates(w) | {lemma(w)} for w in words_of(query)))


def _locate(
    words: list[dict[str, Any]], text_: str, marks: _Marks, start_s: float, lemmas: str | None = None
) -> tuple[float, str]:
    """Where the first query word starts, and the text with every query word marked.

    ``lemmas``, the segment's stored lemmas, are its text's words in order as
    lemmatised when it was written: they tell which words are the query's
    without running the analyser on every distinct word of every hit (hundreds
    of words a page). Where they do not line up with the text, each spelling
    is lemmatised instead.
    """
    tokens = list(WORD_RE.finditer(text_))
    stored = lemmas.split() if lemmas else []
    if not tokens or len(stored) != len(tokens):
        return _locate_by_spelling(words, text_, marks, start_s)
    said = [i for i, form in enumerate(stored) if form in marks.wanted]
    if not said:
        return start_s, text_
    parts: list[str] = []
    last = 0
    for i in said:
        token = tokens[i]
        parts += (text_[last:token.start()], MARK_OPEN, token.group(0), MARK_CLOSE)
        last = token.end()
    parts.append(text_[last:])
    # The recogniser's word holding the first query word: as many words of the text before it.
    seen = 0
    for w in words:
        spelling = str(w.get("word", ""))
        seen += len(WORD_RE.findall(spelling))
        if seen > said[0]:
            if marks.matches(spelling):
                return float(w["start"]), "".join(parts)
            break
    # The words do not follow the text: the first word that is a query word.
    return _first_word_start(words, marks, start_s), "".join(parts)


def _locate_by_spelling(words: list[dict[str, Any]], text_: str, marks: _Marks, start_s: float) -> tuple[float, str]:
    return _first_word_start(words, marks, start_s), marks.marked(text_)


def _first_word_start(words: list[dict[str, Any]], marks: _Marks, start_s: float) -> float:
    for w in words:
        if marks.matches(str(w.get("word", ""))):
            return float(w["start"])
    return start_s


def _hit(row: Any, **extra: Any) -> Hit:
    return Hit(
        linkedid=row.linkedid, pbx=row.pbx, call_id=row.call_id, started_at=row.started_at.isoformat(),
        direction=row.direction, status=row.status, manager=row.manager, client_number=row.client_number,
        client_name=row.client_name, **extra,
    )


def _forms(word: str) -> list[str]:
    """The dictionary forms a query word may have: what transcript_terms is looked up by."""
    return sorted(lemma_candidates(word))


def _said(lemmas: str | None, forms: list[frozenset[str]]) -> list[bool]:
    """For each query word, whether a segment's stored lemmas hold it (as transcript_terms would)."""
    said = set((lemmas or "").split())
    return [not said.isdisjoint(f) for f in forms]


async def _common_cap(session: AsyncSession, limit: int) -> int:
    """How far each query word's calls are counted when choosing which word drives the walk.

    A word in more segments than this counts as common; among common words any
    may drive, the other words then thin its calls out inside the database.
    """
    return max(MIN_COMMON_SEGMENTS, limit * 20)


async def _count_upto(session: AsyncSession, forms: list[str], most: int) -> int:
    """Segments holding a word in any of its forms, counted no further than ``most`` (a range of the index)."""
    total = 0
    for form in forms:
        stmt = select(TranscriptTerm.call_id).where(TranscriptTerm.term == form).limit(most - total)
        total += int(await session.scalar(select(func.count()).select_from(stmt.subquery())) or 0)
        if total >= most:
            break
    return total


async def _rows(session: AsyncSession, stmt: Any) -> Sequence[Row[Any]]:
    """A column query's rows, run on the session's connection: no ORM loading to pay per row."""
    return (await (await session.connection()).execute(stmt)).all()


_CALL_FILTERS = ("manager", "client", "direction", "status", "min_duration_s", "max_duration_s", "calls")


def _term_filters(stmt: Select[*tuple[Any, ...]], filters: SearchFilters) -> Select[*tuple[Any, ...]]:
    """The search filters on a walk of transcript_terms: dates as a range of its key, the rest through calls."""
    if filters.date_from:
        stmt = stmt.where(TranscriptTerm.started_at >= filters.date_from)
    if filters.date_to:
        stmt = stmt.where(TranscriptTerm.started_at < filters.date_to)
    on_calls = replace(filters, date_from=None, date_to=None)
    if isinstance(on_calls.calls, True_):
        on_calls.calls = None  # everyone's calls (the head of sales): no condition at all
    if all(getattr(on_calls, f) is None for f in _CALL_FILTERS):
        return stmt
    # The call of each entry walked, looked up by its key. A join instead lets
    # PostgreSQL hash all the calls matching the filters when it misjudges how
    # few index entries the page needs; a scalar subquery is always a lookup.
    call = select(Call.id).where(Call.id == TranscriptTerm.call_id)
    if filters.client and not _is_number(filters.client):
        call = call.outerjoin(Client, Client.id == Call.client_id)
    return stmt.where(_call_filters(call, on_calls).limit(1).scalar_subquery().is_not(None))


def _postings(
    driver: list[str], others: list[list[str]], filters: SearchFilters, after: tuple[datetime, int] | None, n: int
) -> Select[*tuple[Any, ...]]:
    """The next ``n`` index entries (call, start, segment) of the driving word, newest call first.

    Only calls whose index entries hold the other words too are walked.

    One ordered range of the index per form of the word, merged: an IN over the
    forms would make the database read every match to sort them.
    """
    branches = []
    for form in driver:
        stmt: Select[*tuple[Any, ...]] = select(
            TranscriptTerm.call_id, TranscriptTerm.started_at, TranscriptTerm.segment_id
        ).where(TranscriptTerm.term == form)
        if after is not None:
            edge, call_id = after
            stmt = stmt.where(
                TranscriptTerm.started_at <= edge,
                or_(TranscriptTerm.started_at < edge, TranscriptTerm.call_id < call_id),
            )
        for forms in others:
            # The same call in the index under another word: a lookup of its key per
            # entry walked. Written as a scalar subquery, not EXISTS, which PostgreSQL
            # turns into a join reading the other word's whole range.
            other = aliased(TranscriptTerm)
            stmt = stmt.where(
                select(other.segment_id).where(
                    other.term.in_(forms), other.started_at == TranscriptTerm.started_at,
                    other.call_id == TranscriptTerm.call_id,
                ).limit(1).scalar_subquery().is_not(None)
            )
        branches.append(
            _term_filters(stmt, filters).order_by(TranscriptTerm.started_at.desc(), TranscriptTerm.call_id.desc())
            .limit(n)
        )
    if len(branches) == 1:
        return branches[0]
    merged = union_all(*(select(*b.subquery().c) for b in branches)).subquery()
    return select(merged.c.call_id, merged.c.started_at, merged.c.segment_id).order_by(
        merged.c.started_at.desc(), merged.c.call_id.desc()
    ).limit(n)


async def _walked_ids(
    session: AsyncSession, words: list[str], driver: int, filters: SearchFilters, how: _Narrowing
) -> list[int]:
    """Hits newest call first: the driving word's calls a growing batch at a time, until enough."""
    forms = [_forms(w) for w in words]
    if len(words) == 1 and not how.active:
        return await _one_word_ids(session, forms[0], filters)
    wanted = [frozenset(f) for f in forms]
    others = [f for i, f in enumerate(forms) if i != driver]
    picked: list[int] = []
    after: tuple[datetime, int] | None = None
    # An entry walked is a call holding every word, a hit or more but for the rare call whose
    # words are in different recordings: a page of hits seldom needs more entries than its size.
    batch = min(FIRST_WALK_CALLS, filters.limit)
    while len(picked) < filters.limit:
        rows = await _rows(session, _postings(forms[driver], others, filters, after, batch))
        if not rows:
            break
        # All the calls' segments, for hits where the words are said apart and for their order.
        segments, _starts = _narrowed(
            await _segments_in_order(session, list(dict.fromkeys(r.call_id for r in rows))), how
        )
        said = [_said(s.lemmas, wanted) for s in segments]
        picked += _pick(segments, said, len(words), filters.limit - len(picked))
        if len(rows) < batch:
            break
        after = (rows[-1].started_at, rows[-1].call_id)
        batch = min(batch * 2, MAX_WALK_CALLS)
    return picked


async def _one_word_ids(session: AsyncSession, forms: list[str], filters: SearchFilters) -> list[int]:
    """Hits of a one-word query: the first ``limit`` entries of the index are the page.

    Every segment holding the word is a hit, so nothing is read beyond them but
    the rest of the last call's (a call's hits are ordered by recording and time,
    which the index does not know): more hits than the page, cut once ordered.
    """
    rows = await _rows(session, _postings(forms, [], filters, None, filters.limit))
    picked = [r.segment_id for r in rows]
    if len(rows) == filters.limit:
        last = rows[-1]
        picked += (await session.scalars(select(TranscriptTerm.segment_id).where(
            TranscriptTerm.term.in_(forms), TranscriptTerm.started_at == last.started_at,
            TranscriptTerm.call_id == last.call_id,
        ))).all()
    return list(dict.fromkeys(picked))


def _segments_of_calls(extra: list[Any]) -> Select[*tuple[Any, ...]]:
    return _base([
        Recording.id.label("recording_id"), Recording.path.label("recording"),
        TranscriptSegment.id.label("segment_id"), TranscriptSegment.speaker, TranscriptSegment.start_s,
        TranscriptSegment.text, TranscriptSegment.words, *extra,
    ]).select_from(TranscriptSegment).join(Call, Call.id == TranscriptSegment.call_id).join(
        Recording, Recording.id == TranscriptSegment.recording_id
    ).outerjoin(Client, Client.id == Call.client_id)


async def _segments_in_order(session: AsyncSession, calls: list[int]) -> list[Any]:
    """All segments of these calls (given in search order) with their lemmas, in search order.

    The calls' order is known already, so calls are not joined to sort by their
    start: the rows are put in order here, by call, then recording and time.
    """
    stmt = select(
        TranscriptSegment.id.label("segment_id"), TranscriptSegment.recording_id, TranscriptSegment.call_id,
        TranscriptSegment.lemmas, TranscriptSegment.start_s, TranscriptSegment.speaker, Recording.position,
    ).join(Recording, Recording.id == TranscriptSegment.recording_id).where(TranscriptSegment.call_id.in_(calls))
    rank = {call_id: i for i, call_id in enumerate(calls)}
    rows = await _rows(session, stmt)
    return sorted(rows, key=lambda r: (rank[r.call_id], r.position, r.start_s))


# Newest first; calls that started in the same second by id, so that a walk's batches agree with one query.
_ORDER = (Call.started_at.desc(), Call.id.desc(), Recording.position, TranscriptSegment.start_s)


def _pick(rows: list[Any], said: list[list[bool]], n_words: int, most: int) -> list[int]:
    """Segment ids among rows (in search order) whose recording holds every query word, at most ``most``."""
    # Every word must be said somewhere in the recording, not necessarily in
    # one segment: Whisper cuts segments mid-sentence.
    by_recording: dict[int, set[int]] = {}
    for row, flags in zip(rows, said):
        by_recording.setdefault(row.recording_id, set()).update(i for i, f in enumerate(flags) if f)
    picked: list[int] = []
    for row, flags in zip(rows, said):
        if len(picked) >= most:
            break
        if any(flags) and len(by_recording[row.recording_id]) == n_words:
            picked.append(row.segment_id)
    return picked


async def _hits_of(
    session: AsyncSession, segment_ids: list[int], wanted: frozenset[str], side: str | None = None
) -> list[Hit]:
    """Full hits of the picked segments, in search order."""
    if not segment_ids:
        return []
    stmt = _segments_of_calls([TranscriptSegment.lemmas]).where(TranscriptSegment.id.in_(segment_ids)).order_by(*_ORDER)
    hits = []
    marks = _Marks(wanted)
    for row in await _rows(session, stmt):
        offset, snippet = _locate(row.words or [], row.text, marks, row.start_s, row.lemmas)
        hits.append(_hit(
            row, recording_id=row.recording_id, recording=row.recording, segment_id=row.segment_id,
            speaker=row.speaker, offset_s=round(offset, 2), snippet=snippet, matched="transcript",
            side_unknown=side is not None and row.speaker is None,
        ))
    return hits


async def _driver(session: AsyncSession, words: list[str], limit: int) -> int | None:
    """Which query word to walk the index by (the rarest); None if one of them was never said."""
    if len(words) == 1:
        return 0
    # Each word is counted only as far as the rarest one so far: a common word
    # after a rare one costs a short range of the index, not the cap.
    most = await _common_cap(session, limit) + 1
    counts: list[int] = []
    for word in words:
        counts.append(await _count_upto(session, _forms(word), most))
        if not counts[-1]:
            return None
        most = min(most, counts[-1] + 1)
    return min(range(len(words)), key=counts.__getitem__)


def _query_words(query: str) -> list[str]:
    return list(dict.fromkeys(w.lower() for w in words_of(query)))


async def _transcript_hits(session: AsyncSession, query: str, filters: SearchFilters) -> list[Hit]:
    words = _query_words(query)
    driver = await _driver(session, words, filters.limit) if words else None
    if driver is None:
        return []
    picked = await _walked_ids(session, words, driver, filters, _narrowing(query, filters))
    return (await _hits_of(session, picked, _wanted(query), filters.side))[: filters.limit]


async def _transcript_calls(
    session: AsyncSession, words: list[str], driver: int, filters: SearchFilters, most: int, how: _Narrowing
) -> list[int]:
    """Calls (ids, newest first) where every query word is said in one recording, at most ``most``."""
    forms = [_forms(w) for w in words]
    wanted = [frozenset(f) for f in forms]
    others = [f for i, f in enumerate(forms) if i != driver]
    calls: dict[int, None] = {}
    after: tuple[datetime, int] | None = None
    batch = max(FIRST_WALK_CALLS, most)
    while len(calls) < most:
        rows = await _rows(session, _postings(forms[driver], others, filters, after, batch))
        if not rows:
            break
        found = list(dict.fromkeys(r.call_id for r in rows))
        if len(words) > 1 or how.active:
            # The index knows calls; the words must be said in one recording of the call
            # (by the side asked for, as the phrases asked for).
            segments, _starts = _narrowed(await _segments_in_order(session, found), how)
            picked = set(_pick(segments, [_said(s.lemmas, wanted) for s in segments], len(words), len(segments)))
            found = list(dict.fromkeys(s.call_id for s in segments if s.segment_id in picked))
        calls.update(dict.fromkeys(found))
        if len(rows) < batch:
            break
        after = (rows[-1].started_at, rows[-1].call_id)
        batch = min(batch * 2, MAX_WALK_CALLS)
    return list(calls)[:most]


async def _first_hits(
    session: AsyncSession, query: str, words: list[str], call_ids: list[int], how: _Narrowing, side: str | None
) -> list[Hit]:
    """The first hit (in search order) of each of these calls, which the query's words are known to be in."""
    if not call_ids:
        return []
    wanted = [frozenset(_forms(w)) for w in words]
    segments, starts = _narrowed(await _segments_in_order(session, call_ids), how)
    picked = set(_pick(segments, [_said(s.lemmas, wanted) for s in segments], len(words), len(segments)))
    first: dict[int, int] = {}
    for s in segments:
        if s.segment_id in picked:
            # A phrase's hit is where the phrase is said, not where one of its words first is.
            first.setdefault(s.call_id, starts.get(s.recording_id, s.segment_id))
    return await _hits_of(session, list(dict.fromkeys(first.values())), _wanted(query), side)


@dataclass(slots=True)
class CallPage:
    """A page of the calls a search finds, each with its first hit, and how many calls it finds."""

    hits: list[Hit]
    total: int
    # False when counting stopped at the cap: more than ``total`` calls match.
    exact: bool


async def search_calls(
    session_factory: async_sessionmaker[AsyncSession], query: str, filters: SearchFilters | None = None,
    *, offset: int = 0, count: int = 50, most: int = 1_000,
) -> CallPage:
    """Calls matching as search() finds them, one hit each: ``count`` from ``offset``, counted up to ``most``.

    Only the page's calls are read for their hits; the rest are counted from the
    word index alone. Counting every call a common word is in would read the
    whole of its index range, so the count stops at ``most`` and says so.
    """
    filters = filters or SearchFilters()
    query = check_query(query)
    if not query:
        return CallPage([], 0, True)
    how = _narrowing(query, filters)
    async with session_factory() as session:
        if not _is_number(query):
            words = _query_words(query)
            driver = await _driver(session, words, most) if words else None
            if driver is not None:
                ids = await _transcript_calls(session, words, driver, filters, most + 1, how)
                if ids:
                    hits = await _first_hits(
                        session, query, words, ids[offset: min(offset + count, most)], how, filters.side
                    )
                    return CallPage(hits, min(len(ids), most), len(ids) <= most)
        if how.active:
            return CallPage([], 0, True)  # a side or a phrase is of what was said: no client's name is
        hits = await _client_hits(session, query, replace(filters, limit=most + 1))
    return CallPage(hits[offset: min(offset + count, most)], min(len(hits), most), len(hits) <= most)


def _prefix(col: Any, prefix: str) -> Any:
    """Numbers starting with prefix, as a range the column's B-tree index answers."""
    digits = prefix.lstrip("+")
    conds = [col >= prefix, col.like(prefix + "%")]
    upper = str(int(digits) + 1).zfill(len(digits))
    if len(upper) == len(digits):
        conds.append(col < prefix[: len(prefix) - len(digits)] + upper)
    return and_(*conds)


async def _number_condition(session: AsyncSession, query: str) -> Any:
    """Calls with a number: the exact one when the query is a whole number, else ones starting with it."""
    e164 = normalise_number(query)
    if e164:
        owners = (await session.scalars(select(ClientPhone.client_id).where(ClientPhone.number == e164))).all()
        return or_(Call.client_number == e164, Call.client_id.in_(owners)) if owners else Call.client_number == e164
    digits = _digits(query)
    if len(digits) > MAX_NUMBER_DIGITS:
        return None  # no number holds it (and int() of thousands of digits is refused)
    prefixes = {"+" + digits}
    if digits.startswith("8"):
        prefixes.add("+7" + digits[1:])
    owners = (await session.scalars(
        select(ClientPhone.client_id).where(or_(*(_prefix(ClientPhone.number, p) for p in prefixes))).limit(MAX_CLIENTS)
    )).all()
    if not owners:
        # The tail of a number (its last digits): read client_phones, far smaller than calls.
        owners = (await session.scalars(
            select(ClientPhone.client_id).where(ClientPhone.number.contains(digits)).limit(MAX_CLIENTS)
        )).all()
    return Call.client_id.in_(owners) if owners else None


async def _client_hits(session: AsyncSession, query: str, filters: SearchFilters) -> list[Hit]:
    def first_recording(col: Any) -> Any:
        # SQLite has no LATERAL: one correlated subquery per column.
        return (
            select(col)
            .where(Recording.call_id == Call.id, Recording.status == "ok", Recording.kind == "call")
            .order_by(Recording.position)
            .limit(1)
            .correlate(Call)
            .scalar_subquery()
        )

    if _is_number(query):
        cond = await _number_condition(session, query)
        matched = "client_number"
    else:
        # Cards first (a far smaller table than calls), then their calls by the client_id index.
        names = select(Client.id).where(_name_matches(query)).limit(MAX_CLIENTS)
        owners = (await session.scalars(names)).all()
        cond = Call.client_id.in_(owners) if owners else None
        matched = "client_name"
    if cond is None:
        return []
    stmt = _base([first_recording(Recording.id).label("recording_id"), first_recording(Recording.path).label("recording")])
    stmt = stmt.select_from(Call).outerjoin(Client, Client.id == Call.client_id).where(cond)
    stmt = _call_filters(stmt, filters).order_by(Call.started_at.desc(), Call.id.desc()).limit(filters.limit)
    hits = []
    for row in await _rows(session, stmt):
        label = row.client_number if matched == "client_number" else row.client_name
        hits.append(_hit(
            row, recording_id=row.recording_id, recording=row.recording, segment_id=None, speaker=None,
            offset_s=0.0, snippet=f"{MARK_OPEN}{label}{MARK_CLOSE}", matched=matched,
        ))
    return hits


async def search(
    session_factory: async_sessionmaker[AsyncSession], query: str, filters: SearchFilters | None = None
) -> list[Hit]:
    """Calls whose transcript holds the query's words (any form), else whose client's name/number matches."""
    filters = filters or SearchFilters()
    query = check_query(query)
    if not query:
        return []
    async with session_factory() as session:
        if _is_number(query):
            return await _client_hits(session, query, filters)
        # A name is looked for only when nobody said the words: scanning cards'
        # names costs more than the full-text index does.
        hits = await _transcript_hits(session, query, filters)
        if not hits and not _narrowing(query, filters).active:
            hits = await _client_hits(session, query, filters)
    return hits[: filters.limit]
