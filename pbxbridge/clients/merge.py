"""Merging two cards of the same person: the second card's numbers, calls and notes move to the
first, then the second card is gone.

Every table that points at a card by ``client_id`` follows it (calls, notes, numbers, the missed
worklist's closings, the KPI store's per-call facts), found in the schema rather than listed here,
so that a domain added later is not forgotten. A table where a card may have only one row (a lead's
first contact) keeps the first card's row if it has one.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Table, delete, exists, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.calls.tables import Call
from pbxbridge.clients.tables import Client, ClientNote, ClientPhone
from pbxbridge.db.base import Base


class MergeError(ValueError):
    """Two cards that cannot be merged (the same card twice)."""


@dataclass(frozen=True, slots=True)
class MergeResult:
    """What moved from the merged card to the kept one."""

    kept_id: int
    merged_id: int
    merged_name: str | None
    numbers: list[str]
    calls: int
    notes: int


def _tables_pointing_at_cards() -> list[Table]:
    found = []
    for table in Base.metadata.sorted_tables:
        if table.name == "clients" or "client_id" not in table.c:
            continue
        found.append(table)
    return found


async def merge_clients(db: AsyncSession, kept: Client, merged: Client) -> MergeResult:
    """Move everything of ``merged`` onto ``kept`` and delete ``merged``, in the caller's transaction."""
    if kept.id == merged.id:
        raise MergeError("a card cannot be merged into itself")
    numbers = sorted(p.number for p in merged.phones)
    calls = int(await db.scalar(select(func.count()).where(Call.client_id == merged.id)) or 0)
    notes = int(await db.scalar(select(func.count()).where(ClientNote.client_id == merged.id)) or 0)
    for table in _tables_pointing_at_cards():
        column = table.c.client_id
        moving = update(table).where(column == merged.id).values(client_id=kept.id)
        if list(table.primary_key.columns) == [column]:
            # One row per card: the kept card's own row wins.
            twin = table.alias()
            moving = moving.where(~exists(select(twin.c.client_id).where(twin.c.client_id == kept.id)))
        await db.execute(moving.execution_options(synchronize_session=False))
    # The kept card takes what it lacks from the merged one.
    if not kept.name and merged.name:
        kept.name = merged.name
    kept.is_lead = kept.is_lead and merged.is_lead
    kept.created_at = min(kept.created_at, merged.created_at)
    if kept.responsible_manager_id is None and merged.responsible_manager_id is not None:
        set_by, set_at = merged.manager_set_by, merged.manager_set_at
        kept.responsible_manager_id = merged.responsible_manager_id
        # Setting the manager marks it a person's choice; keep how the merged card got it.
        kept.manager_set_by, kept.manager_set_at = set_by, set_at
    merged_name = merged.name
    merged_id = merged.id
    # A statement, not the session's delete: that would first null the numbers it loaded
    # (already moved) on the merged card. What is left pointing at it goes with it (ON DELETE).
    db.expunge(merged)
    await db.execute(delete(Client).where(Client.id == merged_id))
    await db.flush()
    # The kept card's numbers as they now stand (the moved rows were written around the ORM).
    await db.refresh(kept, ["phones"])
    return MergeResult(kept.id, merged_id, merged_name, numbers, calls, notes)


async def numbers_of(db: AsyncSession, client_id: int) -> list[str]:
    """A card's numbers, sorted."""
    rows = await db.execute(select(ClientPhone.number).where(ClientPhone.client_id == client_id))
    return sorted(rows.scalars())
