"""Reading and writing reviews: the shared tags, the checklist, one call's review and comments."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.ext.asyncio import AsyncSession

from pbxbridge.review.tables import CallReview, CallReviewTag, ReviewComment, ReviewCriterion, ReviewTag

MAX_TAG = 60
MAX_CRITERION = 300
MAX_COMMENT = 2000
MAX_TAGS = 200
MAX_CRITERIA = 50


def N_(message: str) -> str:  # noqa: N802 - the name the message catalog's extractor looks for
    """Marks a message for translation; the web app translates it when it answers."""
    return message


class ReviewInputError(ValueError):
    """A review, tag or checklist that cannot be saved; the message says what to change."""

    def __init__(self, message: str, **values: Any) -> None:
        super().__init__(message)
        self.message = message
        self.values = values


async def tag_names(db: AsyncSession) -> list[str]:
    """The shared tag list, alphabetically."""
    return list((await db.execute(select(ReviewTag.name).order_by(ReviewTag.name))).scalars())


async def active_criteria(db: AsyncSession) -> list[ReviewCriterion]:
    """The checklist as it stands, in the head's order."""
    rows = await db.execute(
        select(ReviewCriterion).where(ReviewCriterion.active).order_by(ReviewCriterion.position, ReviewCriterion.id)
    )
    return list(rows.scalars())


def _clean_texts(values: Any, limit: int, most: int, what: str) -> list[str]:
    if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
        raise ReviewInputError(N_("{what}: a list of texts"), what=what)
    cleaned: list[str] = []
    for value in values:
        text = " ".join(value.split())
        if not text:
            continue
        if len(text) > limit:
            raise ReviewInputError(N_("{what}: each up to {count} characters"), what=what, count=limit)
        if text.casefold() not in {c.casefold() for c in cleaned}:
            cleaned.append(text)
    if len(cleaned) > most:
        raise ReviewInputError(N_("{what}: at most {count}"), what=what, count=most)
    return cleaned


async def set_tags(db: AsyncSession, names: Any) -> list[str]:
    """Replace the shared tag list; a tag taken off it comes off every call."""
    wanted = _clean_texts(names, MAX_TAG, MAX_TAGS, "tags")
    existing = {t.name: t for t in (await db.execute(select(ReviewTag))).scalars()}
    for name, tag in existing.items():
        if name not in wanted:
            await db.execute(delete(CallReviewTag).where(CallReviewTag.tag_id == tag.id))
            await db.delete(tag)
    for name in wanted:
        if name not in existing:
            db.add(ReviewTag(name=name))
    await db.flush()
    return await tag_names(db)


async def set_checklist(db: AsyncSession, texts: Any) -> list[ReviewCriterion]:
    """Replace the checklist. A line kept by its text keeps its id (and the marks given to it);
    a line taken off stays in the reviews that scored it, off the list."""
    wanted = _clean_texts(texts, MAX_CRITERION, MAX_CRITERIA, "checklist")
    by_text = {c.text: c for c in (await db.execute(select(ReviewCriterion))).scalars()}
    for criterion in by_text.values():
        criterion.active = False
    for position, text in enumerate(wanted):
        found = by_text.get(text)
        if found is None:
            criterion = ReviewCriterion(text=text)
            db.add(criterion)
        else:
            criterion = found
        criterion.active = True
        criterion.position = position
    await db.flush()
    return await active_criteria(db)


def score_of(checks: dict[str, bool]) -> int | None:
    """The share of marked criteria met, in whole percent; None when nothing is marked."""
    if not checks:
        return None
    return round(100 * sum(1 for met in checks.values() if met) / len(checks))


@dataclass(frozen=True, slots=True)
class ReviewChange:
    """What a head sends for a call: any of reviewed, tags, checklist marks."""

    reviewed: bool | None = None
    tags: list[str] | None = None
    checks: dict[str, bool] | None = None


def parse_change(body: dict[str, Any]) -> ReviewChange:
    """The change a request body asks for, or ReviewInputError naming the field at fault."""
    unknown = set(body) - {"reviewed", "tags", "checks"}
    if unknown:
        raise ReviewInputError(N_("unknown field(s): {fields}"), fields=", ".join(sorted(unknown)))
    reviewed = body.get("reviewed")
    if reviewed is not None and not isinstance(reviewed, bool):
        raise ReviewInputError(N_("reviewed: true or false"))
    tags = body.get("tags")
    if tags is not None and (not isinstance(tags, list) or not all(isinstance(t, str) for t in tags)):
        raise ReviewInputError(N_("tags: a list of tag names"))
    checks = body.get("checks")
    if checks is not None:
        if not isinstance(checks, dict) or not all(
            isinstance(k, str) and k.isdigit() and isinstance(v, bool) for k, v in checks.items()
        ):
            raise ReviewInputError(N_("checks: checklist line ids with true or false"))
    return ReviewChange(reviewed, tags, checks)


async def save_review(db: AsyncSession, call_id: int, change: ReviewChange, reviewer: str) -> None:
    """Apply a head's change to a call's review (creating it), checking tags and lines exist."""
    review = await db.get(CallReview, call_id)
    if review is None:
        review = CallReview(
            call_id=call_id, reviewed=False, checks={}, score=None, reviewer=reviewer, updated_at=datetime.now(UTC)
        )
        db.add(review)
    if change.tags is not None:
        ids = dict((await db.execute(select(ReviewTag.name, ReviewTag.id).where(ReviewTag.name.in_(change.tags)))).all())
        missing = [t for t in change.tags if t not in ids]
        if missing:
            raise ReviewInputError(N_("tags: not on the shared list: {tags}"), tags=", ".join(missing))
        await db.execute(delete(CallReviewTag).where(CallReviewTag.call_id == call_id))
        for tag_id in sorted(set(ids.values())):
            db.add(CallReviewTag(call_id=call_id, tag_id=tag_id))
    if change.checks is not None:
        known = {str(i) for i in (await db.execute(select(ReviewCriterion.id))).scalars()}
        missing = sorted(set(change.checks) - known, key=int)
        if missing:
            raise ReviewInputError(N_("checks: no checklist line {ids}"), ids=", ".join(missing))
        review.checks = dict(change.checks)
        review.score = score_of(review.checks)
    if change.reviewed is not None:
        review.reviewed = change.reviewed
    review.reviewer = reviewer
    review.updated_at = datetime.now(UTC)
    await db.flush()


async def add_comment(
    db: AsyncSession, call_id: int, recording_id: int | None, at_s: float, text: str, author: str
) -> ReviewComment:
    """A comment at a moment of the call's recording."""
    text = text.strip()
    if not text:
        raise ReviewInputError(N_("text: the comment is empty"))
    if len(text) > MAX_COMMENT:
        raise ReviewInputError(N_("text: up to {count} characters"), count=MAX_COMMENT)
    comment = ReviewComment(
        call_id=call_id, recording_id=recording_id, at_s=round(at_s, 2), text=text, author=author,
        created_at=datetime.now(UTC),
    )
    db.add(comment)
    await db.flush()
    return comment


@dataclass(frozen=True, slots=True)
class CallReviewView:
    """A call's review as the player shows it."""

    reviewed: bool
    reviewer: str | None
    updated_at: datetime | None
    score: int | None
    checks: dict[str, bool]
    tags: list[str]
    comments: Sequence[ReviewComment]


async def read_review(db: AsyncSession, call_id: int) -> CallReviewView:
    """A call's review; an empty one when nobody has reviewed it."""
    review = await db.get(CallReview, call_id)
    tags = list(
        (
            await db.execute(
                select(ReviewTag.name)
                .join(CallReviewTag, CallReviewTag.tag_id == ReviewTag.id)
                .where(CallReviewTag.call_id == call_id)
                .order_by(ReviewTag.name)
            )
        ).scalars()
    )
    comments = list(
        (
            await db.execute(
                select(ReviewComment)
                .where(ReviewComment.call_id == call_id)
                .order_by(ReviewComment.at_s, ReviewComment.id)
            )
        ).scalars()
    )
    if review is None:
        return CallReviewView(False, None, None, None, {}, tags, comments)
    return CallReviewView(
        review.reviewed, review.reviewer, review.updated_at, review.score, dict(review.checks), tags, comments
    )


async def comment_count(db: AsyncSession, call_id: int) -> int:
    """How many comments a call has."""
    return int(await db.scalar(select(func.count()).where(ReviewComment.call_id == call_id)) or 0)
