"""Missed clients to call back: one row per client, read off the journal with the KPIs' own words.

What "not called back" means is the KPI store's (``pbxbridge.kpi.callbacks``): a
client's missed call stays on the worklist until the company reaches the client,
an answered call either way that starts after it, and the wallboard's "missed
today, not called back" counts the same clients. An outbound call nobody
answered (``busy``, ``no_answer``) is an attempt: the row stays, the attempt is
noted, and its callback time is the KPIs' (``link_callbacks``). A ``failed``
call never reached the client: it is no attempt and reaches nobody. A person
may close a row with a reason; a call missed after that opens a new one.

Internal calls and calls without a client card are never rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import case, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.calls.tables import Call
from pbxbridge.clients.tables import Client, ClientPhone, Manager
from pbxbridge.db.base import table_of
from pbxbridge.db.chunks import chunks
from pbxbridge.db.types import utc_from_unix
from pbxbridge.kpi.callbacks import as_time, client_calls, closed_through, is_missed, reaches, waiting_calls
from pbxbridge.kpi.definitions import (
    CallFact,
    KpiSettings,
    link_callbacks,
)

# Reasons a person closes a row for (the company reaching the client closes it by itself).
SPAM = "spam"
WRONG_NUMBER = "wrong_number"
REACHED_OTHERWISE = "reached_otherwise"
CLOSE_REASONS = (SPAM, WRONG_NUMBER, REACHED_OTHERWISE)
# How far back the list looks from the newest call, by default (``workflow.missed_days``).
DAYS = 90


@dataclass(slots=True)
class MissedRow:
    """One client waiting for the company to call back."""

    client_id: int
    # The number the client last called from (E.164).
    number: str | None
    # Missed calls since the company last reached the client (and since a person last closed the row).
    missed_calls: int
    first_missed_at: float
    last_missed_at: float
    # When the first of them ended: the row is open since then, and callback time runs from it.
    opened_at: float
    waited_s: float
    longest_wait_s: float
    # Handsets the missed calls rang, in the order they first rang.
    rang: tuple[str, ...]
    # Outbound calls that rang out to the client since, none answered (busy, no answer).
    callback_attempts: int
    last_attempt_at: float | None
    last_attempt_status: str | None
    # The KPIs' callback time of the first missed call (None until an attempt) and whether
    # the lead is lost (None: the window is still open).
    callback_s: float | None
    lost: bool | None
    last_missed_call_id: int
    call_ids: tuple[int, ...]
    client_name: str | None = None
    manager: str | None = None
    manager_name: str | None = None
    numbers: tuple[str, ...] = field(default_factory=tuple)

    def open_s(self, now: float) -> float:
        """How long the row has been open at ``now``."""
        return max(0.0, now - self.opened_at)

    def overdue(self, now: float, due_s: float) -> bool:
        """Open longer than the department allows for a callback."""
        return self.open_s(now) > due_s

    def as_dict(self, now: float, due_s: float) -> dict[str, Any]:
        """JSON-able, times in Unix seconds (the API and ``pbxbridge missed --json``)."""
        return {
            "client_id": self.client_id,
            "client_name": self.client_name,
            "number": self.number,
            "numbers": list(self.numbers),
            "manager": self.manager,
            "manager_name": self.manager_name,
            "missed_calls": self.missed_calls,
            "first_missed_at": self.first_missed_at,
            "last_missed_at": self.last_missed_at,
            "opened_at": self.opened_at,
            "open_s": round(self.open_s(now), 1),
            "overdue": self.overdue(now, due_s),
            "waited_s": round(self.waited_s, 1),
            "longest_wait_s": round(self.longest_wait_s, 1),
            "rang": list(self.rang),
            "callback_attempts": self.callback_attempts,
            "last_attempt_at": self.last_attempt_at,
            "last_attempt_status": self.last_attempt_status,
            "callback_s": None if self.callback_s is None else round(self.callback_s, 1),
            "lost": self.lost,
            "last_missed_call_id": self.last_missed_call_id,
            "call_ids": list(self.call_ids),
        }


def open_row(
    client_id: int,
    facts: Sequence[CallFact],
    closed_through: float | None,
    settings: KpiSettings,
    clock: float,
) -> MissedRow | None:
    """The client's row from their calls, or None when nothing is left to call back.

    ``facts``: the client's inbound and outbound calls (at least those since the
    company last reached them); ``closed_through``: the end of the latest missed
    call a person closed the row at; ``clock``: the line's clock for the KPIs'
    lost-lead window.
    """
    missed = waiting_calls(facts, closed_through)
    if not missed:
        return None
    # The KPIs' own callback of each missed call (the next outbound attempt by anyone).
    link_callbacks(facts, settings, clock)
    first, last = missed[0], missed[-1]
    attempts = sorted(
        (f for f in facts if f.dialled_client and not f.answered and f.started_at >= first.ended_at),
        key=lambda f: (f.started_at, f.call_id),
    )
    rang: list[str] = []
    for f in missed:
        rang.extend(ext for ext in f.rang if ext not in rang)
    return MissedRow(
        client_id=client_id,
        number=None,
        missed_calls=len(missed),
        first_missed_at=first.started_at,
        last_missed_at=last.started_at,
        opened_at=first.ended_at,
        waited_s=sum(f.wait_s for f in missed),
        longest_wait_s=max(f.wait_s for f in missed),
        rang=tuple(rang),
        callback_attempts=len(attempts),
        last_attempt_at=attempts[-1].started_at if attempts else None,
        last_attempt_status=attempts[-1].status if attempts else None,
        callback_s=first.callback_s,
        lost=first.lost,
        last_missed_call_id=last.call_id,
        call_ids=tuple(f.call_id for f in missed),
    )


async def line_clock(session: AsyncSession) -> float:
    """The line's own clock as the KPIs judge lost leads by: the latest call in the journal."""
    latest: datetime | None = await session.scalar(select(func.max(Call.started_at)))
    return latest.timestamp() if latest is not None else 0.0


async def read_worklist(
    session: AsyncSession,
    settings: KpiSettings,
    client_ids: Sequence[int] | None = None,
    days: int = DAYS,
) -> list[MissedRow]:
    """Every client's open row (or only these clients'), the longest open first.

    The list looks back ``days`` days (``workflow.missed_days``; 0: the whole journal) from
    the newest call in the journal, so that it costs the same on the thousandth day as on
    the first, and a replay of old captures lists what it would have listed then.
    """
    calls = table_of(Call)
    clock = await line_clock(session)
    since = utc_from_unix(clock - days * 86400.0) if days else None
    recent_calls = select(
        calls.c.client_id, calls.c.direction, calls.c.status, calls.c.started_at, calls.c.ended_at
    ).where(calls.c.client_id.is_not(None))
    if since is not None:
        recent_calls = recent_calls.where(calls.c.started_at >= since)
    if client_ids is not None:
        recent_calls = recent_calls.where(calls.c.client_id.in_(list(client_ids)))
    # Read once through the index on the start (planners otherwise walk every client's calls).
    recent = recent_calls.cte("recent").prefix_with("MATERIALIZED")
    missed_end = func.max(case((is_missed(recent.c.direction, recent.c.status), recent.c.ended_at)))
    reached_start = func.max(case((reaches(recent.c.direction, recent.c.status), recent.c.started_at)))
    per_client = await session.execute(
        select(recent.c.client_id, missed_end, reached_start).group_by(recent.c.client_id).having(missed_end.is_not(None))
    )
    # The latest missed call ended after the company last reached the client: something is open
    # (unless a person closed the row since, seen below).
    latest = {
        client_id: (last_missed, reached)
        for client_id, last_missed, reached in per_client.all()
        if reached is None or as_time(last_missed) > as_time(reached)
    }
    ids = sorted(latest)
    through = await closed_through(session, ids)
    facts = await client_calls(session, ids, None if since is None else since.timestamp())
    out: list[MissedRow] = []
    for client_id in ids:
        found = open_row(client_id, facts[client_id], through.get(client_id), settings, clock)
        if found is not None:
            out.append(found)
    await _describe(session, out)
    out.sort(key=lambda r: (r.opened_at, r.client_id))
    return out


async def _describe(session: AsyncSession, rows: list[MissedRow]) -> None:
    """Cards' names, numbers and responsible managers on the rows."""
    if not rows:
        return
    by_id = {r.client_id: r for r in rows}
    for part in chunks(sorted(by_id)):
        cards = await session.execute(
            select(Client.id, Client.name, Manager.extension, Manager.name)
            .outerjoin(Manager, Manager.id == Client.responsible_manager_id)
            .where(Client.id.in_(part))
        )
        for client_id, name, ext, manager_name in cards.all():
            row = by_id[client_id]
            row.client_name, row.manager, row.manager_name = name, ext, manager_name
        phones = await session.execute(
            select(ClientPhone.client_id, ClientPhone.number).where(ClientPhone.client_id.in_(part))
        )
        numbers: dict[int, list[str]] = {}
        for client_id, number in phones.all():
            numbers.setdefault(client_id, []).append(number)
        for client_id, listed in numbers.items():
            by_id[client_id].numbers = tuple(sorted(listed))
    last_number: dict[int, str | None] = {}
    for part in chunks(sorted(r.last_missed_call_id for r in rows)):
        called = await session.execute(select(Call.id, Call.client_number).where(Call.id.in_(part)))
        last_number.update({call_id: number for call_id, number in called.all()})
    for row in rows:
        row.number = last_number.get(row.last_missed_call_id) or (row.numbers[0] if row.numbers else None)
