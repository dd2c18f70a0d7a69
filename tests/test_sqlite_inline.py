"""The daemon's SQLite writes run on the event loop, yet never wait on it for another process's lock."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from pbxbridge.db.engine import WRITE, make_engine, session_factory


def _hold_write_lock(path: Path, taken: threading.Event, release: threading.Event) -> None:
    # Another process's writer (a transcription worker, a CLI command) as SQLite sees it.
    conn = sqlite3.connect(path, isolation_level=None)
    try:
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO t (v) VALUES ('other writer')")
        taken.set()
        release.wait(10)
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
    sessions = session_factory(engine)
    taken, release = threading.Event(), threading.Event()
    holder = threading.Thread(target=_hold_write_lock, args=(path, taken, release))
    holder.start()
    try:
        assert await asyncio.to_thread(taken.wait, 10)

        async def write() -> None:
            async with sessions() as session, session.begin():
                await session.connection(execution_options=WRITE)
                await session.execute(text("INSERT INTO t (v) VALUES ('call')"))

        writing = asyncio.create_task(write())
        # While the other writer holds the lock, the loop keeps turning: ticks are not held up.
        ticks = 0
        started = time.monotonic()
        while time.monotonic() - started < 0.3:
            await asyncio.sleep(0.01)
            ticks += 1
        assert not writing.done(), "the write went through while another writer held the lock"
        assert ticks >= 10
        release.set()
        await asyncio.wait_for(writing, 10)
    finally:
        release.set()
        await asyncio.to_thread(holder.join, 10)
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
