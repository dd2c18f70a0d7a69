"""Journal filters from a query string, turned into SQL on calls."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import ColumnElement, exists, func, or_, select

from pbxbridge.analytics.conditions import stop_phrase_said
from pbxbridge.calls.model import CallStatus, Direction
from pbxbridge.calls.tables import Call, Recording
from pbxbridge.clients.tables import Client, ClientPhone, Manager, fold_name
from pbxbridge.kpi.drilldown import LEADS, LISTINGS
from pbxbridge.review.filters import not_reviewed, reviewed, score_at_least, score_below, tagged
from pbxbridge.transcription.search import (
    MAX_QUERY_CHARS,
    MAX_QUERY_WORDS,
    QueryTooLong,
    TooManyWords,
    check_query,
)
from pbxbridge.transcription.tables import TranscriptSegment
from pbxbridge.web.errors import api_error
from pbxbridge.web.i18n import _, n_

DIRECTIONS = tuple(d.value for d in Direction)
STATUSES = tuple(s.value for s in CallStatus)
MAX_PER_PAGE = 200
ANSWERED = CallStatus.ANSWERED.value
# Figures whose calls the journal lists (the lead figures list cards: see /api/kpi/{kpi}/calls).
KPI_NAMES = tuple(name for name, listing in LISTINGS.items() if listing.unit != LEADS)
# Extensions are stored in at most this many characters.
MAX_EXTENSION_CHARS = 32
# A client filter longer than this is no name or number anyone typed.
MAX_CLIENT_CHARS = 200
# Whose words a search looks for on a two-channel recording.
SIDES = ("manager", "client")
# As long as the review's tags and the analytics' checklist names and item titles may be.
MAX_TAG_CHARS = 60
MAX_CHECKLIST_CHARS = 200
MAX_ITEM_CHARS = 300
# Dates a journal can hold: outside them the local day would not even convert to UTC.
FIRST_DAY, LAST_DAY = date(1900, 1, 1), date(9998, 12, 31)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")
# What no keyboard types and PostgreSQL's text refuses (NUL): a pasted binary, not a search.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


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
    # Answered by anyone (True) or by nobody (False), whatever the status says of why.
    answered: bool | None = None
    # A figure of the KPI store: the journal lists the calls behind it (``manager`` is then the figure's).
    kpi: str | None = None
    q: str | None = None
    # The search's words said by this side only (two-channel recordings; one-channel ones match whole).
    side: str | None = None
    # Call review: a tag of the shared list, the checklist score (0..100), reviewed or not.
    tag: str | None = None
    score_below: int | None = None
    score_at_least: int | None = None
    reviewed: bool | None = None
    # Speech analytics: an item of a checklist the call failed, a stop phrase said.
    checklist: str | None = None
    failed_item: str | None = None
    stop_said: bool | None = None
    # A column of SORTS; descending when ``descending``.
    sort: str = "started"
    descending: bool = True
    page: int = 1
    per_page: int = 50

    def kpi_days(self, zone: ZoneInfo) -> tuple[date, date]:
        """The business days a figure's calls are taken from: those ``from`` and ``to`` cover."""
        first = FIRST_DAY if self.date_from is None else self.date_from.astimezone(zone).date()
        # ``to`` is exclusive: a bare date's day ends at the next day's start.
        last = LAST_DAY if self.date_to is None else (self.date_to - timedelta(microseconds=1)).astimezone(zone).date()
        return first, last


def _bad(key: str, message: str) -> web.HTTPException:
    # ``field`` lets the page mark the input it came from.
    return api_error(400, message, field=key)


def _when(request: web.Request | None, value: str, zone: ZoneInfo, end: bool, key: str) -> datetime:
    # A bare date is the sales department's local day; "to" includes that whole day.
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
            day = date.fromisoformat(value)
            parsed = datetime.combine(day + (timedelta(days=1) if end else timedelta()), time(), zone)
        else:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _bad(key, _(
            request, "{key}: expected a date (YYYY-MM-DD) or an ISO 8601 time, got {value}", key=key, value=repr(value)
        )) from None
    except OverflowError:  # the day after 31.12.9999
        parsed = datetime.max
    if not FIRST_DAY <= parsed.date() <= LAST_DAY:
        raise _bad(key, _(
            request, "{key}: the date must be between {first} and {last}", key=key,
            first=FIRST_DAY.strftime("%d.%m.%Y"), last=LAST_DAY.strftime("%d.%m.%Y"),
        ))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=zone)


def _number(request: web.Request | None, value: str, key: str) -> float:
    try:
        number = float(value.replace(",", "."))  # 1,5 as a Russian keyboard writes it
    except ValueError:
        number = math.nan
    # nan and inf read as floats but compare with no duration.
    if not math.isfinite(number):
        raise _bad(key, _(request, "{key}: expected a number, got {value}", key=key, value=repr(value)))
    return number


def _flag(request: web.Request | None, value: str, key: str) -> bool | None:
    low = value.strip().lower()
    if low == "":
        return None
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise _bad(key, _(request, "{key}: expected true or false, got {value}", key=key, value=repr(value)))


def _int(request: web.Request | None, value: str, key: str, low: int, high: int) -> int:
    try:
        number = int(value)
    except ValueError:
        raise _bad(key, _(request, "{key}: expected an integer, got {value}", key=key, value=repr(value[:40]))) from None
    if not low <= number <= high:
        raise _bad(key, _(request, "{key}: must be between {low} and {high}", key=key, low=low, high=high))
    return number


def _choice(request: web.Request | None, value: str, key: str, choices: tuple[str, ...]) -> str:
    if value not in choices:
        raise _bad(key, _(request, "{key}: must be one of {choices}", key=key, choices=", ".join(choices)))
    return value


def _text(request: web.Request | None, value: str, key: str) -> str:
    """Typed text as one line: runs of spaces are one space ("Петров  Иван" is "Петров Иван")."""
    if _CONTROL.search(value):
        raise _bad(key, _(request, "{key}: remove the control characters from the text", key=key))
    return " ".join(value.split())


def _bounded(request: web.Request | None, value: str, key: str, most: int) -> str:
    text = _text(request, value, key)
    if len(text) > most:
        raise _bad(key, n_(
            request, "{key}: at most {n} character", "{key}: at most {n} characters", most, key=key,
        ))
    return text


def _search_text(request: web.Request | None, value: str) -> str:
    text = _text(request, value, "q")
    try:
        return check_query(text)
    except QueryTooLong:
        raise _bad("q", n_(
            request, "The search is too long: at most {n} character.", "The search is too long: at most {n} characters.",
            MAX_QUERY_CHARS,
        )) from None
    except TooManyWords:
        raise _bad("q", n_(
            request, "The search has too many words: at most {n} word.", "The search has too many words: at most {n} words.",
            MAX_QUERY_WORDS,
        )) from None


def parse_call_query(query: Any, timezone: str, request: web.Request | None = None) -> CallQuery:
    """Read the journal's filters from a query string; 400 names the bad parameter, in the request's language."""
    zone = ZoneInfo(timezone)
    out = CallQuery()

    def get(key: str) -> str | None:
        value = query.get(key)
        return value.strip() if isinstance(value, str) and value.strip() else None

    if (v := get("from")) is not None:
        out.date_from = _when(request, v, zone, False, "from")
    if (v := get("to")) is not None:
        out.date_to = _when(request, v, zone, True, "to")
    if (v := get("manager")) is not None:
        out.manager = _text(request, v, "manager")
        if len(out.manager) > MAX_EXTENSION_CHARS:
            raise _bad("manager", _(
                request, "manager: an extension has at most {most} characters", most=MAX_EXTENSION_CHARS
            ))
    if (v := get("client")) is not None:
        out.client = _text(request, v, "client")
        if len(out.client) > MAX_CLIENT_CHARS:
            raise _bad("client", n_(
                request, "The client filter is too long: at most {n} character.",
                "The client filter is too long: at most {n} characters.", MAX_CLIENT_CHARS,
            ))
    if (v := get("client_id")) is not None:
        out.client_id = _int(request, v, "client_id", 1, 2**31 - 1)
    if (v := get("direction")) is not None:
        out.direction = _choice(request, v, "direction", DIRECTIONS)
    if (v := get("status")) is not None:
        out.status = _choice(request, v, "status", STATUSES)
    if (v := get("min_duration")) is not None:
        out.min_duration_s = _number(request, v, "min_duration")
    if (v := get("max_duration")) is not None:
        out.max_duration_s = _number(request, v, "max_duration")
    if (v := get("has_recording")) is not None:
        out.has_recording = _flag(request, v, "has_recording")
    if (v := get("has_transcript")) is not None:
        out.has_transcript = _flag(request, v, "has_transcript")
    if (v := get("answered")) is not None:
        out.answered = _flag(request, v, "answered")
    if (v := get("kpi")) is not None:
        out.kpi = _choice(request, v, "kpi", KPI_NAMES)
    if (v := get("q")) is not None:
        out.q = _search_text(request, v) or None
    if (v := get("side")) is not None:
        out.side = _choice(request, v, "side", SIDES)
        if not out.q:
            raise _bad("side", _(request, "side: type the words to look for in the search"))
    if (v := get("tag")) is not None:
        out.tag = _bounded(request, v, "tag", MAX_TAG_CHARS)
    if (v := get("score_below")) is not None:
        out.score_below = _int(request, v, "score_below", 0, 101)
    if (v := get("score_at_least")) is not None:
        out.score_at_least = _int(request, v, "score_at_least", 0, 100)
    if (v := get("reviewed")) is not None:
        out.reviewed = _flag(request, v, "reviewed")
    if (v := get("checklist")) is not None:
        out.checklist = _bounded(request, v, "checklist", MAX_CHECKLIST_CHARS)
    if (v := get("failed_item")) is not None:
        out.failed_item = _bounded(request, v, "failed_item", MAX_ITEM_CHARS)
        if not out.checklist:
            raise _bad("checklist", _(request, "checklist: name the checklist the item belongs to"))
    if (v := get("stop_said")) is not None:
        out.stop_said = _flag(request, v, "stop_said")
    if (v := get("sort")) is not None:
        out.descending = v.startswith("-")
        out.sort = _choice(request, v.removeprefix("-"), "sort", tuple(SORTS))
    if (v := get("page")) is not None:
        out.page = _int(request, v, "page", 1, 1_000_000)
    if (v := get("per_page")) is not None:
        out.per_page = _int(request, v, "per_page", 1, MAX_PER_PAGE)
    return out


def _client_sort() -> ColumnElement[Any]:
    # The card's name, else the number (or the colleague of an internal call): what the column shows.
    name = select(Client.name).where(Client.id == Call.client_id).scalar_subquery()
    return func.coalesce(name, Call.client_number, Call.callee, "")


def _manager_sort() -> ColumnElement[Any]:
    name = select(Manager.name).where(Manager.extension == Call.manager).scalar_subquery()
    return func.coalesce(name, Call.manager, "")


# The journal's columns by the name ``sort`` takes; every order ends with the call's id, so pages never overlap.
SORTS: dict[str, Callable[[], Any]] = {
    "started": lambda: Call.started_at,
    "direction": lambda: Call.direction,
    "status": lambda: Call.status,
    "client": _client_sort,
    "manager": _manager_sort,
    "wait": lambda: Call.wait_s,
    "talk": lambda: Call.talk_s,
    "duration": lambda: Call.wait_s + Call.talk_s,
}


def order_by(q: CallQuery) -> list[ColumnElement[Any]]:
    """ORDER BY for the journal: the column asked for, then the newest call first among equals."""
    column = SORTS[q.sort]()
    first = column.desc() if q.descending else column.asc()
    if q.sort == "started":
        return [first, Call.id.desc() if q.descending else Call.id.asc()]
    return [first, Call.started_at.desc(), Call.id.desc()]


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
    if q.manager and not q.kpi:
        # With a figure, the manager is whose figure it is (a missed call was answered by someone else).
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
    if q.answered is not None:
        conds.append(Call.status == ANSWERED if q.answered else Call.status != ANSWERED)
    duration = Call.wait_s + Call.talk_s
    if q.min_duration_s is not None:
        conds.append(duration >= q.min_duration_s)
    if q.max_duration_s is not None:
        conds.append(duration <= q.max_duration_s)
    if q.has_recording is not None:
        conds.append(has_recording() if q.has_recording else ~has_recording())
    if q.has_transcript is not None:
        conds.append(has_transcript() if q.has_transcript else ~has_transcript())
    if q.tag:
        conds.append(tagged(q.tag))
    if q.score_below is not None:
        conds.append(score_below(q.score_below))
    if q.score_at_least is not None:
        conds.append(score_at_least(q.score_at_least))
    if q.reviewed is not None:
        conds.append(reviewed() if q.reviewed else not_reviewed())
    if q.stop_said is not None:
        conds.append(stop_phrase_said() if q.stop_said else ~stop_phrase_said())
    # The failed checklist item is read by the journal (see analytics.conditions.failed_item).
    return conds
