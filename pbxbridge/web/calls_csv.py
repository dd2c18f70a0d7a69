"""The call journal as a CSV file that Russian Excel opens as columns: the columns of the page.

Excel in a Russian locale splits on ``;`` (``,`` is its decimal separator), reads UTF-8 only
after a byte order mark, and takes ``07.12.2026 14:05:09`` for a date and ``0:02:05`` for a
duration. Cells are written as the page shows them: local times, names beside extensions,
numbers as people write them.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from pbxbridge.web.i18n import N_, _

# The journal's columns on the page, in order (msgids; headers are translated per request).
COLUMNS = (
    N_("Started"), N_("Direction"), N_("Status"), N_("Client"), N_("Client number"), N_("Manager"),
    N_("Transferred to"), N_("Wait"), N_("Talk"), N_("Recording"), N_("Transcript"),
)
# Shown when the journal was searched: where the words were found.
FOUND_COLUMN = N_("Found")
DIRECTIONS = {"inbound": N_("Inbound"), "outbound": N_("Outbound"), "internal": N_("Internal")}
STATUSES = {
    "answered": N_("Answered"), "missed": N_("Missed"), "abandoned": N_("Abandoned"),
    "no_answer": N_("No answer"), "busy": N_("Busy"), "failed": N_("Failed"),
}
# A cell starting with one of these is a formula to a spreadsheet (=HYPERLINK(...) in a
# client's name would run when the head opens the file); a leading apostrophe makes it text.
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def party_label(extension_or_number: str | None, name: str | None) -> str:
    """"Anna Kuznetsova (203)", or the extension or number alone when nobody is named."""
    if not extension_or_number:
        return ""
    return f"{name} ({extension_or_number})" if name else extension_or_number


def local_time(iso: str | None, zone: ZoneInfo) -> str:
    """An ISO UTC time as the department's local ``dd.mm.yyyy HH:MM:SS``."""
    if not iso:
        return ""
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(zone).strftime("%d.%m.%Y %H:%M:%S")


def duration(seconds: float | None) -> str:
    """``H:MM:SS``, whole seconds: a time span to Excel, whatever its locale."""
    if seconds is None:
        return ""
    total = round(seconds)
    return f"{total // 3600}:{total % 3600 // 60:02d}:{total % 60:02d}"


def safe_cell(value: str) -> str:
    """The cell as text a spreadsheet will not evaluate."""
    return "'" + value if value.startswith(FORMULA_STARTS) else value


def _client(item: dict[str, Any]) -> str:
    if item["direction"] == "internal" and not item.get("client_number"):
        return party_label(item.get("callee"), item.get("callee_name"))
    return item.get("client_name") or ""


def _row(request: web.Request | None, item: dict[str, Any], zone: ZoneInfo, searched: bool) -> list[str]:
    yes, no = _(request, "Yes"), _(request, "No")
    direction, status = item["direction"], item["status"]
    cells = [
        local_time(item["started_at"], zone),
        _(request, DIRECTIONS[direction]) if direction in DIRECTIONS else direction,
        _(request, STATUSES[status]) if status in STATUSES else status,
        _client(item),
        item.get("client_number_display") or "",
        party_label(item.get("manager"), item.get("manager_name")),
        ", ".join(party_label(t["display"], t["name"]) for t in item["transfers"]),
        duration(item.get("wait_s")),
        duration(item.get("talk_s")),
        yes if item["playable"] else no,
        yes if item["has_transcript"] else no,
    ]
    if searched:
        hit = item.get("hit") or {}
        cells.append(str(hit.get("snippet") or "").replace("[", "").replace("]", ""))
    return [safe_cell(c) for c in cells]


def journal_csv(request: web.Request | None, items: Iterable[dict[str, Any]], timezone: str, searched: bool) -> bytes:
    """The journal's rows as CSV bytes: UTF-8 with a BOM, ``;`` between cells, CRLF between rows."""
    zone = ZoneInfo(timezone)
    buffer = io.StringIO()
    writer = csv.writer(buffer, delimiter=";", lineterminator="\r\n")
    writer.writerow([_(request, h) for h in (*COLUMNS, *((FOUND_COLUMN,) if searched else ()))])
    for item in items:
        writer.writerow(_row(request, item, zone, searched))
    return buffer.getvalue().encode("utf-8-sig")


def export_filename(date_from: datetime | None, date_to: datetime | None, items: list[dict[str, Any]],
                    timezone: str) -> str:
    """``calls_07.12.2026-08.12.2026.csv``: the days asked for, else the days of the calls exported."""
    zone = ZoneInfo(timezone)
    days = [datetime.fromisoformat(i["started_at"].replace("Z", "+00:00")).astimezone(zone).date()
            for i in items if i.get("started_at")]
    # ``to`` is the end of its day (exclusive): the day named is the one before it.
    first: date | None = date_from.astimezone(zone).date() if date_from else min(days, default=None)
    last: date | None = (date_to - timedelta(microseconds=1)).astimezone(zone).date() if date_to else max(days, default=None)
    if first is None or last is None:
        return "calls.csv"
    if first == last:
        return f"calls_{first:%d.%m.%Y}.csv"
    return f"calls_{first:%d.%m.%Y}-{last:%d.%m.%Y}.csv"
