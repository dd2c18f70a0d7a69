"""Speech figures per manager per business day: script adherence, stop-phrase calls, talk share.

Read off the checks and conversation figures, in the department's time zone
(``kpi.timezone``), with the department's totals under manager "" as the KPI
store keeps them.  ``speech_parts`` is what the KPI store is fed with (its
``SpeechSource``): each call's summable parts, kept on the call's fact there.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Select, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.analytics.tables import CallCheck, CallConversation
from pbxbridge.calls.tables import Call
from pbxbridge.db.chunks import chunks
from pbxbridge.kpi.calendar import day_bounds, local_day
from pbxbridge.kpi.definitions import KpiSettings
from pbxbridge.kpi.speech import SpeechParts, record_speech

DEPARTMENT = ""


@dataclass(slots=True)
class SpeechDay:
    day: date
    manager: str
    checked_calls: int = 0
    items_total: int = 0
    items_passed: int = 0
    stop_phrase_calls: int = 0
    # Two-channel calls only: one-channel calls say nothing of who talked.
    talk_calls: int = 0
    manager_talk_s: float = 0.0
    client_talk_s: float = 0.0

    @property
    def adherence(self) -> float | None:
        """Share of checklist items passed, 0..1; None when no call was checked."""
        return self.items_passed / self.items_total if self.items_total else None

    @property
    def talk_share(self) -> float | None:
        """The manager's share of the talking, 0..1; None without a two-channel call."""
        talked = self.manager_talk_s + self.client_talk_s
        return self.manager_talk_s / talked if talked else None

    def as_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["day"] = self.day.isoformat()
        out["adherence"] = self.adherence
        out["talk_share"] = self.talk_share
        return out


def _range(date_from: date, date_to: date, zone: ZoneInfo) -> tuple[datetime, datetime]:
    start, _ = day_bounds(date_from, zone)
    _, end = day_bounds(date_to, zone)
    return datetime.fromtimestamp(start, UTC), datetime.fromtimestamp(end, UTC)


def _calls(date_from: date, date_to: date, zone: ZoneInfo, manager: str | None) -> Select[Any]:
    start, end = _range(date_from, date_to, zone)
    query = select(Call.id).where(Call.started_at >= start, Call.started_at < end, Call.manager.is_not(None))
    if manager:
        query = query.where(Call.manager == manager)
    return query


async def speech_days(
    session: AsyncSession, date_from: date, date_to: date, zone: ZoneInfo, manager: str | None = None
) -> list[SpeechDay]:
    """Each manager's speech figures for each day from ``date_from`` to ``date_to`` (inclusive), and the department's."""
    calls = _calls(date_from, date_to, zone, manager).subquery()
    checks = await session.execute(
        select(
            Call.id, Call.started_at, Call.manager,
            func.sum(CallCheck.items_total), func.sum(CallCheck.items_passed), func.sum(CallCheck.stop_phrases),
        )
        .join(CallCheck, CallCheck.call_id == Call.id)
        .where(Call.id.in_(select(calls.c.id)))
        .group_by(Call.id, Call.started_at, Call.manager)
    )
    days: dict[tuple[date, str], SpeechDay] = {}

    def rows_for(started: datetime, who: str) -> list[SpeechDay]:
        day = local_day(started.timestamp(), zone)
        return [days.setdefault((day, m), SpeechDay(day, m)) for m in (who, DEPARTMENT)]

    for _call_id, started, who, total, passed, stops in checks.all():
        for row in rows_for(started, str(who)):
            row.checked_calls += 1
            row.items_total += int(total or 0)
            row.items_passed += int(passed or 0)
            row.stop_phrase_calls += 1 if stops else 0
    talk = await session.execute(
        select(Call.started_at, Call.manager, CallConversation.manager_talk_s, CallConversation.client_talk_s)
        .join(CallConversation, CallConversation.call_id == Call.id)
        .where(Call.id.in_(select(calls.c.id)))
    )
    for started, who, manager_s, client_s in talk.all():
        for row in rows_for(started, str(who)):
            row.talk_calls += 1
            row.manager_talk_s += manager_s
            row.client_talk_s += client_s
    return sorted(days.values(), key=lambda r: (r.day, r.manager))


async def speech_drilldown(
    session: AsyncSession,
    date_from: date,
    date_to: date,
    zone: ZoneInfo,
    *,
    manager: str | None = None,
    failed_item: str | None = None,
    stop_phrase: bool = False,
) -> list[dict[str, Any]]:
    """The checked calls behind a figure: a manager's, those failing an item (by title), those with a stop phrase."""
    calls = _calls(date_from, date_to, zone, manager).subquery()
    rows = await session.execute(
        select(Call.id, Call.linkedid, Call.started_at, Call.manager, CallCheck.results, CallCheck.stop_phrases)
        .join(CallCheck, CallCheck.call_id == Call.id)
        .where(Call.id.in_(select(calls.c.id)))
        .order_by(Call.started_at.desc(), Call.id.desc())
    )
    found: dict[int, dict[str, Any]] = {}
    failed: dict[int, list[str]] = defaultdict(list)
    for call_id, linkedid, started, who, results, stops in rows.all():
        entry = found.setdefault(call_id, {
            "call_id": call_id, "linkedid": linkedid, "started_at": started.isoformat(), "manager": who,
            "items_total": 0, "items_passed": 0, "stop_phrases": 0,
        })
        entry["items_total"] += len(results)
        entry["items_passed"] += sum(1 for r in results if r.get("passed"))
        entry["stop_phrases"] += int(stops or 0)
        failed[call_id] += [r["title"] for r in results if not r.get("passed")]
    out = []
    for call_id, entry in found.items():
        if failed_item is not None and failed_item not in failed[call_id]:
            continue
        if stop_phrase and not entry["stop_phrases"]:
            continue
        out.append({**entry, "failed": failed[call_id]})
    return out


async def speech_parts(session: AsyncSession, call_ids: Sequence[int] | None = None) -> dict[int, SpeechParts]:
    """Each call's parts for the KPI store (``call_ids`` None: every call checked or measured).

    A call checked against several checklists adds their items up; it counts as a
    stop-phrase call once, whatever number of stop phrases were said.
    """
    checks = select(
        CallCheck.call_id, func.sum(CallCheck.items_total), func.sum(CallCheck.items_passed),
        func.sum(CallCheck.stop_phrases),
    ).group_by(CallCheck.call_id)
    talk = select(CallConversation.call_id, CallConversation.manager_talk_s, CallConversation.client_talk_s)
    found: dict[int, dict[str, Any]] = {}
    id_chunks = [None] if call_ids is None else list(chunks(sorted(set(call_ids))))
    for chunk in id_chunks:
        part_checks = checks if chunk is None else checks.where(CallCheck.call_id.in_(chunk))
        for call_id, total, passed, stops in await session.execute(part_checks):
            found.setdefault(call_id, {}).update(
                items=int(total or 0), items_passed=int(passed or 0), stop_phrase=bool(stops)
            )
        part_talk = talk if chunk is None else talk.where(CallConversation.call_id.in_(chunk))
        for call_id, manager_s, client_s in await session.execute(part_talk):
            found.setdefault(call_id, {}).update(manager_talk_s=manager_s, client_talk_s=client_s)
    return {call_id: SpeechParts(**parts) for call_id, parts in found.items()}


async def feed_kpi_store(
    session: AsyncSession, settings: KpiSettings, call_ids: Sequence[int] | None = None
) -> set[date]:
    """Hand the KPI store these calls' speech parts (None: every call's, after a re-check of all)."""
    parts = await speech_parts(session, call_ids)
    if call_ids is not None:
        # A call no longer checked (its checklist deleted) has its parts cleared.
        parts = {call_id: parts.get(call_id, SpeechParts()) for call_id in call_ids}
    return await record_speech(session, settings, parts, replace_all=call_ids is None)
