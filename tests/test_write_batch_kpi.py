"""Calls written in batches leave the KPI store as call-by-call writing and `kpi rebuild` do."""

from __future__ import annotations

import asyncio
import dataclasses
from pathlib import Path
from typing import Any

from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.open_calls import forget_written
from pbxbridge.calls.store import CallWriter
from pbxbridge.config import Config
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.kpi.definitions import KpiSettings
from pbxbridge.kpi.service import KpiService
from pbxbridge.kpi.store import KpiRecorder
from tests.fixtures_kpi import (
    LOCAL_LAB,
    PJSIP_LAB,
    calls_of,
    day_figures,
    push,
    snapshot,
)


async def write_batches(db_url: str, calls: list[FinishedCall], service: KpiService, size: int) -> None:
    """Write calls ``size`` at a time, one transaction per batch, with the daemon's hooks."""
    engine = make_engine(db_url)
    try:
        writer = CallWriter(session_factory(engine), Config(), after_write=[service.record_written, forget_written])
        for start in range(0, len(calls), size):
            await writer.write_many(calls[start : start + size])
    finally:
        await engine.dispose()


def all_calls(shared_dir: Path, expected: dict[str, Any]) -> list[FinishedCall]:
    return calls_of(shared_dir, *expected)


def test_batches_equal_rebuild_and_replays_change_nothing(
    db_url: str, shared_dir: Path, expected: dict[str, Any]
) -> None:
    from pbxbridge.cli.main import main

    calls = all_calls(shared_dir, expected)
    service = KpiService()
    asyncio.run(write_batches(db_url, calls, service, size=7))
    written = asyncio.run(snapshot(db_url))
    assert len(written["kpi_call_facts"]) == len(calls)
    assert main(["kpi", "rebuild", "--db", db_url]) == 0
    assert asyncio.run(snapshot(db_url)) == written
    # The same calls again, in one batch and then one by one: nothing changes.
    asyncio.run(write_batches(db_url, calls, service, size=len(calls)))
    assert asyncio.run(snapshot(db_url)) == written
    asyncio.run(push(db_url, calls, service))
    assert asyncio.run(snapshot(db_url)) == written


def test_half_call_by_call_half_in_one_batch(db_url: str, shared_dir: Path) -> None:
    calls = calls_of(shared_dir, *LOCAL_LAB, *PJSIP_LAB, "11-missed-then-callback")
    one_by_one = KpiService()
    asyncio.run(push(db_url, calls[: len(calls) // 2], one_by_one))
    # The other half in one batch on top (the callback of 11 settles its missed call in it).
    batched = KpiService()
    asyncio.run(write_batches(db_url, calls[len(calls) // 2 :], batched, size=len(calls)))
    after_batch = asyncio.run(snapshot(db_url))
    day = asyncio.run(day_figures(db_url, batched))
    assert day[None]["callbacks"] >= 1
    asyncio.run(_rebuild(db_url))
    assert asyncio.run(snapshot(db_url)) == after_batch
    # The metrics saw every call once, whichever way it was written.
    counted = sum(s.value for s in batched.metrics.answered.collect()[0].samples if s.name.endswith("_total"))
    counted += sum(s.value for s in one_by_one.metrics.answered.collect()[0].samples if s.name.endswith("_total"))
    answered = [c for c in calls if str(c.status) == "answered" and c.manager and str(c.direction) != "internal"]
    assert counted == len(answered)


def test_a_day_rewritten_elsewhere_is_read_again(db_url: str, shared_dir: Path) -> None:
    # The daemon's recorder holds the day; `kpi rebuild` with a shorter callback window
    # rewrites it meanwhile. The daemon's next call must build on the stored facts, not on
    # what it held: its figures then equal a recomputation from the store.
    calls = calls_of(shared_dir, *LOCAL_LAB, *PJSIP_LAB)
    daemon = KpiService()
    asyncio.run(write_batches(db_url, calls[:-1], daemon, size=4))
    asyncio.run(_rebuild(db_url, KpiSettings(lost_lead_after_s=60)))
    asyncio.run(write_batches(db_url, calls[-1:], daemon, size=1))
    held = asyncio.run(snapshot(db_url))
    asyncio.run(_recompute_days(db_url, daemon.settings))
    assert asyncio.run(snapshot(db_url)) == held


def test_a_call_leaves_the_rows_it_did_not_change_as_they_were(db_url: str, shared_dir: Path) -> None:
    # Rows of managers (and hours) a call did not change keep their ids and figures: readers
    # and replicas of the figure tables see only the rows that moved.
    calls = calls_of(shared_dir, *LOCAL_LAB, *PJSIP_LAB)
    service = KpiService()
    asyncio.run(write_batches(db_url, calls[:-1], service, size=4))
    before = asyncio.run(_figure_rows(db_url))
    asyncio.run(write_batches(db_url, calls[-1:], service, size=1))
    after = asyncio.run(_figure_rows(db_url))
    kept = {key: row for key, row in before.items() if after.get(key) == row}
    assert kept, "some manager's figures did not change"
    changed = {key for key in after if before.get(key) != after[key]}
    # What moved has the id it had: updated in place, not deleted and inserted again.
    assert all(after[key][0] == before[key][0] for key in changed if key in before)
    written = asyncio.run(snapshot(db_url))
    asyncio.run(_rebuild(db_url))
    assert asyncio.run(snapshot(db_url)) == written


async def _figure_rows(db_url: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Every figure row, (table, day, hour, manager) -> (id, figures...)."""
    from sqlalchemy import select

    from pbxbridge.kpi.tables import ManagerDayRow, ManagerHourRow

    engine = make_engine(db_url)
    rows: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    try:
        async with session_factory(engine)() as session:
            for table in (ManagerDayRow.__table__, ManagerHourRow.__table__):
                for row in (await session.execute(select(table))).mappings():
                    key = (table.name, row["day"], row.get("hour"), row["manager"])
                    rows[key] = (row["id"], *(v for k, v in row.items() if k not in ("id", "day", "hour", "manager")))
    finally:
        await engine.dispose()
    return rows


def test_a_failed_batch_leaves_no_trace_in_the_figures(db_url: str, shared_dir: Path) -> None:
    calls = calls_of(shared_dir, *LOCAL_LAB)
    service = KpiService()
    asyncio.run(write_batches(db_url, calls[:5], service, size=5))
    before = asyncio.run(snapshot(db_url))
    # A batch whose transaction fails after the KPI hook has run: everything rolls back.
    doomed = [dataclasses.replace(c, linkedid=c.linkedid + "-again") for c in calls[5:]]

    async def refuse(*_args: Any) -> None:
        raise ValueError("refused by a domain hook")

    async def go() -> None:
        engine = make_engine(db_url)
        try:
            writer = CallWriter(session_factory(engine), Config(), after_write=[service.record_written, refuse])
            try:
                await writer.write_many(doomed)
            except ValueError:
                pass
        finally:
            await engine.dispose()

    asyncio.run(go())
    assert asyncio.run(snapshot(db_url)) == before
    # The recorder forgot what it held for the failed batch: the next calls add up as a rebuild does.
    asyncio.run(write_batches(db_url, calls[5:], service, size=5))
    written = asyncio.run(snapshot(db_url))
    asyncio.run(_rebuild(db_url))
    assert asyncio.run(snapshot(db_url)) == written


async def _rebuild(db_url: str, settings: KpiSettings | None = None) -> None:
    engine = make_engine(db_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            await KpiRecorder(settings).rebuild(session)
    finally:
        await engine.dispose()


async def _recompute_days(db_url: str, settings: KpiSettings) -> None:
    from sqlalchemy import select

    from pbxbridge.kpi.tables import CallFactRow

    engine = make_engine(db_url)
    try:
        async with session_factory(engine)() as session, session.begin():
            recorder = KpiRecorder(settings)
            days = (await session.scalars(select(CallFactRow.day).distinct())).all()
            for day in sorted(days):
                await recorder.recompute_day(session, day)
    finally:
        await engine.dispose()
