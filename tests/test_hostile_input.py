"""Malformed, oversized and binary AMI input: each case checks what the user is left with.

Every real event still arrives in order and the real call is journaled as scripted; what was thrown
away is counted (the listener's warnings and statistics say how much); memory stays bounded; the
connection to the PBX is never dropped over bad input.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import io
import json
import os
import re
from collections.abc import AsyncIterator
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbxbridge.ami.frames import MAX_FRAME_BYTES, Frame, FrameDecoder, encode_frame, read_trace
from pbxbridge.ami.listener import AmiListener
from pbxbridge.calls import tracker as tracker_module
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.tracker import CallTracker
from pbxbridge.cli.main import main
from tests.scenario_check import UNSCRIPTED, journal_problems

SHARED = Path(os.environ.get("PBXBRIDGE_SHARED") or Path(__file__).resolve().parents[2] / "shared" / "ami-traces")
SCENARIO = "02-inbound-second-agent"
LINKEDID = "1795723484.8"
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
    return (SHARED / f"{SCENARIO}.ami").read_bytes()


@functools.cache
def trace_events() -> list[dict[str, str]]:
    return [f for f in read_trace(SHARED / f"{SCENARIO}.ami")[1] if "Event" in f]


def without_banner() -> bytes:
    """The capture's frames without its banner line (a banner amid frames is one more bad line)."""
    return trace_bytes().split(b"\r\n", 1)[1]


@functools.cache
def scripted_call() -> dict[str, Any]:
    """The scenario's one call as expected.json scripts it."""
    (call,) = json.loads((SHARED / "expected.json").read_text(encoding="utf-8"))[SCENARIO]["calls"]
    return dict(call)


def assert_as_scripted(call: FinishedCall) -> None:
    """The real call came through whole: who answered, who rang, how it ended, how long it took."""
    scripted = scripted_call()
    assert call.status.value == scripted["status"]
    assert call.manager == scripted["answered_by"]
    assert list(call.rang) == scripted["rang"]
    assert scripted["wait_s"][0] <= call.wait_s <= scripted["wait_s"][1]
    assert scripted["talk_s"][0] <= call.talk_s <= scripted["talk_s"][1]


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
    decoder, frames = decode(huge + without_banner(), chunk)
    # Counted once, however many reads it took, with the reason the log gives; nothing else is bad.
    assert decoder.stats.oversized_frames == 1
    assert decoder.stats.errors == [f"frame over {MAX_FRAME_BYTES} bytes dropped"]
    assert decoder.stats.malformed_lines == 0
    assert not any(f.get("Event") == "Flood" for f in frames)
    # Every real event after it, whole and in order.
    assert [f for f in frames if "Event" in f] == trace_events()


# Lines with no "Key: Value" shape at all: no colon, no line break inside.
junk_line = st.text(alphabet=st.characters(exclude_characters=":\r\n", exclude_categories=["Cs"]), min_size=1, max_size=200)


@settings(max_examples=100, deadline=None)
@given(lines=st.lists(junk_line, min_size=1, max_size=50), chunk=st.integers(min_value=50, max_value=4096))
def test_lines_that_are_not_key_value_are_counted_and_skipped(lines: list[str], chunk: int) -> None:
    junk = "\r\n".join(lines).encode("utf-8") + b"\r\n\r\n"
    decoder, frames = decode(junk + without_banner(), chunk)
    # Each bad line is counted (the listener logs the count), none becomes a header ...
    assert decoder.stats.malformed_lines == len(lines)
    # ... and the stream goes on: every real event arrives whole, in order, and nothing else.
    assert [f for f in frames if "Event" in f] == trace_events()


hostile_event = st.fixed_dictionaries(
    {"Event": st.sampled_from(EVENTS)},
    optional={
        k: st.one_of(st.text(max_size=40), st.sampled_from(["1.1", "1.2", "Ringing", "ANSWER", "Up", "nan", "inf", "-1e309"]))
        for k in KEYS
        if k != "Event"
    },
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
    (real_call,) = [c for c in finished if c.linkedid == LINKEDID]
    assert_as_scripted(real_call)


def test_open_calls_are_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
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
    # The 100 newest stay open; the 900 quietest were closed in order, each marked as evicted.
    assert sorted(tracker.active_linkedids()) == sorted(f"9.{i}" for i in range(900, 1000))
    assert [c.linkedid for c in closed] == [f"9.{i}" for i in range(900)]
    assert {c.closed_by.value for c in closed} == {"evicted"}


# Bad input a broken or hostile peer might send, each piece counted where the listener says it counts it.
BINARY_JUNK = b"\x00\xff\xfe\x80 junk \x1b[31m\r\n\r\n"  # one line with no "Key: Value": a malformed line
NEITHER = b"Foo: bar\r\nBaz: qux\r\n\r\n"  # a frame that is neither an event nor a response
FLOOD = b"Event: Flood\r\nJunk: " + b"x" * (MAX_FRAME_BYTES + 1) + b"\r\n\r\n"  # an oversized frame
HALF_BAD = b"Event: Junk\r\nthis line has no colon\r\n\r\n"  # an event carrying a malformed line
BOOM = b"Event: Boom\r\n\r\n"  # an event the consumer fails on
HOSTILE = BINARY_JUNK + NEITHER + FLOOD + HALF_BAD + BOOM


class HostilePbx:
    """An AMI server that logs the client in as Asterisk does, then sends ``payload`` and keeps the line open."""

    def __init__(self, payload: bytes) -> None:
        self.payload = payload
        self.done = asyncio.Event()
        self.connections = 0
        self.server: asyncio.Server | None = None

    @property
    def port(self) -> int:
        assert self.server is not None
        return int(self.server.sockets[0].getsockname()[1])

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)

    async def stop(self) -> None:
        self.done.set()
        assert self.server is not None
        self.server.close()
        await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")
        self._answer(await reader.readuntil(b"\r\n\r\n"), writer, b"Message: Authentication accepted\r\n")
        writer.write(self.payload)
        await writer.drain()
        # Then answer whatever else the client asks (its Logoff), until the test is over.
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while not self.done.is_set():
                self._answer(await reader.readuntil(b"\r\n\r\n"), writer)
                await writer.drain()
        writer.close()

    @staticmethod
    def _answer(action: bytes, writer: asyncio.StreamWriter, extra: bytes = b"") -> None:
        found = re.search(rb"(?im)^actionid: *(.*?)\r$", action)
        action_id = found[1] if found else b""
        writer.write(b"Response: Success\r\nActionID: " + action_id + b"\r\n" + extra + b"\r\n")


@pytest.fixture
async def hostile_pbx() -> AsyncIterator[HostilePbx]:
    """The scenario's events with the hostile pieces before, amid and near the end of them."""
    events = b"".join(encode_frame(e) for e in trace_events())
    middle = len(trace_events()) // 2
    first_half = b"".join(encode_frame(e) for e in trace_events()[:middle])
    assert events.startswith(first_half)
    pbx = HostilePbx(HOSTILE + first_half + HOSTILE + events[len(first_half):])
    await pbx.start()
    yield pbx
    await pbx.stop()


async def test_listener_counts_bad_input_and_the_call_still_comes_through(hostile_pbx: HostilePbx) -> None:
    tracker = CallTracker()
    finished: list[FinishedCall] = []
    call_done = asyncio.Event()

    def on_event(frame: Frame, received_at: float) -> None:
        if frame["Event"] == "Boom":
            raise RuntimeError("a consumer's bug")
        finished.extend(tracker.feed(frame, received_at))
        if any(c.linkedid == LINKEDID for c in finished):
            call_done.set()

    listener = AmiListener("127.0.0.1", hostile_pbx.port, "u", "s", on_event, ping_interval_s=3600)
    await listener.start()
    try:
        await asyncio.wait_for(call_done.wait(), 30)
        # One session from first byte to last: bad input never cost the connection.
        assert (hostile_pbx.connections, listener.stats.logins, listener.stats.disconnects) == (1, 1, 0)
    finally:
        await listener.stop()

    (call,) = [c for c in finished if c.linkedid == LINKEDID]
    assert_as_scripted(call)
    # Each piece of bad input (sent twice) counted where the warnings report it.
    assert listener.decode_stats.malformed_lines == 2 * 2  # BINARY_JUNK and HALF_BAD's line
    assert listener.decode_stats.oversized_frames == 2
    assert listener.stats.malformed_frames == 2
    assert listener.stats.callback_errors == 2
    # Every real event, plus the two Junk and two Boom events, reached the consumer; no Flood did.
    assert listener.stats.events == len(trace_events()) + 4


def _journal_rows(db_url: str) -> list[dict[str, Any]]:
    out = io.StringIO()
    with redirect_stdout(out):
        assert main(["calls", "--json", "--db", db_url]) == 0
    return [json.loads(line) for line in out.getvalue().splitlines()]


def test_corrupted_capture_replays_into_a_complete_journal(
    db_url: str, shared_dir: Path, expected: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    scenarios = ["02-inbound-second-agent", "03-inbound-abandoned", "11-missed-then-callback"]
    corrupted: list[str] = []
    for scenario in scenarios:
        # The capture with bad input between every two frames (and a huge frame at its head).
        frames = (shared_dir / f"{scenario}.ami").read_bytes().split(b"\r\n\r\n")
        bad = BINARY_JUNK + NEITHER + HALF_BAD
        path = tmp_path / f"{scenario}.ami"
        path.write_bytes(b"Event: Flood\r\nJunk: " + b"x" * 2**21 + b"\r\n\r\n" + (b"\r\n\r\n" + bad).join(frames))
        corrupted.append(str(path))

    assert main(["replay", *corrupted, "--db", db_url]) == 0
    total = sum(len(expected[s]["calls"]) for s in scenarios)
    assert f"replayed 3 trace(s): {total} call(s), {total} new, 0 already in the journal" in capsys.readouterr().out
    # Nothing lost and nothing made up: the journal holds exactly the scripted calls.
    rows = _journal_rows(db_url)
    problems = journal_problems(expected, rows, {s: shared_dir / f"{s}.ami" for s in scenarios}, check_recording=False)
    assert problems == {UNSCRIPTED: [], **{s: [] for s in scenarios}}
