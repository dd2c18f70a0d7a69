"""Call review over HTTP: the shared tags and checklist, one call's review and its comments at
moments of the recording, and reviews per manager for the KPI page.

The head reviews; a manager reads the review of a call of theirs (the same calls they may open)
and cannot change it: the refusal is a 403, which the refusal log writes to the audit log.
"""

from __future__ import annotations

import math
from datetime import date, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from sqlalchemy import delete, select

from pbxbridge.calls.tables import Recording
from pbxbridge.clients.tables import Manager
from pbxbridge.db.upsert import rowcount
from pbxbridge.kpi.calendar import day_bounds, local_day, utc
from pbxbridge.review.store import (
    CallReviewView,
    ReviewInputError,
    active_criteria,
    add_comment,
    parse_change,
    read_review,
    save_review,
    set_checklist,
    set_tags,
    tag_names,
)
from pbxbridge.review.summary import reviews_per_manager
from pbxbridge.review.tables import ReviewComment, ReviewCriterion
from pbxbridge.web.access import CALL_ROLES, load_call, require_user
from pbxbridge.web.audit import record
from pbxbridge.web.auth_routes import json_body
from pbxbridge.web.context import ctx, write_session
from pbxbridge.web.errors import api_error
from pbxbridge.web.i18n import _
from pbxbridge.web.tables import HEAD

routes = web.RouteTableDef()

# The summary's longest period, as the KPI page's.
MAX_DAYS = 400
DEFAULT_DAYS = 14


def _iso(value: Any) -> str | None:
    return value.isoformat().replace("+00:00", "Z") if value is not None else None


def _bad(request: web.Request, error: ReviewInputError) -> web.HTTPException:
    return api_error(400, _(request, error.message, **error.values))


def _criteria_json(criteria: list[ReviewCriterion]) -> list[dict[str, Any]]:
    return [{"id": c.id, "text": c.text} for c in criteria]


def _comment_json(comment: ReviewComment) -> dict[str, Any]:
    return {
        "id": comment.id, "at_s": comment.at_s, "recording_id": comment.recording_id, "text": comment.text,
        "author": comment.author, "created_at": _iso(comment.created_at),
    }


async def _review_json(db: Any, call_id: int, view: CallReviewView) -> dict[str, Any]:
    # The lines this review marked, with their text, even those since taken off the checklist.
    marked = [int(k) for k in view.checks]
    texts = dict((await db.execute(select(ReviewCriterion.id, ReviewCriterion.text).where(
        ReviewCriterion.id.in_(marked)))).all()) if marked else {}
    return {
        "call_id": call_id,
        "reviewed": view.reviewed,
        "reviewer": view.reviewer,
        "updated_at": _iso(view.updated_at),
        "score": view.score,
        "checks": [{"id": int(k), "text": texts.get(int(k), ""), "met": met} for k, met in view.checks.items()],
        "tags": view.tags,
        "comments": [_comment_json(c) for c in view.comments],
    }


@routes.get("/api/review/setup")
async def get_setup(request: web.Request) -> web.Response:
    """The shared tag list and the checklist, as the player offers them."""
    require_user(request, *CALL_ROLES)
    async with ctx(request).sessions() as db:
        tags = await tag_names(db)
        criteria = await active_criteria(db)
    return web.json_response({"tags": tags, "checklist": _criteria_json(criteria)})


@routes.put("/api/review/setup")
async def put_setup(request: web.Request) -> web.Response:
    """The head replaces the tag list or the checklist (or both)."""
    user = require_user(request, HEAD)
    body = await json_body(request)
    unknown = set(body) - {"tags", "checklist"}
    if unknown:
        raise api_error(400, _(request, "unknown field(s): {fields}", fields=", ".join(sorted(unknown))))
    async with write_session(ctx(request)) as db:
        try:
            tags = await set_tags(db, body["tags"]) if "tags" in body else await tag_names(db)
            criteria = await set_checklist(db, body["checklist"]) if "checklist" in body else await active_criteria(db)
        except ReviewInputError as error:
            raise _bad(request, error) from None
        record(db, request, user, "review_setup", None, tags=len(tags), checklist=len(criteria))
    return web.json_response({"tags": tags, "checklist": _criteria_json(criteria)})


@routes.get("/api/calls/{call_id:\\d+}/review")
async def get_review(request: web.Request) -> web.Response:
    """A call's review: the manager whose call it is reads it, the head too."""
    user = require_user(request, *CALL_ROLES)
    call_id = int(request.match_info["call_id"])
    async with ctx(request).sessions() as db:
        await load_call(db, user, call_id)
        answer = await _review_json(db, call_id, await read_review(db, call_id))
    return web.json_response(answer)


@routes.put("/api/calls/{call_id:\\d+}/review")
async def put_review(request: web.Request) -> web.Response:
    """The head marks a call: reviewed or not, tags from the shared list, checklist lines met or not."""
    user = require_user(request, HEAD)
    call_id = int(request.match_info["call_id"])
    body = await json_body(request)
    try:
        change = parse_change(body)
    except ReviewInputError as error:
        raise _bad(request, error) from None
    async with write_session(ctx(request)) as db:
        await load_call(db, user, call_id)
        try:
            await save_review(db, call_id, change, user.username)
        except ReviewInputError as error:
            raise _bad(request, error) from None
        view = await read_review(db, call_id)
        record(db, request, user, "review_call", f"call:{call_id}", reviewed=view.reviewed, score=view.score,
               tags=view.tags)
        answer = await _review_json(db, call_id, view)
    return web.json_response(answer)


@routes.post("/api/calls/{call_id:\\d+}/review/comments")
async def post_comment(request: web.Request) -> web.Response:
    """The head comments at a moment (seconds from the start of one of the call's recordings)."""
    user = require_user(request, HEAD)
    call_id = int(request.match_info["call_id"])
    body = await json_body(request)
    unknown = set(body) - {"at_s", "text", "recording_id"}
    if unknown:
        raise api_error(400, _(request, "unknown field(s): {fields}", fields=", ".join(sorted(unknown))))
    at_s = body.get("at_s")
    if isinstance(at_s, bool) or not isinstance(at_s, int | float) or not math.isfinite(at_s) or at_s < 0:
        raise api_error(400, _(request, "at_s: seconds from the start of the recording, 0 or more"))
    text = body.get("text")
    if not isinstance(text, str):
        raise api_error(400, _(request, "text: the comment is empty"))
    recording_id = body.get("recording_id")
    if recording_id is not None and (isinstance(recording_id, bool) or not isinstance(recording_id, int)):
        raise api_error(400, _(request, "recording_id: a recording of this call"))
    async with write_session(ctx(request)) as db:
        await load_call(db, user, call_id)
        if recording_id is not None:
            owner = await db.scalar(select(Recording.call_id).where(Recording.id == recording_id))
            if owner != call_id:
                raise api_error(400, _(request, "recording_id: a recording of this call"))
        try:
            comment = await add_comment(db, call_id, recording_id, float(at_s), text, user.username)
        except ReviewInputError as error:
            raise _bad(request, error) from None
        record(db, request, user, "comment_call", f"call:{call_id}", at_s=comment.at_s)
        answer = _comment_json(comment)
    return web.json_response(answer, status=201)


@routes.delete("/api/calls/{call_id:\\d+}/review/comments/{comment_id:\\d+}")
async def delete_comment(request: web.Request) -> web.Response:
    """The head takes a comment back."""
    user = require_user(request, HEAD)
    call_id = int(request.match_info["call_id"])
    comment_id = int(request.match_info["comment_id"])
    async with write_session(ctx(request)) as db:
        await load_call(db, user, call_id)
        gone = await db.execute(
            delete(ReviewComment).where(ReviewComment.id == comment_id, ReviewComment.call_id == call_id)
        )
        if not rowcount(gone):
            raise api_error(404, _(request, "no such comment"))
        record(db, request, user, "uncomment_call", f"call:{call_id}", comment=comment_id)
    return web.Response(status=204)


def _day(request: web.Request, value: str, key: str) -> date:
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise api_error(400, _(request, "{key}: a date as YYYY-MM-DD, not {value}", key=key, value=value)) from None


@routes.get("/api/review/summary")
async def summary(request: web.Request) -> web.Response:
    """Reviews per manager over local days ``from``..``to`` (by default the last two weeks)."""
    require_user(request, HEAD)
    context = ctx(request)
    zone = ZoneInfo(context.config.kpi.timezone)
    q = request.query
    day_to = _day(request, q["to"], "to") if q.get("to") else local_day(context.clock(), zone)
    day_from = _day(request, q["from"], "from") if q.get("from") else day_to - timedelta(days=DEFAULT_DAYS - 1)
    if day_from > day_to:
        raise api_error(400, _(request, "The period starts after it ends"))
    if (day_to - day_from).days >= MAX_DAYS:
        raise api_error(400, _(request, "At most {n} days at once", n=MAX_DAYS))
    start, _end = day_bounds(day_from, zone)
    _start, end = day_bounds(day_to, zone)
    async with context.sessions() as db:
        rows = await reviews_per_manager(db, utc(start), utc(end))
        names = dict((await db.execute(select(Manager.extension, Manager.name))).all())
    items = [
        {
            "manager": r.manager, "manager_name": names.get(r.manager), "answered": r.answered,
            "reviewed": r.reviewed, "scored": r.scored, "average_score": r.average_score, "comments": r.comments,
        }
        for r in rows
    ]
    return web.json_response({"from": day_from.isoformat(), "to": day_to.isoformat(), "items": items})
