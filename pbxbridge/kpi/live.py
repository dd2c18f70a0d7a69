"""The line right now, from the AMI stream: callers waiting in queues and the PBX's clock."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from pbxbridge.ami.frames import Frame, event_timestamp

# Events after which a caller is no longer waiting in a queue.
_LEFT_QUEUE = frozenset({"QueueCallerLeave", "QueueCallerAbandon", "Hangup"})
# Events that change who waits: what a rebuild replays over a QueueStatus answer.
QUEUE_EVENTS = _LEFT_QUEUE | {"QueueCallerJoin"}


@dataclass(slots=True)
class LiveLine:
    """Pure: feed it events (with the time they happened); read who is waiting and what time it is."""

    # (pbx, Uniqueid) of callers in a queue.
    waiting: set[tuple[str, str]] = field(default_factory=set)
    # The latest event time seen and the local monotonic reading when it arrived,
    # so that the PBX's clock can be carried forward on a quiet line.
    event_time: float | None = None
    seen_at: float | None = None
    # Whether the PBX stamps its events (timestampevents=yes): then only its stamps
    # set the clock, never the local receive time of an unstamped greeting.
    stamped: bool = False

    def feed(self, pbx: str, event: Frame, monotonic: float, received_at: float | None = None) -> None:
        """Take one event; its ``Timestamp`` is its time, else ``received_at`` (PBXs that do not stamp)."""
        self._follow_queue(pbx, event)
        at = event_timestamp(event)
        if at is None:
            if self.stamped:
                return
            at = received_at
        else:
            if not self.stamped:
                self.stamped = True
                self.event_time = None
        if at is not None and (self.event_time is None or at >= self.event_time):
            self.event_time = at
            self.seen_at = monotonic

    def _follow_queue(self, pbx: str, event: Frame) -> None:
        name = event.get("Event", "")
        uniqueid = event.get("Uniqueid", "")
        if name == "QueueCallerJoin" and uniqueid:
            self.waiting.add((pbx, uniqueid))
        elif name in _LEFT_QUEUE and uniqueid:
            self.waiting.discard((pbx, uniqueid))

    @property
    def callers_waiting(self) -> int:
        """Callers in a queue right now, on every PBX."""
        return len(self.waiting)

    def forget_pbx(self, pbx: str) -> None:
        """Drop a PBX's waiting callers (its connection was lost; it will tell us again)."""
        self.waiting = {w for w in self.waiting if w[0] != pbx}

    def rebuild_pbx(self, pbx: str, listed: Iterable[Frame], since: Iterable[Frame] = ()) -> None:
        """Take a PBX's waiting callers from a ``QueueStatus`` answer, not from memory.

        ``listed`` are the answer's events (its ``QueueEntry`` items name the callers);
        ``since`` are the queue events that arrived while the answer was on its way,
        applied over it in order: the list may have been made before them.
        """
        self.forget_pbx(pbx)
        for frame in listed:
            uniqueid = frame.get("Uniqueid", "")
            if frame.get("Event") == "QueueEntry" and uniqueid:
                self.waiting.add((pbx, uniqueid))
        for event in since:
            # The clock is left alone: these events have moved it already.
            self._follow_queue(pbx, event)

    def clock(self, monotonic: float) -> float | None:
        """The PBX's time now: the latest event time plus what has elapsed since it arrived."""
        if self.event_time is None or self.seen_at is None:
            return None
        return self.event_time + max(0.0, monotonic - self.seen_at)
