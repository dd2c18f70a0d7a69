"""One CEL row and one CDR row as pbxbridge reads them from asteriskcdrdb."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Container, Iterable, Mapping, Sequence
from datetime import datetime
from functools import lru_cache
from itertools import chain
from types import MappingProxyType
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

# Every CEL event type Asterisk 12+ writes (cel.conf ``events=``); anything else is not a CEL row.
KNOWN_EVENT_TYPES = frozenset(
    {
        "CHAN_START", "CHAN_END", "HANGUP", "ANSWER", "APP_START", "APP_END",
        "PARK_START", "PARK_END", "LINKEDID_END", "BRIDGE_ENTER", "BRIDGE_EXIT",
        "BLINDTRANSFER", "ATTENDEDTRANSFER", "USER_DEFINED", "PICKUP", "FORWARD",
        "LOCAL_OPTIMIZE", "LOCAL_OPTIMIZE_BEGIN", "STREAM_BEGIN", "STREAM_END", "DTMF",
    }
)
# One complete "key":"value" or "key":number pair of a JSON object, for extras cut at 255 characters.
_PAIR = re.compile(r'"(?P<key>[a-z0-9_]+)":(?:"(?P<text>(?:[^"\\]|\\.)*)"|(?P<number>-?\d+))(?=[,}])')


class BadRow(ValueError):
    """A CEL or CDR row pbxbridge cannot use; the message names the row and what is wrong with it."""


class CelRow(NamedTuple):
    """A CEL row: a tuple, made straight from the database's row (one allocation, no per-field setattr)."""

    id: int
    eventtype: str
    # Unix seconds (the table keeps the PBX's local time to the second).
    at: float
    channame: str
    uniqueid: str
    linkedid: str
    cid_num: str = ""
    cid_name: str = ""
    cid_ani: str = ""
    cid_dnid: str = ""
    exten: str = ""
    context: str = ""
    appname: str = ""
    appdata: str = ""
    peer: str = ""
    extra: str = ""

    def extra_fields(self) -> Mapping[str, str]:
        """``eventextra`` as strings by key; a value cut off at the column's width is left out."""
        return _extra(self.extra)[0]

    def extra_is_cut(self) -> bool:
        return _extra(self.extra)[1]


# The columns of ``cel`` read, in CelRow's order (``eventtime`` becomes ``at``).
CEL_COLUMNS = (
    "id", "eventtype", "eventtime", "channame", "uniqueid", "linkedid", "cid_num", "cid_name", "cid_ani",
    "cid_dnid", "exten", "context", "appname", "appdata", "peer", "eventextra",
)
_TEXT_FROM = 3
_EMPTY: Mapping[str, str] = MappingProxyType({})


# A call's rows are read more than once for the same extra (cut or not, its hang-up cause, its
# bridge): each is parsed once.
@lru_cache(maxsize=1024)
def _extra(extra: str) -> tuple[Mapping[str, str], bool]:
    """``eventextra`` as strings by key, and whether it was cut at the column's width."""
    text = extra.strip()
    if not text:
        return _EMPTY, False
    try:
        data = json.loads(text)
    except ValueError:
        cut = {m["key"]: m["text"] if m["text"] is not None else m["number"] for m in _PAIR.finditer(text)}
        return MappingProxyType(cut), True
    if not isinstance(data, dict):
        return _EMPTY, False
    return MappingProxyType({str(k): str(v) for k, v in data.items()}), False


class CdrRow(NamedTuple):
    """A CDR row, as CelRow a tuple made straight from the database's row."""

    # Unix seconds of calldate.
    at: float
    uniqueid: str
    linkedid: str
    src: str = ""
    dst: str = ""
    dcontext: str = ""
    channel: str = ""
    dstchannel: str = ""
    lastapp: str = ""
    lastdata: str = ""
    disposition: str = ""
    duration: int = 0
    billsec: int = 0
    did: str = ""
    recordingfile: str = ""
    cnum: str = ""
    sequence: int = 0


def local_seconds(value: Any, zone: ZoneInfo) -> float:
    """A ``datetime`` column (the PBX's wall clock, no zone) as Unix seconds."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a date and time: {value!r}")
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    return value.timestamp()


def cel_rows(raw: Sequence[Sequence[Any]], zone: ZoneInfo, bad: Callable[[BadRow], None]) -> list[CelRow]:
    """Database rows of ``cel`` (columns as ``CEL_COLUMNS``) as CelRows; each one unusable is told to ``bad``.

    A page at a time: the text columns are checked once per page (FreePBX's are NOT NULL
    varchars, so they are already strings), and an ``eventtime`` second shared by many rows is
    turned into Unix seconds once.
    """
    if not _all_text_or_plain(raw):
        raw = [_as_text(item) for item in raw]
    seconds: dict[Any, float] = {}
    make = tuple.__new__
    out: list[CelRow] = []
    append = out.append
    for item in raw:
        eventtype = item[1]
        if eventtype not in KNOWN_EVENT_TYPES:
            bad(BadRow(f"CEL row {item[0]}: unknown event type {eventtype!r}"))
            continue
        if not item[3] or not item[4] or not item[5]:
            bad(BadRow(f"CEL row {item[0]}: {eventtype} without uniqueid, linkedid or channel name"))
            continue
        when = item[2]
        at = seconds.get(when)
        if at is None:
            try:
                at = seconds[when] = local_seconds(when, zone)
            except (TypeError, ValueError):
                bad(BadRow(f"CEL row {item[0]}: unreadable eventtime {when!r}"))
                continue
        append(make(CelRow, (int(item[0]), eventtype, at, *item[_TEXT_FROM:])))
    return out


def _all_text_or_plain(raw: Sequence[Sequence[Any]]) -> bool:
    """No NULL and no bytes anywhere in the page (one pass in C)."""
    kinds = set(map(type, chain.from_iterable(raw)))
    return type(None) not in kinds and bytes not in kinds and bytearray not in kinds


def _as_text(item: Sequence[Any]) -> tuple[Any, ...]:
    """A row whose text columns may be NULL or bytes (another schema, a binary collation): all strings."""
    head = (item[0], _text_value(item[1]), item[2])
    return head + tuple(_text_value(v) for v in item[_TEXT_FROM:])


def _text_value(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, bytes | bytearray):
        return bytes(value).decode("utf-8", "replace")
    return str(value)


def _text(raw: Mapping[str, Any], key: str) -> str:
    return _text_value(raw.get(key))


# The columns of ``cdr`` read, in CdrRow's order (``calldate`` becomes ``at``).
CDR_COLUMNS = (
    "calldate", "uniqueid", "linkedid", "src", "dst", "dcontext", "channel", "dstchannel", "lastapp",
    "lastdata", "disposition", "duration", "billsec", "did", "recordingfile", "cnum", "sequence",
)
_CDR_NUMBERS = frozenset({CDR_COLUMNS.index(c) for c in ("duration", "billsec", "sequence")})


def cdr_rows(
    raw: Iterable[Sequence[Any]], zone: ZoneInfo, bad: Callable[[BadRow], None], wanted: Container[str]
) -> list[CdrRow]:
    """Database rows of ``cdr`` (columns as ``CDR_COLUMNS``) of the calls ``wanted``, as CdrRows."""
    seconds: dict[Any, float] = {}
    make = tuple.__new__
    out: list[CdrRow] = []
    for item in raw:
        linkedid = item[2] or item[1]
        if linkedid not in wanted:
            if type(linkedid) is str:
                continue
            # NULL or bytes (another schema): read as text, then asked again.
            item = _cdr_as_text(item)
            linkedid = item[2] or item[1]
            if linkedid not in wanted:
                continue
        when = item[0]
        at = seconds.get(when)
        if at is None:
            try:
                at = seconds[when] = local_seconds(when, zone)
            except (TypeError, ValueError):
                bad(BadRow(f"CDR row {item[1]}: unreadable calldate {when!r}"))
                continue
        values = (at, item[1], linkedid, *item[3:])
        if None in values:
            values = _cdr_as_text((at, item[1], linkedid, *item[3:]))
        out.append(make(CdrRow, values))
    return out


def _cdr_as_text(item: Sequence[Any]) -> tuple[Any, ...]:
    return tuple(
        int(v or 0) if i in _CDR_NUMBERS else (v if i == 0 else _text_value(v)) for i, v in enumerate(item)
    )


def cdr_linkedid(raw: Mapping[str, Any]) -> str:
    """The call a ``cdr`` row belongs to (its own uniqueid when it names no linkedid)."""
    return _text(raw, "linkedid") or _text(raw, "uniqueid")


def cdr_row(raw: Mapping[str, Any], zone: ZoneInfo) -> CdrRow:
    """A database row of ``cdr`` as a CdrRow."""
    try:
        at = local_seconds(raw.get("calldate"), zone)
    except (TypeError, ValueError) as exc:
        raise BadRow(f"CDR row {_text(raw, 'uniqueid')}: unreadable calldate {raw.get('calldate')!r}") from exc
    return CdrRow(
        at=at,
        uniqueid=_text(raw, "uniqueid"),
        linkedid=cdr_linkedid(raw),
        src=_text(raw, "src"),
        dst=_text(raw, "dst"),
        dcontext=_text(raw, "dcontext"),
        channel=_text(raw, "channel"),
        dstchannel=_text(raw, "dstchannel"),
        lastapp=_text(raw, "lastapp"),
        lastdata=_text(raw, "lastdata"),
        disposition=_text(raw, "disposition"),
        duration=int(raw.get("duration") or 0),
        billsec=int(raw.get("billsec") or 0),
        did=_text(raw, "did"),
        recordingfile=_text(raw, "recordingfile"),
        cnum=_text(raw, "cnum"),
        sequence=int(raw.get("sequence") or 0),
    )
