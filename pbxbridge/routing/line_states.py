"""Live state of each manager's line, built from AMI events alone (no clock, no I/O).

Several sources describe the same handset and none is complete:

* channel events (``Newchannel``/``Newstate``/``Hangup``) of the handset's own
  channels (``PJSIP/201-…``) and of the Local channels FreePBX puts in front of
  it (``Local/201@from-queue-…;1``) say exactly when it rings and when it talks;
* device state (``DeviceStateChange`` of ``PJSIP/201`` or ``Custom:201``,
  ``ExtensionStatus`` of hint 201, a queue member's ``Status``) also covers
  calls placed by the handset itself and says when it is not registered;
* queue events say who is paused and who waits in each queue.

Channels win over device state because a Local device reports ``INUSE`` while
it is merely ringing.  Times come from the events' ``Timestamp`` header.

Everything here is what one AMI session said.  When that session ends the
states are stale (``forget``), and the lists asked after the next login
rebuild them (``refresh``), rather than memory of what was true before.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum

from pbxbridge.ami.frames import Frame, event_timestamp


class LineState(StrEnum):
    IDLE = "idle"
    RINGING = "ringing"
    IN_CALL = "in_call"
    PAUSED = "paused"
    UNAVAILABLE = "unavailable"


# Asterisk's device states by the numbers QueueMemberStatus/QueueMember use (AST_DEVICE_*).
_DEVICE_BY_NUMBER = {
    "0": "UNKNOWN",
    "1": "NOT_INUSE",
    "2": "INUSE",
    "3": "BUSY",
    "4": "INVALID",
    "5": "UNAVAILABLE",
    "6": "RINGING",
    "7": "RINGINUSE",
    "8": "ONHOLD",
}
# ExtensionStatus is a bit field (AST_EXTENSION_*): INUSE 1, BUSY 2, UNAVAILABLE 4, RINGING 8, ONHOLD 16.
_EXTENSION_BITS = ((2, "BUSY"), (1, "INUSE"), (16, "ONHOLD"), (8, "RINGING"), (4, "UNAVAILABLE"))
_TALKING_DEVICE = frozenset({"INUSE", "BUSY", "ONHOLD", "RINGINUSE"})
_GONE_DEVICE = frozenset({"UNAVAILABLE", "INVALID"})

# Channel states (AST_STATE_*): 0 Down (a handset channel being dialled, not yet
# alerting: its INVITE is out), 4 Ring (the handset is dialling out), 5 Ringing, 6 Up.
_DOWN, _RING_OUT, _RINGING, _UP = 0, 4, 5, 6
# A handset counted as ringing while its channel is Down; the Local ;1 half is
# excluded because a busy member's Local pipe is created Down and torn down at once.
_DIALLED = -1

_LOCAL_CHANNEL = re.compile(r"^Local/(?P<ext>[^@]+)@.+;(?P<side>[12])$")
_DEVICE_CHANNEL = re.compile(r"^(?:PJSIP|SIP|IAX2|DAHDI)/(?P<ext>[^-/@;]+)-[0-9a-fA-F]+$")
_INTERFACE = re.compile(
    r"^(?:(?:PJSIP|SIP|IAX2)/(?P<dev>[^/@;-]+)|Custom:(?P<custom>.+)|hint:(?P<hint>[^@]+)@.*|Local/(?P<local>[^@]+)@.*)$"
)


def extension_state_name(status: str) -> str:
    """Map an ``ExtensionStatus`` Status number to a device state name."""
    try:
        bits = int(status)
    except ValueError:
        return "UNKNOWN"
    if bits < 0:
        return "INVALID"
    if bits == 0:
        return "NOT_INUSE"
    if bits & 1 and bits & 8:
        return "RINGINUSE"
    for bit, name in _EXTENSION_BITS:
        if bits & bit:
            return name
    return "UNKNOWN"


@dataclass(frozen=True, slots=True)
class Line:
    """What the routing decision needs to know about one manager's line."""

    extension: str
    state: LineState
    # When the line started ringing / talking / last stopped talking (event time).
    ringing_since: float | None = None
    in_call_since: float | None = None
    idle_since: float | None = None
    paused: bool = False
    queues: tuple[str, ...] = ()
    # Callers waiting in the queues this manager serves.
    waiting: int = 0
    # Whether any event ever mentioned the line.
    known: bool = False


@dataclass(frozen=True, slots=True)
class WaitingCaller:
    """A caller waiting in a queue, as a queue event or a ``QueueStatus`` answer named it."""

    queue: str
    uniqueid: str
    channel: str = ""
    number: str = ""
    name: str = ""
    # The caller's call; None when learnt from ``QueueEntry``, which names only the channel.
    linkedid: str | None = None
    # When it joined the queue, on the PBX's clock (None when not known).
    joined_at: float | None = None


@dataclass(slots=True)
class _Channel:
    state: int
    since: float | None


@dataclass(slots=True)
class _LineData:
    channels: dict[str, _Channel] = field(default_factory=dict)
    device: str | None = None
    device_since: float | None = None
    paused_in: set[str] = field(default_factory=set)
    member_of: set[str] = field(default_factory=set)
    last_call_end: float | None = None


def _ts(event: Frame) -> float | None:
    return event_timestamp(event)


class LineStates:
    """Managers' lines and waiting callers; feed it every AMI event in order."""

    def __init__(self, extension_pattern: str = r"^\d{2,5}$") -> None:
        self._pattern = re.compile(extension_pattern)
        self._lines: dict[str, _LineData] = {}
        # queue -> caller channel uniqueid -> caller, in the order they joined
        self._waiting: dict[str, dict[str, WaitingCaller]] = {}
        # Told after forget() and refresh(): whoever shows the states (the wallboard) learns of
        # a wholesale change that no event announces. Events are told by whoever feeds them.
        self.on_rebuilt: list[Callable[[], None]] = []

    # ----- reading -----------------------------------------------------------------

    def extensions(self) -> list[str]:
        """Every extension any event mentioned, sorted."""
        return sorted(self._lines)

    def line(self, extension: str) -> Line:
        """The line of one extension (idle and not ``known`` when nothing was heard of it)."""
        data = self._lines.get(extension)
        if data is None:
            return Line(extension=extension, state=LineState.IDLE)
        state, since = self._derive(data)
        return Line(
            extension=extension,
            state=state,
            ringing_since=since if state is LineState.RINGING else None,
            in_call_since=since if state is LineState.IN_CALL else None,
            idle_since=data.last_call_end,
            paused=bool(data.paused_in),
            queues=tuple(sorted(data.member_of)),
            waiting=self.waiting_for(extension),
            known=True,
        )

    def lines(self) -> dict[str, Line]:
        """All known lines by extension."""
        return {ext: self.line(ext) for ext in self.extensions()}

    def in_state(self, state: LineState) -> set[str]:
        """Extensions whose line is in that state now."""
        return {ext for ext in self._lines if self._derive(self._lines[ext])[0] is state}

    def waiting_in(self, queue: str) -> int:
        """Callers waiting in a queue now."""
        return len(self._waiting.get(queue, {}))

    def waiting_queues(self) -> dict[str, int]:
        """Callers waiting per queue (queues with nobody waiting included once seen)."""
        return {q: len(c) for q, c in sorted(self._waiting.items())}

    def waiting_callers(self) -> list[WaitingCaller]:
        """Every caller waiting now, queue by queue, each queue in the order it joined (or was listed)."""
        return [caller for _queue, callers in sorted(self._waiting.items()) for caller in callers.values()]

    def waiting_for(self, extension: str) -> int:
        """Callers waiting in the queues this manager is a member of."""
        data = self._lines.get(extension)
        if data is None:
            return 0
        return sum(self.waiting_in(q) for q in data.member_of)

    def _derive(self, data: _LineData) -> tuple[LineState, float | None]:
        talking = [c.since for c in data.channels.values() if c.state in (_UP, _RING_OUT)]
        ringing = [c.since for c in data.channels.values() if c.state in (_RINGING, _DIALLED)]
        if talking:
            return LineState.IN_CALL, _earliest(talking)
        if ringing:
            return LineState.RINGING, _earliest(ringing)
        if data.device in _TALKING_DEVICE:
            return LineState.IN_CALL, data.device_since
        if data.device == "RINGING":
            return LineState.RINGING, data.device_since
        if data.device in _GONE_DEVICE:
            return LineState.UNAVAILABLE, data.device_since
        if data.paused_in:
            return LineState.PAUSED, None
        return LineState.IDLE, None

    # ----- events ------------------------------------------------------------------

    def feed(self, event: Frame) -> None:
        """Apply one AMI event (anything else is ignored)."""
        name = event.get("Event", "")
        handler = _HANDLERS.get(name.lower())
        if handler is not None:
            handler(self, event)

    def feed_all(self, events: Iterable[Frame]) -> None:
        """Apply events in order."""
        for event in events:
            self.feed(event)

    def forget(self) -> None:
        """Drop everything: the AMI session that told it has ended, so none of it can be trusted.

        Until the next login's lists (``refresh``) every line is unknown (idle, not ``known``)
        and nobody is waiting: a caller who was waiting may have been answered or hung up
        meanwhile, and the events saying so are lost with the session.
        """
        self._lines.clear()
        self._waiting.clear()
        self._tell_rebuilt()

    def refresh(self, responses: Iterable[Frame], now: float | None = None) -> None:
        """Rebuild everything from list responses asked after a (re)connect.

        ``responses`` are the events answering ``ExtensionStateList``
        (``ExtensionStatus``), ``QueueStatus`` (``QueueMember``, ``QueueEntry``)
        and ``CoreShowChannels`` (``CoreShowChannel``), in any order; ``now``
        (the PBX's time, when known) dates ringing, calls and waits from their duration.
        """
        self._lines.clear()
        self._waiting.clear()
        for frame in responses:
            name = frame.get("Event", "").lower()
            if name == "extensionstatus":
                self._extension_status(frame)
            elif name == "queuemember":
                self._queue_member(frame, interface_key="Location")
            elif name == "queueparams":
                self._waiting.setdefault(frame.get("Queue", ""), {})
            elif name == "queueentry":
                self._queue_entry(frame, now)
            elif name == "coreshowchannel":
                since = None
                if now is not None:
                    since = now - _duration_s(frame.get("Duration", ""))
                self._channel_state(frame.get("Channel", ""), _int(frame.get("ChannelState")), since)
        self._tell_rebuilt()

    def _tell_rebuilt(self) -> None:
        for subscriber in self.on_rebuilt:
            subscriber()

    def _queue_entry(self, frame: Frame, now: float | None) -> None:
        # Asterisk lists a waiting caller as QueueEntry: its channel, caller id and the
        # seconds it has waited (Wait), but not its Linkedid.
        wait = _float(frame.get("Wait"))
        joined_at = now - wait if now is not None and wait is not None else None
        self._add_caller(frame, joined_at, linkedid=None)

    def _add_caller(self, frame: Frame, joined_at: float | None, linkedid: str | None) -> None:
        queue = frame.get("Queue", "")
        uid = frame.get("Uniqueid") or frame.get("Channel", "")
        # A channel waits in one queue at a time: joining another means it left the last.
        for callers in self._waiting.values():
            callers.pop(uid, None)
        self._waiting.setdefault(queue, {})[uid] = WaitingCaller(
            queue=queue,
            uniqueid=uid,
            channel=frame.get("Channel", ""),
            number=frame.get("CallerIDNum", ""),
            name=frame.get("CallerIDName", ""),
            linkedid=linkedid,
            joined_at=joined_at,
        )

    # ----- handlers ----------------------------------------------------------------

    def _ext(self, raw: str | None) -> str | None:
        if raw and self._pattern.match(raw):
            return raw
        return None

    def _data(self, ext: str) -> _LineData:
        return self._lines.setdefault(ext, _LineData())

    def _handset(self, channel: str) -> str | None:
        """The extension whose handset a channel is; None for trunks, callers, ``;2`` halves."""
        m = _DEVICE_CHANNEL.match(channel)
        if m:
            return self._ext(m["ext"])
        m = _LOCAL_CHANNEL.match(channel)
        # The ;1 half is what the queue or Originate dialled; the ;2 half only runs dialplan.
        if m and m["side"] == "1":
            return self._ext(m["ext"])
        return None

    def _interface_ext(self, interface: str | None) -> tuple[str | None, bool]:
        """(extension, whether its state is trustworthy) for a device/interface name."""
        if not interface:
            return None, False
        m = _INTERFACE.match(interface)
        if not m:
            return None, False
        if m["local"]:
            return self._ext(m["local"]), False
        return self._ext(m["dev"] or m["custom"] or m["hint"]), True

    def _channel_state(self, channel: str, state: int | None, ts: float | None) -> None:
        ext = self._handset(channel)
        if ext is None or state is None:
            return
        if state == _DOWN:
            if not _DEVICE_CHANNEL.match(channel):
                return
            state = _DIALLED
        data = self._data(ext)
        known = data.channels.get(channel)
        if known is None or known.state != state:
            data.channels[channel] = _Channel(state, ts)

    def _on_channel(self, event: Frame) -> None:
        self._channel_state(event.get("Channel", ""), _int(event.get("ChannelState")), _ts(event))

    def _on_hangup(self, event: Frame) -> None:
        channel = event.get("Channel", "")
        uid = event.get("Uniqueid", "")
        for callers in self._waiting.values():
            callers.pop(uid, None)
        ext = self._handset(channel)
        if ext is None:
            return
        data = self._data(ext)
        gone = data.channels.pop(channel, None)
        if gone is not None and gone.state in (_UP, _RING_OUT):
            data.last_call_end = _ts(event)

    def _on_device(self, event: Frame) -> None:
        ext, trusted = self._interface_ext(event.get("Device"))
        if ext is None or not trusted:
            return
        self._set_device(ext, event.get("State", "UNKNOWN"), _ts(event))

    def _set_device(self, ext: str, state: str, ts: float | None) -> None:
        data = self._data(ext)
        if data.device in _TALKING_DEVICE and state not in _TALKING_DEVICE and state not in _GONE_DEVICE:
            data.last_call_end = ts if ts is not None else data.last_call_end
        if data.device != state:
            data.device = state
            data.device_since = ts

    def _extension_status(self, event: Frame) -> None:
        ext = self._ext(event.get("Exten"))
        if ext is None:
            return
        self._set_device(ext, extension_state_name(event.get("Status", "")), _ts(event))

    def _queue_member(self, event: Frame, interface_key: str = "Interface") -> None:
        queue = event.get("Queue", "")
        interface = event.get(interface_key) or event.get("Interface")
        state_interface = event.get("StateInterface") or interface
        ext, _ = self._interface_ext(interface)
        state_ext, trusted = self._interface_ext(state_interface)
        ext = ext or state_ext
        if ext is None:
            return
        data = self._data(ext)
        data.member_of.add(queue)
        self._waiting.setdefault(queue, {})
        if event.get("Paused") == "1":
            data.paused_in.add(queue)
        elif "Paused" in event:
            data.paused_in.discard(queue)
        last_call = _float(event.get("LastCall"))
        if last_call:
            data.last_call_end = max(data.last_call_end or 0.0, last_call)
        # A Local state interface reports INUSE while merely ringing: not a device state.
        if trusted and "Status" in event:
            self._set_device(ext, _DEVICE_BY_NUMBER.get(event["Status"], "UNKNOWN"), _ts(event))

    def _on_pause(self, event: Frame) -> None:
        queue = event.get("Queue", "")
        ext, _ = self._interface_ext(event.get("Interface") or event.get("Location"))
        if ext is None:
            ext, _ = self._interface_ext(event.get("StateInterface"))
        if ext is None:
            return
        data = self._data(ext)
        data.member_of.add(queue)
        if event.get("Paused") == "1":
            data.paused_in.add(queue)
        else:
            data.paused_in.discard(queue)

    def _on_member_removed(self, event: Frame) -> None:
        ext, _ = self._interface_ext(event.get("Interface") or event.get("Location"))
        if ext is None or ext not in self._lines:
            return
        queue = event.get("Queue", "")
        self._lines[ext].member_of.discard(queue)
        self._lines[ext].paused_in.discard(queue)

    def _on_agent_event(self, event: Frame) -> None:
        # AgentCalled & co. name the member's interface: membership known before any status change.
        ext, _ = self._interface_ext(event.get("Interface"))
        if ext is not None and event.get("Queue"):
            self._data(ext).member_of.add(event["Queue"])

    def _on_caller_join(self, event: Frame) -> None:
        self._add_caller(event, _ts(event), linkedid=event.get("Linkedid") or None)

    def _on_caller_leave(self, event: Frame) -> None:
        queue = event.get("Queue", "")
        uid = event.get("Uniqueid") or event.get("Channel", "")
        self._waiting.setdefault(queue, {}).pop(uid, None)


_HANDLERS = {
    "newchannel": LineStates._on_channel,
    "newstate": LineStates._on_channel,
    "hangup": LineStates._on_hangup,
    "devicestatechange": LineStates._on_device,
    "extensionstatus": LineStates._extension_status,
    "queuememberstatus": LineStates._queue_member,
    "queuememberadded": LineStates._queue_member,
    "queuememberremoved": LineStates._on_member_removed,
    "queuememberpause": LineStates._on_pause,
    "queuememberpaused": LineStates._on_pause,
    "agentcalled": LineStates._on_agent_event,
    "agentconnect": LineStates._on_agent_event,
    "agentcomplete": LineStates._on_agent_event,
    "agentringnoanswer": LineStates._on_agent_event,
    "queuecallerjoin": LineStates._on_caller_join,
    "queuecallerleave": LineStates._on_caller_leave,
}


def _earliest(times: list[float | None]) -> float | None:
    known = [t for t in times if t is not None]
    return min(known) if known else None


def _int(raw: str | None) -> int | None:
    try:
        return int(raw) if raw is not None else None
    except ValueError:
        return None


def _float(raw: str | None) -> float | None:
    try:
        return float(raw) if raw else None
    except ValueError:
        return None


def _duration_s(raw: str) -> float:
    """``HH:MM:SS`` (CoreShowChannel Duration) to seconds."""
    try:
        parts = [int(p) for p in raw.split(":")]
    except ValueError:
        return 0.0
    total = 0
    for part in parts:
        total = total * 60 + part
    return float(total)


def changes_lines(event: Frame) -> bool:
    """Whether line states move on this event; any other event leaves them as they are."""
    return event.get("Event", "").lower() in _HANDLERS
