"""The journal's speech-analytics filters as SQL conditions on Call: an item failed, a stop phrase said.

Each item's verdict is kept in call_checks.results (JSON, one entry per item), which SQLite and
PostgreSQL query with different functions; the calls whose item failed are read once here and
given to the journal as a list of ids, beside its other conditions.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BindParameter, ColumnElement, bindparam, exists, select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.analytics.tables import CallCheck, ChecklistRow
from pbxbridge.calls.tables import Call


def stop_phrase_said() -> ColumnElement[bool]:
    """Calls in which a stop phrase of any checklist was said."""
    return exists(select(CallCheck.call_id).where(CallCheck.call_id == Call.id, CallCheck.stop_phrases > 0))


def _failed(results: list[dict[str, Any]], title: str) -> bool:
    return any(r.get("title") == title and not r.get("passed") for r in results or [])


async def failed_item_calls(session: AsyncSession, checklist: str, title: str) -> list[int]:
    """Ids of the calls whose check against ``checklist`` failed the item ``title`` (a stop phrase
    item fails when the phrase was said)."""
    rows = await session.execute(
        select(CallCheck.call_id, CallCheck.results)
        .join(ChecklistRow, ChecklistRow.id == CallCheck.checklist_id)
        .where(ChecklistRow.name == checklist)
        # A call whose every item passed has nothing to look at.
        .where(CallCheck.items_passed < CallCheck.items_total)
    )
    return [call_id for call_id, results in rows.all() if _failed(results, title)]


async def failed_item(session: AsyncSession, checklist: str, title: str) -> ColumnElement[bool]:
    """Calls whose check against ``checklist`` failed the item ``title``."""
    ids = await failed_item_calls(session, checklist, title)
    # Ids inline rather than as parameters: a busy month is more ids than a database binds.
    param: BindParameter[Any] = bindparam("failed_item_calls", ids, expanding=True, literal_execute=True)
    return Call.id.in_(param)


async def checklist_items(session: AsyncSession) -> list[dict[str, Any]]:
    """Every checklist's name and its items' titles (what the journal's filter offers)."""
    rows = (await session.execute(select(ChecklistRow.name, ChecklistRow.definition).order_by(ChecklistRow.name))).all()
    return [
        {"name": name, "items": [str(i.get("title", "")) for i in (definition or {}).get("items", [])]}
        for name, definition in rows
    ]
