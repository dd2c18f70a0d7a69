"""One lock for everyone who rewrites the KPI store's figures (the call follower, speech analytics, rebuilds)."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

# One PostgreSQL advisory lock serialises KPI updates: two writers at once would
# otherwise both rewrite the same day's rows.
PG_LOCK_KEY = 0x6B7069  # "kpi"


async def lock_figures(session: AsyncSession) -> None:
    """Wait for the figures, for the rest of this transaction (SQLite has one writer at a time already)."""
    connection = await session.connection()
    if connection.dialect.name == "postgresql":
        await session.execute(select(func.pg_advisory_xact_lock(PG_LOCK_KEY)))
