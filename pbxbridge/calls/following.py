"""Following a PBX: its AMI events through its call tracker, the calls it finishes to the journal.

One ``PbxLink`` per PBX (or per captured stream): its settings, its tracker,
its AMI listener. Events are fed to the tracker at Asterisk's ``Timestamp``;
what the tracker finishes goes to ``finished``; what it found wrong with its
input is logged, naming the call. After every (re)login the PBX's own list
of channels (``CoreShowChannels``) brings the tracker in line: channels it
missed are taken on, calls the PBX no longer has are closed.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pbxbridge.ami.frames import Frame, event_time
from pbxbridge.ami.interest import EventInterest
from pbxbridge.ami.listener import AmiListener, ListenerState
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.tracker import CallTracker, TrackerSettings
from pbxbridge.config import PbxConfig

log = logging.getLogger(__name__)

# How long the PBX may take to list its channels after a reconnect.
CATCH_UP_TIMEOUT_S = 30.0
# How often calls the tracker holds back (a click-to-call waiting for its
# OriginateResponse) are looked at on the PBX's clock: when the PBX falls
# silent, no event moves that clock, so it is moved with the wall's.
HELD_CHECK_INTERVAL_S = 0.2


def tracker_settings(pbx: PbxConfig) -> TrackerSettings:
    """The tracker's view of one PBX's settings."""
    return TrackerSettings(
        pbx=pbx.name,
        inbound_contexts=tuple(pbx.inbound_contexts),
        extension_pattern=pbx.extension_pattern,
    )


@dataclass(slots=True)
class PbxLink:
    """One PBX: its settings, its call tracker and its AMI listener (none for a captured stream)."""

    config: PbxConfig
    tracker: CallTracker
    listener: AmiListener | None = None
    # Events handed to the tracker (those nobody reads are counted by the listener).
    events_read: int = 0
    # The PBX's clock as of the latest event, for closing calls that vanished.
    last_event_at: float | None = None
    # When (time.monotonic) that event was read: the PBX's clock runs on from there while it is silent.
    last_event_read: float | None = None
    # Whether this PBX stamps its events (timestampevents=yes): then frames
    # without a stamp (login greetings, list answers) do not move its clock.
    stamps_events: bool = False
    # Linkedids seen while a channel list is on its way (see PbxFollower.catch_up).
    seen_while_asking: set[str] | None = None
    reconciled_calls: int = 0
    # Completed catch-ups (one per login whose channel list arrived).
    catch_ups: int = 0
    # Calls taken back from the database at start.
    restored_calls: int = 0
    # Changed calls whose save failed (the database was away): saved next time.
    unsaved: set[str] = field(default_factory=set)

    @classmethod
    def for_pbx(cls, pbx: PbxConfig) -> PbxLink:
        return cls(pbx, CallTracker(tracker_settings(pbx)))

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def events(self) -> int:
        """Events received from this PBX: read, or skipped as nobody's (``EventInterest``)."""
        skipped = self.listener.decode_stats.ignored if self.listener is not None else 0
        return self.events_read + skipped

    def clock(self, now_monotonic: float) -> float | None:
        """The PBX's clock now: its last event's time, run on by the wall's since."""
        if self.last_event_at is None or self.last_event_read is None:
            return None
        return self.last_event_at + (now_monotonic - self.last_event_read)


class PbxFollower:
    """Feeds each PBX's events to its tracker and hands on what they finish.

    ``finished(call)`` takes each finished call; ``seen(pbx, frame)`` each
    event after the tracker; ``connected(pbx)`` / ``dropped(pbx)`` the
    session's logins and losses.
    """

    def __init__(
        self,
        *,
        finished: Callable[[FinishedCall], None],
        seen: Callable[[str, Frame], None],
        connected: Callable[[str], None],
        dropped: Callable[[str], None],
        interest: EventInterest,
        listener_options: Mapping[str, Any],
    ) -> None:
        self.finished = finished
        self.seen = seen
        self.connected = connected
        self.dropped = dropped
        self.interest = interest
        self.listener_options = dict(listener_options)
        self.links: dict[str, PbxLink] = {}

    def listen(self, link: PbxLink, on_state: Callable[[AmiListener], None]) -> AmiListener:
        """The AMI listener that feeds this link."""
        pbx = link.config

        def on_event(frame: Frame, received_at: float) -> None:
            self.on_event(link, frame, received_at)

        async def on_connected(listener: AmiListener) -> None:
            self.connected(pbx.name)
            await self.catch_up(link, listener)

        was: list[ListenerState] = [ListenerState.STOPPED]

        def on_change(listener: AmiListener) -> None:
            # A session that was logged in and is no more: what it told is unknown from here on.
            if was[0] is ListenerState.LOGGED_IN and listener.state is not ListenerState.LOGGED_IN:
                self.dropped(pbx.name)
            was[0] = listener.state
            on_state(listener)

        options = {"on_state": on_change, "interest": self.interest, **self.listener_options}
        link.listener = AmiListener(
            pbx.host, pbx.port, pbx.username, pbx.secret, on_event, on_connected, name=pbx.name, **options,
        )
        return link.listener

    def on_event(self, link: PbxLink, frame: Frame, received_at: float) -> None:
        link.events_read += 1
        if "Timestamp" in frame:
            link.stamps_events = True
            link.last_event_at = received_at
            link.last_event_read = time.monotonic()
        elif not link.stamps_events:
            link.last_event_at = received_at
            link.last_event_read = time.monotonic()
        if link.seen_while_asking is not None:
            linkedid = frame.get("Linkedid") or frame.get("LinkedID")
            if linkedid:
                link.seen_while_asking.add(linkedid)
        tracker = link.tracker
        for call in tracker.feed(frame, received_at):
            self.finished(call)
        if tracker.has_warnings:
            log_warnings(link, tracker.take_warnings())
        self.seen(link.config.name, frame)

    async def release_held_periodically(self) -> None:
        # A held call waits on the PBX's clock, which only events move: a PBX
        # that falls silent would hold it for good. Its clock runs on with the wall's.
        while True:
            await asyncio.sleep(HELD_CHECK_INTERVAL_S)
            now = time.monotonic()
            for link in self.links.values():
                clock = link.clock(now)
                if clock is not None:
                    for call in link.tracker.release_held(clock):
                        self.finished(call)

    async def catch_up(self, link: PbxLink, listener: AmiListener) -> None:
        """After a (re)login: take on channels missed, close the calls the PBX no longer has."""
        link.seen_while_asking = set()
        try:
            reply = await asyncio.wait_for(listener.send_action({"Action": "CoreShowChannels"}), CATCH_UP_TIMEOUT_S)
            # Events keep being fed while the list is on its way; a call seen in
            # them is alive even if it started after the PBX made the list.
            seen = link.seen_while_asking
        finally:
            link.seen_while_asking = None
        if not isinstance(reply, list):
            log.warning("[%s] CoreShowChannels refused (%s); not reconciling calls",
                        link.name, getattr(reply, "message", reply))
            return
        listed: list[Mapping[str, str]] = [_frame_of(m) for m in reply if m.get("Event") == "CoreShowChannel"]
        live = {m.get("Linkedid", "") for m in listed} - {""}
        now = link.last_event_at if link.last_event_at is not None else time.time()
        closed = link.tracker.reconcile_channels(listed, seen, now)
        log.info("[%s] PBX has %d call(s) up; %d call(s) it no longer knows closed",
                 link.name, len(live), len(closed), extra={"pbx": link.name})
        link.reconciled_calls += len(closed)
        link.catch_ups += 1
        for call in closed:
            self.finished(call)

    # -- captured streams ------------------------------------------------------------

    def feed_captured(self, link: PbxLink, frames: Iterable[Frame]) -> None:
        """One read of a captured stream: each event to the link's tracker at its Timestamp.

        An event without one is taken at the previous event's time: a capture
        has no wall clock worth reading. Frames that are no event (the capturing
        session's own Login answer) are left out. Nobody else is told of the
        events: what follows a PBX's present (line states, the wallboard, live
        gauges and alerts) learns nothing true from a capture's past.
        """
        tracker = link.tracker
        now = link.last_event_at or 0.0
        fed = 0
        for frame in frames:
            if "Event" not in frame:
                continue
            now = event_time(frame, now)
            fed += 1
            for call in tracker.feed(frame, now):
                self.finished(call)
        link.events_read += fed
        link.last_event_at = now
        log_warnings(link, tracker.take_warnings())

    def end_captured(self, link: PbxLink) -> None:
        """The capture is over: nothing more comes on its session.

        Calls held for a late answer are given out; a call still up was cut
        with the capture, and is journaled as far as it went (closed at its
        last event, named in a warning), not lost.
        """
        end = link.last_event_at if link.last_event_at is not None else 0.0
        for call in link.tracker.end_of_stream(end):
            self.finished(call)
        log_warnings(link, link.tracker.take_warnings())


def log_warnings(link: PbxLink, warnings: list[tuple[str, str]]) -> None:
    """What the tracker found wrong with its input (an unknown channel, a second Hangup), a line each."""
    for linkedid, message in warnings:
        log.warning("[%s] call %s: %s", link.name, linkedid, message, extra={"pbx": link.name, "linkedid": linkedid})


def _frame_of(message: Any) -> Frame:
    """The frame as received (the listener keeps it on panoramisk's Message)."""
    frame = getattr(message, "__dict__", {}).get("frame")
    return frame if isinstance(frame, dict) else dict(message)
