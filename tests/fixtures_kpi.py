"""Helpers of the KPI tests: captured scenarios written through the CallWriter with the KPI hook."""

from __future__ import annotations

import functools
from collections.abc import Iterable
from datetime import date
from pathlib import Path
from typing import Any

from sqlalchemy import select

from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.app import Daemon
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.replay import replay_trace, tracker_settings
from pbxbridge.calls.store import CallWriter
from pbxbridge.config import Config, DatabaseConfig, PbxConfig, RecordingsConfig
from pbxbridge.db.engine import make_engine, session_factory
from pbxbridge.kpi.daemon import KpiComponent, attach
from pbxbridge.kpi.report import read_figures
from pbxbridge.kpi.service import KpiService
from pbxbridge.kpi.tables import CallFactRow, LeadRow, ManagerDayRow, ManagerHourRow
from tests.fixtures_ami import wait_until

# Every captured scenario ran on the evening of 2026-11-26, Moscow time.
TRACE_DAY = date(2026, 11, 26)
LOCAL_LAB = (
    "01-inbound-answered", "02-inbound-second-agent", "03-inbound-abandoned", "04-inbound-overflow",
    "05-inbound-busy-everyone", "06-outbound-answered", "07-outbound-noanswer", "08-outbound-busy",
    "09-outbound-8-prefix", "10-internal",
)
# The AMI login the simulator asks of the daemon in these tests.
AMI_USER, AMI_SECRET = "pbxbridge", "s3cret"
PJSIP_LAB = ("pjsip-01-inbound-ringall", "pjsip-02-click-to-call", "pjsip-03-click-to-call-busy")


@functools.cache
def _calls_of(path: Path) -> tuple[FinishedCall, ...]:
    return tuple(replay_trace(path, tracker_settings(PbxConfig())))


def calls_of(shared_dir: Path, *scenarios: str) -> list[FinishedCall]:
    """Calls the tracker finished in the captured scenarios, scenario after scenario."""
    return [call for name in scenarios for call in _calls_of(shared_dir / f"{name}.ami")]


async def push(db_url: str, calls: Iterable[FinishedCall], service: KpiService) -> None:
    """Write calls one transaction each, the KPI hook inside, as the daemon does."""
    engine = make_engine(db_url)
    try:
        writer = CallWriter(session_factory(engine), Config(), after_write=[service.apply_call])
        for call in calls:
            await writer.write(call)
    finally:
        await engine.dispose()


async def day_figures(db_url: str, service: KpiService, hourly: bool = False) -> dict[Any, dict[str, Any]]:
    """The trace day's rows by manager (None: the department), or by (hour, manager)."""
    engine = make_engine(db_url)
    try:
        async with session_factory(engine)() as session:
            rows = await read_figures(session, TRACE_DAY, TRACE_DAY, service.settings, hourly=hourly)
    finally:
        await engine.dispose()
    if hourly:
        return {(r["hour"], r["manager"]): r for r in rows}
    return {r["manager"]: r for r in rows}


async def snapshot(db_url: str) -> dict[str, list[dict[str, Any]]]:
    """Every row of the KPI store, without surrogate ids, in a stable order."""
    engine = make_engine(db_url)
    out: dict[str, list[dict[str, Any]]] = {}
    try:
        async with session_factory(engine)() as session:
            for model in (CallFactRow, LeadRow, ManagerDayRow, ManagerHourRow):
                rows = (await session.execute(select(model.__table__))).mappings().all()
                items = [{k: v for k, v in row.items() if k != "id"} for row in rows]
                out[model.__table__.name] = sorted(items, key=repr)
    finally:
        await engine.dispose()
    return out


def simulator(shared_dir: Path, *traces: str) -> AmiSimulator:
    """The captured streams, replayed at once to whoever logs in."""
    return AmiSimulator([shared_dir / t for t in traces], speed=0, username=AMI_USER, secret=AMI_SECRET)


def kpi_daemon(db_url: str, shared_dir: Path, port: int) -> tuple[Daemon, KpiService, KpiComponent]:
    """A daemon with the KPI domain attached, listening to the simulator on ``port``."""
    config = Config(
        database=DatabaseConfig(url=db_url),
        recordings=RecordingsConfig(root=str(shared_dir / "recordings")),
        pbx=[PbxConfig(name="main", host="127.0.0.1", port=port, username=AMI_USER, secret=AMI_SECRET)],
    )
    daemon = Daemon(config, listener_options={"backoff_initial_s": 0.05, "backoff_cap_s": 0.2})
    service = attach(daemon)
    (component,) = [c for c in daemon.components if isinstance(c, KpiComponent)]
    return daemon, service, component


async def all_events_in(daemon: Daemon, sim: AmiSimulator) -> None:
    """Wait until the daemon has taken every event the simulator sent."""
    await sim.wait_replayed()
    link = daemon.links["main"]
    await wait_until(lambda: link.events == sim.events_sent + link.listener.stats.logins)  # type: ignore[union-attr]
