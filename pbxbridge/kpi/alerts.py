"""Leads about to be lost: missed callers nobody has called back yet, told to whoever listens."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.kpi.definitions import OUTBOUND, CallFact, KpiSettings

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LeadAtRisk:
    """A missed caller with no callback yet, close to counting as a lost lead."""

    call_id: int
    client_key: str
    client_id: int | None
    # The managers whose handsets rang; empty when nobody was free.
    rang: tuple[str, ...]
    missed_at: float
    lost_at: float


Subscriber = Callable[[LeadAtRisk], None]


class LeadWatch:
    """Keeps the open callback windows; ``due_alerts(now)`` says which are about to close.

    Every time is an event time (Asterisk's timestamps), so replays and tests
    behave as the live line did.
    """

    def __init__(self, settings: KpiSettings | None = None) -> None:
        self.settings = settings or KpiSettings()
        self._open: dict[int, LeadAtRisk] = {}
        self._alerted: set[int] = set()
        self._subscribers: list[Subscriber] = []

    def subscribe(self, subscriber: Subscriber) -> Callable[[], None]:
        """Receive each LeadAtRisk once; returns a function that unsubscribes."""
        self._subscribers.append(subscriber)
        return lambda: self._subscribers.remove(subscriber)

    def note_call(self, fact: CallFact, _new_callbacks: object = None, _is_new: bool = True) -> None:
        """Open a window for a missed caller; an outbound call to the client closes theirs."""
        if fact.unanswered_inbound and fact.client_key and fact.lost is None:
            self._open[fact.call_id] = LeadAtRisk(
                call_id=fact.call_id,
                client_key=fact.client_key,
                client_id=fact.client_id,
                rang=fact.rang,
                missed_at=fact.ended_at,
                lost_at=fact.ended_at + self.settings.lost_lead_after_s,
            )
        elif fact.direction == OUTBOUND and fact.client_key:
            for call_id, risk in list(self._open.items()):
                if risk.client_key == fact.client_key and risk.missed_at <= fact.started_at:
                    self._forget(call_id)

    def open_windows(self) -> list[LeadAtRisk]:
        """Missed callers still waiting for a callback, oldest first."""
        return sorted(self._open.values(), key=lambda r: (r.missed_at, r.call_id))

    def due_alerts(self, now: float) -> list[LeadAtRisk]:
        """Alerts due at ``now`` (not sent before), published to subscribers; closed windows dropped."""
        due: list[LeadAtRisk] = []
        for risk in self.open_windows():
            if risk.lost_at <= now:
                # Lost: the daily figures count it; nobody can save it any more.
                self._forget(risk.call_id)
                continue
            if risk.call_id in self._alerted or now < risk.lost_at - self.settings.alert_before_s:
                continue
            self._alerted.add(risk.call_id)
            due.append(risk)
        for risk in due:
            for subscriber in list(self._subscribers):
                try:
                    subscriber(risk)
                except Exception:  # one broken listener must not silence the others
                    log.exception("lead-at-risk subscriber failed")
        return due

    async def load(self, session: AsyncSession) -> int:
        """Reopen the windows the store still holds open (after a restart); return how many."""
        from pbxbridge.kpi.days import fact_from_row
        from pbxbridge.kpi.tables import CallFactRow

        rows = (await session.scalars(select(CallFactRow).where(CallFactRow.lost.is_(None)))).all()
        for row in rows:
            self.note_call(fact_from_row(row))
        return len(rows)

    def _forget(self, call_id: int) -> None:
        self._open.pop(call_id, None)
        self._alerted.discard(call_id)
