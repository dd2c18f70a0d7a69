"""The daemon stopped in the middle of a day and started again: the calls of the gap come from CEL.

`pbxbridge simulate` plays the day's captures to `pbxbridge run` as the PBX, and the PBX's
asteriskcdrdb (MariaDB) holds the CEL and CDR of the whole day, as it kept writing while the
daemon was down. The daemon follows the first captures and a call cut in its middle, is stopped
(it saves that call in progress), and comes back while the PBX is three calls further on. On
login it closes the call the PBX no longer has as far as it heard it, and the gap back-fill
rewrites that call whole from CEL and journals the calls of the gap; the rest comes live.
The journal ends with every call of the day exactly once, as the AMI path makes them.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text

from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.ami.traces import Trace, load_trace
from pbxbridge.app import Daemon, attach_domains
from pbxbridge.calls.following import tracker_settings
from pbxbridge.calls.replay import replay_trace
from pbxbridge.cli.main import main
from pbxbridge.config import Config, DatabaseConfig, PbxConfig, RecordingsConfig
from pbxbridge.db.engine import make_engine
from tests.conftest import fresh_database
from tests.fixtures_ami import WAIT_S, wait_until
from tests.fixtures_cel import cdr_database, load_captures
from tests.fixtures_service import SECRET, USER, DaemonProcess, write_config
from tests.scenario_check import load_expected, scenario_day_order

BEFORE = 5  # captures the daemon follows before it is stopped, then one cut in its middle
GAP = 3  # whole captures played while it is down


def _day(shared_dir: Path) -> list[Path]:
    return [shared_dir / f"{name}.ami" for name in scenario_day_order(load_expected(shared_dir))]


def _cut(path: Path, into: Path) -> Path:
    """The capture up to the middle of its call: what the daemon heard before it was stopped."""
    raw = path.read_bytes()
    frames = raw.split(b"\r\n\r\n")
    kept = frames[: len(frames) // 2]
    into.write_bytes(b"\r\n\r\n".join(kept) + b"\r\n\r\n")
    return into


def _events(paths: list[Path]) -> int:
    return sum(len(load_trace(p).events) for p in paths)


async def _journal(url: str) -> list[Any]:
    engine = make_engine(url)
    try:
        async with engine.connect() as conn:
            rows = await conn.execute(text("SELECT linkedid, source, closed_by, status, ended_at, answered_at FROM calls"))
            return list(rows.all())
    finally:
        await engine.dispose()


async def _simulate(paths: list[Path], log: Path) -> tuple[asyncio.subprocess.Process, int]:
    with log.open("wb") as out:
        sim = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "pbxbridge", "simulate", *map(str, paths), "--port", "0", "--speed", "0",
            "--username", USER, "--secret", SECRET, stdout=asyncio.subprocess.PIPE, stderr=out,
        )
    assert sim.stdout is not None
    line = (await asyncio.wait_for(sim.stdout.readline(), WAIT_S)).decode()
    assert line.startswith("listening on 127.0.0.1:"), (line, log.read_text())
    return sim, int(line.strip().rsplit(":", 1)[1])


async def _stop(sim: asyncio.subprocess.Process) -> None:
    if sim.returncode is None:
        sim.send_signal(signal.SIGTERM)
    await asyncio.wait_for(sim.wait(), WAIT_S)


async def _day_with_a_gap(db_url: str, shared_dir: Path, directory: Path) -> list[Any]:
    day = _day(shared_dir)
    first = [*day[:BEFORE], _cut(day[BEFORE], directory / "cut.ami")]
    after = day[BEFORE + 1 + GAP :]
    async with cdr_database("mysql") as cdr_url:
        # The PBX wrote CEL and CDR all day, the daemon up or down.
        await load_captures(cdr_url, day)
        extra = f'cdr_url = "{cdr_url}"\ncdr_timezone = "UTC"\n'
        sim, port = await _simulate(first, directory / "sim1.log")
        try:
            config = _config(directory / "one.toml", db_url, port, shared_dir, extra)
            daemon = DaemonProcess(config, directory / "daemon1.log")
            try:
                # Every event heard, the cut call in progress and saved.
                await daemon.wait_saved(events=_events(first) + 1, in_progress=1)
            finally:
                daemon.terminate()
                assert await daemon.exited() == 0, daemon.entries[-5:]
        finally:
            await _stop(sim)
        sim, port = await _simulate(after, directory / "sim2.log")
        try:
            config = _config(directory / "two.toml", db_url, port, shared_dir, extra)
            daemon = DaemonProcess(config, directory / "daemon2.log")
            try:
                await daemon.wait_for(lambda e: "backfilled" in e)
                await daemon.wait_saved(events=_events(after) + 1, in_progress=0)
            finally:
                daemon.terminate()
                assert await daemon.exited() == 0, daemon.entries[-5:]
            assert not [e for e in daemon.entries if e.get("level") in ("ERROR", "CRITICAL")]
            backfilled = next(e["backfilled"] for e in daemon.entries if "backfilled" in e)
        finally:
            await _stop(sim)
    assert backfilled == 1 + GAP
    return await _journal(db_url)


def _config(path: Path, db_url: str, port: int, shared_dir: Path, extra: str) -> Path:
    config = write_config(path, db_url, port, shared_dir / "recordings")
    text_ = config.read_text()
    # This PBX's asteriskcdrdb, in its [[pbx]] table.
    config.write_text(text_.replace(f'secret = "{SECRET}"\n', f'secret = "{SECRET}"\n{extra}', 1))
    return config


def test_a_day_with_the_daemon_down_in_its_middle_has_every_call_once(
    request: pytest.FixtureRequest, shared_dir: Path, tmp_path: Path
) -> None:
    with contextlib.contextmanager(fresh_database)(request, "postgresql", tmp_path) as db_url:
        rows = asyncio.run(_day_with_a_gap(db_url, shared_dir, tmp_path))
    settings = tracker_settings(PbxConfig())
    day = _day(shared_dir)
    truth = {c.linkedid: c for p in day for c in replay_trace(p, settings)}
    assert Counter(r[0] for r in rows) == Counter(list(truth)), "every call of the day, each once"
    by_id = {r[0]: r for r in rows}
    gap_calls = {c.linkedid for p in day[BEFORE : BEFORE + 1 + GAP] for c in replay_trace(p, settings)}
    assert {lid for lid, r in by_id.items() if r[1] == "cel"} == gap_calls
    # The call in progress across the gap is whole: ended when it really ended, answered, not cut.
    (across,) = [c for c in replay_trace(day[BEFORE], settings)]
    row = by_id[across.linkedid]
    assert row[2] == "hangup" and row[3] == across.status.value
    assert abs(row[4].timestamp() - across.ended_at) <= 1.5


async def _unreachable(db_url: str, shared_dir: Path, directory: Path) -> list[dict[str, Any]]:
    day = _day(shared_dir)
    # A PBX whose CEL database cannot be reached: the gap cannot be filled; the live path goes on.
    extra = 'cdr_url = "mysql://pbxbridge:wrong@127.0.0.1:1/asteriskcdrdb"\ncdr_timezone = "UTC"\n'
    sim, port = await _simulate([day[1]], directory / "sim.log")
    try:
        daemon = DaemonProcess(_config(directory / "bad.toml", db_url, port, shared_dir, extra), directory / "d.log")
        try:
            await daemon.wait_for(lambda e: "back-fill from CEL not possible" in e.get("message", ""))
            await daemon.wait_saved(events=_events([day[1]]) + 1, in_progress=0)
        finally:
            daemon.terminate()
            assert await daemon.exited() == 0, daemon.entries[-5:]
    finally:
        await _stop(sim)
    return daemon.entries


def test_an_unreachable_cel_database_is_said_and_the_live_path_goes_on(
    request: pytest.FixtureRequest, shared_dir: Path, tmp_path: Path
) -> None:
    with contextlib.contextmanager(fresh_database)(request, "sqlite", tmp_path) as db_url:
        # Something heard before: there is a gap to fill.
        assert main(["replay", str(_day(shared_dir)[0]), "--db", db_url]) == 0
        entries = asyncio.run(_unreachable(db_url, shared_dir, tmp_path))
        rows = asyncio.run(_journal(db_url))
    (said,) = [e for e in entries if "back-fill from CEL not possible" in e.get("message", "")]
    assert said["level"] == "ERROR" and "unreachable" in said["message"] and "wrong" not in said["message"]
    settings = tracker_settings(PbxConfig())
    live = {c.linkedid for c in replay_trace(_day(shared_dir)[1], settings)}
    assert live <= {r[0] for r in rows} and {r[1] for r in rows} == {"ami"}


async def _reconnect(db_url: str, cdr_url: str, shared_dir: Path, traces: list[Trace]) -> None:
    counts = [len(t.events) for t in traces]
    # The link breaks in the middle of a call; it comes back when the PBX is GAP calls further on.
    broken = sum(counts[:BEFORE]) + counts[BEFORE] // 2
    back = sum(counts[: BEFORE + 1 + GAP])
    sim = AmiSimulator(traces, speed=0, username=USER, secret=SECRET, hold_when_idle=True)
    await sim.start()
    pbx = PbxConfig(name="main", host="127.0.0.1", port=sim.port, username=USER, secret=SECRET,
                    cdr_url=cdr_url, cdr_timezone="UTC")
    config = Config(database=DatabaseConfig(url=db_url),
                    recordings=RecordingsConfig(root=str(shared_dir / "recordings")), pbx=[pbx])
    daemon = Daemon(config, listener_options={"backoff_initial_s": 0.05, "backoff_cap_s": 0.2},
                    retry_initial_s=0.05)
    assert attach_domains(daemon, ("pbxbridge.backfill.daemon",)) == ["pbxbridge.backfill.daemon"]
    try:
        await daemon.start()
        link = daemon.links["main"]
        listener = link.listener
        assert listener is not None
        sim.pause_after(broken)
        await sim.wait_paused()
        await wait_until(lambda: link.events == sim.events_sent + listener.stats.logins)
        # The PBX goes on with nobody listening, and lets nobody in until `back`.
        logins = listener.stats.logins
        sim.secret, sim.hold_when_idle = "not-now", False
        sim.pause_after(back)
        sim.drop_clients()
        sim.resume()
        await sim.wait_paused()
        sim.secret, sim.hold_when_idle = SECRET, True
        await listener.wait_for_logins(logins + 1)
        sim.resume()
        await sim.wait_replayed()
        expected = sum(1 for t in traces for e in t.events if e.get("Event") == "CEL" and e.get("EventName") == "LINKEDID_END")

        async def journaled() -> int:
            return len(await _journal(db_url))

        async with asyncio.timeout(WAIT_S):
            while await journaled() < expected or link.tracker.active_linkedids():
                await asyncio.sleep(0.1)
        await daemon.flush()
    finally:
        await daemon.stop()
        await sim.stop()


def test_a_reconnect_fills_in_the_calls_of_the_gap(
    request: pytest.FixtureRequest, shared_dir: Path, tmp_path: Path
) -> None:
    day = _day(shared_dir)[: BEFORE + 1 + GAP + 2]
    traces = [load_trace(p) for p in day]

    async def go(db_url: str) -> list[Any]:
        async with cdr_database("mysql") as cdr_url:
            await load_captures(cdr_url, day)
            await _reconnect(db_url, cdr_url, shared_dir, traces)
        return await _journal(db_url)

    with contextlib.contextmanager(fresh_database)(request, "sqlite", tmp_path) as db_url:
        rows = asyncio.run(go(db_url))
    settings = tracker_settings(PbxConfig())
    truth = {c.linkedid: c for p in day for c in replay_trace(p, settings)}
    assert Counter(r[0] for r in rows) == Counter(list(truth)), "every call once"
    by_id = {r[0]: r for r in rows}
    gap = {c.linkedid for p in day[BEFORE : BEFORE + 1 + GAP] for c in replay_trace(p, settings)}
    assert {lid for lid, r in by_id.items() if r[1] == "cel"} == gap
    (across,) = replay_trace(day[BEFORE], settings)
    assert by_id[across.linkedid][2] == "hangup" and by_id[across.linkedid][3] == across.status.value
