"""One CEL row and one CDR row as pbxbridge reads them from asteriskcdrdb."""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any
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


@dataclass(frozen=True, slots=True)
class CelRow:
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

    def extra_fields(self) -> dict[str, str]:
        """``eventextra`` as a dict of strings; a value cut off at the column's width is left out."""
        text = self.extra.strip()
        if not text:
            return {}
        try:
            data = json.loads(text)
        except ValueError:
            return {m["key"]: m["text"] if m["text"] is not None else m["number"] for m in _PAIR.finditer(text)}
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}

    def extra_is_cut(self) -> bool:
        text = self.extra.strip()
        if not text:
            return False
        try:
            json.loads(text)
        except ValueError:
            return True
        return False


@dataclass(frozen=True, slots=True)
class CdrRow:
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


def _text(raw: Mapping[str, Any], key: str) -> str:
    value = raw.get(key)
    if value is None:
        return ""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def cel_row(raw: Mapping[str, Any], zone: ZoneInfo) -> CelRow:
    """A database row of ``cel`` as a CelRow; BadRow names what cannot be used."""
    row_id = raw.get("id")
    eventtype = _text(raw, "eventtype")
    if eventtype not in KNOWN_EVENT_TYPES:
        raise BadRow(f"CEL row {row_id}: unknown event type {eventtype!r}")
    uniqueid, linkedid, channame = _text(raw, "uniqueid"), _text(raw, "linkedid"), _text(raw, "channame")
    if not uniqueid or not linkedid or not channame:
        raise BadRow(f"CEL row {row_id}: {eventtype} without uniqueid, linkedid or channel name")
    try:
        at = local_seconds(raw.get("eventtime"), zone)
    except (TypeError, ValueError) as exc:
        raise BadRow(f"CEL row {row_id}: unreadable eventtime {raw.get('eventtime')!r}") from exc
    return CelRow(
        id=int(row_id or 0),
        eventtype=eventtype,
        at=at,
        channame=channame,
        uniqueid=uniqueid,
        linkedid=linkedid,
        cid_num=_text(raw, "cid_num"),
        cid_name=_text(raw, "cid_name"),
        cid_ani=_text(raw, "cid_ani"),
        cid_dnid=_text(raw, "cid_dnid"),
        exten=_text(raw, "exten"),
        context=_text(raw, "context"),
        appname=_text(raw, "appname"),
        appdata=_text(raw, "appdata"),
        peer=_text(raw, "peer"),
        extra=_text(raw, "eventextra"),
    )


def cdr_row(raw: Mapping[str, Any], zone: ZoneInfo) -> CdrRow:
    """A database row of ``cdr`` as a CdrRow."""
    try:
        at = local_seconds(raw.get("calldate"), zone)
    except (TypeError, ValueError) as exc:
        raise BadRow(f"CDR row {_text(raw, 'uniqueid')}: unreadable calldate {raw.get('calldate')!r}") from exc
    return CdrRow(
        at=at,
        uniqueid=_text(raw, "uniqueid"),
        linkedid=_text(raw, "linkedid") or _text(raw, "uniqueid"),
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
