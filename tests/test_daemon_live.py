"""The live path: a PBX over TCP -> listener -> call tracker -> journal, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from sqlalchemy.engine import make_url

from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.ami.traces import Trace, load_trace
from pbxbridge.app import Daemon
from pbxbridge.calls.following import PbxLink
from pbxbridge.calls.model import ClosedBy, FinishedCall
from pbxbridge.config import Config, DatabaseConfig, PbxConfig, RecordingsConfig
from tests.fixtures_ami import (
    journal,
    live_linkedids,
    replay_again,
    trace_path,
    wait_until,
)

USER, SECRET = "pbxbridge", "s3cret"
FAST = {"backoff_initial_s": 0.05, "backoff_cap_s": 0.2}
# Inbound through queues, overflow, a missed call and its callback, a transfer,
# twelve callers at once, and the PJSIP lab's ring-all and click-to-call.
TRACES = (
    "01-inbound-answered.ami",
    "04-inbound-overflow.ami",
    "11-missed-then-callback.ami",
    "12-blind-transfer.ami",
    "13-burst.ami",
    "pjsip-01-inbound-ringall.ami",
    "pjsip-02-click-to-call.ami",
)


@dataclass
class LiveRun:
    calls: list[FinishedCall] = field(default_factory=list)
    logins: int = 0
    reconciled: int = 0
    malformed_lines: int = 0
    malformed_frames: int = 0


def _config(url: str, port: int, shared_dir: Path) -> Config:
    return Config(
        database=DatabaseConfig(url=url),
        recordings=RecordingsConfig(root=str(shared_dir / "recordings")),
        pbx=[PbxConfig(name="main", host="127.0.0.1", port=port, username=USER, secret=SECRET)],
    )


async def _all_fed(daemon: Daemon, sim: AmiSimulator) -> PbxLink:
    """Wait until the daemon has fed every replayed event to its tracker and written every call."""
    await sim.wait_replayed()
    link = daemon.links["main"]
    assert link.listener is not None
    # Each login also brings one FullyBooted greeting.
    await wait_until(lambda: link.events == sim.events_sent + link.listener.stats.logins)  # type: ignore[union-attr]
    await daemon.flush()
    return link


def run_live(
    url: str,
    shared_dir: Path,
    traces: list[Trace],
    during: Callable[[Daemon, AmiSimulator], Awaitable[None]] | None = None,
    **sim_options: Any,
) -> LiveRun:
    """Replay traces over TCP into a running Daemon; return what it wrote.

    ``during`` replaces the default wait for every event to have been fed.
    """

    async def go() -> LiveRun:
        sim = AmiSimulator(traces, speed=0, username=USER, secret=SECRET, **sim_options)
        await sim.start()
        daemon = Daemon(_config(url, sim.port, shared_dir), listener_options=FAST, retry_initial_s=0.05)
        run = LiveRun()
        daemon.call_subscribers.append(lambda call, row: run.calls.append(call))
        try:
            await daemon.start()
            link = daemon.links["main"]
            if during is None:
                await _all_fed(daemon, sim)
            else:
                await during(daemon, sim)
                await daemon.flush()
            assert link.listener is not None
            run.logins = link.listener.stats.logins
            run.reconciled = link.reconciled_calls
            run.malformed_lines = link.listener.decode_stats.malformed_lines
            run.malformed_frames = link.listener.stats.malformed_frames
            assert daemon.stats.calls_failed == 0
            return run
        finally:
            await daemon.stop()
            await sim.stop()

    return asyncio.run(go())


def test_live_daemon_writes_what_replay_writes(
    db_url: str, shared_dir: Path, expected: dict[str, Any], capsys: pytest.CaptureFixture[str]
) -> None:
    traces = [load_trace(trace_path(shared_dir, n)) for n in TRACES]
    run = run_live(db_url, shared_dir, traces)
    live_rows = journal(db_url)
    # One journal row per call the scenarios placed.
    scripted = sum(len(expected[n.removesuffix(".ami")]["calls"]) for n in TRACES)
    assert run.logins == 1 and len(run.calls) == len(live_rows) == scripted
    # The same traces replayed into the same journal find every call already there, unchanged.
    summary = replay_again(db_url, shared_dir, TRACES, capsys)
    assert f"{len(live_rows)} call(s), 0 new, {len(live_rows)} already in the journal" in summary
    assert journal(db_url) == live_rows
    assert any(row["recording"] for row in live_rows)


def test_dropped_connection_mid_call_loses_nothing(
    db_url: str, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ("01-inbound-answered.ami", "13-burst.ami", "pjsip-02-click-to-call.ami")
    traces = [load_trace(trace_path(shared_dir, n)) for n in names]
    events = [e for t in traces for e in t.events]
    cut = len(traces[0].events) + len(traces[1].events) // 2
    assert len(live_linkedids(events[:cut])) >= 2  # several calls up when the line drops
    run = run_live(db_url, shared_dir, traces, drop_after=cut)
    assert run.logins == 2
    # The PBX still had those calls after the reconnect: nothing closed early.
    assert run.reconciled == 0
    live_rows = journal(db_url)
    summary = replay_again(db_url, shared_dir, names, capsys)
    assert f"{len(live_rows)} call(s), 0 new, {len(live_rows)} already in the journal" in summary
    assert journal(db_url) == live_rows


def test_calls_that_ended_while_disconnected_are_closed_on_reconnect(db_url: str, shared_dir: Path) -> None:
    trace = load_trace(trace_path(shared_dir, "13-burst.ami"))
    cut = len(trace.events) // 2
    vanished = live_linkedids(list(trace.events[:cut]))
    assert vanished

    async def miss_the_rest(daemon: Daemon, sim: AmiSimulator) -> None:
        link = daemon.links["main"]
        assert link.listener is not None
        await link.listener.wait_for_logins(1)
        # From now on the PBX goes on without us, as a real one does, and
        # keeps the daemon out (its logins refused) until every call is over.
        sim.hold_when_idle = False
        sim.secret = "changed"
        await sim.wait_replayed()
        sim.secret = SECRET
        await wait_until(lambda: link.catch_ups == 2)
        # What the daemon got: the events up to the cut and a greeting per login.
        assert link.events == cut + 2

    run = run_live(db_url, shared_dir, [trace], during=miss_the_rest, drop_after=cut)
    assert run.logins == 2
    closed = {c.linkedid for c in run.calls if c.closed_by == ClosedBy.RECONCILE}
    assert closed == vanished
    assert run.reconciled == len(vanished)
    rows = {row["linkedid"]: row for row in journal(db_url)}
    assert vanished <= rows.keys()


def test_garbage_on_the_wire_is_counted_and_later_calls_still_written(
    db_url: str, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ("03-inbound-abandoned.ami", "06-outbound-answered.ami", "10-internal.ami")
    traces = [load_trace(trace_path(shared_dir, n)) for n in names]
    noise = b"\x00\xff\xfe line noise\r\n\r\nX-Bogus: no event here\r\n\r\n"
    run = run_live(db_url, shared_dir, traces, inject_after={20: noise, 200: noise, 400: noise})
    assert run.malformed_lines == 3 and run.malformed_frames == 3
    assert run.logins == 1
    live_rows = journal(db_url)
    assert {row["direction"] for row in live_rows} == {"inbound", "outbound", "internal"}
    summary = replay_again(db_url, shared_dir, names, capsys)
    assert f"{len(live_rows)} call(s), 0 new" in summary
    assert journal(db_url) == live_rows


def test_a_locked_database_does_not_hold_up_the_event_stream(
    db_url: str, shared_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    names = ("01-inbound-answered.ami", "06-outbound-answered.ami", "10-internal.ami")
    traces = [load_trace(trace_path(shared_dir, n)) for n in names]
    url = make_url(db_url)

    async def go() -> tuple[int, int, int]:
        sim = AmiSimulator(traces, speed=0, username=USER, secret=SECRET)
        await sim.start()
        daemon = Daemon(_config(db_url, sim.port, shared_dir), listener_options=FAST, retry_initial_s=0.05)
        # Another writer holds the calls table for as long as the whole replay
        # takes. The replay waits for the daemon's login, so the lock is taken
        # first: on PostgreSQL before the daemon starts (its schema check does
        # not touch calls), on SQLite (whose lock covers the file) right after,
        # before its listener has had a chance to run.
        release: Callable[[], Awaitable[None]]
        if url.get_backend_name() == "sqlite":
            await daemon.start()
            locker = sqlite3.connect(str(url.database), isolation_level=None)
            locker.execute("BEGIN EXCLUSIVE")

            async def release() -> None:
                locker.execute("COMMIT")
                locker.close()
        else:
            conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database=url.database)
            tx = conn.transaction()
            await tx.start()
            await conn.execute("LOCK TABLE calls IN ACCESS EXCLUSIVE MODE")

            async def release() -> None:
                await tx.commit()
                await conn.close()

            await daemon.start()
        try:
            try:
                await sim.wait_replayed()
                link = daemon.links["main"]
                # Every event reaches the tracker while no call can be written.
                await wait_until(lambda: link.events == sim.events_sent + 1)
                finished, written_meanwhile = daemon.stats.calls_finished, daemon.stats.calls_written
            finally:
                await release()
            await daemon.flush()
            return finished, written_meanwhile, daemon.stats.calls_written
        finally:
            await daemon.stop()
            await sim.stop()

    finished, written_meanwhile, written = asyncio.run(go())
    assert finished >= 3 and written_meanwhile == 0
    assert written == finished == len(journal(db_url))
    summary = replay_again(db_url, shared_dir, names, capsys)
    assert f"{finished} call(s), 0 new, {finished} already in the journal" in summary


def test_a_failing_write_is_retried_until_the_database_is_back(db_url: str, shared_dir: Path) -> None:
    names = ("03-inbound-abandoned.ami", "06-outbound-answered.ami")
    traces = [load_trace(trace_path(shared_dir, n)) for n in names]
    url = make_url(db_url)

    async def execute(sql: str) -> None:
        # A DBA's hand, outside the daemon's own connections.
        if url.get_backend_name() == "sqlite":
            with sqlite3.connect(str(url.database), isolation_level=None) as conn:
                conn.execute(sql)
        else:
            conn = await asyncpg.connect(host=url.host, port=url.port, user=url.username, database=url.database)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

    async def go() -> tuple[int, int, int]:
        await execute("ALTER TABLE calls RENAME TO calls_offline")
        sim = AmiSimulator(traces, speed=0, username=USER, secret=SECRET)
        await sim.start()
        # PostgreSQL calls a missing table a programming error, retried a few
        # times only: the pauses leave room for the table to come back.
        daemon = Daemon(_config(db_url, sim.port, shared_dir), listener_options=FAST, retry_initial_s=0.2)
        try:
            await daemon.start()
            await wait_until(lambda: daemon.stats.write_retries >= 2)
            written_while_broken = daemon.stats.calls_written
            await execute("ALTER TABLE calls_offline RENAME TO calls")
            await _all_fed(daemon, sim)
            return written_while_broken, daemon.stats.calls_written, daemon.stats.calls_failed
        finally:
            await daemon.stop()
            await sim.stop()

    written_while_broken, written, failed = asyncio.run(go())
    assert written_while_broken == 0
    assert failed == 0
    rows = journal(db_url)
    assert written == len(rows) == 2
    assert {(r["direction"], r["status"]) for r in rows} == {("inbound", "abandoned"), ("outbound", "answered")}
