"""Inserts that let the database settle a race between two writers."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

ConflictInsert = postgresql.Insert | sqlite.Insert


def dialect_insert(session: AsyncSession, table: Table | type[Any]) -> ConflictInsert:
    """The session's dialect's INSERT (of a table or a mapped class), which knows ON CONFLICT."""
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"no conflict-tolerant insert for {dialect}")


async def insert_or_ignore(
    session: AsyncSession, table: Table, values: Mapping[str, Any], conflict_columns: Sequence[str]
) -> int | None:
    """INSERT … ON CONFLICT DO NOTHING; the new row's id, or None when the row existed."""
    stmt = (
        dialect_insert(session, table)
        .values(**values)
        .on_conflict_do_nothing(index_elements=list(conflict_columns))
        .returning(table.c.id)
    )
    result = await session.execute(stmt)
    return result.scalar_one_or_none()


def rowcount(result: Any) -> int:
    """Rows an INSERT, UPDATE or DELETE touched (its result is a cursor result; typed as any result)."""
    return int(getattr(result, "rowcount", 0) or 0)
