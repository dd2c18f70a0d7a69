"""The card's single notes field, as it stood before notes had a history, becomes the card's first
note (no author); going back, the newest note fills the field again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import text

from pbxbridge.db.engine import alembic_config, make_engine, upgrade


async def _sql(url: str, statement: str, **params: object) -> list[tuple[object, ...]]:
    engine = make_engine(url)
    try:
        async with engine.begin() as conn:
            result = await conn.execute(text(statement), params)
            return [tuple(row) for row in result.all()] if result.returns_rows else []
    finally:
        await engine.dispose()


def test_the_old_notes_field_becomes_the_first_note_of_its_card(db_url: str) -> None:
    command.downgrade(alembic_config(db_url), "0018_call_review")
    now = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    for client_id, notes in ((1, "Просил перезвонить после обеда"), (2, "   "), (3, None)):
        asyncio.run(_sql(
            db_url, "INSERT INTO clients (id, is_lead, created_at, notes) VALUES (:id, :lead, :at, :notes)",
            id=client_id, lead=True, at=now, notes=notes,
        ))
    upgrade(db_url)
    rows = asyncio.run(_sql(db_url, "SELECT client_id, text, author FROM client_notes ORDER BY client_id"))
    assert rows == [(1, "Просил перезвонить после обеда", None)]

    asyncio.run(_sql(
        db_url, "INSERT INTO client_notes (client_id, text, author, created_at) VALUES (1, :t, 'olga', :at)",
        t="Отправили КП", at=datetime.now(UTC),
    ))
    command.downgrade(alembic_config(db_url), "0018_call_review")
    back = asyncio.run(_sql(db_url, "SELECT id, notes FROM clients ORDER BY id"))
    assert back == [(1, "Отправили КП"), (2, None), (3, None)]
