"""Captured AMI streams through the call tracker, as fast as they can be read."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from pbxbridge.ami.frames import Frame, read_trace
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.tracker import CallTracker, TrackerSettings
from pbxbridge.config import Config, PbxConfig


def tracker_settings(pbx: PbxConfig) -> TrackerSettings:
    """The tracker's view of one PBX's settings."""
    return TrackerSettings(
        pbx=pbx.name,
        inbound_contexts=tuple(pbx.inbound_contexts),
        extension_pattern=pbx.extension_pattern,
    )


def event_time(frame: Frame, fallback: float) -> float:
    """Asterisk's Timestamp header (timestampevents=yes), else the previous event's time."""
    try:
        return float(frame["Timestamp"])
    except (KeyError, ValueError):
        return fallback


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
    return finished


async def replay_traces(
    paths: Iterable[Path | str], config: Config, pbx: str | None = None
) -> list[FinishedCall]:
    """Calls finished in the traces, in the order they finished, trace after trace."""
    if pbx is None:
        pbx_config = config.pbx[0] if config.pbx else PbxConfig()
    else:
        try:
            pbx_config = config.pbx_by_name(pbx)
        except KeyError:
            pbx_config = PbxConfig(name=pbx)
    settings = tracker_settings(pbx_config)
    calls: list[FinishedCall] = []
    for path in paths:
        calls.extend(replay_trace(path, settings))
    return calls
