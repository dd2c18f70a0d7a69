"""Keeping line states current from a live AMI session: events, plus a full refresh per login."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from pbxbridge.ami.frames import Frame
from pbxbridge.routing.line_states import LineStates, changes_lines

log = logging.getLogger(__name__)

SendAction = Callable[..., Awaitable[Any]]
# What Asterisk is asked after each (re)connect, in this order: hints, queues, channels.
REFRESH_ACTIONS = ("ExtensionStateList", "QueueStatus", "CoreShowChannels")
REFRESH_TIMEOUT_S = 30.0


def _as_frame(message: Any) -> Frame:
    """A panoramisk Message (or a plain dict) as a Frame of strings."""
    return {str(k): v if isinstance(v, str) else "\n".join(map(str, v)) for k, v in dict(message).items()}


async def refresh_lines(
    lines: LineStates,
    send_action: SendAction,
    now: float | None = None,
    since_asked: list[Frame] | None = None,
) -> int:
    """Ask the PBX for hints, queues and channels and rebuild ``lines``; returns frames used.

    ``since_asked`` collects events that arrive while the lists are on their way; they are
    applied again on top of the rebuilt state (events are idempotent on it), so that a
    change the lists were made too early to show is not lost.
    """
    frames: list[Frame] = []
    for name in REFRESH_ACTIONS:
        reply = await asyncio.wait_for(send_action({"Action": name}, as_list=True), REFRESH_TIMEOUT_S)
        items = reply if isinstance(reply, list) else [reply]
        got = [_as_frame(m) for m in items if m is not None]
        if got and got[0].get("Response", "").lower() == "error":
            # A PBX without queues (or hints) answers with an error; the rest still counts.
            log.info("%s refused: %s", name, got[0].get("Message", ""))
            continue
        frames += [f for f in got if "Event" in f]
    # The lists date channels only by their age: the PBX's clock is taken to be ours.
    lines.refresh(frames, time.time() if now is None else now)
    if since_asked:
        lines.feed_all(since_asked)
    return len(frames)


class LineFeed:
    """Feeds one PBX's events into its LineStates and refreshes them after every login."""

    def __init__(self, lines: LineStates | None = None, on_event: Callable[[Frame], None] | None = None) -> None:
        self.lines = lines or LineStates()
        self.on_event = on_event
        self.refreshes = 0
        self._refresh: asyncio.Task[None] | None = None
        self._since_asked: list[Frame] | None = None

    def feed(self, frame: Frame, send_action: SendAction | None = None) -> None:
        """Apply an event; Asterisk's FullyBooted greets each login, so a refresh follows it."""
        self.lines.feed(frame)
        # Kept for replay over the listed states: only what moves them, since a busy
        # PBX sends tens of thousands of other events before the lists come back.
        if self._since_asked is not None and len(self._since_asked) < 100_000 and changes_lines(frame):
            self._since_asked.append(frame)
        if self.on_event is not None:
            self.on_event(frame)
        if frame.get("Event") == "FullyBooted" and send_action is not None:
            self.schedule_refresh(send_action)

    def schedule_refresh(self, send_action: SendAction) -> None:
        """Start a refresh in the background (a newer one replaces one still running)."""
        if self._refresh is not None and not self._refresh.done():
            self._refresh.cancel()
        self._refresh = asyncio.ensure_future(self._run_refresh(send_action))

    async def _run_refresh(self, send_action: SendAction) -> None:
        buffer: list[Frame] = []
        self._since_asked = buffer
        try:
            count = await refresh_lines(self.lines, send_action, since_asked=buffer)
            self.refreshes += 1
            log.info("line states refreshed from %d list entries", count)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            log.warning("refreshing line states failed: %s", exc)
        finally:
            # A newer refresh may have replaced this one: leave its buffer alone.
            if self._since_asked is buffer:
                self._since_asked = None

    async def stop(self) -> None:
        """Cancel a refresh in progress."""
        if self._refresh is not None:
            self._refresh.cancel()
            try:
                await self._refresh
            except (asyncio.CancelledError, Exception):
                pass
