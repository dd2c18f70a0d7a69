"""Each card's responsible manager: from the calls (the first or latest who talked), or by a person.

A card gets a manager from its calls only while no person has chosen one
(``Client.manager_set_by``): a manual choice, a manager or none, stands until a
person changes it. Calls can be written out of order (two PBX links, a replay),
so an automatic choice remembers the start of the call that made it and a call
written later replaces it only when it is earlier ("first") or later ("last").
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.clients.tables import AUTO, MANUAL, Client, Manager
from pbxbridge.db.base import table_of
from pbxbridge.db.chunks import chunks

FIRST_ANSWERED = "first_answered"
LAST_ANSWERED = "last_answered"
NO_ASSIGNMENT = "none"
MODES = (FIRST_ANSWERED, LAST_ANSWERED, NO_ASSIGNMENT)


@dataclass(frozen=True, slots=True)
class Talk:
    """A manager talked with a client: an answered inbound or outbound call."""

    client_id: int
    manager_id: int
    started_at: datetime


def _pick(talks: Iterable[Talk], mode: str) -> dict[int, Talk]:
    """Per client, the talk that decides its manager under ``mode``."""
    chosen: dict[int, Talk] = {}
    for talk in talks:
        held = chosen.get(talk.client_id)
        if held is None:
            chosen[talk.client_id] = talk
        elif mode == FIRST_ANSWERED and talk.started_at < held.started_at:
            chosen[talk.client_id] = talk
        elif mode == LAST_ANSWERED and talk.started_at >= held.started_at:
            chosen[talk.client_id] = talk
    return chosen


def _replaces(mode: str, talk: Talk, set_at: datetime | None) -> bool:
    """Whether a talk replaces the manager an earlier automatic choice gave the card."""
    if set_at is None:
        return True
    return talk.started_at < set_at if mode == FIRST_ANSWERED else talk.started_at >= set_at


async def assign_from_talks(session: AsyncSession, talks: Iterable[Talk], mode: str) -> int:
    """Give cards without a person's choice their manager from these talks; returns how many changed."""
    if mode not in (FIRST_ANSWERED, LAST_ANSWERED):
        return 0
    chosen = _pick(talks, mode)
    if not chosen:
        return 0
    clients = table_of(Client)
    # Cards a person has not decided: no choice yet, or one the calls made.
    undecided = or_(
        and_(clients.c.manager_set_by.is_(None), clients.c.responsible_manager_id.is_(None)),
        clients.c.manager_set_by == AUTO,
    )
    changed = 0
    for ids in chunks(sorted(chosen)):
        rows = await session.execute(
            select(clients.c.id, clients.c.responsible_manager_id, clients.c.manager_set_at)
            .where(clients.c.id.in_(ids), undecided)
        )
        for client_id, manager_id, set_at in rows.all():
            talk = chosen[client_id]
            if not _replaces(mode, talk, set_at):
                continue
            if manager_id == talk.manager_id and set_at == talk.started_at:
                continue
            # The same condition again: a person's choice made meanwhile wins.
            result = await session.execute(
                update(clients)
                .where(clients.c.id == client_id, undecided)
                .values(responsible_manager_id=talk.manager_id, manager_set_by=AUTO, manager_set_at=talk.started_at)
            )
            changed += int(getattr(result, "rowcount", 0) or 0)
    return changed


async def reassign(
    session: AsyncSession, client_ids: Sequence[int], extension: str | None, when: datetime
) -> list[int]:
    """A person gives these cards to the manager with ``extension`` (None: to nobody).

    Returns the ids of the cards that exist (the others are left out, nothing is
    changed for them). Raises LookupError when no manager has that extension.
    """
    manager_id: int | None = None
    if extension is not None:
        manager_id = await session.scalar(select(Manager.id).where(Manager.extension == extension))
        if manager_id is None:
            raise LookupError(extension)
    clients = table_of(Client)
    found: list[int] = []
    for ids in chunks(sorted(set(client_ids))):
        found.extend(await session.scalars(select(clients.c.id).where(clients.c.id.in_(ids))))
    for ids in chunks(found):
        await session.execute(
            update(clients)
            .where(clients.c.id.in_(ids))
            .values(responsible_manager_id=manager_id, manager_set_by=MANUAL, manager_set_at=when)
        )
    return found
