"""What a PBX has right now, rebuilt from its event stream.

The simulator answers CoreShowChannels, QueueStatus and ExtensionStateList
from this, as Asterisk answers them from its own channel and queue tables, so
that a client reconnecting mid-replay learns which calls are still up.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from pbxbridge.ami.frames import Frame, event_timestamp

# The channel snapshot every channel event carries (Asterisk 12+), unprefixed
# for the event's own channel and prefixed for the others it names.
SNAPSHOT_KEYS = (
    "Channel", "ChannelState", "ChannelStateDesc", "CallerIDNum", "CallerIDName",
    "ConnectedLineNum", "ConnectedLineName", "Language", "AccountCode",
    "Context", "Exten", "Priority", "Uniqueid", "Linkedid",
)
SNAPSHOT_PREFIXES = ("", "Dest", "LocalOne", "LocalTwo", "Transferer", "Transferee")

MEMBER_KEYS = (
    "StateInterface", "Membership", "Penalty", "CallsTaken", "LastCall", "LastPause",
    "LoginTime", "InCall", "Status", "Paused", "PausedReason", "Wrapuptime",
)

# Asterisk's ast_extension_state values and the text ExtensionStatus gives them.
DEVICE_TO_EXTENSION_STATE = {
    "NOT_INUSE": ("0", "Idle"),
    "INUSE": ("1", "InUse"),
    "BUSY": ("2", "Busy"),
    "UNAVAILABLE": ("4", "Unavailable"),
    "RINGING": ("8", "Ringing"),
    "RINGINUSE": ("9", "InUse&Ringing"),
    "ONHOLD": ("16", "Hold"),
}
# Handsets' devices: FreePBX hints point at PJSIP/<ext> (or Custom:<ext> for
# Local-channel members); other devices (trunks, Local channels) have no hint.
HANDSET_DEVICE = re.compile(r"^(?:PJSIP/|SIP/|IAX2/|Custom:)(\d{2,5})$")
HINT_CONTEXT = "ext-local"


@dataclass(slots=True)
class LiveChannel:
    fields: Frame
    created_at: float
    application: str = ""
    application_data: str = ""
    bridge_id: str = ""


@dataclass(slots=True)
class LiveQueue:
    members: dict[str, Frame] = field(default_factory=dict)
    # Waiting callers by uniqueid, in the order they joined.
    entries: dict[str, Frame] = field(default_factory=dict)
    completed: int = 0
    abandoned: int = 0


class LiveState:
    """Channels up, queues' members and callers, and handsets' states."""

    def __init__(self) -> None:
        self.channels: dict[str, LiveChannel] = {}
        self.queues: dict[str, LiveQueue] = {}
        # extension -> (hint device, status code, status text)
        self.extensions: dict[str, tuple[str, str, str]] = {}
        self.now: float = 0.0

    def apply(self, event: Frame) -> None:
        """Update the state with one event, as Asterisk's core would have."""
        ts = event_timestamp(event)
        if ts is not None:
            self.now = max(self.now, ts)
        name = event.get("Event", "")
        handler = getattr(self, f"_on_{name.lower()}", None)
        if handler is not None:
            handler(event)
        self._refresh_snapshots(event)
        if name == "Rename" and event.get("Newname"):
            chan = self.channels.get(event.get("Uniqueid", ""))
            if chan is not None:
                chan.fields["Channel"] = event["Newname"]

    def live_linkedids(self) -> set[str]:
        """Linkedids of calls that still have a channel up."""
        return {c.fields.get("Linkedid", "") for c in self.channels.values()} - {""}

    # -- event handlers -------------------------------------------------

    def _on_newchannel(self, event: Frame) -> None:
        uid = event.get("Uniqueid")
        if uid:
            fields = {k: event.get(k, "") for k in SNAPSHOT_KEYS}
            self.channels[uid] = LiveChannel(fields, event_timestamp(event) or self.now)

    def _on_hangup(self, event: Frame) -> None:
        self.channels.pop(event.get("Uniqueid", ""), None)

    def _on_newexten(self, event: Frame) -> None:
        chan = self.channels.get(event.get("Uniqueid", ""))
        if chan is not None:
            chan.application = event.get("Application", "")
            chan.application_data = event.get("AppData", "")

    def _on_bridgeenter(self, event: Frame) -> None:
        chan = self.channels.get(event.get("Uniqueid", ""))
        if chan is not None:
            chan.bridge_id = event.get("BridgeUniqueid", "")

    def _on_bridgeleave(self, event: Frame) -> None:
        chan = self.channels.get(event.get("Uniqueid", ""))
        if chan is not None:
            chan.bridge_id = ""

    def _on_queuememberstatus(self, event: Frame) -> None:
        queue = self.queues.setdefault(event.get("Queue", ""), LiveQueue())
        queue.members[event.get("Interface", "")] = dict(event)

    _on_queuememberadded = _on_queuememberstatus

    def _on_queuememberremoved(self, event: Frame) -> None:
        queue = self.queues.get(event.get("Queue", ""))
        if queue is not None:
            queue.members.pop(event.get("Interface", ""), None)

    def _on_queuecallerjoin(self, event: Frame) -> None:
        queue = self.queues.setdefault(event.get("Queue", ""), LiveQueue())
        queue.entries[event.get("Uniqueid", "")] = dict(event)

    def _on_queuecallerleave(self, event: Frame) -> None:
        queue = self.queues.setdefault(event.get("Queue", ""), LiveQueue())
        queue.entries.pop(event.get("Uniqueid", ""), None)

    def _on_queuecallerabandon(self, event: Frame) -> None:
        self.queues.setdefault(event.get("Queue", ""), LiveQueue()).abandoned += 1

    def _on_agentcomplete(self, event: Frame) -> None:
        self.queues.setdefault(event.get("Queue", ""), LiveQueue()).completed += 1

    def _on_devicestatechange(self, event: Frame) -> None:
        match = HANDSET_DEVICE.match(event.get("Device", ""))
        if match:
            status, text = DEVICE_TO_EXTENSION_STATE.get(event.get("State", ""), ("-1", "Unknown"))
            self.extensions[match.group(1)] = (event["Device"], status, text)

    def _refresh_snapshots(self, event: Frame) -> None:
        # Every channel event repeats the channel's snapshot; keeping the
        # latest makes CoreShowChannels show the current state and caller id.
        for prefix in SNAPSHOT_PREFIXES:
            uid = event.get(f"{prefix}Uniqueid")
            chan = self.channels.get(uid) if uid else None
            if chan is None:
                continue
            for key in SNAPSHOT_KEYS:
                value = event.get(f"{prefix}{key}")
                if value is not None:
                    chan.fields[key] = value

    # -- list actions ----------------------------------------------------

    def core_show_channels(self, action_id: str | None) -> list[Frame]:
        """CoreShowChannel events for every channel up, then the Complete event."""
        items: list[Frame] = []
        for chan in self.channels.values():
            item: Frame = {"Event": "CoreShowChannel"}
            _add_action_id(item, action_id)
            item.update(chan.fields)
            item["Application"] = chan.application
            item["ApplicationData"] = chan.application_data
            item["Duration"] = _hms(self.now - chan.created_at)
            item["BridgeId"] = chan.bridge_id
            items.append(item)
        return items + [_complete("CoreShowChannelsComplete", action_id, len(items))]

    def queue_status(self, action_id: str | None, queue_name: str = "", member: str = "") -> list[Frame]:
        """QueueParams, QueueMember and QueueEntry events, then the Complete event."""
        items: list[Frame] = []
        for name, queue in sorted(self.queues.items()):
            if not name or (queue_name and name != queue_name):
                continue
            params: Frame = {"Event": "QueueParams", "Queue": name, "Max": "0",
                             "Calls": str(len(queue.entries)), "Holdtime": "0", "TalkTime": "0",
                             "Completed": str(queue.completed), "Abandoned": str(queue.abandoned),
                             "ServiceLevel": "0", "ServicelevelPerf": "0.0",
                             "ServicelevelPerf2": "0.0", "Weight": "0"}
            _add_action_id(params, action_id)
            items.append(params)
            for interface, status in queue.members.items():
                if member and member not in (interface, status.get("MemberName")):
                    continue
                item: Frame = {"Event": "QueueMember", "Queue": name,
                               "Name": status.get("MemberName", interface), "Location": interface}
                item.update({k: status.get(k, "") for k in MEMBER_KEYS})
                _add_action_id(item, action_id)
                items.append(item)
            for position, entry in enumerate(queue.entries.values(), start=1):
                joined = event_timestamp(entry) or self.now
                item = {"Event": "QueueEntry", "Queue": name, "Position": str(position)}
                for key in ("Channel", "Uniqueid", "CallerIDNum", "CallerIDName",
                            "ConnectedLineNum", "ConnectedLineName"):
                    item[key] = entry.get(key, "")
                item["Wait"] = str(int(max(0.0, self.now - joined)))
                item["Priority"] = "0"
                _add_action_id(item, action_id)
                items.append(item)
        return items + [_complete("QueueStatusComplete", action_id, len(items))]

    def extension_states(self, action_id: str | None) -> list[Frame]:
        """ExtensionStatus events for every handset seen, then the Complete event."""
        items: list[Frame] = []
        for exten, (hint, status, text) in sorted(self.extensions.items()):
            item: Frame = {"Event": "ExtensionStatus"}
            _add_action_id(item, action_id)
            item.update({"Exten": exten, "Context": HINT_CONTEXT, "Hint": hint,
                         "Status": status, "StatusText": text})
            items.append(item)
        return items + [_complete("ExtensionStateListComplete", action_id, len(items))]


def _add_action_id(frame: Frame, action_id: str | None) -> None:
    if action_id is not None:
        frame["ActionID"] = action_id


def _complete(event: str, action_id: str | None, count: int) -> Frame:
    frame: Frame = {"Event": event}
    _add_action_id(frame, action_id)
    frame["EventList"] = "Complete"
    frame["ListItems"] = str(count)
    return frame


def _hms(seconds: float) -> str:
    total = int(max(0.0, seconds))
    return f"{total // 3600:02d}:{total % 3600 // 60:02d}:{total % 60:02d}"
