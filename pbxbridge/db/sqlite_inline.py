"""SQLite statements run on the event loop itself, for the daemon's short write transactions.

aiosqlite hands every cursor operation (cursor, execute, fetch, close, commit)
to its worker thread and back: four or five thread hops a statement, about
60 for one finished call, each waiting its turn on a busy event loop. Writing
a call spent ten times longer in those hops than in SQLite. A write
transaction of the daemon is a handful of indexed statements that SQLite runs
in microseconds, so here they run where they are asked for.

What could stall the loop is waiting for another process's write lock (a
transcription worker, a CLI command): such a connection waits for no lock on
the loop (busy timeout 0). A statement SQLite refuses as busy is run again in
the connection's worker thread, which waits for the lock while the loop goes on.
"""

from __future__ import annotations

import functools
import sqlite3
from collections.abc import Callable
from typing import Any, TypeVar

import aiosqlite

T = TypeVar("T")

# How long a SQLite writer waits for another's lock: every threaded connection,
# and here a statement refused as busy, in the worker thread.
BUSY_WAIT_MS = 15_000


class InlineConnection(aiosqlite.Connection):
    """An aiosqlite connection whose statements run on the calling thread; waits for locks in its worker."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        # Statements refused as busy and handed to the worker thread to wait for
        # the lock there: what shows (in a test, in a debugger) that the loop did not wait.
        self.lock_waits = 0

    async def _execute(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        if not self._running or not self._connection:
            raise ValueError("Connection closed")
        try:
            return fn(*args, **kwargs)
        except sqlite3.OperationalError as exc:
            if not _busy(exc):
                raise
        # Another writer holds the lock: the statement did nothing, so it is
        # asked again where waiting blocks no one.
        self.lock_waits += 1
        return await super()._execute(functools.partial(_waiting, self._conn, fn), *args, **kwargs)


def _waiting(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
    conn.execute(f"PRAGMA busy_timeout={BUSY_WAIT_MS}")
    try:
        return fn(*args, **kwargs)
    finally:
        conn.execute("PRAGMA busy_timeout=0")


def _busy(exc: sqlite3.OperationalError) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    # Extended codes (SQLITE_BUSY_SNAPSHOT, ...) keep the primary code in the low byte.
    return code is not None and code & 0xFF == sqlite3.SQLITE_BUSY


def connect_inline(database: str) -> InlineConnection:
    """A connection to the SQLite file ``database`` that is awaited once, then used on the event loop.

    The sqlite3 connection is opened in the worker thread and then used from
    the loop's, hence ``check_same_thread=False``; SQLAlchemy's pool hands it
    to one session at a time. Its busy timeout (0) is set with the other
    pragmas when the engine connects (``db.engine``).
    """
    def connector() -> sqlite3.Connection:
        return sqlite3.connect(database, check_same_thread=False)

    connection = InlineConnection(connector, iter_chunk_size=64)
    # As SQLAlchemy does for its own aiosqlite connections: an idle worker never keeps the process alive.
    connection._thread.daemon = True
    return connection
