"""KPI figures follow the journal: they never hold it up, and what a stop, a crash or a fault left out is folded in."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import func, select, text

from pbxbridge.app import Daemon
from pbxbridge.calls.open_calls import forget_written
from pbxbridge.calls.store import CallWriter
from pbxbridge.calls.tables import Call
from pbxbridge.config import Config, DatabaseConfig
from pbxbridge.db.engine import make_engine, session_factory, upgrade_async
from pbxbridge.kpi import follower
from pbxbridge.kpi.daemon import attach
from pbxbridge.kpi.service import KpiService
from pbxbridge.kpi.tables import CallFactRow
from tests.fixtures_ami import wait_until
from tests.fixtures_kpi import (
    LOCAL_LAB,
    all_events_in,
    calls_of,
    day_figures,
    kpi_daemon,
    simulator,
    snapshot,
)


async def _journal_only(db_url: str, shared_dir: Path) -> int:
    """The captured calls in the journal and nowhere else: a crash struck before their figures were updated."""
    await upgrade_async(db_url)
    engine = make_engine(db_url)
    try:
        writer = CallWriter(session_factory(engine), Config(), after_write=[forget_written])
        calls = calls_of(shared_dir, *LOCAL_LAB)
        await writer.write_many(calls[:6])
        await writer.write_many(calls[6:])
        return len(calls)
    finally:
        await engine.dispose()


async def _counts(db_url: str) -> tuple[int, int]:
    engine = make_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            calls = await session.scalar(select(func.count()).select_from(Call))
            facts = await session.scalar(select(func.count()).select_from(CallFactRow))
            return int(calls or 0), int(facts or 0)
    finally:
        await engine.dispose()


async def _rebuilt(db_url: str) -> dict[str, list[dict[str, Any]]]:
    engine = make_engine(db_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            await KpiService().recorder.rebuild(session)
    finally:
        await engine.dispose()
    return await snapshot(db_url)


def test_calls_left_out_of_the_figures_are_folded_in_at_the_next_start(
    db_url: str, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    written = asyncio.run(_journal_only(db_url, shared_dir))
    assert asyncio.run(_counts(db_url)) == (written, 0)
    # Taken from the journal a few at a time, as a large backlog would be.
    monkeypatch.setattr(follower, "APPLY_BATCH", 3)
    assert written > 3 * 2

    async def restart() -> tuple[dict[Any, dict[str, Any]], KpiService]:
        # No PBX to listen to: whatever the figures gain comes from the journal alone.
        daemon = Daemon(Config(database=DatabaseConfig(url=db_url), pbx=[]))
        service = attach(daemon.hub).service
        await daemon.start()
        try:
            await daemon.flush()
        finally:
            await daemon.stop()
        return await day_figures(db_url, service), service

    day, service = asyncio.run(restart())
    assert asyncio.run(_counts(db_url)) == (written, written)
    calls = calls_of(shared_dir, *LOCAL_LAB)
    department = day[None]
    assert department["calls_in"] == sum(c.direction == "inbound" for c in calls)
    assert department["calls_out"] == sum(c.direction == "outbound" for c in calls)
    assert department["calls_internal"] == sum(c.direction == "internal" for c in calls)
    # Folded in after the fact, the figures are what the whole journal gives when rebuilt from scratch.
    followed = asyncio.run(snapshot(db_url))
    assert asyncio.run(_rebuilt(db_url)) == followed
    # Each inbound call counted once in the daemon's metrics, as if written while it ran.
    waits = [
        s.value for family in text_string_to_metric_families(service.metrics_text()) for s in family.samples
        if s.name == "pbxbridge_inbound_wait_seconds_count"
    ]
    assert sum(waits) == sum(c.direction == "inbound" for c in calls)


async def _execute(db_url: str, statement: str) -> None:
    engine = make_engine(db_url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text(statement))
    finally:
        await engine.dispose()


def test_calls_reach_the_journal_while_the_kpi_store_refuses(
    db_url: str, shared_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(follower, "RETRY_INITIAL_S", 0.05)
    traces = ["03-inbound-abandoned.ami", "11-missed-then-callback.ami"]

    async def go() -> tuple[int, int, int, dict[Any, dict[str, Any]]]:
        await upgrade_async(db_url)
        sim = simulator(shared_dir, *traces)
        await sim.start()
        # The day figures' table is gone (a botched manual change, a lost grant): every KPI update fails.
        await _execute(db_url, "ALTER TABLE kpi_manager_day RENAME TO kpi_manager_day_away")
        daemon, service, component = kpi_daemon(db_url, shared_dir, sim.port)
        try:
            await daemon.start()
            await all_events_in(daemon, sim)
            await wait_until(lambda: daemon.stats.calls_written == 3 and component.follower.failures >= 2)
            journal, facts = await _counts(db_url)
            pending = component.follower.pending
            await _execute(db_url, "ALTER TABLE kpi_manager_day_away RENAME TO kpi_manager_day")
            await asyncio.wait_for(daemon.flush(), 30)
            return journal, facts, pending, await day_figures(db_url, service)
        finally:
            await daemon.stop()
            await sim.stop()

    journal, facts, pending, day = asyncio.run(go())
    # 03 is one call, 11 a missed call and its callback: all in the journal, none in the figures yet.
    assert (journal, facts, pending) == (3, 0, 3)
    d = day[None]
    assert (d["calls_in"], d["missed"], d["calls_out"], d["callbacks"]) == (2, 2, 1, 1)
