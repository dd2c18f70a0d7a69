"""Reading a PBX's asteriskcdrdb: CEL rows in pages by id, a call's CDR rows beside them.

The URL's scheme picks the driver: ``mysql://`` (MariaDB/MySQL, as FreePBX has it) reads
through asyncmy, ``postgresql://`` through asyncpg (Asterisk's cel_pgsql/cdr_pgsql). Only
SELECTs are sent: a read-only grant is enough (docs/FREEPBX.md).

FreePBX's cel table has no index on ``eventtime``, only its primary key: rows are read in
id order (the order Asterisk wrote them), and the first id of a range is found by a binary
search on the key, a few dozen point reads however large the table.
"""

from __future__ import annotations

import logging
import math
from collections.abc import AsyncGenerator, AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, ProgrammingError
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from pbxbridge.backfill.rows import CDR_COLUMNS, CEL_COLUMNS, BadRow, CdrRow, CelRow, cdr_row, cdr_rows, cel_rows

log = logging.getLogger(__name__)

# CEL rows handed on at a time: the unit of a run's checkpoint (about 270 calls of the captures).
PAGE_ROWS = 10_000
# CEL rows one query streams (pages of it arrive while the last is being written). Bounded so that
# the PBX's database holds no read view (undo InnoDB cannot purge) for the whole of an import.
QUERY_ROWS = 100_000
CEL_SELECT = ", ".join(CEL_COLUMNS)
CDR_SELECT = ", ".join(CDR_COLUMNS)
_DRIVERS = {
    "mysql": "mysql+asyncmy",
    "mariadb": "mysql+asyncmy",
    "postgresql": "postgresql+asyncpg",
    "postgres": "postgresql+asyncpg",
}


class SourceError(RuntimeError):
    """The CDR database cannot be read; the message says what to fix."""


def driver_url(url: str) -> str:
    """The URL with its async driver (``mysql://`` -> asyncmy, ``postgresql://`` -> asyncpg)."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend not in _DRIVERS:
        raise SourceError(f"cdr_url: unsupported scheme {parsed.drivername!r} (use mysql:// or postgresql://)")
    return parsed.set(drivername=_DRIVERS[backend]).render_as_string(hide_password=False)


def safe_url(url: str) -> str:
    """The URL without its password, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:  # noqa: BLE001 - an unreadable URL is shown as nothing rather than leaked
        return "(unreadable URL)"


@dataclass(frozen=True, slots=True)
class CelPage:
    rows: list[CelRow]
    # The last id read (bad rows included): the next page starts after it.
    last_id: int
    # Unix seconds of the last row read.
    last_at: float


class CdrSource:
    """One PBX's asteriskcdrdb, read-only."""

    def __init__(
        self,
        url: str,
        zone: ZoneInfo,
        warn: Callable[[str], None] | None = None,
        engine: AsyncEngine | None = None,
    ) -> None:
        self.url = url
        self.zone = zone
        self.engine = engine or create_async_engine(driver_url(url), pool_pre_ping=True, pool_size=2)
        self._warn = warn or log.warning
        self.bad_rows = 0

    async def close(self) -> None:
        await self.engine.dispose()

    async def check(self) -> None:
        """Fail now, with what to fix, when the database cannot be read (wrong password, unreachable, no cel)."""
        try:
            async with self.engine.connect() as conn:
                await conn.execute(text("SELECT id FROM cel ORDER BY id LIMIT 1"))
        except (OperationalError, InterfaceError, ProgrammingError, DBAPIError, OSError) as exc:
            raise SourceError(_explain(exc, safe_url(self.url))) from exc

    async def _one(self, sql: str, **params: Any) -> Any:
        async with self.engine.connect() as conn:
            return (await conn.execute(text(sql), params)).first()

    async def first_id_at(self, at: float) -> int:
        """The id of the first CEL row written at or after ``at`` (one past the last when none)."""
        bounds = await self._one("SELECT min(id), max(id) FROM cel")
        if bounds is None or bounds[0] is None:
            return 1
        lo, hi = int(bounds[0]), int(bounds[1]) + 1
        # eventtime is kept to the second: rows of the second ``at`` falls in are at or after it.
        wall = self._wall(math.floor(at))
        while lo < hi:
            mid = (lo + hi) // 2
            row = await self._one("SELECT id, eventtime FROM cel WHERE id >= :mid ORDER BY id LIMIT 1", mid=mid)
            if row is None:
                hi = mid
            elif _naive(row[1]) < wall:
                lo = int(row[0]) + 1
            else:
                hi = mid
        return lo

    def _wall(self, at: float) -> datetime:
        """Unix seconds as the PBX's wall clock (what eventtime and calldate hold)."""
        return datetime.fromtimestamp(at, self.zone).replace(tzinfo=None)

    async def cel_pages(
        self, after_id: int, page_rows: int = PAGE_ROWS, query_rows: int = QUERY_ROWS
    ) -> AsyncGenerator[CelPage, None]:
        """The CEL rows after ``after_id`` in id order, ``page_rows`` at a time, to the table's end.

        Each query streams its rows from the server (a server-side cursor: asyncmy's SSCursor,
        asyncpg's cursor), so a page costs its own rows' memory only; only the columns a call
        needs are read. Close it (``contextlib.aclosing``) when leaving before the end.
        """
        statement = text(f"SELECT {CEL_SELECT} FROM cel WHERE id > :after ORDER BY id LIMIT :limit")
        page_rows = max(1, min(page_rows, query_rows))
        while True:
            read = 0
            async with self.engine.connect() as conn:
                result = await conn.stream(statement, {"after": after_id, "limit": query_rows})
                try:
                    async for raw in result.partitions(page_rows):
                        read += len(raw)
                        page = self._page(raw)
                        after_id = page.last_id
                        yield page
                finally:
                    # Left before its end (the range is read): the rest is discarded, not kept waiting.
                    await result.close()
            if read < query_rows:
                return

    async def cel_page(self, after_id: int, limit: int = PAGE_ROWS) -> CelPage | None:
        """Up to ``limit`` CEL rows after ``after_id``, in id order; None past the last row."""
        async with self.engine.connect() as conn:
            result = await conn.execute(
                text(f"SELECT {CEL_SELECT} FROM cel WHERE id > :after ORDER BY id LIMIT :limit"),
                {"after": after_id, "limit": limit},
            )
            raw = result.all()
        return self._page(raw) if raw else None

    def _page(self, raw: Sequence[Sequence[Any]]) -> CelPage:
        rows = cel_rows(raw, self.zone, self._bad)
        return CelPage(rows=rows, last_id=int(raw[-1][0]), last_at=rows[-1].at if rows else 0.0)

    def _bad(self, exc: BadRow) -> None:
        self.bad_rows += 1
        self._warn(f"{exc}; skipped")

    async def cdr_rows(self, linkedids: Sequence[str], since: float, until: float) -> dict[str, list[CdrRow]]:
        """The CDR rows of these calls, which began between ``since`` and ``until`` (by calldate's index)."""
        if not linkedids:
            return {}
        wanted = set(linkedids)
        statement = text(
            f"SELECT {CDR_SELECT} FROM cdr WHERE calldate >= :since AND calldate <= :until"
        ).bindparams(bindparam("since"), bindparam("until"))
        async with self.engine.connect() as conn:
            result = await conn.execute(
                statement, {"since": self._wall(since - 1), "until": self._wall(until + 1)}
            )
            raw = result.all()
        out: dict[str, list[CdrRow]] = {}
        # Calls of the time range not asked for (still open, or of another page) are not converted.
        for row in cdr_rows(raw, self.zone, self._bad_cdr, wanted):
            out.setdefault(row.linkedid, []).append(row)
        return out

    def _bad_cdr(self, exc: BadRow) -> None:
        self._warn(f"{exc}; skipped")

    async def cdr_pages(self, since: float, until: float, limit: int = PAGE_ROWS) -> AsyncIterator[list[CdrRow]]:
        """Every CDR row that began in [since, until), in pages by calldate (the CDR-only fallback)."""
        start = self._wall(since)
        end = self._wall(until)
        offset = 0
        while True:
            async with self.engine.connect() as conn:
                result = await conn.execute(
                    text(
                        f"SELECT {CDR_SELECT} FROM cdr WHERE calldate >= :start AND calldate < :end"
                        " ORDER BY calldate, sequence LIMIT :limit OFFSET :offset"
                    ),
                    {"start": start, "end": end, "limit": limit, "offset": offset},
                )
                raw = result.mappings().all()
            if not raw:
                return
            offset += len(raw)
            page: list[CdrRow] = []
            for item in raw:
                try:
                    page.append(cdr_row(dict(item), self.zone))
                except BadRow as exc:
                    self._warn(f"{exc}; skipped")
            yield page


def _naive(value: Any) -> datetime:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise TypeError(f"not a date and time: {value!r}")
    return value.replace(tzinfo=None)


def _explain(exc: BaseException, where: str) -> str:
    """What went wrong reading the CDR database, in words an admin acts on."""
    message = str(getattr(exc, "orig", None) or exc)
    lowered = message.lower()
    if "access denied" in lowered or "password" in lowered or "authentication" in lowered:
        return f"CDR database {where}: login refused (wrong user or password?): {message}"
    if (
        "doesn't exist" in lowered
        or "does not exist" in lowered
        or "unknown database" in lowered
        or "no such table" in lowered
    ):
        return f"CDR database {where}: no cel table there (is it FreePBX's asteriskcdrdb, is CEL on?): {message}"
    if "select command denied" in lowered or "permission denied" in lowered:
        return f"CDR database {where}: no right to read cel (grant SELECT, see docs/FREEPBX.md): {message}"
    return f"CDR database {where} unreachable: {message}"
