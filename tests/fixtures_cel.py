"""FreePBX's cdr and cel tables, filled from a shared capture's CEL and Cdr events.

The captures were recorded with ``cel_manager`` and ``cdr_manager`` on: every CEL row and CDR
Asterisk wrote reached AMI as ``Event: CEL`` / ``Event: Cdr``. Here they become the rows
``cel_odbc`` and ``cdr_adaptive_odbc`` write into ``asteriskcdrdb`` on a FreePBX system:
values cut to FreePBX's column widths (a long ``eventextra`` arrives cut), ``eventtime`` and
``calldate`` the PBX's local wall clock to the second. What the AMI Cdr event does not carry
is filled as FreePBX's dialplan fills it: ``recordingfile`` is the file name of the
``MIXMONITOR_FILENAME`` set on the CDR's channel (FreePBX sets ``CDR(recordingfile)`` beside
it), ``linkedid`` the channel's linkedid from its CEL rows.

Scratch databases are made per test (``pbxb_cel_<random>``) on MariaDB (127.0.0.1:3306, root)
and on PostgreSQL (the conftest's server), and dropped after.
"""

from __future__ import annotations

import contextlib
import os
import uuid
from collections.abc import AsyncIterator, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import create_async_engine

from pbxbridge.ami.frames import read_trace
from pbxbridge.backfill.freepbx import CDR_WIDTHS, CEL_WIDTHS, cdr_ddl, cel_ddl, index_ddl
from tests.conftest import PG_HOST, PG_PORT, _pg_admin

MYSQL_HOST = os.environ.get("PBXBRIDGE_TEST_MYSQL_HOST", "127.0.0.1")
MYSQL_PORT = int(os.environ.get("PBXBRIDGE_TEST_MYSQL_PORT", "3306"))
MYSQL_USER = os.environ.get("PBXBRIDGE_TEST_MYSQL_USER", "root")
# Asterisk's AMAFLAGS names as cel_odbc stores them.
AMA_FLAGS = {"OMIT": 1, "BILLING": 2, "DOCUMENTATION": 3}
SOURCES = ("mysql", "postgresql")

Row = dict[str, Any]


@dataclass
class CaptureTables:
    """A capture's rows for cel and cdr, in the order Asterisk wrote them."""

    cel: list[Row] = field(default_factory=list)
    cdr: list[Row] = field(default_factory=list)


def _cut(value: str, width: int) -> str:
    """What a varchar(width) column keeps (cel_odbc truncates a value too long for its column)."""
    return value[:width]


def capture_tables(path: Path | str) -> CaptureTables:
    """The cel and cdr rows of one capture's CEL and Cdr events."""
    _banner, frames = read_trace(path)
    out = CaptureTables()
    linkedid_of: dict[str, str] = {}
    recordings: dict[str, list[tuple[float, str]]] = {}
    cdr_events: list[dict[str, str]] = []
    # The PBX's wall clock minus Unix time (what EventTime and StartTime are written in).
    offset = 0.0
    for frame in frames:
        kind = frame.get("Event")
        if kind == "CEL":
            if not out.cel:
                offset = _wall(frame["EventTime"]) - int(float(frame["Timestamp"]))
            linkedid_of.setdefault(frame.get("UniqueID", ""), frame.get("LinkedID", ""))
            out.cel.append(_cel_row(frame))
        elif kind == "Cdr":
            cdr_events.append(dict(frame))
        elif kind == "VarSet" and frame.get("Variable") == "MIXMONITOR_FILENAME" and frame.get("Value"):
            at = float(frame.get("Timestamp", "0"))
            recordings.setdefault(frame.get("Uniqueid", ""), []).append((at, PurePosixPath(frame["Value"]).name))
    recording_of = _recording_per_cdr(cdr_events, recordings, offset)
    for sequence, event in enumerate(cdr_events):
        uid = event.get("UniqueID", "")
        row: Row = {
            "calldate": event.get("StartTime", ""),
            "clid": event.get("CallerID", ""),
            "src": event.get("Source", ""),
            "dst": event.get("Destination", ""),
            "dcontext": event.get("DestinationContext", ""),
            "channel": event.get("Channel", ""),
            "dstchannel": event.get("DestinationChannel", ""),
            "lastapp": event.get("LastApplication", ""),
            "lastdata": event.get("LastData", ""),
            "disposition": event.get("Disposition", ""),
            "accountcode": event.get("AccountCode", ""),
            "uniqueid": uid,
            "userfield": event.get("UserField", ""),
            "did": "",
            "recordingfile": recording_of.get(sequence, ""),
            "cnum": "",
            "cnam": "",
            "outbound_cnum": "",
            "outbound_cnam": "",
            "dst_cnam": "",
            "linkedid": linkedid_of.get(uid, uid),
            "peeraccount": "",
            "duration": int(event.get("Duration") or 0),
            "billsec": int(event.get("BillableSeconds") or 0),
            "amaflags": AMA_FLAGS.get(event.get("AMAFlags", ""), 0),
            "sequence": sequence,
        }
        out.cdr.append({k: _cut(v, CDR_WIDTHS[k]) if k in CDR_WIDTHS else v for k, v in row.items()})
    return out


def _wall(text: str) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=UTC).timestamp()


def _recording_per_cdr(
    cdr_events: list[dict[str, str]], recordings: dict[str, list[tuple[float, str]]], offset: float
) -> dict[int, str]:
    """Which CDR (by its place in the capture) holds each recording: the channel's CDR that had begun when it started.

    A transfer starts a new CDR on the same channel, and FreePBX sets ``CDR(recordingfile)``
    on the CDR current when MixMonitor starts.
    """
    out: dict[int, str] = {}
    for uid, started in recordings.items():
        cdrs = [(i, _wall(e.get("StartTime", "")) - offset) for i, e in enumerate(cdr_events) if e.get("UniqueID") == uid]
        for at, name in started:
            begun = [i for i, start in cdrs if start <= at + 1 and i not in out]
            if begun:
                out[begun[-1]] = name
    return out


def _cel_row(frame: dict[str, str]) -> Row:
    values = {
        "eventtype": frame.get("EventName", ""),
        "cid_name": frame.get("CallerIDname", ""),
        "cid_num": frame.get("CallerIDnum", ""),
        "cid_ani": frame.get("CallerIDani", ""),
        "cid_rdnis": frame.get("CallerIDrdnis", ""),
        "cid_dnid": frame.get("CallerIDdnid", ""),
        "exten": frame.get("Exten", ""),
        "context": frame.get("Context", ""),
        "channame": frame.get("Channel", ""),
        "src": "",
        "dst": "",
        "channel": "",
        "dstchannel": "",
        "appname": frame.get("Application", ""),
        "appdata": frame.get("AppData", ""),
        "accountcode": frame.get("AccountCode", ""),
        "uniqueid": frame.get("UniqueID", ""),
        "linkedid": frame.get("LinkedID", ""),
        "peer": frame.get("Peer", ""),
        "userdeftype": "",
        "eventextra": frame.get("Extra", ""),
        "userfield": frame.get("Userfield", ""),
    }
    row: Row = {k: _cut(v, CEL_WIDTHS[k]) for k, v in values.items()}
    row["eventtime"] = frame.get("EventTime", "")
    row["amaflags"] = AMA_FLAGS.get(frame.get("AMAFlags", ""), 0)
    return row


# ------------------------------------------------------------------ databases


def mysql_url(database: str, user: str = MYSQL_USER, password: str = "") -> str:
    auth = f"{user}:{password}" if password else user
    return f"mysql://{auth}@{MYSQL_HOST}:{MYSQL_PORT}/{database}"


def pg_url(database: str, user: str) -> str:
    return f"postgresql://{user}@{PG_HOST}:{PG_PORT}/{database}"


async def _mysql_admin(sql: str) -> None:
    engine = create_async_engine(f"mysql+asyncmy://{MYSQL_USER}@{MYSQL_HOST}:{MYSQL_PORT}/", isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await conn.execute(text(sql))
    finally:
        await engine.dispose()


def _driver_url(url: str) -> str:
    if url.startswith("mysql://"):
        return "mysql+asyncmy://" + url.removeprefix("mysql://")
    return "postgresql+asyncpg://" + url.removeprefix("postgresql://")


async def create_cdr_database(source: str) -> str:
    """A scratch asteriskcdrdb with FreePBX's empty cel and cdr tables on ``mysql`` or ``postgresql``; its URL."""
    name = f"pbxb_cel_{uuid.uuid4().hex[:12]}"
    if source == "mysql":
        await _mysql_admin(f"CREATE DATABASE {name} CHARACTER SET utf8mb4")
        url = mysql_url(name)
    else:
        user = await _pg_admin(f'CREATE DATABASE "{name}"')
        url = pg_url(name, user)
    dialect = "mysql" if source == "mysql" else "postgresql"
    engine = create_async_engine(_driver_url(url))
    try:
        async with engine.begin() as conn:
            for statement in (cel_ddl(dialect), cdr_ddl(dialect), *index_ddl()):
                await conn.execute(text(statement))
    finally:
        await engine.dispose()
    return url


async def drop_cdr_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    if url.startswith("mysql://"):
        await _mysql_admin(f"DROP DATABASE IF EXISTS {name}")
    else:
        await _pg_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.asynccontextmanager
async def cdr_database(source: str) -> AsyncIterator[str]:
    """``create_cdr_database`` for the block's length, dropped after."""
    url = await create_cdr_database(source)
    try:
        yield url
    finally:
        await drop_cdr_database(url)


async def insert_rows(url: str, cel: Sequence[Row], cdr: Sequence[Row] = ()) -> None:
    """Append rows to cel and cdr, in order (cel ids follow the order, as Asterisk's inserts make them)."""
    engine = create_async_engine(_driver_url(url))
    try:
        async with engine.begin() as conn:
            for table, rows in (("cel", cel), ("cdr", cdr)):
                if not rows:
                    continue
                columns = list(rows[0])
                statement = text(
                    f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({', '.join(':' + c for c in columns)})"
                )
                await conn.execute(statement, [_typed(r) for r in rows])
    finally:
        await engine.dispose()


def _typed(row: Row) -> Row:
    """Dates as datetime objects (both drivers take them; asyncpg takes no strings for timestamps)."""
    out = dict(row)
    for key in ("eventtime", "calldate"):
        if isinstance(out.get(key), str):
            out[key] = datetime.fromisoformat(out[key])
    return out


async def load_captures(url: str, paths: Iterable[Path | str]) -> CaptureTables:
    """Fill cel and cdr from captures, one after another; the rows written."""
    every = CaptureTables()
    for path in paths:
        tables = capture_tables(path)
        every.cel.extend(tables.cel)
        every.cdr.extend(tables.cdr)
    await insert_rows(url, every.cel, every.cdr)
    return every
