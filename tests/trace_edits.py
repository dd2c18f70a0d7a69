"""Captured AMI streams, edited into situations no capture holds.

The shared captures come from a real Asterisk; a few situations the tracker
must know (a pickup, a transfer to an outside number, a failed click-to-call,
an IVR that hangs up) were not captured. Tests build them from captured
events: the same frames, with channels renamed, events dropped or inserted in
the shape Asterisk documents for them. Each test says which capture it starts
from and what it changed.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from pbxbridge.ami.frames import Frame, read_trace
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.tracker import CallTracker


def events_of(path: Path) -> list[Frame]:
    """A capture's events (the login answer left out), as editable dicts."""
    return [dict(f) for f in read_trace(path)[1] if "Event" in f]


def about(frame: Frame, uids: set[str]) -> bool:
    """Whether the event concerns one of these channels (as itself, its destination or a party)."""
    return any(v in uids for k, v in frame.items() if k.endswith("Uniqueid"))


def drop(events: Iterable[Frame], predicate: Callable[[Frame], bool]) -> list[Frame]:
    return [f for f in events if not predicate(f)]


def rename(events: Iterable[Frame], old: str, new: str) -> list[Frame]:
    """Rename a channel everywhere it is named."""
    out = []
    for frame in events:
        frame = dict(frame)
        for key, value in frame.items():
            if key.endswith("Channel") and value == old:
                frame[key] = new
        out.append(frame)
    return out


def relink(events: Iterable[Frame], uids: set[str], linkedid: str) -> list[Frame]:
    """Give these channels another linkedid, as if another call had made them."""
    out = []
    for frame in events:
        frame = dict(frame)
        for key in list(frame):
            if key.endswith("Uniqueid") and frame[key] in uids:
                frame[key[: -len("Uniqueid")] + "Linkedid"] = linkedid
        out.append(frame)
    return out


def index_of(events: list[Frame], predicate: Callable[[Frame], bool], start: int = 0) -> int:
    return next(i for i in range(start, len(events)) if predicate(events[i]))


def uid_of(events: list[Frame], channel: str) -> str:
    """The uniqueid Asterisk gave a channel, from its Newchannel."""
    return next(f["Uniqueid"] for f in events if f["Event"] == "Newchannel" and f["Channel"] == channel)


def channel_event(template: Frame, **changes: str) -> Frame:
    """A frame shaped like a captured one (same headers, same order), with some values changed."""
    frame = dict(template)
    frame.update(changes)
    return frame


def run(events: list[Frame], tracker: CallTracker | None = None) -> list[FinishedCall]:
    """Every call the tracker makes of these events, those still open at their end included."""
    tracker = tracker or CallTracker()
    out: list[FinishedCall] = []
    for frame in events:
        out += tracker.feed(frame, 0.0)
    last = float(events[-1]["Timestamp"])
    return out + tracker.end_of_stream(last)


def only(calls: list[FinishedCall]) -> FinishedCall:
    """The one call there must be."""
    assert len(calls) == 1, [(c.linkedid, c.direction, c.client_number, c.status) for c in calls]
    return calls[0]
