"""AMI wire format: ``Key: Value`` lines, a blank line after each frame.

The decoder is incremental and bounded so that a hostile or broken peer can
neither grow memory without limit nor stop good frames after bad ones from
counting.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pbxbridge.ami.interest import EventInterest

log = logging.getLogger(__name__)

Frame = dict[str, str]

# Asterisk's largest frames (CoreShowChannels with many variables, Cdr) stay
# well under this; anything larger is garbage or an attack.
MAX_FRAME_BYTES = 64 * 1024
MAX_KEYS = 512


@dataclass(slots=True)
class DecodeStats:
    frames: int = 0
    # Events nobody reads, skipped undecoded (see pbxbridge.ami.interest).
    ignored: int = 0
    malformed_lines: int = 0
    oversized_frames: int = 0
    errors: list[str] = field(default_factory=list)

    def note(self, problem: str) -> None:
        # Keep only the latest few problems: the counters carry the totals.
        self.errors.append(problem)
        if len(self.errors) > 20:
            del self.errors[0]


def parse_frame(block: str, stats: DecodeStats | None = None) -> Frame:
    """Parse one frame's text (without the terminating blank line)."""
    lines = block.split("\r\n") if "\r\n" in block else block.split("\n")
    if len(lines) <= MAX_KEYS:
        # Nearly every frame: one "Key: Value" per line, no key twice. Built in
        # one go, checked afterwards; anything else is parsed line by line.
        try:
            frame: Frame = dict([line.split(": ", 1) for line in lines])
        except ValueError:
            pass
        else:
            if len(frame) == len(lines):
                return frame
    return _parse_lines(lines, stats)


def _parse_lines(lines: list[str], stats: DecodeStats | None) -> Frame:
    frame: Frame = {}
    for line in lines:
        key, sep, value = line.partition(": ")
        if not sep:
            if not line:
                continue
            key, sep, value = line.partition(":")
            key = key.strip()
            if not sep or not key:
                if stats is not None:
                    stats.malformed_lines += 1
                    stats.note(f"malformed line {line[:80]!r}")
                continue
        if key in frame:
            # Repeated keys (Output:, ChanVariable:) are kept, one per line.
            frame[key] = f"{frame[key]}\n{value}"
        elif len(frame) < MAX_KEYS:
            frame[key] = value
    return frame


class FrameDecoder:
    """Turns a byte stream into frames; feed it whatever the socket gave."""

    def __init__(self, max_frame_bytes: int = MAX_FRAME_BYTES) -> None:
        self.max_frame_bytes = max_frame_bytes
        self.stats = DecodeStats()
        # When set, events it drops are skipped before they are decoded.
        self.interest: EventInterest | None = None
        self._buf = bytearray()
        self._skipping = False
        self.banner: str | None = None
        self._want_banner = True

    def expect_banner(self, want: bool) -> None:
        self._want_banner = want

    def feed(self, data: bytes) -> list[Frame]:
        self._buf += data
        out: list[Frame] = []
        if self._want_banner:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > 1024:
                    self._want_banner = False
                return out
            line = bytes(self._buf[:nl]).decode("utf-8", "replace").strip()
            if line.startswith("Asterisk Call Manager"):
                self.banner = line
                del self._buf[: nl + 1]
            self._want_banner = False
        buf = self._buf
        last = buf.rfind(b"\r\n\r\n")
        if last >= 0 and buf.find(b"\n\n") < 0 and not (last >= 2 and buf[last - 2 : last] == b"\r\n"):
            # Only CRLF frame ends, none overlapping another (as Asterisk
            # writes them): every complete frame is split off at once.
            return self._split_all(last)
        pos = 0
        while True:
            end, sep_len = self._find_end(pos)
            if end < 0:
                if len(buf) - pos > self.max_frame_bytes:
                    self._drop_unfinished()
                    pos = 0
                break
            start = pos
            pos = end + sep_len
            if self._skipping:
                self._skipping = False
                continue
            if end - start > self.max_frame_bytes:
                self._note_oversized()
                continue
            block = buf[start:end]
            if self.interest is not None and self.interest.drops(block):
                self.stats.ignored += 1
                continue
            frame = parse_frame(block.decode("utf-8", "replace"), self.stats)
            if frame:
                self.stats.frames += 1
                out.append(frame)
        # One compaction per feed, not per frame: keeps decoding linear.
        if pos:
            del buf[:pos]
        return out

    def _split_all(self, last: int) -> list[Frame]:
        """Every frame before the frame end at ``last``; what the frame-by-frame loop gives, in one split."""
        buf = self._buf
        blocks = buf[:last].split(b"\r\n\r\n")
        del buf[: last + 4]
        if self._skipping:
            # The end of a frame already dropped as oversized.
            self._skipping = False
            del blocks[0]
        stats = self.stats
        limit = self.max_frame_bytes
        drops = self.interest.drops if self.interest is not None else None
        out: list[Frame] = []
        for block in blocks:
            if len(block) > limit:
                self._note_oversized()
                continue
            if drops is not None and drops(block):
                stats.ignored += 1
                continue
            frame = parse_frame(block.decode("utf-8", "replace"), stats)
            if frame:
                out.append(frame)
        stats.frames += len(out)
        if len(buf) > limit:
            self._drop_unfinished()
        return out

    def _note_oversized(self) -> None:
        self.stats.oversized_frames += 1
        self.stats.note(f"frame over {self.max_frame_bytes} bytes dropped")

    def _drop_unfinished(self) -> None:
        """The frame the buffer ends with is over the limit: drop it and skip to its end.

        A frame dropped already is not counted again as more of it comes. The
        bytes that may begin its blank line stay: a read that stopped inside it
        must not make the next frame look like the dropped one's tail.
        """
        if not self._skipping:
            self._note_oversized()
        self._skipping = True
        buf = self._buf
        del buf[: len(buf) - _partial_end(buf)]

    def _find_end(self, pos: int) -> tuple[int, int]:
        buf = self._buf
        crlf = buf.find(b"\r\n\r\n", pos)
        # Asterisk always sends CRLF; bare-LF frames come from hand-typed or
        # proxied streams.  Only look for them when CRLF framing is absent
        # before the next LF-LF, which keeps the common case one search.
        lf = buf.find(b"\n\n", pos, crlf if crlf >= 0 else len(buf))
        if crlf < 0 and lf < 0:
            return -1, 0
        if lf < 0:
            return crlf, 4
        return lf, 2


def _partial_end(buf: bytearray) -> int:
    """How many bytes at the end of ``buf`` may begin a frame end the next read completes."""
    if buf.endswith(b"\r\n\r"):
        return 3
    if buf.endswith(b"\r\n"):
        return 2
    return 1 if buf.endswith((b"\r", b"\n")) else 0


def event_timestamp(event: Mapping[str, str]) -> float | None:
    """Asterisk's ``Timestamp`` header (``timestampevents = yes``) as Unix seconds, or None.

    The one place pbxbridge reads it, but for the call tracker, which reads
    it on its own so that it needs nothing outside the calls domain.
    """
    raw = event.get("Timestamp")
    if raw is None:
        return None
    try:
        return float(raw)
    except ValueError:
        return None


def event_time(event: Mapping[str, str], fallback: float) -> float:
    """The event's Timestamp, else ``fallback`` (the previous event's time, or the receive time)."""
    stamp = event_timestamp(event)
    return fallback if stamp is None else stamp


def read_trace(path: str | Path) -> tuple[str | None, list[Frame]]:
    """Read a captured AMI stream: (banner, frames), Login response included."""
    decoder = FrameDecoder(max_frame_bytes=1024 * 1024)
    frames = decoder.feed(Path(path).read_bytes())
    frames += decoder.feed(b"\r\n\r\n")
    return decoder.banner, frames


def encode_frame(frame: Frame) -> bytes:
    """Serialise a frame as Asterisk sends it."""
    # A value of several lines (a multi-line Output) goes out as one header line each.
    lines = [
        f"{key}: {value}\r\n" if "\n" not in value else "".join([f"{key}: {v}\r\n" for v in value.split("\n")])
        for key, value in frame.items()
    ]
    lines.append("\r\n")
    return "".join(lines).encode("utf-8")
