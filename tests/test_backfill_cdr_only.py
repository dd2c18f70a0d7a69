"""A PBX with no CEL: calls from its CDR rows alone, against the calls the AMI path makes.

The same scratch cdr tables as tests/test_backfill_calls.py (MariaDB and PostgreSQL), read
with ``CdrSource.cdr_pages`` and grouped by linkedid. CDR says less than CEL: what it cannot
say is listed in ``CDR_CANNOT`` per scenario and field, with the reason, and held to exactly
that difference (see pbxbridge/backfill/cdr_calls.py for the limits).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pbxbridge.backfill.cdr_calls import cdr_calls
from pbxbridge.backfill.rows import CdrRow
from pbxbridge.backfill.source import CdrSource
from pbxbridge.calls.following import tracker_settings
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.replay import replay_trace
from pbxbridge.config import PbxConfig
from tests.fixtures_cel import SOURCES, cdr_database, load_captures
from tests.scenario_check import trace_names
from tests.test_backfill_calls import LAB_ZONE, TIME_SLACK_S, TIMES

FIELDS = (
    "direction", "status", "client_number", "manager", "final_manager", "callee", "did", "rang",
    "queues", "transferred_to", "recording_files", "voicemail", "failure_reason", "dialed", "originated",
)
_CLICK = "an Originate leaves no trace in CDR: a click-to-call is the manager's own call out"
_DIALED = "the dialplan rewrote 8... to 7... before CDR's dst was written"
CDR_CANNOT: dict[tuple[str, str], str] = {
    **{(s, "originated"): _CLICK for s in (
        "06-outbound-answered", "07-outbound-noanswer", "08-outbound-busy", "09-outbound-8-prefix",
        "10-internal", "11-missed-then-callback", "pjsip-02-click-to-call", "pjsip-03-click-to-call-busy",
    )},
    ("09-outbound-8-prefix", "dialed"): _DIALED,
    ("pjsip-02-click-to-call", "dialed"): _DIALED,
    ("pjsip-02-click-to-call", "answered_at"): (
        "the trunk leg writes no CDR of its own: the answer known is the manager's handset's, not the client's"
    ),
    ("12-blind-transfer", "did"): "the transfer rewrote the caller's CDR (dst 202 in from-internal): the DID is gone",
    ("12-blind-transfer", "transferred_to"): "a blind transfer is a new CDR segment, not told apart from a second dial",
    ("14-attended-transfer", "transferred_to"): "CDR has no transfer: the consulted colleague is a dialled handset",
    ("14-attended-transfer", "rang"): "the consultation's ring is a dial like any other in CDR",
}


def _problems(scenario: str, ami: FinishedCall, cdr: FinishedCall) -> list[str]:
    problems = []
    for name in FIELDS + TIMES:
        a, c = getattr(ami, name), getattr(cdr, name)
        if name in TIMES:
            same = (a is None) == (c is None) and (a is None or abs(a - c) <= TIME_SLACK_S)
        else:
            same = a == c
        if (scenario, name) not in CDR_CANNOT and not same:
            problems.append(f"{name}: AMI {a!r}, CDR {c!r}")
    return problems


@pytest.fixture(scope="module", params=SOURCES)
def from_cdr(request: pytest.FixtureRequest, shared_dir: Path) -> dict[str, list[FinishedCall]]:
    settings = tracker_settings(PbxConfig())

    async def run() -> dict[str, list[FinishedCall]]:
        out: dict[str, list[FinishedCall]] = {}
        async with cdr_database(str(request.param)) as url:
            for name in trace_names(shared_dir):
                await load_captures(url, [shared_dir / f"{name}.ami"])
            source = CdrSource(url, LAB_ZONE)
            try:
                rows: list[CdrRow] = []
                async for page in source.cdr_pages(0.0, 4e9, limit=50):
                    rows.extend(page)
            finally:
                await source.close()
        calls = {c.linkedid: c for c in cdr_calls(rows, settings, LAB_ZONE)}
        for name in trace_names(shared_dir):
            ami = replay_trace(shared_dir / f"{name}.ami", settings)
            out[name] = [calls[c.linkedid] for c in ami if c.linkedid in calls]
        assert len(calls) == sum(len(v) for v in out.values()), "no call beyond the captures' own"
        return out

    return asyncio.run(run())


@pytest.mark.parametrize("scenario", trace_names())
def test_calls_from_cdr_alone_within_cdrs_limits(
    from_cdr: dict[str, list[FinishedCall]], shared_dir: Path, scenario: str
) -> None:
    ami = {c.linkedid: c for c in replay_trace(shared_dir / f"{scenario}.ami", tracker_settings(PbxConfig()))}
    cdr = {c.linkedid: c for c in from_cdr[scenario]}
    assert sorted(cdr) == sorted(ami)
    assert {lid: p for lid in ami if (p := _problems(scenario, ami[lid], cdr[lid]))} == {}
    # What is documented as beyond CDR must be so on some call of the scenario (else the list is stale).
    for (name, field), why in CDR_CANNOT.items():
        if name == scenario:
            assert any(getattr(ami[lid], field) != getattr(cdr[lid], field) for lid in ami), (field, why)
