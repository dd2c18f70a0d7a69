"""Client cards by phone number: find the card, or start a new lead."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.clients.numbers import normalise_number
from pbxbridge.clients.tables import Client, ClientPhone
from pbxbridge.db.base import table_of
from pbxbridge.db.upsert import insert_or_ignore


async def find_client_by_number(session: AsyncSession, number: str, region: str = "RU") -> Client | None:
    """The card that holds this number (any written form), or None."""
    e164 = normalise_number(number, region)
    if e164 is None:
        return None
    return await _by_e164(session, e164)


async def _by_e164(session: AsyncSession, e164: str) -> Client | None:
    result = await session.execute(
        select(Client).join(ClientPhone, ClientPhone.client_id == Client.id).where(ClientPhone.number == e164)
    )
    return result.scalar_one_or_none()


async def find_or_create_client(session: AsyncSession, e164: str, first_contact_at: datetime) -> tuple[Client, bool]:
    """The card for an E.164 number; a number never seen starts a lead. Returns (card, created)."""
    client = await _by_e164(session, e164)
    if client is not None:
        _note_contact(client, first_contact_at)
        return client, False
    client = Client(is_lead=True, created_at=first_contact_at)
    session.add(client)
    await session.flush()
    phone_id = await insert_or_ignore(
        session, table_of(ClientPhone), {"client_id": client.id, "number": e164}, ["number"]
    )
    if phone_id is not None:
        return client, True
    # Another writer gave this number a card first: keep theirs, drop ours.
    await session.execute(delete(Client).where(Client.id == client.id))
    session.expunge(client)
    existing = await _by_e164(session, e164)
    if existing is None:  # pragma: no cover - the conflicting row cannot vanish inside our transaction
        raise RuntimeError(f"phone {e164} conflicted but has no card")
    _note_contact(existing, first_contact_at)
    return existing, False


def _note_contact(client: Client, contact_at: datetime) -> None:
    # Calls can be written out of order (two PBX links, a replay): a lead's card
    # dates from the earliest call heard, not the first one written.
    if client.is_lead and contact_at < client.created_at:
        client.created_at = contact_at
