"""Finished calls hanging up together share a transaction, and none waits for company longer than the window."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from pbxbridge.calls.model import FinishedCall
from pbxbridge.calls.pipeline import WRITE_BATCH_MAX, CallPipeline
from pbxbridge.calls.replay import replay_trace, tracker_settings
from pbxbridge.calls.store import CallWriter, Written
from pbxbridge.calls.tables import Call
from pbxbridge.config import PbxConfig, load_config
from tests.fixtures_ami import trace_path


def _burst(shared_dir: Path, copies: int) -> list[FinishedCall]:
    """The burst trace's calls, ``copies`` times over with their own linkedids."""
    calls = replay_trace(trace_path(shared_dir, "13-burst.ami"), tracker_settings(PbxConfig()))
    return [dataclasses.replace(call, linkedid=f"{call.linkedid}-{i}") for i in range(copies) for call in calls]


def _pipeline(
    sessions: async_sessionmaker[AsyncSession], shared_dir: Path, coalesce_s: float
) -> tuple[CallPipeline, list[tuple[float, int]]]:
    """A pipeline writing with the daemon's writer; each transaction noted as (moment, calls)."""
    transactions: list[tuple[float, int]] = []

    async def note(_session: AsyncSession, written: Sequence[Written]) -> None:
        transactions.append((time.monotonic(), len(written)))

    config = load_config(None, {"PBXBRIDGE_RECORDINGS__ROOT": str(shared_dir / "recordings")})
    pipeline = CallPipeline(retry_initial_s=0.05, on_written=lambda _c, _r: None, on_status=lambda _s: None,
                            coalesce_s=coalesce_s)
    pipeline.start(CallWriter(sessions, config, after_write=[note]))
    return pipeline, transactions


async def _journal_size(sessions: async_sessionmaker[AsyncSession]) -> int:
    async with sessions() as session:
        return (await session.execute(select(func.count()).select_from(Call))).scalar_one()


async def test_calls_hanging_up_moments_apart_share_one_transaction(sessions, shared_dir) -> None:
    calls = _burst(shared_dir, 1)[:4]
    # A wide window, so that a loaded machine cannot stretch the gaps past it.
    pipeline, transactions = _pipeline(sessions, shared_dir, coalesce_s=1.0)
    try:
        put_at = time.monotonic()
        for call in calls:
            pipeline.put(call)
            # The event loop runs between hangups, as it does between socket reads.
            await asyncio.sleep(0.01)
        await pipeline.flush()
    finally:
        await pipeline.stop(5)
    assert transactions and [n for _at, n in transactions] == [len(calls)]
    # The first call waited for the others, but not past its window (plus the write itself).
    assert transactions[0][0] - put_at < 1.0 + 2.0
    assert await _journal_size(sessions) == len(calls)


async def test_a_full_batch_is_written_without_waiting_out_the_window(sessions, shared_dir) -> None:
    calls = _burst(shared_dir, WRITE_BATCH_MAX)[:WRITE_BATCH_MAX]
    assert len(calls) == WRITE_BATCH_MAX
    pipeline, transactions = _pipeline(sessions, shared_dir, coalesce_s=30.0)
    try:
        pipeline.put(calls[0])
        await asyncio.sleep(0.05)
        for call in calls[1:]:
            pipeline.put(call)
        await asyncio.wait_for(pipeline.flush(), 20)
    finally:
        await pipeline.stop(5)
    assert [n for _at, n in transactions] == [WRITE_BATCH_MAX]
    assert await _journal_size(sessions) == WRITE_BATCH_MAX



async def test_a_flush_writes_the_call_held_for_company_at_once(sessions, shared_dir) -> None:
    # Whoever flushes (the end of a replay, a stop) waits for the calls: the writer must not hold
    # the last one for companions that are not coming. A window of a minute makes waiting it out fail.
    (call,) = _burst(shared_dir, 1)[:1]
    pipeline, transactions = _pipeline(sessions, shared_dir, coalesce_s=60.0)
    try:
        pipeline.put(call)
        await asyncio.sleep(0.05)
        await asyncio.wait_for(pipeline.flush(), 20)
        # The next call after the flush waits for company again (the flush is over).
        pipeline.put(dataclasses.replace(call, linkedid=call.linkedid + "-next"))
        await asyncio.sleep(0.2)
        assert [n for _at, n in transactions] == [1]
        await asyncio.wait_for(pipeline.flush(), 20)
    finally:
        await pipeline.stop(5)
    assert [n for _at, n in transactions] == [1, 1]
    assert await _journal_size(sessions) == 2
