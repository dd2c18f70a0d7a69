"""The scripted ground truth of the shared captures, and journal rows compared with it.

Which scenarios there are is read from expected.json and the ``*.ami`` files present, never
listed by hand, so that a capture is tested the day it arrives. ``journal_problems`` is the one
comparison every path into the journal (replay, the daemon, a tracker alone) is held to.
"""

from __future__ import annotations

import configparser
import functools
import json
import os
import re
from collections.abc import Mapping
from datetime import datetime
from pathlib import Path
from typing import Any

from pbxbridge.ami.frames import read_trace

Row = dict[str, Any]
REPO_ROOT = Path(__file__).resolve().parent.parent

# Why an outbound call the client never answered did not become a conversation (docs/CALLS.md).
CLIENT_SIDE_FAILURE = {"busy": "client_busy", "no_answer": "client_no_answer"}
MANAGER_SIDE_FAILURES = frozenset({"manager_no_answer", "manager_rejected", "not_placed"})


# ------------------------------------------------------------ where the truth is


def shared_path() -> Path:
    """The shared captures, found as the conftest's ``shared_dir`` fixture finds them."""
    override = os.environ.get("PBXBRIDGE_SHARED")
    return Path(override) if override else REPO_ROOT.parent / "shared" / "ami-traces"


@functools.cache
def load_expected(shared: Path | None = None) -> dict[str, Any]:
    """expected.json: ``{scenario: {started, calls}}``."""
    path = (shared or shared_path()) / "expected.json"
    return json.loads(path.read_text(encoding="utf-8"))


def scenario_names(shared: Path | None = None) -> list[str]:
    """Every scenario of expected.json, in its order (for ``parametrize`` at collection)."""
    return list(load_expected(shared))


def trace_names(shared: Path | None = None) -> list[str]:
    """Every captured stream present, by scenario name (the file name without ``.ami``)."""
    return sorted(p.stem for p in (shared or shared_path()).glob("*.ami"))


def scenario_day_order(expected: Mapping[str, Any]) -> list[str]:
    """Scenarios in the order they ran."""
    return sorted(expected, key=lambda name: expected[name]["started"])


@functools.cache
def trace_linkedids(path: Path) -> frozenset[str]:
    """Every linkedid a captured stream mentions: the calls it may hold."""
    _banner, frames = read_trace(path)
    return frozenset(f["Linkedid"] for f in frames if f.get("Linkedid"))


@functools.cache
def _voicemail_messages(shared: Path) -> tuple[tuple[str, str, str], ...]:
    expected = load_expected(shared)
    root = shared / "voicemail"
    by_start = scenario_day_order(expected)
    out: list[tuple[str, str, str]] = []
    # The spool's layout: <context>/<mailbox>/<folder>/msgNNNN.txt beside its sound file.
    for info in sorted(root.glob("*/*/*/msg*.txt")):
        parser = configparser.ConfigParser(interpolation=None, strict=False)
        parser.read_string(info.read_text(encoding="utf-8"))
        message = parser["message"]
        caller = digits(message["callerid"])
        left_at = float(message["origtime"])
        ran = [name for name in by_start if expected[name]["started"] <= left_at]
        scenario = ran[-1] if ran else None
        calls = expected[scenario]["calls"] if scenario else []
        assert any(c["direction"] == "inbound" and c.get("client") == caller for c in calls), (
            f"{info}: left by {caller} at {left_at}, no scripted inbound call of {scenario} is theirs"
        )
        sound = info.with_suffix(".wav")
        assert sound.is_file(), sound
        out.append((str(scenario), str(caller), sound.relative_to(root).as_posix()))
    return tuple(out)


def voicemail_messages(shared: Path | None = None) -> dict[tuple[str, str], str]:
    """(scenario, client) -> the message the caller left, relative to the voicemail root.

    Read from the lab's voicemail spool (``voicemail/`` in the shared captures): each message's
    information file names its caller and the time it was left, which ties it to the scripted
    inbound call from that number in the scenario running then.
    """
    return {(s, c): path for s, c, path in _voicemail_messages(shared or shared_path())}


# ------------------------------------------------------------- the comparison


def digits(number: str | None) -> str | None:
    return re.sub(r"\D", "", number) if number else None


def _seconds(value: float | str) -> float:
    """A row's time: Unix seconds (a tracker's call) or ISO 8601 (the journal)."""
    if isinstance(value, str):
        return datetime.fromisoformat(value).timestamp()
    return float(value)


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


def problems(
    scenario: str,
    scripted: Row,
    rows: list[Row],
    check_recording: bool,
    messages: Mapping[tuple[str, str], str] | None = None,
) -> list[str]:
    """Everything in which the rows disagree with one scripted call (empty when they agree).

    ``messages`` (from ``voicemail_messages``) turns on the voicemail check: the call whose
    caller left a message is flagged ``voicemail`` and, with ``check_recording``, carries that
    message; no other call is flagged (the captures have no caller who reached voicemail and
    left nothing).
    """
    found = match_rows(scripted, rows)
    who = f"{scenario}: {scripted['direction']} {scripted.get('client') or scripted.get('from_ext')}"
    if len(found) != 1:
        return [f"{who}: present {len(found)} times, expected exactly once"]
    row = found[0]
    out: list[str] = []

    def same(field: str, want: Any, got: Any) -> None:
        if want != got:
            out.append(f"{who}: {field} is {got!r}, scripted {want!r}")

    def within(field: str, value: float | None, low: float, high: float) -> None:
        if value is None or not low <= value <= high:
            shown = "none" if value is None else f"{value:.2f}"
            out.append(f"{who}: {field} {shown} outside scripted [{low}, {high}]")

    status = scripted["status"]
    same("status", status, row["status"])
    if "did" in scripted:
        same("did", scripted["did"], digits(row["did"]))
    if "answered_by" in scripted:
        same("manager", scripted["answered_by"], row["manager"])
    if "placed_by" in scripted:
        same("manager", scripted["placed_by"], row["manager"])
    if "from_ext" in scripted:
        same("manager", scripted["from_ext"], row["manager"])
    if "to_ext" in scripted and "callee" in row:
        same("callee", scripted["to_ext"], row["callee"])
    if "final_agent" in scripted:
        same("final_manager", scripted["final_agent"], row["final_manager"])
    elif "answered_by" in scripted or "placed_by" in scripted:
        same("final_manager", scripted.get("answered_by", scripted.get("placed_by")), row["final_manager"])
    # No transfer scripted is no transfer (an attended transfer whose consultation was hung up).
    same("transferred_to", [scripted["transferred_to"]] if "transferred_to" in scripted else [], list(row["transferred_to"]))
    if "rang" in scripted:
        same("rang", scripted["rang"], list(row["rang"]))
    if "queues" in scripted:
        same("queues", scripted["queues"], list(row["queues"]))
    if "dialed" in scripted and "dialed" in row:
        same("dialed", scripted["dialed"], row["dialed"])
    for field in ("wait_s", "talk_s"):
        if field in scripted:
            within(field, row[field], *scripted[field])
    if "failure_reason" in row:
        if scripted["direction"] == "inbound" or status == "answered":
            same("failure_reason", None, row["failure_reason"])
        elif scripted["direction"] == "outbound" and status in CLIENT_SIDE_FAILURE:
            same("failure_reason", CLIENT_SIDE_FAILURE[status], row["failure_reason"])
        elif scripted["direction"] == "outbound" and status == "failed" and row["failure_reason"] not in MANAGER_SIDE_FAILURES:
            out.append(f"{who}: failure_reason is {row['failure_reason']!r}, not one of {sorted(MANAGER_SIDE_FAILURES)}")
    if "callback_after_s" in scripted and "ended_at" in row:
        ended = _seconds(row["ended_at"])
        callbacks = sorted(
            _seconds(r["started_at"]) - ended
            for r in rows
            if r["direction"] == "outbound" and digits(r["client_number"]) == scripted["client"]
            and _seconds(r["started_at"]) >= ended
        )
        within("callback_after_s", callbacks[0] if callbacks else None, *scripted["callback_after_s"])
    if check_recording:
        has = row["recording"] is not None
        if has != scripted["recording"]:
            out.append(f"{who}: recording {row['recording']!r}, scripted {scripted['recording']}")
    if messages is not None:
        message = messages.get((scenario, scripted.get("client") or ""))
        same("voicemail", message is not None, bool(row.get("voicemail")))
        if check_recording:
            same("voicemail_message", message, row.get("voicemail_message"))
    return out


def scenario_problems(
    scenario: str,
    expected: dict[str, Any],
    rows: list[Row],
    check_recording: bool,
    messages: Mapping[tuple[str, str], str] | None = None,
) -> list[str]:
    """All disagreements for a scenario, plus calls that nothing scripted."""
    scripted_calls = expected[scenario]["calls"]
    out: list[str] = []
    for scripted in scripted_calls:
        out += problems(scenario, scripted, rows, check_recording, messages)
    if len(rows) != len(scripted_calls):
        out.append(f"{scenario}: {len(rows)} calls written, {len(scripted_calls)} scripted")
    return out


UNSCRIPTED = ""


def journal_problems(
    expected: dict[str, Any],
    rows: list[Row],
    traces: Mapping[str, Path],
    *,
    check_recording: bool = True,
    messages: Mapping[tuple[str, str], str] | None = None,
) -> dict[str, list[str]]:
    """Every disagreement of a journal that holds the calls of ``traces`` (scenario -> capture).

    Rows go to the capture whose stream holds their linkedid and are held to that scenario's
    script, by scenario; a row of no capture (a call nothing scripted) is a problem under
    ``UNSCRIPTED``, as is a linkedid two captures share (then the split proves nothing).
    """
    out: dict[str, list[str]] = {UNSCRIPTED: []}
    owner: dict[str, str] = {}
    for scenario, path in traces.items():
        for linkedid in trace_linkedids(path):
            if linkedid in owner:
                out[UNSCRIPTED].append(f"linkedid {linkedid} is in both {owner[linkedid]} and {scenario}")
            owner[linkedid] = scenario
    by_scenario: dict[str, list[Row]] = {scenario: [] for scenario in traces}
    for row in rows:
        found = owner.get(row["linkedid"])
        if found is None:
            out[UNSCRIPTED].append(f"call {row['linkedid']} ({row['direction']} {row['status']}) is in no capture")
        else:
            by_scenario[found].append(row)
    for scenario, mine in by_scenario.items():
        if scenario not in expected:
            out[scenario] = [f"{scenario}: captured, but expected.json has no script for it"]
        else:
            out[scenario] = scenario_problems(scenario, expected, mine, check_recording, messages)
    return out
