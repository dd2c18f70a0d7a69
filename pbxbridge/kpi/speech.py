"""Speech analytics into the KPI store: what a call's checks and talk measure add to its manager's figures.

The KPI store knows nothing of checklists or transcripts: the analytics domain
hands it, per call, the summable parts below (``record_speech``) whenever it
writes or re-checks a call, and the store keeps them on the call's fact and
rewrites the days they fall in.  ``pbxbridge kpi rebuild`` asks a ``SpeechSource``
for them again (or keeps those stored when given none).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date

from sqlalchemy import bindparam, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.db.base import table_of
from pbxbridge.db.chunks import chunks
from pbxbridge.kpi.days import DayFigures
from pbxbridge.kpi.definitions import KpiSettings
from pbxbridge.kpi.lock import lock_figures
from pbxbridge.kpi.tables import CallFactRow

_FACTS = table_of(CallFactRow)
# The fact's columns holding a call's parts, in SpeechParts' order.
_PART_COLUMNS = (
    _FACTS.c.speech_items, _FACTS.c.speech_items_passed, _FACTS.c.stop_phrase,
    _FACTS.c.manager_talk_s, _FACTS.c.client_talk_s,
)
# A fact holding parts: checked against a checklist, or each side's talk measured.
_MEASURED = _FACTS.c.speech_items.is_not(None) | _FACTS.c.manager_talk_s.is_not(None)


@dataclass(frozen=True, slots=True)
class SpeechParts:
    """One call's speech figures: checklist items checked and passed, a stop phrase said, each side's talk."""

    # None: the call was not checked against any checklist.
    items: int | None = None
    items_passed: int = 0
    stop_phrase: bool = False
    # None unless a two-channel recording measured each side.
    manager_talk_s: float | None = None
    client_talk_s: float | None = None

    def values(self) -> dict[str, object]:
        return {
            "speech_items": self.items,
            "speech_items_passed": self.items_passed if self.items is not None else 0,
            "stop_phrase": bool(self.stop_phrase and self.items is not None),
            "manager_talk_s": self.manager_talk_s,
            "client_talk_s": self.client_talk_s,
        }


NOT_MEASURED = SpeechParts()

# Reads the parts of the calls given (None: of every call measured); a call left out has none.
SpeechSource = Callable[[AsyncSession, Sequence[int] | None], Awaitable[Mapping[int, SpeechParts]]]


async def held_parts(session: AsyncSession) -> dict[int, SpeechParts]:
    """The parts the facts hold now, of every call measured (kept by a rebuild given no source)."""
    rows = await session.execute(select(_FACTS.c.call_id, *_PART_COLUMNS).where(_MEASURED))
    return {
        call_id: SpeechParts(items, passed or 0, bool(stop), manager_s, client_s)
        for call_id, items, passed, stop, manager_s, client_s in rows
    }


async def store_parts(session: AsyncSession, parts: Mapping[int, SpeechParts]) -> set[date]:
    """Write the parts onto the calls' facts; return the business days of the facts that changed."""
    changed: set[date] = set()
    ids = sorted(parts)
    for chunk in chunks(ids):
        rows = await session.execute(
            select(_FACTS.c.call_id, _FACTS.c.day, *_PART_COLUMNS).where(_FACTS.c.call_id.in_(chunk))
        )
        updates = []
        for call_id, day, *stored in rows:
            wanted = parts[call_id].values()
            if tuple(stored[:2]) + (bool(stored[2]),) + tuple(stored[3:]) != tuple(wanted.values()):
                updates.append({"b_call_id": call_id, **wanted})
                changed.add(day)
        if updates:
            await session.execute(
                update(_FACTS)
                .where(_FACTS.c.call_id == bindparam("b_call_id"))
                .values({n: bindparam(n) for n in NOT_MEASURED.values()}),
                updates,
            )
    return changed


async def record_speech(
    session: AsyncSession,
    settings: KpiSettings,
    parts: Mapping[int, SpeechParts],
    *,
    replace_all: bool = False,
) -> set[date]:
    """Keep these calls' speech parts and rewrite the figures of the days that changed; return those days.

    ``replace_all``: ``parts`` hold every call measured, and any other call's
    stored parts are cleared (after a re-check of every call).  A call the
    store has no fact of yet is skipped: its fact is written when the call is,
    and ``kpi rebuild`` asks again.
    """
    await lock_figures(session)
    wanted = dict(parts)
    if replace_all:
        measured = await session.scalars(select(_FACTS.c.call_id).where(_MEASURED))
        for call_id in measured:
            wanted.setdefault(call_id, NOT_MEASURED)
    days = await store_parts(session, wanted)
    await session.flush()
    # A day the live recorder holds is found rewritten by it and read again from the store.
    figures = DayFigures(settings)
    for day in sorted(days):
        await figures.recompute(session, day)
    return days
