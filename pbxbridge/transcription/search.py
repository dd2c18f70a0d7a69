"""Find calls by what was said in them (any word form), by client name or number."""

from __future__ import annotations

import json
import math
import re
import unicodedata
from dataclasses import asdict, dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import (
    Integer,
    Select,
    and_,
    column,
    func,
    literal_column,
    or_,
    select,
    text,
)
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.tables import Call, Recording
from pbxbridge.clients.numbers import normalise_number
from pbxbridge.clients.tables import Client, ClientPhone
from pbxbridge.transcription.lemmas import WORD_RE, lemma, lemma_candidates, words_of
from pbxbridge.transcription.tables import SQLITE_FTS_TABLE, TranscriptSegment

MARK_OPEN, MARK_CLOSE = "[", "]"
# A query of digits (and + - ( ) spaces) this long is a phone number, not speech.
MIN_NUMBER_DIGITS = 4
_NUMBER_QUERY = re.compile(r"^[\d\s+()\-]+$")
# A word in more segments than this is walked newest call first rather than read
# whole from the full-text index (see _common_cap).
MIN_COMMON_SEGMENTS = 2_000
# Calls read per step of that walk at first; each further step reads twice as many.
FIRST_WALK_CALLS = 256
# Client cards matched by a name or part of a number, at most.
MAX_CLIENTS = 1_000
MAX_WALK_CALLS = 8_192


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
    limit: int = 200


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


def _call_filters(stmt: Select[Any], filters: SearchFilters) -> Select[Any]:
    conds = []
    if filters.manager:
        conds.append(or_(Call.manager == filters.manager, Call.final_manager == filters.manager))
    if filters.client:
        if _is_number(filters.client):
            conds.append(Call.client_number.contains(_digits(filters.client)))
        else:
            conds.append(Client.name.ilike(f"%{filters.client}%"))
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


def _fts_query(word: str) -> str:
    # The word in any of its dictionary forms.
    forms = sorted(lemma_candidates(word))
    return "(" + " OR ".join('"' + f.replace('"', "") + '"' for f in forms) + ")"


def _word_condition(session: AsyncSession, word: str, index: int) -> Any:
    """Whether a segment holds one query word, in any form, through the full-text index."""
    if session.bind.dialect.name == "postgresql":
        # The same expression as the GIN index, so PostgreSQL uses it.
        vector = func.to_tsvector(literal_column("'russian'::regconfig"), TranscriptSegment.text)
        return vector.op("@@")(func.plainto_tsquery(literal_column("'russian'::regconfig"), word))
    matches = text(
        f"SELECT rowid FROM {SQLITE_FTS_TABLE} WHERE {SQLITE_FTS_TABLE} MATCH :fts_{index}"
    ).bindparams(**{f"fts_{index}": _fts_query(word)}).columns(column("rowid", Integer))
    return TranscriptSegment.id.in_(matches)


def _base(columns: list[Any]) -> Select[Any]:
    return select(
        Call.linkedid, Call.pbx, Call.id.label("call_id"), Call.started_at, Call.direction, Call.status,
        Call.manager, Call.client_number, Client.name.label("client_name"), *columns,
    )


def _word_matches(word: str, wanted: frozenset[str]) -> bool:
    return lemma(word) in wanted


def locate(words: list[dict[str, Any]], text_: str, query: str, start_s: float) -> tuple[float, str]:
    """Where the first matching word starts, and the segment's text with matches marked."""
    return _locate(words, text_, _wanted(query), start_s)


def _wanted(query: str) -> frozenset[str]:
    # Any query word's forms will do: a snippet marks each word said.
    return frozenset().union(*(lemma_candidates(w) | {lemma(w)} for w in words_of(query)))


def _locate(words: list[dict[str, Any]], text_: str, wanted: frozenset[str], start_s: float) -> tuple[float, str]:
    offset = start_s
    for w in words:
        if any(_word_matches(part, wanted) for part in words_of(str(w.get("word", "")))):
            offset = float(w["start"])
            break
    snippet = WORD_RE.sub(
        lambda m: f"{MARK_OPEN}{m.group(0)}{MARK_CLOSE}" if _word_matches(m.group(0), wanted) else m.group(0),
        text_,
    )
    return offset, snippet


def _hit(row: Any, **extra: Any) -> Hit:
    return Hit(
        linkedid=row.linkedid, pbx=row.pbx, call_id=row.call_id, started_at=row.started_at.isoformat(),
        direction=row.direction, status=row.status, manager=row.manager, client_number=row.client_number,
        client_name=row.client_name, **extra,
    )


@lru_cache(maxsize=65536)
def _fts_fold(word: str) -> str:
    # As FTS5's unicode61 tokenizer (remove_diacritics 2) sees a word: lower case, «й» as «и».
    return "".join(c for c in unicodedata.normalize("NFD", word.lower()) if not unicodedata.combining(c))


_FTS_TOKEN = re.compile(r"[^\W_]+")


class _Matcher:
    """Which query words a segment holds: PostgreSQL's own full-text match, or SQLite's stored lemmas."""

    def __init__(self, session: AsyncSession, words: list[str]) -> None:
        self.postgresql = session.bind.dialect.name == "postgresql"
        self.conditions = [_word_condition(session, w, i) for i, w in enumerate(words)]
        self.forms = [frozenset(_fts_fold(f) for f in lemma_candidates(w)) for w in words]

    def columns(self) -> list[Any]:
        """What said() reads: per-word flags from PostgreSQL, the stored lemmas from SQLite."""
        if self.postgresql:
            return [c.label(f"has_{i}") for i, c in enumerate(self.conditions)]
        return [TranscriptSegment.lemmas]

    def said(self, row: Any) -> list[bool]:
        """For each query word, whether this segment holds it."""
        if self.postgresql:
            return [bool(getattr(row, f"has_{i}")) for i in range(len(self.conditions))]
        # The same tokens FTS5 indexed, so a segment read back matches as the index would.
        tokens = {_fts_fold(t) for t in _FTS_TOKEN.findall(row.lemmas or "")}
        return [bool(tokens & forms) for forms in self.forms]


async def _count_upto(session: AsyncSession, word: str, most: int) -> int:
    """How many segments hold the word, counting no further than ``most`` (PostgreSQL: its planner's estimate)."""
    if session.bind.dialect.name == "postgresql":
        # Counting a common word's matches would read its whole GIN posting list;
        # the planner's estimate from the index's statistics costs nothing and is
        # all the choice between reading the index and walking calls needs.
        matches = select(TranscriptSegment.id).where(_word_condition(session, word, 0))
        # EXPLAIN takes no parameters; the word is letters and digits only (words_of), quoted by the dialect.
        sql = matches.compile(dialect=session.bind.dialect, compile_kwargs={"literal_binds": True})
        plan = await session.scalar(text(f"EXPLAIN (FORMAT JSON) {sql}"))
        plan = json.loads(plan) if isinstance(plan, str) else plan
        return min(most, int(plan[0]["Plan"]["Plan Rows"]))
    sql = text(
        f"SELECT count(*) FROM (SELECT rowid FROM {SQLITE_FTS_TABLE} WHERE {SQLITE_FTS_TABLE} MATCH :q LIMIT :n)"
    )
    return int(await session.scalar(sql, {"q": _fts_query(word), "n": most}) or 0)


async def _common_cap(session: AsyncSession, limit: int) -> int:
    """Matches above which a word is walked newest call first instead of read whole from the index.

    Reading a word's matches costs their number; walking costs the calls passed
    before ``limit`` hits, the total over the word's share. The two cost alike
    near the square root of limit × segments.
    """
    total = int(await session.scalar(select(func.max(TranscriptSegment.id))) or 0)
    return max(MIN_COMMON_SEGMENTS, limit * 20, int(math.sqrt(4 * limit * total)))


def _segments_of_calls(extra: list[Any]) -> Select[Any]:
    return _base([
        Recording.id.label("recording_id"), Recording.path.label("recording"),
        TranscriptSegment.id.label("segment_id"), TranscriptSegment.speaker, TranscriptSegment.start_s,
        TranscriptSegment.text, TranscriptSegment.words, *extra,
    ]).select_from(TranscriptSegment).join(Call, Call.id == TranscriptSegment.call_id).join(
        Recording, Recording.id == TranscriptSegment.recording_id
    ).outerjoin(Client, Client.id == Call.client_id)


def _candidates(extra: list[Any], filters: SearchFilters) -> Select[Any]:
    """Segments in search order with only what picking hits needs: sorting narrow rows is cheap."""
    stmt = select(
        TranscriptSegment.id.label("segment_id"), TranscriptSegment.recording_id, *extra
    ).select_from(TranscriptSegment).join(Call, Call.id == TranscriptSegment.call_id).join(
        Recording, Recording.id == TranscriptSegment.recording_id
    )
    if filters.client and not _is_number(filters.client):
        stmt = stmt.outerjoin(Client, Client.id == Call.client_id)
    return _call_filters(stmt, filters).order_by(*_ORDER)


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


async def _hits_of(session: AsyncSession, segment_ids: list[int], wanted: frozenset[str]) -> list[Hit]:
    """Full hits of the picked segments, in search order."""
    if not segment_ids:
        return []
    stmt = _segments_of_calls([]).where(TranscriptSegment.id.in_(segment_ids)).order_by(*_ORDER)
    hits = []
    for row in (await session.execute(stmt)).all():
        # Only the hits returned are lemmatised for their snippets.
        offset, snippet = _locate(row.words or [], row.text, wanted, row.start_s)
        hits.append(_hit(
            row, recording_id=row.recording_id, recording=row.recording, segment_id=row.segment_id,
            speaker=row.speaker, offset_s=round(offset, 2), snippet=snippet, matched="transcript",
        ))
    return hits


def _matching(session: AsyncSession, cond: Any) -> Any:
    """Segments matching a full-text condition (id, call, recording, start), read from the index as a whole."""
    rows = select(
        TranscriptSegment.id, TranscriptSegment.call_id, TranscriptSegment.recording_id, TranscriptSegment.start_s
    ).where(cond)
    if session.bind.dialect.name == "postgresql":
        # Left inline, PostgreSQL may walk calls newest first computing to_tsvector
        # row by row; materialised, the GIN index answers once.
        return rows.cte("matching_segments").prefix_with("MATERIALIZED")
    return rows.subquery("matching_segments")


async def _indexed_ids(
    session: AsyncSession, matcher: _Matcher, driver: int, filters: SearchFilters
) -> list[int]:
    """Hits of a word few segments hold, read through the full-text index."""
    matches = _matching(session, matcher.conditions[driver])
    if len(matcher.conditions) == 1:
        # Every segment the index gives is a hit: the database sorts and cuts.
        stmt = select(matches.c.id).select_from(matches).join(Call, Call.id == matches.c.call_id).join(
            Recording, Recording.id == matches.c.recording_id
        )
        if filters.client and not _is_number(filters.client):
            stmt = stmt.outerjoin(Client, Client.id == Call.client_id)
        stmt = _call_filters(stmt, filters).order_by(
            Call.started_at.desc(), Call.id.desc(), Recording.position, matches.c.start_s
        )
        return list((await session.scalars(stmt.limit(filters.limit))).all())
    # Several words: the recordings holding the rarest one, then all their segments.
    recordings = select(matches.c.recording_id)
    stmt = _candidates(matcher.columns(), filters).where(TranscriptSegment.recording_id.in_(recordings))
    rows = (await session.execute(stmt)).all()
    return _pick(rows, [matcher.said(r) for r in rows], len(matcher.conditions), filters.limit)


async def _walked_ids(session: AsyncSession, matcher: _Matcher, filters: SearchFilters) -> list[int]:
    """Hits of words many segments hold: newest calls first, a growing batch at a time, until enough."""
    window = select(Call.id, Call.started_at).select_from(Call)
    if filters.client and not _is_number(filters.client):
        window = window.outerjoin(Client, Client.id == Call.client_id)
    window = _call_filters(window, filters).order_by(Call.started_at.desc(), Call.id.desc())
    picked: list[int] = []
    edge: datetime | None = None
    at_edge: list[int] = []  # calls already read that started exactly at the edge
    # A common word is in most calls: about as many calls as hits wanted usually do.
    batch = max(FIRST_WALK_CALLS, 2 * filters.limit)
    while len(picked) < filters.limit:
        step = window if edge is None else window.where(Call.started_at <= edge, Call.id.not_in(at_edge))
        calls = (await session.execute(step.limit(batch))).all()
        if not calls:
            break
        # The window already holds only calls the filters let through.
        stmt = _candidates(matcher.columns(), SearchFilters()).where(
            TranscriptSegment.call_id.in_([c.id for c in calls])
        )
        rows = (await session.execute(stmt)).all()
        picked += _pick(rows, [matcher.said(r) for r in rows], len(matcher.conditions), filters.limit - len(picked))
        if len(calls) < batch:
            break
        last = calls[-1].started_at
        at_edge = (at_edge if last == edge else []) + [c.id for c in calls if c.started_at == last]
        edge = last
        batch = min(batch * 2, MAX_WALK_CALLS)
    return picked


async def _transcript_hits(session: AsyncSession, query: str, filters: SearchFilters) -> list[Hit]:
    words = list(dict.fromkeys(w.lower() for w in words_of(query)))
    if not words:
        return []
    matcher = _Matcher(session, words)
    cap = await _common_cap(session, filters.limit)
    counts = [await _count_upto(session, w, cap + 1) for w in words]
    if not all(counts):
        return []
    driver = min(range(len(words)), key=counts.__getitem__)
    if counts[driver] <= cap:
        picked = await _indexed_ids(session, matcher, driver, filters)
    else:
        picked = await _walked_ids(session, matcher, filters)
    return await _hits_of(session, picked, _wanted(query))


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
            .where(Recording.call_id == Call.id, Recording.status == "ok")
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
        names = select(Client.id).where(Client.name.ilike(f"%{query.strip()}%")).limit(MAX_CLIENTS)
        owners = (await session.scalars(names)).all()
        cond = Call.client_id.in_(owners) if owners else None
        matched = "client_name"
    if cond is None:
        return []
    stmt = _base([first_recording(Recording.id).label("recording_id"), first_recording(Recording.path).label("recording")])
    stmt = stmt.select_from(Call).outerjoin(Client, Client.id == Call.client_id).where(cond)
    stmt = _call_filters(stmt, filters).order_by(Call.started_at.desc(), Call.id.desc()).limit(filters.limit)
    hits = []
    for row in (await session.execute(stmt)).all():
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
    query = query.strip()
    if not query:
        return []
    async with session_factory() as session:
        if _is_number(query):
            return await _client_hits(session, query, filters)
        # A name is looked for only when nobody said the words: scanning cards'
        # names costs more than the full-text index does.
        hits = await _transcript_hits(session, query, filters)
        if not hits:
            hits = await _client_hits(session, query, filters)
    return hits[: filters.limit]
