"""Captured AMI streams prepared for replay: events only, with their times."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pbxbridge.ami.frames import Frame, FrameDecoder, event_timestamp

# Captures are fed to the decoder in socket-sized pieces, as a client reads
# them: the decoder searches its whole buffer for a frame's end, so one
# megabyte-long buffer would be searched once per frame.
READ_CHUNK = 8192

DEFAULT_BANNER = "Asterisk Call Manager/11.0.0"

# Events Asterisk sends to one manager session about that session itself;
# the simulator makes its own for each client instead of replaying the
# capturing session's.
SESSION_EVENTS = frozenset({"fullybooted", "successfulauth", "challengesent"})


@dataclass(frozen=True, slots=True)
class Trace:
    """One captured stream: banner, call events in order, and a FullyBooted to greet with."""

    path: Path
    banner: str
    events: tuple[Frame, ...]
    fully_booted: Frame | None

    @property
    def first_timestamp(self) -> float | None:
        """Time of the first event that carries one."""
        for event in self.events:
            ts = event_timestamp(event)
            if ts is not None:
                return ts
        return None


def load_trace(path: str | Path) -> Trace:
    """Read a ``*.ami`` capture, keeping the events the PBX broadcast."""
    banner, frames = _read_frames(Path(path))
    events: list[Frame] = []
    fully_booted: Frame | None = None
    for frame in frames:
        name = frame.get("Event")
        if name is None:
            # Responses to the capturing session's own actions (Login, Logoff).
            continue
        if name.lower() in SESSION_EVENTS:
            if name.lower() == "fullybooted" and fully_booted is None:
                fully_booted = frame
            continue
        events.append(frame)
    return Trace(Path(path), banner or DEFAULT_BANNER, tuple(events), fully_booted)


def _read_frames(path: Path) -> tuple[str | None, list[Frame]]:
    decoder = FrameDecoder(max_frame_bytes=1024 * 1024)
    frames: list[Frame] = []
    with path.open("rb") as fh:
        while chunk := fh.read(READ_CHUNK):
            frames += decoder.feed(chunk)
    frames += decoder.feed(b"\r\n\r\n")
    return decoder.banner, frames


def is_call_id_key(key: str) -> bool:
    """Whether a header holds a channel's or bridge's unique id or a linkedid."""
    low = key.lower()
    return low.endswith("uniqueid") or low.endswith("linkedid")


def with_fresh_ids(event: Frame, suffix: str) -> Frame:
    """Copy of ``event`` with every unique id and linkedid given ``suffix``.

    Replaying a trace a second time would otherwise repeat linkedids that a
    call store already holds, and the repeats would be taken for the same calls.
    """
    if not suffix:
        return event
    return {k: (f"{v}{suffix}" if v and is_call_id_key(k) else v) for k, v in event.items()}


def with_timestamp(event: Frame, timestamp: float) -> Frame:
    """Copy of ``event`` with its ``Timestamp`` header set to ``timestamp``."""
    if "Timestamp" not in event:
        return event
    out = dict(event)
    out["Timestamp"] = f"{timestamp:.6f}"
    return out


def wire_template(event: Frame) -> tuple[bytes, ...]:
    """``event`` as sent on the wire, cut after every unique id and linkedid.

    ``suffix.join(template)`` is ``encode_frame(with_fresh_ids(event, suffix))``
    (suffix encoded as UTF-8): a replay renders each event once and gives
    every later pass its fresh ids with one join instead of a new dict.
    """
    parts: list[bytes] = []
    line: list[str] = []
    for key, value in event.items():
        for v in value.split("\n"):
            line.append(f"{key}: {v}")
            line.append("\r\n")
        if value and is_call_id_key(key):
            # The suffix goes after the value's last line, before its CRLF.
            line.pop()
            parts.append("".join(line).encode("utf-8"))
            line = ["\r\n"]
    line.append("\r\n")
    parts.append("".join(line).encode("utf-8"))
    return tuple(parts)
