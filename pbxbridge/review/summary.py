"""Reviews per manager over a period, for the KPI page: how many of their calls were reviewed,
the average checklist score, and how many comments the heads left."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import and_, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.calls.tables import Call
from pbxbridge.review.tables import CallReview, ReviewComment


@dataclass(frozen=True, slots=True)
class ManagerReviews:
    """One manager's reviews over the period (the calls they took, by the call's start)."""

    manager: str
    answered: int
    reviewed: int
    scored: int
    average_score: float | None
    comments: int


async def reviews_per_manager(db: AsyncSession, start: datetime, end: datetime) -> list[ManagerReviews]:
    """Per manager, calls begun in [start, end): answered ones, reviewed, scored, mean score, comments.

    Managers with no answered and no reviewed call in the period are left out.
    """
    in_period = and_(Call.started_at >= start, Call.started_at < end, Call.manager.is_not(None))
    comments = (
        select(ReviewComment.call_id, func.count().label("n")).group_by(ReviewComment.call_id).subquery()
    )
    rows = await db.execute(
        select(
            Call.manager,
            func.count().filter(Call.status == "answered"),
            func.count().filter(CallReview.reviewed.is_(True)),
            func.count(CallReview.score),
            func.avg(CallReview.score),
            func.coalesce(func.sum(comments.c.n), 0),
        )
        .select_from(Call)
        .outerjoin(CallReview, CallReview.call_id == Call.id)
        .outerjoin(comments, comments.c.call_id == Call.id)
        .where(in_period)
        .group_by(Call.manager)
        .order_by(Call.manager)
    )
    found = []
    for manager, answered, reviewed, scored, average, n_comments in rows.all():
        if not (answered or reviewed or scored or n_comments):
            continue
        found.append(
            ManagerReviews(
                manager=str(manager),
                answered=int(answered),
                reviewed=int(reviewed),
                scored=int(scored),
                average_score=round(float(average), 1) if average is not None else None,
                comments=int(n_comments),
            )
        )
    return found
