"""The daemon's SQLite writes run on the event loop, yet never wait on it for another process's lock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, text

from pbxbridge.db.engine import WRITE, make_engine, session_factory
from pbxbridge.db.sqlite_inline import InlineConnection
from tests.fixtures_ami import WAIT_S, wait_until


def _hold_write_lock(path: Path, taken: threading.Event, release: threading.Event) -> None:
    # Another process's writer (a transcription worker, a CLI command) as SQLite sees it.
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (v) VALUES ('other writer')")
        taken.set()
        release.wait(WAIT_S)
        conn.execute("COMMIT")
    finally:
        conn.close()


async def test_a_write_waits_for_another_writer_off_the_loop_and_loses_nothing(tmp_path: Path) -> None:
    path = tmp_path / "inline.sqlite3"
    setup = sqlite3.connect(path)
    setup.execute("PRAGMA journal_mode=WAL")
    setup.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, v TEXT)")
    setup.close()
    engine = make_engine(f"sqlite:///{path}", inline=True)
    connections: list[InlineConnection] = []

    def opened(_dbapi_connection: Any, record: Any) -> None:
        connections.append(record.driver_connection)

    # The engine's own connections, to see where their statements wait.
    event.listen(engine.sync_engine, "connect", opened)
    sessions = session_factory(engine)
    taken, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, taken, release))
    holder.start()
    try:
        assert await asyncio.to_thread(taken.wait, WAIT_S)

        async def write() -> None:
            async with sessions() as session, session.begin():
                await session.connection(execution_options=WRITE)
                await session.execute(text("INSERT INTO t (v) VALUES ('call')"))

        writing = asyncio.create_task(write())
        # SQLite refused the write as busy and it went to wait in the worker thread.
        # Had it waited for the lock on the loop instead, this coroutine could not
        # run until the other writer let go (it never does before release), and
        # the wait would fail.
        await wait_until(lambda: any(c.lock_waits for c in connections))
        # The loop still serves others, a thread's result included, while the write waits.
        await asyncio.to_thread(taken.is_set)
        assert not writing.done(), "the write went through while another writer held the lock"
        release.set()
        await asyncio.wait_for(writing, WAIT_S)
        assert sum(c.lock_waits for c in connections) == 1
    finally:
        release.set()
        await asyncio.to_thread(holder.join, WAIT_S)
        await engine.dispose()
    check = sqlite3.connect(path)
    assert [v for (v,) in check.execute("SELECT v FROM t ORDER BY id")] == ["other writer", "call"]
    check.close()


async def test_statement_errors_other_than_busy_are_raised_as_they_are(tmp_path: Path) -> None:
    engine = make_engine(f"sqlite:///{tmp_path / 'errors.sqlite3'}", inline=True)
    try:
        async with session_factory(engine)() as session:
            with pytest.raises(Exception, match="no such table"):
                await session.execute(text("SELECT * FROM missing"))
    finally:
        await engine.dispose()
