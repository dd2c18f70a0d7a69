"""The decoder gives the same frames however the stream is cut into reads.

Asterisk's streams are split off many frames at a time; hand-typed (bare LF),
blank-line-padded, repeated-key, broken and oversized input go frame by
frame. Whatever the path, a listener must see the same events and counters.
"""

from __future__ import annotations

import functools
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pbxbridge.ami.frames import FrameDecoder, encode_frame, parse_frame
from pbxbridge.ami.traces import load_trace

SHARED = Path(__file__).resolve().parents[2] / "shared" / "ami-traces"


@functools.cache
def captured_frames() -> list[bytes]:
    """Every event of the shared captures, as Asterisk sent it."""
    return [encode_frame(e) for p in sorted(SHARED.glob("*.ami")) for e in load_trace(p).events]


def decode_in_reads(
    data: bytes, cuts: list[int], max_frame_bytes: int = 4096
) -> tuple[list[dict[str, str]], tuple[int, int, int]]:
    decoder = FrameDecoder(max_frame_bytes=max_frame_bytes)
    decoder.expect_banner(False)
    frames: list[dict[str, str]] = []
    start = 0
    for cut in sorted({c % (len(data) + 1) for c in cuts}) + [len(data)]:
        frames += decoder.feed(data[start:cut])
        start = cut
    s = decoder.stats
    return frames, (s.frames, s.malformed_lines, s.oversized_frames)


def decode_byte_by_byte(data: bytes, max_frame_bytes: int = 4096) -> tuple[list[dict[str, str]], tuple[int, int, int]]:
    return decode_in_reads(data, list(range(len(data))), max_frame_bytes)


# Pieces a stream is made of: Asterisk's frames, and what hostile or hand-made input adds.
piece = st.one_of(
    st.sampled_from(range(200)).map(lambda i: captured_frames()[i * 37 % len(captured_frames())]),
    st.just(b"\r\n"),
    st.just(b"\n\n"),
    st.just(b"Event: Hangup\nUniqueid: 1.2\n\n"),
    st.just(b"Event: VarSet\r\nChanVariable: a=1\r\nChanVariable: b=2\r\n\r\n"),
    st.just(b"Event: Odd\r\nno separator here\r\nKey:NoSpace\r\n\r\n"),
    st.just(b"Event: Big\r\nData: " + b"x" * 5000 + b"\r\n\r\n"),
    st.just("Event: Newexten\r\nCallerIDName: Иван\r\n\r\n".encode()),
    st.binary(max_size=40),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(pieces=st.lists(piece, max_size=25), cuts=st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=12))
def test_frames_do_not_depend_on_how_the_stream_is_read(pieces: list[bytes], cuts: list[int]) -> None:
    data = b"".join(pieces)
    assert decode_in_reads(data, cuts) == decode_byte_by_byte(data)


def test_captured_stream_in_big_reads_gives_every_event() -> None:
    data = b"".join(captured_frames())
    frames, (count, malformed, oversized) = decode_in_reads(data, list(range(0, len(data), 1 << 16)), 64 * 1024)
    assert frames == [parse_frame(f[:-4].decode()) for f in captured_frames()]
    assert (count, malformed, oversized) == (len(captured_frames()), 0, 0)


def test_repeated_keys_and_loose_lines_are_kept() -> None:
    frame = parse_frame("Event: VarSet\r\nChanVariable: a=1\r\nChanVariable: b=2\r\nKey:NoSpace\r\n\r\nValue: x: y")
    assert frame == {"Event": "VarSet", "ChanVariable": "a=1\nb=2", "Key": "NoSpace", "Value": "x: y"}


def test_a_read_ending_inside_an_oversized_frames_blank_line_keeps_the_next_frame() -> None:
    big = b"Event: Big\r\nData: " + b"x" * 5000 + b"\r\n\r\n"
    hangup = b"Event: Hangup\r\nUniqueid: 1.2\r\n\r\n"
    data = b"Event: Hangup\nUniqueid: 1.1\n\n" + big + hangup
    for split in range(1, 4):  # the read stops after "\r", "\r\n", "\r\n\r" of the blank line
        cut = data.index(big) + len(big) - 4 + split
        frames, (_count, _malformed, oversized) = decode_in_reads(data, [cut])
        assert frames == [{"Event": "Hangup", "Uniqueid": "1.1"}, {"Event": "Hangup", "Uniqueid": "1.2"}]
        assert oversized == 1
