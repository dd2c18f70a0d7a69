"""Journal filters from a query string, turned into SQL on calls."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, exists, or_, select

from pbxbridge.calls.model import CallStatus, Direction
from pbxbridge.calls.tables import Call, Recording
from pbxbridge.clients.tables import Client, ClientPhone, fold_name
from pbxbridge.transcription.tables import TranscriptSegment
from pbxbridge.web.errors import api_error

DIRECTIONS = tuple(d.value for d in Direction)
STATUSES = tuple(s.value for s in CallStatus)
MAX_PER_PAGE = 200
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


@dataclass(slots=True)
class CallQuery:
    """What the journal was asked for."""

    date_from: datetime | None = None
    date_to: datetime | None = None
    manager: str | None = None
    client: str | None = None
    client_id: int | None = None
    direction: str | None = None
    status: str | None = None
    min_duration_s: float | None = None
    max_duration_s: float | None = None
    has_recording: bool | None = None
    has_transcript: bool | None = None
    q: str | None = None
    page: int = 1
    per_page: int = 50


def _when(value: str, zone: ZoneInfo, end: bool, key: str) -> datetime:
    # A bare date is the sales department's local day; "to" includes that whole day.
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            day = date.fromisoformat(value) + (timedelta(days=1) if end else timedelta())
            return datetime.combine(day, time(), zone)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise api_error(400, f"{key}: expected a date (YYYY-MM-DD) or an ISO 8601 time, got {value!r}") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _number(value: str, key: str) -> float:
    try:
        return float(value)
    except ValueError:
        raise api_error(400, f"{key}: expected a number, got {value!r}") from None


def _flag(value: str, key: str) -> bool | None:
    low = value.strip().lower()
    if low == "":
        return None
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise api_error(400, f"{key}: expected true or false, got {value!r}")


def _int(value: str, key: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise api_error(400, f"{key}: expected an integer, got {value!r}") from None
    if not low <= number <= high:
        raise api_error(400, f"{key}: must be between {low} and {high}")
    return number


def _choice(value: str, key: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise api_error(400, f"{key}: must be one of {', '.join(choices)}")
    return value


def parse_call_query(query: Any, timezone: str) -> CallQuery:
    """Read the journal's filters from a query string; 400 names the bad parameter."""
    zone = ZoneInfo(timezone)
    out = CallQuery()

    def get(key: str) -> str | None:
        value = query.get(key)
        return value.strip() if isinstance(value, str) and value.strip() else None

    if (v := get("from")) is not None:
        out.date_from = _when(v, zone, False, "from")
    if (v := get("to")) is not None:
        out.date_to = _when(v, zone, True, "to")
    out.manager = get("manager")
    out.client = get("client")
    if (v := get("client_id")) is not None:
        out.client_id = _int(v, "client_id", 1, 2**31 - 1)
    if (v := get("direction")) is not None:
        out.direction = _choice(v, "direction", DIRECTIONS)
    if (v := get("status")) is not None:
        out.status = _choice(v, "status", STATUSES)
    if (v := get("min_duration")) is not None:
        out.min_duration_s = _number(v, "min_duration")
    if (v := get("max_duration")) is not None:
        out.max_duration_s = _number(v, "max_duration")
    if (v := get("has_recording")) is not None:
        out.has_recording = _flag(v, "has_recording")
    if (v := get("has_transcript")) is not None:
        out.has_transcript = _flag(v, "has_transcript")
    out.q = get("q")
    if (v := get("page")) is not None:
        out.page = _int(v, "page", 1, 1_000_000)
    if (v := get("per_page")) is not None:
        out.per_page = _int(v, "per_page", 1, MAX_PER_PAGE)
    return out


def _digits(value: str) -> str:
    digits = re.sub(r"\D", "", value)
    # The domestic 8-prefix form of a Russian number is the +7 one.
    if len(digits) == 11 and digits.startswith("8"):
        digits = "7" + digits[1:]
    return digits


def has_recording() -> ColumnElement[bool]:
    """Call has a recording with sound."""
    return exists().where(Recording.call_id == Call.id, Recording.status == "ok", Recording.kind == "call")


def has_transcript() -> ColumnElement[bool]:
    """Call has transcript text."""
    return exists().where(TranscriptSegment.call_id == Call.id)


def conditions(q: CallQuery) -> list[ColumnElement[bool]]:
    """SQL conditions on Call for every filter given (the text search aside)."""
    conds: list[ColumnElement[bool]] = []
    if q.date_from is not None:
        conds.append(Call.started_at >= q.date_from)
    if q.date_to is not None:
        conds.append(Call.started_at < q.date_to)
    if q.manager:
        conds.append(or_(Call.manager == q.manager, Call.final_manager == q.manager))
    if q.client_id is not None:
        conds.append(Call.client_id == q.client_id)
    if q.client:
        digits = _digits(q.client)
        by_name = Call.client_id.in_(select(Client.id).where(Client.name_folded.contains(fold_name(q.client), autoescape=True)))
        if len(digits) >= 3:
            by_number = or_(
                Call.client_number.contains(digits),
                Call.client_id.in_(select(ClientPhone.client_id).where(ClientPhone.number.contains(digits))),
            )
            conds.append(or_(by_number, by_name))
        else:
            conds.append(by_name)
    if q.direction:
        conds.append(Call.direction == q.direction)
    if q.status:
        conds.append(Call.status == q.status)
    duration = Call.wait_s + Call.talk_s
    if q.min_duration_s is not None:
        conds.append(duration >= q.min_duration_s)
    if q.max_duration_s is not None:
        conds.append(duration <= q.max_duration_s)
    if q.has_recording is not None:
        conds.append(has_recording() if q.has_recording else ~has_recording())
    if q.has_transcript is not None:
        conds.append(has_transcript() if q.has_transcript else ~has_transcript())
    return conds
