"""Calls in progress through the database and back; a written call's saved state goes with its write."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.ami.frames import event_time, read_trace
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.open_calls import OpenCallStore, forget_written
from pbxbridge.calls.replay import replay_trace
from pbxbridge.calls.store import CallWriter, Written
from pbxbridge.calls.tables import Call
from pbxbridge.calls.tracker import CallTracker, TrackerSettings
from pbxbridge.config import Config, DatabaseConfig, RecordingsConfig
from pbxbridge.db.engine import make_engine, session_factory
from tests.fixtures_ami import trace_path

SETTINGS = TrackerSettings(pbx="main")


def _events(path: Path) -> list[tuple[dict[str, str], float]]:
    _banner, frames = read_trace(path)
    out, now = [], 0.0
    for frame in frames:
        if "Event" in frame:
            now = event_time(frame, now)
            out.append((frame, now))
    return out


@pytest.mark.parametrize("name", ["04-inbound-overflow.ami", "12-blind-transfer.ami", "pjsip-02-click-to-call.ami"])
def test_a_call_saved_mid_way_and_taken_back_ends_as_if_never_interrupted(
    db_url: str, shared_dir: Path, name: str
) -> None:
    path = trace_path(shared_dir, name)
    whole = replay_trace(path, SETTINGS)
    events = _events(path)

    async def go() -> list[list[FinishedCall]]:
        engine = make_engine(db_url)
        store = OpenCallStore(session_factory(engine))
        results = []
        try:
            # Cut the stream at several points; each time a fresh tracker takes over from the database.
            for cut in range(len(events) // 8, len(events), len(events) // 8):
                first = CallTracker(SETTINGS)
                finished: list[FinishedCall] = []
                for frame, now in events[:cut]:
                    finished += first.feed(frame, now)
                await store.save("main", {lid: first.snapshot(lid) for lid in first.take_dirty()})
                second = CallTracker(SETTINGS)
                for state in await store.load("main"):
                    second.restore(state)
                assert second.active_linkedids() == first.active_linkedids()
                for frame, now in events[cut:]:
                    finished += second.feed(frame, now)
                await store.save("main", {lid: second.snapshot(lid) for lid in second.take_dirty()})
                assert await store.linkedids() == set()
                results.append(finished)
        finally:
            await engine.dispose()
        return results

    for finished in asyncio.run(go()):
        assert finished == whole


def test_the_saved_state_is_removed_in_the_calls_own_transaction(db_url: str, shared_dir: Path) -> None:
    path = trace_path(shared_dir, "01-inbound-answered.ami")
    events = _events(path)
    config = Config(
        database=DatabaseConfig(url=db_url), recordings=RecordingsConfig(root=str(shared_dir / "recordings"))
    )

    async def crash(session: AsyncSession, written: Sequence[Written]) -> None:
        for row, call, is_new in written:
            # Whatever fails after the delete (the process dying mid-transaction) undoes it too.
            raise RuntimeError("power cut")

    async def go() -> dict[str, Any]:
        engine = make_engine(db_url)
        factory = session_factory(engine)
        store = OpenCallStore(factory)
        try:
            tracker = CallTracker(SETTINGS)
            finished: list[FinishedCall] = []
            saved = False
            for frame, now in events:
                finished += tracker.feed(frame, now)
                if not saved and tracker.active_linkedids():
                    changes = {lid: tracker.snapshot(lid) for lid in tracker.take_dirty()}
                    await store.save("main", changes)
                    saved = True
            (call,) = finished
            assert await store.linkedids() == {("main", call.linkedid)}
            with pytest.raises(RuntimeError):
                await CallWriter(factory, config, after_write=[forget_written, crash]).write(call)
            async with factory() as session:
                written = (await session.execute(select(Call.id))).all()
            in_progress_after_crash = await store.linkedids()
            await CallWriter(factory, config, after_write=[forget_written]).write(call)
            async with factory() as session:
                rows = (await session.execute(select(Call.linkedid))).scalars().all()
            return {"written": written, "kept": in_progress_after_crash, "rows": rows,
                    "left": await store.linkedids(), "linkedid": call.linkedid}
        finally:
            await engine.dispose()

    result = asyncio.run(go())
    # The failed transaction wrote no call and kept the call in progress: nothing lost.
    assert result["written"] == [] and result["kept"] == {("main", result["linkedid"])}
    # The successful one did both: nothing twice.
    assert result["rows"] == [result["linkedid"]] and result["left"] == set()
