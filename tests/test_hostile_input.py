"""Malformed, oversized and binary AMI input: nothing escapes, memory stays bounded,
good frames after bad ones still count."""

from __future__ import annotations

import functools
import os
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbxbridge.ami.frames import MAX_FRAME_BYTES, FrameDecoder, read_trace
from pbxbridge.calls import tracker as tracker_module
from pbxbridge.calls.tracker import CallTracker

SHARED = Path(os.environ.get("PBXBRIDGE_SHARED") or Path(__file__).resolve().parents[2] / "shared" / "ami-traces")
KEYS = [
    "Event", "Channel", "Uniqueid", "Linkedid", "DestChannel", "DestUniqueid", "DestLinkedid",
    "Context", "Exten", "CallerIDNum", "ChannelStateDesc", "DialStatus", "Queue", "BridgeUniqueid",
    "Timestamp", "Variable", "Value", "Extension", "Result", "TransfereeUniqueid", "Interface",
]
EVENTS = [
    "Newchannel", "Newstate", "DialBegin", "DialEnd", "DialState", "Hangup", "HangupRequest",
    "QueueCallerJoin", "QueueCallerAbandon", "AgentConnect", "BridgeEnter", "BridgeLeave",
    "BlindTransfer", "AttendedTransfer", "VarSet", "OriginateResponse", "Rename", "Bogus",
]


@functools.cache
def trace_bytes() -> bytes:
    return (SHARED / "02-inbound-second-agent.ami").read_bytes()


@functools.cache
def trace_events() -> list[dict[str, str]]:
    return [f for f in read_trace(SHARED / "02-inbound-second-agent.ami")[1] if "Event" in f]


def decode(data: bytes, chunk: int) -> tuple[FrameDecoder, list[dict[str, str]]]:
    decoder = FrameDecoder()
    frames: list[dict[str, str]] = []
    for i in range(0, len(data), chunk):
        frames += decoder.feed(data[i : i + chunk])
        # The decoder never holds more than one frame's worth plus what just arrived.
        assert len(decoder._buf) <= MAX_FRAME_BYTES + chunk
    return decoder, frames


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(garbage=st.binary(max_size=4096), chunk=st.integers(min_value=1, max_value=9000))
def test_garbage_then_real_stream(garbage: bytes, chunk: int) -> None:
    _, clean = decode(trace_bytes(), 65536)
    _, frames = decode(garbage + b"\r\n\r\n" + trace_bytes(), chunk)
    clean_events = [f for f in clean if "Event" in f]
    got_events = [f for f in frames if "Event" in f]
    # Every real event still arrives intact, in order, after whatever preceded it.
    assert got_events[-len(clean_events) :] == clean_events


@settings(max_examples=30, deadline=None)
@given(size=st.integers(min_value=MAX_FRAME_BYTES + 1, max_value=4 * MAX_FRAME_BYTES), chunk=st.sampled_from([512, 4096, 70000]))
def test_oversized_frame_is_dropped_and_stream_resyncs(size: int, chunk: int) -> None:
    huge = b"Event: Flood\r\nJunk: " + b"x" * size + b"\r\n\r\n"
    decoder, frames = decode(huge + trace_bytes(), chunk)
    assert decoder.stats.oversized_frames >= 1
    assert not any(f.get("Event") == "Flood" for f in frames)
    assert [f for f in frames if "Event" in f][-5:] == trace_events()[-5:]


@settings(max_examples=200, deadline=None)
@given(lines=st.lists(st.text(max_size=200), max_size=50))
def test_text_lines_never_raise(lines: list[str]) -> None:
    data = "\r\n".join(lines).encode("utf-8", "surrogatepass") + b"\r\n\r\n"
    decode(data, 97)


hostile_event = st.fixed_dictionaries(
    {"Event": st.sampled_from(EVENTS)},
    optional={k: st.one_of(st.text(max_size=40), st.sampled_from(["1.1", "1.2", "Ringing", "ANSWER", "Up", "nan", "inf", "-1e309"])) for k in KEYS if k != "Event"},
)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(junk=st.lists(hostile_event, max_size=60), at=st.integers(min_value=0, max_value=200))
def test_tracker_survives_junk_and_still_finishes_the_real_call(junk: list[dict[str, str]], at: int) -> None:
    tracker = CallTracker()
    real = trace_events()
    at = min(at, len(real))
    stream = real[:at] + junk + real[at:]
    finished = []
    for event in stream:
        finished += tracker.feed(event, 0.0)
    real_calls = [c for c in finished if c.linkedid == "1795723484.8"]
    assert len(real_calls) == 1
    assert real_calls[0].manager == "202" and real_calls[0].status.value == "answered"


def test_open_calls_are_bounded(monkeypatch) -> None:
    # A peer that opens calls and never hangs them up cannot grow memory without
    # bound; the quietest call is closed, marked, not silently lost.
    monkeypatch.setattr(tracker_module, "MAX_OPEN_CALLS", 100)
    captured = next(
        f for f in read_trace(SHARED / "pjsip-01-inbound-ringall.ami")[1] if f.get("Event") == "Newchannel"
    )
    tracker = CallTracker()
    closed = []
    for i in range(1000):
        # The captured trunk call's first channel, again and again under fresh ids.
        event = dict(captured, Uniqueid=f"9.{i}", Linkedid=f"9.{i}", Channel=f"PJSIP/trunk-{i:08x}")
        event["Timestamp"] = str(float(captured["Timestamp"]) + i)
        closed += tracker.feed(event, 0.0)
    assert len(tracker.active_linkedids()) == 100
    assert len(closed) == 900
    assert {c.closed_by.value for c in closed} == {"evicted"}
