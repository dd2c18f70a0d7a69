"""Teaches the AMI simulator to answer click-to-call ``Originate`` as a real Asterisk did.

The events are not made up: they are the ones a real Asterisk 22 sent for a
click-to-call (``pjsip-02-click-to-call.ami``, the client answered) or for a
busy client (``pjsip-03-click-to-call-busy.ami``), rewritten for the asked
extension and number, with fresh unique ids, times moved to now and the
``OriginateResponse`` carrying the action's ActionID.  The captured Originate
rang ``PJSIP/<ext>`` directly, so the rewritten stream shows the handset's
channel without the ``Local/<ext>@from-internal`` pipe a FreePBX originate
adds in front of it.
"""

from __future__ import annotations

import asyncio
import itertools
import re
import time
import uuid
from collections.abc import Collection, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from pbxbridge.ami.frames import Frame, event_timestamp
from pbxbridge.ami.simulator import AmiSimulator, ClientSession
from pbxbridge.ami.traces import is_call_id_key, load_trace, with_timestamp

ANSWERED_TRACE = "pjsip-02-click-to-call.ami"
BUSY_TRACE = "pjsip-03-click-to-call-busy.ami"
# The handsets of the lab the streams were captured in (its pjsip.conf caller ids), so that a
# replayed click-to-call names the manager the other demo calls name for that extension.
LAB_NAMES: dict[str, str] = {
    "201": "Ivan Petrov",
    "202": "Olga Smirnova",
    "203": "Anna Kuznetsova",
    "204": "Sergey Volkov",
    "205": "Maria Orlova",
}
_HANDSET = re.compile(r"^(?:Local/(?P<local>[^@]+)@|(?:PJSIP|SIP|IAX2)/(?P<dev>[^-/@;]+))")


def packaged_traces_dir() -> Path:
    """Where pbxbridge ships the captured streams (pbxbridge/demo/traces)."""
    import pbxbridge.demo

    return Path(pbxbridge.demo.__file__).resolve().parent / "traces"


@dataclass(frozen=True, slots=True)
class CapturedOriginate:
    """One captured click-to-call and the values in it that a rewrite replaces."""

    events: tuple[Frame, ...]
    extension: str
    manager_name: str
    # What the Originate's Exten was, and the number the trunk was finally dialled with.
    dialled: str
    client_digits: str


def load_captured(path: Path) -> CapturedOriginate:
    """Read a captured click-to-call and find its extension, name and numbers."""
    events = load_trace(path).events
    first = next(e for e in events if e.get("Event") == "Newchannel")
    extension = first["CallerIDNum"]
    response = next(e for e in events if e.get("Event") == "OriginateResponse")
    trunk_dial = next(
        e for e in events if e.get("Event") == "DialBegin" and "@" in e.get("DialString", "")
    )
    return CapturedOriginate(
        events=events,
        extension=extension,
        manager_name=first.get("CallerIDName", ""),
        dialled=response["Exten"],
        client_digits=trunk_dial["DialString"].split("@", 1)[0],
    )


class _IdMinter:
    """Fresh uniqueids in Asterisk's ``<epoch>.<sequence>`` shape, one per captured id."""

    def __init__(self, sequence: Iterator[int]) -> None:
        self._sequence = sequence
        self._base = int(time.time())
        self.mapping: dict[str, str] = {}

    def __call__(self, old: str, bridge: bool = False) -> str:
        if old not in self.mapping:
            self.mapping[old] = str(uuid.uuid4()) if bridge else f"{self._base}.{next(self._sequence)}"
        return self.mapping[old]


def _word(value: str) -> re.Pattern[str]:
    # A number or extension standing alone: not part of a longer run of digits or a uniqueid.
    return re.compile(rf"(?<![\d.]){re.escape(value)}(?!\d)")


def rewrite(
    captured: CapturedOriginate,
    *,
    extension: str,
    dialled: str,
    client_digits: str,
    action: Frame,
    minter: _IdMinter,
    manager_name: str | None = None,
    now: float | None = None,
) -> list[Frame]:
    """The captured events as Asterisk would send them for this Originate."""
    swaps: list[tuple[re.Pattern[str], str]] = [
        (_word(captured.dialled), dialled),
        (_word(captured.client_digits), client_digits),
        (_word(captured.extension), extension),
    ]
    if manager_name and captured.manager_name:
        swaps.append((re.compile(re.escape(captured.manager_name)), manager_name))
    first_ts = next((t for e in captured.events if (t := event_timestamp(e)) is not None), None)
    shift = (now if now is not None else time.time()) - first_ts if first_ts is not None else 0.0
    # Map every id first so that ids quoted inside other values (file names, CEL) follow.
    for event in captured.events:
        for key, value in event.items():
            if value and is_call_id_key(key):
                minter(value, bridge=key.lower().startswith("bridge"))
    id_swaps = [(_word(old), new) for old, new in sorted(minter.mapping.items(), key=lambda kv: -len(kv[0]))]
    out: list[Frame] = []
    for event in captured.events:
        frame: Frame = {}
        for key, value in event.items():
            if value and is_call_id_key(key):
                frame[key] = minter.mapping[value]
                continue
            for pattern, new in (*id_swaps, *swaps):
                value = _replace(pattern, new, value)
            frame[key] = value
        if frame.get("Event") == "OriginateResponse":
            frame["ActionID"] = _header(action, "ActionID") or ""
            frame["Context"] = _header(action, "Context") or frame.get("Context", "")
            frame["Exten"] = _header(action, "Exten") or frame.get("Exten", "")
        ts = event_timestamp(event)
        if ts is not None:
            frame = with_timestamp(frame, ts + shift)
        out.append(frame)
    return out


def manager_leg_fails(events: list[Frame], dial_status: str, reason: str) -> list[Frame]:
    """A click-to-call whose manager's handset did not pick up (``NOANSWER``) or refused it (``BUSY``).

    Made of the captured call's own events: those of the handset's channel up
    to its answer (it never goes Up), its dial ending with ``dial_status``
    instead of ANSWER, its Hangup (still in the Originate's ``s`` extension:
    the dialplan never ran) and the OriginateResponse saying Failure with
    ``reason``, Asterisk's control frame code (3 no answer, 5 busy, 1 hung up).
    """
    first = next(e for e in events if e.get("Event") == "Newchannel")
    handset, uid = first["Channel"], first["Uniqueid"]
    answered = next(
        i for i, e in enumerate(events) if e.get("Event") == "DialEnd" and e.get("DestChannel") == handset
    )
    stamp = event_timestamp(events[answered]) or 0.0
    head = [e for e in events[:answered] if _about(e, uid) and e.get("ChannelStateDesc") != "Up"]
    dial_end = {**events[answered], "DialStatus": dial_status}
    last_hangup = next(e for e in reversed(events) if e.get("Event") == "Hangup" and e.get("Uniqueid") == uid)
    hangup = with_timestamp(
        {**last_hangup, "Exten": first.get("Exten", "s"), "ChannelState": "5", "ChannelStateDesc": "Ringing"},
        stamp + 0.01,
    )
    captured_response = next(e for e in events if e.get("Event") == "OriginateResponse")
    response = with_timestamp({**captured_response, "Response": "Failure", "Reason": reason}, stamp + 0.02)
    return [*head, dial_end, hangup, response]


def unreachable_response(events: list[Frame], action: Frame) -> list[Frame]:
    """What Asterisk sends when it cannot even create the handset's channel: only a failed
    OriginateResponse naming the channel as requested, with no uniqueid (shaped on the captured one)."""
    captured_response = next(e for e in events if e.get("Event") == "OriginateResponse")
    frame = {
        **captured_response,
        "Response": "Failure",
        "Reason": "0",
        "Channel": _header(action, "Channel") or "",
        "Uniqueid": "<null>",
    }
    return [with_timestamp(frame, time.time())]


def _about(event: Frame, uid: str) -> bool:
    return any(value == uid for key, value in event.items() if key.endswith("Uniqueid"))


@dataclass(slots=True)
class OriginateSimulation:
    """An ``originate`` action handler for AmiSimulator, with what it received."""

    traces_dir: Path = field(default_factory=packaged_traces_dir)
    # Client numbers (digits, any form the Originate used) that answer busy.
    busy_numbers: Collection[str] = ()
    # Managers' extensions whose handsets ring and are not picked up, or refuse the call.
    unanswered_extensions: Collection[str] = ()
    rejecting_extensions: Collection[str] = ()
    # Extensions Asterisk cannot ring at all (no such device): the Originate fails at once.
    unreachable_extensions: Collection[str] = ()
    # Managers' names by extension, to replace the captured manager's name (an extension not
    # listed is named by its number rather than by the captured manager's name).
    names: Mapping[str, str] = field(default_factory=lambda: dict(LAB_NAMES))
    received: list[Frame] = field(default_factory=list)
    tasks: set[asyncio.Task[None]] = field(default_factory=set)
    _sequence: Iterator[int] = field(default_factory=lambda: itertools.count(900000))

    def install(self, simulator: AmiSimulator) -> None:
        """Register the handler on a simulator."""
        simulator.action_handlers["originate"] = self.handle

    async def handle(self, server: AmiSimulator, session: ClientSession, action: Frame) -> None:
        """Answer the Originate, then play the captured call for it in the background."""
        self.received.append(dict(action))
        channel = _header(action, "Channel") or ""
        exten = _header(action, "Exten") or ""
        m = _HANDSET.match(channel)
        if not channel:
            session.respond(action, "Error", Message="Channel not specified")
            return
        if m is None or not exten:
            # Asterisk cannot create the channel or has nowhere to send it.
            session.respond(action, "Error", Message="Originate failed")
            return
        extension = m["local"] or m["dev"]
        session.respond(action, "Success", Message="Originate successfully queued")
        digits = exten.lstrip("+")
        if digits.startswith("8") and len(digits) == 11:
            # from-internal turns the domestic 8... form into 7... before the trunk, as the lab did.
            digits = "7" + digits[1:]
        busy = exten in self.busy_numbers or digits in self.busy_numbers
        captured = load_captured(self.traces_dir / (BUSY_TRACE if busy else ANSWERED_TRACE))
        events = rewrite(
            captured,
            extension=extension,
            dialled=exten,
            client_digits=digits,
            action=action,
            minter=_IdMinter(self._sequence),
            manager_name=self.names.get(extension, extension),
        )
        if extension in self.unreachable_extensions:
            events = unreachable_response(events, action)
        elif extension in self.unanswered_extensions:
            events = manager_leg_fails(events, "NOANSWER", "3")
        elif extension in self.rejecting_extensions:
            events = manager_leg_fails(events, "BUSY", "5")
        task = asyncio.create_task(self._play(server, events), name=f"originate-{extension}-{exten}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _play(self, server: AmiSimulator, events: list[Frame]) -> None:
        previous: float | None = None
        for event in events:
            ts = event_timestamp(event)
            if server.speed > 0 and ts is not None and previous is not None and ts > previous:
                await asyncio.sleep((ts - previous) / server.speed)
            if ts is not None:
                previous = ts
            await server.emit(event)

    async def wait_played(self) -> None:
        """Wait until every call started so far has been played."""
        while self.tasks:
            await asyncio.gather(*list(self.tasks))


def _replace(pattern: re.Pattern[str], new: str, value: str) -> str:
    # A function, not a template: the new text is taken literally.
    return pattern.sub(lambda _match: new, value)


def _header(action: Frame, name: str) -> str | None:
    low = name.lower()
    for key, value in action.items():
        if key.lower() == low:
            return value
    return None
