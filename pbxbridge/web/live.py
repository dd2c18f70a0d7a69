"""The wallboard's feed: calls in progress, callers waiting and managers' lines, pushed to browsers.

What the board shows of a PBX is what that PBX's AMI session said. When the session
ends (``forget_pbx``) the board shows nothing of that PBX: a caller who was waiting may
be answered or gone before the next login, and the events saying so are lost with the
session. After the login, the managers' lines and the callers waiting are those the PBX
lists (``LineStates.refresh`` of its ``ExtensionStateList``, ``QueueStatus`` and
``CoreShowChannels`` answers), and the calls those the tracker kept after the PBX's
channel list; nothing remembered from before the drop is shown again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

from pbxbridge.ami.frames import Frame, event_time
from pbxbridge.routing.line_states import LineStates, WaitingCaller
from pbxbridge.routing.live import LineFeed

ActiveCalls = Callable[[], list[dict[str, Any]]]
# ``send_action(action, as_list=None)`` over one PBX's AMI session.
SendAction = Callable[..., Awaitable[Any]]
# The AMI action sender of a PBX, by its name.
Sender = Callable[[str], SendAction]
# Bursts of events (a queue ringing five handsets) become one update.
PUSH_DELAY_S = 0.2


class LiveBoard:
    """Fed by the daemon's event subscribers; browsers subscribe over the /api/live WebSocket."""

    def __init__(
        self,
        active_calls: ActiveCalls,
        extension_pattern: str = r"^\d{2,5}$",
        lines: dict[str, LineStates] | None = None,
        sender: Sender | None = None,
    ) -> None:
        self._active_calls = active_calls
        self._pattern = extension_pattern
        # Lines kept by another part (routing's, refreshed after each login) are fed there;
        # the board keeps its own otherwise, refreshed after each login when it can ask the PBX.
        self._own_lines = lines is None
        self.lines: dict[str, LineStates] = lines if lines is not None else {}
        # The board's own lines, each with the sender its refresh asks through (None: no refresh).
        self._feeds: dict[str, tuple[LineFeed, SendAction | None]] = {}
        self._sender = sender
        for states in self.lines.values():
            # A refresh after a login changes everything at once, with no event to say so.
            states.on_rebuilt.append(self.changed)
        # PBXs whose AMI session ended and that have not logged in again: nothing of theirs is shown.
        self.down: set[str] = set()
        # The PBX's clock (latest event Timestamp): durations are measured against it.
        self.pbx_now: float = 0.0
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._push: asyncio.Task[None] | None = None

    # -- fed by the daemon ----------------------------------------------------

    def on_event(self, pbx: str, event: Frame) -> None:
        """Daemon event subscriber: keep the lines' states and tell the browsers."""
        if self._own_lines:
            own = self._feeds.get(pbx)
            if own is None:
                own = self._own_feed(pbx)
            feed, send = own
            # Its FullyBooted (each login's greeting) has the feed ask the PBX's lists.
            feed.feed(event, send)
        if self.down and event.get("Event") == "FullyBooted":
            # Logged in again: the lists and the channel reconciliation are on their way.
            self.down.discard(pbx)
        self.pbx_now = max(self.pbx_now, event_time(event, 0.0))
        self.changed()

    def _own_feed(self, pbx: str) -> tuple[LineFeed, SendAction | None]:
        feed = LineFeed(LineStates(self._pattern))
        feed.lines.on_rebuilt.append(self.changed)
        self.lines[pbx] = feed.lines
        own = self._feeds[pbx] = (feed, self._sender(pbx) if self._sender is not None else None)
        return own

    def on_call(self, _finished_call: Any, _call_row: Any) -> None:
        """Daemon call subscriber: a call reached the journal; the board moves on."""
        self.changed()

    def forget_pbx(self, pbx: str) -> None:
        """A PBX's AMI session ended: show nothing of it until it logs in again and lists what it has.

        Its line states are forgotten, routing's included when the board reads those: the
        router must not send callers by what a session that is gone said either, and the
        next login's refresh rebuilds them for both.
        """
        self.down.add(pbx)
        states = self.lines.get(pbx)
        if states is not None:
            states.forget()
        self.changed()

    # -- read by the web app --------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the wallboard shows, as JSON-able values."""
        now = self.pbx_now
        shown = {pbx: states for pbx, states in sorted(self.lines.items()) if pbx not in self.down}
        waiting_callers = [(pbx, caller) for pbx, states in shown.items() for caller in states.waiting_callers()]
        # Whether a call waits is what the PBX's queues say, not the tracker's memory of the
        # queue events (those of a dropped session's last moments may be lost).
        waiting_calls = {(pbx, _call_key(caller)) for pbx, caller in waiting_callers}
        calls = []
        for call in self._active_calls():
            if call.get("pbx") in self.down:
                continue
            started = float(call.get("started_at") or now)
            answered = call.get("answered_at")
            calls.append({
                **call,
                "waiting": (call.get("pbx"), call.get("linkedid")) in waiting_calls,
                "duration_s": round(max(0.0, now - started), 1),
                "talk_s": round(max(0.0, now - float(answered)), 1) if answered else None,
            })
        calls.sort(key=lambda c: c.get("started_at") or 0)
        by_key = {(c.get("pbx"), c.get("linkedid")): c for c in calls}
        waiting = [
            _waiting_item(pbx, caller, by_key.get((pbx, _call_key(caller))), now)
            for pbx, caller in waiting_callers
        ]
        waiting.sort(key=lambda c: c.get("started_at") or 0)
        managers = []
        queues: dict[str, int] = {}
        for pbx, states in shown.items():
            for ext, line in states.lines().items():
                since = line.in_call_since or line.ringing_since
                managers.append({
                    "pbx": pbx,
                    "extension": ext,
                    "state": str(line.state),
                    "since_s": round(max(0.0, now - since), 1) if since else None,
                    "paused": line.paused,
                    "queues": list(line.queues),
                })
            for queue, count in states.waiting_queues().items():
                queues[queue] = queues.get(queue, 0) + count
        return {
            "pbx_time": now or None,
            "calls": calls,
            "waiting": waiting,
            "managers": managers,
            "queues": [{"queue": q, "waiting": n} for q, n in sorted(queues.items())],
            "totals": totals(waiting),
        }

    def subscribe(self) -> asyncio.Queue[dict[str, Any]]:
        """A queue that always holds the latest snapshot not yet read."""
        queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(maxsize=1)
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[dict[str, Any]]) -> None:
        """Stop feeding a queue."""
        self._subscribers.discard(queue)

    @property
    def subscribers(self) -> int:
        """Browsers watching."""
        return len(self._subscribers)

    def changed(self) -> None:
        """Schedule one push to every subscriber shortly."""
        if not self._subscribers or (self._push is not None and not self._push.done()):
            return
        try:
            self._push = asyncio.get_running_loop().create_task(self._push_soon())
        except RuntimeError:
            return  # no loop (a replay from a script): nobody is watching anyway

    async def _push_soon(self) -> None:
        await asyncio.sleep(PUSH_DELAY_S)
        snapshot = self.snapshot()
        for queue in list(self._subscribers):
            # A slow browser gets the newest state, not a backlog.
            with contextlib.suppress(asyncio.QueueEmpty):
                queue.get_nowait()
            queue.put_nowait(snapshot)

    async def stop(self) -> None:
        """Cancel a pending push and any refresh of the board's own lines."""
        if self._push is not None:
            self._push.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._push
        for feed, _send in self._feeds.values():
            await feed.stop()


def totals(waiting: list[dict[str, Any]]) -> dict[str, Any]:
    """The department's line right now: callers waiting and the longest of their waits so far.

    A caller's wait is the whole time since their call began (greeting and queue alike): what
    the caller has lived through, as the KPIs' waits count it.
    """
    waits = [float(c.get("duration_s") or 0.0) for c in waiting]
    return {"waiting": len(waiting), "longest_wait_s": max(waits) if waits else None}


def _call_key(caller: WaitingCaller) -> str:
    # A caller listed by QueueStatus names only its channel: the call is the one that channel
    # opened (an inbound caller's channel is the first of its call, so its Uniqueid is the Linkedid).
    return caller.linkedid or caller.uniqueid


def _waiting_item(pbx: str, caller: WaitingCaller, call: dict[str, Any] | None, now: float) -> dict[str, Any]:
    """One row of the wallboard's callers waiting: the caller's call when the tracker has it."""
    wait_s = round(max(0.0, now - caller.joined_at), 1) if caller.joined_at is not None and now else None
    queue = {"queue": caller.queue, "uniqueid": caller.uniqueid, "wait_s": wait_s}
    if call is not None:
        return {**call, **queue}
    # A caller the tracker has no call for (one it took on mid-call, under another linkedid):
    # what the queue says of it, its time in the queue standing for the call's duration.
    return {
        "pbx": pbx,
        "linkedid": caller.linkedid,
        "client_number": caller.number or None,
        "started_at": caller.joined_at,
        "answered_at": None,
        "queues": [caller.queue],
        "waiting": True,
        "ringing": [],
        "duration_s": wait_s or 0.0,
        "talk_s": None,
        **queue,
    }
