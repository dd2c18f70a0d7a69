"""Compare calls (as journal rows) with the scripted ground truth of expected.json."""

from __future__ import annotations

import re
from typing import Any

Row = dict[str, Any]


def digits(number: str | None) -> str | None:
    return re.sub(r"\D", "", number) if number else None


def match_rows(scripted: Row, rows: list[Row]) -> list[Row]:
    """Rows that are this scripted call: same direction and the same client (or the same extensions)."""
    direction = scripted["direction"]
    if direction == "internal":
        return [
            r
            for r in rows
            if r["direction"] == "internal"
            and r["manager"] == scripted["from_ext"]
            and scripted["to_ext"] in (r.get("rang") or [])
        ]
    return [r for r in rows if r["direction"] == direction and digits(r["client_number"]) == scripted["client"]]


def problems(scenario: str, scripted: Row, rows: list[Row], check_recording: bool) -> list[str]:
    """Everything in which the rows disagree with one scripted call (empty when they agree)."""
    found = match_rows(scripted, rows)
    who = f"{scenario}: {scripted['direction']} {scripted.get('client') or scripted.get('from_ext')}"
    if len(found) != 1:
        return [f"{who}: present {len(found)} times, expected exactly once"]
    row = found[0]
    out: list[str] = []

    def same(field: str, want: Any, got: Any) -> None:
        if want != got:
            out.append(f"{who}: {field} is {got!r}, scripted {want!r}")

    same("status", scripted["status"], row["status"])
    if "did" in scripted:
        same("did", scripted["did"], digits(row["did"]))
    if "answered_by" in scripted:
        same("manager", scripted["answered_by"], row["manager"])
    if "placed_by" in scripted:
        same("manager", scripted["placed_by"], row["manager"])
    if "from_ext" in scripted:
        same("manager", scripted["from_ext"], row["manager"])
    if "final_agent" in scripted:
        same("final_manager", scripted["final_agent"], row["final_manager"])
    elif "answered_by" in scripted or "placed_by" in scripted:
        same("final_manager", scripted.get("answered_by", scripted.get("placed_by")), row["final_manager"])
    if "transferred_to" in scripted:
        same("transferred_to", [scripted["transferred_to"]], list(row["transferred_to"]))
    if "rang" in scripted:
        same("rang", scripted["rang"], list(row["rang"]))
    if "queues" in scripted:
        same("queues", scripted["queues"], list(row["queues"]))
    if "dialed" in scripted and "dialed" in row:
        same("dialed", scripted["dialed"], row["dialed"])
    for field in ("wait_s", "talk_s"):
        if field in scripted:
            low, high = scripted[field]
            if not low <= row[field] <= high:
                out.append(f"{who}: {field} {row[field]:.2f} outside scripted [{low}, {high}]")
    if check_recording:
        has = row["recording"] is not None
        if has != scripted["recording"]:
            out.append(f"{who}: recording {row['recording']!r}, scripted {scripted['recording']}")
    return out


def scenario_problems(scenario: str, expected: dict[str, Any], rows: list[Row], check_recording: bool) -> list[str]:
    """All disagreements for a scenario, plus calls that nothing scripted."""
    scripted_calls = expected[scenario]["calls"]
    out: list[str] = []
    for scripted in scripted_calls:
        out += problems(scenario, scripted, rows, check_recording)
    if len(rows) != len(scripted_calls):
        out.append(f"{scenario}: {len(rows)} calls written, {len(scripted_calls)} scripted")
    return out
