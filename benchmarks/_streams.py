"""Synthetic AMI streams made of the captured ones: many copies of the traces, interleaved in time.

Each copy gets new unique ids and linkedids, new channel sequence numbers (two
interleaved copies would otherwise share ``PJSIP/201-00000004`` and be taken for one
channel) and its own clients' phone numbers (a thousand calls up at once come from
about a thousand clients, not from the traces' handful), and starts at its own
offset, so that many calls are up at once.
"""

from __future__ import annotations

import heapq
import random
import re
from collections.abc import Iterator
from pathlib import Path

from pbxbridge.ami.frames import Frame, encode_frame, event_timestamp
from pbxbridge.ami.traces import (  # A channel name's sequence number: "PJSIP/201-0000000a", "Local/203@agent-phone-0000005f;1".
    Trace,
    load_trace,
    with_fresh_ids,
)

_CHANNEL_SEQ = re.compile(r"(\w+/[^\s,]*?-[0-9a-f]{8})(?![0-9a-f])")
# A client's Russian mobile number as the traces carry it (79161110005, 89161110005, +79...):
# trunk prefix, operator code, seven subscriber digits. The company's own DID (7495...)
# and the 10-digit epoch seconds of unique ids do not match.
_CLIENT_NUMBER = re.compile(r"(?<![\d.])([78]9\d\d)(\d{7})(?![\d])")
# Subscriber digits of copy n are moved by n times this (prime, so copies rarely meet).
_CLIENT_STRIDE = 7919


def client_number(number: str, copy: int) -> str:
    """The number of copy ``copy``'s client: same operator, other subscriber digits (still a valid mobile)."""
    return _CLIENT_NUMBER.sub(lambda m: _moved(m, copy), number)


def _moved(match: re.Match[str], copy: int) -> str:
    subscriber = (int(match.group(2)) + copy * _CLIENT_STRIDE) % 10_000_000
    return f"{match.group(1)}{subscriber:07d}"


def copy_event(event: Frame, copy: int, shift: float) -> Frame:
    """One event of copy number ``copy``: fresh ids, channel names and clients, time moved by ``shift``."""
    out = with_fresh_ids(event, f"-c{copy}")
    tag = f"{copy:06x}"
    out = {k: (_CHANNEL_SEQ.sub(lambda m: m.group(1) + tag, v) if "/" in v else v) for k, v in out.items()}
    out = {k: client_number(v, copy) for k, v in out.items()}
    ts = event_timestamp(event)
    if ts is not None:
        out["Timestamp"] = f"{ts + shift:.6f}"
    return out


def interleaved(traces: list[Trace], copies: int, window_s: float, start_at: float,
                seed: int = 7) -> Iterator[Frame]:
    """Every trace ``copies`` times, each copy starting at a random moment of the window, in time order."""
    rng = random.Random(seed)
    streams = []
    n = 0
    for c in range(copies):
        for trace in traces:
            first = trace.first_timestamp
            if first is None:
                continue
            shift = start_at + rng.uniform(0, window_s) - first
            streams.append(_shifted(trace, n, shift))
            n += 1
    return (event for _t, _i, event in heapq.merge(*streams))


def _shifted(trace: Trace, copy: int, shift: float) -> Iterator[tuple[float, int, Frame]]:
    last = (trace.first_timestamp or 0.0) + shift
    for i, event in enumerate(trace.events):
        out = copy_event(event, copy, shift)
        ts = event_timestamp(out)
        # Events without a time keep their place after the previous one.
        last = ts if ts is not None and ts >= last else last
        yield last, copy * 100_000 + i, out


def write_stream(events: Iterator[Frame], out: Path, banner: str = "Asterisk Call Manager/11.0.0") -> int:
    """Write events as one capture file; returns how many."""
    count = 0
    with out.open("wb") as fh:
        fh.write(f"{banner}\r\n".encode())
        batch: list[bytes] = []
        for event in events:
            batch.append(encode_frame(event))
            count += 1
            if len(batch) >= 10_000:
                fh.write(b"".join(batch))
                batch = []
        fh.write(b"".join(batch))
    return count


def load_traces(paths: list[Path]) -> list[Trace]:
    """The captured streams, ready to copy."""
    return [load_trace(p) for p in paths]
