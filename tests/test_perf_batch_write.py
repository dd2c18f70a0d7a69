"""Calls written in batches: one transaction for many calls, and a bad call never holds up the rest."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.ami.simulator import AmiSimulator
from pbxbridge.ami.traces import load_trace
from pbxbridge.app import Daemon
from pbxbridge.calls.journal import fetch_journal
from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.pipeline import MAX_ATTEMPTS_ON_ERROR
from pbxbridge.calls.replay import replay_trace, tracker_settings
from pbxbridge.calls.store import CallWriter, Written
from pbxbridge.calls.tables import Call
from pbxbridge.clients.tables import Client, ClientPhone, Manager
from pbxbridge.config import (
    Config,
    DatabaseConfig,
    PbxConfig,
    RecordingsConfig,
    load_config,
)
from tests.fixtures_ami import journal, trace_path, wait_until

USER, SECRET = "pbxbridge", "s3cret"
FAST = {"backoff_initial_s": 0.05, "backoff_cap_s": 0.2}
SCENARIOS = ("01-inbound-answered", "04-inbound-overflow", "06-outbound-answered", "10-internal",
             "11-missed-then-callback", "12-blind-transfer", "13-burst", "pjsip-02-click-to-call")


def _calls(shared_dir: Path, scenarios: tuple[str, ...]) -> list[FinishedCall]:
    calls: list[FinishedCall] = []
    for name in scenarios:
        calls += replay_trace(trace_path(shared_dir, f"{name}.ami"), tracker_settings(PbxConfig()))
    return calls


async def _count(factory: async_sessionmaker[AsyncSession], model: type) -> int:
    async with factory() as session:
        return (await session.execute(select(func.count()).select_from(model))).scalar_one()


async def test_batch_writes_the_journal_that_single_writes_give(sessions, shared_dir, expected) -> None:
    config = load_config(None, {"PBXBRIDGE_RECORDINGS__ROOT": str(shared_dir / "recordings")})
    calls = _calls(shared_dir, SCENARIOS)
    seen: list[tuple[str, bool]] = []

    async def note(session: AsyncSession, written: Sequence[Written]) -> None:
        for row, call, is_new in written:
            # The hook sees its own call's row, inside the batch's transaction.
            assert row.linkedid == call.linkedid
            assert (await session.get(Call, row.id)) is row
            seen.append((call.linkedid, is_new))

    writer = CallWriter(sessions, config, after_write=[note])
    rows = await writer.write_many(calls)
    assert [r.linkedid for r in rows] == [c.linkedid for c in calls]
    assert seen == [(c.linkedid, True) for c in calls]
    assert sum(len(expected[s]["calls"]) for s in SCENARIOS) == len(calls) == await _count(sessions, Call)
    # The missed call and its callback share one number: one card for both.
    numbers = {r.client_number for r in rows if r.client_number}
    assert await _count(sessions, Client) == await _count(sessions, ClientPhone) == len(numbers)
    (missed, callback) = [r for r in rows if r.client_number == "+" + expected["11-missed-then-callback"]["calls"][0]["client"]]
    assert missed.client_id == callback.client_id is not None
    async with sessions() as session:
        batch_journal = await fetch_journal(session)
        managers = (await session.execute(select(func.count()).select_from(Manager))).scalar_one()
    assert managers == len({r.manager for r in rows if r.manager} | {m for r in rows for m in r.rang})
    # Written again one call at a time, every call is already there and nothing changes.
    seen.clear()
    for call in calls:
        await writer.write(call)
    assert seen == [(c.linkedid, False) for c in calls]
    async with sessions() as session:
        assert await fetch_journal(session) == batch_journal
    # And as a batch again, likewise.
    seen.clear()
    again = await writer.write_many(calls)
    assert [r.id for r in again] == [r.id for r in rows]
    assert seen == [(c.linkedid, False) for c in calls]
    async with sessions() as session:
        assert await fetch_journal(session) == batch_journal
    assert await _count(sessions, Client) == len(numbers)


async def test_a_batch_of_new_calls_old_ones_and_a_repeat_gives_each_its_due(sessions, shared_dir) -> None:
    """A reconnect replays calls the journal has; a batch may even hold one call twice."""
    config = load_config(None, {"PBXBRIDGE_RECORDINGS__ROOT": str(shared_dir / "recordings")})
    calls = _calls(shared_dir, SCENARIOS)
    seen: list[tuple[str, bool]] = []

    async def note(session: AsyncSession, written: Sequence[Written]) -> None:
        for row, call, is_new in written:
            assert row.linkedid == call.linkedid
            seen.append((call.linkedid, is_new))

    reference = CallWriter(sessions, config)
    await reference.write_many(calls)
    async with sessions() as session:
        expected_journal = await fetch_journal(session)
        await session.execute(Call.__table__.delete())
        await session.execute(ClientPhone.__table__.delete())
        await session.execute(Client.__table__.delete())
        await session.commit()

    half = len(calls) // 2
    writer = CallWriter(sessions, config, after_write=[note])
    await writer.write_many(calls[:half])
    seen.clear()
    rows = await writer.write_many([*calls, calls[-1]])
    assert seen == [(c.linkedid, i >= half) for i, c in enumerate(calls)] + [(calls[-1].linkedid, False)]
    assert rows[-1].id == rows[len(calls) - 1].id
    # Each new call came back with its parties and recordings, as the journal holds them.
    for row in rows[half:len(calls)]:
        assert {r.pbx_path for r in row.recordings} == set(calls[rows.index(row)].recording_files)
    assert await _count(sessions, Call) == len(calls)
    async with sessions() as session:
        assert _without_ids(await fetch_journal(session)) == _without_ids(expected_journal)


def _without_ids(journal: list[dict[str, object]]) -> list[dict[str, object]]:
    """A journal as compared across two writes: the cards' ids aside (cards are made anew)."""
    return [{k: v for k, v in entry.items() if k != "client_id"} for entry in journal]


async def test_batch_is_all_or_nothing(sessions, shared_dir) -> None:
    calls = _calls(shared_dir, ("13-burst",))
    bad = calls[len(calls) // 2].linkedid

    async def refuse(session: AsyncSession, written: Sequence[Written]) -> None:
        for row, call, is_new in written:
            if call.linkedid == bad:
                raise ValueError("refused by a domain hook")

    with pytest.raises(ValueError):
        await CallWriter(sessions, Config(), after_write=[refuse]).write_many(calls)
    assert await _count(sessions, Call) == 0
    assert await _count(sessions, Client) == 0


async def test_a_batch_that_failed_leaves_no_manager_behind_for_the_next(sessions, shared_dir) -> None:
    # The writer remembers managers between batches; one that a refused batch added was
    # rolled back with it and must be asked for again, not taken from memory.
    calls = _calls(shared_dir, ("13-burst",))
    refusing = True

    async def refuse_once(session: AsyncSession, written: Sequence[Written]) -> None:
        for row, call, is_new in written:
            if refusing:
                raise ValueError("refused by a domain hook")

    writer = CallWriter(sessions, Config(), after_write=[refuse_once])
    with pytest.raises(ValueError):
        await writer.write_many(calls)
    async with sessions() as session:
        assert (await session.execute(select(func.count()).select_from(Manager))).scalar_one() == 0
    refusing = False
    rows = await writer.write_many(calls)
    async with sessions() as session:
        managers = dict((await session.execute(select(Manager.extension, Manager.id))).all())
        stored = dict((await session.execute(select(Call.linkedid, Call.manager_id))).all())
    assert managers
    assert {row.linkedid: row.manager_id for row in rows} == stored
    assert {m for m in stored.values() if m is not None} <= set(managers.values())
    # A third batch, every manager known: the same ids, from memory.
    again = await writer.write_many([dataclasses.replace(c, linkedid=f"{c.linkedid}-2") for c in calls])
    assert [r.manager_id for r in again] == [r.manager_id for r in rows]


def test_daemon_writes_the_rest_of_a_batch_when_one_call_fails(db_url: str, shared_dir: Path) -> None:
    path = trace_path(shared_dir, "13-burst.ami")
    order = [c.linkedid for c in replay_trace(path, tracker_settings(PbxConfig()))]
    bad = order[len(order) // 2]
    attempts: list[str] = []
    written: list[str] = []

    async def go() -> tuple[int, int]:
        sim = AmiSimulator([load_trace(path)], speed=0, username=USER, secret=SECRET)
        await sim.start()
        config = Config(
            database=DatabaseConfig(url=db_url),
            recordings=RecordingsConfig(root=str(shared_dir / "recordings")),
            pbx=[PbxConfig(name="main", host="127.0.0.1", port=sim.port, username=USER, secret=SECRET)],
        )
        daemon = Daemon(config, listener_options=FAST, retry_initial_s=0.01)
        all_finished = asyncio.Event()

        async def gate(session: AsyncSession, batch: Sequence[Written]) -> None:
            for _row, call, _is_new in batch:
                # Hold the first write until every call has finished, so the rest queue
                # up behind it and go to the database as one batch.
                if call.linkedid == order[0]:
                    await all_finished.wait()
                if call.linkedid == bad:
                    attempts.append(call.linkedid)
                    raise ValueError("refused by a domain hook")

        daemon.after_write.append(gate)
        daemon.call_subscribers.append(lambda call, row: written.append(call.linkedid))
        try:
            await daemon.start()
            await wait_until(lambda: daemon.stats.calls_finished == len(order))
            all_finished.set()
            await daemon.flush()
            return daemon.stats.calls_written, daemon.stats.calls_failed
        finally:
            await daemon.stop()
            await sim.stop()

    calls_written, calls_failed = asyncio.run(go())
    assert (calls_written, calls_failed) == (len(order) - 1, 1)
    # Everything but the refused call is in the journal, in the order the calls finished.
    assert written == [lid for lid in order if lid != bad]
    assert sorted(row["linkedid"] for row in journal(db_url)) == sorted(written)
    # Tried once within the batch, then alone until set aside.
    assert len(attempts) == 1 + MAX_ATTEMPTS_ON_ERROR
