"""Calls in progress, saved every few hundred milliseconds and taken back at start.

A restart (a crash, an upgrade) must not lose what the trackers knew: each
tracker's changed calls are saved in transactions of at most ``SAVE_CHUNK``
calls, each giving way to finished calls waiting for the journal; at start
every PBX's tracker is given back the calls saved for it.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Iterable

from pbxbridge.calls.following import PbxLink
from pbxbridge.calls.open_calls import OpenCallState, OpenCallStore
from pbxbridge.calls.pipeline import CallPipeline, short

log = logging.getLogger(__name__)

# How often calls in progress are saved: what a crash can lose is at most
# this much of the PBX's events (a reconnect's channel list mends the rest).
SAVE_INTERVAL_S = 0.2
# Most calls in progress one save transaction writes: a call that finishes
# meanwhile waits behind one such transaction at most (some 5-20 ms).
SAVE_CHUNK = 20
# Finished calls waiting for the journal go first: a periodic save waits for the
# writer to run dry, but never longer than this past its due time.
SAVE_DEFER_MAX_S = 1.0


class InProgressSaver:
    """Saves the trackers' changed calls in progress; gives them back at start."""

    def __init__(self, store: OpenCallStore, pipeline: CallPipeline, links: dict[str, PbxLink]) -> None:
        self.store = store
        self.pipeline = pipeline
        self.links = links
        self._last_progress: tuple[int, int, int, int] | None = None

    async def restore(self, link: PbxLink) -> None:
        """Give the tracker back the calls that were in progress when the daemon last stopped."""
        name = link.name
        states = await self.store.load(name)
        for state in states:
            try:
                link.tracker.restore(state)
            except (KeyError, TypeError, ValueError) as exc:
                # A state saved by an older tracker: the call is left to the
                # reconnect's channel list and to its remaining events.
                log.warning("[%s] saved call %s not restored (%s)", name, state.get("linkedid"), exc,
                            extra={"pbx": name, "linkedid": state.get("linkedid")})
                continue
            link.restored_calls += 1
            stamp = state.get("last_event_at")
            if isinstance(stamp, (int, float)) and stamp and (link.last_event_at or 0) < stamp:
                link.last_event_at = float(stamp)
        if states:
            log.info("[%s] %d call(s) in progress taken back from the database",
                     name, link.restored_calls, extra={"pbx": name, "restored_calls": link.restored_calls})

    async def save(self, writer_first_until: float | None = None) -> bool:
        """Save every PBX's changed calls in progress now; False if the database refused.

        With ``writer_first_until`` (a ``time.monotonic`` moment), each
        transaction first waits, until then at most, for the finished calls
        queued for the journal to be written.
        """
        ok = True
        for link in self.links.values():
            # Taken now, kept as unsaved until their transaction commits.
            link.unsaved |= link.tracker.take_dirty()
            if not link.unsaved:
                continue
            pending = sorted(link.unsaved)
            for start in range(0, len(pending), SAVE_CHUNK):
                chunk = pending[start : start + SAVE_CHUNK]
                if writer_first_until is not None:
                    await self.pipeline.writer_first(writer_first_until)
                if not await self._save_chunk(link, chunk):
                    ok = False
                    break
                link.unsaved.difference_update(chunk)
            else:
                self.pipeline.stats.open_call_saves += 1
        self._log_progress()
        return ok

    async def _save_chunk(self, link: PbxLink, chunk: Iterable[str]) -> bool:
        pbx, tracker = link.name, link.tracker
        # Taken before the turn, so that it is held for the write alone.
        taken = {lid: tracker.snapshot(lid) for lid in chunk}
        async with self.pipeline.database_turn():
            # A call that finished meanwhile is saved as gone, unless its journal
            # write is still to come: that deletes its state (forget_written).
            # One still open is saved as taken; later changes mark it for the next save.
            states: dict[str, OpenCallState | None] = {}
            for lid, state in taken.items():
                if tracker.is_open(lid):
                    states[lid] = state if state is not None else tracker.snapshot(lid)
                elif (pbx, lid) not in self.pipeline.unwritten:
                    states[lid] = None
            try:
                await self.store.save(pbx, states)
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                stats = self.pipeline.stats
                stats.open_call_save_errors += 1
                if _worth_logging(stats.open_call_save_errors):
                    log.warning("[%s] saving %d call(s) in progress failed: %s", pbx, len(link.unsaved),
                                short(exc), extra={"pbx": pbx})
                return False
        return True

    async def save_periodically(self, interval_s: float) -> None:
        while True:
            await asyncio.sleep(interval_s)
            await self.save(writer_first_until=time.monotonic() + SAVE_DEFER_MAX_S)

    def _log_progress(self) -> None:
        # A line whenever what is safe on disk moved: tests (and an operator at
        # DEBUG) can tell how far the daemon got before it was stopped.
        links = self.links.values()
        events = sum(link.events for link in links)
        in_progress = sum(link.tracker.active_count() for link in links)
        # Changed since the save began (events fed while it waited) is unsaved too: the line
        # must never claim more is safe on disk than is.
        unsaved = sum(len(link.unsaved) + link.tracker.dirty_count() for link in links)
        unwritten = len(self.pipeline.unwritten)
        progress = (events, unwritten, in_progress, unsaved)
        if progress != self._last_progress:
            self._last_progress = progress
            log.debug("calls in progress saved", extra={
                "events": events, "calls_in_progress": in_progress,
                "calls_unwritten": unwritten, "calls_unsaved": unsaved,
            })


def _worth_logging(count: int) -> bool:
    # A long outage must not flood the log: the first few, then every hundredth.
    return count <= 5 or count % 100 == 0
