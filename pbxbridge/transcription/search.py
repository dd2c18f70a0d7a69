"""Find calls by what was said in them (any word form), by client name or number."""

from __future__ import annotations

import re
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Integer, Select, and_, column, func, literal_column, or_, select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.tables import Call, Recording
from pbxbridge.clients.tables import Client
from pbxbridge.transcription.lemmas import WORD_RE, lemma, lemma_candidates, words_of
from pbxbridge.transcription.tables import SQLITE_FTS_TABLE, TranscriptSegment

MARK_OPEN, MARK_CLOSE = "[", "]"
# A query of digits (and + - ( ) spaces) this long is a phone number, not speech.
MIN_NUMBER_DIGITS = 4
_NUMBER_QUERY = re.compile(r"^[\d\s+()\-]+$")


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


def _word_matches(word: str, wanted: list[frozenset[str]]) -> bool:
    form = lemma(word)
    return any(form in forms for forms in wanted)


def locate(words: list[dict[str, Any]], text_: str, query: str, start_s: float) -> tuple[float, str]:
    """Where the first matching word starts, and the segment's text with matches marked."""
    wanted = [lemma_candidates(w) | {lemma(w)} for w in words_of(query)]
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


async def _transcript_hits(session: AsyncSession, query: str, filters: SearchFilters) -> list[Hit]:
    words = list(dict.fromkeys(w.lower() for w in words_of(query)))
    if not words:
        return []
    flags = [_word_condition(session, w, i) for i, w in enumerate(words)]
    stmt = _base([
        Recording.id.label("recording_id"), Recording.path.label("recording"),
        TranscriptSegment.id.label("segment_id"), TranscriptSegment.speaker, TranscriptSegment.start_s,
        TranscriptSegment.text, TranscriptSegment.words,
        *(flag.label(f"has_{i}") for i, flag in enumerate(flags)),
    ]).select_from(TranscriptSegment).join(Call, Call.id == TranscriptSegment.call_id).join(
        Recording, Recording.id == TranscriptSegment.recording_id
    ).outerjoin(Client, Client.id == Call.client_id)
    stmt = _call_filters(stmt.where(or_(*flags)), filters).order_by(
        Call.started_at.desc(), Recording.position, TranscriptSegment.start_s
    )
    rows = (await session.execute(stmt.limit(filters.limit * 20))).all()
    # Every word must be said somewhere in the recording, not necessarily in
    # one segment: Whisper cuts segments mid-sentence.
    said: dict[int, set[int]] = {}
    for row in rows:
        said.setdefault(row.recording_id, set()).update(i for i in range(len(words)) if getattr(row, f"has_{i}"))
    hits = []
    for row in rows:
        if len(said[row.recording_id]) < len(words):
            continue
        offset, snippet = locate(row.words or [], row.text, query, row.start_s)
        hits.append(_hit(
            row, recording_id=row.recording_id, recording=row.recording, segment_id=row.segment_id,
            speaker=row.speaker, offset_s=round(offset, 2), snippet=snippet, matched="transcript",
        ))
    return hits[: filters.limit]


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

    stmt = _base([first_recording(Recording.id).label("recording_id"), first_recording(Recording.path).label("recording")])
    stmt = stmt.select_from(Call).outerjoin(Client, Client.id == Call.client_id)
    if _is_number(query):
        stmt = stmt.where(Call.client_number.contains(_digits(query)))
        matched = "client_number"
    else:
        stmt = stmt.where(Client.name.ilike(f"%{query.strip()}%"))
        matched = "client_name"
    stmt = _call_filters(stmt, filters).order_by(Call.started_at.desc()).limit(filters.limit)
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
    """Calls whose transcript holds the query's words (any form), or whose client's name/number matches."""
    filters = filters or SearchFilters()
    query = query.strip()
    if not query:
        return []
    async with session_factory() as session:
        hits = await _client_hits(session, query, filters)
        if not _is_number(query):
            hits += await _transcript_hits(session, query, filters)
    return hits[: filters.limit]
