"""Events nobody reads are skipped undecoded, and skipping them changes no call.

The captured streams are decoded with and without the daemon's filter: what
the filter lets through is exactly the unfiltered frames minus the bulk events
no part reads, and the tracker finishes the same calls from either.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from pbxbridge.ami.frames import Frame, FrameDecoder, encode_frame
from pbxbridge.ami.interest import EventInterest
from pbxbridge.ami.traces import load_trace
from pbxbridge.calls.replay import tracker_settings
from pbxbridge.calls.tracker import RECORDING_VARIABLE, TRACKER_VARIABLES, CallTracker
from pbxbridge.config import PbxConfig
from pbxbridge.routing.click_to_call import REQUEST_VARIABLE


def _traces(shared_dir: Path) -> list[Path]:
    paths = sorted(shared_dir.glob("*.ami"))
    assert len(paths) >= 10, shared_dir
    return paths


def _stream(path: Path) -> bytes:
    return b"".join(encode_frame(event) for event in load_trace(path).events)


def _decode(data: bytes, interest: EventInterest | None, read: int = 4096) -> tuple[list[Frame], FrameDecoder]:
    decoder = FrameDecoder()
    decoder.expect_banner(False)
    decoder.interest = interest
    frames: list[Frame] = []
    for start in range(0, len(data), read):
        frames += decoder.feed(data[start : start + read])
    return frames, decoder


def _daemons_interest() -> EventInterest:
    interest = EventInterest(variables=TRACKER_VARIABLES)
    interest.want_variable(REQUEST_VARIABLE)
    return interest


def _read_by_someone(frame: Frame) -> bool:
    name = frame.get("Event", "").lower()
    if name == "varset":
        return frame.get("Variable") in TRACKER_VARIABLES | {REQUEST_VARIABLE}
    return name not in {"cel", "cdr", "rtcpsent", "rtcpreceived", "dtmfbegin", "dtmfend"}


def test_the_filter_passes_every_frame_someone_reads_and_nothing_else(shared_dir: Path) -> None:
    for path in _traces(shared_dir):
        data = _stream(path)
        everything, _ = _decode(data, None)
        kept, decoder = _decode(data, _daemons_interest())
        assert kept == [f for f in everything if _read_by_someone(f)], path.name
        assert decoder.stats.ignored == len(everything) - len(kept)
        assert decoder.stats.frames == len(kept)


def test_the_shared_traces_lose_their_bulk(shared_dir: Path) -> None:
    data = b"".join(_stream(p) for p in _traces(shared_dir))
    kept, decoder = _decode(data, _daemons_interest(), read=16 * 1024)
    # Most of a FreePBX stream is VarSet, CEL and Cdr: at least a third of it is skipped.
    assert decoder.stats.ignored > (len(kept) + decoder.stats.ignored) / 3
    # Every recording's file name still comes through.
    assert any(f.get("Variable") == RECORDING_VARIABLE for f in kept)


def test_the_tracker_finishes_the_same_calls_from_the_filtered_stream(shared_dir: Path) -> None:
    for path in _traces(shared_dir):
        data = _stream(path)
        settings = tracker_settings(PbxConfig())
        finished = []
        for interest in (None, _daemons_interest()):
            tracker = CallTracker(settings)
            calls = []
            frames, _ = _decode(data, interest)
            for number, frame in enumerate(frames):
                calls += tracker.feed(frame, float(number))
            finished.append(calls)
        assert finished[0], path.name
        assert finished[1] == finished[0], path.name


@pytest.mark.parametrize(
    ("frame", "dropped"),
    [
        (b"Event: VarSet\r\nChannel: PJSIP/201-1\r\nVariable: MACRO_DEPTH\r\nValue: 1", True),
        (b"Event: VarSet\r\nChannel: PJSIP/201-1\r\nVariable: MIXMONITOR_FILENAME\r\nValue: /r/a.wav", False),
        (b"Event: VarSet\nVariable: MIXMONITOR_FILENAME\nValue: /r/a.wav", False),
        (b"Event: VarSet\r\nVariable: mixmonitor_filename\r\nValue: x", True),
        (b"Event: CEL\r\nEventName: CHAN_START", True),
        (b"Event: cdr\r\nSource: 201", True),
        # An action's answer is read by whoever asked, whatever its kind.
        (b"Event: VarSet\r\nActionID: 42\r\nVariable: MACRO_DEPTH", False),
        (b"Event: Newchannel\r\nChannel: PJSIP/201-1", False),
        (b"Response: Success\r\nActionID: 1", False),
        (b"Event: VarSet", True),
    ],
)
def test_what_one_frame_is(frame: bytes, dropped: bool) -> None:
    interest = EventInterest(variables=frozenset({RECORDING_VARIABLE}))
    assert interest.drops(frame) is dropped
    assert interest.drops(bytearray(frame)) is dropped


def test_a_part_can_ask_for_an_event_kind_again() -> None:
    interest = EventInterest()
    cel = b"Event: CEL\r\nEventName: ANSWER"
    assert interest.drops(cel)
    interest.want_event("CEL")
    assert not interest.drops(cel)
    assert "cel" not in interest.ignored_events
