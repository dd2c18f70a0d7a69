"""Database URLs, engines, sessions and schema upgrades."""

from __future__ import annotations

import asyncio
import functools
import importlib
import json
from pathlib import Path
from typing import Any

import orjson
from alembic import command
from alembic.config import Config as AlembicConfig
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from pbxbridge.db.sqlite_inline import BUSY_WAIT_MS, connect_inline

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# Domains whose tables module joins Base.metadata on import.
DOMAINS = ("calls", "clients", "recordings", "transcription", "kpi", "routing", "web", "workflow", "crm", "analytics", "review")


def load_all_tables() -> None:
    """Import every installed domain's tables so that Base.metadata holds the whole schema."""
    for domain in DOMAINS:
        name = f"pbxbridge.{domain}.tables"
        try:
            importlib.import_module(name)
        except ModuleNotFoundError as exc:
            if exc.name != name:
                raise


def async_url(url: str) -> str:
    """The URL with the asyncio driver: sqlite -> aiosqlite, postgresql -> asyncpg."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        parsed = parsed.set(drivername="sqlite+aiosqlite")
    elif backend in ("postgresql", "postgres"):
        parsed = parsed.set(drivername="postgresql+asyncpg")
    else:
        raise ValueError(f"unsupported database URL scheme: {parsed.drivername}")
    return parsed.render_as_string(hide_password=False)


def is_sqlite(url: str) -> bool:
    """Whether the URL points at SQLite."""
    return make_url(url).get_backend_name() == "sqlite"


def can_run_inline(url: str) -> bool:
    """Whether ``make_engine(url, inline=True)`` runs statements on the event loop: a SQLite file."""
    database = make_url(url).database if is_sqlite(url) else None
    return bool(database) and database != ":memory:"


def _ensure_sqlite_dir(url: str) -> None:
    # A fresh install points at var/pbxbridge.sqlite3; create var/ rather than fail.
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database and parsed.database != ":memory:":
        Path(parsed.database).expanduser().parent.mkdir(parents=True, exist_ok=True)


# Execution option naming how a SQLite transaction begins: a writer that reads
# first must take the write lock up front ("IMMEDIATE"), or two such writers
# deadlock and one fails at once instead of waiting its turn.
SQLITE_BEGIN = "sqlite_begin"
WRITE = {SQLITE_BEGIN: "IMMEDIATE"}


def _sqlite_connect(dbapi_connection: Any, _record: Any, busy_timeout_ms: int = BUSY_WAIT_MS) -> None:
    # Let SQLAlchemy, not the driver, emit BEGIN (so SAVEPOINT and IMMEDIATE work).
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # Foreign keys are off by default in SQLite; a waiting writer beats "database is locked";
    # WAL lets the web pages read while the journal is written.
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={busy_timeout_ms}")
    cursor.execute("PRAGMA journal_mode=WAL")
    # With WAL, NORMAL syncs at checkpoints rather than every commit: a crash of the
    # process loses nothing; only the OS going down (power loss) can lose the last commits.
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Any) -> None:
    mode = conn.get_execution_options().get(SQLITE_BEGIN, "DEFERRED")
    if mode not in ("DEFERRED", "IMMEDIATE", "EXCLUSIVE"):
        raise ValueError(f"unknown SQLite transaction mode {mode!r}")
    conn.exec_driver_sql(f"BEGIN {mode}")


def read_json(text: str | bytes) -> Any:
    """A JSON column's value as read back.

    orjson parses several times faster than the standard library, which counts
    where every hit of a search brings a recording's word timings. JSON it
    refuses (the NaN the standard library writes for a float nan) is read by
    the standard library, as it was written.
    """
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return json.loads(text)


def make_engine(url: str, *, inline: bool = False, **kwargs: Any) -> AsyncEngine:
    """An asyncio engine for a plain sqlite:// or postgresql:// URL.

    ``inline``: on a SQLite file, statements run on the event loop rather than
    in a thread each (``sqlite_inline``): for short write transactions only, as a
    long query would hold up the loop. Ignored on PostgreSQL and in-memory SQLite.
    """
    _ensure_sqlite_dir(url)
    inline = inline and can_run_inline(url)
    if inline:
        database = make_url(url).database
        assert database is not None
        path = str(Path(database).expanduser())

        async def connect() -> Any:
            return await connect_inline(path)

        kwargs["async_creator"] = connect
    kwargs.setdefault("json_deserializer", read_json)
    engine = create_async_engine(async_url(url), **kwargs)
    if engine.dialect.name == "sqlite":
        # An inline connection waits for no lock on the loop: its worker thread does.
        on_connect = functools.partial(_sqlite_connect, busy_timeout_ms=0) if inline else _sqlite_connect
        event.listen(engine.sync_engine, "connect", on_connect)
        event.listen(engine.sync_engine, "begin", _sqlite_begin)
    return engine


def session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    """Sessions whose objects stay readable after commit."""
    return async_sessionmaker(engine, expire_on_commit=False)


def alembic_config(url: str) -> AlembicConfig:
    """Alembic settings built in code, so an installed package needs no alembic.ini."""
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", str(MIGRATIONS_DIR / "versions"))
    # ConfigParser interpolation would choke on '%' in passwords.
    cfg.set_main_option("sqlalchemy.url", async_url(url).replace("%", "%%"))
    return cfg


def upgrade(url: str, target: str = "heads") -> None:
    """Bring the schema up to date (every domain's head)."""
    _ensure_sqlite_dir(url)
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        command.upgrade(alembic_config(url), target)
        return
    # Alembic's env runs its own event loop, which cannot nest inside a running one.
    with _thread_pool() as pool:
        pool.submit(command.upgrade, alembic_config(url), target).result()


async def upgrade_async(url: str, target: str = "heads") -> None:
    """`upgrade` for callers already inside an event loop."""
    await asyncio.to_thread(upgrade, url, target)


def _thread_pool() -> Any:
    from concurrent.futures import ThreadPoolExecutor

    return ThreadPoolExecutor(max_workers=1)
