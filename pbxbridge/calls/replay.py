"""Captured AMI streams through the call tracker, as fast as they can be read.

``replay_into`` feeds captures to the daemon's own parts, in a daemon built
without AMI links (``live=False``): the calls reach the journal through its
writer and every hook a domain attached to it (KPI figures, transcription
jobs), as those of a live PBX do. ``replay_trace`` and ``replay_traces`` run
the tracker alone, for tests and tools that want the calls without a database.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from pbxbridge.ami.frames import Frame, FrameDecoder, event_time, read_trace
from pbxbridge.ami.interest import EventInterest
from pbxbridge.calls.following import PbxFollower, PbxLink, tracker_settings
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.pipeline import CallPipeline
from pbxbridge.calls.tracker import CallTracker, TrackerSettings
from pbxbridge.config import Config, PbxConfig

# A capture is read as a socket would deliver it: a frame's end is searched for
# in what one read brought, not in the whole file (see pbxbridge.ami.traces).
READ_BYTES = 1 << 16
# Captures hold frames up to what Asterisk sends in a CoreShowChannels answer; the same bound as a trace load.
MAX_FRAME_BYTES = 1024 * 1024
_STAGED = "pbxbridge.replay.new_calls"


def replay_pbx(config: Config, pbx: str | None = None) -> PbxConfig:
    """The PBX replayed calls belong to: the one named (its settings if configured), else the first configured."""
    if pbx is None:
        return config.pbx[0] if config.pbx else PbxConfig()
    try:
        return config.pbx_by_name(pbx)
    except KeyError:
        return PbxConfig(name=pbx)


def replay_trace(path: Path | str, settings: TrackerSettings) -> list[FinishedCall]:
    """Calls finished in one captured stream (one AMI session, so one tracker)."""
    tracker = CallTracker(settings)
    _banner, frames = read_trace(path)
    finished: list[FinishedCall] = []
    now = 0.0
    for frame in frames:
        if "Event" not in frame:
            continue
        now = event_time(frame, now)
        finished.extend(tracker.feed(frame, now))
    # Nothing more comes on this session: calls held for a late answer are complete as they
    # are, and a call still up was cut with the capture (journaled as far as it went).
    finished.extend(tracker.end_of_stream(now))
    return finished


async def replay_traces(
    paths: Iterable[Path | str], config: Config, pbx: str | None = None
) -> list[FinishedCall]:
    """Calls finished in the traces, in the order they finished, trace after trace."""
    settings = tracker_settings(replay_pbx(config, pbx))
    calls: list[FinishedCall] = []
    for path in paths:
        calls.extend(replay_trace(path, settings))
    return calls


def read_frames(path: Path | str, interest: EventInterest | None = None) -> Iterator[list[Frame]]:
    """A capture's frames, one read at a time; with ``interest``, the events nobody reads are skipped undecoded."""
    decoder = FrameDecoder(max_frame_bytes=MAX_FRAME_BYTES)
    decoder.interest = interest
    with Path(path).open("rb") as fh:
        while chunk := fh.read(READ_BYTES):
            yield decoder.feed(chunk)
    # A capture cut after its last frame's final line still ends that frame.
    yield decoder.feed(b"\r\n\r\n")


async def replay_into(
    follower: PbxFollower, pipeline: CallPipeline, paths: Sequence[Path | str], pbx: PbxConfig
) -> None:
    """Feed captured streams to a started daemon's parts, each as its own AMI session, as fast as they can be read.

    Returns once every event is fed and every call held back is released;
    the daemon's ``flush()`` then waits for the journal and what follows it.
    """
    for path in paths:
        link = PbxLink.for_pbx(pbx)
        for frames in read_frames(path, follower.interest):
            follower.feed_captured(link, frames)
            await pipeline.make_room()
        follower.end_captured(link)


class NewCallCount:
    """A CallWriter hook counting calls the journal did not hold before, once their transaction commits.

    A batch the database refused is rolled back and its calls written again
    one by one: counting at commit counts each of them once.
    """

    def __init__(self) -> None:
        self.new = 0

    async def note_written(self, session: AsyncSession, written: Sequence[tuple[Any, Any, bool]]) -> None:
        """Note the batch's new calls; they count when (and if) its transaction commits."""
        session.info[_STAGED] = session.info.get(_STAGED, 0) + sum(1 for _row, _call, is_new in written if is_new)
        sync = session.sync_session
        if not event.contains(sync, "after_commit", self._committed):
            event.listen(sync, "after_commit", self._committed)
            event.listen(sync, "after_rollback", self._rolled_back)

    def _committed(self, session: Session) -> None:
        self.new += session.info.pop(_STAGED, 0)

    def _rolled_back(self, session: Session) -> None:
        session.info.pop(_STAGED, None)
