"""The wallboard's feed: calls in progress, callers waiting and managers' lines, pushed to browsers."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable
from typing import Any

from pbxbridge.ami.frames import Frame
from pbxbridge.routing.line_states import LineStates

ActiveCalls = Callable[[], list[dict[str, Any]]]
# Bursts of events (a queue ringing five handsets) become one update.
PUSH_DELAY_S = 0.2


class LiveBoard:
    """Fed by the daemon's event subscribers; browsers subscribe over the /api/live WebSocket."""

    def __init__(
        self,
        active_calls: ActiveCalls,
        extension_pattern: str = r"^\d{2,5}$",
        lines: dict[str, LineStates] | None = None,
    ) -> None:
        self._active_calls = active_calls
        self._pattern = extension_pattern
        # Lines kept by another part (routing's, refreshed after each login) are only read here.
        self._own_lines = lines is None
        self.lines: dict[str, LineStates] = lines if lines is not None else {}
        # The PBX's clock (latest event Timestamp): durations are measured against it.
        self.pbx_now: float = 0.0
        self._subscribers: set[asyncio.Queue[dict[str, Any]]] = set()
        self._push: asyncio.Task[None] | None = None

    # -- fed by the daemon ----------------------------------------------------

    def on_event(self, pbx: str, event: Frame) -> None:
        """Daemon event subscriber: keep the lines' states and tell the browsers."""
        if self._own_lines:
            states = self.lines.get(pbx)
            if states is None:
                states = self.lines[pbx] = LineStates(self._pattern)
            states.feed(event)
        try:
            self.pbx_now = max(self.pbx_now, float(event.get("Timestamp", "0")))
        except ValueError:
            pass
        self.changed()

    def on_call(self, _finished_call: Any, _call_row: Any) -> None:
        """Daemon call subscriber: a call reached the journal; the board moves on."""
        self.changed()

    # -- read by the web app --------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """Everything the wallboard shows, as JSON-able values."""
        now = self.pbx_now
        calls = []
        for call in self._active_calls():
            started = float(call.get("started_at") or now)
            answered = call.get("answered_at")
            calls.append({
                **call,
                "duration_s": round(max(0.0, now - started), 1),
                "talk_s": round(max(0.0, now - float(answered)), 1) if answered else None,
            })
        calls.sort(key=lambda c: c.get("started_at") or 0)
        waiting = [c for c in calls if c.get("waiting")]
        managers = []
        queues: dict[str, int] = {}
        for pbx, states in sorted(self.lines.items()):
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
        """Cancel a pending push."""
        if self._push is not None:
            self._push.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._push
