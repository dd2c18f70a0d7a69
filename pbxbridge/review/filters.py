"""The journal's review filters as SQL conditions on Call: by tag, by score, not yet reviewed.

The journal (or any list of calls) adds them to its WHERE clause; each reads the review tables
through a subquery, so a call with no review at all is handled as a person expects: it has no
tag, no score, and is not reviewed.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists, not_, select

from pbxbridge.calls.tables import Call
from pbxbridge.review.tables import CallReview, CallReviewTag, ReviewTag


def tagged(tag: str) -> ColumnElement[bool]:
    """Calls carrying the tag of this name (exactly as on the shared list)."""
    return exists(
        select(CallReviewTag.call_id)
        .join(ReviewTag, ReviewTag.id == CallReviewTag.tag_id)
        .where(CallReviewTag.call_id == Call.id, ReviewTag.name == tag)
    )


def score_below(percent: int) -> ColumnElement[bool]:
    """Calls scored on the checklist, with a score under ``percent`` (0..100)."""
    return exists(select(CallReview.call_id).where(CallReview.call_id == Call.id, CallReview.score < percent))


def score_at_least(percent: int) -> ColumnElement[bool]:
    """Calls scored on the checklist at ``percent`` or more."""
    return exists(select(CallReview.call_id).where(CallReview.call_id == Call.id, CallReview.score >= percent))


def reviewed() -> ColumnElement[bool]:
    """Calls a head marked as reviewed."""
    return exists(select(CallReview.call_id).where(and_(CallReview.call_id == Call.id, CallReview.reviewed)))


def not_reviewed() -> ColumnElement[bool]:
    """Calls nobody has marked as reviewed yet (commented or tagged ones included)."""
    return not_(reviewed())
