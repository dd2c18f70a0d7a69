"""Targets the head of sales sets per figure, and whether a figure is on target.

A target is for the department's figure or for every manager's (the same for each).
It knows which way is better: more answered calls and a higher service level are
good, more lost leads and longer waits are not. A count's target is per day, so one
target holds for a day, a week or a month: over a period it is the daily target
times the number of days. Shares (0..1) and times (seconds) are compared as they are.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.kpi.definitions import DEPARTMENT_ONLY, FIGURE_KIND
from pbxbridge.kpi.tables import KpiTargetRow

DEPARTMENT_SCOPE = "department"
MANAGER_SCOPE = "manager"
SCOPES = (DEPARTMENT_SCOPE, MANAGER_SCOPE)
HIGHER, LOWER = "higher", "lower"

# The figures a target can be set for, and which way is better.
BETTER: dict[str, str] = {
    "calls_in": HIGHER,
    "answered": HIGHER,
    "missed": LOWER,
    "missed_unanswered": LOWER,
    "calls_out": HIGHER,
    "outbound_answered": HIGHER,
    "reach_rate": HIGHER,
    "talk_s": HIGHER,
    "talk_s_mean": HIGHER,
    "unique_clients_reached": HIGHER,
    "outbound_norm_share": HIGHER,
    "callbacks": HIGHER,
    "callback_s_mean": LOWER,
    "callback_s_median": LOWER,
    "callbacks_pending": LOWER,
    "lost_leads": LOWER,
    "speed_to_lead_s_median": LOWER,
    "speed_to_lead_answered_s_median": LOWER,
    "new_leads_reached_share": HIGHER,
    "offered": HIGHER,
    "queue_answered": HIGHER,
    "abandoned": LOWER,
    "asa_s": LOWER,
    "wait_s_median": LOWER,
    "longest_wait_s": LOWER,
    "service_level": HIGHER,
    "speech_calls": HIGHER,
    "script_adherence": HIGHER,
    "stop_phrase_calls": LOWER,
    # In sales the client should do most of the talking.
    "talk_share": LOWER,
}
# A day's counts are nowhere near this; a larger number is a slip of the keyboard.
MAX_VALUE = 1_000_000.0


class TargetRefused(ValueError):
    """A target that cannot be kept; ``field`` names what was wrong for the message."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


@dataclass(frozen=True, slots=True)
class Target:
    """One target as stored."""

    kpi: str
    scope: str
    value: float
    set_by: str
    set_at: float

    @property
    def better(self) -> str:
        return BETTER[self.kpi]

    def as_dict(self) -> dict[str, Any]:
        return {
            "kpi": self.kpi, "scope": self.scope, "value": self.value, "better": self.better,
            "kind": FIGURE_KIND[self.kpi], "set_by": self.set_by, "set_at": self.set_at,
        }


def check(kpi: str, scope: str, value: Any) -> float:
    """The target's value if it can be kept, else TargetRefused naming what is wrong."""
    if kpi not in BETTER:
        raise TargetRefused("kpi", "no target can be set for this figure")
    if scope not in SCOPES:
        raise TargetRefused("scope", "department or manager")
    if scope == MANAGER_SCOPE and kpi in DEPARTMENT_ONLY:
        raise TargetRefused("scope", "a figure of the department only")
    # JSON true is an int to Python: a target is a number, never a yes/no.
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise TargetRefused("value", "a number")
    number = float(value)
    if number < 0 or number > MAX_VALUE:
        raise TargetRefused("value", "a number from 0 up")
    if FIGURE_KIND[kpi] == "ratio" and kpi != "outbound_norm_share" and number > 1:
        raise TargetRefused("value", "a share from 0 to 1")
    return number


def for_period(kpi: str, value: float, days: int) -> float:
    """The target of a figure over ``days`` days: a count's daily target times the days."""
    if FIGURE_KIND[kpi] == "count" or kpi == "talk_s":
        return value * days
    return value


def on_target(kpi: str, figure: float | None, target: float) -> bool | None:
    """Whether the figure meets the target (None: no figure to judge, e.g. no calls to measure)."""
    if figure is None:
        return None
    return figure >= target if BETTER[kpi] == HIGHER else figure <= target


async def read_targets(session: AsyncSession) -> list[Target]:
    """Every target, by figure and scope."""
    rows = await session.scalars(select(KpiTargetRow).order_by(KpiTargetRow.kpi, KpiTargetRow.scope))
    return [Target(r.kpi, r.scope, r.value, r.set_by, r.set_at) for r in rows if r.kpi in BETTER]


async def set_target(
    session: AsyncSession, kpi: str, scope: str, value: Any, by: str, now: float | None = None
) -> Target | None:
    """Keep the target (``value`` None removes it); the previous one is replaced. TargetRefused if bad."""
    if value is None:
        if kpi not in BETTER:
            raise TargetRefused("kpi", "no target can be set for this figure")
        await session.execute(delete(KpiTargetRow).where(KpiTargetRow.kpi == kpi, KpiTargetRow.scope == scope))
        return None
    number = check(kpi, scope, value)
    at = time.time() if now is None else now
    row = await session.get(KpiTargetRow, (kpi, scope))
    if row is None:
        session.add(KpiTargetRow(kpi=kpi, scope=scope, value=number, set_by=by, set_at=at))
    else:
        row.value, row.set_by, row.set_at = number, by, at
    await session.flush()
    return Target(kpi, scope, number, by, at)
