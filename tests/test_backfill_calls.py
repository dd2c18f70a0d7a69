"""Calls rebuilt from FreePBX's cel and cdr tables are the calls the AMI path makes of the same capture.

The CEL events and CDRs of every shared capture fill one asteriskcdrdb on MariaDB and one on
PostgreSQL (see tests/fixtures_cel.py); `pbxbridge.backfill` reads them back in small pages
through the same tracker the live path uses, and every call is compared field by field with
`replay_trace` of its capture (the AMI path as tests/test_truth_all.py runs it). Fields CEL cannot carry are named in
``CEL_CANNOT`` with the reason, and the test holds them to exactly that difference.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from pbxbridge.backfill.importer import import_calls
from pbxbridge.backfill.source import CdrSource
from pbxbridge.calls.following import tracker_settings
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.replay import replay_trace
from pbxbridge.config import PbxConfig
from tests.fixtures_cel import SOURCES, cdr_database, load_captures
from tests.scenario_check import trace_names

# The lab's Asterisk ran on UTC: its CEL eventtime and CDR calldate are UTC wall clock.
LAB_ZONE = ZoneInfo("UTC")
TIMES = ("started_at", "answered_at", "ended_at")
# eventtime is kept to the second (FreePBX's datetime column): times agree within this.
TIME_SLACK_S = 1.5
FIELDS = (
    "direction", "status", "client_number", "manager", "final_manager", "callee", "did", "rang",
    "queues", "transferred_to", "recording_files", "originated", "voicemail", "failure_reason",
    "closed_by", "dialed", "voicemail_file",
)
# (scenario, field) -> why the CEL-rebuilt call cannot say what the AMI stream said.
CEL_CANNOT: dict[tuple[str, str], str] = {
    ("09-outbound-8-prefix", "dialed"): (
        "the manager dialled 8916...; the dialplan rewrote it to 7916... before the first CEL row"
        " of the call was written (CEL has no Newexten), so CEL knows the number as sent"
    ),
    ("pjsip-02-click-to-call", "dialed"): (
        "the click-to-call was for 8926...; the dialplan rewrote it before any CEL row named it"
    ),
    ("17-voicemail", "voicemail_file"): (
        "app_voicemail's VM_MESSAGEFILE is a channel variable: CEL and CDR do not carry it"
        " (the message is still found in the spool by the recordings domain's voicemail search)"
    ),
}


def _compare(scenario: str, ami: FinishedCall, cel: FinishedCall) -> list[str]:
    problems: list[str] = []
    for name in FIELDS:
        a, c = getattr(ami, name), getattr(cel, name)
        if (scenario, name) in CEL_CANNOT:
            # Documented: it must differ exactly as said (CEL knows less), never silently.
            if a == c:
                problems.append(f"{name}: documented as unknown to CEL but equal ({a!r}); update CEL_CANNOT")
            continue
        if a != c:
            problems.append(f"{name}: AMI {a!r}, CEL {c!r}")
    for name in TIMES:
        a, c = getattr(ami, name), getattr(cel, name)
        if (a is None) != (c is None) or (a is not None and c is not None and abs(a - c) > TIME_SLACK_S):
            problems.append(f"{name}: AMI {a!r}, CEL {c!r}")
    return problems


async def _rebuilt(url: str, settings: Any) -> list[FinishedCall]:
    source = CdrSource(url, LAB_ZONE)
    try:
        await source.check()
        calls: list[FinishedCall] = []
        async for batch in import_calls(source, settings, 0.0, 4e9, page_rows=40):
            calls.extend(batch.calls)
        return calls
    finally:
        await source.close()


@pytest.fixture(scope="module", params=SOURCES)
def rebuilt(request: pytest.FixtureRequest, shared_dir: Path) -> dict[str, FinishedCall]:
    """Every capture's calls rebuilt from one asteriskcdrdb holding them all (as a PBX's day would), by linkedid."""
    settings = tracker_settings(PbxConfig())

    async def run() -> list[FinishedCall]:
        async with cdr_database(str(request.param)) as url:
            await load_captures(url, [shared_dir / f"{name}.ami" for name in trace_names(shared_dir)])
            return await _rebuilt(url, settings)

    calls = asyncio.run(run())
    by_id = {c.linkedid: c for c in calls}
    assert len(by_id) == len(calls), "each call once"
    return by_id


@pytest.mark.parametrize("scenario", trace_names())
def test_calls_from_cel_are_the_calls_from_ami(
    rebuilt: dict[str, FinishedCall], shared_dir: Path, scenario: str
) -> None:
    settings = tracker_settings(PbxConfig())
    ami = {c.linkedid: c for c in replay_trace(shared_dir / f"{scenario}.ami", settings)}
    cel = {lid: rebuilt[lid] for lid in ami if lid in rebuilt}
    assert sorted(cel) == sorted(ami), "the same calls"
    problems = {lid: p for lid in ami if (p := _compare(scenario, ami[lid], cel[lid]))}
    assert problems == {}


def test_no_call_beyond_the_captures(rebuilt: dict[str, FinishedCall], shared_dir: Path) -> None:
    settings = tracker_settings(PbxConfig())
    ami = {c.linkedid for p in sorted(shared_dir.glob("*.ami")) for c in replay_trace(p, settings)}
    assert set(rebuilt) == ami
