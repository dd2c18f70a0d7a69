"""The call tracker: AMI events in, finished calls out.

One call is one Asterisk ``Linkedid``: every channel created on behalf of a
call (queue members, Local pipes, the trunk leg of an outbound call) inherits
the linkedid of the channel that started it.  A call is finished when the
last of its channels has hung up.

The tracker is pure: it does no I/O and reads no clock.  Each event's time is
Asterisk's ``Timestamp`` header (``timestampevents = yes``) or, without it,
the time the caller says the event was received.
"""

from __future__ import annotations

import re
import sys
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from pbxbridge.calls.channels import ChannelName, local_partner, parse_channel
from pbxbridge.calls.model import (
    CallStatus,
    ClosedBy,
    Direction,
    FailureReason,
    FinishedCall,
)

# The file MixMonitor records to.
RECORDING_VARIABLE = "MIXMONITOR_FILENAME"
# app_voicemail's own record of a message left: the file it wrote (no extension).
VOICEMAIL_FILE_VARIABLE = "VM_MESSAGEFILE"
# Every variable whose VarSet the tracker reads (the daemon lets these through its event filter).
TRACKER_VARIABLES = frozenset({RECORDING_VARIABLE, VOICEMAIL_FILE_VARIABLE})

Event = Mapping[str, str]

# FreePBX's contexts for calls arriving from a trunk.
DEFAULT_INBOUND_CONTEXTS = (
    "from-trunk",
    "from-pstn",
    "from-did-direct",
    "ext-did",
    "ext-did-0001",
    "ext-did-0002",
    "from-sip-external",
    "from-pstn-e164-us",
    "from-pstn-toheader",
)
# FreePBX's contexts where a handset's own calls run.
DEFAULT_INTERNAL_CONTEXTS = (
    "from-internal",
    "from-internal-xfer",
    "from-internal-noxfer",
    "from-internal-additional",
    "ext-local",
    "outbound-allroutes",
)
_UNKNOWN_NUMBERS = {"", "<unknown>", "unknown", "anonymous", "s"}
# Rings that start within this many seconds of each other are one wave
# (ringall, or a ring group): their order is by extension, not by the
# microseconds Asterisk happened to take between them.
RING_TIE_S = 1.0
# Late events (Cdr, CEL, VarSet after the last hangup) must not resurrect a
# finished call; remember this many finished linkedids.
FINISHED_MEMORY = 20_000
# Far above any real PBX's concurrent calls; a stream that opens more (a
# broken or hostile peer) must not grow memory without bound.
MAX_OPEN_CALLS = 50_000
MAX_CHANNELS_PER_CALL = 500
MAX_BRIDGES = 100_000
# Dial outcomes in which the handset never alerted anyone.
_REFUSALS = frozenset({"BUSY", "CONGESTION", "CHANUNAVAIL"})
# A click-to-call whose first leg (the manager's handset) failed is over before
# Asterisk's OriginateResponse says which number it was for; the call waits for
# it this long (in event time) before it is given out without the number.
ORIGINATE_WAIT_S = 5.0
# Warnings about bad input kept until taken (a hostile stream must not grow them).
MAX_WARNINGS = 1000
# OriginateResponse Reason codes (Asterisk's control frame types) for the manager's leg.
_ORIGINATE_REFUSED = frozenset({"1", "5", "8"})  # hung up, busy, congestion
_ORIGINATE_NO_ANSWER = frozenset({"3"})
# What the caller's wait stood at while they were still waiting for a manager.
_STILL_WAITING = frozenset({"queue", "ringing", "abandoned", "CANCEL"})
# A transfer's destination that is a phone number, not an extension.
_PHONE_NUMBER = re.compile(r"^\+?\d{5,}$")
_INTERFACE_EXT = re.compile(r"^[A-Za-z0-9_]+/(?P<ext>[^@/-]+)")


@dataclass(frozen=True, slots=True)
class TrackerSettings:
    pbx: str = "main"
    inbound_contexts: tuple[str, ...] = DEFAULT_INBOUND_CONTEXTS
    internal_contexts: tuple[str, ...] = DEFAULT_INTERNAL_CONTEXTS
    # Extensions of managers' handsets; client numbers are longer.
    extension_pattern: str = r"^\d{2,5}$"


@dataclass(slots=True)
class _Channel:
    uid: str
    name: ChannelName
    linkedid: str
    created_at: float
    caller_num: str = ""
    # Dialplan contexts the channel ran in, in order, and the first extension
    # seen in each (the DID for a trunk context, the dialled number in
    # from-internal).
    contexts: list[str] = field(default_factory=list)
    first_exten: dict[str, str] = field(default_factory=dict)
    exten: str = ""
    hung_up: bool = False
    # Bridges the channel is in (rarely more than one): a list, a quarter of an empty set's
    # size, for every channel of every call in flight.
    bridges: list[str] = field(default_factory=list)
    # Time this channel was dialled (DialBegin naming it as destination).
    dialled_at: float | None = None
    dialled_by: str | None = None
    rang_at: float | None = None
    answered_as_dest: bool = False
    # The handset refused the call (busy, unavailable): it did not ring.
    refused: bool = False
    # Set by the first hangup request: True when the far end hung up
    # (HangupRequest), False when Asterisk itself ended it (SoftHangupRequest).
    remote_hangup: bool | None = None
    in_queue: str | None = None
    # The dialplan application the channel ran last (Newexten).
    app: str = ""


@dataclass(slots=True)
class _Dial:
    caller: str
    dest: str
    started_at: float
    status: str | None = None
    ended_at: float | None = None


@dataclass(slots=True)
class _Call:
    linkedid: str
    started_at: float
    origin: str | None = None
    channels: dict[str, _Channel] = field(default_factory=dict)
    open_channels: int = 0
    last_event_at: float = 0.0
    queues: list[str] = field(default_factory=list)
    dials: list[_Dial] = field(default_factory=list)
    answered_at: float | None = None
    answered_dest: str | None = None
    # Extensions of handsets that were bridged with the client, in order
    # (kept as extensions: the handset's channel may belong to another call).
    bridged_handsets: list[str] = field(default_factory=list)
    transferred_to: list[str] = field(default_factory=list)
    recording_files: list[str] = field(default_factory=list)
    # How the caller's last wait for a manager stood: "queue" (waiting in a
    # queue), "abandoned" (left it by hanging up), "queue_timeout" (the queue
    # gave up), "ringing" (a dial under way) or the dial's DialStatus.  Tells
    # a caller who gave up from one the PBX gave up on.
    wait_outcome: str | None = None
    originated: bool = False
    member_names: dict[str, str] = field(default_factory=dict)
    # Whether the caller's channel was ended by the far end (True: the caller
    # hung up) or by Asterisk (False: the dialplan or a time-out), and where
    # the wait stood at that moment.
    caller_hung_up: bool | None = None
    wait_at_hangup: str | None = None
    # The caller reached voicemail, and the message file when one was left.
    voicemail: bool = False
    voicemail_file: str | None = None
    # Click-to-call: how Asterisk's dial of the manager's handset (the
    # Originate's first leg) ended, and what its OriginateResponse said.
    originate_status: str | None = None
    originate_exten: str | None = None
    originate_reason: str | None = None
    # Ringing channels picked up from another handset: channel uid -> the extension that picked up.
    pickups: dict[str, str] = field(default_factory=dict)


_CALL_FIELDS = tuple(
    f.name for f in fields(_Call) if f.name not in ("channels", "dials")
)
_CHANNEL_FIELDS = tuple(f.name for f in fields(_Channel) if f.name != "bridges")
_DIAL_FIELDS = tuple(f.name for f in fields(_Dial))


def _detached(value: Any) -> Any:
    """A copy of a list or dict of strings and numbers; anything else as it is."""
    if isinstance(value, list):
        return list(value)
    if isinstance(value, dict):
        return dict(value)
    return value


class CallTracker:
    """Pure: no I/O, no clock; feed it events with the time they were received."""

    def __init__(self, settings: TrackerSettings | None = None) -> None:
        self.settings = settings or TrackerSettings()
        self._ext_re = re.compile(self.settings.extension_pattern)
        self._inbound = frozenset(self.settings.inbound_contexts)
        self._internal = frozenset(self.settings.internal_contexts)
        self._calls: dict[str, _Call] = {}
        self._by_uid: dict[str, _Call] = {}
        self._uid_by_name: dict[str, str] = {}
        self._bridges: dict[str, list[str]] = {}
        self._finished: OrderedDict[str, None] = OrderedDict()
        self._handlers: dict[str, Callable[[Event, float], None]] = {
            "Newchannel": self._on_newchannel,
            "Newstate": self._on_newstate,
            "NewCallerid": self._on_snapshot,
            "NewConnectedLine": self._on_snapshot,
            "Newexten": self._on_newexten,
            "DialBegin": self._on_dial_begin,
            "DialState": self._on_dial_state,
            "DialEnd": self._on_dial_end,
            "QueueCallerJoin": self._on_queue_join,
            "QueueCallerLeave": self._on_queue_leave,
            "QueueCallerAbandon": self._on_queue_abandon,
            "AgentCalled": self._on_agent_called,
            "AgentConnect": self._on_agent_connect,
            "BridgeEnter": self._on_bridge_enter,
            "BridgeLeave": self._on_bridge_leave,
            "BlindTransfer": self._on_blind_transfer,
            "AttendedTransfer": self._on_attended_transfer,
            "VarSet": self._on_varset,
            "OriginateResponse": self._on_originate_response,
            "HangupRequest": self._on_hangup_request,
            "SoftHangupRequest": self._on_hangup_request,
            "Rename": self._on_rename,
            "Pickup": self._on_pickup,
        }
        self._done: list[FinishedCall] = []
        # Calls changed since take_dirty(): what a persisted snapshot must rewrite.
        self._dirty: set[str] = set()
        self._ext_cache: dict[str, str | None] = {}
        # Calls over but for the OriginateResponse that names their number (see ORIGINATE_WAIT_S).
        self._held: dict[str, tuple[_Call, float]] = {}
        # Linkedids taken into another call (a consultation, a pickup) -> that call's linkedid.
        self._merged: OrderedDict[str, str] = OrderedDict()
        self._warnings: list[tuple[str, str]] = []

    # ------------------------------------------------------------------ API

    def feed(self, event: Event, received_at: float) -> list[FinishedCall]:
        """Take one AMI event; return the calls it finished (usually none)."""
        kind = event.get("Event")
        if kind is None:
            return []
        t = _event_time(event, received_at)
        if kind == "Hangup":
            finished = self._on_hangup(event, t)
        else:
            handler = self._handlers.get(kind)
            if handler is not None:
                handler(event, t)
            finished = []
        if self._held:
            self._release_due(t)
        if self._done:
            finished = self._done + finished
            self._done = []
        return finished

    def release_held(self, now: float) -> list[FinishedCall]:
        """Give out held calls whose wait is over by ``now`` (event time; ``inf`` for all)."""
        self._release_due(now)
        done, self._done = self._done, []
        return done

    def end_of_stream(self, now: float) -> list[FinishedCall]:
        """The stream is over (a capture's end): every call still open or held is given out.

        A call still up at the end of a capture was cut, not finished: it is
        closed at the last event heard of it, as after a reconnect, and named
        in a warning.
        """
        out = self.release_held(float("inf"))
        for call in list(self._calls.values()):
            self._warn(call.linkedid, "the stream ended while the call was in progress; closed at its last event")
            out.append(self._finish(call, ClosedBy.RECONCILE))
        return out

    @property
    def has_warnings(self) -> bool:
        """Whether take_warnings() has anything (asked after every event: no list is made for it)."""
        return bool(self._warnings)

    def take_warnings(self) -> list[tuple[str, str]]:
        """(linkedid, what was wrong) for bad input seen since the last call."""
        warnings, self._warnings = self._warnings, []
        return warnings

    def _warn(self, linkedid: str, message: str) -> None:
        if len(self._warnings) < MAX_WARNINGS:
            self._warnings.append((linkedid, message))

    def reconcile(self, live_linkedids: set[str], now: float) -> list[FinishedCall]:
        """Close calls Asterisk no longer has (after a restart or reconnect).

        Their end was not seen, so it is taken as the last event heard of
        them: what is certain, rather than ``now``, which may be hours later.
        Knowing only linkedids, it cannot tell which channels are gone: see
        reconcile_channels() for the CoreShowChannels answer itself.
        """
        return self.reconcile_channels([], live_linkedids, now)

    def active_linkedids(self) -> set[str]:
        return set(self._calls)

    def active_count(self) -> int:
        """How many calls are in progress (without copying their ids, as gauges ask often)."""
        return len(self._calls)

    def reconcile_channels(self, listed: list[Event], seen: set[str], now: float) -> list[FinishedCall]:
        """Bring the tracker in line with a CoreShowChannels answer.

        ``listed`` are the CoreShowChannel events; ``seen`` the linkedids heard
        in events while the list was on its way (alive even if not listed).
        Channels the tracker missed (it started mid-call) are taken on, dated
        from the channel's ``Duration``; channels it thinks open but Asterisk
        no longer has are hung up; calls left with no channel are finished.
        """
        live_calls = {e.get("Linkedid", "") for e in listed} - {""}
        live_uids = {e.get("Uniqueid", "") for e in listed} - {""}
        for event in listed:
            if event.get("Uniqueid") not in self._by_uid:
                self._channel(event, now - _duration_s(event.get("Duration", "")))
        out = [self._finish(c, ClosedBy.RECONCILE) for lid, c in list(self._calls.items())
               if lid not in live_calls and lid not in seen]
        for lid, call in list(self._calls.items()):
            if lid in seen:
                continue
            for ch in call.channels.values():
                if not ch.hung_up and ch.uid not in live_uids:
                    ch.hung_up = True
                    call.open_channels -= 1
            if call.open_channels <= 0:
                out.append(self._finish(call, ClosedBy.RECONCILE))
        return out

    def take_dirty(self) -> set[str]:
        """Linkedids of open calls changed since the last call, and finished ones gone."""
        dirty, self._dirty = self._dirty, set()
        return dirty

    def dirty_count(self) -> int:
        """How many calls changed since the last take_dirty() (what a save has yet to take)."""
        return len(self._dirty)

    def is_open(self, linkedid: str) -> bool:
        """Whether the call is in progress."""
        return linkedid in self._calls

    def snapshot(self, linkedid: str) -> dict[str, Any] | None:
        """An open call's whole state as JSON-ready data (None when not open).

        The live call's lists and dicts keep changing while a save waits: the
        snapshot holds copies of them. They hold only strings and numbers, so
        one level of copying detaches it (a deep copy cost a save several
        times more, on the event loop).
        """
        call = self._calls.get(linkedid)
        if call is None:
            return None
        data = {k: _detached(getattr(call, k)) for k in _CALL_FIELDS}
        data["channels"] = [
            {k: (_detached(getattr(ch, k)) if k != "name" else ch.name.raw) for k in _CHANNEL_FIELDS}
            | {"bridges": sorted(ch.bridges)}
            for ch in call.channels.values()
        ]
        data["dials"] = [{k: getattr(d, k) for k in _DIAL_FIELDS} for d in call.dials]
        return data

    def restore(self, data: Mapping[str, Any]) -> None:
        """Take back an open call saved by snapshot() (after a restart)."""
        linkedid = str(data["linkedid"])
        if linkedid in self._calls or linkedid in self._finished:
            return
        # Snapshots saved by an older version lack newer fields: those keep their defaults.
        call = _Call(**{k: data[k] for k in _CALL_FIELDS if k in data})
        call.dials = [_Dial(**d) for d in data.get("dials", [])]
        for raw in data.get("channels", []):
            fields = {k: raw[k] for k in _CHANNEL_FIELDS if k != "name" and k in raw}
            ch = _Channel(name=parse_channel(raw["name"]), **fields)
            ch.bridges = list(dict.fromkeys(raw.get("bridges", [])))
            call.channels[ch.uid] = ch
            if not ch.hung_up:
                self._by_uid[ch.uid] = call
                self._uid_by_name[ch.name.raw] = ch.uid
            for bridge in ch.bridges:
                self._bridges.setdefault(bridge, []).append(ch.uid)
        self._calls[linkedid] = call

    def active_calls(self) -> list[dict[str, object]]:
        """A snapshot of calls in progress, for the wallboard."""
        out: list[dict[str, object]] = []
        for call in self._calls.values():
            direction = self._direction(call)
            out.append(
                {
                    "pbx": self.settings.pbx,
                    "linkedid": call.linkedid,
                    "direction": direction.value,
                    "client_number": self._client_number(call, direction),
                    "manager": self._manager(call, direction),
                    "started_at": call.started_at,
                    "answered_at": call.answered_at,
                    "queues": list(call.queues),
                    "waiting": call.answered_at is None
                    and any(ch.in_queue for ch in call.channels.values()),
                    "ringing": self._rang(call, direction, only_ringing=True),
                }
            )
        return out

    # ------------------------------------------------------------ channels

    def _channel(self, event: Event, t: float, prefix: str = "", create: bool = True) -> _Channel | None:
        uid = event.get(prefix + "Uniqueid")
        if not uid:
            return None
        call = self._by_uid.get(uid)
        if call is not None:
            ch = call.channels[uid]
        else:
            if not create:
                return None
            linkedid = event.get(prefix + "Linkedid") or uid
            linkedid = self._merged.get(linkedid, linkedid)
            name = event.get(prefix + "Channel")
            if not name or linkedid in self._finished:
                return None
            call = self._calls.get(linkedid)
            if call is None:
                if len(self._calls) >= MAX_OPEN_CALLS:
                    self._evict_quietest()
                call = _Call(linkedid=linkedid, started_at=t)
                self._calls[linkedid] = call
            elif len(call.channels) >= MAX_CHANNELS_PER_CALL:
                return None
            ch = _Channel(uid=uid, name=parse_channel(name), linkedid=linkedid, created_at=t)
            call.channels[uid] = ch
            call.open_channels += 1
            self._by_uid[uid] = call
            self._uid_by_name[name] = uid
            if uid == linkedid or call.origin is None:
                call.origin = uid
                call.started_at = min(call.started_at, t)
        call.last_event_at = max(call.last_event_at, t)
        self._dirty.add(call.linkedid)
        self._update_snapshot(ch, event, prefix)
        return ch

    def _evict_quietest(self) -> None:
        quietest = min(self._calls.values(), key=lambda c: c.last_event_at)
        self._done.append(self._finish(quietest, ClosedBy.EVICTED))

    def _update_snapshot(self, ch: _Channel, event: Event, prefix: str) -> None:
        num = event.get(prefix + "CallerIDNum")
        if num and not ch.caller_num and num.lower() not in _UNKNOWN_NUMBERS:
            ch.caller_num = num
        context = event.get(prefix + "Context")
        if context:
            exten = event.get(prefix + "Exten", "")
            ch.exten = exten
            if not ch.contexts or ch.contexts[-1] != context:
                # A handful of dialplan contexts, named by every channel of every call in
                # flight: one shared copy each instead of the event's own.
                ch.contexts.append(sys.intern(context))
            if exten and exten not in _UNKNOWN_NUMBERS and context not in ch.first_exten:
                ch.first_exten[sys.intern(context)] = exten

    def _call_of(self, uid: str | None) -> _Call | None:
        return self._by_uid.get(uid) if uid else None

    def _on_snapshot(self, event: Event, t: float) -> None:
        self._channel(event, t)

    def _on_newexten(self, event: Event, t: float) -> None:
        ch = self._channel(event, t)
        app = event.get("Application")
        if ch is None or not app:
            return
        ch.app = app
        if app == "VoiceMail":
            call = self._by_uid[ch.uid]
            if ch.uid == call.origin:
                call.voicemail = True

    def _on_newchannel(self, event: Event, t: float) -> None:
        ch = self._channel(event, t)
        if ch is not None and ch.name.is_local and ch.name.local_side == 1:
            # A Local ;1 channel's Newchannel names the context its ;2 end
            # will run, not its own: drop it so direction is read from what
            # the ;1 end itself executes.
            ctx = ch.name.local_context
            if ch.contexts and ch.contexts[0] == ctx:
                ch.contexts.pop(0)
                ch.first_exten.pop(ctx or "", None)

    def _on_newstate(self, event: Event, t: float) -> None:
        ch = self._channel(event, t)
        if ch is None:
            return
        state = event.get("ChannelStateDesc")
        if state == "Ringing" and ch.rang_at is None:
            ch.rang_at = t
        elif state == "Busy":
            ch.refused = True
            partner = self._local_partner(self._by_uid[ch.uid], ch)
            if partner is not None:
                partner.refused = True

    def _on_rename(self, event: Event, t: float) -> None:
        old, new, uid = event.get("Channel"), event.get("Newname"), event.get("Uniqueid")
        call = self._call_of(uid)
        if call is None or not new or not uid:
            return
        self._uid_by_name.pop(old or "", None)
        self._uid_by_name[new] = uid
        call.channels[uid].name = parse_channel(new)

    # ---------------------------------------------------------------- dials

    def _on_dial_begin(self, event: Event, t: float) -> None:
        dest = self._channel(event, t, "Dest")
        if dest is None:
            return
        dest.dialled_at = t if dest.dialled_at is None else dest.dialled_at
        caller = self._channel(event, t)
        call = self._by_uid[dest.uid]
        if caller is None:
            # No calling channel: Asterisk dials the first leg of an Originate.
            if dest.uid == call.origin:
                call.originated = True
            return
        dest.dialled_by = caller.uid
        call_of_caller = self._by_uid[caller.uid]
        call_of_caller.dials.append(_Dial(caller=caller.uid, dest=dest.uid, started_at=t))
        if caller.uid == call_of_caller.origin:
            if not caller.in_queue:
                call_of_caller.wait_outcome = "ringing"
            exten = event.get("Exten", "")
            if exten and exten not in _UNKNOWN_NUMBERS:
                caller.first_exten.setdefault("@dial", exten)
            dial_string = event.get("DialString", "")
            if dial_string:
                caller.first_exten.setdefault("@dialstring", dial_string)

    def _on_dial_state(self, event: Event, t: float) -> None:
        dest = self._channel(event, t, "Dest")
        if dest is not None and event.get("DialStatus") == "RINGING" and dest.rang_at is None:
            dest.rang_at = t

    def _on_dial_end(self, event: Event, t: float) -> None:
        dest = self._channel(event, t, "Dest")
        caller = self._channel(event, t)
        if dest is None:
            return
        status = event.get("DialStatus", "")
        if caller is None:
            # Asterisk's own dial of an Originate's first leg: the manager's handset on a click-to-call.
            dest_call = self._by_uid[dest.uid]
            if dest.uid == dest_call.origin and status:
                dest_call.originate_status = status
            return
        call = self._by_uid[caller.uid]
        for dial in reversed(call.dials):
            if dial.caller == caller.uid and dial.dest == dest.uid and dial.status is None:
                dial.status = status
                dial.ended_at = t
                break
        if status in _REFUSALS:
            dest.refused = True
        if caller.uid == call.origin and not caller.in_queue and status:
            # A queue rings its members one after another; only a dial of the
            # caller's own (a ring group, an extension) ends its wait.
            call.wait_outcome = status
        if status == "ANSWER":
            dest.answered_as_dest = True
            if dest.rang_at is None:
                dest.rang_at = t
            if caller.uid == call.origin and call.answered_at is None and self._answers_call(call, dest):
                call.answered_at = t
                call.answered_dest = dest.uid

    def _answers_call(self, call: _Call, dest: _Channel) -> bool:
        """Whether the origin's dial reaching ``dest`` is the call's answer.

        Inbound and internal calls are answered by a handset; outbound calls
        by the far end, which is not a handset.
        """
        direction = self._direction(call)
        is_handset = self._handset_ext(dest) is not None
        return is_handset if direction is not Direction.OUTBOUND else not is_handset

    # --------------------------------------------------------------- queues

    def _on_queue_join(self, event: Event, t: float) -> None:
        ch = self._channel(event, t)
        if ch is None:
            return
        queue = event.get("Queue", "")
        call = self._by_uid[ch.uid]
        if queue and queue not in call.queues:
            call.queues.append(queue)
        ch.in_queue = queue or None
        if ch.uid == call.origin:
            call.wait_outcome = "queue"

    def _on_queue_leave(self, event: Event, t: float) -> None:
        ch = self._channel(event, t)
        if ch is None:
            return
        ch.in_queue = None
        call = self._by_uid[ch.uid]
        if ch.uid == call.origin and call.wait_outcome == "queue":
            # Left without hanging up (QueueCallerAbandon comes first when it
            # does): answered, or the queue timed out and the dialplan went on.
            call.wait_outcome = "queue_timeout"

    def _on_queue_abandon(self, event: Event, t: float) -> None:
        # app_queue sends this when the queue times out too (then QUEUESTATUS=TIMEOUT
        # and the dialplan goes on): only a caller who already hung up gave up.
        ch = self._channel(event, t)
        if ch is not None:
            gave_up = ch.remote_hangup is True
            self._by_uid[ch.uid].wait_outcome = "abandoned" if gave_up else "queue_timeout"

    def _on_agent_called(self, event: Event, t: float) -> None:
        ch = self._channel(event, t)
        self._channel(event, t, "Dest")
        if ch is not None:
            self._note_member(self._by_uid[ch.uid], event)

    def _on_agent_connect(self, event: Event, t: float) -> None:
        ch = self._channel(event, t)
        dest = self._channel(event, t, "Dest")
        if ch is None:
            return
        call = self._by_uid[ch.uid]
        self._note_member(call, event)
        if dest is not None and call.answered_at is None and ch.uid == call.origin:
            call.answered_at = t
            call.answered_dest = dest.uid

    def _note_member(self, call: _Call, event: Event) -> None:
        name, interface = event.get("MemberName"), event.get("Interface", "")
        m = _INTERFACE_EXT.match(interface)
        if name and m and self._ext_re.match(m["ext"]):
            call.member_names[m["ext"]] = name

    # -------------------------------------------------------------- bridges

    def _on_bridge_enter(self, event: Event, t: float) -> None:
        ch = self._channel(event, t)
        bridge = event.get("BridgeUniqueid")
        if ch is None or not bridge:
            return
        members = self._bridges.get(bridge)
        if members is None:
            if len(self._bridges) >= MAX_BRIDGES:
                return
            members = self._bridges[bridge] = []
        for other_uid in members:
            other_call = self._by_uid.get(other_uid)
            if other_call is None:
                continue
            other = other_call.channels[other_uid]
            self._note_bridged(self._by_uid[ch.uid], ch, other)
            self._note_bridged(other_call, other, ch)
        if ch.uid not in members:
            members.append(ch.uid)
            if bridge not in ch.bridges:
                ch.bridges.append(bridge)

    def _note_bridged(self, call: _Call, mine: _Channel, peer: _Channel) -> None:
        """Record a handset talking to this call's client."""
        if not self._is_client_side(call, mine):
            return
        peer_call = self._by_uid.get(peer.uid, call)
        ext = self._picked(peer_call, peer) or self._handset_ext(peer)
        if ext is not None:
            call.bridged_handsets.append(ext)

    def _on_bridge_leave(self, event: Event, t: float) -> None:
        ch = self._channel(event, t, create=False)
        bridge = event.get("BridgeUniqueid")
        if ch is None or not bridge:
            return
        if bridge in ch.bridges:
            ch.bridges.remove(bridge)
        self._leave_bridge(ch.uid, bridge)

    def _leave_bridge(self, uid: str, bridge: str) -> None:
        members = self._bridges.get(bridge)
        if members is not None:
            if uid in members:
                members.remove(uid)
            if not members:
                del self._bridges[bridge]

    # ------------------------------------------------------------ transfers

    def _on_blind_transfer(self, event: Event, t: float) -> None:
        # The target is an extension, or an outside number (a manager forwarding
        # the client to a mobile): both are where the client went.
        target = event.get("Extension", "")
        if event.get("Result", "Success") != "Success":
            return
        if not self._ext_re.match(target) and not _PHONE_NUMBER.match(target):
            return
        for key in ("TransfereeUniqueid", "TransfererUniqueid"):
            call = self._call_of(event.get(key))
            if call is not None:
                break
        else:
            call = self._call_by_name(event.get("TransfereeChannel")) or self._call_by_name(
                event.get("TransfererChannel")
            )
        if call is not None:
            call.transferred_to.append(target)
            call.last_event_at = max(call.last_event_at, t)

    def _on_attended_transfer(self, event: Event, t: float) -> None:
        """The consulted colleague takes the client.

        The consultation is a leg of the client's call: with Atxfer it already
        shares the call's linkedid; a handset's own transfer (SIP REFER) made
        it a call of its own, which becomes part of the client's call here.
        """
        if event.get("Result", "Success") != "Success":
            return
        target_uid = event.get("TransferTargetUniqueid")
        target_call = self._call_of(target_uid)
        if target_call is None or not target_uid:
            return
        target = target_call.channels[target_uid]
        ext = self._resolve_handset(target_call, target) or self._handset_ext(target)
        if ext is None and target.caller_num and self._ext_re.match(target.caller_num):
            ext = target.caller_num
        for key in ("TransfereeUniqueid", "OrigTransfererUniqueid"):
            call = self._call_of(event.get(key))
            if call is None:
                continue
            self._merge(call, target_call)
            self._merge(call, self._call_of(event.get("SecondTransfererUniqueid")))
            if ext is not None:
                call.transferred_to.append(ext)
            call.last_event_at = max(call.last_event_at, t)
            return

    def _on_pickup(self, event: Event, t: float) -> None:
        """A handset picked up a colleague's ringing line: it answered the call.

        The picking channel dialled a feature code (``*8``, ``**<ext>``) and so
        started a call of its own; that is a leg of the call it picked up.
        """
        picker = self._channel(event, t)
        target = self._channel(event, t, "Target", create=False)
        if picker is None or target is None:
            return
        call = self._by_uid[target.uid]
        ext = self._handset_ext(picker)
        if ext is None and picker.caller_num and self._ext_re.match(picker.caller_num):
            ext = picker.caller_num
        if ext is not None:
            call.pickups[target.uid] = ext
        self._merge(call, self._by_uid[picker.uid])
        call.last_event_at = max(call.last_event_at, t)

    def _merge(self, call: _Call, other: _Call | None) -> None:
        """Take another linkedid's channels into ``call``: they were a leg of it."""
        if other is None or other is call:
            return
        for uid, ch in other.channels.items():
            call.channels[uid] = ch
            self._by_uid[uid] = call
        call.open_channels += other.open_channels
        call.dials.extend(other.dials)
        call.recording_files.extend(f for f in other.recording_files if f not in call.recording_files)
        call.pickups.update(other.pickups)
        call.last_event_at = max(call.last_event_at, other.last_event_at)
        self._calls.pop(other.linkedid, None)
        self._merged[other.linkedid] = call.linkedid
        if len(self._merged) > FINISHED_MEMORY:
            self._merged.popitem(last=False)
        # Its saved in-progress state must go; the call it joined carries it now.
        self._dirty.add(other.linkedid)
        self._dirty.add(call.linkedid)

    def _call_by_name(self, name: str | None) -> _Call | None:
        uid = self._uid_by_name.get(name or "")
        return self._call_of(uid)

    # ----------------------------------------------------------- variables

    def _on_varset(self, event: Event, t: float) -> None:
        variable = event.get("Variable")
        if variable not in TRACKER_VARIABLES:
            return
        ch = self._channel(event, t)
        value = event.get("Value", "")
        if ch is None or not value:
            return
        call = self._by_uid[ch.uid]
        if variable == VOICEMAIL_FILE_VARIABLE:
            call.voicemail = True
            call.voicemail_file = value
            return
        if value not in call.recording_files:
            call.recording_files.append(value)

    def _on_originate_response(self, event: Event, t: float) -> None:
        ch = self._channel(event, t, create=False)
        if ch is None:
            self._originate_answered_late(event)
            return
        call = self._by_uid[ch.uid]
        if ch.uid == call.origin:
            if event.get("Response", "Success") != "Success":
                self._note_originate(call, ch, event)
            call.originated = True
            context, exten = event.get("Context", ""), event.get("Exten", "")
            if context:
                if context not in ch.contexts:
                    ch.contexts.append(context)
                if exten and exten not in _UNKNOWN_NUMBERS:
                    ch.first_exten.setdefault(context, exten)

    def _originate_answered_late(self, event: Event) -> None:
        """An OriginateResponse for a click-to-call already over: it names the client's number."""
        uid = event.get("Uniqueid", "")
        requested = event.get("Channel", "")
        for linkedid, (call, ended_at) in self._held.items():
            origin = call.channels.get(call.origin or "")
            if origin is None:
                continue
            if uid != origin.uid and not (requested and _names_requested(origin.name.raw, requested)):
                continue
            self._note_originate(call, origin, event)
            del self._held[linkedid]
            self._done.append(self._build(call, ClosedBy.HANGUP, ended_at))
            return

    def _note_originate(self, call: _Call, origin: _Channel, event: Event) -> None:
        """What a failed Originate's response says: the number it was for, and why it failed."""
        exten = event.get("Exten", "")
        if exten and exten.lower() not in _UNKNOWN_NUMBERS:
            call.originate_exten = exten
            origin.first_exten.setdefault("@originate", exten)
        call.originate_reason = event.get("Reason") or None

    def _on_hangup_request(self, event: Event, t: float) -> None:
        ch = self._channel(event, t, create=False)
        if ch is not None and ch.remote_hangup is None:
            ch.remote_hangup = event.get("Event") == "HangupRequest"
            call = self._by_uid[ch.uid]
            if ch.uid == call.origin and call.caller_hung_up is None:
                call.caller_hung_up = ch.remote_hangup
                call.wait_at_hangup = call.wait_outcome

    def _on_hangup(self, event: Event, t: float) -> list[FinishedCall]:
        ch = self._channel(event, t, create=False)
        if ch is None or ch.hung_up:
            self._warn_hangup(event, ch)
            return []
        ch.hung_up = True
        call = self._by_uid[ch.uid]
        call.open_channels -= 1
        self._uid_by_name.pop(ch.name.raw, None)
        if call.open_channels > 0:
            return []
        if self._awaits_originate_response(call):
            self._retire(call)
            self._held[call.linkedid] = (call, t)
            return []
        return [self._finish(call, ClosedBy.HANGUP, ended_at=t)]

    def _warn_hangup(self, event: Event, ch: _Channel | None) -> None:
        linkedid = event.get("Linkedid") or event.get("Uniqueid") or "?"
        name = event.get("Channel", "?")
        if ch is not None:
            self._warn(ch.linkedid, f"a second Hangup for channel {name}; ignored")
        elif self._merged.get(linkedid, linkedid) in self._finished:
            self._warn(linkedid, f"a Hangup for channel {name} after its call ended; ignored")
        else:
            self._warn(linkedid, f"a Hangup for channel {name}, never seen before; ignored")

    def _awaits_originate_response(self, call: _Call) -> bool:
        """A click-to-call over before the manager's handset answered, its number not yet known."""
        if not call.originated or call.originate_exten is not None or call.answered_at is not None:
            return False
        origin = call.channels.get(call.origin or "")
        if origin is None or any(c in self._inbound for c in origin.contexts):
            return False
        return call.originate_status != "ANSWER" and not self._last_dial(call, origin.uid)

    def _release_due(self, now: float) -> None:
        for linkedid, (call, ended_at) in list(self._held.items()):
            if now - ended_at >= ORIGINATE_WAIT_S:
                del self._held[linkedid]
                self._done.append(self._build(call, ClosedBy.HANGUP, ended_at))

    # -------------------------------------------------------------- finish

    def _finish(self, call: _Call, closed_by: ClosedBy, ended_at: float | None = None) -> FinishedCall:
        self._retire(call)
        return self._build(call, closed_by, ended_at if ended_at is not None else call.last_event_at)

    def _retire(self, call: _Call) -> None:
        """Forget an ended call's channels and bridges; late events about it are ignored."""
        self._calls.pop(call.linkedid, None)
        # Still reported by take_dirty(): its saved snapshot must go.
        self._dirty.add(call.linkedid)
        for uid in call.channels:
            self._by_uid.pop(uid, None)
        for ch in call.channels.values():
            self._uid_by_name.pop(ch.name.raw, None)
            for bridge in ch.bridges:
                self._leave_bridge(ch.uid, bridge)
        self._finished[call.linkedid] = None
        if len(self._finished) > FINISHED_MEMORY:
            self._finished.popitem(last=False)

    def _build(self, call: _Call, closed_by: ClosedBy, ended_at: float) -> FinishedCall:
        direction = self._direction(call)
        status = self._status(call, direction)
        manager = self._manager(call, direction)
        final = manager
        handsets = call.bridged_handsets
        if handsets and direction is not Direction.OUTBOUND:
            final = handsets[-1]
        elif handsets and direction is Direction.OUTBOUND:
            # On an outbound call the manager's own leg is bridged too; the
            # final manager is whoever else talked to the client last.
            others = [h for h in handsets if h != manager]
            final = others[-1] if others else manager
        if status is not CallStatus.ANSWERED:
            final = manager
        origin = call.channels.get(call.origin or "")
        return FinishedCall(
            pbx=self.settings.pbx,
            linkedid=call.linkedid,
            direction=direction,
            status=status,
            started_at=call.started_at,
            ended_at=max(ended_at, call.started_at),
            answered_at=call.answered_at if status is CallStatus.ANSWERED else None,
            client_number=self._client_number(call, direction),
            dialed=self._dialed(origin) if direction is not Direction.INBOUND and origin else None,
            did=self._did(origin) if direction is Direction.INBOUND and origin else None,
            manager=manager,
            final_manager=final,
            callee=self._callee(call) if direction is Direction.INTERNAL else None,
            rang=tuple(self._rang(call, direction)),
            queues=tuple(call.queues),
            transferred_to=tuple(call.transferred_to),
            recording_files=tuple(call.recording_files),
            originated=call.originated and direction is not Direction.INBOUND,
            closed_by=closed_by,
            member_names=dict(call.member_names),
            failure_reason=self._failure_reason(call, direction, status),
            voicemail=call.voicemail and direction is Direction.INBOUND,
            voicemail_file=call.voicemail_file if direction is Direction.INBOUND else None,
        )

    # ----------------------------------------------------------- judgement

    def _direction(self, call: _Call) -> Direction:
        origin = call.channels.get(call.origin or "")
        if origin is None:
            return Direction.INBOUND
        for context in origin.contexts:
            if context in self._inbound:
                return Direction.INBOUND
            if context in self._internal:
                return self._outbound_or_internal(call, origin)
        if call.originated or self._handset_ext(origin) is not None:
            # A click-to-call whose first leg never reached the dialplan is
            # still the manager's call out, never a caller's call in.
            return self._outbound_or_internal(call, origin)
        return Direction.INBOUND

    def _outbound_or_internal(self, call: _Call, origin: _Channel) -> Direction:
        dests = [call.channels.get(d.dest) for d in call.dials if d.caller == origin.uid]
        dests = [d for d in dests if d is not None]
        if any(self._handset_ext(d) is None for d in dests):
            return Direction.OUTBOUND
        if dests:
            return Direction.INTERNAL
        dialed = self._dialed(origin)
        if dialed and self._ext_re.match(dialed):
            return Direction.INTERNAL
        return Direction.OUTBOUND

    def _status(self, call: _Call, direction: Direction) -> CallStatus:
        if call.answered_at is not None:
            return CallStatus.ANSWERED
        origin = call.channels.get(call.origin or "")
        if direction is Direction.INBOUND:
            return self._unanswered_inbound(call, origin)
        if origin is None:
            return CallStatus.FAILED
        last = self._last_dial(call, origin.uid)
        if last is None:
            return CallStatus.FAILED
        return {
            "BUSY": CallStatus.BUSY,
            "NOANSWER": CallStatus.NO_ANSWER,
            "CANCEL": CallStatus.NO_ANSWER,
            "ANSWER": CallStatus.ANSWERED,
        }.get(last.status or "", CallStatus.FAILED if last.status else CallStatus.NO_ANSWER)

    def _unanswered_inbound(self, call: _Call, origin: _Channel | None) -> CallStatus:
        """Abandoned when the caller gave up while waiting; missed when the PBX gave up.

        Asterisk says which: the caller's channel is ended by the far end
        (HangupRequest) when the caller hangs up, by Asterisk itself
        (SoftHangupRequest) when the dialplan hangs up; and where the wait
        stood then (in a queue, ringing handsets, or past a queue's time-out).
        """
        if call.voicemail:
            # Sent to leave a message: the company did not answer, whoever hung up.
            return CallStatus.MISSED
        if call.caller_hung_up is False:
            return CallStatus.MISSED
        if call.caller_hung_up:
            waiting = call.wait_at_hangup
            # Never offered to anyone yet (an IVR menu) counts as giving up too;
            # hanging up on what followed the PBX's giving up (an announcement) does not.
            return CallStatus.ABANDONED if waiting is None or waiting in _STILL_WAITING else CallStatus.MISSED
        # No hangup request was heard (a stream cut short): judge by the wait alone.
        outcome = call.wait_outcome
        if outcome in ("queue", "abandoned", "ringing", "CANCEL"):
            return CallStatus.ABANDONED
        if outcome is not None:
            # The queue timed out or the ringing ended unanswered (voicemail,
            # an announcement, a hang-up by the dialplan followed).
            return CallStatus.MISSED
        # Never offered to anyone (an IVR, a closed-hours message): who hung up?
        if origin is not None:
            if origin.remote_hangup:
                return CallStatus.ABANDONED
            partner = self._local_partner(call, origin)
            if partner is not None and partner.hung_up and origin.remote_hangup is None:
                return CallStatus.ABANDONED
        return CallStatus.MISSED

    def _failure_reason(self, call: _Call, direction: Direction, status: CallStatus) -> FailureReason | None:
        """Whose side an unanswered call out stopped on: the manager's handset or the client."""
        if direction is Direction.INBOUND or status is CallStatus.ANSWERED:
            return None
        if call.originated and call.originate_status != "ANSWER":
            origin = call.channels.get(call.origin or "")
            if origin is None or self._last_dial(call, origin.uid) is None:
                return self._manager_leg_failure(call)
        if direction is not Direction.OUTBOUND:
            return None
        return {
            CallStatus.BUSY: FailureReason.CLIENT_BUSY,
            CallStatus.NO_ANSWER: FailureReason.CLIENT_NO_ANSWER,
        }.get(status, FailureReason.NOT_PLACED)

    def _manager_leg_failure(self, call: _Call) -> FailureReason:
        status, reason = call.originate_status, call.originate_reason
        if status in _REFUSALS or reason in _ORIGINATE_REFUSED:
            return FailureReason.MANAGER_REJECTED
        if status in ("NOANSWER", "CANCEL") or reason in _ORIGINATE_NO_ANSWER:
            return FailureReason.MANAGER_NO_ANSWER
        if status is None and reason == "0":
            # Asterisk could not even ring the handset (unknown device, no route).
            return FailureReason.NOT_PLACED
        return FailureReason.MANAGER_NO_ANSWER

    def _last_dial(self, call: _Call, caller_uid: str) -> _Dial | None:
        for dial in reversed(call.dials):
            if dial.caller == caller_uid:
                return dial
        return None

    def _local_partner(self, call: _Call, ch: _Channel) -> _Channel | None:
        partner = local_partner(ch.name.raw) if ch.name.is_local else None
        if partner is None:
            return None
        uid = self._uid_by_name.get(partner)
        if uid is not None and uid in call.channels:
            return call.channels[uid]
        for other in call.channels.values():
            if other.name.raw == partner:
                return other
        return None

    def _is_client_side(self, call: _Call, ch: _Channel) -> bool:
        direction = self._direction(call)
        if direction is Direction.INBOUND:
            return ch.uid == call.origin
        if direction is Direction.OUTBOUND:
            return ch.dialled_by == call.origin and self._handset_ext(ch) is None
        return False

    def _manager(self, call: _Call, direction: Direction) -> str | None:
        origin = call.channels.get(call.origin or "")
        if direction is Direction.INBOUND:
            if call.answered_dest is None:
                return None
            dest = call.channels.get(call.answered_dest)
            return self._resolve_handset(call, dest) if dest else None
        if origin is None:
            return None
        ext = self._handset_ext(origin)
        if ext is None and origin.caller_num and self._ext_re.match(origin.caller_num):
            ext = origin.caller_num
        return ext

    def _resolve_handset(self, call: _Call, ch: _Channel) -> str | None:
        """The handset behind a dialled channel, following Local pipes."""
        seen = 0
        while ch.name.is_local and seen < 8:
            seen += 1
            picked = self._picked(call, ch)
            if picked is not None:
                return picked
            partner = self._local_partner(call, ch)
            if partner is None:
                break
            answered = [
                call.channels[d.dest]
                for d in call.dials
                if d.caller == partner.uid and d.status == "ANSWER" and d.dest in call.channels
            ]
            if not answered:
                break
            ch = answered[-1]
        return self._picked(call, ch) or self._handset_ext(ch)

    def _picked(self, call: _Call, ch: _Channel) -> str | None:
        """The extension that picked up this ringing channel (or the other end of its Local pipe)."""
        if not call.pickups:
            return None
        ext = call.pickups.get(ch.uid)
        if ext is None and ch.name.is_local:
            partner = self._local_partner(call, ch)
            if partner is not None:
                ext = call.pickups.get(partner.uid)
        return ext

    def _handset_ext(self, ch: _Channel | None) -> str | None:
        if ch is None:
            return None
        raw = ch.name.raw
        if raw in self._ext_cache:
            return self._ext_cache[raw]
        name = ch.name
        ext: str | None = None
        if name.is_local:
            if name.local_context not in self._inbound and self._ext_re.match(name.resource):
                ext = name.resource
        elif self._ext_re.match(name.resource):
            ext = name.resource
        if len(self._ext_cache) > 50_000:
            self._ext_cache.clear()
        self._ext_cache[raw] = ext
        return ext

    def _rang(self, call: _Call, direction: Direction, only_ringing: bool = False) -> list[str]:
        origin = call.channels.get(call.origin or "")
        skip = {call.origin}
        # What the far end of a Local origin dials is the Originate's first
        # leg: the placing manager's own handset (click-to-call).
        own_legs: set[str | None] = set()
        if origin is not None:
            partner = self._local_partner(call, origin)
            if partner is not None:
                skip.add(partner.uid)
                own_legs.add(partner.uid)
        if direction is Direction.OUTBOUND:
            return []
        first: dict[str, float] = {}
        for ch in call.channels.values():
            if ch.uid in skip or ch.dialled_by in own_legs or ch.refused:
                continue
            # A handset the PBX dialled and that did not refuse was alerted,
            # even when its "180 Ringing" never reached Asterisk's events.
            if ch.rang_at is None and ch.dialled_at is None:
                continue
            if only_ringing and (ch.hung_up or ch.answered_as_dest):
                continue
            ext = self._handset_ext(ch)
            if ext is None:
                continue
            if ch.name.is_local and self._fronts_a_device(call, ch):
                continue
            if self._consultation(call, ch):
                continue
            at = self._ring_key_time(call, ch)
            if ext not in first or at < first[ext]:
                first[ext] = at
        return _order_rings(first)

    def _consultation(self, call: _Call, ch: _Channel) -> bool:
        """A handset rung by a manager consulting a colleague, not offered the client's call.

        Followed back through its dials and Local pipes, the ring starts at a
        leg nobody dialled that is not the caller's: one a transfer made
        (Atxfer's Local channel, a handset's own consultation call).
        """
        origin = call.channels.get(call.origin or "")
        own = {call.origin}
        if origin is not None and (partner := self._local_partner(call, origin)) is not None:
            own.add(partner.uid)
        seen: set[str] = set()
        while ch.uid not in seen:
            seen.add(ch.uid)
            if ch.uid in own or ch.dialled_by in own:
                return False
            if ch.dialled_by is None:
                partner = self._local_partner(call, ch) if ch.name.is_local else None
                if partner is not None and partner.dialled_by is not None and partner.uid not in seen:
                    ch = partner
                    continue
                # Dialled by nobody: an Originate's first leg was dialled (by Asterisk), a transfer's was not.
                return ch.dialled_at is None and bool(seen - {ch.uid} or ch.name.is_local)
            dialler = call.channels.get(ch.dialled_by)
            if dialler is None:
                return False
            ch = dialler
        return False

    def _fronts_a_device(self, call: _Call, ch: _Channel) -> bool:
        """A Local pipe whose far end dialled a real handset: count the handset."""
        partner = self._local_partner(call, ch)
        if partner is None:
            return False
        for d in call.dials:
            if d.caller == partner.uid:
                dest = call.channels.get(d.dest)
                if dest is not None and not dest.name.is_local and self._handset_ext(dest):
                    return True
        return False

    def _ring_key_time(self, call: _Call, ch: _Channel) -> float:
        """When this handset's ring attempt began: the dial towards it, or
        towards the Local pipe in front of it."""
        at = ch.dialled_at if ch.dialled_at is not None else ch.rang_at or call.started_at
        if ch.dialled_by:
            dialler = call.channels.get(ch.dialled_by)
            if dialler is not None and dialler.name.is_local:
                front = self._local_partner(call, dialler)
                if front is not None and front.dialled_at is not None:
                    at = min(at, front.dialled_at)
        return at

    def _client_number(self, call: _Call, direction: Direction) -> str | None:
        origin = call.channels.get(call.origin or "")
        if origin is None or direction is Direction.INTERNAL:
            return None
        if direction is Direction.INBOUND:
            return origin.caller_num or None
        at_dial = origin.first_exten.get("@dial")
        if at_dial and not self._ext_re.match(at_dial):
            return at_dial
        # FreePBX dials trunks from a macro (extension "s"): the number is in
        # the dial string it sent the carrier, and in what the manager dialled.
        digits: list[str] = re.findall(r"\+?\d{5,}", origin.first_exten.get("@dialstring", ""))
        if digits:
            return max(digits, key=len)
        for d in call.dials:
            dest = call.channels.get(d.dest)
            if d.caller == origin.uid and dest is not None and dest.name.is_local and dest.name.resource.isdigit():
                if self._handset_ext(dest) is None:
                    return dest.name.resource
        dialed = self._dialed(origin)
        if dialed and not self._ext_re.match(dialed):
            return dialed
        # Last: the far end's caller ID as the PBX shows it on the outgoing leg.
        for d in call.dials:
            dest = call.channels.get(d.dest)
            if d.caller == origin.uid and dest is not None and self._handset_ext(dest) is None and dest.caller_num:
                return dest.caller_num
        return dialed

    def _dialed(self, origin: _Channel) -> str | None:
        for context in origin.contexts:
            if context in self._internal:
                exten = origin.first_exten.get(context)
                if exten:
                    return exten
        return origin.first_exten.get("@dial") or origin.first_exten.get("@originate")

    def _did(self, origin: _Channel) -> str | None:
        for context in origin.contexts:
            if context in self._inbound:
                exten = origin.first_exten.get(context)
                if exten and exten != origin.caller_num:
                    return exten
        return None

    def _callee(self, call: _Call) -> str | None:
        for d in call.dials:
            if d.caller == call.origin:
                dest = call.channels.get(d.dest)
                ext = self._resolve_handset(call, dest) if dest else None
                if ext:
                    return ext
        origin = call.channels.get(call.origin or "")
        return self._dialed(origin) if origin else None


def _names_requested(channel: str, requested: str) -> bool:
    """Whether ``channel`` is one Asterisk made for an Originate of ``requested``.

    A failed Originate's response names the channel as requested
    (``PJSIP/205``, ``Local/205@from-internal``); the channel itself carries a
    sequence number after it (``PJSIP/205-0000000a``, ``...-0000000a;1``).
    """
    return channel.startswith(requested + "-") or channel == requested


def _event_time(event: Event, received_at: float) -> float:
    stamp = event.get("Timestamp")
    if stamp:
        try:
            return float(stamp)
        except ValueError:
            pass
    return received_at


def _duration_s(text: str) -> float:
    """CoreShowChannel's ``Duration: HH:MM:SS`` in seconds (0 when unreadable)."""
    try:
        h, m, sec = (int(x) for x in text.split(":"))
    except ValueError:
        return 0.0
    return float(h * 3600 + m * 60 + sec)


def _order_rings(first: dict[str, float]) -> list[str]:
    """Extensions by first ring; rings of one wave are ordered by extension."""
    items = sorted(first.items(), key=lambda kv: kv[1])
    out: list[str] = []
    wave: list[str] = []
    wave_start = 0.0
    for ext, at in items:
        if wave and at - wave_start > RING_TIE_S:
            out.extend(sorted(wave, key=_ext_key))
            wave = []
        if not wave:
            wave_start = at
        wave.append(ext)
    out.extend(sorted(wave, key=_ext_key))
    return out


def _ext_key(ext: str) -> tuple[int, str]:
    return (int(ext), ext) if ext.isdigit() else (1 << 30, ext)
