"""The pure call tracker against every captured scenario's scripted ground truth."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Any

import pytest

from pbxbridge.ami.frames import read_trace
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.tracker import CallTracker, TrackerSettings
from tests.scenario_check import (
    scenario_names,
    scenario_problems,
    trace_names,
    voicemail_messages,
)

# Every scripted scenario, read from expected.json: a new capture is tested the day it arrives.
SCENARIOS = scenario_names()


@functools.cache
def frames_of(path: Path) -> list[dict[str, str]]:
    return read_trace(path)[1]


def track(path: Path, tracker: CallTracker | None = None) -> list[FinishedCall]:
    tracker = tracker or CallTracker()
    frames = frames_of(path)
    out: list[FinishedCall] = []
    # received_at is deliberately useless: every captured event carries Timestamp.
    for frame in frames:
        out += tracker.feed(frame, 0.0)
    return out


def as_row(call: FinishedCall) -> dict[str, Any]:
    return {
        "direction": call.direction.value,
        "status": call.status.value,
        "client_number": call.client_number,
        "did": call.did,
        "dialed": call.dialed,
        "manager": call.manager,
        "final_manager": call.final_manager,
        "rang": list(call.rang),
        "queues": list(call.queues),
        "transferred_to": list(call.transferred_to),
        "callee": call.callee,
        "started_at": call.started_at,
        "ended_at": call.ended_at,
        "wait_s": call.wait_s,
        "talk_s": call.talk_s,
        # Whose side an unanswered call out stopped on: compared where the call says it.
        **({"failure_reason": _text(call.failure_reason)} if hasattr(call, "failure_reason") else {}),
        "voicemail": getattr(call, "voicemail", False),
    }


def _text(value: object | None) -> str | None:
    return None if value is None else str(value)


def test_every_scenario_has_a_test(shared_dir: Path, expected: dict[str, Any]) -> None:
    # The scenarios tested are those of expected.json; a captured stream without a script
    # (or a script without its stream) would go untested.
    assert trace_names(shared_dir) == sorted(expected)


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_scenario_matches_script(scenario: str, shared_dir: Path, expected: dict[str, Any]) -> None:
    calls = track(shared_dir / f"{scenario}.ami")
    rows = [as_row(c) for c in calls]
    assert scenario_problems(scenario, expected, rows, check_recording=False, messages=voicemail_messages(shared_dir)) == []


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_every_call_has_its_mixmonitor_files(scenario: str, shared_dir: Path) -> None:
    # Every lab call ran MixMonitor: the file Asterisk named on the call's first leg is on the
    # call, first. Every other file named (a consultation's own, in an attended transfer) is on
    # one call too, and no file is on two.
    named: dict[str, list[str]] = {}
    for frame in frames_of(shared_dir / f"{scenario}.ami"):
        if frame.get("Event") == "VarSet" and frame.get("Variable") == "MIXMONITOR_FILENAME":
            files = named.setdefault(frame["Linkedid"], [])
            if frame["Value"] not in files:
                files.append(frame["Value"])
    calls = track(shared_dir / f"{scenario}.ami")
    for call in calls:
        assert list(call.recording_files[:1]) == named[call.linkedid][:1], call.linkedid
    on_calls = [f for call in calls for f in call.recording_files]
    assert sorted(on_calls) == sorted(f for files in named.values() for f in files)


def test_no_call_left_open_and_none_twice(shared_dir: Path) -> None:
    tracker = CallTracker()
    seen: list[str] = []
    for scenario in SCENARIOS:
        seen += [c.linkedid for c in track(shared_dir / f"{scenario}.ami", tracker)]
    assert tracker.active_linkedids() == set()
    assert len(seen) == len(set(seen))


def test_replaying_a_trace_again_finishes_nothing_twice(shared_dir: Path) -> None:
    # The same stream heard twice (a replayed capture) must not make a second call.
    tracker = CallTracker()
    first = track(shared_dir / "02-inbound-second-agent.ami", tracker)
    again = track(shared_dir / "02-inbound-second-agent.ami", tracker)
    assert len(first) == 1 and again == []


def test_truncated_stream_leaves_call_open_until_reconciled(shared_dir: Path) -> None:
    _, frames = read_trace(shared_dir / "01-inbound-answered.ami")
    events = [f for f in frames if "Event" in f]
    last_hangup = max(i for i, f in enumerate(events) if f["Event"] == "Hangup")
    tracker = CallTracker()
    finished = []
    for frame in events[: last_hangup - 5]:
        finished += tracker.feed(frame, 0.0)
    assert finished == []
    (linkedid,) = tracker.active_linkedids()
    # Asterisk, asked after a reconnect, no longer has the call: it is closed, marked so.
    closed = tracker.reconcile(set(), now=2e9)
    assert [c.linkedid for c in closed] == [linkedid]
    assert closed[0].closed_by.value == "reconcile"
    assert closed[0].status.value == "answered" and closed[0].manager == "203"
    assert closed[0].ended_at < 2e9


def test_events_without_timestamp_use_receive_time(shared_dir: Path) -> None:
    _, frames = read_trace(shared_dir / "08-outbound-busy.ami")
    tracker = CallTracker()
    calls = []
    for i, frame in enumerate(frames):
        stripped = {k: v for k, v in frame.items() if k != "Timestamp"}
        calls += tracker.feed(stripped, 1000.0 + i)
    (call,) = calls
    assert call.status.value == "busy"
    assert 1000.0 <= call.started_at <= call.ended_at <= 1000.0 + len(frames)


def test_custom_inbound_context(shared_dir: Path) -> None:
    # A PBX whose trunks land elsewhere than FreePBX's from-trunk: nothing is inbound
    # by context any more, yet a trunk caller is still not mistaken for a manager.
    settings = TrackerSettings(inbound_contexts=("from-carrier",))
    calls = track(shared_dir / "pjsip-01-inbound-ringall.ami", CallTracker(settings))
    assert [c.direction.value for c in calls] == ["inbound"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_saved_state_survives_a_restart(scenario: str, shared_dir: Path) -> None:
    # A daemon killed mid-trace takes back its open calls from their saved
    # snapshots and finishes them exactly as if it had never stopped.
    frames = frames_of(shared_dir / f"{scenario}.ami")
    whole = {c.linkedid: c for c in track(shared_dir / f"{scenario}.ami")}
    for cut in range(0, len(frames), max(1, len(frames) // 7)):
        before = CallTracker()
        finished = []
        for frame in frames[:cut]:
            finished += before.feed(frame, 0.0)
        saved = [json.loads(json.dumps(before.snapshot(lid))) for lid in before.take_dirty() if before.snapshot(lid)]
        after = CallTracker()
        for state in saved:
            after.restore(state)
        assert after.active_linkedids() == before.active_linkedids()
        for frame in frames[cut:]:
            finished += after.feed(frame, 0.0)
        assert {c.linkedid: c for c in finished} == whole, f"cut at frame {cut}"
        assert len(finished) == len(whole)


def test_finished_calls_are_reported_dirty_so_their_snapshot_goes(shared_dir: Path) -> None:
    tracker = CallTracker()
    calls = track(shared_dir / "08-outbound-busy.ami", tracker)
    (call,) = calls
    assert call.linkedid in tracker.take_dirty()
    assert tracker.snapshot(call.linkedid) is None
    assert tracker.take_dirty() == set()
