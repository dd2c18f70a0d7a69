"""One call's CEL rows as the AMI events the call tracker reads.

CEL is written from the same channel snapshots as AMI's events, but it says less: it has no
DialBegin/DialEnd, no queue events, no HangupRequest, no VarSet. What each synthesised event
rests on:

- ``Newchannel`` <- CHAN_START; a ``Newexten`` (the channel's context, extension, application)
  <- every row, as each row carries the channel's snapshot; ``Hangup`` <- HANGUP.
- ``DialBegin``/``DialEnd`` <- a channel whose application reads ``AppQueue``/``AppDial``
  ``(Outgoing Line)`` was dialled by Queue/Dial: by the channel in that application whose
  dial string names it (or, without one, the caller); ``AppDial2`` is Asterisk's own dial of an
  Originate's first leg (no caller). It ends at its ANSWER, else at its HANGUP (cause 17: busy).
  The caller's own last dial ends as its HANGUP's ``dialstatus`` says.
- ``QueueCallerJoin``/``Leave`` <- rows of the caller's channel while its application was
  ``Queue`` (answer, music on hold), and the CDR of each member's ring (``lastapp`` Queue,
  ``lastdata`` the queue, ``dstchannel`` the member's channel); a queue that rang nobody and
  wrote no row of the caller's is not known.
- ``HangupRequest`` (the far end hung up) or ``SoftHangupRequest`` (Asterisk ended it) <- the
  HANGUP's ``hangupsource``: the dialplan (``dialplan/...``) or another channel is Asterisk.
- ``BridgeEnter``/``BridgeLeave`` <- BRIDGE_ENTER/EXIT; ``BlindTransfer`` and ``AttendedTransfer``
  <- their rows' ``eventextra`` (cut at 255 characters in FreePBX's table: the transfer target is
  then the channel found in the consultation's bridge).
- ``VarSet MIXMONITOR_FILENAME`` <- the CDR's ``recordingfile`` (see cdr_recordings).

Not in CEL at all: members' names (AgentCalled), the voicemail message file
(``VM_MESSAGEFILE``), the OriginateResponse naming a failed click-to-call's number.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache

from pbxbridge.backfill.rows import CelRow
from pbxbridge.calls.channels import local_partner, parse_channel

Event = dict[str, str]

# Applications a dialled channel shows as its own: who dialled it.
_OUTGOING_LINE = "(Outgoing Line)"
_BY_QUEUE, _BY_DIAL, _BY_ORIGINATE = "AppQueue", "AppDial", "AppDial2"
# Q.850 causes of a dial the far end refused.
_REFUSAL_CAUSES = {"17": "BUSY", "34": "CONGESTION", "38": "CONGESTION", "20": "CHANUNAVAIL", "27": "CHANUNAVAIL"}
_DEVICE_SUFFIX = re.compile(r"-[0-9a-f]+(;[12])?$")


@dataclass(slots=True)
class _Chan:
    uid: str
    name: str
    first: int
    linkedid: str
    end: int | None = None
    dialled_by: str | None = None  # the marker application: AppQueue, AppDial, AppDial2
    answer: int | None = None
    hangup: int | None = None
    dial_strings: list[str] = field(default_factory=list)
    queue_rows: list[int] = field(default_factory=list)


def _interface(name: str) -> str:
    """What a dial string names: ``PJSIP/201`` for ``PJSIP/201-0000000a``, ``Local/202@agent-phone`` for its ;1."""
    return _DEVICE_SUFFIX.sub("", name)


def _base(row: CelRow) -> Event:
    return {
        "Channel": row.channame,
        "Uniqueid": row.uniqueid,
        "Linkedid": row.linkedid,
        "Timestamp": f"{row.at:.6f}",
    }


def _snapshot(row: CelRow, kind: str | None = None) -> Event:
    """The channel as the row shows it; as an event of ``kind`` when given (one dict, not two)."""
    event: Event = {"Event": kind} if kind is not None else {}
    event["Channel"] = row.channame
    event["Uniqueid"] = row.uniqueid
    event["Linkedid"] = row.linkedid
    event["Timestamp"] = f"{row.at:.6f}"
    event["CallerIDNum"] = row.cid_num
    event["CallerIDName"] = row.cid_name
    event["Context"] = row.context
    event["Exten"] = row.exten
    return event


class _CallRows:
    """A call's rows read once for what the events need: channels, who dialled whom."""

    def __init__(self, rows: Sequence[CelRow]) -> None:
        self.rows = rows
        self.chans: dict[str, _Chan] = {}
        for i, row in enumerate(rows):
            ch = self.chans.get(row.uniqueid)
            if ch is None:
                ch = self.chans[row.uniqueid] = _Chan(row.uniqueid, row.channame, i, row.linkedid)
            kind = row.eventtype
            if row.appdata == _OUTGOING_LINE and row.appname in (_BY_QUEUE, _BY_DIAL, _BY_ORIGINATE):
                ch.dialled_by = ch.dialled_by or row.appname
            if row.appname == "Dial" and row.appdata:
                ch.dial_strings.append(row.appdata.split(",", 1)[0])
            if row.appname == "Queue" and row.appdata:
                ch.queue_rows.append(i)
            if kind == "ANSWER" and ch.answer is None:
                ch.answer = i
            elif kind == "HANGUP" and ch.hangup is None:
                ch.hangup = i
            elif kind == "CHAN_END":
                ch.end = i
        linkedid = rows[0].linkedid if rows else ""
        self.origin = linkedid if linkedid in self.chans else next(iter(self.chans), "")
        self.by_name = {ch.name: ch for ch in self.chans.values()}
        # Channels that run dialplan (and so may dial), in the order they began.
        self.runners = [c for c in self.chans.values() if self._runs_dialplan(c)]
        self.dialler: dict[str, str | None] = {uid: self._dialler(ch) for uid, ch in self.chans.items() if ch.dialled_by}

    def partner(self, ch: _Chan) -> _Chan | None:
        name = local_partner(ch.name) if ch.name.startswith("Local/") else None
        return self.by_name.get(name) if name is not None else None

    def _runs_dialplan(self, ch: _Chan) -> bool:
        """The origin, a Local channel's ;2 end and any channel nobody dialled run dialplan (and so dial)."""
        return ch.uid == self.origin or ch.name.endswith(";2") or not ch.dialled_by

    def _alive_at(self, ch: _Chan, i: int) -> bool:
        return ch.first <= i and (ch.end is None or ch.end >= i)

    def _dialler(self, dest: _Chan) -> str | None:
        if dest.dialled_by == _BY_ORIGINATE:
            return None
        partner = self.partner(dest)
        candidates = [
            c for c in self.runners if c is not dest and c is not partner and self._alive_at(c, dest.first)
        ]
        if dest.dialled_by == _BY_QUEUE:
            queued = [c for c in candidates if c.queue_rows]
            return (queued[-1] if queued else self.chans.get(self.origin, dest)).uid
        interface = _interface(dest.name)
        naming = [c for c in candidates if any(interface in s.split("&") for s in c.dial_strings)]
        if naming:
            return naming[-1].uid
        # FreePBX's Local/201@from-queue (or @from-internal) dials the device of extension 201.
        resource = parse_channel(dest.name).resource
        fronting = [c for c in candidates if c.name.endswith(";2") and parse_channel(c.name).resource == resource]
        if fronting:
            return fronting[-1].uid
        # Else the channel most recently set dialling on its own: the caller, or a transfer's
        # consultation leg (a Local ;2 nobody dialled), not the far end of a dialled pipe.
        own = [c for c in candidates if self._dials_on_its_own(c)]
        if own:
            return max(own, key=lambda c: c.first).uid
        return self.origin if self.origin != dest.uid else None

    def _dials_on_its_own(self, ch: _Chan) -> bool:
        if ch.uid == self.origin:
            return True
        if ch.dialled_by:
            return False
        partner = self.partner(ch)
        origin = self.chans.get(self.origin)
        return partner is None or (not partner.dialled_by and partner is not origin)

    def cause(self, ch: _Chan) -> str:
        """The hang-up cause of a channel, or of the far end of its Local pipe when it says more."""
        causes = [ch] + ([p] if (p := self.partner(ch)) is not None else [])
        for c in causes:
            if c.hangup is not None:
                value = self.rows[c.hangup].extra_fields().get("hangupcause", "")
                if value and value != "0" and value != "16":
                    return value
        return ""


@dataclass(frozen=True, slots=True)
class CdrFacts:
    """What a call's CDR rows add to its CEL rows."""

    # MixMonitor files as full paths on the PBX, in the order they started.
    recordings: tuple[str, ...] = ()
    # A queue member's channel -> the queue that rang it.
    member_queues: Mapping[str, str] = field(default_factory=dict)
    # Queues the caller's own CDRs end in (a caller who gave up before any member rang).
    caller_queues: tuple[str, ...] = ()


def call_events(rows: Sequence[CelRow], facts: CdrFacts | None = None) -> list[Event]:
    """The AMI events one call's CEL rows (in the order Asterisk wrote them) stand for."""
    facts = facts or CdrFacts()
    if not rows:
        return []
    call = _CallRows(rows)
    origin = call.chans.get(call.origin)
    out: list[Event] = []
    # Every channel that entered each bridge, in order (a transfer's row comes after they left).
    bridges: dict[str, list[str]] = {}
    # Each channel's last Newexten, as (time, what it showed).
    last_shown: dict[str, tuple[float, str, str, str, str, str, str]] = {}
    # The caller's queue while it waits in one (for QueueCallerLeave).
    in_queue: str | None = None
    origin_requested = False
    origin_partner = call.partner(origin) if origin is not None else None
    for i, row in enumerate(rows):
        ch = call.chans[row.uniqueid]
        kind = row.eventtype
        is_origin = origin is not None and ch.uid == origin.uid
        if kind == "CHAN_START":
            out.append(_snapshot(row, "Newchannel"))
            if is_origin:
                out.extend(_recording_events(row, facts.recordings))
            queue = facts.member_queues.get(row.channame) if ch.dialled_by == _BY_QUEUE else None
            caller = call.chans.get(call.dialler.get(ch.uid) or "")
            if queue and caller is not None and queue != in_queue and caller is origin:
                if in_queue:
                    out.append(_queue_event("QueueCallerLeave", rows[caller.first], row.at, in_queue))
                out.append(_queue_event("QueueCallerJoin", rows[caller.first], row.at, queue))
                in_queue = queue
            if ch.dialled_by:
                out.append(_dial_begin(call, ch, row))
            continue
        if is_origin:
            queue = row.appdata.split(",", 1)[0] if row.appname == "Queue" else None
            if queue and queue != in_queue:
                if in_queue:
                    out.append({"Event": "QueueCallerLeave", **_base(row), "Queue": in_queue})
                out.append({"Event": "QueueCallerJoin", **_base(row), "Queue": queue})
                in_queue = queue
            elif in_queue and not queue and row.appdata != _OUTGOING_LINE and kind != "HANGUP":
                out.append({"Event": "QueueCallerLeave", **_base(row), "Queue": in_queue})
                in_queue = None
        if kind == "HANGUP" and origin is not None and not origin_requested and (is_origin or ch is origin_partner):
            # The caller's side is going: say now who ended it, before the legs it was ringing end.
            origin_requested = True
            joined = {e["Queue"] for e in out if e["Event"] == "QueueCallerJoin"}
            for queue in facts.caller_queues:
                if queue not in joined:
                    out.append(_queue_event("QueueCallerJoin", rows[origin.first], row.at, queue))
            out.append(_hangup_request(call, origin, rows[origin.hangup] if origin.hangup is not None else row))
        if not _carries_other_context(row):
            app = row.appname if row.appdata != _OUTGOING_LINE else ""
            # A channel's rows repeat its snapshot (CHAN_END after HANGUP, APP_END, LINKEDID_END):
            # a Newexten the same as the channel's last one, in the same second, tells the tracker
            # nothing and is left out (one event a row is most of the tracker's work).
            shown = (row.at, row.context, row.exten, row.cid_num, row.cid_name, app, row.appdata if app else "")
            if last_shown.get(row.uniqueid) != shown:
                last_shown[row.uniqueid] = shown
                event = _snapshot(row, "Newexten")
                if app:
                    event["Application"] = app
                    event["AppData"] = row.appdata
                out.append(event)
        if kind == "ANSWER" and ch.dialled_by:
            out.append(_dial_end(call, ch, row, "ANSWER"))
        elif kind == "HANGUP":
            if ch.dialled_by and ch.answer is None:
                out.extend(_unanswered_end(call, ch, row))
            hangup = _snapshot(row, "Hangup")
            hangup["Cause"] = row.extra_fields().get("hangupcause", "")
            out.append(hangup)
        elif kind == "BRIDGE_ENTER":
            bridge = row.extra_fields().get("bridge_id", "")
            bridges.setdefault(bridge, []).append(row.uniqueid)
            out.append({"Event": "BridgeEnter", **_base(row), "BridgeUniqueid": bridge})
        elif kind == "BRIDGE_EXIT":
            bridge = row.extra_fields().get("bridge_id", "")
            out.append({"Event": "BridgeLeave", **_base(row), "BridgeUniqueid": bridge})
        elif kind == "BLINDTRANSFER":
            extra = row.extra_fields()
            out.append({
                "Event": "BlindTransfer", "Timestamp": f"{row.at:.6f}", "Result": "Success",
                "Extension": extra.get("extension", ""),
                "TransfererUniqueid": row.uniqueid, "TransfererChannel": row.channame,
                "TransfereeUniqueid": extra.get("transferee_channel_uniqueid", ""),
                "TransfereeChannel": extra.get("transferee_channel_name", ""),
            })
        elif kind == "ATTENDEDTRANSFER":
            out.append(_attended_transfer(row, bridges))
    return out


def _queue_event(kind: str, caller: CelRow, at: float, queue: str) -> Event:
    return {"Event": kind, **_base(caller), "Timestamp": f"{at:.6f}", "Queue": queue}


def _carries_other_context(row: CelRow) -> bool:
    """A Local ;1 channel's rows show its ;2 end's context until it runs dialplan of its own."""
    context = _local_one_context(row.channame)
    return context is not None and row.context == context


# A call's channel names come back on every one of its rows: each is parsed once.
@lru_cache(maxsize=1024)
def _local_one_context(channame: str) -> str | None:
    """The context a Local channel's ;1 end names (None for any other channel)."""
    name = parse_channel(channame)
    return name.local_context if name.is_local and name.local_side == 1 else None


def _recording_events(row: CelRow, recordings: Iterable[str]) -> list[Event]:
    return [
        {"Event": "VarSet", **_base(row), "Variable": "MIXMONITOR_FILENAME", "Value": path}
        for path in recordings
    ]


def _dial_begin(call: _CallRows, dest: _Chan, row: CelRow) -> Event:
    event: Event = {
        "Event": "DialBegin",
        "Timestamp": f"{row.at:.6f}",
        "DestChannel": row.channame,
        "DestUniqueid": row.uniqueid,
        "DestLinkedid": row.linkedid,
        "DestContext": row.context,
        "DestExten": row.exten,
    }
    caller_uid = call.dialler.get(dest.uid)
    caller = call.chans.get(caller_uid or "")
    if caller is None:
        return event
    event.update(Channel=caller.name, Uniqueid=caller.uid, Linkedid=caller.linkedid)
    # What the caller dialled: its extension at the first row from now on that names one.
    exten = next(
        (r.exten for r in call.rows[dest.first:] if r.uniqueid == caller.uid and r.exten and r.exten != "s"), ""
    )
    if exten:
        event["Exten"] = exten
    interface = _interface(dest.name)
    dial_string = next((s for s in caller.dial_strings if interface in s.split("&")), "")
    if dial_string or caller.dial_strings:
        event["DialString"] = dial_string or caller.dial_strings[0]
    return event


def _dial_end(call: _CallRows, dest: _Chan, row: CelRow, status: str) -> Event:
    event: Event = {
        "Event": "DialEnd",
        "Timestamp": f"{row.at:.6f}",
        "DestChannel": dest.name,
        "DestUniqueid": dest.uid,
        "DestLinkedid": dest.linkedid,
        "DialStatus": status,
    }
    caller = call.chans.get(call.dialler.get(dest.uid) or "")
    if caller is not None:
        event.update(Channel=caller.name, Uniqueid=caller.uid, Linkedid=caller.linkedid)
    return event


def _unanswered_end(call: _CallRows, dest: _Chan, row: CelRow) -> list[Event]:
    """How the dial of a channel that never answered ended."""
    cause = call.cause(dest)
    refusal = _REFUSAL_CAUSES.get(cause)
    if dest.dialled_by == _BY_QUEUE:
        # app_queue rings members one after another: only a refusal is worth saying (a busy
        # member did not ring); the caller's wait stays the queue's.
        if refusal is None:
            return []
        return [{"Event": "Newstate", **_snapshot(row), "ChannelStateDesc": "Busy"}]
    caller = call.chans.get(call.dialler.get(dest.uid) or "")
    status = refusal or "NOANSWER"
    if caller is not None and caller.hangup is not None:
        said = call.rows[caller.hangup].extra_fields().get("dialstatus", "")
        if said and said != "ANSWER" and _last_dialled(call, caller) is dest:
            status = said
    return [_dial_end(call, dest, row, status)]


def _last_dialled(call: _CallRows, caller: _Chan) -> _Chan | None:
    dialled = [call.chans[uid] for uid, by in call.dialler.items() if by == caller.uid]
    return max(dialled, key=lambda c: c.first) if dialled else None


def _hangup_request(call: _CallRows, origin: _Chan, hangup: CelRow) -> Event:
    """The far end hung up the caller's channel (HangupRequest), or Asterisk did (SoftHangupRequest)."""
    source = hangup.extra_fields().get("hangupsource", "")
    remote = source in ("", origin.name)
    return {"Event": "HangupRequest" if remote else "SoftHangupRequest", **_base(hangup)}


def _attended_transfer(row: CelRow, bridges: dict[str, list[str]]) -> Event:
    extra = row.extra_fields()
    second = extra.get("channel2_uniqueid", "")
    target = extra.get("transfer_target_channel_uniqueid", "")
    if not target:
        # FreePBX's eventextra is 255 characters: the target, last in the JSON, is cut off.
        # It is the other party of the consultation's bridge (which it has just left).
        others = [u for u in bridges.get(extra.get("bridge2_id", ""), []) if u not in (second, row.uniqueid)]
        target = others[-1] if others else ""
    return {
        "Event": "AttendedTransfer",
        "Timestamp": f"{row.at:.6f}",
        "Result": "Success",
        "OrigTransfererUniqueid": row.uniqueid,
        "OrigTransfererChannel": row.channame,
        "SecondTransfererUniqueid": second,
        "TransfereeUniqueid": extra.get("transferee_channel_uniqueid", ""),
        "TransferTargetUniqueid": target,
    }
