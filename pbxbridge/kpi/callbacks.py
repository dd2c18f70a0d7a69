"""Missed callers the company has not reached since: the one definition of "not called back".

A client's missed call (``UNANSWERED_INBOUND``: ``missed`` or ``abandoned``) is
*waiting* until the company reaches the client: a call with the client that
somebody answered, either way (the client called again and got through, or a
manager's call was answered), started after the latest answered call. An
outbound call nobody answered (``busy``, ``no_answer``) is an attempt: it gives
the KPIs their callback time (``link_callbacks``) but leaves the caller waiting,
because nobody has spoken to them. A person may close a client's waiting calls
with a reason (spam, a wrong number, reached by other means): the calls that
ended up to the closed one no longer wait.

The wallboard's "missed today, not called back", the missed-calls worklist
(``pbxbridge.workflow.worklist``) and the drill-down behind the wallboard's figure
all read this module, so they cannot disagree. Calls without a client card
(hidden numbers) have nobody to call back and never wait.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Any

from sqlalchemy import ColumnElement, and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import InstrumentedAttribute

from pbxbridge.calls.tables import Call
from pbxbridge.db.base import table_of
from pbxbridge.db.chunks import chunks
from pbxbridge.db.types import utc_from_unix
from pbxbridge.kpi.definitions import ANSWERED, INBOUND, OUTBOUND, UNANSWERED_INBOUND, CallFact, client_key
from pbxbridge.kpi.tables import CallFactRow
from pbxbridge.workflow.tables import MissedClosure

# The figure's name where it is asked for by name (the wallboard's link to the clients it counts).
MISSED_NOT_CALLED_BACK = "missed_not_called_back"


def reaches_client(f: CallFact) -> bool:
    """A call that reaches the client: answered, inbound or outbound (never an internal one)."""
    return f.answered and f.direction in (INBOUND, OUTBOUND)


# A table's column in a condition (an ORM attribute or a Core column).
SQLColumn = ColumnElement[str] | InstrumentedAttribute[str]


def reaches(direction: SQLColumn, status: SQLColumn) -> ColumnElement[bool]:
    """``reaches_client`` in SQL, on a table's direction and status columns."""
    return and_(status == ANSWERED, direction.in_((INBOUND, OUTBOUND)))


def is_missed(direction: SQLColumn, status: SQLColumn) -> ColumnElement[bool]:
    """``CallFact.unanswered_inbound`` in SQL: a caller nobody answered."""
    return and_(direction == INBOUND, status.in_(sorted(UNANSWERED_INBOUND)))


def reached_at(facts: Iterable[CallFact]) -> float | None:
    """The start of the latest call with the client that somebody answered, either way."""
    starts = [f.started_at for f in facts if reaches_client(f)]
    return max(starts) if starts else None


def waiting_calls(facts: Iterable[CallFact], closed_through: float | None = None) -> list[CallFact]:
    """The client's missed calls still waiting for the company, oldest first.

    ``facts``: the client's calls (at least those since the company last reached them);
    ``closed_through``: the end of the latest missed call a person closed the client's row at.
    """
    listed = list(facts)
    reached = reached_at(listed)
    return sorted(
        (
            f for f in listed
            if f.unanswered_inbound
            and (reached is None or f.ended_at > reached)
            and (closed_through is None or f.ended_at > closed_through)
        ),
        key=lambda f: (f.started_at, f.call_id),
    )


# What the definition needs of each call (not its recordings' or transfers' columns).
CALL_COLUMNS = (
    "id", "direction", "status", "client_id", "client_number", "manager", "rang",
    "started_at", "answered_at", "ended_at", "wait_s", "talk_s",
)


def fact_of_call(row: Any) -> CallFact:
    """A journal row (``CALL_COLUMNS``) as the KPIs' CallFact."""
    return CallFact(
        call_id=row.id,
        direction=row.direction,
        status=row.status,
        started_at=row.started_at.timestamp(),
        ended_at=row.ended_at.timestamp(),
        answered_at=None if row.answered_at is None else row.answered_at.timestamp(),
        wait_s=float(row.wait_s),
        talk_s=float(row.talk_s),
        client_key=client_key(row.client_id, row.client_number),
        client_id=row.client_id,
        manager=row.manager,
        rang=tuple(row.rang or ()),
    )


def as_time(value: Any) -> float:
    """A time the database gave back from an aggregate: a datetime, or SQLite's text of one."""
    if isinstance(value, datetime):
        return (value if value.tzinfo else value.replace(tzinfo=UTC)).timestamp()
    return datetime.fromisoformat(str(value)).replace(tzinfo=UTC).timestamp()


async def closed_through(session: AsyncSession, client_ids: Sequence[int]) -> dict[int, float]:
    """Per client, the end of the latest missed call a person closed their row at."""
    closures = table_of(MissedClosure)
    out: dict[int, float] = {}
    for part in chunks(sorted(client_ids)):
        closed = await session.execute(
            select(closures.c.client_id, func.max(closures.c.through_at))
            .where(closures.c.client_id.in_(part))
            .group_by(closures.c.client_id)
        )
        out.update({client_id: as_time(at) for client_id, at in closed.all()})
    return out


async def client_calls(
    session: AsyncSession, client_ids: Sequence[int], since: float | None = None
) -> dict[int, list[CallFact]]:
    """The clients' inbound and outbound calls (started at or after ``since``, Unix seconds)."""
    calls = table_of(Call)
    out: dict[int, list[CallFact]] = {i: [] for i in client_ids}
    for part in chunks(sorted(client_ids)):
        query = select(*(calls.c[name] for name in CALL_COLUMNS)).where(
            calls.c.client_id.in_(part), calls.c.direction.in_((INBOUND, OUTBOUND))
        )
        if since is not None:
            query = query.where(calls.c.started_at >= utc_from_unix(since))
        for call in (await session.execute(query)).all():
            out[call.client_id].append(fact_of_call(call))
    return out


@dataclass(frozen=True, slots=True)
class WaitingClient:
    """A client missed on the day and not reached since: one row of the drill-down."""

    client_id: int
    # The day's missed calls still waiting, oldest first.
    call_ids: tuple[int, ...]


async def waiting_on(session: AsyncSession, day: date) -> list[WaitingClient]:
    """The clients missed on ``day`` (a business day) whom the company has not reached since.

    The day's unanswered callers are found in the KPI store's facts (their business day);
    whether each is still waiting is judged on the client's calls since the first of them.
    """
    missed = await session.execute(
        select(CallFactRow.client_id, CallFactRow.call_id, CallFactRow.started_at).where(
            CallFactRow.day == day,
            is_missed(CallFactRow.direction, CallFactRow.status),
            CallFactRow.client_id.is_not(None),
        )
    )
    of_day: dict[int, set[int]] = {}
    first_missed: dict[int, float] = {}
    for client_id, call_id, started_at in missed.all():
        assert client_id is not None  # the query asked for calls with a card
        of_day.setdefault(client_id, set()).add(call_id)
        first_missed[client_id] = min(first_missed.get(client_id, started_at), started_at)
    if not of_day:
        return []
    ids = sorted(of_day)
    through = await closed_through(session, ids)
    # A reach before the day's first miss cannot close it: reading from there is enough.
    facts = await client_calls(session, ids, since=min(first_missed.values()) - 1.0)
    out: list[WaitingClient] = []
    for client_id in sorted(ids, key=lambda i: (first_missed[i], i)):
        waiting = [
            f.call_id for f in waiting_calls(facts[client_id], through.get(client_id)) if f.call_id in of_day[client_id]
        ]
        if waiting:
            out.append(WaitingClient(client_id=client_id, call_ids=tuple(waiting)))
    return out


@dataclass(frozen=True, slots=True)
class NotCalledBack:
    """Missed callers of one business day still to call back."""

    day: date
    # One per client (a client who called three times is one person to call back).
    callers: int
    calls: int


async def missed_not_called_back(session: AsyncSession, day: date) -> NotCalledBack:
    """The wallboard's figure: the callers missed on ``day`` whom the company has not reached since."""
    waiting = await waiting_on(session, day)
    return NotCalledBack(day=day, callers=len(waiting), calls=sum(len(w.call_ids) for w in waiting))
