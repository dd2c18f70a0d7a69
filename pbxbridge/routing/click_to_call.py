"""Click-to-call: ring the manager's handset, then dial the client, the FreePBX way.

FreePBX places a call on a manager's behalf by originating a Local channel
into ``from-internal`` (``Local/<ext>@from-internal``), so the manager's
handset rings first with all of the extension's FreePBX settings (follow-me,
several devices); once answered, the dialplan runs ``from-internal`` with the
client's number as the extension, so the outbound routes, recording and
caller ID rules apply exactly as if the manager had dialled it.

The request id comes back at once; the call it became is known when Asterisk
says which channel it originated (``OriginateResponse`` with our ActionID, or
the ``PBXB_REQUEST`` variable showing up on a channel).
"""

from __future__ import annotations

import asyncio
import re
import uuid
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Collection
from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Any

import phonenumbers

from pbxbridge.ami.frames import Frame
from pbxbridge.clients.numbers import normalise_number
from pbxbridge.config import ClickToCallConfig
from pbxbridge.routing.line_states import LineState, LineStates

SendAction = Callable[..., Awaitable[Any]]
KnownExtensions = Callable[[], Awaitable[Collection[str]]]

REQUEST_VARIABLE = "PBXB_REQUEST"
ACTION_ID_PREFIX = "pbxb-c2c-"
# Requests kept for lookup; older ones are forgotten (the call is on the card by then).
MAX_REQUESTS = 1000
# Channels remembered to tie an OriginateResponse's Uniqueid to its linkedid.
MAX_CHANNELS = 5000
AMI_TIMEOUT_S = 10.0
# How long a click waits for Asterisk to say the Originate failed outright (no such
# device, handset unreachable or refusing) before answering "ringing": a manager
# who clicked hears of the failure instead of waiting for a handset that never rings.
FAIL_FAST_S = 1.0
# OriginateResponse Reason codes (enum ast_control_frame_type) worth naming.
ORIGINATE_REASONS = {
    "0": "failed",
    "1": "hung up",
    "3": "no answer",
    "4": "answered",
    "5": "busy",
    "8": "congestion",
}


class ClickToCallError(Exception):
    """A click-to-call request that could not be placed.

    ``code`` names the kind of failure for records a person reads later in their own
    language (the audit log); the message is for the one who clicked, now.
    """

    code = "failed"


class UnknownExtension(ClickToCallError):
    """No manager has this extension."""

    code = "unknown_extension"


class ExtensionBusy(ClickToCallError):
    """The manager is on the phone (or it is ringing) right now."""

    code = "extension_busy"


class ExtensionUnavailable(ClickToCallError):
    """The manager's handset is not registered."""

    code = "extension_unavailable"


class InvalidNumber(ClickToCallError):
    """The client's number is not a phone number that can be dialled."""

    code = "invalid_number"


class AmiUnavailable(ClickToCallError):
    """The PBX's manager interface is not connected or did not answer."""

    code = "pbx_unavailable"


class OriginateRejected(ClickToCallError):
    """Asterisk refused the Originate (permissions, bad channel)."""

    code = "originate_rejected"


class OriginateFailed(ClickToCallError):
    """Asterisk took the Originate but could not ring the manager's handset (it said so at once)."""

    code = "originate_failed"


class RequestStatus(StrEnum):
    QUEUED = "queued"
    # The manager answered and the client is being dialled.
    PLACED = "placed"
    FAILED = "failed"


class DialFormat(StrEnum):
    # 79161110001: E.164 without '+', what the lab's and most FreePBX outbound routes match.
    E164_DIGITS = "e164_digits"
    E164 = "e164"
    # 89161110001: the domestic form (trunk prefix), for routes written for it.
    NATIONAL = "national"


@dataclass(frozen=True, slots=True)
class CallRequest:
    """One click-to-call, from the click to the call it became."""

    request_id: str
    action_id: str
    extension: str
    number: str
    dialled: str
    status: RequestStatus = RequestStatus.QUEUED
    linkedid: str | None = None
    uniqueid: str | None = None
    reason: str | None = None


@dataclass(slots=True)
class _Pending:
    requests: OrderedDict[str, CallRequest] = field(default_factory=OrderedDict)
    by_action: dict[str, str] = field(default_factory=dict)
    channel_linkedid: OrderedDict[str, str] = field(default_factory=OrderedDict)


def dial_string(e164: str, fmt: DialFormat | str = DialFormat.E164_DIGITS) -> str:
    """What ``from-internal`` is given as the extension to dial for an E.164 number."""
    fmt = DialFormat(fmt)
    if fmt is DialFormat.E164:
        return e164
    if fmt is DialFormat.NATIONAL:
        parsed = phonenumbers.parse(e164, None)
        return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.NATIONAL).translate(
            {ord(c): None for c in " ()-"}
        )
    return e164.lstrip("+")


class ClickToCall:
    """Places click-to-call Originates and ties each request to the call it became."""

    def __init__(
        self,
        send_action: SendAction,
        lines: LineStates,
        settings: ClickToCallConfig | None = None,
        known_extensions: KnownExtensions | None = None,
        region: str = "RU",
        dial_format: DialFormat | str = DialFormat.E164_DIGITS,
        fail_fast_s: float = 0.0,
    ) -> None:
        self.send_action = send_action
        self.fail_fast_s = fail_fast_s
        self.lines = lines
        self.settings = settings or ClickToCallConfig()
        self.known_extensions = known_extensions
        self.region = region
        self.dial_format = DialFormat(dial_format)
        self._pending = _Pending()
        # Set when a request gets its linkedid or fails; feed() runs synchronously in the loop.
        self._settled_events: dict[str, asyncio.Event] = {}
        # Set when Asterisk answers the Originate (OriginateResponse: placed or failed).
        self._answered_events: dict[str, asyncio.Event] = {}

    def originate_action(self, request_id: str, extension: str, dialled: str, name: str = "") -> Frame:
        """The Originate action for a request (exposed for reading and testing)."""
        fill = {"ext": extension, "number": dialled, "name": name or extension}
        return {
            "Action": "Originate",
            "ActionID": ACTION_ID_PREFIX + request_id,
            "Channel": _fill(self.settings.channel, fill),
            "Context": self.settings.context,
            "Exten": dialled,
            "Priority": "1",
            "CallerID": _fill(self.settings.caller_id, fill),
            "Timeout": str(self.settings.timeout_ms),
            "Async": "true",
            "Variable": f"{REQUEST_VARIABLE}={request_id}",
        }

    async def call(self, extension: str, number: str, name: str = "") -> CallRequest:
        """Ring ``extension``, then dial ``number``; returns once Asterisk queued the Originate."""
        e164 = normalise_number(number, self.region)
        if e164 is None:
            raise InvalidNumber(f"{number!r} is not a phone number that can be dialled")
        if self.known_extensions is not None:
            known = await self.known_extensions()
            if extension not in known and not self.lines.line(extension).known:
                raise UnknownExtension(f"no manager has extension {extension!r}")
        line = self.lines.line(extension)
        if line.state in (LineState.IN_CALL, LineState.RINGING):
            raise ExtensionBusy(f"extension {extension} is {line.state.value}")
        if line.state is LineState.UNAVAILABLE:
            raise ExtensionUnavailable(f"extension {extension} is not registered")
        request_id = uuid.uuid4().hex[:16]
        dialled = dial_string(e164, self.dial_format)
        action = self.originate_action(request_id, extension, dialled, name)
        request = CallRequest(
            request_id=request_id,
            action_id=action["ActionID"],
            extension=extension,
            number=e164,
            dialled=dialled,
        )
        self._remember(request)
        try:
            # as_list=False: the "queued" answer is enough; OriginateResponse arrives as an event.
            reply = await asyncio.wait_for(self.send_action(action, as_list=False), AMI_TIMEOUT_S)
        except (TimeoutError, ConnectionError, OSError) as exc:
            self._forget(request_id)
            raise AmiUnavailable(f"AMI is not available: {exc or type(exc).__name__}") from exc
        response, message = _response_of(reply)
        if response.lower() != "success":
            self._forget(request_id)
            raise OriginateRejected(message or f"Asterisk answered {response or 'nothing'}")
        if self.fail_fast_s > 0:
            outcome = await self._first_answer(request_id, self.fail_fast_s)
            if outcome.status is RequestStatus.FAILED:
                raise OriginateFailed(
                    f"the PBX could not ring extension {extension}: {outcome.reason or 'failed'}"
                )
        return request

    async def _first_answer(self, request_id: str, timeout: float) -> CallRequest:
        """The request once Asterisk answered its Originate, or as it stands after ``timeout``."""
        answered = self._answered_events.setdefault(request_id, asyncio.Event())
        current = self.request(request_id)
        if current is not None and current.status is RequestStatus.QUEUED:
            try:
                await asyncio.wait_for(answered.wait(), timeout)
            except TimeoutError:
                pass
        found = self.request(request_id)
        return found if found is not None else CallRequest(request_id, "", "", "", "")

    def request(self, request_id: str) -> CallRequest | None:
        """What became of a request, if it is still remembered."""
        return self._pending.requests.get(request_id)

    async def wait_resolved(self, request_id: str) -> CallRequest:
        """Wait until a request has a linkedid or has failed."""
        found = self.request(request_id)
        if found is None:
            raise KeyError(request_id)
        if found.linkedid is None and found.status is not RequestStatus.FAILED:
            await self._settled_events.setdefault(request_id, asyncio.Event()).wait()
        found = self.request(request_id)
        assert found is not None
        return found

    def feed(self, event: Frame) -> None:
        """Take one AMI event; resolves requests from OriginateResponse / VarSet."""
        name = event.get("Event", "")
        pending = self._pending
        if name == "Newchannel":
            uid, linked = event.get("Uniqueid"), event.get("Linkedid")
            if uid and linked:
                pending.channel_linkedid[uid] = linked
                while len(pending.channel_linkedid) > MAX_CHANNELS:
                    pending.channel_linkedid.popitem(last=False)
        elif name == "OriginateResponse":
            request_id = pending.by_action.get(event.get("ActionID", ""))
            if request_id is not None:
                self._on_originate_response(request_id, event)
        elif name == "VarSet" and event.get("Variable") == REQUEST_VARIABLE:
            request_id = event.get("Value", "")
            if request_id in pending.requests and event.get("Linkedid"):
                self._update(request_id, linkedid=event["Linkedid"], uniqueid=event.get("Uniqueid"))

    def _on_originate_response(self, request_id: str, event: Frame) -> None:
        uid = event.get("Uniqueid") or None
        reason = ORIGINATE_REASONS.get(event.get("Reason", ""), event.get("Reason"))
        if event.get("Response", "").lower() == "success":
            linked = self._pending.channel_linkedid.get(uid or "", uid)
            self._update(request_id, status=RequestStatus.PLACED, linkedid=linked, uniqueid=uid, reason=reason)
        else:
            self._update(request_id, status=RequestStatus.FAILED, reason=reason)

    def _update(self, request_id: str, **changes: Any) -> None:
        current = self._pending.requests.get(request_id)
        if current is None:
            return
        if current.linkedid is not None and changes.get("linkedid") is None:
            changes.pop("linkedid", None)
        updated = replace(current, **changes)
        self._pending.requests[request_id] = updated
        if updated.linkedid is not None or updated.status is RequestStatus.FAILED:
            self._settled_events.setdefault(request_id, asyncio.Event()).set()
        if updated.status is not RequestStatus.QUEUED:
            self._answered_events.setdefault(request_id, asyncio.Event()).set()

    def _remember(self, request: CallRequest) -> None:
        pending = self._pending
        pending.requests[request.request_id] = request
        pending.by_action[request.action_id] = request.request_id
        while len(pending.requests) > MAX_REQUESTS:
            old_id, old = pending.requests.popitem(last=False)
            pending.by_action.pop(old.action_id, None)
            self._settled_events.pop(old_id, None)
            self._answered_events.pop(old_id, None)

    def _forget(self, request_id: str) -> None:
        request = self._pending.requests.pop(request_id, None)
        if request is not None:
            self._pending.by_action.pop(request.action_id, None)
        self._settled_events.pop(request_id, None)
        self._answered_events.pop(request_id, None)


def _fill(template: str, values: dict[str, str]) -> str:
    """Replace {ext}, {number}, {name}; other braces are left as written (no KeyError on a typo)."""
    return re.sub(r"\{(ext|number|name)\}", lambda m: values[m.group(1)], template)


def _response_of(reply: Any) -> tuple[str, str]:
    """(Response, Message) from a panoramisk Message, a dict, or a list of them."""
    if isinstance(reply, list):
        reply = reply[0] if reply else {}
    if reply is None:
        return "", ""
    get = reply.get if hasattr(reply, "get") else (lambda _k, _d="": _d)
    response = get("Response", "") or get("response", "")
    message = get("Message", "") or get("message", "")
    return str(response), str(message)


def extensions_from_db(sessions: Any) -> KnownExtensions:
    """A ``known_extensions`` that reads the managers table (``sessions``: an async_sessionmaker)."""
    from sqlalchemy import select

    from pbxbridge.clients.tables import Manager

    async def known() -> set[str]:
        async with sessions() as session:
            return set((await session.execute(select(Manager.extension))).scalars())

    return known
