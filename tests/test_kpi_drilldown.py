"""Every figure leads to its calls: after `pbxbridge replay` of every shared capture, each counted
figure of each business day, of the department and of every manager, is exactly the number of rows
its drill-down lists (on SQLite and PostgreSQL); talk time is the sum of the listed calls' talk."""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Iterator
from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from pbxbridge.cli.main import main
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.kpi.callbacks import missed_not_called_back
from pbxbridge.kpi.definitions import DEPARTMENT_ONLY, FIGURE_NAMES, KpiSettings
from pbxbridge.kpi.drilldown import COUNTED, LISTINGS, NOT_CALLED_BACK, DrillDownError, drill_down
from pbxbridge.kpi.report import read_figures
from pbxbridge.kpi.tables import CallFactRow
from tests.conftest import fresh_database

SETTINGS = KpiSettings()


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def replayed(request: pytest.FixtureRequest, shared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database `pbxbridge replay` of every shared capture wrote (its KPI store included)."""
    backend = str(request.param)
    with contextlib.contextmanager(fresh_database)(request, backend, tmp_path_factory.mktemp(f"drill-{backend}")) as url:
        paths = [str(p) for p in sorted(shared_dir.glob("*.ami"))]
        assert len(paths) >= 10
        assert main(["replay", *paths, "--db", url, "--recordings", str(shared_dir / "recordings")]) == 0
        yield url


async def _check_every_figure(url: str) -> dict[str, int]:
    """Compare every counted figure with its drill-down; return how many rows were compared per figure."""
    engine = make_engine(url)
    compared: dict[str, int] = dict.fromkeys(COUNTED, 0)
    try:
        async with session_factory(engine)() as db:
            days = sorted(set((await db.scalars(select(CallFactRow.day))).all()))
            assert days, "the replay wrote no KPI facts"
            for day in days:
                for row in await read_figures(db, day, day, SETTINGS):
                    manager = row["manager"]
                    for kpi in COUNTED:
                        if manager is not None and kpi in DEPARTMENT_ONLY:
                            continue
                        rows = await drill_down(db, kpi, day, day, manager, SETTINGS)
                        assert rows.count == (row[kpi] or 0), (day, manager, kpi, row[kpi], rows.call_ids)
                        compared[kpi] += rows.count
                    if manager is None:
                        waiting = await drill_down(db, NOT_CALLED_BACK, day, day, None, SETTINGS)
                        assert waiting.count == (await missed_not_called_back(db, day)).callers, day
                        compared[NOT_CALLED_BACK] = compared.get(NOT_CALLED_BACK, 0) + waiting.count
                    talked = await drill_down(db, "talk_s", day, day, manager, SETTINGS)
                    talk = await _talk_of(db, talked.call_ids)
                    assert math.isclose(talk, row["talk_s"] or 0.0, abs_tol=1e-6), (day, manager)
    finally:
        await engine.dispose()
    return compared


async def _talk_of(db: Any, call_ids: list[int]) -> float:
    if not call_ids:
        return 0.0
    talks = (await db.scalars(select(CallFactRow.talk_s).where(CallFactRow.call_id.in_(call_ids)))).all()
    return math.fsum(talks)


def test_every_figure_equals_its_drill_down(replayed: str) -> None:
    compared = asyncio.run(_check_every_figure(replayed))
    # The captures exercise the figures a sales head opens most: none compared only zeros.
    for kpi in ("calls_in", "answered", "missed", "calls_out", "outbound_answered", "lost_leads", "offered",
                NOT_CALLED_BACK):
        assert compared[kpi] > 0, kpi


async def _range_sum(url: str) -> tuple[int, int]:
    engine = make_engine(url)
    try:
        async with session_factory(engine)() as db:
            rows = await read_figures(db, date(1970, 1, 1), date(9998, 12, 31), SETTINGS)
            summed = sum(r["missed"] or 0 for r in rows if r["manager"] is None)
            listed = await drill_down(db, "missed", date(1970, 1, 1), date(9998, 12, 31), None, SETTINGS)
            return summed, listed.count
    finally:
        await engine.dispose()


def test_a_period_lists_as_many_calls_as_its_days_sum_to(replayed: str) -> None:
    summed, listed = asyncio.run(_range_sum(replayed))
    assert summed == listed > 0


def test_every_figure_has_a_listing_or_is_said_not_to() -> None:
    # The norm is a setting and the managers meeting it are people, not calls.
    assert set(FIGURE_NAMES) - set(LISTINGS) == {"outbound_norm", "managers_meeting_norm"}
    assert set(LISTINGS) - set(FIGURE_NAMES) == {NOT_CALLED_BACK}


async def _refusals(url: str) -> list[str]:
    engine = make_engine(url)
    out: list[str] = []
    try:
        async with session_factory(engine)() as db:
            for kpi, manager in (("no_such_figure", None), ("offered", "203")):
                try:
                    await drill_down(db, kpi, date(2026, 1, 1), date(2026, 1, 1), manager, SETTINGS)
                except DrillDownError as exc:
                    out.append(str(exc))
    finally:
        await engine.dispose()
    return out


def test_a_figure_that_is_not_there_is_refused_by_name(replayed: str) -> None:
    assert asyncio.run(_refusals(replayed)) == [
        "unknown figure: no_such_figure",
        "offered is a figure of the department, not of a manager",
    ]
