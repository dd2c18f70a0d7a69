"""Calls in progress saved in several small transactions are all in the database, and all come back."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from pbxbridge.ami.frames import event_time
from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.ami.traces import load_trace
from pbxbridge.app import Daemon
from pbxbridge.calls import in_progress
from pbxbridge.calls.replay import tracker_settings
from pbxbridge.calls.tracker import CallTracker
from pbxbridge.config import Config, DatabaseConfig, PbxConfig, RecordingsConfig
from tests.fixtures_ami import wait_until

USER, SECRET = "pbxbridge", "s3cret"
FAST = {"backoff_initial_s": 0.05, "backoff_cap_s": 0.2}
BURST = "13-burst.ami"


def _config(url: str, port: int, shared_dir: Path) -> Config:
    return Config(
        database=DatabaseConfig(url=url),
        recordings=RecordingsConfig(root=str(shared_dir / "recordings")),
        pbx=[PbxConfig(name="main", host="127.0.0.1", port=port, username=USER, secret=SECRET)],
    )


def _busiest_moment(path: Path) -> tuple[int, int]:
    """(events sent, calls up) at the moment of the burst with the most calls up."""
    tracker = CallTracker(tracker_settings(PbxConfig(name="main")))
    best, at, now = 0, 0, 0.0
    for i, event in enumerate(load_trace(path).events, start=1):
        now = event_time(event, now)
        tracker.feed(event, now)
        if len(tracker.active_linkedids()) > best:
            best, at = len(tracker.active_linkedids()), i
    return at, best


def test_a_save_split_into_small_transactions_keeps_every_call_in_progress(
    db_url: str, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = shared_dir / BURST
    point, up = _busiest_moment(path)
    assert up >= 3, "the burst should have several calls up at once"
    # Two calls per transaction: the burst's calls in progress take several.
    monkeypatch.setattr(in_progress, "SAVE_CHUNK", 2)

    async def go() -> tuple[set[str], set[str], int]:
        sim = AmiSimulator([path], speed=0, username=USER, secret=SECRET)
        await sim.start()
        try:
            sim.pause_after(point)
            # No periodic save: the one below is the only one before the stop.
            daemon = Daemon(_config(db_url, sim.port, shared_dir), listener_options=FAST, save_interval_s=3600)
            await daemon.start()
            try:
                await sim.wait_paused()
                link = daemon.links["main"]
                await wait_until(lambda: link.events >= point)
                await daemon.flush()
                up_now = set(link.tracker.active_linkedids())
                assert await daemon.save_open_calls()
                assert daemon.open_calls is not None
                saved = {lid for _pbx, lid in await daemon.open_calls.linkedids()}
                unsaved = len(link.unsaved)
            finally:
                await daemon.stop()
            # The next start takes every one of them back.
            again = Daemon(_config(db_url, sim.port, shared_dir), listener_options=FAST, save_interval_s=3600)
            await again.start()
            try:
                restored = set(again.links["main"].tracker.active_linkedids())
            finally:
                await again.stop()
        finally:
            await sim.stop()
        assert unsaved == 0
        return up_now, saved, len(restored & up_now)

    up_now, saved, restored = asyncio.run(go())
    assert len(up_now) >= 3
    assert saved == up_now
    assert restored == len(up_now)
